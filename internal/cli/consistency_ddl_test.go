package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// waitListed waits until a running backup has listed its collections (its
// oplog start is taken before): a change from now on happens during the
// dump, which on the embedded server still waits a second before its end.
func waitListed(t *testing.T, op *operator, src *testNode) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		var st struct {
			Message   string `json:"message"`
			Arguments struct {
				Progress struct {
					// documents: the totals are known before the
					// job starts; documents read mean it listed.
					Documents int64 `json:"documents"`
				} `json:"progress"`
			} `json:"arguments"`
		}
		r := op.mustOn(src, "backup-status")
		if json.Unmarshal([]byte(r.stdout), &st) != nil || st.Message != "Backup in progress" || time.Now().After(deadline) {
			t.Fatalf("backup not running: %s", r.stdout)
		}
		if st.Arguments.Progress.Documents > 0 {
			return
		}
	}
}

// TestPointInTimeDDL extends TestPointInTime with a writer that renames,
// drops, builds indexes and creates collections during the dump. A
// collection created during the dump is restored with its documents; a
// rename fails the backup clearly (as mongodump refuses it); on the
// embedded server, whose oplog records no DDL, so do a drop and an index
// build (on MongoDB their oplog entries are replayed: see the restore tests
// built from real-server entries). A failed backup leaves nothing to
// retrieve.
func TestPointInTimeDDL(t *testing.T) {
	if testing.Short() {
		t.Skip("several backups on FerretDB")
	}
	ctx := context.Background()
	src, op, _ := backupNode(t, 300)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-ddl"
	c := src.client()
	fail := []struct {
		name string
		ddl  func() error
		want string
	}{
		{"rename", func() error {
			return c.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "logs.logs"}, {Key: "to", Value: "logs.logs_renamed"}}).Err()
		}, "was renamed to logs.logs_renamed during the backup"},
		{"drop", func() error { return c.Database("logs").Collection("logs_renamed").Drop(ctx) }, "logs.logs_renamed was dropped during the backup"},
		{"index", func() error {
			_, err := c.Database("auth0").Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "ddl_field", Value: 1}}})
			return err
		}, "auth0.users had its indexes changed"},
	}
	for _, f := range fail {
		t.Run(f.name+" fails the backup", func(t *testing.T) {
			op.mustOn(src, "backup")
			waitListed(t, op, src)
			if err := f.ddl(); err != nil {
				t.Fatal(err)
			}
			st := decodeStatus(t, op.waitStatus(src, "backup-status"))
			if f.name == "index" && st.Message == "Backup found" {
				// The build won the race with the read of auth0.users:
				// then the archive must hold the index.
				op.mustOn(src, "backup-retrieve")
				m := verifyManifest(t, op, op.dir+"/backup-retrieve.tar.gz.enc")
				cur, err := c.Database("auth0").Collection("users").Indexes().List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var now []bson.Raw
				if err := cur.All(ctx, &now); err != nil {
					t.Fatal(err)
				}
				for _, mc := range m.Collections {
					if mc.DB == "auth0" && mc.Name == "users" && mc.Indexes != len(now) {
						t.Fatalf("backup found without the index built during the dump: %d indexes, the source has %d", mc.Indexes, len(now))
					}
				}
				op.mustOn(src, "backup-delete")
				return
			}
			if st.Message != "Backup failed" || !strings.Contains(st.Arguments.Error, f.want) || !strings.Contains(st.Arguments.Error, "cannot be point-in-time") {
				t.Fatalf("status %+v, want Backup failed with %q", st, f.want)
			}
			t.Logf("backup-status error: %s", st.Arguments.Error)
		})
	}
	t.Run("a collection created during the dump is restored", func(t *testing.T) {
		op.mustOn(src, "backup")
		waitListed(t, op, src)
		fresh := c.Database("ddl").Collection("fresh")
		for i := range 20 {
			if _, err := fresh.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: "created during the dump"}}); err != nil {
				t.Fatal(err)
			}
		}
		st := decodeStatus(t, op.waitStatus(src, "backup-status"))
		if st.Message != "Backup found" {
			t.Fatalf("%+v\n%s", st, src.log.String())
		}
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		op.mustOn(src, "backup-retrieve")
		file := op.dir + "/backup-retrieve.tar.gz.enc"
		r := op.mustOn(dst, "restore", file)
		if !strings.Contains(r.stdout, "Restore finished") {
			t.Fatalf("%+v", r)
		}
		n, err := dst.client().Database("ddl").Collection("fresh").CountDocuments(ctx, bson.D{})
		if err != nil || n != 20 {
			t.Fatalf("ddl.fresh restored with %d documents (%v), want 20", n, err)
		}
	})
}
