package ops

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/store"
)

// OplogDirName is the archive's folder in the device's backup folder:
// <device>/backup/oplog.
const OplogDirName = "oplog"

// OplogDir is the continuous archive's directory on device.
func OplogDir(device string) string { return filepath.Join(device, store.FolderName, OplogDirName) }

// Archive is the service that runs the continuous oplog archive (package
// pitr) on the node's backup device, beside the jobs: a backup, a restore
// or a copy never stops it and the one-job rule does not apply to it (it
// writes only under OplogDir and reads only the oplog). SetDevice starts
// it on a device, moves it when the device changes and stops it when there
// is none; Close stops it for good.
type Archive struct {
	// SliceLength is the slices' length (pitr.Config.SliceLength).
	SliceLength time.Duration
	Recipients  []age.Recipient
	// Source opens the oplog source for one run, and what closes it.
	Source        func(ctx context.Context) (pitr.Source, func(), error)
	Node, ReplSet string
	OnSlice       func(pitr.Slice)
	OnGap         func(pitr.Gap)
	// Retry is the archiver's pause after a failure (0: its default).
	Retry time.Duration
	Log   *slog.Logger

	mu     sync.Mutex
	run    *archiveRun
	closed bool
}

type archiveRun struct {
	device string
	a      *pitr.Archiver
	cancel context.CancelFunc
	done   chan struct{}
}

// ArchiveState is what pitr-status and the metrics read.
type ArchiveState struct {
	// Device is where the archive runs ("" when it does not).
	Device string
	Dir    string
	pitr.Status
}

// SetDevice runs the archive on device ("" stops it). ctx is the agent's
// lifetime.
func (s *Archive) SetDevice(ctx context.Context, device string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.run != nil && s.run.device == device {
		return nil
	}
	s.stopLocked()
	if device == "" {
		return nil
	}
	dir := OplogDir(device)
	rctx, cancel := context.WithCancel(ctx)
	src, release, err := s.Source(rctx)
	if err != nil {
		cancel()
		return err
	}
	a, err := pitr.New(pitr.Config{Source: src, Dir: dir, Recipients: s.Recipients, SliceLength: s.SliceLength,
		Node: s.Node, ReplSet: s.ReplSet, Retry: s.Retry, Logger: s.Log, OnSlice: s.OnSlice, OnGap: s.OnGap})
	if err != nil {
		cancel()
		release()
		return err
	}
	run := &archiveRun{device: device, a: a, cancel: cancel, done: make(chan struct{})}
	s.run = run
	s.Log.Info("pitr: archiving the oplog", "dir", dir, "slice", s.SliceLength)
	go func() {
		defer close(run.done)
		defer release()
		if err := a.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			s.Log.Error("pitr: the oplog archive stopped", "dir", dir, "err", err)
		}
	}()
	return nil
}

func (s *Archive) stopLocked() {
	if s.run == nil {
		return
	}
	s.run.cancel()
	<-s.run.done
	s.run = nil
}

// Close stops the archive and waits for it.
func (s *Archive) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	s.closed = true
}

// State is the archive's state now.
func (s *Archive) State() ArchiveState {
	s.mu.Lock()
	run := s.run
	s.mu.Unlock()
	if run == nil {
		return ArchiveState{}
	}
	return ArchiveState{Device: run.device, Dir: OplogDir(run.device), Status: run.a.Status()}
}
