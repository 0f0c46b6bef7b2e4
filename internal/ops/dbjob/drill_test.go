package dbjob

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/drill/drilltest"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/store"
)

// TestRunDrillWrongKey: a stored backup the drill's key does not open (one
// made with a password, which is not encrypted to "recipients", or to
// other keys) fails the drill as wrong_key, saying that the drill's key is
// the one that does not open it: no file key was sent by anyone (the
// restore's wording), and the operator must know what to change.
func TestRunDrillWrongKey(t *testing.T) {
	drillID, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	for _, tc := range []struct {
		name string
		seal crypt.Seal
	}{
		{"password", crypt.Seal{Password: []byte("Passw0rd-drill")}},
		{"other keys", crypt.Seal{Recipients: []age.Recipient{other.Recipient()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := crypt.NewSealedWriter(&b, tc.seal, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("not read: the key is refused first"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "b.tar.gz.enc")
			if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			parent := filepath.Join(t.TempDir(), ".drill")
			_, err = RunDrill(context.Background(), &ops.Drill{Path: path, Meta: &store.Meta{Name: "b.tar.gz"},
				Identities: []age.Identity{drillID}, Parent: parent})
			var oe *ops.Error
			if !errors.As(err, &oe) || oe.Kind != ops.WrongKey {
				t.Fatalf("drill: %v, want a wrong_key error", err)
			}
			if msg := err.Error(); strings.Contains(msg, "sent") || !strings.Contains(msg, "drill's key") || !strings.Contains(msg, "recipients") {
				t.Fatalf("drill's wrong key error: %q", msg)
			}
		})
	}
}

// TestRunDrillNotHeld: a stored backup of a real MongoDB holding a
// document the embedded server cannot store (here a Decimal128) passes
// its drill on the node; the result counts the collection and its
// document not held and says so in the note node-status shows, and the
// comparison's time is reported beside the restore's.
func TestRunDrillNotHeld(t *testing.T) {
	ctx := context.Background()
	client := embeddedtest.Client(t, embedded.Config{})
	for _, coll := range []string{"users", "orders"} {
		if _, err := client.Database("shop").Collection(coll).InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
			t.Fatal(err)
		}
	}
	var tgz bytes.Buffer
	aw, err := archive.NewWriter(&tgz, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dump.Run(ctx, client, aw, dump.Options{SpoolDir: t.TempDir()}, nil); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	dec, _ := bson.ParseDecimal128("9.99")
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: 3}, {Key: "total", Value: dec}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := drilltest.Inject(tgz.Bytes(), "shop/orders.bson", "shop.orders", doc)
	if err != nil {
		t.Fatal(err)
	}
	drillID, _ := age.GenerateX25519Identity()
	var b bytes.Buffer
	w, err := crypt.NewSealedWriter(&b, crypt.Seal{Recipients: []age.Recipient{drillID.Recipient()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.tar.gz.enc")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := RunDrill(ctx, &ops.Drill{Path: path, Meta: &store.Meta{Name: "b.tar.gz"},
		Identities: []age.Identity{drillID}, Parent: filepath.Join(t.TempDir(), ".drill")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Differences) != 0 || res.NotHeld != 1 || res.DocumentsNotHeld != 1 || res.Compare <= 0 || res.Duration <= 0 {
		t.Fatalf("%+v", res)
	}
	if !strings.Contains(res.Note, "1 collection(s) the embedded server cannot hold") || !strings.Contains(res.Note, "(1 documents it refuses") ||
		!strings.HasSuffix(res.Note, ": shop.orders") {
		t.Fatalf("note %q", res.Note)
	}
	if !strings.Contains(res.Note, "1 of them with their archived bytes verified") {
		t.Errorf("the note does not say the collection's archived bytes were verified: %q", res.Note)
	}
}
