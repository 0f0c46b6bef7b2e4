package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/a0backup/a0/internal/atomicfile"
)

// Outcomes of a scheduled run.
const (
	OutcomeDone    = "done"    // the backup was stored (and verified)
	OutcomeFailed  = "failed"  // the backup failed; the error says why
	OutcomeSkipped = "skipped" // not started: a backup is stored without "replace", a job runs...
	OutcomeRunning = "running" // started, not ended (an agent stopped meanwhile)
)

// Run is one scheduled run, as node-status reports it.
type Run struct {
	// Due is when the run was due; Started when it was attempted.
	Due      time.Time  `json:"due"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Outcome  string     `json:"outcome"`
	// Reason says why a run was skipped or failed.
	Reason string `json:"reason,omitempty"`
	// Code is the error's kind (an API error code) when there is one.
	Code string `json:"code,omitempty"`
	// Name is the stored backup's name when the run stored one.
	Name string `json:"name,omitempty"`
	// Replaced is the name of the backup the run replaced.
	Replaced string `json:"replaced,omitempty"`
	// Missed counts the runs that fell due and did not start at their
	// time (the agent was down, or the previous run was going), this
	// one's own due time included: this one run made up for all of them.
	// 0: the run started on time. The log's missed= is the same count.
	Missed int `json:"missed,omitempty"`
}

// State is what the agent keeps between starts (schedule.json in the
// state dir).
type State struct {
	// Schedule is the String of the schedule the state belongs to; a new
	// schedule starts from the time it is first seen (Since).
	Schedule string    `json:"schedule"`
	Since    time.Time `json:"since"`
	LastRun  *Run      `json:"last_run,omitempty"`
}

// Base is the time the next run is counted from: the last run's start, or
// when the schedule was set up.
func (st State) Base() time.Time {
	if st.LastRun != nil && st.LastRun.Started.After(st.Since) {
		return st.LastRun.Started
	}
	return st.Since
}

// LoadState reads path; ErrNoSchedule when it does not exist. A damaged
// file is an error, not a silent reset (that would hide a missed run).
func LoadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, ErrNoSchedule
	}
	if err != nil {
		return st, fmt.Errorf("schedule state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("schedule state %s: %w (remove it to start the schedule afresh)", path, err)
	}
	return st, nil
}

// SaveState writes path durably (temp file, fsync, rename, fsync of the
// directory): a run recorded survives a crash right after.
func SaveState(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save schedule state: %w", err)
	}
	return nil
}

// Open loads the state of s from path, starting it afresh (Since: now)
// when there is none or it belongs to another schedule; the last run is
// kept either way, so node-status still shows it.
func Open(path string, s *Schedule, now time.Time) (State, error) {
	st, err := LoadState(path)
	if err != nil && !errors.Is(err, ErrNoSchedule) {
		return st, err
	}
	if err != nil || st.Schedule != s.String() || st.Since.IsZero() {
		st.Schedule, st.Since = s.String(), now.UTC()
		if err := SaveState(path, st); err != nil {
			return st, err
		}
	}
	return st, nil
}
