package job

import (
	"context"
	"errors"
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
