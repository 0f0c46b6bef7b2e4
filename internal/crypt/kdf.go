package crypt

import (
	"fmt"
	"sync"
)

// The password KDF's parameters: what a0 writes and the range it accepts
// when reading. Both writers (NewWriter's header, NewSealedWriter's
// password stanza) choose parameters with writerKDF, and both readers (a
// version 1 header, a version 2 password stanza) check them with readKDF,
// so the limits below are applied in exactly these two functions.
const (
	DefaultArgon2Time      = 3
	DefaultArgon2MemoryKiB = 64 * 1024
	DefaultArgon2Threads   = 4
	// MinPBKDF2Iterations is the writer's floor (OWASP 2023 for PBKDF2-SHA256).
	MinPBKDF2Iterations = 600_000

	// a0 writes only the defaults above; the reader accepts them with a
	// margin (a future default may be stronger) and no more, so that a
	// hostile header cannot make verify spend gigabytes or minutes, which
	// argon2 gives no way to cancel.
	maxArgon2Time       = 2 * DefaultArgon2Time
	maxArgon2MemoryKiB  = 4 * DefaultArgon2MemoryKiB // 256 MiB
	maxArgon2Threads    = 4 * DefaultArgon2Threads
	maxPBKDF2Iterations = 10_000_000
)

// writerKDF returns the KDF and parameters a writer uses for o: argon2id
// with its defaults unless o asks for PBKDF2, whose iteration count must be
// at least MinPBKDF2Iterations (ErrWeakKDF) and no more than a reader
// accepts (a file no reader would open is refused before it is written).
func writerKDF(o *WriterOptions) (HeaderInfo, error) {
	h := HeaderInfo{KDF: o.KDF}
	if h.KDF == 0 {
		h.KDF = KDFArgon2id
	}
	switch h.KDF {
	case KDFArgon2id:
		h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads = DefaultArgon2Time, DefaultArgon2MemoryKiB, DefaultArgon2Threads
	case KDFPBKDF2SHA256:
		h.PBKDF2Iterations = o.PBKDF2Iterations
		if h.PBKDF2Iterations == 0 {
			h.PBKDF2Iterations = MinPBKDF2Iterations
		}
		if h.PBKDF2Iterations < MinPBKDF2Iterations {
			return h, fmt.Errorf("%w: pbkdf2 iterations %d < %d", ErrWeakKDF, h.PBKDF2Iterations, MinPBKDF2Iterations)
		}
		if h.PBKDF2Iterations > maxPBKDF2Iterations {
			return h, fmt.Errorf("crypt: pbkdf2 iterations %d above the readers' limit %d", h.PBKDF2Iterations, maxPBKDF2Iterations)
		}
	default:
		return h, fmt.Errorf("%w: kdf %d", ErrUnsupported, uint8(h.KDF))
	}
	return h, nil
}

// readKDF range-checks the three parameters a file gives for kdf (a
// version 1 header's, or a version 2 password stanza's) and returns them as
// HeaderInfo's KDF fields. Anything outside the accepted range is
// ErrUnsupported: a well-formed file this reader will not spend on.
func readKDF(kdf KDF, p1, p2, p3 uint32) (HeaderInfo, error) {
	h := HeaderInfo{KDF: kdf}
	switch kdf {
	case KDFArgon2id:
		// argon2 panics below these minimums; the maximums bound time and memory.
		if p1 < 1 || p1 > maxArgon2Time || p3 < 1 || p3 > maxArgon2Threads ||
			p2 < 8*p3 || p2 > maxArgon2MemoryKiB {
			return h, fmt.Errorf("%w: argon2id parameters t=%d m=%dKiB p=%d outside the accepted range", ErrUnsupported, p1, p2, p3)
		}
		h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads = p1, p2, uint8(p3)
	case KDFPBKDF2SHA256:
		if p1 < 1 || p1 > maxPBKDF2Iterations || p2 != 0 || p3 != 0 {
			return h, fmt.Errorf("%w: pbkdf2 parameters %d/%d/%d outside the accepted range", ErrUnsupported, p1, p2, p3)
		}
		h.PBKDF2Iterations = p1
	default:
		return h, fmt.Errorf("%w: kdf %d", ErrUnsupported, uint8(kdf))
	}
	return h, nil
}

// MaxKDFsAtOnce bounds the password KDFs running at once in the process
// (issue 25 point 11): an argon2id run holds 64 MiB (up to 256 MiB for a
// file a reader accepts), and parallel requests must not multiply that.
// Two lets a backup's writer and the one-KDF password check beside it
// (the agent's same-password warning) run side by side; more wait.
const MaxKDFsAtOnce = 2

// kdfGate is the process's one bound: a bound per caller would not bound
// the process.
var kdfGate = newGate(MaxKDFsAtOnce)

// KDFStats is what the KDF bound has seen since the process started.
type KDFStats struct {
	// Running is the KDFs running now, Peak the most that ever ran at
	// once (never above MaxKDFsAtOnce), Total how many ran.
	Running, Peak int
	Total         int64
}

// KDFCounts returns the KDF bound's counts: the agent's tests read them to
// show that parallel requests did not run parallel KDFs.
func KDFCounts() KDFStats {
	kdfGate.mu.Lock()
	defer kdfGate.mu.Unlock()
	return kdfGate.stats
}

type gate struct {
	slots chan struct{}
	mu    sync.Mutex
	stats KDFStats
}

func newGate(n int) *gate { return &gate{slots: make(chan struct{}, n)} }

// run runs f once a slot is free.
func (g *gate) run(f func()) {
	g.slots <- struct{}{}
	g.mu.Lock()
	g.stats.Running++
	g.stats.Total++
	g.stats.Peak = max(g.stats.Peak, g.stats.Running)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.stats.Running--
		g.mu.Unlock()
		<-g.slots
	}()
	f()
}

// boundedMaster is deriveMaster under the process's KDF bound: every KDF
// a0 runs (writers, readers, version 2 password stanzas) goes through it.
func boundedMaster(password []byte, h *HeaderInfo, salt []byte) (mk []byte, err error) {
	kdfGate.run(func() { mk, err = deriveMaster(password, h, salt) })
	return mk, err
}
