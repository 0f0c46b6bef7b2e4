package pitr

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/crypt"
)

func testKey(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func entry(t testing.TB, ts bson.Timestamp, op, ns string, o bson.D) bson.Raw {
	t.Helper()
	raw, err := bson.Marshal(bson.D{{Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "o", Value: o},
		{Key: "ts", Value: ts}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)},
		{Key: "wall", Value: bson.NewDateTimeFromTime(time.Unix(int64(ts.T), 0))}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// writeChain writes n slices of per entries each, chained, and returns
// them and every entry in order.
func writeChain(t testing.TB, dir string, id *age.X25519Identity, n, per int) ([]Slice, []bson.Raw) {
	t.Helper()
	var prev [32]byte
	var out []Slice
	var all []bson.Raw
	sec := uint32(1_700_000_000)
	for i := 0; i < n; i++ {
		h := header{Version: FormatVersion, Node: "n1", ReplSet: "rs0", First: bson.Timestamp{T: sec, I: 1}, Created: time.Unix(int64(sec), 0)}
		if i > 0 {
			h.Prev = prev[:]
		}
		sw, err := createSlice(dir, []age.Recipient{id.Recipient()}, h)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < per; j++ {
			ts := bson.Timestamp{T: sec, I: uint32(j + 1)}
			raw := entry(t, ts, "i", "shop.orders", bson.D{{Key: "_id", Value: i*per + j}, {Key: "pad", Value: strings.Repeat("x", 200)}})
			if err := sw.add(raw, ts); err != nil {
				t.Fatal(err)
			}
			all = append(all, raw)
		}
		s, err := sw.finish(nil)
		if err != nil {
			t.Fatal(err)
		}
		prev = s.SHA256
		out = append(out, s)
		sec++
	}
	return out, all
}

func unlockWith(id age.Identity) crypt.Unlock { return crypt.Unlock{Identities: []age.Identity{id}} }

func TestVerifyChain(t *testing.T) {
	ctx := context.Background()
	id := testKey(t)

	t.Run("intact", func(t *testing.T) {
		dir := t.TempDir()
		slices, all := writeChain(t, dir, id, 4, 50)
		p, err := Verify(ctx, dir, unlockWith(id))
		if err != nil {
			t.Fatal(err)
		}
		if p.Slices != 4 || p.Entries != 200 || len(p.Windows) != 1 {
			t.Fatalf("proof %+v", p)
		}
		if w := p.Windows[0]; w.From != slices[0].First || w.To != slices[3].Last {
			t.Fatalf("window %+v", w)
		}
		a, err := Open(dir, unlockWith(id))
		if err != nil {
			t.Fatal(err)
		}
		var got []bson.Raw
		if err := a.Entries(ctx, bson.Timestamp{}, bson.Timestamp{T: ^uint32(0)}, func(r bson.Raw) error {
			got = append(got, append(bson.Raw(nil), r...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(all) {
			t.Fatalf("%d entries, want %d", len(got), len(all))
		}
		for i := range all {
			if !bytes.Equal(got[i], all[i]) {
				t.Fatalf("entry %d differs", i)
			}
		}
		// A range inside one slice and across two.
		n := 0
		from, to := bson.Timestamp{T: slices[1].First.T, I: 40}, bson.Timestamp{T: slices[2].First.T, I: 10}
		if err := a.Entries(ctx, from, to, func(bson.Raw) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 11+10 {
			t.Fatalf("range holds %d entries, want 21", n)
		}
	})

	cases := []struct {
		name   string
		break_ func(t *testing.T, slices []Slice)
		// bad is the index of the slice the error must name.
		bad   int
		chain bool // the error is ErrChain (not the slice's own content)
	}{
		{"tampered", func(t *testing.T, s []Slice) { flipByte(t, s[2].Path, s[2].Size/2) }, 2, false},
		{"tampered header", func(t *testing.T, s []Slice) { flipByte(t, s[1].Path, 40) }, 1, false},
		{"truncated", func(t *testing.T, s []Slice) { os.Truncate(s[2].Path, s[2].Size-10) }, 2, false},
		{"appended", func(t *testing.T, s []Slice) { appendBytes(t, s[1].Path, []byte("junk")) }, 1, false},
		{"missing", func(t *testing.T, s []Slice) { os.Remove(s[1].Path) }, 2, true},
		{"reordered", func(t *testing.T, s []Slice) {
			// Slice 2's file under slice 1's name and the reverse.
			tmp := s[1].Path + ".x"
			os.Rename(s[1].Path, tmp)
			os.Rename(s[2].Path, s[1].Path)
			os.Rename(tmp, s[2].Path)
		}, 1, false},
		{"replaced by a valid slice of another chain", func(t *testing.T, s []Slice) {
			// Same names, same key, same entries: another chain.
			o2, _ := writeChain(t, t.TempDir(), id, 3, 50)
			data, err := os.ReadFile(o2[2].Path)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(s[2].Path, data, 0o600)
		}, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			slices, _ := writeChain(t, dir, id, 4, 50)
			c.break_(t, slices)
			_, err := Verify(ctx, dir, unlockWith(id))
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify: %v, want a *ChainError", err)
			}
			if ce.Slice != slices[c.bad].Name || !strings.Contains(err.Error(), slices[c.bad].Name) {
				t.Fatalf("error names %q, want %q: %v", ce.Slice, slices[c.bad].Name, err)
			}
			if errors.Is(err, ErrChain) != c.chain {
				t.Fatalf("errors.Is(ErrChain) = %v: %v", !c.chain, err)
			}
			// Entries over the whole range refuses the archive too.
			a, _ := Open(dir, unlockWith(id))
			if err := a.Entries(ctx, bson.Timestamp{}, bson.Timestamp{T: ^uint32(0)}, func(bson.Raw) error { return nil }); !errors.As(err, &ce) {
				t.Fatalf("Entries: %v, want a *ChainError", err)
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		dir := t.TempDir()
		writeChain(t, dir, id, 1, 5)
		_, err := Verify(ctx, dir, unlockWith(testKey(t)))
		if !errors.Is(err, crypt.ErrWrongKey) {
			t.Fatalf("Verify: %v, want ErrWrongKey", err)
		}
		// Said as a key that does not open it, not as a broken archive
		// (the #26 review: it read as tampering); still a *ChainError.
		var ce *ChainError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "NOT OPENED") || strings.Contains(err.Error(), "broken") {
			t.Fatalf("Verify: %q, want a ChainError saying NOT OPENED, not broken", err)
		}
	})
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(b)
}

// TestHostileSlices feeds the reader authentic slices (encrypted to the
// reader's own key, so crypt accepts them) whose plaintext lies: a
// reader must refuse each with a bounded effort and a *SliceError.
func TestHostileSlices(t *testing.T) {
	ctx := context.Background()
	id := testKey(t)
	ts := bson.Timestamp{T: 1_700_000_000, I: 1}
	hdr := func(h header) []byte {
		raw, err := bson.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := header{Version: FormatVersion, First: ts}
	ent := entry(t, ts, "i", "a.b", bson.D{{Key: "_id", Value: 1}})
	frame := func(kind byte, doc []byte) []byte { return append([]byte{kind}, doc...) }
	trl := func(last bson.Timestamp, n int64) []byte {
		raw, _ := bson.Marshal(trailer{Last: last, Count: n})
		return raw
	}
	lenPrefix := func(n uint32) []byte {
		b := make([]byte, 4)
		binary.LittleEndian.PutUint32(b, n)
		return b
	}
	cases := []struct {
		name  string
		plain []byte // before compression: magic+header are prepended when hdr is set
		hdr   []byte
		body  [][]byte // frames, compressed
		codec crypt.Codec
		want  string
	}{
		{name: "codec", hdr: hdr(good), codec: crypt.CodecTarGzip, want: "not an oplog slice"},
		{name: "magic", plain: []byte("NOTOPLOG"), want: "magic"},
		{name: "huge header", plain: append(append(magic[:0:0], magic[:]...), lenPrefix(1<<30)...), want: "at most"},
		{name: "version", hdr: hdr(header{Version: 9, First: ts}), want: "format version 9"},
		{name: "chain hash size", hdr: hdr(header{Version: FormatVersion, First: ts, Prev: []byte{1, 2}}), want: "chain hash"},
		{name: "no trailer", hdr: hdr(good), body: [][]byte{frame(frameEntry, ent)}, want: "without a trailer"},
		{name: "huge entry", hdr: hdr(good), body: [][]byte{append([]byte{frameEntry}, lenPrefix(MaxEntryBytes+1)...)}, want: "at most"},
		{name: "negative entry", hdr: hdr(good), body: [][]byte{append([]byte{frameEntry}, lenPrefix(0xFFFFFFF0)...)}, want: "document of"},
		{name: "count lies", hdr: hdr(good), body: [][]byte{frame(frameEntry, ent), frame(frameTrailer, trl(ts, 2))}, want: "trailer says"},
		{name: "empty slice", hdr: hdr(good), body: [][]byte{frame(frameTrailer, trl(ts, 0))}, want: "trailer says"},
		{name: "after trailer", hdr: hdr(good), body: [][]byte{frame(frameEntry, ent), frame(frameTrailer, trl(ts, 1)), frame(frameEntry, ent)}, want: "after the trailer"},
		{name: "name lies", hdr: hdr(header{Version: FormatVersion, First: bson.Timestamp{T: 5}}), body: [][]byte{frame(frameEntry, ent), frame(frameTrailer, trl(ts, 1))}, want: "not what its name says"},
		{name: "unknown frame", hdr: hdr(good), body: [][]byte{frame('X', ent)}, want: "unknown frame"},
		{name: "invalid bson", hdr: hdr(good), body: [][]byte{append([]byte{frameEntry}, append(lenPrefix(12), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)...)}, want: "entry 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			codec := c.codec
			if codec == 0 {
				codec = crypt.CodecOplogSlice
			}
			w, err := crypt.NewSealedWriter(&buf, crypt.Seal{Recipients: []age.Recipient{id.Recipient()}}, &crypt.WriterOptions{Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			if c.plain != nil {
				w.Write(c.plain)
			} else {
				w.Write(magic[:])
				w.Write(c.hdr)
				zw := newTestZstd(t, w)
				for _, f := range c.body {
					zw.Write(f)
				}
				zw.Close()
			}
			w.Close()
			dir := t.TempDir()
			name := SliceName(ts, ts)
			if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Verify(ctx, dir, unlockWith(id))
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Slice != name || !errors.Is(err, ErrSlice) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify: %v, want a *ChainError naming %s, matching ErrSlice, saying %q", err, name, c.want)
			}
		})
	}
}

func TestSliceNames(t *testing.T) {
	a := SliceName(bson.Timestamp{T: 9, I: 99}, bson.Timestamp{T: 10, I: 1})
	b := SliceName(bson.Timestamp{T: 10, I: 2}, bson.Timestamp{T: 100, I: 0})
	if !(a < b) {
		t.Fatalf("%s does not sort before %s", a, b)
	}
	for _, bad := range []string{"1-2.oplog", "0000000010.0000000000-0000000009.0000000000.oplog", "9999999999.0000000000-9999999999.0000000000.oplog", a + ".part"} {
		if _, _, ok := ParseSliceName(bad); ok {
			t.Errorf("ParseSliceName(%q) accepted", bad)
		}
	}
	f, l, ok := ParseSliceName(a)
	if !ok || f != (bson.Timestamp{T: 9, I: 99}) || l != (bson.Timestamp{T: 10, I: 1}) {
		t.Fatalf("ParseSliceName(%q) = %v %v %v", a, f, l, ok)
	}
}

func TestWindowsCutAtGaps(t *testing.T) {
	ts := func(s uint32) bson.Timestamp { return bson.Timestamp{T: s, I: 1} }
	slices := []Slice{{First: ts(1), Last: ts(2)}, {First: ts(3), Last: ts(4)}, {First: ts(10), Last: ts(11)}, {First: ts(12), Last: ts(13)}}
	gaps := []Gap{{From: ts(4), To: ts(10), Reason: ReasonRolledOff}}
	got := windows(slices, gaps)
	want := []Window{{From: ts(1), To: ts(4)}, {From: ts(10), To: ts(13)}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("windows %v, want %v", got, want)
	}
	// A gap no slice followed yet ends the last window where it is.
	if got := windows(slices, []Gap{{From: ts(13)}}); len(got) != 1 || got[0].To != ts(13) {
		t.Fatalf("windows %v", got)
	}
}

func newTestZstd(t *testing.T, w io.Writer) *zstd.Encoder {
	t.Helper()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	return zw
}

// TestEntriesRefuseAnotherSet: with Archive.ReplSet (a restore's base
// backup's set), a slice whose authenticated header names another set is
// refused before any of its entries is given out; the chain alone cannot
// tell, as one set's slices chain among themselves.
func TestEntriesRefuseAnotherSet(t *testing.T) {
	ctx := context.Background()
	id := testKey(t)
	dir := t.TempDir()
	_, all := writeChain(t, dir, id, 3, 10) // replica set rs0
	for _, tc := range []struct {
		want    string
		entries int
		refused bool
	}{
		{want: "rs0", entries: len(all)},
		{want: "", entries: len(all)},
		{want: "rsB", refused: true},
	} {
		t.Run(fmt.Sprintf("want %q", tc.want), func(t *testing.T) {
			a, err := Open(dir, unlockWith(id))
			if err != nil {
				t.Fatal(err)
			}
			a.ReplSet = tc.want
			n := 0
			err = a.Entries(ctx, bson.Timestamp{}, bson.Timestamp{T: math.MaxUint32}, func(bson.Raw) error { n++; return nil })
			var se *SetError
			if tc.refused != errors.As(err, &se) || n != tc.entries {
				t.Fatalf("err %v, %d entries: want refused %v, %d entries", err, n, tc.refused, tc.entries)
			}
			if tc.refused && (se.Got != "rs0" || se.Want != "rsB" || !strings.Contains(se.Error(), `"rs0"`) || !strings.Contains(se.Error(), `"rsB"`)) {
				t.Fatalf("refusal %+v does not name both sets: %v", se, se)
			}
		})
	}
}

// TestEntriesProvesNoSliceMissingBeforeTo: a range ending between two
// slices (in the stretch a missing slice held) is refused naming the
// slice after it, whose hash does not chain on to the last one read:
// names alone cannot tell a missing slice from a stretch without
// writes, and a restore to a time inside the hole must not end early
// and call itself done. An intact archive serves the same range.
func TestEntriesProvesNoSliceMissingBeforeTo(t *testing.T) {
	ctx := context.Background()
	id := testKey(t)
	count := func(a *Archive, to bson.Timestamp) (int, error) {
		n := 0
		err := a.Entries(ctx, bson.Timestamp{}, to, func(bson.Raw) error { n++; return nil })
		return n, err
	}
	cases := []struct {
		name    string
		remove  bool // slice 2 missing
		to      func(s []Slice) bson.Timestamp
		entries int // streamed, when accepted
		refused int // index of the slice named, -1: accepted
	}{
		{"intact, to inside a stretch", false, func(s []Slice) bson.Timestamp { return bson.Timestamp{T: s[2].First.T, I: 5} }, 25, -1},
		{"intact, to after the last slice", false, func(s []Slice) bson.Timestamp { return bson.Timestamp{T: s[3].Last.T + 10} }, 40, -1},
		{"missing, to inside its stretch", true, func(s []Slice) bson.Timestamp { return bson.Timestamp{T: s[2].First.T, I: 5} }, 0, 3},
		{"missing, to at the end of the slice before it", true, func(s []Slice) bson.Timestamp { return s[1].Last }, 20, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			slices, _ := writeChain(t, dir, id, 4, 10)
			if c.remove {
				if err := os.Remove(slices[2].Path); err != nil {
					t.Fatal(err)
				}
			}
			a, err := Open(dir, unlockWith(id))
			if err != nil {
				t.Fatal(err)
			}
			n, err := count(a, c.to(slices))
			if c.refused < 0 {
				if err != nil || n != c.entries {
					t.Fatalf("%d entries, %v; want %d", n, err, c.entries)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), slices[c.refused].Name) {
				t.Fatalf("got %v, want the chain broken at %s", err, slices[c.refused].Name)
			}
		})
	}
}
