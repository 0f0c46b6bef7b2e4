// Package job owns the agent's one-job-at-a-time rule and the record of each
// kind of job (backup, backup-sensitive, restore, restore-sensitive): its
// state, progress, error and result, persisted so that a job interrupted by
// a crash is reported as failed ("interrupted") after the next start,
// never as still running and never silently forgotten.
package job
