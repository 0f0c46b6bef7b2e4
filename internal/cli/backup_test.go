package cli

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/a0backup/a0/internal/crypt"
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

// TestBackupPasswordSources drives the real command line with each
// password source and checks which password the backup was made with by
// opening the retrieved file with it (and not with the others).
func TestBackupPasswordSources(t *testing.T) {
	n, op, _ := backupNode(t, 10)
	const (
		pos, flag, file, envPW, sensEnv, typed = "Passw0rd-pos", "Passw0rd-flag", "Passw0rd-file", "Passw0rd-env", "Passw0rd-sensenv", "Passw0rd-typed"
	)
	pwFile := filepath.Join(op.dir, "pw")
	os.WriteFile(pwFile, []byte(file+"\n"), 0o600)
	shortFile := filepath.Join(op.dir, "short")
	os.WriteFile(shortFile, []byte("short\n"), 0o600)
	for _, tc := range []struct {
		name    string
		cmd     []string
		env     map[string]string
		answers []string
		code    int
		want    string // the password the backup was made with
		prompts int    // prompts shown
		stderr  string // part of the refusal
		not     []string
	}{
		{name: "positional", cmd: []string{"backup", pos}, want: pos},
		{name: "flag", cmd: []string{"backup", "--password", flag}, want: flag},
		{name: "file, trailing newline ignored", cmd: []string{"backup", "--password-file", pwFile}, want: file},
		{name: "environment", cmd: []string{"backup"}, env: map[string]string{"A0_BACKUP_PASSWORD": envPW}, want: envPW},
		{name: "flag beats the environment", cmd: []string{"backup", "--password", flag}, env: map[string]string{"A0_BACKUP_PASSWORD": envPW}, want: flag, not: []string{envPW}},
		{name: "file beats the environment", cmd: []string{"backup", "--password-file", pwFile}, env: map[string]string{"A0_BACKUP_PASSWORD": envPW}, want: file, not: []string{envPW}},
		{name: "prompt asked twice", cmd: []string{"backup"}, answers: []string{typed, typed}, want: typed, prompts: 2},
		{name: "environment beats the prompt", cmd: []string{"backup"}, env: map[string]string{"A0_BACKUP_PASSWORD": envPW}, answers: []string{typed, typed}, want: envPW, not: []string{typed}},
		{name: "prompt mismatch refused", cmd: []string{"backup"}, answers: []string{typed, typed + "x"}, code: ExitUsage, prompts: 2, stderr: "do not match"},
		{name: "positional and flag refused", cmd: []string{"backup", pos, "--password", flag}, code: ExitUsage, stderr: "one way only"},
		{name: "flag and file refused", cmd: []string{"backup", "--password", flag, "--password-file", pwFile}, code: ExitUsage, stderr: "one way only"},
		{name: "none and no terminal", cmd: []string{"backup"}, code: ExitUsage, stderr: "no password given"},
		{name: "short password in a file", cmd: []string{"backup", "--password-file", shortFile}, code: ExitUsage, stderr: "at least 8"},
		{name: "missing file", cmd: []string{"backup", "--password-file", pwFile + ".missing"}, code: ExitUsage, stderr: "cannot read password file"},
		{name: "sensitive: its own variable first", cmd: []string{"backup-sensitive"},
			env: map[string]string{"A0_BACKUP_PASSWORD": envPW, "A0_BACKUP_SENSITIVE_PASSWORD": sensEnv}, want: sensEnv, not: []string{envPW}},
		{name: "sensitive: the ordinary variable otherwise", cmd: []string{"backup-sensitive"},
			env: map[string]string{"A0_BACKUP_PASSWORD": envPW}, want: envPW},
		{name: "sensitive: flag beats both variables", cmd: []string{"backup-sensitive", "--password", flag},
			env: map[string]string{"A0_BACKUP_PASSWORD": envPW, "A0_BACKUP_SENSITIVE_PASSWORD": sensEnv}, want: flag, not: []string{sensEnv}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op.env, op.answers, op.prompted = tc.env, tc.answers, nil
			if op.env == nil {
				op.env = map[string]string{}
			}
			defer func() { op.env, op.answers = map[string]string{}, nil }()
			prefix := strings.TrimSuffix(tc.cmd[0], "-status")
			r := op.on(n, append(tc.cmd, "--wait")...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, want %d (stderr containing %q): %s%s", r.code, tc.code, tc.stderr, r.stdout, r.stderr)
			}
			if len(op.prompted) != tc.prompts {
				t.Fatalf("prompted %d times (%q), want %d", len(op.prompted), op.prompted, tc.prompts)
			}
			if tc.code != 0 {
				if st := decodeStatus(t, op.mustOn(n, prefix+"-status").stdout); st.Message != "No backup found" {
					t.Fatalf("a refused command started a backup: %+v", st)
				}
				return
			}
			defer op.on(n, prefix+"-delete") // the next case needs an empty slot
			op.mustOn(n, prefix+"-retrieve", "-o", "sources.enc", "--force")
			// The password it was made with opens it; the competing
			// sources' passwords do not.
			for _, pw := range append([]string{tc.want}, tc.not...) {
				f, err := os.Open(filepath.Join(op.dir, "sources.enc"))
				if err != nil {
					t.Fatal(err)
				}
				_, err = crypt.NewReader(f, []byte(pw))
				f.Close()
				switch {
				case pw == tc.want && err != nil:
					t.Fatalf("the backup does not open with %q, the password it should have been made with: %v", pw, err)
				case pw != tc.want && !errors.Is(err, crypt.ErrWrongPassword):
					t.Fatalf("the backup opens with %q (err %v); want only %q", pw, err, tc.want)
				}
			}
		})
	}
}
