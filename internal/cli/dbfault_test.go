package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDatabaseGoesAway stops the embedded database in the middle of a
// backup and of a restore: each fails visibly, leaves nothing that looks
// valid, and the next operation works once the database is back (agent
// restart).
func TestDatabaseGoesAway(t *testing.T) {
	// Enough data that the dump outlasts the 3 s FerretDB gives open
	// connections after it is told to stop.
	n, op, dev := backupNode(t, 15000)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-dbfault"

	t.Run("during a backup", func(t *testing.T) {
		op.mustOn(n, "backup")
		n.a.Embedded().Close()
		st := decodeStatus(t, op.waitStatus(n, "backup-status"))
		if st.Message != "Backup failed" || st.Arguments.Error == "" {
			t.Fatalf("status after the database went away: %+v", st)
		}
		if enc, _ := filepath.Glob(filepath.Join(dev, "backup", "*.enc")); len(enc) != 0 {
			t.Fatalf("a file that looks valid was left: %v", enc)
		}
		if part, _ := filepath.Glob(filepath.Join(dev, "backup", ".*.part")); len(part) != 0 {
			t.Fatalf("partial file left: %v", part)
		}
	})
	// The database comes back with the agent.
	state := n.state
	n.stop()
	n = startNode(t, state, "")
	op.mustOn(n, "backup", "--wait")
	op.mustOn(n, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")

	t.Run("during a restore", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		op.mustOn(dst, "restore", file, "--detach")
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			r := op.mustOn(dst, "restore-status")
			if strings.Contains(r.stdout, `"phase":"restoring"`) || !strings.Contains(r.stdout, "in progress") {
				break
			}
		}
		dst.a.Embedded().Close()
		var last string
		for time.Now().Before(deadline) {
			last = op.mustOn(dst, "restore-status").stdout
			if !strings.Contains(last, "in progress") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(last, "Restore failed") {
			t.Skipf("the restore finished before the database went away: %s", last)
		}
		if !strings.Contains(last, "partly restored") && !strings.Contains(last, "authenticat") {
			t.Fatalf("restore-status does not say what happened: %s", last)
		}
		// Back up: the agent restarts with its database, and says the last
		// restore did not finish.
		st := dst.state
		dst.stop()
		dst = startNode(t, st, "")
		if r := op.mustOn(dst, "restore-status"); !strings.Contains(r.stdout, "Restore failed") {
			t.Fatalf("after restart: %s", r.stdout)
		}
		op.mustOn(dst, "restore", file, "--drop")
		sameCollection(t, n.client(), dst.client(), "auth0.users")
	})
}
