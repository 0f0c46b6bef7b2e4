package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClientCertificate(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	c, err := ClientCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if leaf.Subject.CommonName != "a0cli" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if d := now.Sub(leaf.NotBefore); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("NotBefore is now-%v, want now-5m", d)
	}
	if d := leaf.NotAfter.Sub(now); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("NotAfter is now+%v, want now+1h", d)
	}
	if !k.Public().(ed25519.PublicKey).Equal(leaf.PublicKey) {
		t.Error("certificate does not carry the signer's public key")
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Error("no client-auth usage")
	}
}

func TestLoadOrCreateNodeCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	certPath, keyPath := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	c, err := LoadOrCreateNodeCert(certPath, keyPath, []string{"Backup-1.Example:8443", "10.0.0.7", ""})
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, keyPath, 0o600)
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("node key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("node certificate valid only %v", life)
	}
	for _, name := range []string{"backup-1.example", "localhost"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("SAN %s: %v", name, err)
		}
	}
	// The certificate is shown to anyone who connects: it must not name the
	// machine unless the operator listed that name.
	if h := strings.ToLower(hostname()); h != "localhost" && leaf.VerifyHostname(h) == nil || strings.Contains(leaf.Subject.CommonName, hostname()) {
		t.Errorf("certificate names the host %q: CN %q, SANs %v", h, leaf.Subject.CommonName, leaf.DNSNames)
	}
	for _, ip := range []string{"10.0.0.7", "127.0.0.1", "::1"} {
		if !slices.ContainsFunc(leaf.IPAddresses, func(x net.IP) bool { return x.Equal(net.ParseIP(ip)) }) {
			t.Errorf("no IP SAN %s in %v", ip, leaf.IPAddresses)
		}
	}

	// Kept: a second call (as after a restart) returns the same certificate.
	c2, err := LoadOrCreateNodeCert(certPath, keyPath, []string{"other"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Certificate[0], c2.Certificate[0]) {
		t.Fatal("node certificate changed on the second call")
	}

	// Only the key left: a new certificate for the same key.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	c3, err := LoadOrCreateNodeCert(certPath, keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf3, _ := x509.ParseCertificate(c3.Certificate[0])
	if !pub.Equal(leaf3.PublicKey) {
		t.Fatal("certificate reissued with a different key")
	}

	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	var pe *PermissionError
	if _, err := LoadOrCreateNodeCert(certPath, keyPath, nil); !errors.As(err, &pe) {
		t.Fatalf("loose key mode: %v, want *PermissionError", err)
	}

	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateNodeCert(certPath, keyPath, nil); err == nil {
		t.Fatal("certificate without its key must be an error, not silently replaced")
	}
}
