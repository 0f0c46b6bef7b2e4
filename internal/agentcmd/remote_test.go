package agentcmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/remote"
)

// TestConfigRemote: the "remote" object is read with its retention keys;
// a bad one stops the agent at start saying what is wrong; the secret comes
// from its file or the environment and is never in an error.
func TestConfigRemote(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a0.json")
	secretFile := filepath.Join(dir, "s3-secret")
	os.WriteFile(secretFile, []byte("Sup3r-s3cret-from-file\n"), 0o600)
	write := func(remoteJSON string) {
		os.WriteFile(cfg, []byte(`{"state_dir":"/s","remote":`+remoteJSON+`}`), 0o600)
	}
	write(`{"endpoint":"https://127.0.0.1:9000","bucket":"a0-backups","prefix":"a0-1","region":"us-east-1",
		"access_key_id":"AK","secret_access_key_file":"` + secretFile + `","ca_file":"","path_style":true,"keep_last":3,"keep_monthly":6}`)
	o := RunOptions{Config: cfg}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if o.Remote == nil || o.Remote.Bucket != "a0-backups" || !o.Remote.PathStyle || o.Remote.KeepLast != 3 {
		t.Fatalf("remote %+v", o.Remote)
	}
	var ac agent.Config
	if err := remoteConfig(&ac, o.Remote); err != nil {
		t.Fatal(err)
	}
	if ac.Remote == nil || ac.Remote.Location() != "https://127.0.0.1:9000/a0-backups/a0-1" || ac.Retention.Last != 3 || ac.Retention.Monthly != 6 {
		t.Fatalf("agent config: %v %+v", ac.Remote, ac.Retention)
	}

	for _, tc := range []struct{ remote, want string }{
		{`{"endpoint":"https://h:1","access_key_id":"AK"}`, "bucket is required"},
		{`{"endpoint":"h:1","bucket":"b","access_key_id":"AK"}`, `want "https://host:port"`},
		{`{"endpoint":"https://h:1","bucket":"b","access_key_id":"AK","keep_daily":-2}`, "keep_daily"},
		{`{"endpoint":"https://h:1","bucket":"b","access_key_id":"AK","secret_access_key":"x"}`, "unknown field"},
	} {
		write(tc.remote)
		if err := (&RunOptions{Config: cfg}).fill(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.remote, err, tc.want)
		}
	}

	// No secret anywhere: refused at start, naming where it may come from.
	t.Setenv(remote.SecretEnv, "")
	if err := remoteConfig(&ac, &remote.Config{Endpoint: "https://h:1", Bucket: "bkt", AccessKeyID: "AK"}); err == nil || !strings.Contains(err.Error(), remote.SecretEnv) {
		t.Fatalf("no secret: %v", err)
	}
	// A ca_file that is not PEM: refused, not ignored.
	bad := filepath.Join(dir, "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	t.Setenv(remote.SecretEnv, "Sup3r-s3cret-from-env")
	if err := remoteConfig(&ac, &remote.Config{Endpoint: "https://h:1", Bucket: "bkt", AccessKeyID: "AK", CAFile: bad}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") || strings.Contains(err.Error(), "Sup3r") {
		t.Fatalf("bad ca_file: %v", err)
	}
}
