package keys

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// startNode runs a TLS server with a node certificate kept in dir that
// answers 200 with the authorized name, or 401.
func startNode(t *testing.T, dir, authPath string) *httptest.Server {
	t.Helper()
	cert, err := LoadOrCreateNodeCert(filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := OpenAuthorized(authPath)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := auth.Lookup(r.TLS.PeerCertificates[0].PublicKey)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, name)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

type cliResult struct {
	status    int
	body      string
	pinnedNow bool
	err       error
}

// cliGet makes one request over a fresh connection, pinning the node under
// pinAs (the address the operator uses for it).
func cliGet(t *testing.T, home, url, pinAs string) cliResult {
	t.Helper()
	signer, err := Load(home)
	if err != nil {
		t.Fatal(err)
	}
	known := KnownNodes{Path: filepath.Join(home, KnownNodesFile)}
	var res cliResult
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := ClientCertificate(signer)
			return &c, err
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			var err error
			res.pinnedNow, err = known.Check(pinAs, raw[0])
			return err
		},
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res.status, res.body = resp.StatusCode, string(b)
	return res
}

func TestHandshakeAuthorizeRevokePin(t *testing.T) {
	for _, typ := range []KeyType{Ed25519, RSA} {
		t.Run(string(typ), func(t *testing.T) {
			tmp := t.TempDir()
			home := filepath.Join(tmp, "home")
			authPath := filepath.Join(tmp, "state", "authorized_keys")
			line, err := Create(home, typ, false)
			if err != nil {
				t.Fatal(err)
			}
			node := startNode(t, filepath.Join(tmp, "state"), authPath)
			addr := node.Listener.Addr().String()
			admin := OpenAuthorized(authPath) // the a0agent authorize/revoke process

			if r := cliGet(t, home, node.URL, addr); r.err != nil || r.status != 401 || !r.pinnedNow {
				t.Fatalf("unknown key: %+v, want 401 and a new pin", r)
			}
			if err := admin.Add("laptop", line); err != nil {
				t.Fatal(err)
			}
			if r := cliGet(t, home, node.URL, addr); r.err != nil || r.status != 200 || r.body != "laptop" || r.pinnedNow {
				t.Fatalf("authorized key: %+v, want 200 laptop, pin kept", r)
			}
			if err := admin.Remove("laptop"); err != nil {
				t.Fatal(err)
			}
			if r := cliGet(t, home, node.URL, addr); r.err != nil || r.status != 401 {
				t.Fatalf("revoked key: %+v, want 401", r)
			}
			if err := admin.Add("laptop", line); err != nil {
				t.Fatal(err)
			}

			// The node at the same address now presents another certificate
			// (reinstalled, or someone in between).
			other := startNode(t, filepath.Join(tmp, "state2"), authPath)
			r := cliGet(t, home, other.URL, addr)
			var ce *ChangedCertError
			if !errors.As(r.err, &ce) || ce.Node != addr {
				t.Fatalf("changed certificate: %+v, want *ChangedCertError for %s", r, addr)
			}
			if r.status != 0 {
				t.Fatal("request reached the handler despite a changed certificate")
			}
			known := KnownNodes{Path: filepath.Join(home, KnownNodesFile)}
			if err := known.Forget(addr); err != nil {
				t.Fatal(err)
			}
			if r := cliGet(t, home, other.URL, addr); r.err != nil || r.status != 200 || !r.pinnedNow {
				t.Fatalf("after forget-node: %+v, want 200 and a new pin", r)
			}
			// And now the old certificate is the stranger.
			if r := cliGet(t, home, node.URL, addr); !errors.As(r.err, &ce) {
				t.Fatalf("old certificate after re-pin: %+v", r)
			}
		})
	}
}
