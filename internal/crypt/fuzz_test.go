package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"filippo.io/age"
)

// FuzzReader feeds arbitrary bytes to the reader with a fixed password. It
// must never panic or hang, must fail only with the package's error kinds, and
// Verify must reach the same verdict on the same bytes. Seeds are valid files
// with 1 KiB chunks so multi-record inputs stay small.
func FuzzReader(f *testing.F) {
	for _, size := range []int{0, 1, 1024, 2500} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testPassword, &WriterOptions{chunkExp: minChunkExp})
		if err != nil {
			f.Fatal(err)
		}
		w.Write(randomBytes(size, uint64(size)))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("Salted__0123456789abcdef"))
	f.Add(magic[:])

	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang would stall the fuzzer silently; fail loudly instead.
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("slow input: %v, len %d", d, len(data))
			}
		}()
		var out bytes.Buffer
		r, err := NewReader(bytes.NewReader(data), testPassword)
		if err == nil {
			_, err = io.Copy(&out, r)
		}
		if err != nil && !errors.Is(err, ErrNotA0) && !errors.Is(err, ErrUnsupported) &&
			!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		n, verr := Verify(bytes.NewReader(data), testPassword)
		if (err == nil) != (verr == nil) {
			t.Fatalf("reader says %v, Verify says %v", err, verr)
		}
		if err == nil && n != int64(out.Len()) {
			t.Fatalf("Verify size %d, reader produced %d", n, out.Len())
		}
	})
}

// FuzzHeaderV2 feeds arbitrary bytes to the version 2 header parser and
// reader, opened with an X25519 and an ssh-ed25519 identity (no password:
// a mutated KDF parameter would make each input cost seconds; the password
// stanza's parameters are still parsed and range-checked). It must never
// panic or hang, must fail only with the package's error kinds, and Verify
// and UnwrapFileKey must agree with the reader about the header.
func FuzzHeaderV2(f *testing.F) {
	k := sshKeys(f)
	for i, s := range []Seal{
		{Recipients: []age.Recipient{k.x.Recipient()}},
		{Recipients: []age.Recipient{k.edRcp, k.x.Recipient()}},
		{Recipients: []age.Recipient{k.rsaRcp, k.edRcp}},
		{Password: testPassword, Recipients: []age.Recipient{k.edRcp}},
	} {
		var buf bytes.Buffer
		w, err := NewSealedWriter(&buf, s, &WriterOptions{chunkExp: minChunkExp})
		if err != nil {
			f.Fatal(err)
		}
		w.Write(randomBytes(i*700, uint64(i)))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(append(append([]byte{}, magic[:]...), 2))

	ids := Unlock{Identities: []age.Identity{k.x, k.edID}}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("slow input: %v, len %d", d, len(data))
			}
		}()
		checkV2Input(t, data, ids)
		// Most mutations break the checksum; also try each input with its
		// checksum fixed, as a deliberate tamperer would, to reach the
		// stanza parser and the identities.
		if Version(data) == 2 && len(data) >= 16 {
			if n := 64 + int(binary.BigEndian.Uint32(data[12:])) + 48; n > 0 && n+8 <= len(data) {
				fixed := bytes.Clone(data)
				s := sha256.Sum256(fixed[:n])
				copy(fixed[n:], s[:8])
				checkV2Input(t, fixed, ids)
			}
		}
	})
}

func checkV2Input(t *testing.T, data []byte, ids Unlock) {
	{
		var out bytes.Buffer
		r, err := Open(bytes.NewReader(data), ids)
		openErr := err
		if err == nil {
			_, err = io.Copy(&out, r)
		}
		if err != nil && !errors.Is(err, ErrNotA0) && !errors.Is(err, ErrUnsupported) &&
			!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		n, verr := VerifyWith(bytes.NewReader(data), ids)
		if (err == nil) != (verr == nil) {
			t.Fatalf("reader says %v, Verify says %v", err, verr)
		}
		if err == nil && n != int64(out.Len()) {
			t.Fatalf("Verify size %d, reader produced %d", n, out.Len())
		}
		if Version(data) == 2 {
			fk, uerr := UnwrapFileKey(bytes.NewReader(data), ids)
			if (openErr == nil) != (uerr == nil) {
				t.Fatalf("Open says %v, UnwrapFileKey says %v", openErr, uerr)
			}
			if uerr == nil {
				if _, err := Open(bytes.NewReader(data), Unlock{FileKey: fk}); err != nil {
					t.Fatalf("the unwrapped file key does not open the file: %v", err)
				}
			}
		}
	}
}
