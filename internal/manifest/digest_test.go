package manifest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	docs := [][]byte{[]byte("\x05\x00\x00\x00\x00"), []byte("one document"), []byte("another document")}
	of := func(ds ...[]byte) string {
		var d Digest
		for _, b := range ds {
			d.Add(b)
		}
		return d.String()
	}
	base := of(docs...)
	changed := append([]byte(nil), docs[1]...)
	changed[3] ^= 1
	tests := []struct {
		name string
		got  string
		same bool
	}{
		{"another order", of(docs[2], docs[0], docs[1]), true},
		{"reverse order", of(docs[2], docs[1], docs[0]), true},
		{"a changed byte", of(docs[0], changed, docs[2]), false},
		{"a document missing", of(docs[0], docs[1]), false},
		{"a document twice", of(docs[0], docs[1], docs[2], docs[2]), false},
		// XOR would cancel a pair: a sum does not.
		{"a pair added", of(docs[0], docs[1], docs[2], docs[1], docs[1]), false},
		{"no documents", of(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.got == base) != tc.same {
				t.Fatalf("digest %s vs %s: same=%v, want %v", tc.got, base, tc.got == base, tc.same)
			}
		})
	}
	if !strings.HasPrefix(base, DigestPrefix) || len(base) != len(DigestPrefix)+64 {
		t.Fatalf("digest %q", base)
	}
	if of() != DigestPrefix+strings.Repeat("0", 64) {
		t.Fatalf("empty digest %q", of())
	}
	d, err := ParseDigest(base)
	if err != nil || d.String() != base {
		t.Fatalf("ParseDigest(%q) = %v, %v", base, d.String(), err)
	}
	for _, bad := range []string{"", "sha256-sum:00", "md5-sum:" + strings.Repeat("0", 64), DigestPrefix + strings.Repeat("g", 64)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

// TestDigestCarry: the sum wraps modulo 2^256 and carries between words.
func TestDigestCarry(t *testing.T) {
	var x Digest
	x.sum = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	x.Add(nil)
	var y Digest
	y.Add(nil)
	// (2^256-1) + h == h - 1 modulo 2^256: the low word of sha256("")
	// is not 0, so no borrow crosses words here.
	y.sum[3]--
	if x != y {
		t.Fatalf("no wrap: %s vs %s", x, y)
	}
}

// TestOldManifestWithoutDigest: a manifest written before the digest parses,
// and a collection without one writes no "digest" key.
func TestOldManifestWithoutDigest(t *testing.T) {
	b, err := json.Marshal(Collection{DB: "a", Name: "b", MetadataFile: "a/b.metadata.json"})
	if err != nil || strings.Contains(string(b), "digest") {
		t.Fatalf("%s %v", b, err)
	}
	var c Collection
	if err := json.Unmarshal([]byte(`{"db":"a","name":"b","documents":1,"bytes":5,"indexes":1,"metadata_file":"a/b.metadata.json"}`), &c); err != nil || c.Digest != "" {
		t.Fatalf("%+v %v", c, err)
	}
}
