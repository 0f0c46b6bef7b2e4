package api

import "time"

// Paths of the remote store (issue 16).
const (
	// PathRemoteCopy: POST copies the stored backup to the remote store now.
	PathRemoteCopy = "/v1/remote/copy"
	// PathBackups: GET lists the local slot and the remote copies.
	PathBackups = "/v1/backups"
	// PathBackupsPrune: POST applies the retention policy (BackupsPruneRequest).
	PathBackupsPrune = "/v1/backups/prune"
	// PathRemoteBackup is followed by a backup's name, then "" (its
	// RemoteBackup record) or "/file" (its encrypted file, from the store).
	PathRemoteBackup = "/v1/remote/backups/"
)

// CodeRemote: the remote store failed (unreachable, credentials, bucket).
const CodeRemote Code = "remote_store"

// RemoteCopyStatus is backup-status's "remote": the copy of the stored
// backup to the remote store.
type RemoteCopyStatus struct {
	// State is "copying", "copied" or "failed".
	State    string     `json:"state"`
	Error    string     `json:"error,omitempty"`
	Location string     `json:"location,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
	CopiedAt *time.Time `json:"copied_at,omitempty"`
	// ResumedBytes were already in the store from an interrupted attempt.
	ResumedBytes int64 `json:"resumed_bytes,omitempty"`
}

// RemoteBackup is the <name>.json written beside <name>.enc in the store:
// what the copy is, so that a retrieve or a restore can check it.
type RemoteBackup struct {
	Name        string     `json:"name"`
	File        string     `json:"file"` // <name>.enc
	Size        int64      `json:"size"`
	MD5         string     `json:"md5"`
	SHA256      string     `json:"sha256"`
	ETag        string     `json:"etag"` // the store's ETag of File
	Created     time.Time  `json:"created"`
	Verified    bool       `json:"verified"`
	VerifiedAt  *time.Time `json:"verified_at,omitempty"`
	Format      string     `json:"format"`
	Documents   int64      `json:"documents,omitempty"`
	Collections int        `json:"collections,omitempty"`
	Consistency string     `json:"consistency,omitempty"`
	// ConsistentTo is the backup's consistent_to (store.Meta's): a base of
	// the continuous oplog archive's windows.
	ConsistentTo *OplogPos `json:"consistent_to,omitempty"`
	Duration     string    `json:"duration,omitempty"`
	Node         string    `json:"node,omitempty"`
	Agent        string    `json:"agent_version,omitempty"`
	CopiedAt     time.Time `json:"copied_at"`
	// LockedUntil: Object Lock keeps File and this record immutable until then.
	LockedUntil *time.Time `json:"locked_until,omitempty"`
}

// BackupEntry is one backup of `a0cli backups`.
type BackupEntry struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Verified bool      `json:"verified"`
	// Where is "local", "remote" or both.
	Where []string `json:"where"`
	// Problem says why a remote copy cannot be used (no .json, size
	// differs); empty when it can.
	Problem string `json:"problem,omitempty"`
	// RestorePrediction is the restore time predicted from the node's
	// last measured restore rate (unset before any restore or drill).
	RestorePrediction *RestorePrediction `json:"restore_prediction,omitempty"`
}

// Backups is the body of GET /v1/backups.
type Backups struct {
	Backups []BackupEntry `json:"backups"`
	// Remote is the store's location, empty without a remote store.
	Remote    string `json:"remote,omitempty"`
	Retention string `json:"retention,omitempty"`
	// RemoteError is set when the store could not be listed.
	RemoteError string `json:"remote_error,omitempty"`
	// PITRWindows are the continuous oplog archive's restorable windows
	// (as pitr-status lists them), when "pitr" is on.
	PITRWindows []PITRWindow `json:"pitr_windows,omitempty"`
}

// BackupsPruneRequest is the body of POST /v1/backups/prune.
type BackupsPruneRequest struct {
	DryRun bool `json:"dry_run,omitempty"`
}

// PruneDecision is the fate of one remote copy.
type PruneDecision struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
	Deleted bool      `json:"deleted,omitempty"`
}

// BackupsPrune is the answer of POST /v1/backups/prune.
type BackupsPrune struct {
	DryRun    bool            `json:"dry_run"`
	Retention string          `json:"retention"`
	Decisions []PruneDecision `json:"decisions"`
	// PITR is what the prune did to the continuous oplog archive's slices,
	// when "pitr" is on.
	PITR *PITRPrune `json:"pitr,omitempty"`
}

// States of a copy to the remote store (RemoteCopyStatus.State).
const (
	CopyCopying = "copying"
	CopyCopied  = "copied"
	CopyFailed  = "failed"
)
