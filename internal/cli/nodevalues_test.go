package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFoundArgs (issue 25.7): the checksums and size a node or a
// bucket's record returns are checked before they name a file.
func TestCheckFoundArgs(t *testing.T) {
	good := foundArgs{Name: "b", MD5: strings.Repeat("0a", 16), SHA256: strings.Repeat("f1", 32), Size: 10}
	for _, tc := range []struct {
		name string
		edit func(*foundArgs)
		ok   bool
	}{
		{"well-formed", func(*foundArgs) {}, true},
		{"empty file", func(f *foundArgs) { f.Size = 0 }, true},
		{"traversing sha256", func(f *foundArgs) { f.SHA256 = "/../../../../zzz" + strings.Repeat("0", 48) }, false},
		{"short sha256", func(f *foundArgs) { f.SHA256 = "abc" }, false},
		{"long sha256", func(f *foundArgs) { f.SHA256 += "00" }, false},
		{"uppercase sha256", func(f *foundArgs) { f.SHA256 = strings.ToUpper(f.SHA256) }, false},
		{"sha256 with a NUL", func(f *foundArgs) { f.SHA256 = "\x00" + f.SHA256[1:] }, false},
		{"short md5", func(f *foundArgs) { f.MD5 = "00" }, false},
		{"md5 with a slash", func(f *foundArgs) { f.MD5 = "/" + f.MD5[1:] }, false},
		{"negative size", func(f *foundArgs) { f.Size = -1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			tc.edit(&f)
			err := checkFoundArgs(f, "the node's")
			var ie *IntegrityError
			if tc.ok != (err == nil) || (err != nil && !errors.As(err, &ie)) {
				t.Fatalf("checkFoundArgs = %v, want ok=%v (an *IntegrityError otherwise)", err, tc.ok)
			}
		})
	}
}

// TestRetrieveRefusesCraftedChecksums (issue 25.7): given the reply the
// review's malicious node sent (sha256 "/../../../../zzz..."), a retrieve
// into a/b/c/d/out.enc deleted a/zzz.part; one shorter than 16 characters
// panicked. Now it exits 6 before anything is opened: a/zzz.part is
// intact and nothing is created under a/.
func TestRetrieveRefusesCraftedChecksums(t *testing.T) {
	for _, sha := range []string{"/../../../../zzz" + strings.Repeat("0", 48), "/../../../../zzz", "abc"} {
		t.Run(fmt.Sprintf("%q", sha[:min(len(sha), 16)]), func(t *testing.T) {
			root := t.TempDir()
			victim := filepath.Join(root, "a", "zzz.part")
			out := filepath.Join(root, "a", "b", "c", "d", "out.enc")
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				t.Fatal(err)
			}
			content := []byte("someone else's partial download")
			if err := os.WriteFile(victim, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			env := &Env{Stdout: &stdout, Stderr: &stderr}
			// The size of the victim: the old code then skipped the
			// download and removed the "partial file" whose checksums
			// did not match.
			want := foundArgs{Name: "x", MD5: strings.Repeat("0", 32), SHA256: sha, Size: int64(len(content))}
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				err = retrieveTo(context.Background(), env, nil, RetrieveOptions{Output: out}, want, "/v1/x", "backup-retrieve", "the node's")
			}()
			if code, _ := exitCode(err); code != ExitIntegrity {
				t.Fatalf("err = %v (exit %d), want exit %d", err, code, ExitIntegrity)
			}
			if b, rerr := os.ReadFile(victim); rerr != nil || !bytes.Equal(b, content) {
				t.Fatalf("%s: %q, %v: want it intact", victim, b, rerr)
			}
			var made []string
			filepath.WalkDir(filepath.Join(root, "a"), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && p != victim {
					made = append(made, p)
				}
				return nil
			})
			if len(made) != 0 {
				t.Fatalf("files created: %v", made)
			}
		})
	}
}
