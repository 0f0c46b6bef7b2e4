package crypt

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
)

// TestMain memoizes the KDF: every distinct (password, salt, parameters) still
// runs the real argon2id or PBKDF2 once, but re-reading the same file does
// not pay ~160 ms and 64 MiB again.
func TestMain(m *testing.M) {
	deriveMaster = memoize(deriveMasterKey)
	os.Exit(m.Run())
}

func memoize(f func([]byte, *HeaderInfo, []byte) ([]byte, error)) func([]byte, *HeaderInfo, []byte) ([]byte, error) {
	var mu sync.Mutex
	cache := map[string][]byte{}
	return func(pw []byte, h *HeaderInfo, salt []byte) ([]byte, error) {
		var key bytes.Buffer
		binary.Write(&key, binary.BigEndian, []uint32{uint32(h.KDF), h.Argon2Time, h.Argon2MemoryKiB, uint32(h.Argon2Threads), h.PBKDF2Iterations, uint32(len(pw))})
		key.Write(pw)
		key.Write(salt)
		mu.Lock()
		mk, ok := cache[key.String()]
		mu.Unlock()
		if ok {
			return bytes.Clone(mk), nil
		}
		mk, err := f(pw, h, salt)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		cache[key.String()] = bytes.Clone(mk)
		mu.Unlock()
		return mk, nil
	}
}

var testPassword = []byte("correct horse battery staple")

const chunk = 1 << defaultChunkExp

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func encrypt(t testing.TB, plain []byte, opts *WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testPassword, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	// Uneven write sizes exercise the chunk boundary logic.
	for i, p := 0, plain; len(p) > 0; i++ {
		n := min(len(p), []int{1, 4093, 300_000, chunk + 7}[i%4])
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// decrypt returns what the reader released and the error that stopped it.
func decrypt(enc, password []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(enc), password)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, r)
	return out.Bytes(), err
}
