package crypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/argon2"
)

// KDF names the password key derivation function recorded in a file header.
type KDF uint8

const (
	// KDFArgon2id is argon2id (RFC 9106), the default.
	KDFArgon2id KDF = 1
	// KDFPBKDF2SHA256 is PBKDF2-HMAC-SHA256, for deployments that need a FIPS
	// approved KDF.
	KDFPBKDF2SHA256 KDF = 2
)

// String returns the KDF's name as docs/format.md spells it.
func (k KDF) String() string {
	switch k {
	case KDFArgon2id:
		return "argon2id"
	case KDFPBKDF2SHA256:
		return "pbkdf2-sha256"
	}
	return fmt.Sprintf("kdf(%d)", uint8(k))
}

// Codec names what the plaintext is. The crypt package does not interpret it;
// it lets a reader pick the right decoder without guessing.
type Codec uint8

// CodecTarGzip is a gzip-compressed tar archive (the backup archive).
const CodecTarGzip Codec = 1

// CodecOplogSlice is a point-in-time archive's oplog slice (package pitr
// owns its layout: a header, zstd-compressed BSON entries, a trailer).
const CodecOplogSlice Codec = 2

// Chunk sizes: written by default and accepted when reading.
const (
	defaultChunkExp = 20 // 1 MiB
	minChunkExp     = 10
	maxChunkExp     = 24 // the reader's buffer is one chunk: cap it at 16 MiB
)

var (
	// ErrNotA0 means the data does not start with the a0 magic.
	ErrNotA0 = errors.New("crypt: not an a0 encrypted file")
	// ErrWrongPassword means the header is intact but the password does not
	// match it. Reported before any output.
	ErrWrongPassword = errors.New("crypt: wrong password")
	// ErrUnsupported means a well-formed header this reader will not process:
	// an unknown version or KDF, or KDF parameters beyond the reader's limits.
	ErrUnsupported = errors.New("crypt: unsupported file")
	// ErrCorrupt is matched (errors.Is) by every *CorruptError.
	ErrCorrupt = errors.New("crypt: file is corrupt")
	// ErrWeakKDF means WriterOptions ask for less than the required strength.
	ErrWeakKDF = errors.New("crypt: kdf parameters below the required strength")
	// ErrEmptyPassword means the writer was given no password.
	ErrEmptyPassword = errors.New("crypt: empty password")
)

// CorruptError reports where a file failed authentication or is malformed.
type CorruptError struct {
	// Offset is the byte offset in the encrypted file: the start of the
	// failing record, or where the data ended for truncation.
	Offset int64
	// Chunk is the record index, or -1 for the header.
	Chunk  int64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Chunk < 0 {
		return fmt.Sprintf("crypt: corrupt at byte %d (header): %s", e.Offset, e.Reason)
	}
	return fmt.Sprintf("crypt: corrupt at byte %d (chunk %d): %s", e.Offset, e.Chunk, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true for every CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// HeaderInfo is what a file header says, as returned by (*Reader).Header.
type HeaderInfo struct {
	Version int
	KDF     KDF
	// Argon2 parameters, zero unless KDF is KDFArgon2id.
	Argon2Time      uint32
	Argon2MemoryKiB uint32
	Argon2Threads   uint8
	// PBKDF2Iterations is zero unless KDF is KDFPBKDF2SHA256.
	PBKDF2Iterations uint32
	// ChunkSize is the plaintext bytes per record (the last may hold fewer).
	ChunkSize int
	Codec     Codec
}

// Header layout, version 1; docs/format.md is the reference.
const (
	offVersion  = 8
	offKDF      = 9
	offChunkExp = 10
	offCodec    = 11
	offParams   = 12 // three u32be
	offSalt     = 24
	offIV       = 56
	offCheck    = 72
	offMAC      = 88
	offSum      = 120
	headerSize  = 128

	version1 = 1
	saltSize = 32
	ivSize   = 16
	tagSize  = sha256.Size
	sumSize  = 8
	keySize  = 32
)

// magic starts with a byte that has the high bit set: record MAC inputs start
// with a u64be index < 2^63, so they can never equal a header MAC input.
var magic = [8]byte{0x89, 'a', '0', 'e', 'n', 'c', '\r', '\n'}

// HKDF info strings; distinct so the keys are independent.
const (
	infoEnc   = "a0 v1 encryption key"
	infoMAC   = "a0 v1 authentication key"
	infoCheck = "a0 v1 password check"
)

// IsA0 reports whether prefix starts with the a0 magic (it needs at least the
// first 8 bytes of the file).
func IsA0(prefix []byte) bool { return bytes.HasPrefix(prefix, magic[:]) }

type keys struct {
	enc, mac []byte
	check    [16]byte
}

// deriveMaster turns a password into the master key. A variable so tests can
// memoize the deliberately slow KDF; it is never changed outside tests.
var deriveMaster = deriveMasterKey

func deriveMasterKey(password []byte, h *HeaderInfo, salt []byte) ([]byte, error) {
	switch h.KDF {
	case KDFArgon2id:
		return argon2.IDKey(password, salt, h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads, keySize), nil
	case KDFPBKDF2SHA256:
		return pbkdf2.Key(sha256.New, string(password), salt, int(h.PBKDF2Iterations), keySize)
	}
	return nil, fmt.Errorf("%w: kdf %d", ErrUnsupported, uint8(h.KDF))
}

func deriveKeys(password []byte, h *HeaderInfo, salt []byte) (*keys, error) {
	mk, err := deriveMaster(password, h, salt)
	if err != nil {
		return nil, err
	}
	if h.KDF == KDFArgon2id {
		// Argon2's scratch memory (64 MiB by default) is garbage now, but a
		// collection that ran during the derivation saw it live and set the
		// next heap goal to twice that: without this collection the
		// process would then grow to over 128 MiB before collecting again,
		// and a long restore or decrypt would reach that peak where a
		// short one does not, so memory would seem to grow with the data.
		runtime.GC()
	}
	defer clear(mk)
	var k keys
	if k.enc, err = hkdf.Key(sha256.New, mk, nil, infoEnc, keySize); err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	if k.mac, err = hkdf.Key(sha256.New, mk, nil, infoMAC, keySize); err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	check, err := hkdf.Key(sha256.New, mk, nil, infoCheck, len(k.check))
	if err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	copy(k.check[:], check)
	return &k, nil
}

// encodeParams writes the KDF id and parameters of h into hdr.
func encodeParams(hdr []byte, h *HeaderInfo) {
	hdr[offKDF] = byte(h.KDF)
	p := hdr[offParams:]
	switch h.KDF {
	case KDFArgon2id:
		binary.BigEndian.PutUint32(p[0:], h.Argon2Time)
		binary.BigEndian.PutUint32(p[4:], h.Argon2MemoryKiB)
		binary.BigEndian.PutUint32(p[8:], uint32(h.Argon2Threads))
	case KDFPBKDF2SHA256:
		binary.BigEndian.PutUint32(p[0:], h.PBKDF2Iterations)
	}
}

// parseHeader decodes and range-checks the fields after the checksum has
// matched, so every failure here is a deliberate header, not an accident.
// The KDF's limits are readKDF's.
func parseHeader(hdr []byte) (HeaderInfo, error) {
	h := HeaderInfo{Version: int(hdr[offVersion]), KDF: KDF(hdr[offKDF]), Codec: Codec(hdr[offCodec])}
	exp := hdr[offChunkExp]
	if exp < minChunkExp || exp > maxChunkExp {
		return h, fmt.Errorf("%w: chunk size exponent %d outside [%d, %d]", ErrUnsupported, exp, minChunkExp, maxChunkExp)
	}
	h.ChunkSize = 1 << exp
	p1 := binary.BigEndian.Uint32(hdr[offParams:])
	p2 := binary.BigEndian.Uint32(hdr[offParams+4:])
	p3 := binary.BigEndian.Uint32(hdr[offParams+8:])
	k, err := readKDF(h.KDF, p1, p2, p3)
	if err != nil {
		return h, err
	}
	h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads, h.PBKDF2Iterations = k.Argon2Time, k.Argon2MemoryKiB, k.Argon2Threads, k.PBKDF2Iterations
	return h, nil
}

func headerSum(hdr []byte) [sumSize]byte {
	s := sha256.Sum256(hdr[:offSum])
	return [sumSize]byte(s[:sumSize])
}
