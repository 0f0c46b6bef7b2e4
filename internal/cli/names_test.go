package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/manifest"
)

// sealTarGz writes name/data pairs as an encrypted a0 file: an archive
// that authenticates, with the content a key holder chose.
func sealTarGz(t *testing.T, path, password string, files [][2]string) {
	t.Helper()
	var plain bytes.Buffer
	gz := gzip.NewWriter(&plain)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f[1])), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := crypt.NewWriter(out, []byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataNameCannotReachSystemCollections (security issue 13.1): an
// authentic archive holding admin/u.bson whose metadata.json says
// {"collectionName":"system.users"} is refused by verify and by restore,
// with and without --drop, before anything is written; so is any metadata
// name that is not the one its file name was made from.
func TestMetadataNameCannotReachSystemCollections(t *testing.T) {
	node := startNode(t, "", "")
	op := newOperator(t).withKey(node)
	const pw = "Passw0rd-names"
	op.env["A0_BACKUP_PASSWORD"] = pw
	user, _ := bson.Marshal(bson.D{{Key: "_id", Value: "admin.evil"}, {Key: "user", Value: "evil"}, {Key: "db", Value: "admin"}})
	for _, tc := range []struct{ name, db, file, metaName string }{
		{"admin/u claims system.users", "admin", "u", "system.users"},
		{"shop/u claims system.js", "shop", "u", "system.js"},
		{"shop/orders claims another collection", "shop", "orders", "customers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			man := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindBackup, ToolVersion: "crafted",
				Started: time.Now().UTC(), Finished: time.Now().UTC(), Consistency: manifest.ConsistencyNone,
				Collections: []manifest.Collection{{DB: tc.db, Name: tc.metaName, Type: "collection", Documents: 1, Bytes: int64(len(user)), Indexes: 1,
					MetadataFile: tc.db + "/" + tc.file + ".metadata.json", BSONFile: tc.db + "/" + tc.file + ".bson"}}}
			mb, err := man.Encode()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(op.dir, strings.NewReplacer(" ", "_", "/", "_").Replace(tc.name)+".enc")
			sealTarGz(t, p, pw, [][2]string{
				{"prelude.json", `{"ServerVersion":"7.0.16","ToolVersion":"crafted"}`},
				{tc.db + "/" + tc.file + ".metadata.json", `{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}],"collectionName":"` + tc.metaName + `","type":"collection"}`},
				{tc.db + "/" + tc.file + ".bson", string(user)},
				{manifest.Name, string(mb)},
			})
			if r := op.run("verify", p); r.code != ExitIntegrity || !strings.Contains(r.stderr, "does not match the collectionName") {
				t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, args := range [][]string{{"restore", p}, {"restore", p, "--drop"}} {
				r := op.on(node, args...)
				if r.code != ExitIntegrity || !strings.Contains(r.stderr, "does not match the collectionName") {
					t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
				}
			}
			names, err := node.client().Database(tc.db).ListCollectionNames(t.Context(), bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(names, tc.metaName) || slices.Contains(names, tc.file) {
				t.Fatalf("%s written: %v", tc.db, names)
			}
		})
	}
}
