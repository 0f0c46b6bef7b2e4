package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
)

// serve answers every request with 200 over TLS with cert, until the test ends.
func serve(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"message":"PONG"}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestPinOnlyAfterTheHandshake (issue 13 finding 11): a node presenting a
// certificate whose key it does not hold (the handshake signature fails)
// is never pinned; a node that completes the handshake is pinned once.
func TestPinOnlyAfterTheHandshake(t *testing.T) {
	home := filepath.Join(t.TempDir(), "a0cli")
	if _, err := keys.Create(home, keys.Ed25519, false); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	real, err := keys.LoadOrCreateNodeCert(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	// The real node's certificate, presented by someone without its key.
	forged := tls.Certificate{Certificate: real.Certificate, PrivateKey: other}
	known := filepath.Join(home, "known_nodes")

	addr := serve(t, forged)
	pins := 0
	c, err := New(home, addr, func(string, string) error { pins++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	var out api.Message
	if err := c.JSON(context.Background(), http.MethodGet, api.PathPing, nil, &out); err == nil {
		t.Fatal("handshake with a forged certificate succeeded")
	}
	if b, _ := os.ReadFile(known); pins != 0 || strings.Contains(string(b), addr) {
		t.Fatalf("forged certificate pinned (%d callbacks): %q", pins, b)
	}

	addr = serve(t, real)
	// The operator does not accept the certificate: nothing pinned, the
	// request never sent (the server would answer it).
	c, err = New(home, addr, func(node, fp string) error { return &PinRefusedError{Node: node, Fingerprint: fp} })
	if err != nil {
		t.Fatal(err)
	}
	var refused *PinRefusedError
	if err := c.JSON(context.Background(), http.MethodGet, api.PathPing, nil, &out); !errors.As(err, &refused) {
		t.Fatalf("refused first contact: %v, want *PinRefusedError", err)
	}
	if b, _ := os.ReadFile(known); strings.Contains(string(b), addr) {
		t.Fatalf("refused certificate pinned: %q", b)
	}
	c, err = New(home, addr, func(string, string) error { pins++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.JSON(context.Background(), http.MethodGet, api.PathPing, nil, &out); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(known); pins != 1 || !strings.Contains(string(b), keys.Fingerprint(real.Certificate[0])) {
		t.Fatalf("real node: %d pin callbacks, known_nodes %q", pins, b)
	}
}
