package cli

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// TestNodeOffersAEADSuitesOnly (issue 25.12): a real TLS 1.2 client that
// offers only CBC suites (with SHA-1 or SHA-256 MACs) cannot complete a
// handshake with a node; one offering an AEAD suite can, and TLS 1.3
// works.
func TestNodeOffersAEADSuitesOnly(t *testing.T) {
	n := startNode(t, "", "")
	dial := func(max uint16, suites ...uint16) error {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", n.addr, &tls.Config{
			InsecureSkipVerify: true, // the handshake's suite is what is tested, not the node's identity
			MinVersion:         tls.VersionTLS12, MaxVersion: max, CipherSuites: suites,
		})
		if err == nil {
			c.Close()
		}
		return err
	}
	for name, suite := range map[string]uint16{
		"ECDHE-ECDSA-AES128-SHA":    tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		"ECDHE-ECDSA-AES256-SHA":    tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		"ECDHE-ECDSA-AES128-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		"ECDHE-RSA-AES128-SHA":      tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			if err := dial(tls.VersionTLS12, suite); err == nil {
				t.Fatalf("a TLS 1.2 handshake with only %s succeeded", name)
			}
		})
	}
	t.Run("accepted: ECDHE-ECDSA-AES128-GCM-SHA256", func(t *testing.T) {
		if err := dial(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("accepted: TLS 1.3", func(t *testing.T) {
		if err := dial(tls.VersionTLS13); err != nil {
			t.Fatal(err)
		}
	})
}
