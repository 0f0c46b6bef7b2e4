package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Reader decrypts an a0 file, releasing each record's plaintext only after
// the record's tag has verified. Errors are sticky.
type Reader struct {
	r      io.Reader
	hdr    HeaderInfo
	rawHdr [headerSize]byte
	keys   *keys
	stream cipher.Stream // nil when only authenticating (Verify)
	v2     *v2Header     // the version 2 header, nil for version 1
	mac    hash.Hash

	buf       []byte // one record: ciphertext then tag
	tag       [tagSize]byte
	macIn     [9]byte
	peek      [1]byte
	hasPeek   bool
	plain     []byte // verified plaintext not yet returned
	index     uint64
	off       int64 // file offset of the next record
	total     int64 // plaintext bytes authenticated
	finalSeen bool
	pending   error // reported by the next call, after an authentic record
	err       error
}

// NewReader reads and checks the header and the password, so a wrong
// password (ErrWrongPassword), a foreign file (ErrNotA0), an unsupported one
// (ErrUnsupported) or a damaged header (*CorruptError) is reported before any
// plaintext exists. It reads exactly the header from r.
func NewReader(r io.Reader, password []byte) (*Reader, error) {
	rd, err := open(r, password)
	if err != nil {
		return nil, err
	}
	return rd, nil
}

func open(r io.Reader, password []byte) (*Reader, error) {
	return openAny(r, Unlock{Password: password})
}

// openAny reads the magic and version, then the rest of the header of that
// version, so it never reads past the header.
func openAny(r io.Reader, u Unlock) (*Reader, error) {
	var hdr [headerSize]byte
	n, err := io.ReadFull(r, hdr[:offVersion+1])
	if m := min(n, len(magic)); !bytes.Equal(hdr[:m], magic[:m]) {
		return nil, ErrNotA0
	}
	if n > offVersion && hdr[offVersion] == version2 {
		return openV2(r, hdr[:n], u)
	}
	if n > offVersion && hdr[offVersion] != version1 {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupported, hdr[offVersion])
	}
	if err == nil {
		var m int
		m, err = io.ReadFull(r, hdr[n:])
		n += m
	}
	if err != nil {
		return nil, headerReadError(n, err)
	}
	password := u.Password
	// The checksum tells an accidentally damaged header (including a damaged
	// salt or KDF parameter) from a wrong password; it is no defence against
	// tampering, which the header MAC covers.
	if sum := headerSum(hdr[:]); !bytes.Equal(sum[:], hdr[offSum:]) {
		return nil, &CorruptError{Offset: 0, Chunk: -1, Reason: "header checksum mismatch"}
	}
	h, err := parseHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	if len(password) == 0 {
		// Opened with identities or a file key: v1 has neither.
		return nil, fmt.Errorf("%w (a version 1 file opens with its password only)", ErrWrongPassword)
	}
	k, err := deriveKeys(password, &h, hdr[offSalt:offIV])
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.check[:], hdr[offCheck:offMAC]) != 1 {
		return nil, diagnoseMismatch(password, h, hdr, k)
	}
	return newReader(r, h, hdr, k)
}

// diagnoseMismatch tells a wrong password from a header altered after it
// was written, where that can be told: the header MAC was made with the
// right password's keys over the original header, so if it verifies once
// the header is put back as a0 wrote it, the password was right and the
// header was altered. Two alterations can be undone: a changed password
// check value (put the derived one back) and changed argon2id parameters (a0
// writes only its defaults: derive again with them; this costs a second
// derivation, on this failure path only). A changed salt or PBKDF2
// iteration count cannot be told from a wrong password: the key derived
// from it matches nothing in the file, whatever the password.
func diagnoseMismatch(password []byte, h HeaderInfo, hdr [headerSize]byte, k *keys) error {
	if headerMACOK(hdr, k) {
		return &CorruptError{Offset: offCheck, Chunk: -1, Reason: "password check value altered (the header is otherwise authentic)"}
	}
	if h.KDF == KDFArgon2id && (h.Argon2Time != DefaultArgon2Time || h.Argon2MemoryKiB != DefaultArgon2MemoryKiB || h.Argon2Threads != DefaultArgon2Threads) {
		d := h
		d.Argon2Time, d.Argon2MemoryKiB, d.Argon2Threads = DefaultArgon2Time, DefaultArgon2MemoryKiB, DefaultArgon2Threads
		orig := hdr
		encodeParams(orig[:], &d)
		dk, err := deriveKeys(password, &d, hdr[offSalt:offIV])
		if err == nil && subtle.ConstantTimeCompare(dk.check[:], orig[offCheck:offMAC]) == 1 && headerMACOK(orig, dk) {
			return &CorruptError{Offset: offParams, Chunk: -1, Reason: fmt.Sprintf(
				"argon2id parameters altered (t=%d m=%dKiB p=%d; the file was written with a0's defaults)", h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads)}
		}
	}
	return ErrWrongPassword
}

// headerMACOK reports whether hdr's MAC verifies under k once its password
// check value is the one k derives.
func headerMACOK(hdr [headerSize]byte, k *keys) bool {
	copy(hdr[offCheck:offMAC], k.check[:])
	mac := hmac.New(sha256.New, k.mac)
	mac.Write(hdr[:offMAC])
	return hmac.Equal(mac.Sum(nil), hdr[offMAC:offSum])
}

// newReader checks the header MAC with k and returns a reader positioned
// after the header.
func newReader(r io.Reader, h HeaderInfo, hdr [headerSize]byte, k *keys) (*Reader, error) {
	mac := hmac.New(sha256.New, k.mac)
	mac.Write(hdr[:offMAC])
	if !hmac.Equal(mac.Sum(nil), hdr[offMAC:offSum]) {
		return nil, &CorruptError{Offset: offMAC, Chunk: -1, Reason: "header authentication failed"}
	}
	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return &Reader{
		r:      r,
		hdr:    h,
		rawHdr: hdr,
		keys:   k,
		stream: cipher.NewCTR(block, hdr[offIV:offCheck]),
		mac:    mac,
		buf:    make([]byte, h.ChunkSize+tagSize),
		off:    headerSize,
	}, nil
}

// Reopen starts another pass over the same file, read from src at its
// start, with the keys this reader derived: a restore authenticates the
// whole file, then reads it again to write it, and the second pass should
// not pay the deliberately slow key derivation (nor its 64 MiB) again. The
// header read from src must equal this reader's byte for byte, or Reopen
// fails with a *CorruptError: another file, even under the same password,
// is never read with these keys.
func (r *Reader) Reopen(src io.Reader) (*Reader, error) {
	if r.v2 != nil {
		return r.reopenV2(src)
	}
	var hdr [headerSize]byte
	if n, err := io.ReadFull(src, hdr[:]); err != nil {
		return nil, headerReadError(n, err)
	}
	if hdr != r.rawHdr {
		return nil, &CorruptError{Offset: 0, Chunk: -1, Reason: "header differs from the first pass"}
	}
	return newReader(src, r.hdr, hdr, r.keys)
}

// headerReadError reports a header that could not be read whole: a short
// file is corrupt, any other failure is the reader's.
func headerReadError(n int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &CorruptError{Offset: int64(n), Chunk: -1, Reason: fmt.Sprintf("truncated header (%d of %d bytes)", n, headerSize)}
	}
	return fmt.Errorf("crypt: read header: %w", err)
}

// Header returns what the file's header says.
func (r *Reader) Header() HeaderInfo { return r.hdr }

// Read returns authenticated plaintext. It returns io.EOF only after the
// final record has verified and nothing follows it.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, r.err
	}
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// WriteTo lets io.Copy take plaintext straight from the record buffer.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(r.plain) == 0 {
			if r.err == io.EOF {
				return total, nil
			}
			if r.err != nil {
				return total, r.err
			}
			r.err = r.next()
		}
		n, err := w.Write(r.plain)
		total += int64(n)
		r.plain = r.plain[n:]
		if err != nil {
			return total, err
		}
	}
}

// next reads, authenticates and (unless verifying only) decrypts one record.
func (r *Reader) next() error {
	if r.pending != nil {
		return r.pending
	}
	if r.finalSeen {
		return io.EOF
	}
	start := 0
	if r.hasPeek {
		r.buf[0] = r.peek[0]
		start, r.hasPeek = 1, false
	}
	n, err := io.ReadFull(r.r, r.buf[start:])
	n += start
	more := false
	switch {
	case err == nil:
		// A full record: whether it must be the final one depends on whether
		// anything follows, so look one byte ahead.
		m, perr := io.ReadFull(r.r, r.peek[:])
		if m == 1 {
			more, r.hasPeek = true, true
		} else if perr != io.EOF {
			return fmt.Errorf("crypt: read: %w", perr)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		return fmt.Errorf("crypt: read: %w", err)
	}
	idx := int64(r.index)
	if n < tagSize {
		reason := "truncated record"
		if n == 0 {
			reason = "truncated: final record missing"
		}
		return &CorruptError{Offset: r.off + int64(n), Chunk: idx, Reason: reason}
	}
	clen := n - tagSize
	c, tag := r.buf[:clen], r.buf[clen:n]
	final := !more
	if !hmac.Equal(recordTag(r.mac, &r.macIn, r.index, final, c, r.tag[:0]), tag) {
		// Only on failure: find which structural rule broke. A record that is
		// authentic with the other flag is released, and the error reported
		// where the stream goes wrong, right after it.
		end := r.off + int64(n)
		switch {
		case final && clen == r.hdr.ChunkSize && hmac.Equal(recordTag(r.mac, &r.macIn, r.index, false, c, r.tag[:0]), tag):
			r.pending = &CorruptError{Offset: end, Chunk: idx + 1, Reason: "truncated: final record missing"}
			final = false
		case !final && hmac.Equal(recordTag(r.mac, &r.macIn, r.index, true, c, r.tag[:0]), tag):
			r.pending = &CorruptError{Offset: end, Chunk: idx + 1, Reason: "data after the final record"}
		case clen < r.hdr.ChunkSize:
			return &CorruptError{Offset: r.off, Chunk: idx, Reason: "authentication failed (short record: truncated or corrupt)"}
		default:
			return &CorruptError{Offset: r.off, Chunk: idx, Reason: "authentication failed"}
		}
	}
	if final && clen == 0 && r.index > 0 {
		return &CorruptError{Offset: r.off, Chunk: idx, Reason: "empty final record after data"}
	}
	if r.stream != nil {
		r.stream.XORKeyStream(c, c)
	}
	r.plain = c
	r.total += int64(clen)
	r.off += int64(n)
	r.index++
	r.finalSeen = final
	return nil
}

// Verify authenticates the header and every record of r without decrypting
// and returns the plaintext size. On error the size is that of the records
// authenticated before the failure.
func Verify(r io.Reader, password []byte) (plaintextSize int64, err error) {
	rd, err := open(r, password)
	if err != nil {
		return 0, err
	}
	return rd.verifyAll()
}

// verifyAll authenticates the rest of the file without decrypting it.
func (rd *Reader) verifyAll() (int64, error) {
	rd.stream = nil
	for {
		if err := rd.next(); err != nil {
			if err == io.EOF {
				return rd.total, nil
			}
			return rd.total, err
		}
	}
}
