package cli

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

type foundStatus struct {
	Message   string `json:"message"`
	Arguments struct {
		Name        string `json:"name"`
		MD5         string `json:"md5"`
		SHA256      string `json:"sha256"`
		Size        int64  `json:"size"`
		Documents   int64  `json:"documents"`
		Consistency string `json:"consistency"`
		Error       string `json:"error"`
	} `json:"arguments"`
}

func decodeStatus(t *testing.T, line string) foundStatus {
	t.Helper()
	var st foundStatus
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		t.Fatalf("status is not one JSON line: %q: %v", line, err)
	}
	if strings.Count(strings.TrimSpace(line), "\n") != 0 {
		t.Fatalf("status is not one line: %q", line)
	}
	return st
}

// backupNode is a seeded node in the backup role with an operator.
func backupNode(t *testing.T, users int) (*testNode, *operator, string) {
	n := startNode(t, "", "")
	n.seed(users)
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)
	return n, op, dev
}

func TestBackupCycle(t *testing.T) {
	n, op, dev := backupNode(t, 300)

	if r := op.mustOn(n, "backup-status"); r.stdout != "{\"message\":\"No backup found\"}\n" {
		t.Fatalf("empty status: %q", r.stdout)
	}
	if r := op.on(n, "backup", "short"); r.code != ExitUsage || !strings.Contains(r.stderr, "at least 8") {
		t.Fatalf("short password: %+v", r)
	}
	r := op.mustOn(n, "backup", "--password", "Passw0rd-cycle")
	if r.stdout != "Backup in progress.\n" {
		t.Fatalf("backup printed %q, want exactly %q", r.stdout, "Backup in progress.\n")
	}
	st := decodeStatus(t, op.waitStatus(n, "backup-status"))
	if st.Message != "Backup found" {
		t.Fatalf("status after backup: %+v\nagent log:\n%s", st, n.log.String())
	}
	if !regexp.MustCompile(`^\d\d-\d\d-\d{4}-\d\d-\d\d-\d\d\.tar\.gz$`).MatchString(st.Arguments.Name) {
		t.Fatalf("name %q is not DD-MM-YYYY-HH-mm-ss.tar.gz", st.Arguments.Name)
	}
	if st.Arguments.Documents == 0 || st.Arguments.Consistency == "" {
		t.Fatalf("status lacks documents/consistency: %+v", st)
	}

	t.Run("second backup refused while one is stored", func(t *testing.T) {
		r := op.on(n, "backup", "Passw0rd-cycle")
		if r.code != ExitRefused || !strings.Contains(r.stderr, "only one backup may be stored; delete it with backup-delete") {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("retrieve matches md5", func(t *testing.T) {
		r := op.mustOn(n, "backup-retrieve")
		body := readFile(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"))
		sum := md5.Sum(body)
		if hex.EncodeToString(sum[:]) != st.Arguments.MD5 || int64(len(body)) != st.Arguments.Size {
			t.Fatalf("retrieved file md5 %x size %d, status says %s %d", sum, len(body), st.Arguments.MD5, st.Arguments.Size)
		}
		if !strings.Contains(r.stdout, st.Arguments.MD5) {
			t.Fatalf("retrieve did not report the md5: %q", r.stdout)
		}
		// Again: the same file is recognised, not overwritten.
		if r := op.mustOn(n, "backup-retrieve"); !strings.Contains(r.stdout, "already holds") {
			t.Fatalf("second retrieve: %q", r.stdout)
		}
	})

	t.Run("file on disk holds no plaintext", func(t *testing.T) {
		body := readFile(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"))
		if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Fatal("backup file is a plain gzip stream")
		}
		for _, plain := range []string{"users.bson", "email", "auth0", "metadata.json", "__tenant"} {
			if bytes.Contains(body, []byte(plain)) {
				t.Fatalf("backup file contains %q in clear", plain)
			}
		}
	})

	t.Run("retrieve refuses to overwrite a different file", func(t *testing.T) {
		other := filepath.Join(op.dir, "other.enc")
		os.WriteFile(other, []byte("precious"), 0o600)
		if r := op.on(n, "backup-retrieve", "-o", "other.enc"); r.code != ExitRefused {
			t.Fatalf("%+v", r)
		}
		if string(readFile(t, other)) != "precious" {
			t.Fatal("existing file overwritten")
		}
		op.mustOn(n, "backup-retrieve", "-o", "other.enc", "--force")
	})

	t.Run("interrupted retrieve resumes", func(t *testing.T) {
		full := readFile(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"))
		out := filepath.Join(op.dir, "resumed.enc")
		part := filepath.Join(op.dir, ".resumed.enc."+st.Arguments.SHA256[:16]+".part")
		os.WriteFile(part, full[:len(full)/2], 0o600)
		r := op.mustOn(n, "backup-retrieve", "-o", "resumed.enc")
		if !strings.Contains(r.stderr, "resuming download at byte") {
			t.Fatalf("no resume: %q", r.stderr)
		}
		if !bytes.Equal(readFile(t, out), full) {
			t.Fatal("resumed file differs")
		}
	})

	t.Run("corrupt partial download fails and leaves nothing valid", func(t *testing.T) {
		full := readFile(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"))
		bad := append([]byte(nil), full[:len(full)/2]...)
		bad[10] ^= 0xff
		part := filepath.Join(op.dir, ".bad.enc."+st.Arguments.SHA256[:16]+".part")
		os.WriteFile(part, bad, 0o600)
		r := op.on(n, "backup-retrieve", "-o", "bad.enc")
		if r.code != ExitIntegrity {
			t.Fatalf("%+v", r)
		}
		for _, p := range []string{filepath.Join(op.dir, "bad.enc"), part} {
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("%s left behind", p)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := op.mustOn(n, "backup-delete")
		if !strings.Contains(r.stdout, st.Arguments.Name) {
			t.Fatalf("delete did not say what it removed: %q", r.stdout)
		}
		if r := op.on(n, "backup-delete"); r.code != ExitNotFound {
			t.Fatalf("second delete: %+v", r)
		}
		left, _ := filepath.Glob(filepath.Join(dev, "backup", "*.enc"))
		if len(left) != 0 {
			t.Fatalf("files left: %v", left)
		}
	})
}

func TestBackupRefusals(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-env"
	if r := op.on(n, "backup"); r.code != ExitRefused || !strings.Contains(r.stderr, "run set-as-backup first") {
		t.Fatalf("no backup role: %+v", r)
	}
	if r := op.on(n, "backup-status"); r.code != ExitRefused {
		t.Fatalf("status without role: %+v", r)
	}
	op.mustOn(n, "set-as-backup", t.TempDir())

	t.Run("operators at once: exactly one wins", func(t *testing.T) {
		// Each round starts four backups at the same instant (no lock
		// between the calls): the node's check-then-start must let exactly
		// one through, whether the others see it running or stored.
		const rounds, callers = 8, 4
		for round := range rounds {
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([]result, callers)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i] = op.onConcurrently(n, "backup", "--password", "Passw0rd-race")
				}()
			}
			close(start)
			wg.Wait()
			wins := 0
			for _, r := range results {
				switch {
				case r.code == 0:
					wins++
				case r.code == ExitRefused && (strings.Contains(r.stderr, "already running") || strings.Contains(r.stderr, "only one backup")):
				default:
					t.Fatalf("round %d: unexpected result %+v", round, r)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d backups started, want 1: %+v", round, wins, results)
			}
			if st := decodeStatus(t, op.waitStatus(n, "backup-status")); st.Message != "Backup found" {
				t.Fatalf("round %d: %+v\n%s", round, st, n.log.String())
			}
			op.mustOn(n, "backup-delete")
		}
	})
}

func TestBackupPasswordSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
		file string
		code int
	}{
		{name: "positional", args: []string{"Passw0rd-pos"}, code: 0},
		{name: "flag", args: []string{"--password", "Passw0rd-flag"}, code: 0},
		{name: "file", file: "Passw0rd-file\n", code: 0},
		{name: "env", env: "Passw0rd-env", code: 0},
		{name: "two sources", args: []string{"Passw0rd-a", "--password", "Passw0rd-b"}, code: ExitUsage},
		{name: "none and no terminal", code: ExitUsage},
		{name: "short file", file: "short\n", code: ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := newOperator(t)
			env := &Env{Getenv: func(k string) string {
				if k == "A0_BACKUP_PASSWORD" {
					return tc.env
				}
				return ""
			}}
			o := PasswordOptions{EnvVars: []string{"A0_BACKUP_PASSWORD"}}
			if len(tc.args) > 0 && !strings.HasPrefix(tc.args[0], "-") {
				o.Positional = tc.args[0]
			}
			for i, a := range tc.args {
				if a == "--password" {
					o.Password = tc.args[i+1]
				}
			}
			if tc.file != "" {
				p := filepath.Join(op.dir, "pw")
				os.WriteFile(p, []byte(tc.file), 0o600)
				o.PasswordFile = p
			}
			pw, err := o.resolve(env, true)
			if err == nil {
				err = checkStrength(pw)
			}
			code, _ := exitCode(err)
			if code != tc.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			if err == nil && strings.ContainsAny(pw, "\n") {
				t.Fatalf("password kept a newline: %q", pw)
			}
		})
	}
}
