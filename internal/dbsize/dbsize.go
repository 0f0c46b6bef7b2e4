package dbsize

import (
	"context"
	"sync"
	"time"
)

// Period is how old a value may be before a request starts a new read.
const Period = 30 * time.Second

// readTimeout bounds one read, however long it is waited for.
const readTimeout = 2 * time.Minute

// ReadFunc measures the database's data size.
type ReadFunc func(ctx context.Context) (int64, error)

// Reading is what the cache holds: the last good value and when it was
// read, and how the last read ended.
type Reading struct {
	// Bytes is the last good value; meaningful when At is set.
	Bytes int64
	// At is when Bytes was read (zero: never read yet).
	At time.Time
	// Err is the last read's error when it failed (Bytes keeps the last
	// good value).
	Err error
	// Reading says a read is running now.
	Reading bool
}

// Age is how old the value is (zero when never read).
func (r Reading) Age(now time.Time) time.Duration {
	if r.At.IsZero() {
		return 0
	}
	return now.Sub(r.At)
}

// Cache holds the database size, read in the background.
type Cache struct {
	ctx    context.Context
	read   ReadFunc
	period time.Duration

	mu        sync.Mutex
	last      Reading
	running   chan struct{} // closed when the running read ends; nil when none runs
	lastStart time.Time
	reads     int
	onRead    func(took time.Duration, err error)
}

// New returns a cache that reads with read, under ctx (the agent's: a
// read stops when the agent does), starting a new read when the value is
// older than period (0: Period). onRead, when set, is told how each read
// ended, so that the caller can log a failure or a slow read.
func New(ctx context.Context, read ReadFunc, period time.Duration, onRead func(took time.Duration, err error)) *Cache {
	if period <= 0 {
		period = Period
	}
	return &Cache{ctx: ctx, read: read, period: period, onRead: onRead}
}

// Period is the cache's refresh period.
func (c *Cache) Period() time.Duration { return c.period }

// Refresh starts a read unless one runs or the last started less than the
// period ago.
func (c *Cache) Refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
}

func (c *Cache) refreshLocked() {
	if c.running != nil || (!c.lastStart.IsZero() && time.Since(c.lastStart) < c.period) {
		return
	}
	c.running = make(chan struct{})
	c.lastStart = time.Now()
	c.reads++
	go c.do(c.running)
}

// Get returns the cached reading, starting a read when one is due. It
// waits at most wait (or until ctx ends) for a running read when nothing
// was read yet, and never when a value is there: a request is answered
// from the cache.
func (c *Cache) Get(ctx context.Context, wait time.Duration) Reading {
	c.mu.Lock()
	c.refreshLocked()
	running, never := c.running, c.last.At.IsZero()
	c.mu.Unlock()
	if running != nil && never && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-running:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.last
	r.Reading = c.running != nil
	return r
}

// Reads counts the reads started (tests).
func (c *Cache) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func (c *Cache) do(done chan struct{}) {
	ctx, cancel := context.WithTimeout(c.ctx, readTimeout)
	defer cancel()
	start := time.Now()
	size, err := c.read(ctx)
	took := time.Since(start)
	c.mu.Lock()
	if err == nil {
		c.last.Bytes, c.last.At, c.last.Err = size, time.Now(), nil
	} else {
		c.last.Err = err
	}
	c.running = nil
	c.mu.Unlock()
	close(done)
	if c.onRead != nil && c.ctx.Err() == nil {
		c.onRead(took, err)
	}
}
