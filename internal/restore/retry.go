package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Transient server errors (issue 26). FerretDB v1.24.2 on SQLite answers a
// write whose transaction could not take its database file's one writer
// lock with InternalError (code 1) and modernc.org/sqlite's text for the
// result code SQLITE_BUSY: "... database is locked (5) (SQLITE_BUSY)".
// FerretDB sets busy_timeout(10000) (backends/sqlite/metadata/pool/uri.go),
// so SQLite's busy handler retries for 10 s first, and FerretDB itself never
// retries (backends/sqlite/sqlite.go). Why it runs out: on a server
// without the replay's _id lookup index (any external FerretDB, see
// Options.IndexIDLookups) every UPDATE ... WHERE _ferretdb_sjson->'$._id' = ?
// and DELETE ... WHERE ... IN (...) scans the whole table inside its write
// transaction (about a second at 100k documents, more on a loaded
// machine), and the replay sends replayParallel commands to the same
// database at once, each a run of such transactions back to back. SQLite's
// busy handler is not a queue: the waiter sleeps and polls, and the other
// connection takes the lock again right after each commit, so a waiter can
// lose for the whole 10 s. The replay therefore retries such an error
// (withRetry) and, once the server has said BUSY, sends one command at a
// time (replayer.parallel): the retry covers any other writer on the
// server, the lower parallelism removes the contention the replay itself
// makes.
//
// Only this error is retried: every other server error (a refused
// document, a bad namespace, a lost connection whose command may or may
// not have run) fails the restore as before.

// Retry bounds: at most retryAttempts sends of one command, never past
// retryMaxElapsed since its first send; the waits between double from
// retryFirstWait up to retryMaxWait.
const (
	retryAttempts   = 8
	retryMaxElapsed = 5 * time.Minute
	retryFirstWait  = 250 * time.Millisecond
	retryMaxWait    = 15 * time.Second
)

// codeInternalError is the code FerretDB gives every backend error it does
// not map (handlererrors.errInternalError).
const codeInternalError = 1

// ErrServerBusy wraps a transient server error that retries did not get
// past (the bounds above).
var ErrServerBusy = errors.New("server still busy after retries")

// isTransient says whether err is a transient server error: SQLITE_BUSY as
// FerretDB reports it, as the command's error or as a statement's write
// error.
func isTransient(err error) bool {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code == codeInternalError && isBusyMessage(ce.Message)
	}
	var se *statementError
	if errors.As(err, &se) {
		return se.Code == codeInternalError && isBusyMessage(se.Msg)
	}
	return false
}

// isBusyMessage matches modernc.org/sqlite's text for SQLITE_BUSY (the
// primary code, which is what FerretDB's transactions get: "database is
// locked (5) (SQLITE_BUSY)"; an extended BUSY_* code has the same text
// without the suffix).
func isBusyMessage(m string) bool {
	return strings.Contains(m, "(SQLITE_BUSY)") || strings.Contains(m, "database is locked")
}

// statementError is a write error the server reported for one statement
// of an insert, update or delete command (writeCmd).
type statementError struct {
	Cmd   string
	Index int
	Code  int
	Msg   string
}

func (e *statementError) Error() string {
	return fmt.Sprintf("%s statement %d: %s (code %d)", e.Cmd, e.Index, e.Msg, e.Code)
}

// retries counts and logs what withRetry retried, for one Run.
type retries struct {
	n   atomic.Int64
	log *slog.Logger
	// first and max are the waits (tests shorten them).
	first, max time.Duration
	// onTransient is called at each transient error, before the wait.
	onTransient func()
}

func newRetries(opts Options) *retries {
	r := &retries{log: opts.Logger, first: retryFirstWait, max: retryMaxWait}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.testRetryWait > 0 {
		r.first, r.max = opts.testRetryWait, opts.testRetryWait
	}
	return r
}

// withRetry runs send until it succeeds, fails with anything but a
// transient error, or the bounds are reached (then the error wraps
// ErrServerBusy and the last transient error). send must be safe to run
// again after a transient error: the callers say why theirs is. what names
// the command in the log and the error.
// A nil r (a runState made without Run, in tests) sends once.
func (r *retries) withRetry(ctx context.Context, what string, send func(ctx context.Context) error) error {
	if r == nil {
		return send(ctx)
	}
	start := time.Now()
	wait := r.first
	for attempt := 1; ; attempt++ {
		sent := time.Now()
		err := send(ctx)
		if err == nil || !isTransient(err) {
			return err
		}
		if attempt >= retryAttempts || time.Since(start)+wait > retryMaxElapsed {
			return fmt.Errorf("%s: %w (%d attempts in %s): %w", what, ErrServerBusy, attempt, time.Since(start).Round(time.Millisecond), err)
		}
		n := r.n.Add(1)
		// took tells a busy_timeout that ran out (FerretDB's 10 s) from
		// a lock SQLite refused at once.
		r.log.Warn("restore: transient server error, sending the command again", "command", what,
			"attempt", attempt, "took", time.Since(sent).Round(time.Millisecond), "wait", wait, "retries", n, "err", err)
		if r.onTransient != nil {
			r.onTransient()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (after %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
		wait = min(wait*2, r.max)
	}
}

// count is how many sends withRetry repeated so far.
func (r *retries) count() int64 {
	if r == nil {
		return 0
	}
	return r.n.Load()
}
