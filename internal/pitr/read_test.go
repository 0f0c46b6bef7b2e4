package pitr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestValidateEntryAsValidate holds validateEntry (the reader's one walk
// over an entry) to what it replaces, bson.Raw.Validate then entryTS: the
// same error (by message) or none, and the same ts, for well-formed
// entries and for every one-byte alteration and truncation of them.
func TestValidateEntryAsValidate(t *testing.T) {
	ts := bson.Timestamp{T: 1_700_000_000, I: 7}
	mk := func(d bson.D) []byte {
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	cases := map[string][]byte{
		"insert":             entry(t, ts, "i", "shop.orders", bson.D{{Key: "_id", Value: 1}, {Key: "s", Value: "x"}}),
		"update":             entry(t, ts, "u", "shop.orders", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: 3}}}}}}),
		"no ts":              mk(bson.D{{Key: "op", Value: "n"}, {Key: "o", Value: bson.D{}}}),
		"ts not a timestamp": mk(bson.D{{Key: "op", Value: "n"}, {Key: "ts", Value: int64(5)}}),
		"two ts, first wins": mk(bson.D{{Key: "ts", Value: ts}, {Key: "ts", Value: bson.Timestamp{T: 1, I: 1}}}),
		"two ts, first bad":  mk(bson.D{{Key: "ts", Value: "x"}, {Key: "ts", Value: ts}}),
		"key with ts prefix": mk(bson.D{{Key: "tsx", Value: ts}, {Key: "t", Value: int64(1)}}),
		"nested ts only":     mk(bson.D{{Key: "o", Value: bson.D{{Key: "ts", Value: ts}}}}),
		"regex and binary":   mk(bson.D{{Key: "r", Value: bson.Regex{Pattern: "a.*", Options: "i"}}, {Key: "b", Value: bson.Binary{Data: []byte{1, 2}}}, {Key: "ts", Value: ts}}),
		"empty":              mk(bson.D{}),
		"every type": mk(bson.D{{Key: "d", Value: 1.5}, {Key: "s", Value: "str"}, {Key: "doc", Value: bson.D{{Key: "a", Value: 1}}},
			{Key: "arr", Value: bson.A{1, "x"}}, {Key: "bin", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}},
			{Key: "u", Value: bson.Undefined{}}, {Key: "oid", Value: bson.ObjectID{1}}, {Key: "b", Value: true},
			{Key: "dt", Value: bson.DateTime(5)}, {Key: "n", Value: nil}, {Key: "re", Value: bson.Regex{Pattern: "p", Options: "o"}},
			{Key: "dbp", Value: bson.DBPointer{DB: "db", Pointer: bson.ObjectID{2}}}, {Key: "js", Value: bson.JavaScript("f()")},
			{Key: "sym", Value: bson.Symbol("y")}, {Key: "cws", Value: bson.CodeWithScope{Code: "c", Scope: bson.D{{Key: "x", Value: 1}}}},
			{Key: "i32", Value: int32(3)}, {Key: "ts", Value: ts}, {Key: "i64", Value: int64(4)},
			{Key: "dec", Value: bson.NewDecimal128(1, 2)}, {Key: "min", Value: bson.MinKey{}}, {Key: "max", Value: bson.MaxKey{}}}),
	}
	check := func(t *testing.T, d []byte) {
		t.Helper()
		want := bson.Raw(d).Validate()
		gotTS, gotOK, got := validateEntry(d)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("% x: validateEntry error %v, Validate %v", d, got, want)
		}
		if want != nil {
			return
		}
		wantTS, wantOK := entryTS(d)
		if gotTS != wantTS || gotOK != wantOK {
			t.Fatalf("% x: validateEntry ts %v %v, entryTS %v %v", d, gotTS, gotOK, wantTS, wantOK)
		}
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			check(t, d)
			for n := 0; n < len(d); n++ {
				check(t, d[:n])
			}
			for i := range d {
				// Every BSON type byte, and others.
				for _, v := range []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
					0x7f, 0x80, 0xfe, 0xff, 't', 's', d[i] + 1, d[i] - 1} {
					m := bytes.Clone(d)
					m[i] = v
					check(t, m)
				}
			}
			// A length prefix shorter or longer than the bytes.
			for _, l := range []int{len(d) - 1, len(d) + 1, 4, -1} {
				m := bytes.Clone(d)
				binary.LittleEndian.PutUint32(m, uint32(int32(l)))
				check(t, m)
			}
		})
	}
	// Lengths inside elements that are negative, or wrap negative once a
	// type's fixed bytes are added.
	t.Run("element lengths", func(t *testing.T) {
		for _, typ := range []byte{0x02, 0x03, 0x04, 0x05, 0x0c, 0x0d, 0x0e, 0x0f} {
			for _, l := range []int32{-1, -4, -5, -17, 0, 1, 0x7ffffff0, 0x7ffffffb, 0x7ffffffc, 0x7fffffff} {
				d := []byte{0, 0, 0, 0, typ, 'a', 0}
				d = binary.LittleEndian.AppendUint32(d, uint32(l))
				d = append(d, make([]byte, 20)...)
				d = append(d, 0)
				binary.LittleEndian.PutUint32(d, uint32(len(d)))
				check(t, d)
			}
		}
	})
	// readEntry returns an entry that fits the buffer in place and a
	// larger one in buf (bufio's smallest buffer is 16 bytes), and reads
	// a truncated one as readDoc does.
	for _, size := range []int{16, 4096} {
		t.Run(fmt.Sprintf("readEntry, buffer %d", size), func(t *testing.T) {
			d := cases["update"]
			br := bufio.NewReaderSize(bytes.NewReader(append(bytes.Clone(d), d...)), size)
			for range 2 {
				raw, got, ok, err := readEntry(br, nil)
				if err != nil || !ok || got != ts || !bytes.Equal(raw, d) {
					t.Fatal(raw, got, ok, err)
				}
			}
			for n := 0; n < len(d); n++ {
				_, _, _, err := readEntry(bufio.NewReaderSize(bytes.NewReader(d[:n]), size), nil)
				_, want := readDoc(bytes.NewReader(d[:n]), MaxEntryBytes, nil)
				if err == nil || err.Error() != want.Error() {
					t.Fatalf("%d bytes: %v, readDoc %v", n, err, want)
				}
			}
		})
	}
}

// TestVerifyInOrder: Verify reads several slices at once, and still
// reports the failure a sequential read meets first (the same slice, the
// same error), whatever the number of readers and however fast a later
// broken slice fails.
func TestVerifyInOrder(t *testing.T) {
	ctx := context.Background()
	id := testKey(t)
	cases := []struct {
		name   string
		break_ func(t *testing.T, s []Slice)
		bad    int  // the slice the error names
		chain  bool // errors.Is(err, ErrChain)
	}{
		{"tampered late in the file, a later one unreadable", func(t *testing.T, s []Slice) {
			flipByte(t, s[2].Path, s[2].Size-40)
			os.Truncate(s[6].Path, 10)
		}, 2, false},
		{"missing, a later one tampered", func(t *testing.T, s []Slice) {
			os.Remove(s[3].Path)
			flipByte(t, s[6].Path, 40)
		}, 4, true},
		{"reordered, a later one tampered", func(t *testing.T, s []Slice) {
			tmp := s[1].Path + ".x"
			os.Rename(s[1].Path, tmp)
			os.Rename(s[2].Path, s[1].Path)
			os.Rename(tmp, s[2].Path)
			flipByte(t, s[5].Path, s[5].Size/2)
		}, 1, false},
		{"last one tampered", func(t *testing.T, s []Slice) { flipByte(t, s[7].Path, s[7].Size/2) }, 7, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			slices, _ := writeChain(t, dir, id, 8, 300)
			c.break_(t, slices)
			var first string
			for _, readers := range []int{1, 2, 3, 8, 16} {
				_, err := verify(ctx, dir, unlockWith(id), readers)
				var ce *ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("%d readers: %v, want a *ChainError", readers, err)
				}
				if ce.Slice != slices[c.bad].Name || errors.Is(err, ErrChain) != c.chain {
					t.Fatalf("%d readers: %v, want slice %s (ErrChain %v)", readers, err, slices[c.bad].Name, c.chain)
				}
				if first == "" {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("%d readers: %v, 1 reader: %v", readers, err, first)
				}
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		dir := t.TempDir()
		slices, all := writeChain(t, dir, id, 8, 300)
		for _, readers := range []int{1, 3, 16} {
			p, err := verify(ctx, dir, unlockWith(id), readers)
			if err != nil || p.Slices != 8 || p.Entries != int64(len(all)) || len(p.Windows) != 1 ||
				p.Windows[0].From != slices[0].First || p.Windows[0].To != slices[7].Last {
				t.Fatalf("%d readers: %+v %v", readers, p, err)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := t.TempDir()
		slices, _ := writeChain(t, dir, id, 8, 300)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		for _, readers := range []int{1, 3} {
			p, err := verify(cctx, dir, unlockWith(id), readers)
			var ce *ChainError
			if p != nil || !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || ce.Slice != slices[0].Name {
				t.Fatalf("%d readers: %+v %v, want context.Canceled at the first slice", readers, p, err)
			}
		}
	})
}
