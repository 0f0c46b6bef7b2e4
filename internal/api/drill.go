package api

import "time"

// PathDrill is POST: run a restore drill of the stored backup now
// (a0cli drill), on a node with "drill" in its agent config.
const PathDrill = "/v1/drill"

// DrillRequested is the "arguments" of "Drill requested.".
type DrillRequested struct {
	// AlreadyRequested: a drill was already asked for and has not
	// started; this request adds nothing.
	AlreadyRequested bool `json:"already_requested,omitempty"`
}

// DrillStatus is node-status's and backup-status's "drill": the restore
// drills' schedule, the last drill and the last successful one (issue 29).
// Unset on a node without "drill" in its config.
type DrillStatus struct {
	// Schedule is "every 168h0m0s" or "cron 0 3 * * 0".
	Schedule string     `json:"schedule"`
	NextRun  *time.Time `json:"next_run,omitempty"`
	// Last is the last drill, whatever its outcome; LastSuccess the last
	// one that passed.
	Last        *DrillRun `json:"last,omitempty"`
	LastSuccess *DrillRun `json:"last_success,omitempty"`
	// Failures counts the failed drills (the metric
	// a0_restore_drill_failures_total).
	Failures int64 `json:"failures"`
}

// DrillRun is one restore drill: Outcome "ok", "failed", "skipped" (a job
// preempted it, or no backup was stored) or "running".
type DrillRun struct {
	Due      time.Time  `json:"due"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Outcome  string     `json:"outcome"`
	Reason   string     `json:"reason,omitempty"`
	Code     string     `json:"code,omitempty"`
	// Backup is the name of the backup the drill restored.
	Backup string `json:"backup,omitempty"`
	// Seconds is the restore's duration (the drill's measure, the one
	// `backups` predicts restore times from): the plan, data, oplog
	// replay and indexes, without the comparison's reads.
	Seconds float64 `json:"seconds,omitempty"`
	// CompareSeconds is the comparison's (every collection read back and
	// summed), TotalSeconds the whole drill's (the file authenticated,
	// the throwaway server started, restore, comparison, removal).
	CompareSeconds float64 `json:"compare_seconds,omitempty"`
	TotalSeconds   float64 `json:"total_seconds,omitempty"`
	Bytes          int64   `json:"bytes,omitempty"`
	Collections    int     `json:"collections,omitempty"`
	Documents      int64   `json:"documents,omitempty"`
	// CollectionsNotHeld counts the collections the embedded server
	// cannot hold (not restored, not compared: the drill passes without
	// them), DocumentsNotHeld the documents in them it refuses (a field
	// name with '.' or a leading '$', a Decimal128...).
	CollectionsNotHeld int   `json:"collections_not_held,omitempty"`
	DocumentsNotHeld   int64 `json:"documents_not_held,omitempty"`
	// Note says what the comparison could not cover (no content digests
	// in an older backup, a collection the embedded server cannot hold).
	Note string `json:"note,omitempty"`
	// Retry: a job preempted this drill (outcome "skipped"); it runs
	// again once the job has ended.
	Retry bool `json:"retry,omitempty"`
}

// RestorePrediction is `backups`' predicted restore time of one backup:
// its size at the node's last measured restore rate. A prediction, not a
// measure of this backup.
type RestorePrediction struct {
	Seconds float64 `json:"seconds"`
	// From is what measured the rate: "drill" or "restore", At when, and
	// Backup of which backup; BytesPerSecond the rate.
	From           string    `json:"from"`
	At             time.Time `json:"at"`
	Backup         string    `json:"backup,omitempty"`
	BytesPerSecond float64   `json:"bytes_per_second"`
}
