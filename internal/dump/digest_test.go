package dump

import (
	"context"
	"testing"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
)

// TestRunDigest: every collection's manifest entry carries the content
// digest of exactly the documents its .bson entry holds (summed as the
// dump read them, not from a second read); a view has none.
func TestRunDigest(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{})
	seed(t, client, 200)
	m, entries, err := runDump(ctx, t, client, Options{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		files[e.name] = e.data
	}
	if len(m.Collections) < 4 {
		t.Fatalf("%d collections dumped", len(m.Collections))
	}
	for _, c := range m.Collections {
		t.Run(c.Namespace(), func(t *testing.T) {
			if c.BSONFile == "" {
				if c.Digest != "" {
					t.Fatalf("digest %q without documents", c.Digest)
				}
				return
			}
			var d manifest.Digest
			b := files[c.BSONFile]
			n := int64(0)
			for len(b) > 0 {
				l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
				d.Add(b[:l])
				b = b[l:]
				n++
			}
			if n != c.Documents || c.Digest != d.String() {
				t.Fatalf("manifest: %d documents, digest %s; the archive: %d, %s", c.Documents, c.Digest, n, d.String())
			}
		})
	}
}
