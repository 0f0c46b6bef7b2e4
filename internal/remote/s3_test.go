package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/s3gw"
)

const testPart = minPartSize

func s3Config(gw *s3gw.Server, bucket, prefix string) Config {
	return Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: prefix, AccessKeyID: gw.AccessKey,
		CAFile: gw.CAFile, PathStyle: true, PartSize: testPart, Region: "us-east-1"}
}

func openS3(t *testing.T, c Config, secret string) *S3 {
	t.Helper()
	s, err := OpenS3(c, Secret(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Errors(t *testing.T) {
	ctx := context.Background()
	gw := s3gw.Start(t, s3gw.Options{TLS: true, Buckets: []string{"a0-backups"}})
	small := bytes.NewReader([]byte("hello"))
	cases := []struct {
		name   string
		mutate func(c *Config, secret *string)
		want   error
	}{
		{"wrong-secret", func(c *Config, s *string) { *s = "wrong-" + *s }, ErrAuth},
		{"wrong-access-key", func(c *Config, s *string) { c.AccessKeyID = "nobody" }, ErrAuth},
		{"missing-bucket", func(c *Config, s *string) { c.Bucket = "no-such-bucket" }, ErrNoBucket},
		{"unreachable", func(c *Config, s *string) { c.Endpoint = "https://" + closedAddr(t) }, ErrUnreachable},
		{"untrusted-certificate", func(c *Config, s *string) { c.CAFile = "" }, ErrUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, secret := s3Config(gw, "a0-backups", "p"), gw.SecretKey
			tc.mutate(&c, &secret)
			st := openS3(t, c, secret)
			for op, f := range map[string]func() error{
				"put":  func() error { _, err := st.Put(ctx, "x.enc", small, 5); return err },
				"list": func() error { _, err := st.List(ctx); return err },
				"stat": func() error { _, err := st.Stat(ctx, "x.enc"); return err },
			} {
				err := f()
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: %v, want %v", op, err, tc.want)
				}
				if strings.Contains(err.Error(), gw.SecretKey) || strings.Contains(err.Error(), secret) {
					t.Fatalf("%s: the error shows the secret: %v", op, err)
				}
			}
		})
	}
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte("s3cr3t-value\n"), 0o600)
	good := Config{Endpoint: "https://s3.example:9000", Bucket: "bkt", AccessKeyID: "AK"}
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"good", good, ""},
		{"no-endpoint", Config{Bucket: "bkt", AccessKeyID: "AK"}, "endpoint is required"},
		{"endpoint-with-user", Config{Endpoint: "https://u:pw@h:1", Bucket: "bkt", AccessKeyID: "AK"}, "no path, no user"},
		{"ftp", Config{Endpoint: "ftp://h:1", Bucket: "bkt", AccessKeyID: "AK"}, "want \"https://host:port\""},
		{"no-bucket", Config{Endpoint: "https://h:1", AccessKeyID: "AK"}, "bucket is required"},
		{"short-bucket", Config{Endpoint: "https://h:1", Bucket: "b", AccessKeyID: "AK"}, `bucket "b": an S3 bucket name is 3-63`},
		{"upper-bucket", Config{Endpoint: "https://h:1", Bucket: "My_Bucket", AccessKeyID: "AK"}, `bucket "My_Bucket": an S3 bucket name`},
		{"no-key-id", Config{Endpoint: "https://h:1", Bucket: "b"}, "access_key_id is required"},
		{"dotdot-prefix", Config{Endpoint: "https://h:1", Bucket: "bkt", AccessKeyID: "AK", Prefix: "../x"}, "prefix"},
		{"negative-keep", Config{Endpoint: "https://h:1", Bucket: "bkt", AccessKeyID: "AK", KeepDaily: -1}, "keep_daily"},
		{"bad-lock-mode", Config{Endpoint: "https://h:1", Bucket: "bkt", AccessKeyID: "AK", ObjectLockDays: 3, ObjectLockMode: "forever"}, "object_lock_mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Fatalf("the error shows the endpoint's password: %v", err)
			}
		})
	}
	c := good
	c.SecretAccessKeyFile = keyFile
	if s, err := c.LoadSecret(func(string) string { return "from-env" }); err != nil || s != "s3cr3t-value" {
		t.Fatalf("secret from file: %v", err)
	}
	c.SecretAccessKeyFile = ""
	if s, err := c.LoadSecret(func(k string) string { return map[string]string{SecretEnv: "from-env"}[k] }); err != nil || s != "from-env" {
		t.Fatalf("secret from env: %v", err)
	}
	if _, err := c.LoadSecret(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), SecretEnv) {
		t.Fatalf("no secret: %v", err)
	}
	s := Secret("s3cr3t-value")
	for _, f := range []string{"%v", "%s", "%+v", "%#v"} {
		if out := fmt.Sprintf(f, struct{ S Secret }{s}); strings.Contains(out, "s3cr3t") {
			t.Fatalf("%s prints the secret: %s", f, out)
		}
	}
}

// TestS3ResumeAfterCut cuts the connection in the middle of a multipart
// upload: the next Put resumes from the parts the store holds instead of
// sending the file again.
func TestS3ResumeAfterCut(t *testing.T) {
	ctx := context.Background()
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{"a0-backups"}})
	b := make([]byte, 4*testPart+99)
	rand.Read(b)
	proxy := s3gw.NewCutProxy(t, gw.Addr, 5*testPart/2)
	c := s3Config(gw, "a0-backups", "cut")
	c.Endpoint = "http://" + proxy.Addr
	st := openS3(t, c, gw.SecretKey)
	if _, err := st.Put(ctx, "big.enc", bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("put through the cut: %v, want ErrUnreachable", err)
	}
	proxy.Reopen(t)
	res, err := st.Put(ctx, "big.enc", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedBytes < 2*testPart {
		t.Fatalf("resumed %d bytes: the two parts sent before the cut were sent again", res.ResumedBytes)
	}
	rc, err := st.Get(ctx, "big.enc", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, b) {
		t.Fatal("the resumed object differs")
	}
}
