package keys_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/a0backup/a0/internal/keys"
)

// Example_wiring shows both ends: the node's tls.Config accepts any client
// certificate and the HTTP handler authorizes its key; the CLI's tls.Config
// presents a fresh certificate per connection and pins the node's.
func Example_wiring() {
	tmp, _ := os.MkdirTemp("", "a0example")
	defer os.RemoveAll(tmp)
	stateDir, home := filepath.Join(tmp, "state"), filepath.Join(tmp, "a0cli")

	// --- node (a0agent) ---
	nodeCert, err := keys.LoadOrCreateNodeCert(filepath.Join(stateDir, "node.crt"), filepath.Join(stateDir, "node.key"), nil)
	if err != nil {
		panic(err)
	}
	authorized := keys.OpenAuthorized(filepath.Join(stateDir, "authorized_keys"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// TLS already proved the client holds the key of PeerCertificates[0].
		name, ok := authorized.Lookup(r.TLS.PeerCertificates[0].PublicKey)
		if !ok {
			http.Error(w, "CLI key not authorized on this node", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s", name)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{nodeCert},
		ClientAuth:   tls.RequireAnyClientCert, // authorization happens in HTTP, for a clear 401
		MinVersion:   tls.VersionTLS13,
	}
	srv.StartTLS()
	defer srv.Close()
	nodeAddr := srv.Listener.Addr().String() // what the operator typed, host:port

	// --- CLI (a0cli) ---
	pubLine, _ := keys.Create(home, keys.Ed25519, false)
	signer, err := keys.Load(home)
	if err != nil {
		panic(err)
	}
	known := keys.KnownNodes{Path: filepath.Join(home, keys.KnownNodesFile)}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The node's certificate is self-signed: chain verification is
		// replaced by pinning in VerifyPeerCertificate, which still runs.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := keys.ClientCertificate(signer)
			return &c, err
		},
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 {
				return errors.New("node sent no certificate")
			}
			pinnedNow, err := known.Check(nodeAddr, rawCerts[0])
			if pinnedNow {
				fmt.Println("pinned node certificate", "SHA256:...")
			}
			return err
		},
	}}}

	get := func() {
		resp, err := client.Get("https://" + nodeAddr + "/")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}
	get() // not yet authorized

	// `a0agent authorize laptop '<line>'`, possibly from another process.
	if err := keys.OpenAuthorized(filepath.Join(stateDir, "authorized_keys")).Add("laptop", pubLine); err != nil {
		panic(err)
	}
	get()

	// Output:
	// pinned node certificate SHA256:...
	// 401 CLI key not authorized on this node
	// 200 hello laptop
}
