package api

import (
	"encoding/json"
	"time"
)

// The "arguments" of the replies (Message.Arguments) and the progress and
// results of the jobs, as the node writes them and the CLI reads them. Their
// JSON is a contract (scripts parse a0cli --json): add fields, never rename.
// Where the node once wrote a map, the fields are in the map's (sorted)
// order, so that the bytes on the wire are the same.

// SetAsBackupReply is the "arguments" of "Node set as backup".
type SetAsBackupReply struct {
	Device string   `json:"device"`
	Folder string   `json:"folder"`
	Roles  []string `json:"roles"`
	// LeftBehind lists the backups a forced switch left on the previous
	// device: no longer managed by the node, still there.
	LeftBehind []LeftBackup `json:"left_behind,omitempty"`
}

// LeftBackup is a stored backup set-as-backup left on the previous device.
type LeftBackup struct {
	Kind   string `json:"kind"` // "backup" or "sensitive"
	Name   string `json:"name"`
	Device string `json:"device"`
	Path   string `json:"path"`
}

// BackupStarted is the "arguments" of "Backup in progress." (absent when
// both fields are empty).
type BackupStarted struct {
	// Recipients are the public keys the backup is encrypted to.
	Recipients []BackupRecipient `json:"recipients,omitempty"`
	// Warning: the password also opens the other slot's backup.
	Warning string `json:"warning,omitempty"`
}

// Empty says the reply carries nothing (no "arguments" then).
func (b BackupStarted) Empty() bool { return len(b.Recipients) == 0 && b.Warning == "" }

// JobRunning is the "arguments" of "Backup in progress" and "Restore in
// progress": when the job started and its progress. The node writes P = any
// (the job's own progress type); a client decodes the type it expects
// (SlotProgress, RestoreProgress).
type JobRunning[P any] struct {
	Progress P         `json:"progress"`
	Started  time.Time `json:"started"`
}

// BackupProgress is a running backup's progress: the dump's counters, then
// the read-back ("verifying") once the file is written.
type BackupProgress struct {
	CollectionsTotal int64 `json:"collections_total"`
	CollectionsDone  int64 `json:"collections_done"`
	Documents        int64 `json:"documents"`
	Bytes            int64 `json:"bytes"`
	EstimatedBytes   int64 `json:"estimated_bytes"`
	Verifying        bool  `json:"verifying,omitempty"`
}

// SensitiveProgress is a running sensitive backup's progress.
type SensitiveProgress struct {
	FilesDone  int64 `json:"files_done"`
	FilesTotal int64 `json:"files_total"`
}

// SlotProgress is what a client decodes either slot's progress into.
type SlotProgress struct {
	BackupProgress
	SensitiveProgress
}

// BackupFound is the "arguments" of "Backup found": name and md5 first, as
// the original printed them; the rest is ours.
type BackupFound struct {
	Name        string `json:"name"`
	MD5         string `json:"md5"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Created     string `json:"created"`
	Duration    string `json:"duration,omitempty"`
	Documents   int64  `json:"documents,omitempty"`
	Collections int    `json:"collections,omitempty"`
	Files       int    `json:"files,omitempty"`
	Format      string `json:"format"`
	Consistency string `json:"consistency,omitempty"`
	// Verified says the file was read back and passed restore's checks
	// before it was called found, at VerifiedAt.
	Verified   bool       `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// Remote is the copy to the remote store, when there is one.
	Remote *RemoteCopyStatus `json:"remote,omitempty"`
	// ConsistentTo is the oplog position the backup restores to (a base
	// of a restore to a point in time starts there).
	ConsistentTo *OplogTS `json:"consistent_to,omitempty"`
	// Drill is the node's last restore drill (unset without "drill" in
	// the agent config); its backup may be an older one than this.
	Drill *DrillStatus `json:"drill,omitempty"`
}

// BackupFailed is the "arguments" of "Backup failed".
type BackupFailed struct {
	Error string `json:"error"`
	// Code is the failure's kind when it has one (e.g.
	// insufficient_space: the job's own free-space check stopped it).
	Code     string     `json:"code,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
}

// BackupDeleted is the "arguments" of "Backup deleted".
type BackupDeleted struct {
	MD5  string `json:"md5"`
	Name string `json:"name"`
}

// CopyStarted is the "arguments" of "Copy in progress.".
type CopyStarted struct {
	// AlreadyRunning: a copy of this backup was running already.
	AlreadyRunning bool   `json:"already_running,omitempty"`
	Location       string `json:"location"`
	Name           string `json:"name"`
}

// RestoreProgress reports a restore's phase and, while restoring, the
// counters.
type RestoreProgress struct {
	Phase string `json:"phase"`
	RestoreCounters
	// Totals from the plan, for the CLI's progress bar and ETA.
	DocumentsTotal int64 `json:"documents_total,omitempty"`
	BytesTotal     int64 `json:"bytes_total,omitempty"`
	// FileBytes of FileBytesTotal have been authenticated: the progress
	// of the first pass, before the plan's totals are known.
	FileBytes      int64 `json:"file_bytes,omitempty"`
	FileBytesTotal int64 `json:"file_bytes_total,omitempty"`
	// OplogEntriesTotal is the backup's oplog entries (the plan's), which
	// the oplog step replays: OplogApplied of it.
	OplogEntriesTotal int64 `json:"oplog_entries_total,omitempty"`
}

// RestoreCounters are the restore's counters while it writes.
type RestoreCounters struct {
	CollectionsDone  int64 `json:"collections_done"`
	CollectionsTotal int64 `json:"collections_total"`
	Documents        int64 `json:"documents"`
	Bytes            int64 `json:"bytes"`
	OplogApplied     int64 `json:"oplog_applied"`
	// Step is what the restore is doing: data, indexes, oplog or report.
	Step string `json:"step,omitempty"`
}

// RestoreEnded is the "arguments" of "Restore finished" and, with Error
// and Code, of "Restore failed" (RestoreFailed).
type RestoreEnded struct {
	Finished *time.Time      `json:"finished"`
	Result   json.RawMessage `json:"result"`
	Started  time.Time       `json:"started"`
}

// RestoreFailed is the "arguments" of "Restore failed".
type RestoreFailed struct {
	Code     string          `json:"code"`
	Error    string          `json:"error"`
	Finished *time.Time      `json:"finished"`
	Result   json.RawMessage `json:"result"`
	Started  time.Time       `json:"started"`
}

// RestoreResult is what restore-status shows after a restore (the job's
// result).
type RestoreResult struct {
	// Phase is planned, dry-run, done, failed or cancelled (stopped by
	// an operator after it began writing).
	Phase string `json:"phase"`
	// Previous is the marker of an earlier restore that did not finish.
	Previous map[string]any `json:"previous_unfinished,omitempty"`
	Plan     *RestorePlan   `json:"plan,omitempty"`
	Report   *RestoreReport `json:"report,omitempty"`
	// Written (a restore cancelled part way, phase "cancelled") lists
	// the target collections holding documents when it stopped, as
	// "db.coll (N documents)": the database is partly restored.
	Written []string `json:"written,omitempty"`
}

// RestorePlan summarizes what a restore reads from the backup.
type RestorePlan struct {
	Created      string   `json:"created,omitempty"`
	Consistency  string   `json:"consistency,omitempty"`
	Collections  []string `json:"collections"`
	Documents    int64    `json:"documents"`
	OplogEntries int64    `json:"oplog_entries"`
	// Users and Roles are in the backup; restored only with
	// --users-and-roles.
	Users int64 `json:"users,omitempty"`
	Roles int64 `json:"roles,omitempty"`
	// Skipped lists the namespaces of the backup not restored.
	Skipped []string `json:"skipped,omitempty"`
	// OplogOnly lists the namespaces only the oplog writes (created
	// during the dump): restored from empty, dropped first with --drop.
	OplogOnly []string `json:"oplog_only,omitempty"`
	// Renamed maps each namespace of the backup restored under a new name
	// (--ns-from/--ns-to) to it; Collections and OplogOnly are the new
	// names.
	Renamed map[string]string `json:"renamed,omitempty"`
	// NonEmpty (dry runs) lists the target collections that already hold
	// documents: a restore refuses them without --drop, and --drop drops
	// and replaces them.
	NonEmpty []string `json:"non_empty,omitempty"`
	// ArchiveEntries counts the oplog archive's entries a point-in-time
	// restore replays after the backup's own (issue 26), up to ToTS from
	// the Slices slices of the archive.
	ArchiveEntries int64    `json:"archive_entries,omitempty"`
	ArchiveSlices  int      `json:"archive_slices,omitempty"`
	ToTS           *OplogTS `json:"to_ts,omitempty"`
}

// RestoreReport is what a restore found once it wrote (restore.Report).
type RestoreReport struct {
	Collections []RestoredCollection `json:"collections"`
	// OplogApplied counts the oplog entries replayed.
	OplogApplied int64 `json:"oplog_applied"`
	// DocumentsFailed sums the collections' refused documents.
	DocumentsFailed int64 `json:"documents_failed,omitempty"`
	// OplogSkipped counts the oplog entries not replayed, by reason.
	OplogSkipped map[string]int64 `json:"oplog_skipped,omitempty"`
	// OplogSkippedNS counts the same entries by reason, then by namespace.
	OplogSkippedNS map[string]map[string]int64 `json:"oplog_skipped_namespaces,omitempty"`
	// OplogReplay says how entries reached the server: "applyOps" or
	// "writes".
	OplogReplay string `json:"oplog_replay,omitempty"`
	// IndexesFromOplog counts the index builds the oplog added.
	IndexesFromOplog int `json:"indexes_from_oplog,omitempty"`
	// ServerRetries counts the commands sent again after a transient
	// server error (FerretDB's SQLITE_BUSY).
	ServerRetries int64 `json:"server_retries,omitempty"`
	// DryRun reports come from the plan alone.
	DryRun bool `json:"dry_run,omitempty"`
	OK     bool `json:"ok"`
}

// RestoredCollection is one restored collection of a RestoreReport.
type RestoredCollection struct {
	Namespace          string   `json:"namespace"`
	DocumentsDumped    int64    `json:"documents_dumped"`
	DocumentsExpected  int64    `json:"documents_expected"`
	DocumentsFound     int64    `json:"documents_found"`
	CountCompared      bool     `json:"count_compared"`
	IndexesExpected    int      `json:"indexes_expected"`
	IndexesFound       int      `json:"indexes_found"`
	IndexErrors        []string `json:"index_errors,omitempty"`
	OplogEntries       int64    `json:"oplog_entries"`
	DocumentsFailed    int64    `json:"documents_failed,omitempty"`
	DuplicateKeys      int64    `json:"duplicate_keys,omitempty"`
	ValidationFailures int64    `json:"validation_failures,omitempty"`
	// InsertErrors holds the first few refusals' messages.
	InsertErrors []string `json:"insert_errors,omitempty"`
	OK           bool     `json:"ok"`
}

// SensitiveFile is one file restore-sensitive would put back, or did.
type SensitiveFile struct {
	Path    string `json:"path"`
	Target  string `json:"target"`
	Mode    string `json:"mode"`
	Exists  bool   `json:"exists"`
	Changes bool   `json:"changes"`
	// Skipped is set for an identity file (authorized_keys, the TLS key
	// and certificate) when the node holds no valid recovery consent:
	// it is listed, never written.
	Skipped bool   `json:"skipped,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// SkippedFile is one entry of restore-sensitive's "skipped".
type SkippedFile struct {
	Path   string `json:"path"`
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// RecoveryConsent is restore-sensitive's "recovery_consent": whether the
// node's operator allowed restoring the identity files, until when, and
// whether this restore used the consent.
type RecoveryConsent struct {
	Expires string `json:"expires,omitempty"`
	Used    bool   `json:"used,omitempty"`
	Valid   bool   `json:"valid"`
}

// SensitivePlan is the "arguments" of "Sensitive restore plan".
type SensitivePlan struct {
	Files           []SensitiveFile `json:"files"`
	RecoveryConsent RecoveryConsent `json:"recovery_consent"`
	Skipped         []SkippedFile   `json:"skipped"`
}

// SensitiveRestored is the "arguments" of "Sensitive configuration
// restored" (and the restore-sensitive job's result).
type SensitiveRestored struct {
	Files           []SensitiveFile `json:"files"`
	Keys            *NodeKeys       `json:"keys"`
	RecoveryConsent RecoveryConsent `json:"recovery_consent"`
	// Reloaded names the restored keys taken into use in place.
	Reloaded []string `json:"reloaded"`
	// RestartNeededFor says which restored keys could not be taken into use.
	RestartNeededFor string        `json:"restart_needed_for,omitempty"`
	Skipped          []SkippedFile `json:"skipped"`
}

// Reply is a Message whose "arguments" a client decodes as A (a type of
// this file, or json.RawMessage to decide by the message).
type Reply[A any] struct {
	Message   string `json:"message"`
	Arguments A      `json:"arguments"`
}

// CancelReply is the "arguments" of "Job cancelled" (POST /v1/cancel): the
// job's record once it has ended, which says what it left.
type CancelReply struct {
	// Kind is the job cancelled: backup, backup-sensitive, restore.
	Kind    string     `json:"kind"`
	Started time.Time  `json:"started"`
	Ended   *time.Time `json:"finished,omitempty"`
	// State is the record's: "failed" with Code "cancelled" once the job
	// stopped, "done" when it finished before the cancel reached it.
	State string `json:"state"`
	Code  string `json:"code,omitempty"`
	// Error says what the cancelled job left: a backup removed its
	// partial file; a restore says whether it wrote, and what.
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}
