package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/a0backup/a0/internal/bench/oplogsim"
)

// OplogServerArg is the subcommand `a0bench oplog-server`: a SIMULATED
// mongod oplog (oplogsim: no mongod runs here), a process of its own that
// answers over the MongoDB wire protocol what a replica-set member answers
// a0's archiver, from an in-memory oplog its generator fills at --rate
// entries/s. Benchmarks only.
const OplogServerArg = "oplog-server"

// OplogServerLabel names the simulation wherever its figures appear.
const OplogServerLabel = "simulated mongod oplog over the wire (a0bench oplog-server; no mongod runs here)"

// OplogServer is a running `a0bench oplog-server` child.
type OplogServer struct {
	URI    string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
	closed bool
	stats  oplogsim.Stats
}

// StartOplogServer starts exe (a0bench) as an oplog-server that generates
// rate entries/s for d (then serves what it holds until Close), holding
// at most entries entries, and waits until it listens.
func StartOplogServer(ctx context.Context, exe, dir string, rate int, d time.Duration, entries int) (*OplogServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("oplog-server: %w", err)
	}
	uriFile := filepath.Join(dir, "uri")
	os.Remove(uriFile)
	s := &OplogServer{done: make(chan error, 1)}
	s.cmd = exec.Command(exe, OplogServerArg, "--rate", strconv.Itoa(rate), "--for", d.String(),
		"--oplog-entries", strconv.Itoa(entries), "--uri-file", uriFile)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("oplog-server: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(uriFile); err == nil && len(b) > 0 {
			s.URI = strings.TrimSpace(string(b))
			return s, nil
		}
		select {
		case err := <-s.done:
			s.closed = true
			return nil, fmt.Errorf("oplog-server exited before it listened: %v: %s", err, s.stderr.String())
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, errors.New("oplog-server: no URI after a minute")
		}
	}
}

// Close stops the server (SIGTERM) and returns what it generated.
func (s *OplogServer) Close() (oplogsim.Stats, error) {
	if s.closed {
		return s.stats, nil
	}
	s.closed = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-s.done; err != nil {
		return s.stats, fmt.Errorf("oplog-server: %w: %s", err, s.stderr.String())
	}
	if err := json.Unmarshal(s.stdout.Bytes(), &s.stats); err != nil {
		return s.stats, fmt.Errorf("oplog-server: its stats: %w", err)
	}
	return s.stats, nil
}
