package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
)

// SliceCopier copies the archive's slices to the remote store as they
// close (Copied after each), and gaps.json and owner.json (the replica
// set the slices come from, in clear text) when they change. A slice the
// store does not take waits on the device and goes at the next attempt
// (RetryWait, doubled up to a minute): none is ever dropped. At start it
// lists the store once and copies every local slice missing there (a
// restart, a store that was away); after that it knows what it put.
type SliceCopier struct {
	// Remote is the store's oplog folder (<prefix>/oplog/).
	Remote remote.Store
	// Dir is the archive's directory now ("" while none runs).
	Dir func() string
	// RetryWait is the first wait after a failure (0: 5s).
	RetryWait time.Duration
	Log       *slog.Logger

	mu      sync.Mutex
	remote  map[string]int64 // name -> size, what the store holds
	listed  bool
	records map[string][]byte // gaps.json and owner.json as last put
	pruned  map[string]bool   // slices Prune removed from the store
	pending int
	lastErr string
	wake    chan struct{}
	done    chan struct{}
}

// SliceCopyState is the copier's state for pitr-status.
type SliceCopyState struct {
	Location string
	// Pending is how many local slices the store lacks.
	Pending int
	Error   string
}

// Start runs the copier until ctx ends; Wait waits for it.
func (c *SliceCopier) Start(ctx context.Context) {
	c.wake = make(chan struct{}, 1)
	c.done = make(chan struct{})
	c.remote = map[string]int64{}
	go c.run(ctx)
}

// Wait waits for the copier to end (after its ctx ended).
func (c *SliceCopier) Wait() {
	if c.done != nil {
		<-c.done
	}
}

// Closed hears of a slice that is now durable: it goes at once.
func (c *SliceCopier) Closed(pitr.Slice) {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// State is the copier's state now.
func (c *SliceCopier) State() SliceCopyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return SliceCopyState{Location: c.Remote.Location(), Pending: c.pending, Error: c.lastErr}
}

// Holds reports whether the store holds slice s, as far as the copier
// knows (listed at its start or put since): a slice it does not hold yet
// must stay on the device (PruneSlices' keep), or the store's archive
// would lose it for good.
func (c *SliceCopier) Holds(s pitr.Slice) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pruned[s.Name] {
		return true // the store no longer needs it
	}
	size, ok := c.remote[s.Name]
	return ok && size == s.Size
}

// Forget drops names from what the copier knows the store holds (after a
// prune removed them there).
func (c *SliceCopier) Forget(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pruned == nil {
		c.pruned = map[string]bool{}
	}
	for _, n := range names {
		delete(c.remote, n)
		c.pruned[n] = true
	}
}

func (c *SliceCopier) run(ctx context.Context) {
	defer close(c.done)
	first := c.RetryWait
	if first <= 0 {
		first = 5 * time.Second
	}
	wait := first
	for {
		err := c.sync(ctx)
		c.mu.Lock()
		c.lastErr = ""
		if err != nil {
			c.lastErr = err.Error()
		}
		c.mu.Unlock()
		var timer <-chan time.Time
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.Log.Warn("pitr: copy of the oplog slices to the remote store failed: they wait on the device", "err", err, "retry", wait)
			timer = time.After(wait)
			wait = min(wait*2, time.Minute)
		} else {
			wait = first
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer:
		}
	}
}

// sync puts every local slice the store lacks, oldest first, then
// gaps.json and owner.json when they changed.
func (c *SliceCopier) sync(ctx context.Context) error {
	dir := c.Dir()
	if dir == "" {
		return nil
	}
	if !c.listed {
		objs, err := c.Remote.List(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", c.Remote.Location(), err)
		}
		c.mu.Lock()
		for _, o := range objs {
			c.remote[o.Name] = o.Size
		}
		c.mu.Unlock()
		c.listed = true
	}
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		return err
	}
	var todo []pitr.Slice
	c.mu.Lock()
	for _, s := range ar.Slices {
		if size, ok := c.remote[s.Name]; !ok || size != s.Size {
			todo = append(todo, s)
		}
	}
	c.pending = len(todo)
	c.mu.Unlock()
	for _, s := range todo {
		if err := c.put(ctx, s.Path, s.Name, s.Size); err != nil {
			return err
		}
		c.mu.Lock()
		c.remote[s.Name] = s.Size
		c.pending--
		c.mu.Unlock()
	}
	for _, name := range []string{pitr.GapsFile, pitr.OwnerFile} {
		if err := c.putRecord(ctx, dir, name); err != nil {
			return err
		}
	}
	return nil
}

// putRecord puts the archive's record name (gaps.json, owner.json) when
// it changed since the last put.
func (c *SliceCopier) putRecord(ctx context.Context, dir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.records != nil && bytes.Equal(b, c.records[name]) {
		return nil
	}
	if _, err := c.Remote.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	if c.records == nil {
		c.records = map[string][]byte{}
	}
	c.records[name] = b
	return nil
}

func (c *SliceCopier) put(ctx context.Context, path, name string, size int64) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // pruned meanwhile
	}
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := c.Remote.Put(ctx, name, f, size)
	if err != nil {
		return fmt.Errorf("copy slice %s: %w", name, err)
	}
	if res.Size != size {
		return fmt.Errorf("copy slice %s: %w: the store holds %d bytes for %d", name, remote.ErrMismatch, res.Size, size)
	}
	return nil
}

// Prune removes the store's slices that end before `before` (the oldest
// remote base's consistent_to), never its newest, and returns their names.
func (c *SliceCopier) Prune(ctx context.Context, before bson.Timestamp, dryRun bool) ([]string, error) {
	objs, err := c.Remote.List(ctx)
	if err != nil {
		return nil, err
	}
	type named struct {
		name        string
		first, last bson.Timestamp
	}
	var slices []named
	for _, o := range objs {
		if first, last, ok := pitr.ParseSliceName(o.Name); ok {
			slices = append(slices, named{o.Name, first, last})
		}
	}
	sort.Slice(slices, func(i, j int) bool { return slices[i].name < slices[j].name })
	var out []string
	for i, s := range slices {
		// As PruneSlices: never the newest, nor the last slice before a
		// base that lies between it and the next.
		if i == len(slices)-1 || !tsBefore(s.last, before) || tsBefore(before, slices[i+1].first) {
			break
		}
		if !dryRun {
			if err := c.Remote.Delete(ctx, s.name); err != nil {
				return out, fmt.Errorf("pitr: prune the remote slice %s: %w", s.name, err)
			}
		}
		out = append(out, s.name)
	}
	if !dryRun {
		c.Forget(out)
	}
	return out, nil
}
