package crypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// rec is the file offset of record k with the default chunk size.
func rec(k int) int { return headerSize + k*(chunk+tagSize) }

func flip(off int, bit uint) func([]byte) []byte {
	return func(b []byte) []byte { b[off] ^= 1 << bit; return b }
}

// resum applies f and then fixes the header checksum, as a deliberate
// tamperer (not an accident) would.
func resum(f func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		b = f(b)
		s := headerSum(b)
		copy(b[offSum:], s[:])
		return b
	}
}

func putU32(off int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
}

func setByte(off int, v byte) func([]byte) []byte {
	return func(b []byte) []byte { b[off] = v; return b }
}

func truncate(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }

func record(b []byte, k int) []byte { return bytes.Clone(b[rec(k):rec(k+1)]) }

func swap(i, j int) func([]byte) []byte {
	return func(b []byte) []byte {
		ri, rj := record(b, i), record(b, j)
		copy(b[rec(i):], rj)
		copy(b[rec(j):], ri)
		return b
	}
}

func dup(k int) func([]byte) []byte {
	return func(b []byte) []byte { return append(b[:rec(k+1):rec(k+1)], append(record(b, k), b[rec(k+1):]...)...) }
}

func drop(k int) func([]byte) []byte {
	return func(b []byte) []byte { return append(b[:rec(k):rec(k)], b[rec(k+1):]...) }
}

func appendBytes(extra []byte) func([]byte) []byte {
	return func(b []byte) []byte { return append(b, extra...) }
}

func TestCorruption(t *testing.T) {
	const (
		size35 = 3*chunk + chunk/2 // records 0..2 full, record 3 half
		size2  = 2 * chunk         // the final record is full
		header = -1
	)
	plains := map[int][]byte{size35: randomBytes(size35, 35), size2: randomBytes(size2, 2)}
	files := map[int][]byte{size35: encrypt(t, plains[size35], nil), size2: encrypt(t, plains[size2], nil)}

	for _, tc := range []struct {
		name   string
		size   int // which base file
		mutate func([]byte) []byte
		want   error
		// For *CorruptError: where it is reported and how much plaintext
		// (the authentic records before it) was released.
		chunk    int64
		offset   int64
		released int
	}{
		// Accidental damage to the header: reported as corruption, never as a
		// wrong password.
		{"magic bit", size35, flip(2, 0), ErrNotA0, 0, 0, 0},
		{"version bit", size35, flip(offVersion, 1), ErrUnsupported, 0, 0, 0},
		{"kdf id bit", size35, flip(offKDF, 0), ErrCorrupt, header, 0, 0},
		{"chunk exponent bit", size35, flip(offChunkExp, 0), ErrCorrupt, header, 0, 0},
		{"codec bit", size35, flip(offCodec, 1), ErrCorrupt, header, 0, 0},
		{"kdf params bit", size35, flip(offParams+6, 3), ErrCorrupt, header, 0, 0},
		{"salt bit", size35, flip(offSalt+5, 7), ErrCorrupt, header, 0, 0},
		{"iv bit", size35, flip(offIV+15, 0), ErrCorrupt, header, 0, 0},
		{"password check bit", size35, flip(offCheck+3, 2), ErrCorrupt, header, 0, 0},
		{"header mac bit", size35, flip(offMAC+31, 5), ErrCorrupt, header, 0, 0},
		{"checksum bit", size35, flip(offSum, 0), ErrCorrupt, header, 0, 0},

		// Deliberate header edits with a recomputed checksum.
		{"tampered iv", size35, resum(flip(offIV, 0)), ErrCorrupt, header, offMAC, 0},
		{"tampered codec", size35, resum(setByte(offCodec, 2)), ErrCorrupt, header, offMAC, 0},
		{"tampered header mac", size35, resum(flip(offMAC, 0)), ErrCorrupt, header, offMAC, 0},
		{"tampered chunk size", size35, resum(setByte(offChunkExp, 16)), ErrCorrupt, header, offMAC, 0},
		// A changed salt cannot be told from a wrong password (docs/security.md).
		{"tampered salt", size35, resum(flip(offSalt, 0)), ErrWrongPassword, 0, 0, 0},
		// Issue 13 finding 8: a changed check value or argon2 parameter is
		// a damaged file, not a wrong password.
		{"tampered password check", size35, resum(flip(offCheck, 0)), ErrCorrupt, header, offCheck, 0},
		{"tampered argon2 time", size35, resum(putU32(offParams, DefaultArgon2Time+1)), ErrCorrupt, header, offParams, 0},
		{"tampered argon2 threads", size35, resum(putU32(offParams+8, DefaultArgon2Threads-1)), ErrCorrupt, header, offParams, 0},
		{"tampered argon2 memory", size35, resum(putU32(offParams+4, DefaultArgon2MemoryKiB/2)), ErrCorrupt, header, offParams, 0},
		// Issue 13 finding 15: bounded to what a0 writes plus a margin.
		{"argon2 memory 512 MiB", size35, resum(putU32(offParams+4, 512<<10)), ErrUnsupported, 0, 0, 0},
		{"argon2 time 7", size35, resum(putU32(offParams, 7)), ErrUnsupported, 0, 0, 0},
		{"argon2 17 threads", size35, resum(putU32(offParams+8, 17)), ErrUnsupported, 0, 0, 0},
		{"unknown version 3", size35, resum(setByte(offVersion, 3)), ErrUnsupported, 0, 0, 0},
		{"unknown kdf", size35, resum(setByte(offKDF, 7)), ErrUnsupported, 0, 0, 0},
		{"chunk exponent 30", size35, resum(setByte(offChunkExp, 30)), ErrUnsupported, 0, 0, 0},
		{"argon2 memory 2 GiB", size35, resum(putU32(offParams+4, 2<<20)), ErrUnsupported, 0, 0, 0},
		{"argon2 time 1000", size35, resum(putU32(offParams, 1000)), ErrUnsupported, 0, 0, 0},
		{"argon2 zero threads", size35, resum(putU32(offParams+8, 0)), ErrUnsupported, 0, 0, 0},
		{"pbkdf2 100M iterations", size35, resum(func(b []byte) []byte {
			b[offKDF] = byte(KDFPBKDF2SHA256)
			putU32(offParams, 100_000_000)(b)
			putU32(offParams+4, 0)(b)
			return putU32(offParams+8, 0)(b)
		}), ErrUnsupported, 0, 0, 0},

		// Records.
		{"first chunk bit", size35, flip(rec(0)+10, 0), ErrCorrupt, 0, int64(rec(0)), 0},
		{"middle chunk bit", size35, flip(rec(1)+500_000, 4), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"last chunk bit", size35, flip(rec(3)+5, 7), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},
		{"tag bit", size35, flip(rec(2)+chunk+3, 1), ErrCorrupt, 2, int64(rec(2)), 2 * chunk},
		{"last tag bit", size35, flip(len(files[size35])-1, 0), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},

		// Truncation.
		{"truncated to nothing", size35, truncate(0), ErrCorrupt, header, 0, 0},
		{"truncated in magic", size35, truncate(5), ErrCorrupt, header, 5, 0},
		{"truncated after magic", size35, truncate(8), ErrCorrupt, header, 8, 0},
		{"truncated mid-header", size35, truncate(100), ErrCorrupt, header, 100, 0},
		{"truncated at boundary 0", size35, truncate(rec(0)), ErrCorrupt, 0, int64(rec(0)), 0},
		{"truncated at boundary 1", size35, truncate(rec(1)), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"truncated at boundary 2", size35, truncate(rec(2)), ErrCorrupt, 2, int64(rec(2)), 2 * chunk},
		{"truncated at boundary 3", size35, truncate(rec(3)), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},
		{"truncated at boundary 1 of 2", size2, truncate(rec(1)), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"truncated mid-chunk", size35, truncate(rec(1) + 1000), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"truncated inside a tag-sized stub", size35, truncate(rec(1) + 10), ErrCorrupt, 1, int64(rec(1) + 10), chunk},
		{"truncated mid last chunk", size35, truncate(rec(3) + 100), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},
		{"last byte cut", size35, truncate(len(files[size35]) - 1), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},

		// Reordering, duplication, removal, additions.
		{"chunks 0 and 1 swapped", size35, swap(0, 1), ErrCorrupt, 0, int64(rec(0)), 0},
		{"chunks 1 and 2 swapped", size35, swap(1, 2), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"chunk 1 duplicated", size35, dup(1), ErrCorrupt, 2, int64(rec(2)), 2 * chunk},
		{"chunk 1 dropped", size35, drop(1), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"final chunk dropped", size2, drop(1), ErrCorrupt, 1, int64(rec(1)), chunk},
		{"byte appended", size35, appendBytes([]byte{0}), ErrCorrupt, 3, int64(rec(3)), 3 * chunk},
		{"final record repeated", size35, func(b []byte) []byte { return append(b, b[rec(3):]...) }, ErrCorrupt, 3, int64(rec(3)), 3 * chunk},
		{"byte after full final record", size2, appendBytes([]byte{0}), ErrCorrupt, 2, int64(rec(2)), 2 * chunk},
		{"record appended after full final record", size2, func(b []byte) []byte { return append(b, record(b, 0)...) }, ErrCorrupt, 2, int64(rec(2)), 2 * chunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := plains[tc.size]
			enc := tc.mutate(bytes.Clone(files[tc.size]))
			check := func(what string, released int64, err error) {
				t.Helper()
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: err %v, want %v", what, err, tc.want)
				}
				if strings.Contains(err.Error(), string(testPassword)) {
					t.Fatalf("%s: error text contains the password", what)
				}
				var ce *CorruptError
				if errors.As(err, &ce) != (tc.want == ErrCorrupt) {
					t.Fatalf("%s: %v: *CorruptError is %v, want %v", what, err, !(tc.want == ErrCorrupt), tc.want == ErrCorrupt)
				}
				if ce != nil && (ce.Chunk != tc.chunk || ce.Offset != tc.offset) {
					t.Fatalf("%s: %v: chunk %d offset %d, want chunk %d offset %d", what, err, ce.Chunk, ce.Offset, tc.chunk, tc.offset)
				}
				if released != int64(tc.released) {
					t.Fatalf("%s: released %d bytes, want %d", what, released, tc.released)
				}
			}
			out, err := decrypt(enc, testPassword)
			check("reader", int64(len(out)), err)
			if !bytes.Equal(out, plain[:len(out)]) {
				t.Fatal("released plaintext is not a prefix of the original")
			}
			n, err := Verify(bytes.NewReader(enc), testPassword)
			check("Verify", n, err)
		})
	}
}

// The writer never produces an empty final record after data; the reader
// refuses one even though it authenticates.
func TestEmptyFinalRecordAfterData(t *testing.T) {
	var buf bytes.Buffer
	wc, err := NewWriter(&buf, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := wc.(*writer)
	w.Write(randomBytes(chunk, 9))
	if err := w.flush(false); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := decrypt(buf.Bytes(), testPassword)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Chunk != 1 || len(out) != chunk {
		t.Fatalf("err %v, released %d; want CorruptError at chunk 1 after %d bytes", err, len(out), chunk)
	}
}
