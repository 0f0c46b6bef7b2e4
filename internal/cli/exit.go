package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/restore"
)

// Exit codes of a0cli. Add, never renumber: scripts rely on them.
const (
	ExitOK        = 0
	ExitFailure   = 1 // anything not below
	ExitUsage     = 2 // bad command line
	ExitAuth      = 3 // no key, key refused, node certificate changed
	ExitRefused   = 4 // the node refused: role, stored backup, running job, space, device, non-empty target
	ExitNotFound  = 5 // no backup, no file
	ExitIntegrity = 6 // wrong password, corrupt or tampered file, checksum mismatch, restore report differs
	ExitConn      = 7 // node unreachable
)

// UsageError is a bad command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// IntegrityError is a local integrity failure (checksums, verification).
type IntegrityError struct{ Msg string }

func (e *IntegrityError) Error() string { return e.Msg }

// NotFoundError is a local missing file.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// exitCode maps an error to the exit code and, where it helps, advice that
// says what to do next. It is the only place that does so.
func exitCode(err error) (int, string) {
	var (
		ue      *UsageError
		ie      *IntegrityError
		nf      *NotFoundError
		re      *RefusedError
		ce      *client.ConnError
		changed *keys.ChangedCertError
		pin     *client.PinRefusedError
		perm    *keys.PermissionError
		ae      *api.Error
	)
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &ue):
		return ExitUsage, "run `a0cli help` for usage"
	case errors.As(err, &changed), errors.As(err, &perm), errors.As(err, &pin):
		return ExitAuth, ""
	case errors.Is(err, keys.ErrNoKey):
		return ExitAuth, ""
	case errors.As(err, &ce):
		return ExitConn, ""
	case errors.As(err, &ie), errors.Is(err, crypt.ErrWrongPassword), errors.Is(err, crypt.ErrWrongKey), errors.Is(err, crypt.ErrCorrupt),
		errors.Is(err, crypt.ErrNotA0), errors.Is(err, crypt.ErrUnsupported),
		errors.Is(err, archive.ErrUnsafe), errors.Is(err, restore.ErrInvalidArchive):
		return ExitIntegrity, ""
	case errors.As(err, &nf):
		return ExitNotFound, ""
	case errors.As(err, &re):
		return ExitRefused, ""
	case errors.As(err, new(*InterruptedError)):
		return ExitInterrupted, ""
	case errors.Is(err, context.Canceled):
		return ExitFailure, ""
	case errors.As(err, &ae):
		switch ae.Code {
		case api.CodeUnauthorized:
			return ExitAuth, "this CLI key is not authorized on the node: on the node run\n  a0agent authorize --state-dir DIR NAME \"$(a0cli show-key)\"\n(with the output of `a0cli show-key` from this workstation)"
		case api.CodeNotBackupRole, api.CodeBackupExists, api.CodeJobRunning, api.CodeInsufficientSpace,
			api.CodeDeviceExists, api.CodeDeviceInvalid, api.CodeNonEmptyTarget, api.CodeUnsupported:
			return ExitRefused, ""
		case api.CodeNotFound:
			return ExitNotFound, ""
		case api.CodeWrongPassword, api.CodeIntegrity:
			return ExitIntegrity, ""
		case api.CodeBadRequest, api.CodeTooLarge:
			return ExitUsage, ""
		}
	}
	return ExitFailure, ""
}

// codeForJobError maps the code a job record carries to an exit code.
func codeForJobError(code string, msg string) error {
	if code == "" {
		code = string(api.CodeInternal)
	}
	return &api.Error{Code: api.Code(code), Message: msg}
}
