package cli

// More promises of docs/cli.md shown through the CLI: a restore whose report
// differs exits 6 (a write from outside while the restore is held makes the
// counts differ for real), a refused restore onto a non-empty target leaves
// no marker, and verify --legacy reads real `openssl enc` output.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
)

// TestRestoreReportDiffersExit6: while the restore is held (every byte
// authenticated, marker written, nothing restored yet) another client takes
// the name of one of the backup's indexes on a collection of the backup; the
// restore then cannot build that index, prints DIFFERS for that collection
// with the server's reason and exits 6, in the restore's own call and in
// restore-status; a failure that no agent stop caused is not called
// "interrupted".
func TestRestoreReportDiffersExit6(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, op, _ := backupNode(t, 30)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-differs"
	op.mustOn(src, "backup", "--wait")
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")

	h := newHolds(agent.HoldRestore)
	dst := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	dst.authorize("ops", op.home)

	// A target that already holds data is refused without --drop, before
	// anything is written: no restore marker.
	if _, err := dst.client().Database("auth0").Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "in-the-way"}}); err != nil {
		t.Fatal(err)
	}
	if r := op.on(dst, "restore", file); r.code != ExitRefused {
		t.Fatalf("restore onto a non-empty target: exit %d, want %d: %s", r.code, ExitRefused, r.stderr)
	}
	if m := restoreMarkerOf(t, dst.client()); m != "" {
		t.Fatalf("a refused restore left a restore marker: %s", m)
	}
	if err := dst.client().Database("auth0").Collection("users").Drop(ctx); err != nil {
		t.Fatal(err)
	}

	done := make(chan result, 1)
	go func() { done <- op.onConcurrently(dst, "restore", file) }()
	h.wait(t, agent.HoldRestore)
	// Another client takes the name of one of the backup's indexes for
	// another key on the (still empty) collection: the restore's index of
	// that name cannot be built, and its report must say so.
	if _, err := dst.client().Database("auth0").Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetName("user_id_1")}); err != nil {
		t.Fatal(err)
	}
	h.let(agent.HoldRestore)
	r := <-done
	if r.code != ExitIntegrity || !strings.Contains(r.stderr, "differences between the backup and the database") {
		t.Fatalf("restore with a differing report: exit %d, want %d\n%s%s", r.code, ExitIntegrity, r.stdout, r.stderr)
	}
	var line string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "auth0.users ") {
			line = l
		}
	}
	if strings.Contains(r.stderr, "interrupted") {
		t.Errorf("a restore the agent did not stop is called interrupted: %s", r.stderr)
	}
	if !strings.Contains(line, "DIFFERS") || !strings.Contains(r.stdout, "index not restored") {
		t.Fatalf("report line of auth0.users does not say DIFFERS:\n%s", r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "DIFFERS") && l != line {
			t.Errorf("a collection nobody changed differs: %s", l)
		}
	}
	if s := op.on(dst, "restore-status", "--wait"); s.code != ExitIntegrity || !strings.Contains(s.stdout, "DIFFERS") {
		t.Fatalf("restore-status --wait after a differing restore: exit %d, want %d\n%s%s", s.code, ExitIntegrity, s.stdout, s.stderr)
	}
	if s := op.mustOn(dst, "restore-status"); !strings.Contains(s.stdout, `"message":"Restore failed"`) || !strings.Contains(s.stdout, `"code":"integrity"`) {
		t.Fatalf("restore-status after a differing restore: %s", s.stdout)
	}
}

// TestVerifyLegacy: verify --legacy decrypts a file written by the original
// appliance's command (`openssl enc -aes-256-ctr -md md5 -nosalt`) of a real
// tar.gz and lists its entries, saying it is not authenticated; a wrong
// password does not pass for a good file.
func TestVerifyLegacy(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		skipOutsideCI(t, "openssl not installed: apt-get install openssl")
	}
	// The plain archive of an a0 backup: a real tar.gz of several entries.
	src, op, _ := backupNode(t, 30)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-legacy"
	op.mustOn(src, "backup", "--wait")
	op.mustOn(src, "backup-retrieve")
	plain := filepath.Join(op.dir, "plain.tar.gz")
	op.mustOn(src, "decrypt", filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"), "-o", plain)

	enc := filepath.Join(op.dir, "legacy.tar.gz.enc")
	cmd := exec.Command("openssl", "enc", "-aes-256-ctr", "-md", "md5", "-nosalt", "-k", "Legacy-Passw0rd", "-in", plain, "-out", enc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	delete(op.env, "A0_BACKUP_PASSWORD")
	r := op.run("verify", enc, "--legacy", "--password", "Legacy-Passw0rd")
	if r.code != 0 || !strings.Contains(r.stdout, "not authenticated") || !strings.Contains(r.stderr, "cannot be authenticated") {
		t.Fatalf("verify --legacy: %+v", r)
	}
	// The same listing as verify of the a0 file: the manifest inside the
	// archive openssl encrypted, read the legacy way.
	a0 := op.run("verify", filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"), "--password", "Passw0rd-legacy")
	if a0.code != 0 {
		t.Fatalf("verify of the a0 file: %+v", a0)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 8 || !strings.Contains(r.stdout, "auth0.users") {
		t.Fatalf("verify --legacy lists too little:\n%s", r.stdout)
	}
	for _, l := range lines[1:] {
		if !strings.Contains(a0.stdout, l+"\n") {
			t.Fatalf("verify --legacy line %q is not in verify's listing of the a0 file:\n%s", l, a0.stdout)
		}
	}
	if r := op.run("verify", enc, "--legacy", "--password", "Wrong-Passw0rd"); r.code != ExitIntegrity {
		t.Fatalf("verify --legacy with a wrong password: exit %d, want %d: %+v", r.code, ExitIntegrity, r)
	}
	if r := op.run("verify", enc, "--password", "Legacy-Passw0rd"); r.code != ExitIntegrity || !strings.Contains(r.stderr, "--legacy") {
		t.Fatalf("a legacy file without --legacy: %+v", r)
	}
}

// TestRevokeStopsRunningBackup: revoking the key that started a backup
// stops the backup (held mid-job, so it is running when the key goes): the
// status says the key was revoked, not that the agent stopped, and no
// backup is left.
func TestRevokeStopsRunningBackup(t *testing.T) {
	t.Parallel()
	h := newHolds(agent.HoldBackup)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(30)
	op := newOperator(t)
	if r := op.run("create-key"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	n.authorize("to-revoke", op.home)
	admin := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", t.TempDir())
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-revoke"
	op.mustOn(n, "backup")
	h.wait(t, agent.HoldBackup)
	if err := keysOpen(n).Remove("to-revoke"); err != nil {
		t.Fatal(err)
	}
	st := decodeStatus(t, admin.waitStatus(n, "backup-status"))
	if st.Message != "Backup failed" || !strings.Contains(st.Arguments.Error, "revoked") || strings.Contains(st.Arguments.Error, "interrupted") {
		t.Fatalf("status after the key was revoked mid-backup: %+v\n%s", st, n.log.String())
	}
	if r := admin.on(n, "backup-retrieve"); r.code != ExitNotFound {
		t.Fatalf("a backup stopped by a revoke left something to retrieve: %+v", r)
	}
}

// TestDeleteKey: delete-key removes the key pair; the CLI then has no key
// (exit 3) until create-key makes a new one, which the node does not know.
func TestDeleteKey(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	op.mustOn(n, "ping")
	if r := op.run("delete-key"); r.code != 0 || !strings.Contains(r.stdout, "Key deleted") {
		t.Fatalf("delete-key: %+v", r)
	}
	for _, f := range []string{"id_a0", "id_a0.pub"} {
		if _, err := os.Stat(filepath.Join(op.home, f)); err == nil {
			t.Fatalf("%s left after delete-key", f)
		}
	}
	if r := op.run("show-key"); r.code != ExitAuth {
		t.Fatalf("show-key without a key: exit %d, want %d: %s", r.code, ExitAuth, r.stderr)
	}
	if r := op.on(n, "ping"); r.code != ExitAuth {
		t.Fatalf("ping without a key: exit %d, want %d: %s", r.code, ExitAuth, r.stderr)
	}
	if r := op.run("create-key"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := op.on(n, "ping"); r.code != ExitAuth {
		t.Fatalf("ping with a new, unauthorized key: exit %d, want %d: %s", r.code, ExitAuth, r.stderr)
	}
}
