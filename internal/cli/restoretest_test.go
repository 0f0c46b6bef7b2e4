package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/drill"
)

// TestVerifyRestoreTest: verify --restore-test of a backup made by the
// real agent restores it into a throwaway embedded server and passes; the
// same backup with one document's bytes changed after the dump (the
// manifest's digest left as the dump computed it, the file sealed again,
// so every MAC and count holds) fails with exit 6 naming the collection;
// the temporary directory is gone afterwards in both cases (issue 29).
func TestVerifyRestoreTest(t *testing.T) {
	src, op, _ := backupNode(t, 300)
	const pw = "Passw0rd-restore-test"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup")
	if st := decodeStatus(t, op.waitStatus(src, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v", st)
	}
	op.mustOn(src, "backup-retrieve")
	good := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")

	entries := readEntries(t, good, pw)
	const target = "auth0/users.bson"
	changed := false
	for i, e := range entries {
		if e.hdr.Name != target {
			continue
		}
		entries[i].data, changed = alterString(t, e.data), true
	}
	if !changed {
		t.Fatalf("no %s in the backup", target)
	}
	altered := filepath.Join(op.dir, "altered.enc")
	sealEntries(t, altered, pw, entries)
	if r := op.run("verify", altered); r.code != 0 {
		t.Fatalf("control: the altered file is authentic and matches its manifest's counts, verify passes: %+v", r)
	}

	parent := t.TempDir()
	cases := []struct {
		name string
		file string
		code int
		out  []string // in stdout
		errs []string // in stderr
	}{
		{"intact", good, 0, []string{"restore test: OK", "restore time: ", "auth0.users", " ok "}, nil},
		{"altered after the dump", altered, ExitIntegrity, []string{"restore test: FAILED", "auth0.users", "differs", "content digest differs"},
			[]string{"restore test FAILED: 1 collection(s) differ from what the dump wrote: auth0.users"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := op.run("verify", "--restore-test", "--restore-test-dir", parent, tc.file)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %+v", r.code, tc.code, r)
			}
			for _, s := range tc.out {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tc.errs {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			assertNoDrillDir(t, parent)

			r = op.run("verify", "--restore-test", "--restore-test-dir", parent, "--json", tc.file)
			if r.code != tc.code {
				t.Fatalf("--json: exit %d, want %d: %+v", r.code, tc.code, r)
			}
			var res VerifyResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.RestoreTest == nil {
				t.Fatalf("--json: %v: %s", err, r.stdout)
			}
			if res.RestoreTest.OK != (tc.code == 0) || !res.RestoreTest.Digests || res.RestoreTest.RestoreSeconds <= 0 {
				t.Fatalf("--json: %+v", res.RestoreTest)
			}
			for _, c := range res.RestoreTest.Collections {
				want := drill.StatusOK
				if tc.code != 0 && c.Namespace == "auth0.users" {
					want = drill.StatusDiffers
				}
				if c.Status != want && c.Status != drill.StatusNotRestored {
					t.Errorf("--json: %s: %s (%s), want %s", c.Namespace, c.Status, c.Reason, want)
				}
			}
			assertNoDrillDir(t, parent)
		})
	}

	t.Run("interrupted", func(t *testing.T) {
		// Cancel (as Ctrl-C does) once the drill's directory exists.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for ctx.Err() == nil {
				if m, _ := filepath.Glob(filepath.Join(parent, drill.DirPattern)); len(m) > 0 {
					cancel()
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		r := op.runCtx(ctx, "verify", "--restore-test", "--restore-test-dir", parent, good)
		if r.code != ExitInterrupted || !strings.Contains(r.stderr, "temporary directory is removed") {
			t.Fatalf("exit %d, want %d: %+v", r.code, ExitInterrupted, r)
		}
		assertNoDrillDir(t, parent)
	})

	t.Run("v2 file, opened with the CLI key", func(t *testing.T) {
		alice := newKeyedOperator(t, "ed25519")
		src.authorize("alice", alice.home)
		op.mustOn(src, "backup-delete")
		op.mustOn(src, "backup", "--to", "alice")
		waitFound(t, op, src)
		op.mustOn(src, "backup-retrieve", "-o", "v2.enc")
		r := alice.run("verify", "--restore-test", "--restore-test-dir", parent, filepath.Join(op.dir, "v2.enc"))
		if r.code != 0 || !strings.Contains(r.stdout, "a0enc v2") || !strings.Contains(r.stdout, "restore test: OK") {
			t.Fatalf("%+v", r)
		}
		assertNoDrillDir(t, parent)
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"verify", "--restore-test", "--legacy", good},
			{"verify", "--restore-test-dir", parent, good},
		} {
			if r := op.run(args...); r.code != ExitUsage {
				t.Errorf("%v: exit %d, want %d: %+v", args, r.code, ExitUsage, r)
			}
		}
	})
}

// alterString changes one character of the first string value of the first
// document in a .bson entry: the document stays valid BSON of the same
// size, so only its content differs.
func alterString(t *testing.T, data []byte) []byte {
	t.Helper()
	out := bytes.Clone(data)
	l := int(out[0]) | int(out[1])<<8 | int(out[2])<<16 | int(out[3])<<24
	doc := bson.Raw(out[:l])
	elems, err := doc.Elements()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range elems {
		s, ok := e.Value().StringValueOK()
		if !ok || s == "" {
			continue
		}
		// The value follows its key: find it there.
		at := bytes.Index(out[:l], append(append([]byte(e.Key()), 0), e.Value().Value...))
		if at < 0 {
			t.Fatal("string value not found")
		}
		i := at + len(e.Key()) + 1 + 4
		if out[i] == 'x' {
			out[i] = 'y'
		} else {
			out[i] = 'x'
		}
		return out
	}
	t.Fatal("no string value in the first document")
	return nil
}

func assertNoDrillDir(t *testing.T, parent string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(parent, drill.DirPattern)); len(m) > 0 {
		t.Fatalf("the restore test left %v", m)
	}
}
