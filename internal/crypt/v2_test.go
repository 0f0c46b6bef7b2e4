package crypt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// testKeys are SSH key pairs as an operator's CLI key would be, made once.
type testKeys struct {
	edID, edID2   age.Identity
	rsaID         age.Identity
	edRcp, rsaRcp age.Recipient
	edRcp2        age.Recipient
	x             *age.X25519Identity
}

var (
	keysOnce sync.Once
	tk       testKeys
)

func sshKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		ed := func() (age.Identity, age.Recipient) {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			id, err := agessh.NewEd25519Identity(priv)
			if err != nil {
				t.Fatal(err)
			}
			sp, _ := ssh.NewPublicKey(pub)
			r, err := agessh.ParseRecipient(string(ssh.MarshalAuthorizedKey(sp)))
			if err != nil {
				t.Fatal(err)
			}
			return id, r
		}
		tk.edID, tk.edRcp = ed()
		tk.edID2, tk.edRcp2 = ed()
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if tk.rsaID, err = agessh.NewRSAIdentity(rk); err != nil {
			t.Fatal(err)
		}
		sp, _ := ssh.NewPublicKey(&rk.PublicKey)
		if tk.rsaRcp, err = agessh.NewRSARecipient(sp); err != nil {
			t.Fatal(err)
		}
		if tk.x, err = age.GenerateX25519Identity(); err != nil {
			t.Fatal(err)
		}
	})
	if tk.edID == nil {
		t.Fatal("key generation failed earlier")
	}
	return &tk
}

func seal(t testing.TB, plain []byte, s Seal, opts *WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewSealedWriter(&buf, s, opts)
	if err != nil {
		t.Fatalf("NewSealedWriter: %v", err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openWith(enc []byte, u Unlock) ([]byte, error) {
	r, err := Open(bytes.NewReader(enc), u)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, r)
	return out.Bytes(), err
}

// v2SectionLen is the stanza section length of a v2 file.
func v2SectionLen(f []byte) int { return int(binary.BigEndian.Uint32(f[12:16])) }

func TestV2TwoSSHKeys(t *testing.T) {
	k := sshKeys(t)
	plain := randomBytes(2*chunk+100, 7)
	f := seal(t, plain, Seal{Recipients: []age.Recipient{k.edRcp, k.rsaRcp}}, nil)
	if Version(f) != 2 {
		t.Fatalf("version %d, want 2", Version(f))
	}
	for name, id := range map[string]age.Identity{"ed25519": k.edID, "rsa": k.rsaID} {
		t.Run("opens with "+name, func(t *testing.T) {
			got, err := openWith(f, Unlock{Identities: []age.Identity{id}})
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("err %v, equal %v", err, bytes.Equal(got, plain))
			}
			n, err := VerifyWith(bytes.NewReader(f), Unlock{Identities: []age.Identity{id}})
			if err != nil || n != int64(len(plain)) {
				t.Fatalf("VerifyWith: %d %v", n, err)
			}
		})
	}
	t.Run("neither", func(t *testing.T) {
		got, err := openWith(f, Unlock{Identities: []age.Identity{k.edID2, k.x}})
		if !errors.Is(err, ErrWrongKey) || len(got) != 0 {
			t.Fatalf("err %v, %d bytes out; want ErrWrongKey and nothing", err, len(got))
		}
	})
	t.Run("password on a file without one", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader(f), testPassword)
		if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "public keys only") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("stanzas described", func(t *testing.T) {
		r, err := Open(bytes.NewReader(f), Unlock{Identities: []age.Identity{k.rsaID}})
		if err != nil {
			t.Fatal(err)
		}
		d := r.Stanzas()
		if len(d) != 2 || !strings.HasPrefix(d[0], "ssh-ed25519 ") || !strings.HasPrefix(d[1], "ssh-rsa ") {
			t.Fatalf("stanzas %q", d)
		}
	})
}

func TestV2X25519AndPassword(t *testing.T) {
	k := sshKeys(t)
	plain := randomBytes(5000, 8)
	f := seal(t, plain, Seal{Password: testPassword, Recipients: []age.Recipient{k.x.Recipient()}}, nil)
	for name, u := range map[string]Unlock{
		"x25519":             {Identities: []age.Identity{k.x}},
		"password":           {Password: testPassword},
		"wrong id, password": {Identities: []age.Identity{k.edID}, Password: testPassword},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := openWith(f, u)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("err %v", err)
			}
		})
	}
	if _, err := NewReader(bytes.NewReader(f), []byte("not the password")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	r, err := NewReader(bytes.NewReader(f), testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Version != 2 || h.KDF != KDFArgon2id || h.Argon2MemoryKiB != DefaultArgon2MemoryKiB {
		t.Fatalf("header %+v", h)
	}
	// PBKDF2 for the password stanza, as v1 offers it.
	f2 := seal(t, plain, Seal{Password: testPassword, Recipients: []age.Recipient{k.x.Recipient()}},
		&WriterOptions{KDF: KDFPBKDF2SHA256})
	if got, err := openWith(f2, Unlock{Password: testPassword}); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("pbkdf2 stanza: %v", err)
	}
	if _, err := NewSealedWriter(io.Discard, Seal{Password: testPassword, Recipients: []age.Recipient{k.x.Recipient()}},
		&WriterOptions{KDF: KDFPBKDF2SHA256, PBKDF2Iterations: 1000}); !errors.Is(err, ErrWeakKDF) {
		t.Fatalf("weak pbkdf2: %v", err)
	}
}

// Password-only sealing stays version 1.
func TestSealPasswordOnlyIsV1(t *testing.T) {
	f := seal(t, []byte("x"), Seal{Password: testPassword}, nil)
	if Version(f) != 1 {
		t.Fatalf("version %d", Version(f))
	}
	if _, err := openWith(f, Unlock{Identities: []age.Identity{sshKeys(t).edID}}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("v1 with an identity: %v", err)
	}
}

func TestV2FileKey(t *testing.T) {
	k := sshKeys(t)
	plain := randomBytes(3*chunk/2, 9)
	f := seal(t, plain, Seal{Recipients: []age.Recipient{k.edRcp}}, nil)
	fk, err := UnwrapFileKey(bytes.NewReader(f), Unlock{Identities: []age.Identity{k.edID}})
	if err != nil || len(fk) != fileKeySize {
		t.Fatalf("UnwrapFileKey: %v", err)
	}
	got, err := openWith(f, Unlock{FileKey: fk})
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open with the file key: %v", err)
	}
	// The file key of another file (same recipient) opens nothing here.
	other := seal(t, plain, Seal{Recipients: []age.Recipient{k.edRcp}}, nil)
	ofk, _ := UnwrapFileKey(bytes.NewReader(other), Unlock{Identities: []age.Identity{k.edID}})
	if _, err := openWith(f, Unlock{FileKey: ofk}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another file's key: %v", err)
	}
	if _, err := openWith(f, Unlock{FileKey: fk[:8]}); !errors.Is(err, ErrWrongKey) || strings.Contains(err.Error(), string(fk)) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := UnwrapFileKey(bytes.NewReader(f), Unlock{Identities: []age.Identity{k.rsaID}}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong identity: %v", err)
	}
	v1 := encrypt(t, []byte("x"), nil)
	if _, err := UnwrapFileKey(bytes.NewReader(v1), Unlock{Password: testPassword}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("v1: %v", err)
	}
	// Reopen: the second pass reuses the keys, and refuses another header.
	r, err := Open(bytes.NewReader(f), Unlock{FileKey: fk})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r2, err := r.Reopen(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, r2); err != nil || !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := r.Reopen(bytes.NewReader(other)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reopen on another file: %v", err)
	}
}

// The header is read exactly: nothing past it is consumed, so a caller can
// fetch just the header (the CLI does, from the node).
func TestV2ReadsExactlyTheHeader(t *testing.T) {
	k := sshKeys(t)
	f := seal(t, nil, Seal{Recipients: []age.Recipient{k.x.Recipient()}}, nil)
	hlen := 64 + v2SectionLen(f) + 56
	r := bytes.NewReader(f)
	if _, err := UnwrapFileKey(r, Unlock{Identities: []age.Identity{k.x}}); err != nil {
		t.Fatal(err)
	}
	if r.Len() != len(f)-hlen || len(f)-hlen != 32 {
		t.Fatalf("left %d of %d bytes, header %d", r.Len(), len(f), hlen)
	}
}

func TestV2Damaged(t *testing.T) {
	k := sshKeys(t)
	plain := randomBytes(2*chunk+10, 10)
	f := seal(t, plain, Seal{Recipients: []age.Recipient{k.edRcp, k.rsaRcp}}, nil)
	l := v2SectionLen(f)
	hlen := 64 + l + 56
	// Stanza 1 is ssh-ed25519: its body starts after the type and args.
	resum2 := func(mod func([]byte) []byte) func([]byte) []byte {
		return func(b []byte) []byte {
			b = mod(b)
			n := 64 + v2SectionLen(b) + 48
			if n <= len(b)-8 {
				s := sha256.Sum256(b[:n])
				copy(b[n:], s[:8])
			}
			return b
		}
	}
	rsaBody := 64 + l - 256 // the RSA stanza's OAEP body ends the section
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
		id   age.Identity
		want error
	}{
		{"flipped stanza byte", flip(70, 0), k.edID, ErrCorrupt},
		{"flipped section length", flip(15, 1), k.edID, ErrCorrupt},
		{"huge section length", putU32(12, 1<<30), k.edID, ErrCorrupt},
		{"flipped salt", flip(20, 3), k.edID, ErrCorrupt},
		{"flipped key check", flip(64+l, 0), k.edID, ErrCorrupt},
		{"flipped mac", flip(64+l+16, 0), k.edID, ErrCorrupt},
		{"truncated header", truncate(hlen - 1), k.edID, ErrCorrupt},
		{"truncated fixed part", truncate(30), k.edID, ErrCorrupt},
		// A deliberate tamperer fixes the checksum: the header MAC, under
		// the file key, still catches it.
		{"tampered other recipient's stanza", resum2(flip(rsaBody+5, 2)), k.edID, ErrCorrupt},
		{"tampered iv", resum2(flip(50, 0)), k.rsaID, ErrCorrupt},
		{"tampered codec", resum2(setByte(10, 9)), k.rsaID, ErrCorrupt},
		{"tampered chunk size", resum2(setByte(9, 11)), k.rsaID, ErrCorrupt},
		{"tampered reserved", resum2(setByte(11, 1)), k.rsaID, ErrUnsupported},
		{"tampered stanza count", resum2(setByte(65, 3)), k.rsaID, ErrCorrupt},
		{"tampered own stanza", resum2(flip(rsaBody+5, 2)), k.rsaID, ErrWrongKey},
		{"flipped body", flip(hlen+100, 0), k.edID, ErrCorrupt},
		{"truncated body", truncate(len(f) - 1), k.edID, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mod(bytes.Clone(f))
			got, err := openWith(b, Unlock{Identities: []age.Identity{tc.id}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			_, verr := VerifyWith(bytes.NewReader(b), Unlock{Identities: []age.Identity{tc.id}})
			if !errors.Is(verr, tc.want) {
				t.Fatalf("VerifyWith: %v", verr)
			}
			if tc.want != ErrCorrupt || !strings.Contains(tc.name, "body") {
				if len(got) != 0 {
					t.Fatalf("%d bytes released from a bad header", len(got))
				}
			}
		})
	}
}

// A recipient who knows the file key could rebuild the stanzas, but a
// stanza that opens to a different key than the header's is refused.
func TestV2SwappedStanza(t *testing.T) {
	k := sshKeys(t)
	a := seal(t, []byte("a"), Seal{Recipients: []age.Recipient{k.x.Recipient()}}, nil)
	b := seal(t, []byte("b"), Seal{Recipients: []age.Recipient{k.x.Recipient()}}, nil)
	if v2SectionLen(a) != v2SectionLen(b) {
		t.Fatal("section lengths differ")
	}
	l := v2SectionLen(a)
	mixed := bytes.Clone(a)
	copy(mixed[64:64+l], b[64:64+l])
	n := 64 + l + 48
	s := sha256.Sum256(mixed[:n])
	copy(mixed[n:], s[:8])
	_, err := openWith(mixed, Unlock{Identities: []age.Identity{k.x}})
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "does not hold this file's key") {
		t.Fatalf("err %v", err)
	}
}

func TestStanzaCodec(t *testing.T) {
	in := []*age.Stanza{{Type: "X25519", Args: []string{"abc"}, Body: []byte{1, 2, 3}}, {Type: "t", Body: nil}}
	b, err := encodeStanzas(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeStanzas(b)
	if err != nil || len(out) != 2 || out[0].Type != "X25519" || out[0].Args[0] != "abc" || !bytes.Equal(out[0].Body, in[0].Body) ||
		out[1].Type != "t" || len(out[1].Args) != 0 || len(out[1].Body) != 0 {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	for name, bad := range map[string][]byte{
		"trailing":   append(bytes.Clone(b), 0),
		"no stanzas": {0, 0},
		"space":      {0, 1, 1, ' ', 0, 0, 0},
		"empty type": {0, 1, 0, 0, 0, 0},
		"short body": {0, 1, 1, 'a', 0, 0, 5, 1},
	} {
		if _, err := decodeStanzas(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := encodeStanzas([]*age.Stanza{{Type: "has space"}}); err == nil {
		t.Error("a type with a space was encoded")
	}
}

func TestReadHeader(t *testing.T) {
	k := sshKeys(t)
	f2 := seal(t, []byte("two"), Seal{Recipients: []age.Recipient{k.x.Recipient()}}, nil)
	h, err := ReadHeader(bytes.NewReader(f2))
	if err != nil || len(h) != 64+v2SectionLen(f2)+56 || !bytes.Equal(h, f2[:len(h)]) {
		t.Fatalf("v2: %d bytes, %v", len(h), err)
	}
	if fk, err := UnwrapFileKey(bytes.NewReader(h), Unlock{Identities: []age.Identity{k.x}}); err != nil || len(fk) != 16 {
		t.Fatalf("unwrap from the header alone: %v", err)
	}
	f1 := encrypt(t, []byte("one"), nil)
	if h, err := ReadHeader(bytes.NewReader(f1)); err != nil || len(h) != headerSize {
		t.Fatalf("v1: %v", err)
	}
	if _, err := ReadHeader(bytes.NewReader(flip(100, 0)(bytes.Clone(f1)))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged v1: %v", err)
	}
	if _, err := ReadHeader(strings.NewReader("PK\x03\x04 not a0")); !errors.Is(err, ErrNotA0) {
		t.Fatalf("foreign: %v", err)
	}
}

// HeaderStanzas lists a header's recipients without any key, as an opened
// Reader's Stanzas does; nil for version 1, and a damaged header is
// refused, not described.
func TestHeaderStanzas(t *testing.T) {
	k := sshKeys(t)
	f2 := seal(t, []byte("two"), Seal{Recipients: []age.Recipient{k.edRcp, k.x.Recipient()}}, nil)
	h, err := ReadHeader(bytes.NewReader(f2))
	if err != nil {
		t.Fatal(err)
	}
	got, err := HeaderStanzas(h)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(bytes.NewReader(f2), Unlock{Identities: []age.Identity{k.x}})
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Stanzas(); len(got) != 2 || !strings.HasPrefix(got[0], "ssh-ed25519 ") || got[1] != "X25519" || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("HeaderStanzas %q, the opened reader says %q", got, want)
	}
	if s, err := HeaderStanzas(encrypt(t, []byte("one"), nil)[:headerSize]); s != nil || err != nil {
		t.Fatalf("v1: %q, %v", s, err)
	}
	if _, err := HeaderStanzas(flip(70, 0)(bytes.Clone(h))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged: %v", err)
	}
}
