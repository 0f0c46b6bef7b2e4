package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it,
// and writes the CA's PEM to a file.
func testCA(t *testing.T) (caFile string, serverCert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a0 test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func tlsServer(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestPostsOneJSONLine(t *testing.T) {
	caFile, cert := testCA(t)
	got := make(chan []byte, 4)
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/hook/s3cr3t-token" {
			t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		got <- buf.Bytes()
	}))
	log := &lockedBuf{}
	p, err := New(Config{URL: srv.URL + "/hook/s3cr3t-token", CAFile: caFile, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fin := time.Now().UTC()
	p.Post(Event{Event: "job_done", Kind: "backup", State: "done", Started: fin.Add(-time.Minute), Finished: &fin,
		Backup: &Backup{Name: "02-12-2026-01-00-00.tar.gz", Size: 42}})
	var body []byte
	select {
	case body = <-got:
	case <-time.After(time.Minute):
		t.Fatalf("nothing posted; log:\n%s", log)
	}
	if bytes.Count(body, []byte("\n")) != 1 || body[len(body)-1] != '\n' {
		t.Fatalf("want one JSON line, got %q", body)
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.Backup == nil || ev.Backup.Name != "02-12-2026-01-00-00.tar.gz" || ev.State != "done" {
		t.Fatalf("event %+v %v", ev, err)
	}
	p.Close(5 * time.Second)
	if strings.Contains(log.String(), "s3cr3t") {
		t.Fatalf("the URL's token reached the log:\n%s", log)
	}
}

// A receiver whose certificate the agent does not trust gets nothing, and
// the failure is logged without the URL's token.
func TestUntrustedReceiver(t *testing.T) {
	_, cert := testCA(t)
	var hits int
	var mu sync.Mutex
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mu.Lock(); hits++; mu.Unlock() }))
	log := &lockedBuf{}
	p, err := New(Config{URL: srv.URL + "/hook?token=s3cr3t", Logger: slog.New(slog.NewTextHandler(log, nil)), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	p.Post(Event{Event: "job_failed", Kind: "backup", State: "failed", Error: "boom"})
	p.Close(time.Minute)
	out := log.String()
	if !strings.Contains(out, "webhook post failed") || !strings.Contains(out, "certificate") {
		t.Fatalf("log:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "/hook") {
		t.Fatalf("the URL's path reached the log:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Fatalf("an untrusted receiver got %d requests", hits)
	}
}

// A receiver that hangs never holds up Post: every call returns while the
// first post is still stuck, the overflow is logged, and Close returns.
func TestHangingReceiverNeverBlocks(t *testing.T) {
	caFile, cert := testCA(t)
	release := make(chan struct{})
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	log := &lockedBuf{}
	p, err := New(Config{URL: srv.URL, CAFile: caFile, Logger: slog.New(slog.NewTextHandler(log, nil)), Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() {
		for i := 0; i < queueSize+10; i++ {
			p.Post(Event{Event: "job_done", Kind: "backup"})
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(time.Minute):
		t.Fatal("Post blocked on a hanging receiver")
	}
	if !strings.Contains(log.String(), "event dropped") {
		t.Fatalf("the overflow is not logged:\n%s", log)
	}
	closed := make(chan struct{})
	go func() { p.Close(100 * time.Millisecond); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close waited on a hanging receiver")
	}
}

func TestCheck(t *testing.T) {
	caFile, _ := testCA(t)
	notPEM := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct{ url, ca, err string }{
		{"https://hooks.example/x", "", ""},
		{"https://hooks.example/x", caFile, ""},
		{"http://hooks.example/x", "", "https://"},
		{"hooks.example/x", "", "https://"},
		{"https://user:pw@hooks.example/x", "", "user part"},
		{"https://hooks.example/x", "/nonexistent/ca.pem", "webhook_ca_file"},
		{"https://hooks.example/x", notPEM, "no PEM"},
		{"https://hooks.example/%zz", "", "not a URL"},
	} {
		err := Check(tc.url, tc.ca)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Check(%q, %q) = %v, want %q", tc.url, tc.ca, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("error quotes the credentials: %v", err)
		}
	}
}
