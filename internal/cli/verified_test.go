package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/store"
)

// TestBackupFoundIsVerified: a backup is called found only after its file
// was read back and passed restore's own checks, and says so.
func TestBackupFoundIsVerified(t *testing.T) {
	n, op, _ := backupNode(t, 200)
	before := time.Now().UTC().Add(-time.Second)
	op.mustOn(n, "backup", "--password", "Passw0rd-verified")
	out := op.waitStatus(n, "backup-status")
	var st struct {
		Message   string `json:"message"`
		Arguments struct {
			Verified   *bool      `json:"verified"`
			VerifiedAt *time.Time `json:"verified_at"`
			Created    string     `json:"created"`
		} `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if st.Message != "Backup found" || st.Arguments.Verified == nil || !*st.Arguments.Verified {
		t.Fatalf("status is not a verified backup: %s\nagent log:\n%s", out, n.log.String())
	}
	if at := st.Arguments.VerifiedAt; at == nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("verified_at %v outside the backup's run (started after %v)", at, before)
	}
	if !strings.Contains(n.log.String(), "verified_in=") {
		t.Fatalf("the agent log does not say how long the read-back took:\n%s", n.log.String())
	}
}

// TestBackupFailingVerificationIsFailed: a file damaged on the disk after it
// was written (a flipped bit, as a failing device makes) is caught by the
// read-back: the backup is "Backup failed" with the reason, and no file with
// a backup's name is left.
func TestBackupFailingVerificationIsFailed(t *testing.T) {
	n := startNodeWith(t, "", "", agent.Config{BeforeReadBack: func(path string) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		b := make([]byte, 1)
		off := st.Size() / 2
		f.ReadAt(b, off)
		b[0] ^= 0x10
		f.WriteAt(b, off)
	}})
	n.seed(200)
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)

	op.mustOn(n, "backup", "--password", "Passw0rd-verified")
	out := op.waitStatus(n, "backup-status")
	st := decodeStatus(t, out)
	if st.Message != "Backup failed" || !strings.Contains(st.Arguments.Error, "failed verification") ||
		!strings.Contains(st.Arguments.Error, "authentic") && !strings.Contains(st.Arguments.Error, "corrupt") {
		t.Fatalf("a damaged file gave %s", out)
	}
	entries, err := os.ReadDir(filepath.Join(dev, store.FolderName))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".enc") || strings.HasSuffix(e.Name(), ".json") {
			t.Fatalf("a failed backup left %s on the device", e.Name())
		}
	}
	if r := op.on(n, "backup-retrieve"); r.code == 0 {
		t.Fatalf("a failed backup can be retrieved: %+v", r)
	}
}

// TestVerifyListsUsersAndRoles: users and roles are dumped as mongodump
// dumps them (admin.system.users, admin.system.roles) and verify lists
// them, saying how they are restored.
func TestVerifyListsUsersAndRoles(t *testing.T) {
	n, op, _ := backupNode(t, 50)
	ctx := context.Background()
	admin := n.client().Database("admin")
	if _, err := admin.Collection("system.users").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "admin.ops"}, {Key: "user", Value: "ops"}, {Key: "db", Value: "admin"}},
		bson.D{{Key: "_id", Value: "auth0.app"}, {Key: "user", Value: "app"}, {Key: "db", Value: "auth0"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Collection("system.roles").InsertOne(ctx, bson.D{{Key: "_id", Value: "auth0.reader"}, {Key: "role", Value: "reader"}, {Key: "db", Value: "auth0"}}); err != nil {
		t.Fatal(err)
	}
	op.mustOn(n, "backup", "--password", "Passw0rd-users")
	if st := decodeStatus(t, op.waitStatus(n, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v\n%s", st, n.log.String())
	}
	op.mustOn(n, "backup-retrieve")
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-users"
	r := op.run("verify", "backup-retrieve.tar.gz.enc")
	if r.code != 0 || !strings.Contains(r.stdout, "users, roles: 2 users, 1 roles (restored only with restore --users-and-roles)") {
		t.Fatalf("verify: %+v", r)
	}
	r = op.run("verify", "--json", "backup-retrieve.tar.gz.enc")
	if !strings.Contains(r.stdout, `"users":2`) || !strings.Contains(r.stdout, `"roles":1`) {
		t.Fatalf("verify --json: %s", r.stdout)
	}
}
