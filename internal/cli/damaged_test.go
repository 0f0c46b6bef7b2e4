package cli

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
)

// damagedFile makes an authentic backup file of about 11 MB (a real
// backup's entries with one collection's BSON replaced by incompressible
// documents, its manifest updated to match), so that damage at 5 MB or a
// cut at 8 MB lands inside a collection's data, as on a real backup.
func damagedFile(t *testing.T, op *operator, src *testNode, pw string) string {
	t.Helper()
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup")
	if st := decodeStatus(t, op.waitStatus(src, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v", st)
	}
	op.mustOn(src, "backup-retrieve")
	entries := readEntries(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"), pw)
	var big bytes.Buffer
	docs := int64(0)
	blob := make([]byte, 1000)
	for big.Len() < 11<<20 {
		rand.Read(blob)
		b, err := bson.Marshal(bson.D{{Key: "_id", Value: docs}, {Key: "blob", Value: bson.Binary{Data: blob}}})
		if err != nil {
			t.Fatal(err)
		}
		big.Write(b)
		docs++
	}
	bsonAt, manAt := -1, -1
	for i, e := range entries {
		switch {
		case e.hdr.Name == manifest.Name:
			manAt = i
		case bsonAt < 0 && strings.HasSuffix(e.hdr.Name, ".bson") && e.hdr.Name != "oplog.bson" && !strings.HasPrefix(e.hdr.Name, "admin/"):
			bsonAt = i
		}
	}
	if bsonAt < 0 || manAt < 0 {
		t.Fatalf("no collection or no manifest in the backup")
	}
	entries[bsonAt].data = big.Bytes()
	m, err := manifest.Decode(bytes.NewReader(entries[manAt].data))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range m.Collections {
		if c.BSONFile == entries[bsonAt].hdr.Name {
			m.Collections[i].Documents, m.Collections[i].Bytes = docs, int64(big.Len())
		}
	}
	if entries[manAt].data, err = m.Encode(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(op.dir, "big.enc")
	sealEntries(t, p, pw, entries)
	return p
}

// TestVerifyDamagedFileNamesChunk: a damaged or truncated file is reported
// as such, with the chunk and offset where authentication failed, by
// verify, decrypt and restore alike (exit 6), never as a parse error of the
// archive inside it (issue 28, point 2).
func TestVerifyDamagedFileNamesChunk(t *testing.T) {
	src, op, _ := backupNode(t, 40)
	const pw = "Passw0rd-damaged"
	good := damagedFile(t, op, src, pw)
	if r := op.run("verify", good); r.code != 0 {
		t.Fatalf("control: verify of the authentic file: %+v", r)
	}
	data := readFile(t, good)
	if len(data) < 10<<20 {
		t.Fatalf("the file is only %d bytes", len(data))
	}
	flip := func(off int) []byte {
		b := bytes.Clone(data)
		b[off] ^= 0x01
		return b
	}
	dst := startNode(t, "", "")
	dst.authorize("ops", op.home)
	cases := []struct {
		name string
		data []byte
		want string // a regexp every command's error must match
	}{
		{"one byte flipped at 5,000,000", flip(5_000_000), `crypt: corrupt at byte 4194\d\d\d \(chunk 4\): authentication failed`},
		{"cut at 8 MB", data[:8_000_000], `crypt: corrupt at byte 7\d{6} \(chunk 7\): authentication failed \(short record: truncated or corrupt\)`},
		{"cut at 8 MiB", data[:8<<20], `crypt: corrupt at byte \d+ \(chunk 7\): authentication failed`},
		{"one byte flipped in the last record", flip(len(data) - 40), `crypt: corrupt at byte \d+ \(chunk \d+\): authentication failed`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(op.dir, "damaged-"+string(rune('a'+i))+".enc")
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			want := regexp.MustCompile(tc.want)
			for _, args := range [][]string{{"verify", p}, {"verify", "--json", p}, {"decrypt", "-o", p + ".tar.gz", p}} {
				r := op.run(args...)
				if r.code != ExitIntegrity || !want.MatchString(r.stderr) {
					t.Errorf("%s: exit %d, want %d with %q\nstdout: %sstderr: %s", args[0], r.code, ExitIntegrity, tc.want, r.stdout, r.stderr)
				}
			}
			if _, err := os.Stat(p + ".tar.gz"); err == nil {
				t.Errorf("decrypt left %s.tar.gz", p)
			}
			r := op.on(dst, "restore", p)
			if r.code != ExitIntegrity || !want.MatchString(r.stderr) {
				t.Errorf("restore: exit %d, want %d with %q\nstdout: %sstderr: %s", r.code, ExitIntegrity, tc.want, r.stdout, r.stderr)
			}
		})
	}
}
