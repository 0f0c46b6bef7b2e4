package ops

import (
	"context"
	"errors"
	"fmt"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/remote"
)

// Kind names what went wrong in terms an operator can act on. The agent
// maps each to an API code (agent/http.go's kindCodes); add, never reuse.
type Kind int

const (
	// Invalid: the request cannot be served as given.
	Invalid Kind = iota + 1
	// NotFound: what the request names is not there.
	NotFound
	// NotBackupRole: the node has no backup role or device.
	NotBackupRole
	// Exists: a backup is stored already.
	Exists
	// Busy: a job, or a client, holds what the request needs.
	Busy
	// NoSpace: not enough free space.
	NoSpace
	// WrongKey: the password or file key does not open the backup.
	WrongKey
	// Integrity: a file or the data failed a check (authentication,
	// archive, hash, count).
	Integrity
	// NonEmptyTarget: the restore would write into collections that
	// hold documents.
	NonEmptyTarget
	// Unsupported: the target cannot hold what is asked (or the node has
	// no remote store).
	Unsupported
	// Remote: the remote store failed (unreachable, credentials, bucket).
	Remote
	// Cancelled: an operator cancelled the job (job.Runner.Cancel); the
	// message says what it left.
	Cancelled
)

// CancelledError is the error of a job whose context an operator cancelled,
// saying what it left (left), or err unchanged when it was not cancelled.
func CancelledError(ctx context.Context, err error, left string) error {
	if err == nil || !errors.Is(context.Cause(ctx), job.ErrCancelled) {
		return err
	}
	return &Error{Kind: Cancelled, Msg: job.ErrCancelled.Error() + ": " + left, Err: job.ErrCancelled}
}

// Error is a failure of a job or service an operator can act on.
type Error struct {
	Kind Kind
	Msg  string
	// Details are machine-readable facts of the failure (the API error's
	// "details").
	Details map[string]any
	// Err is the cause, if any, for errors.Is.
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// ErrOplogRolled is in the chain of a backup that failed because the oplog
// lost the backup's start during the dump (dump.OplogRolledError): the
// runners mark it so (package dbjob), and the layer above, which imports
// neither dump nor restore, tells it by errors.Is.
var ErrOplogRolled = errors.New("the oplog rolled over during the dump")

// OpenError gives the failures of opening and reading a backup file their
// kinds and the messages the operator sees: crypt's for the file, and
// archive's refusal of an unsafe entry. The restore job adds restore's
// refusals of the archive (dbjob).
func OpenError(err error) error {
	switch {
	case errors.Is(err, crypt.ErrNoPassword):
		return &Error{Kind: WrongKey, Msg: "this backup has no password: it is encrypted to public keys (restore it with --identity)", Err: err}
	case errors.Is(err, crypt.ErrWrongPassword):
		return &Error{Kind: WrongKey, Msg: "wrong password for this backup", Err: err}
	case errors.Is(err, crypt.ErrWrongKey):
		return &Error{Kind: WrongKey, Msg: "the file key sent does not open this backup", Err: err}
	case errors.Is(err, crypt.ErrCorrupt), errors.Is(err, crypt.ErrNotA0), errors.Is(err, crypt.ErrUnsupported):
		return &Error{Kind: Integrity, Msg: "backup file failed authentication: " + err.Error(), Err: err}
	case errors.Is(err, archive.ErrUnsafe):
		return &Error{Kind: Integrity, Msg: "backup archive refused: " + err.Error(), Err: err}
	}
	return err
}

// remoteError gives the remote store's failures their kinds.
func remoteError(err error) error {
	var oe *Error
	switch {
	case err == nil, errors.As(err, &oe):
		return err
	case errors.Is(err, remote.ErrNotFound):
		return &Error{Kind: NotFound, Msg: err.Error(), Err: err}
	case errors.Is(err, remote.ErrMismatch):
		return &Error{Kind: Integrity, Msg: err.Error(), Err: err}
	case errors.Is(err, remote.ErrBadName):
		return &Error{Kind: Invalid, Msg: err.Error(), Err: err}
	case errors.Is(err, remote.ErrAuth), errors.Is(err, remote.ErrNoBucket), errors.Is(err, remote.ErrUnreachable):
		return &Error{Kind: Remote, Msg: err.Error(), Err: err}
	}
	return err
}
