package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// States of a job record.
const (
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// ErrInterrupted is the error recorded for a job the agent did not finish
// because it stopped.
var ErrInterrupted = errors.New("interrupted: the agent stopped while the job ran")

// ErrCancelled is the cause of a job an operator cancelled (Runner.Cancel):
// its record's error starts with it and its code is CodeCancelled, unless
// the job named its own code for it.
var ErrCancelled error = cancelledError{}

// CodeCancelled is the record's code of a cancelled job (api.CodeCancelled).
const CodeCancelled = "cancelled"

type cancelledError struct{}

func (cancelledError) Error() string     { return "cancelled by an operator" }
func (cancelledError) ErrorCode() string { return CodeCancelled }

// BusyError is returned when another job is running.
type BusyError struct{ Running string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("a %s job is already running on this node; wait for it to finish", e.Running)
}

// Record is the persisted state of the last job of a kind.
type Record struct {
	Kind     string     `json:"kind"`
	State    string     `json:"state"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Code is the error's kind when the error carries one (ErrorCode).
	Code     string          `json:"code,omitempty"`
	Progress any             `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
}

// coder is an error that names its kind; the record keeps the name so that
// a client following the job can map it to an exit code.
type coder interface{ ErrorCode() string }

// Func is the work of a job. progress is called by the runner to snapshot
// progress; the job sets it with SetProgress.
type Func func(ctx context.Context, j *Job) (result any, err error)

// Job is a running job, handed to its Func.
type Job struct {
	kind     string
	mu       sync.Mutex
	progress func() any
}

// SetProgress installs the function that reports the job's progress.
func (j *Job) SetProgress(f func() any) {
	j.mu.Lock()
	j.progress = f
	j.mu.Unlock()
}

// Runner runs at most one job at a time and keeps the records.
type Runner struct {
	dir string

	mu      sync.Mutex
	current *Job
	started time.Time
	cancel  context.CancelCauseFunc
	done    chan struct{}
	wg      sync.WaitGroup
	// onEnd, when set, hears of every job's end (OnEnd).
	onEnd func(Record)
}

// OnEnd sets f to be called with the record of every job that ends (done
// or failed), after the record is saved and the runner is idle again. f
// must not block: the agent's webhook queues the event and returns.
func (r *Runner) OnEnd(f func(Record)) {
	r.mu.Lock()
	r.onEnd = f
	r.mu.Unlock()
}

// NewRunner opens the records in dir. Records left "running" by a previous
// process are turned into failures (ErrInterrupted); their kinds are
// returned so the caller can clean what those jobs left behind.
func NewRunner(dir string) (*Runner, []string, error) {
	r := &Runner{dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read job records: %w", err)
	}
	var interrupted []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		kind := e.Name()[:len(e.Name())-len(".json")]
		rec, err := r.Last(kind)
		if err != nil || rec == nil || rec.State != StateRunning {
			continue
		}
		now := time.Now().UTC()
		rec.State, rec.Error, rec.Finished = StateFailed, ErrInterrupted.Error(), &now
		if err := r.save(rec); err != nil {
			return nil, nil, err
		}
		interrupted = append(interrupted, kind)
	}
	return r, interrupted, nil
}

// Start runs fn as a job of the given kind in the background, or returns a
// *BusyError. ctx bounds the job's lifetime (the agent's).
func (r *Runner) Start(ctx context.Context, kind string, fn Func) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil {
		return &BusyError{Running: r.current.kind}
	}
	j := &Job{kind: kind}
	rec := &Record{Kind: kind, State: StateRunning, Started: time.Now().UTC()}
	if err := r.save(rec); err != nil {
		return err
	}
	jctx, cancel := context.WithCancelCause(ctx)
	r.current, r.started, r.cancel, r.done = j, rec.Started, cancel, make(chan struct{})
	r.wg.Add(1)
	go r.run(jctx, j, rec, fn)
	return nil
}

func (r *Runner) run(ctx context.Context, j *Job, rec *Record, fn Func) {
	defer r.wg.Done()
	result, err := fn(ctx, j)
	now := time.Now().UTC()
	rec.Finished = &now
	rec.Progress = j.snapshot()
	switch {
	case err == nil || ctx.Err() == nil:
	case errors.Is(context.Cause(ctx), ErrCancelled):
		// An operator cancelled it (Cancel): the record says so, whatever
		// the job made of its context's end.
		if !errors.Is(err, ErrCancelled) {
			err = fmt.Errorf("%w: %w", ErrCancelled, err)
		}
	default:
		// Shutdown (the agent stopping): say so, as the next start says
		// of a job a crash cut short.
		err = fmt.Errorf("%w (%w)", ErrInterrupted, err)
	}
	if err != nil {
		rec.State, rec.Error = StateFailed, err.Error()
		var c coder
		if errors.As(err, &c) {
			rec.Code = c.ErrorCode()
		}
	} else {
		rec.State = StateDone
	}
	if result != nil {
		if b, merr := json.Marshal(result); merr == nil {
			rec.Result = b
		}
	}
	saveErr := r.save(rec)
	r.mu.Lock()
	close(r.done)
	r.current, r.cancel = nil, nil
	onEnd := r.onEnd
	r.mu.Unlock()
	_ = saveErr // the record on disk is best effort; the in-memory state is now idle
	if onEnd != nil {
		onEnd(*rec)
	}
}

func (j *Job) snapshot() any {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.progress == nil {
		return nil
	}
	return j.progress()
}

// Running returns the kind of the running job and its live progress, or "".
func (r *Runner) Running() (kind string, started time.Time, progress any) {
	r.mu.Lock()
	j, started := r.current, r.started
	r.mu.Unlock()
	if j == nil {
		return "", time.Time{}, nil
	}
	return j.kind, started, j.snapshot()
}

// Current returns the kind and start of the running job, or "", without
// its progress (the agent's log asks at every record).
func (r *Runner) Current() (kind string, started time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return "", time.Time{}
	}
	return r.current.kind, r.started
}

// Wait blocks until no job runs or ctx ends.
func (r *Runner) Wait(ctx context.Context) error {
	r.mu.Lock()
	done := r.done
	cur := r.current
	r.mu.Unlock()
	if cur == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel cancels the running job with the cause ErrCancelled and returns
// its kind ("" when none runs); Wait then waits for it to record its end.
// The job sees its context end: what it leaves is its own to clean.
func (r *Runner) Cancel() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return ""
	}
	r.cancel(ErrCancelled)
	return r.current.kind
}

// Shutdown cancels the running job and waits for it to record its end.
func (r *Runner) Shutdown() {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel(nil)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Last returns the record of the last job of a kind, or nil.
func (r *Runner) Last(kind string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, kind+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("read job record: %w", err)
	}
	return &rec, nil
}

// Forget removes the record of a kind (after the operator deleted what it made).
func (r *Runner) Forget(kind string) error {
	err := os.Remove(filepath.Join(r.dir, kind+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (r *Runner) save(rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("save job record: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(r.dir, rec.Kind+".json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save job record: %w", err)
	}
	return nil
}
