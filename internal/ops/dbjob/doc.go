// Package dbjob owns the bodies of the jobs that read or write the database
// through the engines below them: the backup (dump.Run into the slot's
// sealed file, then the read-back through restore.Plan before the file is
// called stored), the restore (restore.Plan in the authenticated first
// pass, CheckTargets, Preflight, the restore marker, restore.Run in the
// second pass) and their helpers (Totals, DataSize, CleanSpools). It also
// classifies their failures as *ops.Error: restore's refusals of an archive,
// non-empty targets, features the server lacks; and it marks a backup lost
// to the oplog's rollover with ops.ErrOplogRolled.
//
// The job's inputs are the structs of package ops (ops.Backup, ops.Restore)
// and its outputs are ops' and api's types, so the agent, which imports
// neither this package nor dump nor restore, receives these bodies as a
// value, ops.Runners (Runners()), from a composition root: agentcmd for
// a0agent, bench for the benchmarks, the tests that start an agent.
package dbjob
