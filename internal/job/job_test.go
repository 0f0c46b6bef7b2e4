package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestOneJobAtATime(t *testing.T) {
	r, _, err := NewRunner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	ctx := context.Background()
	var wins atomic.Int32
	var busy atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Start(ctx, "backup", func(ctx context.Context, j *Job) (any, error) {
				<-release
				return nil, nil
			})
			var be *BusyError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &be):
				busy.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || busy.Load() != 9 {
		t.Fatalf("wins %d busy %d", wins.Load(), busy.Load())
	}
	if k, _, _ := r.Running(); k != "backup" {
		t.Fatalf("running %q", k)
	}
	close(release)
	r.Wait(ctx)
	rec, _ := r.Last("backup")
	if rec.State != StateDone {
		t.Fatalf("record %+v", rec)
	}
}

func TestInterruptedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := NewRunner(dir)
	block := make(chan struct{})
	r.Start(context.Background(), "restore", func(ctx context.Context, j *Job) (any, error) {
		<-block
		return nil, nil
	})
	// A second runner on the same dir is what the next process sees.
	_, interrupted, err := NewRunner(dir)
	if err != nil || len(interrupted) != 1 || interrupted[0] != "restore" {
		t.Fatalf("interrupted %v %v", interrupted, err)
	}
	r2, _, _ := NewRunner(dir)
	rec, _ := r2.Last("restore")
	if rec.State != StateFailed || rec.Error != ErrInterrupted.Error() {
		t.Fatalf("record %+v", rec)
	}
	close(block)
	r.Wait(context.Background())
}

func TestFailureRecorded(t *testing.T) {
	r, _, _ := NewRunner(t.TempDir())
	r.Start(context.Background(), "backup", func(ctx context.Context, j *Job) (any, error) {
		return nil, errors.New("disk full")
	})
	r.Wait(context.Background())
	rec, _ := r.Last("backup")
	if rec.State != StateFailed || rec.Error != "disk full" {
		t.Fatalf("record %+v", rec)
	}
}

// Cancel ends the running job through its context; the record says it was
// cancelled (error and code), not interrupted by a stop, and a job that
// names its own cancelled error is not wrapped twice.
func TestCancel(t *testing.T) {
	r, _, err := NewRunner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if kind := r.Cancel(); kind != "" {
		t.Fatalf("nothing runs, yet Cancel says %q", kind)
	}
	for _, tc := range []struct {
		name    string
		jobErr  func(ctx context.Context) error
		wantErr string
	}{
		{"plain context error", func(ctx context.Context) error { return ctx.Err() }, "cancelled by an operator: context canceled"},
		{"the job's own", func(ctx context.Context) error {
			return fmt.Errorf("restore stopped part way: %w", context.Cause(ctx))
		}, "restore stopped part way: cancelled by an operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			if err := r.Start(context.Background(), "restore", func(ctx context.Context, j *Job) (any, error) {
				close(started)
				<-ctx.Done()
				return map[string]int{"written": 3}, tc.jobErr(ctx)
			}); err != nil {
				t.Fatal(err)
			}
			<-started
			if kind := r.Cancel(); kind != "restore" {
				t.Fatalf("Cancel: %q", kind)
			}
			if err := r.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec, err := r.Last("restore")
			if err != nil {
				t.Fatal(err)
			}
			var res map[string]int
			json.Unmarshal(rec.Result, &res)
			if rec.State != StateFailed || rec.Code != CodeCancelled || rec.Error != tc.wantErr || res["written"] != 3 {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}
