package archive

import (
	"io"
	"sync"
)

// readAhead reads r in its own goroutine into a few reused buffers, so that
// whatever r costs (decryption and authentication of the backup file) runs
// beside the gunzip that consumes it rather than in turn with it.
type readAhead struct {
	full   chan chunk // closed when fill returns
	free   chan []byte
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	cur    chunk
	off    int
	final  error
}

type chunk struct {
	b   []byte
	err error
}

const (
	readAheadBuffers = 4
	readAheadSize    = 1 << 20
)

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{
		full:   make(chan chunk, readAheadBuffers),
		free:   make(chan []byte, readAheadBuffers),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for range readAheadBuffers {
		ra.free <- make([]byte, readAheadSize)
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.exited)
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.full <- chunk{b: buf[:n], err: err}:
		case <-ra.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for ra.off == len(ra.cur.b) {
		if ra.final != nil {
			return 0, ra.final
		}
		if ra.cur.b != nil {
			ra.free <- ra.cur.b[:cap(ra.cur.b)]
		}
		c, ok := <-ra.full
		if !ok {
			ra.final = io.ErrClosedPipe
			return 0, ra.final
		}
		ra.cur, ra.off = c, 0
		if ra.cur.err != nil {
			// Deliver the bytes that came with the error first.
			ra.final = ra.cur.err
		}
	}
	n := copy(p, ra.cur.b[ra.off:])
	ra.off += n
	return n, nil
}

// Close stops the reading goroutine and waits for it, so that the caller
// may go on reading the underlying reader itself (the agent authenticates
// a backup to its last byte after the archive ends). It may be called more
// than once.
func (ra *readAhead) Close() error {
	ra.once.Do(func() { close(ra.done) })
	<-ra.exited
	return nil
}
