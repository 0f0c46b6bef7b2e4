package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
)

// Every kind of ops failure has its API code, and the funnel keeps the
// message and details of the failure however deep it is wrapped.
func TestFunnel(t *testing.T) {
	for k := ops.Invalid; k <= ops.Remote; k++ {
		if _, ok := kindCodes[k]; !ok {
			t.Errorf("ops kind %d has no API code", k)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		code api.Code
		msg  string
	}{
		{"ops error", &ops.Error{Kind: ops.WrongKey, Msg: "wrong password for this backup"}, api.CodeWrongPassword, "wrong password for this backup"},
		{"wrapped", fmt.Errorf("ctx: %w", &ops.Error{Kind: ops.NonEmptyTarget, Msg: "m", Details: map[string]any{"namespaces": []string{"a.b"}}}), api.CodeNonEmptyTarget, "m"},
		{"api error", api.Errorf(api.CodeTooLarge, "big"), api.CodeTooLarge, "big"},
		{"busy", &job.BusyError{Running: "restore"}, api.CodeJobRunning, (&job.BusyError{Running: "restore"}).Error()},
		{"internal", errors.New("x"), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ae := toAPIError(tc.err)
			if tc.code == "" {
				if ae != nil {
					t.Fatalf("%v: %+v, want an internal error", tc.err, ae)
				}
				return
			}
			if ae == nil || ae.Code != tc.code || ae.Message != tc.msg {
				t.Fatalf("%v: %+v, want %s %q", tc.err, ae, tc.code, tc.msg)
			}
		})
	}
	// A job's record keeps the whole message and the code.
	err := jobError(fmt.Errorf("stopped: %w", &ops.Error{Kind: ops.Integrity, Msg: "refused"}))
	var c interface{ ErrorCode() string }
	if !errors.As(err, &c) || c.ErrorCode() != string(api.CodeIntegrity) || err.Error() != "stopped: refused" {
		t.Fatalf("job error %v", err)
	}
	if jobError(nil) != nil {
		t.Fatal("no error became one")
	}
}

// A cancelled job's record code is the API's (issue 28.1): the job
// runner's own, and the code of an ops job that says what it left.
func TestCancelledCode(t *testing.T) {
	if string(api.CodeCancelled) != job.CodeCancelled {
		t.Fatalf("api.CodeCancelled %q, job.CodeCancelled %q", api.CodeCancelled, job.CodeCancelled)
	}
	if kindCodes[ops.Cancelled] != api.CodeCancelled {
		t.Fatalf("ops.Cancelled maps to %q", kindCodes[ops.Cancelled])
	}
	err := jobError(&ops.Error{Kind: ops.Cancelled, Msg: "cancelled by an operator: left nothing", Err: job.ErrCancelled})
	if codeOf(err) != api.CodeCancelled || !errors.Is(err, job.ErrCancelled) {
		t.Fatalf("code %q, is ErrCancelled %v", codeOf(err), errors.Is(err, job.ErrCancelled))
	}
}
