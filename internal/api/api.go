package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// DefaultPort is the original appliance CLI's port.
const DefaultPort = 10121

// Code names a kind of failure. The CLI maps codes to exit codes and advice;
// scripts may match on them (a0cli --json prints them).
type Code string

// Error codes. Add, never rename: operators' scripts match on them.
const (
	CodeBadRequest        Code = "bad_request"
	CodeUnauthorized      Code = "unauthorized"
	CodeNotFound          Code = "not_found"
	CodeNotBackupRole     Code = "not_backup_role"
	CodeBackupExists      Code = "backup_exists"
	CodeJobRunning        Code = "job_running"
	CodeInsufficientSpace Code = "insufficient_space"
	CodeDeviceExists      Code = "device_exists"
	CodeDeviceInvalid     Code = "device_invalid"
	CodeWrongPassword     Code = "wrong_password"
	CodeIntegrity         Code = "integrity"
	CodeNonEmptyTarget    Code = "non_empty_target"
	CodeTooLarge          Code = "too_large"
	// CodeUnsupported: the target server cannot hold something the
	// backup holds (time-series, views, users and roles on FerretDB).
	CodeUnsupported Code = "unsupported"
	CodeInternal    Code = "internal"
	// CodeCancelled: an operator cancelled the job (a0cli cancel); a job
	// record's code (job.CodeCancelled), not an answer to a request.
	CodeCancelled Code = "cancelled"
)

var statusOf = map[Code]int{
	CodeBadRequest:        http.StatusBadRequest,
	CodeUnauthorized:      http.StatusUnauthorized,
	CodeNotFound:          http.StatusNotFound,
	CodeNotBackupRole:     http.StatusConflict,
	CodeBackupExists:      http.StatusConflict,
	CodeJobRunning:        http.StatusConflict,
	CodeInsufficientSpace: http.StatusInsufficientStorage,
	CodeDeviceExists:      http.StatusConflict,
	CodeDeviceInvalid:     http.StatusBadRequest,
	CodeWrongPassword:     http.StatusUnprocessableEntity,
	CodeIntegrity:         http.StatusUnprocessableEntity,
	CodeNonEmptyTarget:    http.StatusConflict,
	CodeTooLarge:          http.StatusRequestEntityTooLarge,
	CodeUnsupported:       http.StatusUnprocessableEntity,
	CodeInternal:          http.StatusInternalServerError,
	CodeCancelled:         http.StatusConflict,
	CodeNotRestorable:     http.StatusConflict,
}

// Error is a failure with a code, carried as the JSON body of a non-2xx
// response: {"error":{"code":"...","message":"...","details":{...}}}.
type Error struct {
	Code    Code           `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ErrorCode names the error's kind (job records keep it).
func (e *Error) ErrorCode() string { return string(e.Code) }

// Status is the HTTP status of the error's code.
func (e *Error) Status() int {
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf makes an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err, or "" when err carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorBody is the envelope of an error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Message is the original CLI's output shape: {"message":"...","arguments":{...}}.
type Message struct {
	Message   string `json:"message"`
	Arguments any    `json:"arguments,omitempty"`
}

// Slots name the two backup slots of a node.
const (
	SlotBackup    = "backup"
	SlotSensitive = "sensitive"
)

// Paths of the API, all under /v1.
const (
	PathPing        = "/v1/ping"
	PathCommands    = "/v1/commands"
	PathSetAsBackup = "/v1/set-as-backup"
	PathNodeStatus  = "/v1/node-status"
	// PathSlot is followed by the slot name, then "", "/status", "/file".
	PathSlot          = "/v1/slots/"
	PathUploads       = "/v1/uploads/"
	PathRestore       = "/v1/restore"
	PathRestoreStatus = "/v1/restore/status"
	PathRestoreSens   = "/v1/restore-sensitive"
	// PathCancel cancels the running job (CancelRequest, CancelReply).
	PathCancel = "/v1/cancel"
)

// CancelRequest is the body of POST /v1/cancel.
type CancelRequest struct {
	// Kind, when set ("backup", "restore"), is the kind of job the
	// operator means to cancel: another kind running is refused
	// (job_running), so that backup-cancel never stops a restore.
	Kind string `json:"kind,omitempty"`
}

// Command describes one command the node accepts (update-commands).
type Command struct {
	Name    string `json:"name"`
	Usage   string `json:"usage"`
	Summary string `json:"summary"`
}

// Commands is the body of GET /v1/commands.
type Commands struct {
	Commands []Command `json:"commands"`
}

// SetAsBackupRequest is the body of POST /v1/set-as-backup.
type SetAsBackupRequest struct {
	Device string `json:"device"`
	Force  bool   `json:"force"`
}

// NodeStatus is the body of GET /v1/node-status.
type NodeStatus struct {
	Node            string   `json:"node"`
	AgentVersion    string   `json:"agent_version"`
	Roles           []string `json:"roles"`
	Device          string   `json:"device,omitempty"`
	DeviceFreeBytes int64    `json:"device_free_bytes,omitempty"`
	DatabaseBytes   int64    `json:"database_bytes"`
	// DatabaseBytesRead is when DatabaseBytes was measured: the agent
	// reads it in the background, not at each request (unset: not
	// measured yet, DatabaseBytes is 0). DatabaseBytesAgeSeconds is its
	// age by the agent's clock, DatabaseBytesRefreshSeconds the period
	// after which a request starts a new read; DatabaseBytesError is why
	// the last read failed (DatabaseBytes is then the last good value).
	DatabaseBytesRead           *time.Time     `json:"database_bytes_read,omitempty"`
	DatabaseBytesAgeSeconds     int64          `json:"database_bytes_age_seconds,omitempty"`
	DatabaseBytesRefreshSeconds int64          `json:"database_bytes_refresh_seconds,omitempty"`
	DatabaseBytesError          string         `json:"database_bytes_error,omitempty"`
	Database                    string         `json:"database"`
	ServerVersion               string         `json:"server_version,omitempty"`
	Job                         string         `json:"job,omitempty"`
	InterruptedRestore          map[string]any `json:"interrupted_restore,omitempty"`
	// Keys identifies the keys the agent holds in memory now (not the files
	// on disk), so that a restore of the sensitive configuration can be
	// seen to have taken effect.
	Keys *NodeKeys `json:"keys,omitempty"`
	// Schedule is the config's schedule, its last and next run (unset
	// without a schedule).
	Schedule *ScheduleStatus `json:"schedule,omitempty"`
	// Drill is the restore drills' schedule and last drill (unset
	// without "drill" in the agent config).
	Drill *DrillStatus `json:"drill,omitempty"`
}

// ScheduleStatus is node-status's "schedule".
type ScheduleStatus struct {
	// Schedule is "every 24h0m0s" or "cron 30 2 * * *".
	Schedule string `json:"schedule"`
	// Replace: a run replaces the stored backup (else it is skipped).
	Replace bool `json:"replace"`
	// Recipients is how many public keys scheduled backups are encrypted to.
	Recipients int           `json:"recipients"`
	NextRun    *time.Time    `json:"next_run,omitempty"`
	LastRun    *ScheduledRun `json:"last_run,omitempty"`
}

// ScheduledRun is one scheduled run: when it was due and attempted, and
// how it ended ("done", "failed", "skipped", "running").
type ScheduledRun struct {
	Due      time.Time  `json:"due"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Outcome  string     `json:"outcome"`
	Reason   string     `json:"reason,omitempty"`
	Code     string     `json:"code,omitempty"`
	Name     string     `json:"name,omitempty"`
	Replaced string     `json:"replaced,omitempty"`
	// Missed counts the runs that fell due and did not start at their time
	// (the agent was down, or the previous run was going), this one's
	// included: all made up for by this one run; 0 when it ran on time.
	Missed int `json:"missed,omitempty"`
}

// NodeKeys are fingerprints of the node's keys in use ("SHA256:<base64>").
type NodeKeys struct {
	DataEncryptionKey string `json:"data_encryption_key"`
	TokenSigningKey   string `json:"token_signing_key"`
	TLSCertificate    string `json:"tls_certificate"`
}

// BackupRequest is the body of POST /v1/slots/{slot}.
type BackupRequest struct {
	Password string `json:"password"`
	// AllowPrimary lets the dump read from the primary of a replica set.
	AllowPrimary bool `json:"allow_primary,omitempty"`
	// To names authorized CLI keys to encrypt the backup to (format v2);
	// ToAll encrypts it to every authorized key. A backup with no password
	// is also encrypted to the agent config's "recipients".
	To    []string `json:"to,omitempty"`
	ToAll bool     `json:"to_all,omitempty"`
}

// BackupRecipient is one public key a backup was encrypted to, as the
// answer to a backup request lists them.
type BackupRecipient struct {
	// Name is the authorized key's name; empty for a configured recipient.
	Name string `json:"name,omitempty"`
	Key  string `json:"key"`
}

// Upload is the state of an upload (GET/PUT /v1/uploads/{id}).
type Upload struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
	// SHA256 is the hash of the bytes the node holds, so that a client
	// resuming (or reusing a complete) upload checks they are its own.
	SHA256 string `json:"sha256,omitempty"`
}

// RestoreRequest is the body of POST /v1/restore.
type RestoreRequest struct {
	// UploadID names an uploaded file; empty means the backup stored on the node.
	UploadID string   `json:"upload_id,omitempty"`
	Password string   `json:"password,omitempty"`
	Plain    bool     `json:"plain,omitempty"`
	Drop     bool     `json:"drop,omitempty"`
	NS       []string `json:"ns,omitempty"`
	DryRun   bool     `json:"dry_run,omitempty"`
	// NSFrom and NSTo rename what NS selects (restore --ns-from/--ns-to,
	// mongorestore's --nsFrom/--nsTo pairs, in order).
	NSFrom []string `json:"ns_from,omitempty"`
	NSTo   []string `json:"ns_to,omitempty"`
	// UploadSHA256, when set, is the sha256 of the file the client
	// uploaded: the node refuses an upload whose bytes differ.
	UploadSHA256 string `json:"upload_sha256,omitempty"`

	// FileKey opens a backup encrypted to public keys (format v2): the CLI
	// unwraps it with an identity that never leaves the workstation.
	FileKey []byte `json:"file_key,omitempty"`
	// StopOnError stops at the first document the server refuses.
	StopOnError bool `json:"stop_on_error,omitempty"`
	// UsersAndRoles restores the backup's users and roles too.
	UsersAndRoles bool `json:"users_and_roles,omitempty"`
	// Remote names a copy in the node's remote store to restore (issue 16).
	Remote string `json:"remote,omitempty"`
	// ToTS restores to a point in time (issue 26): the stored backup
	// Base, then the oplog archive's entries after its consistent_to up
	// to ToTS inclusive (as POST /v1/pitr/plan chose them). SliceKeys are
	// the slices' file keys by name, unwrapped by the CLI; FileKey opens
	// the base. With Remote (= Base) the base is that remote copy and the
	// slices the store's (a plan with PITRPlan.Remote).
	ToTS      *OplogTS          `json:"to_ts,omitempty"`
	Base      string            `json:"base,omitempty"`
	SliceKeys map[string][]byte `json:"slice_keys,omitempty"`
}

// RestoreSensitiveRequest is the body of POST /v1/restore-sensitive.
type RestoreSensitiveRequest struct {
	UploadID string `json:"upload_id"`
	Password string `json:"password"`
	// Confirm false asks only for the plan (what would be replaced).
	Confirm bool `json:"confirm"`
	// UploadSHA256 is as in RestoreRequest.
	UploadSHA256 string `json:"upload_sha256,omitempty"`
}

// Headers of a backup download.
const (
	HeaderMD5    = "X-A0-Md5"
	HeaderSHA256 = "X-A0-Sha256"
	HeaderName   = "X-A0-Name"
	// HeaderOffset is the byte offset an upload chunk starts at.
	HeaderOffset = "X-A0-Offset"
)
