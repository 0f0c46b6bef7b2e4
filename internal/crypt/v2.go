package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// Version 2 (docs/format.md, "Version 2"): the body is v1's, but its keys come
// from a random 16-byte file key, and the header carries that file key
// wrapped once per recipient in age stanzas (filippo.io/age: X25519 and, via
// agessh, ssh-ed25519 and ssh-rsa) and optionally under a password
// (a0-argon2id or a0-pbkdf2-sha256 stanzas, argon2id or PBKDF2 as in v1).
// Anyone holding one identity (or the password) unwraps the file key; the
// header MAC under the file key then authenticates every stanza.

// Header layout, version 2. Offsets past offV2Stanzas move with the stanza
// section's length L.
const (
	version2 = 2

	offV2ChunkExp = 9
	offV2Codec    = 10
	offV2Reserved = 11
	offV2Len      = 12 // u32be: L, the stanza section's length
	offV2Salt     = 16
	offV2IV       = 48
	offV2Stanzas  = 64
	// After the stanza section: key check (16), header MAC (32), checksum (8).
	v2TrailerSize = 16 + tagSize + sumSize

	fileKeySize = 16 // age's file key size

	// Reader limits: a crafted header must not make the reader allocate or
	// spin for long. An RSA-8192 stanza body is 1 KiB.
	maxV2Stanzas    = 256
	maxV2SectionLen = 1 << 20
	maxStanzaType   = 64
	maxStanzaArgs   = 8
	maxStanzaBody   = 8192
)

// HKDF info strings of version 2 (salt = the header's salt).
const (
	infoV2Enc      = "a0 v2 encryption key"
	infoV2MAC      = "a0 v2 authentication key"
	infoV2Check    = "a0 v2 key check"
	infoV2Password = "a0 v2 password stanza"
)

// Stanza types a0 writes for a password.
const (
	stanzaArgon2id = "a0-argon2id"
	stanzaPBKDF2   = "a0-pbkdf2-sha256"
)

var (
	// ErrWrongKey means none of the identities (or the file key) given opens
	// the file: it is encrypted to other recipients. Reported before any
	// output, like ErrWrongPassword.
	ErrWrongKey = errors.New("crypt: none of the given keys opens this file")
	// ErrNoPassword means a password was given for a version 2 file that
	// has no password stanza. It matches ErrWrongPassword too.
	ErrNoPassword = fmt.Errorf("%w (this file has no password: it is encrypted to public keys only, open it with an identity)", ErrWrongPassword)
)

// Seal says whom a new file is encrypted to.
type Seal struct {
	// Password, if not empty, can open the file (a password stanza).
	Password []byte
	// Recipients (age.X25519Recipient, agessh recipients) can open it.
	Recipients []age.Recipient
}

// Unlock is what a reader may try to open a file with. Version 1 files use
// only Password.
type Unlock struct {
	Password   []byte
	Identities []age.Identity
	// FileKey is a version 2 file's key, as UnwrapFileKey returns it: a
	// node-side restore receives it instead of an identity.
	FileKey []byte
}

// NewSealedWriter writes a version 2 file encrypted to s.Recipients (and to
// s.Password if given). With no recipients it writes version 1 with the
// password, which stays what password-only backups are.
func NewSealedWriter(w io.Writer, s Seal, opts *WriterOptions) (io.WriteCloser, error) {
	if len(s.Recipients) == 0 {
		return NewWriter(w, s.Password, opts)
	}
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	codec := o.Codec
	if codec == 0 {
		codec = CodecTarGzip
	}
	exp := o.chunkExp
	if exp == 0 {
		exp = defaultChunkExp
	}
	if exp < minChunkExp || exp > maxChunkExp {
		return nil, fmt.Errorf("crypt: chunk size exponent %d outside [%d, %d]", exp, minChunkExp, maxChunkExp)
	}
	fk := make([]byte, fileKeySize)
	defer clear(fk)
	if _, err := rand.Read(fk); err != nil {
		return nil, fmt.Errorf("crypt: file key: %w", err)
	}
	var stanzas []*age.Stanza
	if len(s.Password) > 0 {
		st, err := wrapPassword(fk, s.Password, &o)
		if err != nil {
			return nil, err
		}
		stanzas = append(stanzas, st)
	}
	for i, r := range s.Recipients {
		ss, err := r.Wrap(fk)
		if err != nil {
			return nil, fmt.Errorf("crypt: wrap the file key for recipient %d: %w", i+1, err)
		}
		stanzas = append(stanzas, ss...)
	}
	section, err := encodeStanzas(stanzas)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, offV2Stanzas+len(section)+v2TrailerSize)
	copy(hdr, magic[:])
	hdr[offVersion] = version2
	hdr[offV2ChunkExp] = exp
	hdr[offV2Codec] = byte(codec)
	binary.BigEndian.PutUint32(hdr[offV2Len:], uint32(len(section)))
	if _, err := rand.Read(hdr[offV2Salt:offV2Stanzas]); err != nil { // salt and IV
		return nil, fmt.Errorf("crypt: salt: %w", err)
	}
	copy(hdr[offV2Stanzas:], section)
	k, err := deriveV2Keys(fk, hdr[offV2Salt:offV2IV])
	if err != nil {
		return nil, err
	}
	lay := v2Layout(len(section))
	copy(hdr[lay.check:lay.mac], k.check[:])
	mac := hmac.New(sha256.New, k.mac)
	mac.Write(hdr[:lay.mac])
	mac.Sum(hdr[lay.mac:lay.mac])
	s256 := sha256.Sum256(hdr[:lay.sum])
	copy(hdr[lay.sum:], s256[:sumSize])

	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("crypt: write header: %w", err)
	}
	// ReadBack reopens the file with this header and keys: parse what was
	// written, as a reader would.
	v2, err := parseV2Header(hdr)
	if err != nil {
		return nil, err
	}
	size := 1 << exp
	return &writer{
		w:         w,
		stream:    cipher.NewCTR(block, hdr[offV2IV:offV2Stanzas]),
		mac:       mac,
		buf:       make([]byte, size+tagSize),
		chunkSize: size,
		v2:        v2,
		keys:      k,
	}, nil
}

// layout are the offsets of a version 2 header's trailer.
type layout struct{ check, mac, sum, size int }

func v2Layout(sectionLen int) layout {
	c := offV2Stanzas + sectionLen
	return layout{check: c, mac: c + 16, sum: c + 16 + tagSize, size: c + v2TrailerSize}
}

func deriveV2Keys(fk, salt []byte) (*keys, error) {
	var k keys
	var err error
	if k.enc, err = hkdf.Key(sha256.New, fk, salt, infoV2Enc, keySize); err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	if k.mac, err = hkdf.Key(sha256.New, fk, salt, infoV2MAC, keySize); err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	check, err := hkdf.Key(sha256.New, fk, salt, infoV2Check, len(k.check))
	if err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	copy(k.check[:], check)
	return &k, nil
}

// v2Header is a read version 2 header: its bytes and what they say.
type v2Header struct {
	raw     []byte
	info    HeaderInfo
	stanzas []*age.Stanza
	// desc describes each stanza for people (Reader.Stanzas).
	desc []string
	lay  layout
}

// readV2Header reads exactly one version 2 header from r (the magic and
// version already match) and checks its structure, not its keys.
func readV2Header(r io.Reader, prefix []byte) (*v2Header, error) {
	fixed := make([]byte, offV2Stanzas)
	n := copy(fixed, prefix)
	m, err := io.ReadFull(r, fixed[n:])
	if err != nil {
		return nil, headerReadError(n+m, err)
	}
	l := binary.BigEndian.Uint32(fixed[offV2Len:])
	if l < 2 || l > maxV2SectionLen {
		return nil, &CorruptError{Offset: offV2Len, Chunk: -1, Reason: fmt.Sprintf("stanza section length %d out of range", l)}
	}
	lay := v2Layout(int(l))
	raw := make([]byte, lay.size)
	copy(raw, fixed)
	if m, err := io.ReadFull(r, raw[offV2Stanzas:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &CorruptError{Offset: int64(offV2Stanzas + m), Chunk: -1,
				Reason: fmt.Sprintf("truncated header (%d of %d bytes)", offV2Stanzas+m, lay.size)}
		}
		return nil, fmt.Errorf("crypt: read header: %w", err)
	}
	return parseV2Header(raw)
}

// parseV2Header checks a whole version 2 header's checksum and structure.
func parseV2Header(raw []byte) (*v2Header, error) {
	if len(raw) < offV2Stanzas+v2TrailerSize {
		return nil, &CorruptError{Offset: int64(len(raw)), Chunk: -1, Reason: "truncated header"}
	}
	l := binary.BigEndian.Uint32(raw[offV2Len:])
	lay := v2Layout(int(min(l, maxV2SectionLen+1)))
	if l > maxV2SectionLen || lay.size != len(raw) {
		return nil, &CorruptError{Offset: offV2Len, Chunk: -1, Reason: "stanza section length does not match the header"}
	}
	// As in v1, the unkeyed checksum tells accidental damage (a flipped bit
	// in a stanza looks like a wrong key otherwise) from a wrong key.
	if s := sha256.Sum256(raw[:lay.sum]); !bytes.Equal(s[:sumSize], raw[lay.sum:]) {
		return nil, &CorruptError{Offset: 0, Chunk: -1, Reason: "header checksum mismatch"}
	}
	h := HeaderInfo{Version: version2, Codec: Codec(raw[offV2Codec])}
	exp := raw[offV2ChunkExp]
	if exp < minChunkExp || exp > maxChunkExp {
		return nil, fmt.Errorf("%w: chunk size exponent %d outside [%d, %d]", ErrUnsupported, exp, minChunkExp, maxChunkExp)
	}
	h.ChunkSize = 1 << exp
	if raw[offV2Reserved] != 0 {
		return nil, fmt.Errorf("%w: reserved header byte %d", ErrUnsupported, raw[offV2Reserved])
	}
	stanzas, err := decodeStanzas(raw[offV2Stanzas:lay.check])
	if err != nil {
		return nil, err
	}
	var descs []string
	for _, s := range stanzas {
		desc := s.Type
		switch s.Type {
		case "ssh-ed25519", "ssh-rsa":
			if len(s.Args) > 0 {
				desc += " " + s.Args[0] // the key's tag: sha256(key)[:4]
			}
		case stanzaArgon2id, stanzaPBKDF2:
			ph, _, err := passwordParams(s)
			if err != nil {
				return nil, err
			}
			desc = kdfDescription(ph)
			if h.KDF == 0 {
				h.KDF, h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads, h.PBKDF2Iterations =
					ph.KDF, ph.Argon2Time, ph.Argon2MemoryKiB, ph.Argon2Threads, ph.PBKDF2Iterations
			}
		}
		descs = append(descs, desc)
	}
	return &v2Header{raw: raw, info: h, stanzas: stanzas, desc: descs, lay: lay}, nil
}

func kdfDescription(h HeaderInfo) string {
	if h.KDF == KDFArgon2id {
		return fmt.Sprintf("password (argon2id t=%d m=%dKiB p=%d)", h.Argon2Time, h.Argon2MemoryKiB, h.Argon2Threads)
	}
	return fmt.Sprintf("password (pbkdf2-sha256 %d iterations)", h.PBKDF2Iterations)
}

// unwrap finds the file key with u and checks it against the header: the
// key check tells a wrong key from a tampered header, the header MAC then
// authenticates every byte of the header, stanzas included.
func (v *v2Header) unwrap(u Unlock) (fk []byte, k *keys, err error) {
	salt := v.raw[offV2Salt:offV2IV]
	checkKey := func(fk []byte) (*keys, bool, error) {
		k, err := deriveV2Keys(fk, salt)
		if err != nil {
			return nil, false, err
		}
		return k, subtle.ConstantTimeCompare(k.check[:], v.raw[v.lay.check:v.lay.mac]) == 1, nil
	}
	var found []byte
	switch {
	case u.FileKey != nil:
		if len(u.FileKey) != fileKeySize {
			return nil, nil, fmt.Errorf("%w: a file key is %d bytes", ErrWrongKey, fileKeySize)
		}
		found = bytes.Clone(u.FileKey)
		k, ok, err := checkKey(found)
		if err != nil {
			clear(found)
			return nil, nil, err
		}
		if !ok {
			clear(found)
			return nil, nil, ErrWrongKey
		}
		return found, k, v.checkMAC(k)
	}
	for _, id := range u.Identities {
		got, err := id.Unwrap(v.stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		if err != nil {
			// The identity recognised a stanza as its own but could not
			// read it: the stanza is malformed.
			return nil, nil, &CorruptError{Offset: offV2Stanzas, Chunk: -1, Reason: "a recipient stanza is malformed"}
		}
		found = got
		break
	}
	hasPassword := false
	if found == nil && len(u.Password) > 0 {
		for _, s := range v.stanzas {
			if s.Type != stanzaArgon2id && s.Type != stanzaPBKDF2 {
				continue
			}
			hasPassword = true
			got, err := unwrapPassword(s, u.Password)
			if err != nil {
				return nil, nil, err
			}
			if got != nil {
				found = got
				break
			}
		}
	}
	if found == nil {
		// A password given is the likelier intent, so its failure is named.
		switch {
		case len(u.Password) > 0 && !hasPassword:
			return nil, nil, ErrNoPassword
		case len(u.Password) > 0:
			return nil, nil, ErrWrongPassword
		}
		return nil, nil, ErrWrongKey
	}
	if len(found) != fileKeySize {
		clear(found)
		return nil, nil, &CorruptError{Offset: offV2Stanzas, Chunk: -1, Reason: "a recipient stanza holds a key of the wrong size"}
	}
	k, ok, err := checkKey(found)
	if err != nil {
		clear(found)
		return nil, nil, err
	}
	if !ok {
		// The stanza opened, so it was made for this key, but it holds a key
		// that is not this file's: it was replaced.
		clear(found)
		return nil, nil, &CorruptError{Offset: offV2Stanzas, Chunk: -1, Reason: "a recipient stanza does not hold this file's key"}
	}
	if err := v.checkMAC(k); err != nil {
		clear(found)
		return nil, nil, err
	}
	return found, k, nil
}

func (v *v2Header) checkMAC(k *keys) error {
	mac := hmac.New(sha256.New, k.mac)
	mac.Write(v.raw[:v.lay.mac])
	if !hmac.Equal(mac.Sum(nil), v.raw[v.lay.mac:v.lay.sum]) {
		return &CorruptError{Offset: int64(v.lay.mac), Chunk: -1, Reason: "header authentication failed"}
	}
	return nil
}

// openV2 reads a version 2 header and returns a reader positioned after it.
func openV2(r io.Reader, prefix []byte, u Unlock) (*Reader, error) {
	v, err := readV2Header(r, prefix)
	if err != nil {
		return nil, err
	}
	fk, k, err := v.unwrap(u)
	if err != nil {
		return nil, err
	}
	clear(fk)
	return newReaderV2(r, v, k)
}

func newReaderV2(r io.Reader, v *v2Header, k *keys) (*Reader, error) {
	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return &Reader{
		r:      r,
		hdr:    v.info,
		v2:     v,
		keys:   k,
		stream: cipher.NewCTR(block, v.raw[offV2IV:offV2Stanzas]),
		mac:    hmac.New(sha256.New, k.mac),
		buf:    make([]byte, v.info.ChunkSize+tagSize),
		off:    int64(len(v.raw)),
	}, nil
}

// reopenV2 is Reopen for a version 2 file.
func (r *Reader) reopenV2(src io.Reader) (*Reader, error) {
	raw := make([]byte, len(r.v2.raw))
	if n, err := io.ReadFull(src, raw); err != nil {
		return nil, headerReadError(n, err)
	}
	if !bytes.Equal(raw, r.v2.raw) {
		return nil, &CorruptError{Offset: 0, Chunk: -1, Reason: "header differs from the first pass"}
	}
	return newReaderV2(src, r.v2, r.keys)
}

// Stanzas describe, for a version 2 file, whom its key is wrapped for, in
// header order: "ssh-ed25519 TAG", "ssh-rsa TAG" (TAG: the first 4 bytes of
// the key's SHA-256, base64), "X25519", "password (argon2id ...)". Nil for
// version 1. In version 2 the KDF fields of Header are those of the first
// password stanza.
func (r *Reader) Stanzas() []string {
	if r.v2 == nil {
		return nil
	}
	return r.v2.desc
}

// HeaderStanzas describes whom a version 2 header (as ReadHeader returns
// it) wraps the file key for, as Reader.Stanzas does, without opening it:
// a0cli lists the recipients of a file none of the keys given opens. The
// header is checked for structure and checksum only, so the list is what
// the file claims, not authenticated. Nil for a version 1 header.
func HeaderStanzas(hdr []byte) ([]string, error) {
	if Version(hdr) != version2 {
		return nil, nil
	}
	v, err := parseV2Header(hdr)
	if err != nil {
		return nil, err
	}
	return v.desc, nil
}

// Open reads a file's header (either version) and opens it with u: a
// version 1 file with u.Password, a version 2 file with the first of
// u.FileKey, u.Identities or u.Password that unwraps its key. Errors are
// those of NewReader, plus ErrWrongKey.
func Open(r io.Reader, u Unlock) (*Reader, error) { return openAny(r, u) }

// VerifyWith is Verify for any version, opened with u.
func VerifyWith(r io.Reader, u Unlock) (int64, error) {
	rd, err := openAny(r, u)
	if err != nil {
		return 0, err
	}
	return rd.verifyAll()
}

// UnwrapFileKey reads only the header of a version 2 file from r, unwraps
// its file key with u and authenticates the header with it. The CLI sends
// that key (never an identity) to a node that restores the file. The caller
// clears the key after use.
func UnwrapFileKey(r io.Reader, u Unlock) ([]byte, error) {
	u.FileKey = nil
	prefix := make([]byte, offVersion+1)
	n, err := io.ReadFull(r, prefix)
	if !bytes.Equal(prefix[:min(n, len(magic))], magic[:min(n, len(magic))]) {
		return nil, ErrNotA0
	}
	if err != nil {
		return nil, headerReadError(n, err)
	}
	if prefix[offVersion] != version2 {
		return nil, fmt.Errorf("%w: version %d has no file key (only version 2 files are encrypted to keys)", ErrUnsupported, prefix[offVersion])
	}
	v, err := readV2Header(r, prefix)
	if err != nil {
		return nil, err
	}
	fk, _, err := v.unwrap(u)
	if err != nil {
		return nil, err
	}
	return fk, nil
}

// Version returns the format version named by a file's first 9 bytes, or 0
// when they are not an a0 header.
func Version(prefix []byte) int {
	if len(prefix) <= offVersion || !IsA0(prefix) {
		return 0
	}
	return int(prefix[offVersion])
}

// wrapPassword makes a password stanza for fk with the KDF of o.
func wrapPassword(fk, password []byte, o *WriterOptions) (*age.Stanza, error) {
	h, err := writerKDF(o)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("crypt: salt: %w", err)
	}
	s := &age.Stanza{}
	switch h.KDF {
	case KDFArgon2id:
		s.Type = stanzaArgon2id
		s.Args = []string{b64(salt), utoa(h.Argon2Time), utoa(h.Argon2MemoryKiB), utoa(uint32(h.Argon2Threads))}
	case KDFPBKDF2SHA256:
		s.Type = stanzaPBKDF2
		s.Args = []string{b64(salt), utoa(h.PBKDF2Iterations)}
	}
	aead, err := passwordAEAD(password, &h, salt)
	if err != nil {
		return nil, err
	}
	s.Body = aead.Seal(nil, make([]byte, aead.NonceSize()), fk, nil)
	return s, nil
}

// unwrapPassword returns the file key in s, or nil when the password is not
// the one s was made with.
func unwrapPassword(s *age.Stanza, password []byte) ([]byte, error) {
	h, salt, err := passwordParams(s)
	if err != nil {
		return nil, err
	}
	aead, err := passwordAEAD(password, &h, salt)
	if err != nil {
		return nil, err
	}
	fk, err := aead.Open(nil, make([]byte, aead.NonceSize()), s.Body, nil)
	if err != nil {
		return nil, nil
	}
	return fk, nil
}

func passwordAEAD(password []byte, h *HeaderInfo, salt []byte) (cipher.AEAD, error) {
	mk, err := boundedMaster(password, h, salt)
	if err != nil {
		return nil, err
	}
	defer clear(mk)
	wk, err := hkdf.Key(sha256.New, mk, nil, infoV2Password, keySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: hkdf: %w", err)
	}
	defer clear(wk)
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return cipher.NewGCM(block)
}

// passwordParams decodes a password stanza's arguments and range-checks
// them with the same limits as a version 1 header (readKDF).
func passwordParams(s *age.Stanza) (HeaderInfo, []byte, error) {
	bad := func(why string) (HeaderInfo, []byte, error) {
		return HeaderInfo{}, nil, &CorruptError{Offset: offV2Stanzas, Chunk: -1, Reason: "malformed password stanza: " + why}
	}
	var kdf KDF
	var want int
	switch s.Type {
	case stanzaArgon2id:
		kdf, want = KDFArgon2id, 4
	case stanzaPBKDF2:
		kdf, want = KDFPBKDF2SHA256, 2
	default:
		return bad("unknown type")
	}
	if len(s.Args) != want {
		return bad("wrong number of arguments")
	}
	if len(s.Body) != fileKeySize+16 {
		return bad("wrong body size")
	}
	salt, err := unb64(s.Args[0])
	if err != nil || len(salt) != saltSize {
		return bad("salt")
	}
	var p [3]uint32
	for i, a := range s.Args[1:] {
		v, ok := atou(a)
		if !ok {
			return bad("parameter")
		}
		p[i] = v
	}
	h, err := readKDF(kdf, p[0], p[1], p[2])
	if err != nil {
		return HeaderInfo{}, nil, err
	}
	return h, salt, nil
}

// ReadHeader reads exactly one header (either version) from r and returns
// its bytes, checked for structure and checksum but not for keys: the CLI
// fetches a stored backup's header from the node this way, then unwraps its
// file key locally (UnwrapFileKey on the bytes).
func ReadHeader(r io.Reader) ([]byte, error) {
	prefix := make([]byte, offVersion+1)
	n, err := io.ReadFull(r, prefix)
	if !bytes.Equal(prefix[:min(n, len(magic))], magic[:min(n, len(magic))]) {
		return nil, ErrNotA0
	}
	if err != nil {
		return nil, headerReadError(n, err)
	}
	switch prefix[offVersion] {
	case version1:
		hdr := make([]byte, headerSize)
		copy(hdr, prefix)
		if m, err := io.ReadFull(r, hdr[len(prefix):]); err != nil {
			return nil, headerReadError(len(prefix)+m, err)
		}
		if sum := headerSum(hdr); !bytes.Equal(sum[:], hdr[offSum:]) {
			return nil, &CorruptError{Offset: 0, Chunk: -1, Reason: "header checksum mismatch"}
		}
		return hdr, nil
	case version2:
		v, err := readV2Header(r, prefix)
		if err != nil {
			return nil, err
		}
		return v.raw, nil
	}
	return nil, fmt.Errorf("%w: version %d", ErrUnsupported, prefix[offVersion])
}
