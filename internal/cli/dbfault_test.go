package cli

import (
	"github.com/a0backup/a0/internal/agent"
	"path/filepath"
	"strings"
	"testing"
)

// TestDatabaseGoesAway stops the embedded database in the middle of a
// backup and of a restore (each held at its hold point until the database
// is gone): each fails visibly, leaves nothing that looks valid, and the
// next operation works once the database is back (agent restart).
func TestDatabaseGoesAway(t *testing.T) {
	h := newHolds(agent.HoldBackup)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(300)
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-dbfault"

	t.Run("during a backup", func(t *testing.T) {
		op.mustOn(n, "backup")
		h.wait(t, agent.HoldBackup)
		n.a.Embedded().Close()
		h.let(agent.HoldBackup)
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
		hr := newHolds(agent.HoldRestore)
		dst := startNodeWith(t, "", "", agent.Config{Hold: hr.hook})
		dst.authorize("ops", op.home)
		op.mustOn(dst, "restore", file, "--detach")
		hr.wait(t, agent.HoldRestore)
		dst.a.Embedded().Close()
		hr.let(agent.HoldRestore)
		last := op.waitStatus(dst, "restore-status")
		if !strings.Contains(last, "Restore failed") || !strings.Contains(last, "partly restored") {
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
		if r := op.mustOn(dst, "node-status"); !strings.Contains(r.stdout, "did not finish") {
			t.Fatalf("node-status after restart: %s", r.stdout)
		}
		op.mustOn(dst, "restore", file, "--drop")
		sameCollection(t, n.client(), dst.client(), "auth0.users")
	})
}
