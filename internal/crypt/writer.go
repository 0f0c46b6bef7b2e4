package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// WriterOptions select the KDF and codec. The zero value (or nil) means
// argon2id with its defaults and CodecTarGzip.
type WriterOptions struct {
	KDF KDF
	// PBKDF2Iterations applies to KDFPBKDF2SHA256; 0 means MinPBKDF2Iterations,
	// fewer is refused with ErrWeakKDF.
	PBKDF2Iterations uint32
	Codec            Codec

	// chunkExp overrides the chunk size in tests (small chunks keep fuzz
	// seeds small); 0 means 1 MiB.
	chunkExp uint8
}

var errClosed = errors.New("crypt: write to a closed writer")

type writer struct {
	w         io.Writer
	stream    cipher.Stream
	mac       hash.Hash
	buf       []byte // chunk plaintext, encrypted in place, then its tag
	n         int    // plaintext bytes buffered
	chunkSize int
	index     uint64
	macIn     [9]byte
	closed    bool
	err       error

	// What ReadBack needs to read the file again without a second key
	// derivation.
	hdr    HeaderInfo
	rawHdr [headerSize]byte
	keys   *keys
	v2     *v2Header // a version 2 file's header, nil for version 1
}

// NewWriter writes the header to w and returns a writer that encrypts and
// authenticates everything written to it. Close writes the final record and
// must be called; it does not close w. The password is not retained.
func NewWriter(w io.Writer, password []byte, opts *WriterOptions) (io.WriteCloser, error) {
	if len(password) == 0 {
		return nil, ErrEmptyPassword
	}
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	h, err := writerKDF(&o)
	if err != nil {
		return nil, err
	}
	h.Version, h.Codec = version1, o.Codec
	if h.Codec == 0 {
		h.Codec = CodecTarGzip
	}
	exp := o.chunkExp
	if exp == 0 {
		exp = defaultChunkExp
	}
	if exp < minChunkExp || exp > maxChunkExp {
		return nil, fmt.Errorf("crypt: chunk size exponent %d outside [%d, %d]", exp, minChunkExp, maxChunkExp)
	}
	h.ChunkSize = 1 << exp

	var hdr [headerSize]byte
	copy(hdr[:], magic[:])
	hdr[offVersion] = version1
	hdr[offChunkExp] = exp
	hdr[offCodec] = byte(h.Codec)
	encodeParams(hdr[:], &h)
	if _, err := rand.Read(hdr[offSalt:offIV]); err != nil {
		return nil, fmt.Errorf("crypt: salt: %w", err)
	}
	if _, err := rand.Read(hdr[offIV:offCheck]); err != nil {
		return nil, fmt.Errorf("crypt: iv: %w", err)
	}
	k, err := deriveKeys(password, &h, hdr[offSalt:offIV])
	if err != nil {
		return nil, err
	}
	copy(hdr[offCheck:offMAC], k.check[:])
	mac := hmac.New(sha256.New, k.mac)
	mac.Write(hdr[:offMAC])
	mac.Sum(hdr[offMAC:offMAC])
	sum := headerSum(hdr[:])
	copy(hdr[offSum:], sum[:])

	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("crypt: write header: %w", err)
	}
	return &writer{
		w:         w,
		stream:    cipher.NewCTR(block, hdr[offIV:offCheck]),
		mac:       mac,
		buf:       make([]byte, h.ChunkSize+tagSize),
		chunkSize: h.ChunkSize,
		hdr:       h,
		rawHdr:    hdr,
		keys:      k,
	}, nil
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	written := 0
	for len(p) > 0 {
		// A full chunk is held back until more data shows it is not the last.
		if w.n == w.chunkSize {
			if err := w.flush(false); err != nil {
				return written, err
			}
		}
		c := copy(w.buf[w.n:w.chunkSize], p)
		w.n += c
		written += c
		p = p[c:]
	}
	return written, nil
}

// Close writes the final record (an empty one if nothing was written).
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	return w.flush(true)
}

func (w *writer) flush(final bool) error {
	c := w.buf[:w.n]
	w.stream.XORKeyStream(c, c)
	recordTag(w.mac, &w.macIn, w.index, final, c, w.buf[w.n:w.n])
	if _, err := w.w.Write(w.buf[:w.n+tagSize]); err != nil {
		w.err = fmt.Errorf("crypt: write record %d: %w", w.index, err)
		return w.err
	}
	w.index++
	w.n = 0
	return nil
}

// recordTag appends HMAC(Kmac, u64be(index) || final || c) to dst.
func recordTag(mac hash.Hash, in *[9]byte, index uint64, final bool, c, dst []byte) []byte {
	mac.Reset()
	binary.BigEndian.PutUint64(in[:8], index)
	in[8] = 0
	if final {
		in[8] = 1
	}
	mac.Write(in[:])
	mac.Write(c)
	return mac.Sum(dst)
}
