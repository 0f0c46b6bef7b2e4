package crypt

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
)

// Both writers choose the KDF's parameters the same way: the version 1
// header and the version 2 password stanza refuse the same options with
// the same error.
func TestWritersKDFLimits(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]func(*WriterOptions) error{
		"v1 header": func(o *WriterOptions) error {
			_, err := NewWriter(io.Discard, testPassword, o)
			return err
		},
		"v2 password stanza": func(o *WriterOptions) error {
			_, err := NewSealedWriter(io.Discard, Seal{Password: testPassword, Recipients: []age.Recipient{x.Recipient()}}, o)
			return err
		},
	}
	for _, tc := range []struct {
		name string
		opts WriterOptions
		want error // nil: accepted
	}{
		{"argon2id defaults", WriterOptions{}, nil},
		{"pbkdf2 default count", WriterOptions{KDF: KDFPBKDF2SHA256}, nil},
		{"pbkdf2 below the floor", WriterOptions{KDF: KDFPBKDF2SHA256, PBKDF2Iterations: MinPBKDF2Iterations - 1}, ErrWeakKDF},
		{"pbkdf2 above the readers' limit", WriterOptions{KDF: KDFPBKDF2SHA256, PBKDF2Iterations: maxPBKDF2Iterations + 1}, errAny},
		{"unknown kdf", WriterOptions{KDF: 9}, ErrUnsupported},
	} {
		for wname, write := range writers {
			t.Run(tc.name+"/"+wname, func(t *testing.T) {
				err := write(&tc.opts)
				switch {
				case tc.want == nil && err != nil:
					t.Fatalf("refused: %v", err)
				case tc.want == errAny && err == nil, tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			})
		}
	}
}

var errAny = errors.New("any error")

// Both readers range-check the KDF's parameters the same way: what a
// version 1 header is refused for, a version 2 password stanza is too.
func TestReadersKDFLimits(t *testing.T) {
	v1 := func(kdf KDF, p [3]uint32) error {
		var hdr [headerSize]byte
		hdr[offVersion], hdr[offKDF], hdr[offChunkExp] = version1, byte(kdf), defaultChunkExp
		for i, v := range p {
			binary.BigEndian.PutUint32(hdr[offParams+4*i:], v)
		}
		_, err := parseHeader(hdr[:])
		return err
	}
	v2 := func(kdf KDF, p [3]uint32) error {
		salt := b64(make([]byte, saltSize))
		s := &age.Stanza{Body: make([]byte, fileKeySize+16)}
		switch kdf {
		case KDFArgon2id:
			s.Type, s.Args = stanzaArgon2id, []string{salt, utoa(p[0]), utoa(p[1]), utoa(p[2])}
		case KDFPBKDF2SHA256:
			s.Type, s.Args = stanzaPBKDF2, []string{salt, utoa(p[0])}
		}
		_, _, err := passwordParams(s)
		return err
	}
	for _, tc := range []struct {
		name string
		kdf  KDF
		p    [3]uint32
		ok   bool
	}{
		{"argon2id defaults", KDFArgon2id, [3]uint32{DefaultArgon2Time, DefaultArgon2MemoryKiB, DefaultArgon2Threads}, true},
		{"argon2id at every limit", KDFArgon2id, [3]uint32{maxArgon2Time, maxArgon2MemoryKiB, maxArgon2Threads}, true},
		{"argon2id time above", KDFArgon2id, [3]uint32{maxArgon2Time + 1, DefaultArgon2MemoryKiB, DefaultArgon2Threads}, false},
		{"argon2id memory above", KDFArgon2id, [3]uint32{DefaultArgon2Time, maxArgon2MemoryKiB + 1, DefaultArgon2Threads}, false},
		{"argon2id threads above", KDFArgon2id, [3]uint32{DefaultArgon2Time, DefaultArgon2MemoryKiB, maxArgon2Threads + 1}, false},
		{"argon2id zero time", KDFArgon2id, [3]uint32{0, DefaultArgon2MemoryKiB, DefaultArgon2Threads}, false},
		{"argon2id memory below 8 per thread", KDFArgon2id, [3]uint32{1, 31, 4}, false},
		{"pbkdf2 floor", KDFPBKDF2SHA256, [3]uint32{MinPBKDF2Iterations, 0, 0}, true},
		{"pbkdf2 at the limit", KDFPBKDF2SHA256, [3]uint32{maxPBKDF2Iterations, 0, 0}, true},
		{"pbkdf2 above", KDFPBKDF2SHA256, [3]uint32{maxPBKDF2Iterations + 1, 0, 0}, false},
		{"pbkdf2 zero", KDFPBKDF2SHA256, [3]uint32{0, 0, 0}, false},
	} {
		for rname, read := range map[string]func(KDF, [3]uint32) error{"v1 header": v1, "v2 password stanza": v2} {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				err := read(tc.kdf, tc.p)
				if tc.ok && err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !tc.ok && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("error %v, want ErrUnsupported", err)
				}
			})
		}
	}
}
