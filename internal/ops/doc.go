// Package ops owns the bodies of a0agent's operations: the jobs that run one
// at a time on the job runner (Backup, SensitiveBackup, Restore,
// RestoreSensitive) and the long-running services beside them (Copier, the
// copy of every verified backup to the remote store; Scheduler, the
// unattended backups). The coming continuous oplog archive is such a
// service, in its own package beside this one (internal/pitr).
//
// Every job and service is a struct of its dependencies, filled in by the
// agent, which wires jobs and services in one place (agent.New); none of
// them knows HTTP. A job's Run takes a context and the running *job.Job (for
// its progress) and returns its result (an api reply type, stored in the
// job record) or an error. Failures an operator can act on are *Error,
// whose Kind the agent maps to an API code in one place; any other error is
// an internal failure.
package ops
