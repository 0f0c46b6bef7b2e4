package agentcmd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
)

func writeConfig(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfig(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, testCertPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Run("ok", func(t *testing.T) {
		cfg := writeConfig(t, map[string]any{"state_dir": state, "recipients": []string{x.Recipient().String()},
			"schedule": map[string]string{"cron": "30 2 * * *"}, "replace": true, "metrics_listen": "127.0.0.1:10122",
			"webhook": "https://hooks.example:8443/services/T0KEN-s3cr3t?x=1", "webhook_ca_file": ca})
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		for _, want := range []string{"ok", "cron 30 2 * * *", "replace: yes", "recipients:  1", "http://127.0.0.1:10122/metrics", "https://hooks.example:8443/..."} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if strings.Contains(out.String(), "s3cr3t") {
			t.Errorf("the webhook's token is printed:\n%s", out.String())
		}
	})
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{"everything wrong", map[string]any{"state_dir": filepath.Join(state, "missing"),
			"recipients":     []string{x.String()},
			"schedule":       map[string]string{"cron": "30 25 * * *"},
			"metrics_listen": "10122", "listen": ":99999",
			"webhook":         "http://hooks.example/T0KEN-s3cr3t",
			"sensitive_paths": []string{"/nonexistent/file"},
			"mongodb_uri":     "localhost:27017"},
			[]string{"state_dir:", "no such file", "recipients[0]", "schedule:", "five fields", "metrics_listen", "HOST:PORT",
				"listen \":99999\"", "webhook: want an https://", "sensitive_paths[0]", "mongodb_uri:"}},
		{"schedule without recipients", map[string]any{"state_dir": state, "schedule": map[string]string{"every": "24h"}},
			[]string{`needs "recipients"`}},
		{"replace without schedule", map[string]any{"state_dir": state, "replace": true}, []string{"replace: applies to scheduled"}},
		{"ca without webhook", map[string]any{"state_dir": state, "webhook_ca_file": ca}, []string{`webhook_ca_file: set without "webhook"`}},
		{"unknown key", map[string]any{"state_dir": state, "schedul": map[string]string{"every": "24h"}}, []string{`unknown field "schedul"`}},
		{"no state dir", map[string]any{}, []string{"state_dir: not set"}},
		// Every remote problem on its own line, the endpoint named as given.
		{"bad remote", map[string]any{"state_dir": state, "remote": map[string]any{"endpoint": "127.0.0.1:7171", "bucket": "B_ad",
			"secret_access_key_file": "/nonexistent/s", "ca_file": "/nonexistent/ca.pem"}},
			[]string{"  - remote: endpoint \"127.0.0.1:7171\"", "  - remote: bucket \"B_ad\"", "  - remote: access_key_id is required",
				"  - remote: ca_file:", "  - remote: secret_access_key_file:"}},
		{"bad every", map[string]any{"state_dir": state, "recipients": []string{x.Recipient().String()}, "schedule": map[string]string{"every": "daily"}},
			[]string{"not a duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.cfg)
			var out, errb bytes.Buffer
			if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errb.String())
			}
			msg := errb.String()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, x.String()) || strings.Contains(msg, "s3cr3t") {
				t.Errorf("a secret is echoed:\n%s", msg)
			}
			if strings.Contains(msg, "remote: remote:") {
				t.Errorf("a doubled prefix:\n%s", msg)
			}
			if tc.name == "bad remote" && strings.Count(msg, "\n  - ") != 5 {
				t.Errorf("want one line per remote problem:\n%s", msg)
			}
			if tc.name == "everything wrong" && strings.Count(msg, "\n  - ") != 8 {
				t.Errorf("want one line per problem:\n%s", msg)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"check-config"}, &out, &errb); code != 2 {
		t.Errorf("no --config: exit %d, want 2", code)
	}
	// The agent refuses to start on what check-config refuses.
	cfg := writeConfig(t, map[string]any{"state_dir": state, "schedule": map[string]string{"every": "24h"}})
	if code := Main(context.Background(), []string{"--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `needs "recipients"`) {
		t.Errorf("the agent started on a schedule without recipients: exit %d %s", code, errb.String())
	}
}

// testCertPEM makes a self-signed CA certificate (its key is thrown away).
func testCertPEM(t *testing.T) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a0 test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// --log-json: every line the agent logs, from the start to the stop, is
// one JSON object with a level and a message, as journald keeps them.
func TestLogJSON(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	cfg := writeConfig(t, map[string]any{"state_dir": t.TempDir(), "listen": "127.0.0.1:0",
		"recipients": []string{x.Recipient().String()}, "schedule": map[string]string{"every": "24h"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuf{}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"--config", cfg, "--log-json"}, &bytes.Buffer{}, logs) }()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(logs.String(), `"msg":"a0agent listening"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start:\n%s", logs.String())
		}
		select {
		case code := <-done:
			t.Fatalf("the agent exited %d:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, logs.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the agent did not stop")
	}
	var sawSchedule bool
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", l, err)
		}
		if m["level"] == nil || m["msg"] == nil || m["time"] == nil {
			t.Fatalf("line without time, level or msg: %q", l)
		}
		if m["msg"] == "schedule on" && m["schedule"] == "every 24h0m0s" {
			sawSchedule = true
		}
	}
	if !sawSchedule || len(lines) < 3 {
		t.Fatalf("no schedule line among %d:\n%s", len(lines), logs.String())
	}
}

// Issue 28.13: an unknown key does not hide the rest. The file with
// "schedul" and eight other problems reports all nine in one run, and an
// unknown key inside "remote" and a value of the wrong type are named too.
func TestCheckConfigEveryProblemAtOnce(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	state := t.TempDir()
	cfg := writeConfig(t, map[string]any{"state_dir": filepath.Join(state, "missing"),
		"schedul":        map[string]string{"every": "24h"},
		"recipients":     []string{x.String()},
		"schedule":       map[string]string{"cron": "30 25 * * *"},
		"metrics_listen": "10122", "listen": ":99999",
		"webhook":         "http://hooks.example/T0KEN-s3cr3t",
		"sensitive_paths": []string{"/nonexistent/file"},
		"mongodb_uri":     "localhost:27017"})
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errb.String())
	}
	msg := errb.String()
	for _, w := range []string{`9 problem(s)`, `unknown field "schedul"; did you mean "schedule"?`, "state_dir:", "recipients[0]",
		"five fields", "metrics_listen", "listen \":99999\"", "webhook: want an https://", "sensitive_paths[0]", "mongodb_uri:"} {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, msg)
		}
	}
	if n := strings.Count(msg, "\n  - "); n != 9 {
		t.Errorf("%d problem lines, want 9:\n%s", n, msg)
	}
	if strings.Contains(msg, x.String()) || strings.Contains(msg, "s3cr3t") {
		t.Errorf("a secret is echoed:\n%s", msg)
	}

	cfg = writeConfig(t, map[string]any{"state_dir": state, "replace": "yes", "listen": ":99999",
		"remote": map[string]any{"endpoint": "https://h:1", "bucket": "b", "access_key_id": "AK", "secret_access_key": "x", "keep_last": -1}})
	errb.Reset()
	if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errb.String())
	}
	msg = errb.String()
	for _, w := range []string{`replace: json: cannot unmarshal string`, `remote: unknown field "secret_access_key"; did you mean "secret_access_key_file"?`, `listen ":99999"`, "keep_last"} {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, msg)
		}
	}
	// The agent itself still refuses to start, on the first one in the file.
	errb.Reset()
	if code := Main(context.Background(), []string{"--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `remote: unknown field "secret_access_key"`) {
		t.Errorf("the agent: exit %d %s", code, errb.String())
	}
}
