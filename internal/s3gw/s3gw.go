package s3gw

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// InstallHint is how .ci/run installs it.
const InstallHint = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Binary returns the versitygw binary: $A0_VERSITYGW, else versitygw on
// $PATH, else $GOBIN or $GOPATH/bin (default ~/go/bin). It fails the test
// under CI=true when none exists and skips it elsewhere.
func Binary(t testing.TB) string {
	t.Helper()
	if p := locate(); p != "" {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("versitygw missing in CI: install it with `%s`", InstallHint)
	}
	t.Skipf("versitygw missing: install it with `%s` (or set A0_VERSITYGW)", InstallHint)
	return ""
}

func locate() string {
	if p := os.Getenv("A0_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		for _, e := range filepath.SplitList(d) {
			dirs = append(dirs, filepath.Join(e, "bin"))
		}
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, e := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(e, "bin"))
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// Options of a server.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a CA the
	// test gets as CAFile.
	TLS bool
	// Buckets are created before Start returns; LockedBuckets too, with
	// Object Lock enabled.
	Buckets       []string
	LockedBuckets []string
}

// Server is a running versitygw.
type Server struct {
	t                    testing.TB
	bin                  string
	opts                 Options
	Root                 string // the posix backend's directory: <Root>/<bucket>/<key>
	Addr                 string // 127.0.0.1:port
	Endpoint             string // http(s)://127.0.0.1:port
	AccessKey, SecretKey string
	CAFile               string // PEM of the CA when TLS
	certFile, keyFile    string
	cmd                  *exec.Cmd
	exited               chan struct{}
}

// Start runs a versitygw for the test; it is stopped at the test's end.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), opts: o, Root: t.TempDir(),
		AccessKey: "a0test" + randHex(4), SecretKey: randHex(20)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	ln.Close()
	scheme := "http"
	if o.TLS {
		scheme = "https"
		s.writeCert()
	}
	s.Endpoint = scheme + "://" + s.Addr
	s.Restart()
	t.Cleanup(s.Stop)
	for _, b := range o.Buckets {
		if err := s.Client().MakeBucket(context.Background(), b, minio.MakeBucketOptions{}); err != nil {
			t.Fatalf("versitygw: make bucket %s: %v", b, err)
		}
	}
	for _, b := range o.LockedBuckets {
		if err := s.Client().MakeBucket(context.Background(), b, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
			t.Fatalf("versitygw: make bucket %s with Object Lock: %v", b, err)
		}
	}
	return s
}

// Restart starts the server again after Stop (same address, same data).
func (s *Server) Restart() {
	s.t.Helper()
	args := []string{"--port", s.Addr, "--quiet"}
	if s.opts.TLS {
		args = append(args, "--cert", s.certFile, "--key", s.keyFile)
	}
	args = append(args, "posix", s.Root)
	cmd := exec.Command(s.bin, args...)
	// The credentials go through the environment, never argv (a process
	// listing would show them).
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	log, err := os.Create(filepath.Join(s.t.TempDir(), "versitygw.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("versitygw: %v", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(log.Name())
			s.t.Fatalf("versitygw exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw does not listen on %s after 30s", s.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (the data stays in Root).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Client is a minio client with the server's root credentials, for tests
// that change the bucket behind a0's back.
func (s *Server) Client() *minio.Client {
	s.t.Helper()
	tr, err := minio.DefaultTransport(s.opts.TLS)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.opts.TLS {
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(s.CAFile)
		pool.AppendCertsFromPEM(b)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	c, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: s.opts.TLS, Transport: http.RoundTripper(tr), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeCert makes a CA and a server certificate for 127.0.0.1.
func (s *Server) writeCert() {
	dir := s.t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a0 test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	s.CAFile = filepath.Join(dir, "ca.pem")
	s.certFile = filepath.Join(dir, "cert.pem")
	s.keyFile = filepath.Join(dir, "key.pem")
	write := func(p, typ string, b []byte) {
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	write(s.CAFile, "CERTIFICATE", caDER)
	write(s.certFile, "CERTIFICATE", der)
	write(s.keyFile, "EC PRIVATE KEY", kb)
}

// String never shows the secret.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s (root %s)", s.Endpoint, s.Root) }
