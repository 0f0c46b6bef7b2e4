package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/crypt"
)

// TestPasswordFileMode (issue 13 finding 14): a password file others can
// read, or anyone but its owner can write, is refused as ssh refuses such
// a private key (exit 2, with the chmod to run); a group-readable one is
// used with a warning.
func TestPasswordFileMode(t *testing.T) {
	op := newOperator(t)
	const pw = "Passw0rd-file"
	enc := filepath.Join(op.dir, "x.enc")
	f, err := os.Create(enc)
	if err != nil {
		t.Fatal(err)
	}
	w, err := crypt.NewWriter(f, []byte(pw), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("not an archive"))
	w.Close()
	f.Close()
	pf := filepath.Join(op.dir, "pw")
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
		warned  bool
	}{
		{0o644, true, false},
		{0o604, true, false},
		{0o620, true, false},
		{0o602, true, false},
		{0o640, false, true},
		{0o600, false, false},
		{0o400, false, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			os.WriteFile(pf, []byte(pw+"\n"), 0o600)
			if err := os.Chmod(pf, tc.mode); err != nil {
				t.Fatal(err)
			}
			r := op.run("verify", enc, "--password-file", pf)
			refused := r.code == ExitUsage && strings.Contains(r.stderr, "chmod 600")
			if refused != tc.refused {
				t.Fatalf("mode %04o: refused %v, want %v: %+v", tc.mode, refused, tc.refused, r)
			}
			if warned := strings.Contains(r.stderr, "warning: password file"); warned != tc.warned {
				t.Fatalf("mode %04o: warned %v, want %v: %+v", tc.mode, warned, tc.warned, r)
			}
			if !tc.refused && (r.code == ExitOK || r.code == ExitUsage || !strings.Contains(r.stderr, "gzip")) {
				// The password was read and opened the file, which holds
				// no archive.
				t.Fatalf("mode %04o: password not used: %+v", tc.mode, r)
			}
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Fatal("password printed")
			}
		})
	}
}
