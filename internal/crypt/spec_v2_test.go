package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/argon2"
)

// TestFormatV2AsDocumented decodes a version 2 file (a password and an
// X25519 recipient) with a second, minimal implementation written from
// docs/format.md's "Version 2" alone: literal offsets and info strings, none
// of the package's code. The file key comes from the password stanza.
func TestFormatV2AsDocumented(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	plain := randomBytes(chunk+77, 43)
	f := seal(t, plain, Seal{Password: testPassword, Recipients: []age.Recipient{x.Recipient()}}, nil)

	if !bytes.Equal(f[0:8], []byte("\x89a0enc\r\n")) || f[8] != 2 || f[9] != 20 || f[10] != 1 || f[11] != 0 {
		t.Fatalf("fixed fields: % x", f[:12])
	}
	l := int(binary.BigEndian.Uint32(f[12:16]))
	if s := sha256.Sum256(f[:112+l]); !bytes.Equal(s[:8], f[112+l:120+l]) {
		t.Fatal("checksum is not sha256(bytes 0..112+L-1)[:8]")
	}
	salt, iv, sec := f[16:48], f[48:64], f[64:64+l]

	// The stanza section.
	type stanza struct {
		typ  string
		args []string
		body []byte
	}
	var ss []stanza
	n, p := int(binary.BigEndian.Uint16(sec)), 2
	for i := 0; i < n; i++ {
		var s stanza
		tl := int(sec[p])
		s.typ, p = string(sec[p+1:p+1+tl]), p+1+tl
		argc := int(sec[p])
		p++
		for j := 0; j < argc; j++ {
			al := int(sec[p])
			s.args, p = append(s.args, string(sec[p+1:p+1+al])), p+1+al
		}
		bl := int(binary.BigEndian.Uint16(sec[p:]))
		s.body, p = sec[p+2:p+2+bl], p+2+bl
		ss = append(ss, s)
	}
	if p != l || len(ss) != 2 || ss[0].typ != "a0-argon2id" || ss[1].typ != "X25519" || len(ss[1].body) != 32 {
		t.Fatalf("stanzas %+v (parsed %d of %d bytes)", ss, p, l)
	}

	// The password stanza gives the file key.
	pw := ss[0]
	psalt, _ := base64.RawStdEncoding.DecodeString(pw.args[0])
	tm, _ := strconv.Atoi(pw.args[1])
	mem, _ := strconv.Atoi(pw.args[2])
	par, _ := strconv.Atoi(pw.args[3])
	if len(psalt) != 32 || tm != 3 || mem != 65536 || par != 4 {
		t.Fatalf("password stanza args %q", pw.args)
	}
	mk := argon2.IDKey(testPassword, psalt, uint32(tm), uint32(mem), uint8(par), 32)
	w, _ := hkdf.Key(sha256.New, mk, nil, "a0 v2 password stanza", 32)
	wb, _ := aes.NewCipher(w)
	gcm, _ := cipher.NewGCM(wb)
	fk, err := gcm.Open(nil, make([]byte, 12), pw.body, nil)
	if err != nil || len(fk) != 16 {
		t.Fatalf("password stanza: %v", err)
	}

	kenc, _ := hkdf.Key(sha256.New, fk, salt, "a0 v2 encryption key", 32)
	kmac, _ := hkdf.Key(sha256.New, fk, salt, "a0 v2 authentication key", 32)
	kc, _ := hkdf.Key(sha256.New, fk, salt, "a0 v2 key check", 16)
	if !bytes.Equal(kc, f[64+l:80+l]) {
		t.Fatal("key check mismatch")
	}
	m := hmac.New(sha256.New, kmac)
	m.Write(f[:80+l])
	if !bytes.Equal(m.Sum(nil), f[80+l:112+l]) {
		t.Fatal("header MAC is not HMAC(Kmac, bytes 0..80+L-1)")
	}

	// The body, as version 1.
	block, _ := aes.NewCipher(kenc)
	ctr := cipher.NewCTR(block, iv)
	var out []byte
	body := f[120+l:]
	for i := uint64(0); len(body) > 0; i++ {
		n := min(len(body), 1<<20+32)
		final := n == len(body)
		c, tag := body[:n-32], body[n-32:n]
		m.Reset()
		m.Write(binary.BigEndian.AppendUint64(nil, i))
		if final {
			m.Write([]byte{1})
		} else {
			m.Write([]byte{0})
		}
		m.Write(c)
		if !bytes.Equal(m.Sum(nil), tag) {
			t.Fatalf("record %d: tag mismatch", i)
		}
		pt := make([]byte, len(c))
		ctr.XORKeyStream(pt, c)
		out = append(out, pt...)
		body = body[n:]
	}
	if !bytes.Equal(out, plain) {
		t.Fatal("independent decoder disagrees")
	}
	// And the X25519 stanza holds the same key.
	if got, err := x.Unwrap([]*age.Stanza{{Type: ss[1].typ, Args: ss[1].args, Body: ss[1].body}}); err != nil || !bytes.Equal(got, fk) {
		t.Fatalf("X25519 stanza: %v", err)
	}
}
