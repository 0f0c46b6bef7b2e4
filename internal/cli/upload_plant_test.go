package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/client"
)

// plainDump is a tar.gz of a mongodump directory holding app.c with docs.
func plainDump(t *testing.T, docs int) []byte {
	t.Helper()
	var data []byte
	for i := range docs {
		b, err := bson.Marshal(bson.D{{Key: "_id", Value: int32(i)}, {Key: "owner", Value: "alice"}})
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	meta := []byte(`{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}]}`)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"dump/app/c.metadata.json", meta}, {"dump/app/c.bson", data}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f.b))})
		tw.Write(f.b)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestUploadPlantedContentRefused (issue 13 finding 13): another key
// holder who uploads other bytes under the id of Alice's file (the id is
// the file's hash, which backup-status shows) cannot make Alice's restore
// use them: the CLI compares the hash of what the node holds with its own
// file (complete or partial upload) and uploads again, and the node checks
// the hash the request names. With --plain nothing else would notice.
func TestUploadPlantedContentRefused(t *testing.T) {
	n := startNode(t, "", "")
	alice := newOperator(t).withKey(n)
	mallory := newOperator(t).withKey(n)
	mallory.mustOn(n, "ping") // pin the node
	mc, err := client.New(mallory.home, n.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(alice.dir, "dump.tar.gz")
	body := plainDump(t, 50)
	os.WriteFile(file, body, 0o600)
	sum := sha256.Sum256(body)
	id := hex.EncodeToString(sum[:])[:32]
	for _, tc := range []struct {
		name    string
		planted []byte
	}{
		{"complete upload of the same size", bytes.Repeat([]byte{0x1f}, len(body))},
		{"partial upload", append(bytes.Clone(body[:len(body)/2-10]), bytes.Repeat([]byte{0xaa}, 10)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			planted := tc.planted
			if _, err := mc.UploadChunk(context.Background(), id, 0, bytes.NewReader(planted), int64(len(planted))); err != nil {
				t.Fatal(err)
			}
			r := alice.on(n, "restore", file, "--plain", "--drop")
			if r.code != 0 || !strings.Contains(r.stderr, "uploading it again") {
				t.Fatalf("restore over a planted upload: %+v", r)
			}
			cnt, err := n.client().Database("app").Collection("c").CountDocuments(context.Background(), bson.D{{Key: "owner", Value: "alice"}})
			if err != nil || cnt != 50 {
				t.Fatalf("restored %d of Alice's 50 documents: %v", cnt, err)
			}
		})
	}
}
