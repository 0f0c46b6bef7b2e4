// Package ops owns a0agent's operations below the HTTP layer: the jobs
// that run one at a time on the job runner (Backup, SensitiveBackup,
// Restore, RestoreSensitive) and the long-running services beside them
// (Copier, the copy of every verified backup to the remote store;
// Scheduler, the unattended backups), with what they share: the error
// kinds (Error, Kind), a restore's Source and RestoreOptions, the hold
// points of tests (Hold), names (BackupName, Slot, WorkDir), the free-space
// rules (CheckSpace, NoSpaceForUpload), the restore marker and the
// same-password warning. The coming continuous oplog archive is such a
// service, in its own package beside this one (internal/pitr).
//
// Every job and service is a struct of its dependencies, filled in by the
// agent, which wires them in one place (agent/jobs.go); none of them knows
// HTTP. A job takes a context and the running *job.Job (for its progress)
// and returns its result (a store or api type, kept in the job record) or
// an error. Failures an operator can act on are *Error, whose Kind the
// agent maps to an API code in one place; any other error is an internal
// failure.
//
// This package imports neither dump nor restore. The bodies that do (the
// backup's dump and read-back, the restore, the totals and the database's
// size) are package ops/dbjob's and reach the agent as a value, Runners,
// from a composition root (agentcmd, the benchmarks, the tests): the HTTP
// layer above the jobs, the jobs above the engines, nothing pointing up.
// The sensitive backup and restore need no engine and run here whole.
package ops
