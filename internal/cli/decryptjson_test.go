package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/crypt"
)

// TestDecryptJSON: decrypt --json prints one JSON line with verify
// --json's names (file, authentic, legacy, format, plaintext_bytes) and the
// output, for an a0 file and a legacy one; with -o - the archive goes to
// stdout and the result to stderr (issue 28, point 5).
func TestDecryptJSON(t *testing.T) {
	op := newOperator(t)
	const pw = "Passw0rd-decrypt-json"
	op.env["A0_BACKUP_PASSWORD"] = pw
	var plain bytes.Buffer
	gz := gzip.NewWriter(&plain)
	gz.Write(bytes.Repeat([]byte("a0 decrypt --json "), 1000))
	gz.Close()

	a0 := filepath.Join(op.dir, "x.tar.gz.enc")
	var enc bytes.Buffer
	w, err := crypt.NewWriter(&enc, []byte(pw), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain.Bytes())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(a0, enc.Bytes(), 0o600)
	// The original appliance's format: AES-256-CTR, no MAC (the same
	// keystream decrypts and encrypts).
	legacy := filepath.Join(op.dir, "old.tar.gz.enc")
	lb, _ := io.ReadAll(crypt.NewLegacyReader(bytes.NewReader(plain.Bytes()), []byte(pw)))
	os.WriteFile(legacy, lb, 0o600)

	for _, tc := range []struct {
		name   string
		args   []string
		out    string
		legacy bool
		format string
	}{
		{"a0 file", []string{"decrypt", "--json", a0, "-o", filepath.Join(op.dir, "a.tar.gz")}, filepath.Join(op.dir, "a.tar.gz"), false, "a0enc v1, "},
		{"legacy file", []string{"decrypt", "--json", "--legacy", legacy, "-o", filepath.Join(op.dir, "l.tar.gz")}, filepath.Join(op.dir, "l.tar.gz"), true, ""},
		{"to stdout", []string{"decrypt", "--json", a0, "-o", "-"}, "-", false, "a0enc v1, "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := op.run(tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			line, data := r.stdout, []byte(nil)
			if tc.out == "-" {
				line, data = r.stderr, []byte(r.stdout)
			} else {
				data = readFile(t, tc.out)
			}
			if !bytes.Equal(data, plain.Bytes()) {
				t.Fatalf("the plaintext (%d bytes) is not the archive (%d bytes)", len(data), plain.Len())
			}
			if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "{") {
				t.Fatalf("not one JSON line: %q", line)
			}
			var res map[string]any
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("%v: %q", err, line)
			}
			format, _ := res["format"].(string)
			if res["file"] != tc.args[len(tc.args)-3] || res["output"] != tc.out || res["authentic"] != !tc.legacy ||
				(res["legacy"] == true) != tc.legacy || res["plaintext_bytes"] != float64(plain.Len()) || !strings.HasPrefix(format, tc.format) {
				t.Fatalf("result %s", line)
			}
		})
	}
}
