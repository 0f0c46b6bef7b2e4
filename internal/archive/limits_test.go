package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// rawEntries, when a case sets it, are tar blocks written by hand before
// the end marker.
var rawEntries []byte

// rawTarGz writes headers (with no or little data) as a tar.gz.
func rawTarGz(t *testing.T, write func(tw *tar.Writer)) []byte {
	t.Helper()
	rawEntries = nil
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	write(tw)
	tw.Flush()
	b := tarBuf.Bytes()
	if rawEntries != nil {
		b = append(rawEntries, make([]byte, 1024)...)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}

func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// ustar is a 512-byte ustar header block.
func ustar(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:], name)
	copy(h[100:], "0000600\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// TestReaderLimitsAndSparse (issue 13 finding 6): the default limits are
// sized from what a0 writes (an entry declaring 100 GiB is refused before
// it is read), and sparse entries, which declare sizes their data need not
// have, are refused whatever their size.
func TestReaderLimitsAndSparse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(tw *tar.Writer)
	}{
		{"entry declaring 100 GiB", func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "db/c.bson", Typeflag: tar.TypeReg, Mode: 0o600, Size: 100 << 30})
		}},
		{"PAX sparse entry", func(tw *tar.Writer) {
			// archive/tar's writer drops GNU.sparse records, so write the
			// PAX header by hand: GNU sparse 1.0, a real size of 32 GiB.
			// The data starts with the sparse map (one 1-byte region).
			recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
				paxRecord("GNU.sparse.name", "db/c.bson") + paxRecord("GNU.sparse.realsize", "34359738368")
			raw := append(ustar("PaxHeaders/c.bson", 'x', int64(len(recs))), pad([]byte(recs))...)
			data := make([]byte, 1024)
			copy(data, "1\n0\n1\n")
			data[512] = 'x'
			raw = append(raw, ustar("db/c.bson", '0', int64(len(data)))...)
			raw = append(raw, data...)
			tw.Close() // end marker comes after: write raw first via the hook below
			rawEntries = raw
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(rawTarGz(t, tc.write)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			e, err := r.Next()
			if err == nil {
				n, _ := io.Copy(io.Discard, io.LimitReader(r, 64<<20))
				t.Fatalf("accepted %q of %d bytes (read %d)", e.Name, e.Size, n)
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err = %v, want ErrUnsafe", err)
			}
		})
	}
}
