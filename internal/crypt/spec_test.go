package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/argon2"
)

// TestFormatAsDocumented decodes a file with a second, minimal implementation
// written from docs/format.md alone (literal offsets and info strings, none of
// the package's constants or code), so the document and the code cannot drift
// apart unnoticed.
func TestFormatAsDocumented(t *testing.T) {
	plain := randomBytes(2*chunk+5, 42)
	f := encrypt(t, plain, nil)

	if !bytes.Equal(f[0:8], []byte("\x89a0enc\r\n")) || f[8] != 1 || f[9] != 1 || f[10] != 20 || f[11] != 1 {
		t.Fatalf("fixed fields: % x", f[:12])
	}
	tm, mem, par := binary.BigEndian.Uint32(f[12:]), binary.BigEndian.Uint32(f[16:]), binary.BigEndian.Uint32(f[20:])
	if tm != 3 || mem != 65536 || par != 4 {
		t.Fatalf("argon2 params t=%d m=%d p=%d", tm, mem, par)
	}
	if sum := sha256.Sum256(f[:120]); !bytes.Equal(sum[:8], f[120:128]) {
		t.Fatal("checksum is not sha256(bytes 0..119)[:8]")
	}
	salt, iv := f[24:56], f[56:72]
	mk := argon2.IDKey(testPassword, salt, tm, mem, uint8(par), 32)
	kenc, _ := hkdf.Key(sha256.New, mk, nil, "a0 v1 encryption key", 32)
	kmac, _ := hkdf.Key(sha256.New, mk, nil, "a0 v1 authentication key", 32)
	check, _ := hkdf.Key(sha256.New, mk, nil, "a0 v1 password check", 16)
	if !bytes.Equal(check, f[72:88]) {
		t.Fatal("password check mismatch")
	}
	m := hmac.New(sha256.New, kmac)
	m.Write(f[:88])
	if !bytes.Equal(m.Sum(nil), f[88:120]) {
		t.Fatal("header MAC is not HMAC(Kmac, bytes 0..87)")
	}

	block, _ := aes.NewCipher(kenc)
	ctr := cipher.NewCTR(block, iv)
	var out []byte
	body := f[128:]
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
		p := make([]byte, len(c))
		ctr.XORKeyStream(p, c)
		out = append(out, p...)
		body = body[n:]
	}
	if !bytes.Equal(out, plain) {
		t.Fatal("independent decoder disagrees")
	}
}
