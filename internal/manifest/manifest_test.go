package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	m := &Manifest{
		FormatVersion: FormatVersion, Kind: KindBackup, ToolVersion: "test",
		Started: time.Unix(100, 0).UTC(), Finished: time.Unix(200, 0).UTC(),
		Consistency:  ConsistencyPointInTime,
		ConsistentTo: &OplogPos{T: 5, I: 2},
		Collections: []Collection{
			{DB: "a", Name: "x", Documents: 3, Bytes: 30, Indexes: 2},
			{DB: "b", Name: "y", Documents: 4, Bytes: 40, Indexes: 1},
		},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalDocuments() != 7 || got.TotalBytes() != 70 || got.ConsistentTo.T != 5 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		is       error
	}{
		{"future version", `{"format_version":99,"kind":"backup"}`, ErrUnsupported},
		{"unknown kind", `{"format_version":1,"kind":"x"}`, nil},
		{"not json", `{`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}
