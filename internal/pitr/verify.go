package pitr

import (
	"context"
	"runtime"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// verifyReaders is how many slices Verify reads at once: one per core the
// process may use, at most maxVerifyReaders, no more than there are
// slices. Each holds one slice's decompressor and buffers: a few MiB for
// the slices a0 writes, tens at most for a hostile one (the bounds of
// format.go), so Verify's memory is bounded whatever the archive's size.
func verifyReaders(slices int) int {
	return max(1, min(runtime.GOMAXPROCS(0), maxVerifyReaders, slices))
}

// maxVerifyReaders caps verifyReaders on a machine with many cores: a
// reader decompresses about 50 MB/s of slice files on one core (entries
// compress about 16:1), so 8 keep up with most disks.
const maxVerifyReaders = 8

// sliceRead is what reading one slice gave.
type sliceRead struct {
	meta Meta
	sum  [32]byte
	err  error
}

// readInOrder reads every slice of a whole (readSlice, entries unused) on
// up to readers goroutines at once, and calls fn with each result in the
// slices' order, as a sequential read would meet them. It stops at the
// first error fn returns, and returns it once every reader has stopped.
// Slices after the one being handed to fn are read at most 2*readers
// ahead: the results waiting are bounded too.
func (a *Archive) readInOrder(ctx context.Context, readers int, fn func(i int, meta Meta, sum [32]byte, err error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		i   int
		out chan<- sliceRead
	}
	jobs := make(chan job)
	// order holds each slice's result channel in the slices' order; its
	// capacity is how far ahead of fn the reads may run.
	order := make(chan chan sliceRead, readers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		for i := range a.Slices {
			out := make(chan sliceRead, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{i: i, out: out}:
			case <-ctx.Done():
				// Handed to fn already: it gets what a read would have.
				out <- sliceRead{err: ctx.Err()}
				return
			}
		}
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := newReadState()
			if err == nil {
				defer st.close()
			}
			for j := range jobs {
				if err != nil {
					j.out <- sliceRead{err: err}
					continue
				}
				var r sliceRead
				r.meta, r.sum, r.err = a.readSliceWith(ctx, st, a.Slices[j.i], nopEntry)
				j.out <- r
			}
		}()
	}
	var err error
	i := 0
	for out := range order {
		r := <-out
		if err = fn(i, r.meta, r.sum, r.err); err != nil {
			break
		}
		i++
	}
	if err == nil && i < len(a.Slices) {
		// ctx ended before slice i was handed out: it gets what a read
		// would have.
		err = fn(i, Meta{}, [32]byte{}, ctx.Err())
	}
	cancel()
	wg.Wait()
	return err
}

func nopEntry(bson.Raw) error { return nil }
