package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Validity of client certificates. The slack before now absorbs clock skew
// between workstation and node; one hour is far longer than any connection
// needs, and the node does not rely on it anyway (see the package doc).
const (
	clientCertSkew     = 5 * time.Minute
	clientCertLifetime = time.Hour
	nodeCertLifetime   = 10 * 365 * 24 * time.Hour
)

// ClientCertificate returns a self-signed certificate (CN "a0cli", valid
// from now-5m to now+1h) for signer, ready for tls.Config.Certificates.
func ClientCertificate(signer crypto.Signer) (tls.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "a0cli"},
		NotBefore:             now.Add(-clientCertSkew),
		NotAfter:              now.Add(clientCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return selfSign(tmpl, signer)
}

// LoadOrCreateNodeCert returns the node's TLS certificate, creating it on the
// first call: ECDSA P-256, self-signed, valid 10 years, with SANs for hosts
// (a "host:port" is reduced to its host) plus localhost, 127.0.0.1 and ::1;
// never the machine's host name. The key file is written 0600 and must stay so
// (*PermissionError otherwise). Once created the pair is kept, because CLIs
// pin it. If only the key exists a certificate is issued for it; if only the
// certificate exists it is an error, since its key is lost.
func LoadOrCreateNodeCert(certPath, keyPath string, hosts []string) (tls.Certificate, error) {
	certExists, err := exists(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyExists, err := exists(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if keyExists {
		if err := checkKeyMode(keyPath); err != nil {
			return tls.Certificate{}, err
		}
	}
	switch {
	case certExists && keyExists:
		c, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load node certificate: %w", err)
		}
		return c, nil
	case certExists:
		return tls.Certificate{}, fmt.Errorf("node certificate %s exists but its key %s is missing: remove the certificate to make a new pair (clients will see a changed certificate)", certPath, keyPath)
	}

	var key crypto.Signer
	if keyExists {
		key, err = readPKCS8Signer(keyPath)
		if err != nil {
			return tls.Certificate{}, err
		}
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("generate node key: %w", err)
		}
		key = k
	}
	dns, ips := certSANs(hosts)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		// No host name: anyone who connects sees the certificate, and the
		// CLI pins it rather than matching names.
		Subject:               pkix.Name{CommonName: "a0agent"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(nodeCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	cert, err := selfSign(tmpl, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	for _, dir := range []string{filepath.Dir(keyPath), filepath.Dir(certPath)} {
		if err := mkdirPrivate(dir); err != nil {
			return tls.Certificate{}, err
		}
	}
	if !keyExists {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("encode node key: %w", err)
		}
		// Key before certificate: a crash in between leaves a key, from which
		// the next call issues a certificate, rather than an orphan certificate.
		if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return tls.Certificate{}, fmt.Errorf("write node key: %w", err)
		}
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write node certificate: %w", err)
	}
	return cert, nil
}

// Fingerprint is the ssh-style fingerprint of a certificate's DER bytes:
// "SHA256:" followed by unpadded standard base64.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// KeyFingerprint is the fingerprint ssh-keygen -l prints for pub (SHA256 of
// the ssh wire form), or "" if pub is not a key type ssh knows.
func KeyFingerprint(pub crypto.PublicKey) string {
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(p)
}

func selfSign(tmpl *x509.Certificate, key crypto.Signer) (tls.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse new certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() *big.Int {
	// crypto/rand.Int only fails if the system RNG does, and then nothing
	// in this package can work; x509 rejects a nil serial loudly.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func certSANs(hosts []string) (dns []string, ips []net.IP) {
	seen := map[string]bool{}
	all := append(append([]string{}, hosts...), "localhost", "127.0.0.1", "::1")
	for _, h := range all {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.Trim(strings.TrimSpace(h), "[]")
		if h == "" || h == "unknown" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if !seen[h] {
			seen[h] = true
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if checkPrivateMode && fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode().Perm()}
	}
	return nil
}

func readPKCS8Signer(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("node key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if ek, err2 := x509.ParseECPrivateKey(block.Bytes); err2 == nil {
			return ek, nil
		}
		return nil, fmt.Errorf("parse node key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("node key %s is %T: %w", path, k, ErrKeyType)
	}
	return s, nil
}

// AEADCipherSuites are the TLS 1.2 suites the node's server offers:
// ECDHE with AES-GCM or ChaCha20-Poly1305 only, no CBC mode and no SHA-1
// MAC (issue 25.12). TLS 1.3's suites are all AEAD and not configurable.
// The RSA ones serve a node whose restored identity is an RSA key.
func AEADCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}
