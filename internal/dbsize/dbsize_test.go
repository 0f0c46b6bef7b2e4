package dbsize

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A request is answered from the cache while a read is held: Get never
// waits for a read when a value is there, and waits at most its bound when
// none is.
func TestGetNeverWaitsOnAHeldRead(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var size int64 = 100
	c := New(context.Background(), func(ctx context.Context) (int64, error) {
		started <- struct{}{}
		<-release
		size++
		return size, nil
	}, time.Nanosecond, nil)
	t.Cleanup(func() { close(release) })

	// Nothing read yet, the read held: Get gives up after its bound.
	r := c.Get(context.Background(), time.Millisecond)
	if !r.At.IsZero() || !r.Reading {
		t.Fatalf("held first read: got %+v, want nothing read and a read running", r)
	}
	<-started
	release <- struct{}{}
	for r = c.Get(context.Background(), time.Hour); r.At.IsZero(); r = c.Get(context.Background(), time.Hour) {
	}
	if r.Bytes != 101 {
		t.Fatalf("after the first read: %+v", r)
	}
	// A value is there and the next read is held: Get answers with the
	// value at once (a wait of an hour would hang the test otherwise).
	c.Refresh()
	<-started
	r = c.Get(context.Background(), time.Hour)
	if r.Bytes != 101 || !r.Reading {
		t.Fatalf("held second read: got %+v, want the first value and a read running", r)
	}
	if n := c.Reads(); n != 2 {
		t.Fatalf("reads started: %d, want 2 (one at a time)", n)
	}
}

// A failed read keeps the last good value and says why.
func TestFailedReadKeepsValue(t *testing.T) {
	fail := errors.New("dbStats failed")
	calls := 0
	var mu sync.Mutex
	var told []error
	c := New(context.Background(), func(ctx context.Context) (int64, error) {
		calls++
		if calls == 1 {
			return 42, nil
		}
		return 0, fail
	}, time.Nanosecond, func(_ time.Duration, err error) { mu.Lock(); told = append(told, err); mu.Unlock() })
	r := c.Get(context.Background(), time.Hour)
	if r.Bytes != 42 {
		t.Fatalf("first: %+v", r)
	}
	c.Refresh()
	for r = c.Get(context.Background(), 0); r.Err == nil; r = c.Get(context.Background(), 0) {
	}
	if r.Bytes != 42 || !errors.Is(r.Err, fail) {
		t.Fatalf("after a failed read: %+v, want 42 and the error", r)
	}
	// onRead is told after the reading is stored.
	for mu.Lock(); len(told) < 2; mu.Lock() {
		mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	defer mu.Unlock()
	if len(told) < 2 || told[0] != nil || !errors.Is(told[1], fail) {
		t.Fatalf("onRead told %v", told)
	}
}

// A value younger than the period starts no read.
func TestNoReadWithinPeriod(t *testing.T) {
	c := New(context.Background(), func(ctx context.Context) (int64, error) { return 7, nil }, time.Hour, nil)
	c.Get(context.Background(), time.Hour)
	for i := 0; i < 5; i++ {
		c.Get(context.Background(), 0)
	}
	if n := c.Reads(); n != 1 {
		t.Fatalf("reads: %d, want 1", n)
	}
}
