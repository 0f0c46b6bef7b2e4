package agent

// Security tests of the HTTPS API against a real agent (embedded database,
// real TLS) with raw crypto/tls and net/http clients: who is refused and how
// (the same 401 for every refusal, nothing about the node in it), bad input
// (clear 4xx JSON, the agent stays up) and slow or stalled clients (cut by
// the server's timeouts). docs/security.md maps each promise to these tests.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// secNode is an agent on a random loopback port.
type secNode struct {
	a    *Agent
	addr string
	log  *lockedBuffer
}

func startSecNode(t *testing.T, to Timeouts) *secNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: ln.Addr().String(),
		Logger: slog.New(slog.NewTextHandler(buf, nil)), Timeouts: to})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() { a.Close(); <-done })
	return &secNode{a: a, addr: ln.Addr().String(), log: buf}
}

// newKey makes an ed25519 key; authorize registers it under name.
func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (n *secNode) authorize(t *testing.T, name string, k crypto.Signer) {
	t.Helper()
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if err := keys.OpenAuthorized(n.a.state.AuthorizedKeysPath()).Add(name, line); err != nil {
		t.Fatal(err)
	}
}

// certFor makes a client certificate for pub, signed by signer (self-signed
// when signer holds pub's private key), valid in [from, to]; the TLS layer
// will sign with proofKey.
func certFor(t *testing.T, pub crypto.PublicKey, signer crypto.Signer, proofKey crypto.Signer, from, to time.Time, cn string) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: proofKey}
}

func goodCert(t *testing.T, k crypto.Signer) tls.Certificate {
	c, err := keys.ClientCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpClient presents cert (none when nil) whatever the server asks.
func httpClient(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 20 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: conf},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func do(c *http.Client, method, url string, body io.Reader, hdr map[string]string) reply {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return reply{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (n *secNode) url(path string) string { return "https://" + n.addr + path }

// mustPing fails unless the agent answers an authorized ping.
func (n *secNode) mustPing(t *testing.T, c *http.Client) {
	t.Helper()
	if r := do(c, "GET", n.url(api.PathPing), nil, nil); r.err != nil || r.status != 200 || !strings.Contains(string(r.body), "PONG") {
		t.Fatalf("agent no longer answers ping: %d %s %v\nlog:\n%s", r.status, r.body, r.err, n.log.String())
	}
}

func TestSecurityAuthentication(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	opsCert := goodCert(t, ops)
	ok := httpClient(&opsCert)
	n.mustPing(t, ok)

	revoked := newKey(t)
	n.authorize(t, "gone", revoked)
	revokedCert := goodCert(t, revoked)
	if r := do(httpClient(&revokedCert), "GET", n.url(api.PathPing), nil, nil); r.status != 200 {
		t.Fatalf("key not yet revoked refused: %d %s", r.status, r.body)
	}
	if err := keys.OpenAuthorized(n.a.state.AuthorizedKeysPath()).Remove("gone"); err != nil {
		t.Fatal(err)
	}

	attacker := newKey(t)
	now := time.Now()
	// What "foreign" can mean when client certificates are self-signed.
	authorizedKeyAttackerSigned := certFor(t, ops.Public(), attacker, attacker, now.Add(-time.Minute), now.Add(time.Hour), "a0cli")
	lookAlike := certFor(t, attacker.Public(), attacker, attacker, now.Add(-time.Minute), now.Add(time.Hour), "a0cli")
	chain := certFor(t, attacker.Public(), attacker, attacker, now.Add(-time.Minute), now.Add(time.Hour), "a0cli")
	chain.Certificate = append(chain.Certificate, opsCert.Certificate[0])
	nodeCert := tls.Certificate{Certificate: n.a.cert.Certificate, PrivateKey: attacker}
	unknown := goodCert(t, attacker)
	expired := certFor(t, ops.Public(), ops, ops, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "a0cli")
	notYet := certFor(t, ops.Public(), ops, ops, now.Add(24*time.Hour), now.Add(48*time.Hour), "a0cli")

	host, _ := os.Hostname()
	secrets := []string{version.Version, n.a.state.Path, n.a.state.AuthorizedKeysPath(), "a0agent", "ops", "gone"}
	if len(host) >= 4 {
		secrets = append(secrets, host)
	}
	var generic []byte
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		// handshake: the TLS layer itself may refuse (the client cannot
		// prove it holds the certificate's key); a 401 is fine too.
		handshake bool
	}{
		{"no client certificate", nil, false},
		{"unknown key", &unknown, false},
		{"revoked key", &revokedCert, false},
		{"expired certificate of an authorized key", &expired, false},
		{"not yet valid certificate of an authorized key", &notYet, false},
		{"authorized key in a certificate signed by another key, without the authorized private key", &authorizedKeyAttackerSigned, true},
		{"look-alike certificate (same subject) of another key", &lookAlike, false},
		{"another key's leaf followed by the authorized certificate", &chain, false},
		{"the node's own certificate replayed", &nodeCert, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := httpClient(tc.cert)
			for _, p := range []string{api.PathPing, api.PathNodeStatus, api.PathSlot + "backup/file", "/v1/no-such-endpoint"} {
				r := do(c, "GET", n.url(p), nil, nil)
				if r.err != nil {
					if tc.handshake {
						continue
					}
					t.Fatalf("%s: %v", p, r.err)
				}
				if r.status != http.StatusUnauthorized {
					t.Fatalf("%s: status %d %s, want 401", p, r.status, r.body)
				}
				if generic == nil {
					generic = r.body
				}
				if !bytes.Equal(r.body, generic) {
					t.Fatalf("%s: refusal body %q differs from %q", p, r.body, generic)
				}
				var dump bytes.Buffer
				r.header.Write(&dump)
				dump.Write(r.body)
				for _, s := range secrets {
					if strings.Contains(dump.String(), s) {
						t.Fatalf("%s: refusal leaks %q:\n%s", p, s, dump.String())
					}
				}
				for k := range r.header {
					if k != "Content-Type" && k != "Content-Length" && k != "Date" {
						t.Fatalf("%s: refusal carries header %s", p, k)
					}
				}
			}
			n.mustPing(t, ok)
		})
	}
	if want := `{"error":{"code":"unauthorized","message":"client key not authorized on this node"}}` + "\n"; string(generic) != want {
		t.Fatalf("generic refusal %q, want %q", generic, want)
	}

	t.Run("authorized key in a certificate signed by another key, with the authorized private key", func(t *testing.T) {
		// By design: the TLS handshake proves possession of the leaf's key
		// and that key is what the node authorizes; who signed the
		// self-signed certificate does not matter.
		c := certFor(t, ops.Public(), attacker, ops, now.Add(-time.Minute), now.Add(time.Hour), "anything")
		n.mustPing(t, httpClient(&c))
	})
	t.Run("refusals are logged without the key material", func(t *testing.T) {
		log := n.log.String()
		if !strings.Contains(log, "status=401") {
			t.Fatalf("no 401 in the access log:\n%s", log)
		}
		pub, _ := ssh.NewPublicKey(ops.Public())
		if strings.Contains(log, string(ssh.MarshalAuthorizedKey(pub)[12:40])) {
			t.Fatal("log holds key material")
		}
	})
}

// apiError decodes an error body; it fails the test unless the body is a
// JSON error with a code.
func apiError(t *testing.T, r reply) *api.Error {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request failed: %v", r.err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d with Content-Type %q: %s", r.status, ct, r.body)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil || eb.Error.Code == "" {
		t.Fatalf("status %d, body is not a JSON error: %q", r.status, r.body)
	}
	return eb.Error
}

func TestSecurityBadInput(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	k := newKey(t)
	n.authorize(t, "ops", k)
	cert := goodCert(t, k)
	c := httpClient(&cert)
	dev := t.TempDir()
	if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`"}`), nil); r.status != 200 {
		t.Fatalf("set-as-backup: %d %s", r.status, r.body)
	}
	big := `{"password":"` + strings.Repeat("x", maxBody+10) + `"}`
	huge := fmt.Sprintf("%d", uint64(1<<63)) // one past int64
	type req struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     api.Code
	}
	cases := []req{
		{"oversized body", "POST", api.PathSlot + "backup", big, nil, 413, api.CodeTooLarge},
		{"oversized restore body", "POST", api.PathRestore, `{"ns":["` + strings.Repeat("a", maxBody) + `"]}`, nil, 413, api.CodeTooLarge},
		{"malformed JSON", "POST", api.PathSlot + "backup", `{"password":`, nil, 400, api.CodeBadRequest},
		{"not an object", "POST", api.PathRestore, `[1,2]`, nil, 400, api.CodeBadRequest},
		{"unknown field", "POST", api.PathSlot + "backup", `{"pasword":"Passw0rd-x"}`, nil, 400, api.CodeBadRequest},
		{"wrong type", "POST", api.PathSetAsBackup, `{"device":7}`, nil, 400, api.CodeBadRequest},
		{"empty body", "POST", api.PathRestore, ``, nil, 400, api.CodeBadRequest},
		{"trailing data", "POST", api.PathSlot + "backup", `{"password":"Passw0rd-x"} {"password":"y"}`, nil, 400, api.CodeBadRequest},
		{"short password", "POST", api.PathSlot + "backup", `{"password":"short"}`, nil, 400, api.CodeBadRequest},
		{"unknown slot", "GET", api.PathSlot + "nope/status", "", nil, 404, api.CodeNotFound},
		{"slot with encoded traversal", "GET", api.PathSlot + "..%2f..%2fetc/status", "", nil, 404, api.CodeNotFound},
		{"slot with encoded NUL", "DELETE", api.PathSlot + "backup%00", "", nil, 404, api.CodeNotFound},
		{"upload id with encoded traversal", "PUT", api.PathUploads + "..%2f..%2fx", "abc", map[string]string{api.HeaderOffset: "0"}, 400, api.CodeBadRequest},
		{"upload id dot-dot", "GET", api.PathUploads + "%2e%2e", "", nil, 400, api.CodeBadRequest},
		{"upload id too long", "GET", api.PathUploads + strings.Repeat("a", 65), "", nil, 400, api.CodeBadRequest},
		{"upload id with a dot", "DELETE", api.PathUploads + "a.b", "", nil, 400, api.CodeBadRequest},
		{"offset missing", "PUT", api.PathUploads + "u1", "abc", nil, 400, api.CodeBadRequest},
		{"offset negative", "PUT", api.PathUploads + "u1", "abc", map[string]string{api.HeaderOffset: "-1"}, 400, api.CodeBadRequest},
		{"offset past int64", "PUT", api.PathUploads + "u1", "abc", map[string]string{api.HeaderOffset: huge}, 400, api.CodeBadRequest},
		{"offset huge but valid", "PUT", api.PathUploads + "u1", "abc", map[string]string{api.HeaderOffset: "9223372036854775807"}, 400, api.CodeBadRequest},
		{"offset not a number", "PUT", api.PathUploads + "u1", "abc", map[string]string{api.HeaderOffset: "0x10"}, 400, api.CodeBadRequest},
		{"restore from a traversing upload id", "POST", api.PathRestore, `{"upload_id":"../../authorized_keys","password":"Passw0rd-x"}`, nil, 400, api.CodeBadRequest},
		{"restore from a missing upload", "POST", api.PathRestore, `{"upload_id":"nothere","password":"Passw0rd-x"}`, nil, 404, api.CodeNotFound},
		{"restore-sensitive traversing upload id", "POST", api.PathRestoreSens, `{"upload_id":"../secrets/tls","password":"Passw0rd-x"}`, nil, 400, api.CodeBadRequest},
		{"relative device", "POST", api.PathSetAsBackup, `{"device":"../x","force":true}`, nil, 400, api.CodeDeviceInvalid},
		{"device is a file", "POST", api.PathSetAsBackup, `{"device":"/etc/hostname","force":true}`, nil, 400, api.CodeDeviceInvalid},
		{"device missing", "POST", api.PathSetAsBackup, `{"device":"/nonexistent/a0","force":true}`, nil, 400, api.CodeDeviceInvalid},
		{"wrong method on ping", "POST", api.PathPing, `{}`, nil, 404, api.CodeNotFound},
		{"wrong method on status", "DELETE", api.PathNodeStatus, "", nil, 404, api.CodeNotFound},
		{"unknown method", "PATCH", api.PathSlot + "backup", "{}", nil, 404, api.CodeNotFound},
		{"unknown endpoint", "GET", "/v2/ping", "", nil, 404, api.CodeNotFound},
		{"query strings are not parameters", "GET", api.PathSlot + "backup/status?slot=../../x", "", nil, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := do(c, tc.method, n.url(tc.path), body, tc.hdr)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				e := apiError(t, r)
				if e.Code != tc.code || e.Message == "" {
					t.Fatalf("error %+v, want code %s", e, tc.code)
				}
				if strings.Contains(e.Message, "Passw0rd") || strings.Contains(e.Message, strings.Repeat("x", 64)) {
					t.Fatalf("error quotes the body: %s", e.Message)
				}
			}
			n.mustPing(t, c)
		})
	}
	t.Run("dot segments are redirected, never served", func(t *testing.T) {
		for _, p := range []string{"/v1/slots/../../../etc/passwd", "/v1/uploads/../restore", "/v1//ping"} {
			r := do(c, "GET", n.url(p), nil, nil)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status/100 != 3 && r.status/100 != 4 {
				t.Fatalf("%s: status %d %s", p, r.status, r.body)
			}
			if bytes.Contains(r.body, []byte("root:")) {
				t.Fatalf("%s served a file", p)
			}
		}
		n.mustPing(t, c)
	})
	t.Run("nothing written outside the uploads folder", func(t *testing.T) {
		for _, p := range []string{filepath.Join(n.a.state.Path, "x"), filepath.Join(filepath.Dir(n.a.state.Path), "x")} {
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("%s created", p)
			}
		}
	})
}

// rawConn is an authorized HTTP/1.1 connection the test writes by hand.
func rawConn(t *testing.T, n *secNode, cert *tls.Certificate) *tls.Conn {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.Dial("tcp", n.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports how long the server took to end the connection
// (a read returning an error), failing after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// dribble writes s one byte per gap until it is written or a write fails,
// and then sends how many bytes it wrote: a server that cuts a slow client
// leaves s unfinished, whatever the machine's speed.
func dribble(c net.Conn, s string, gap time.Duration, wrote chan<- int) {
	i := 0
	defer func() { wrote <- i }()
	for ; i < len(s); i++ {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(gap)
	}
}

// slowLimit bounds the wait for the server to cut a connection: far above
// its timeouts, so a loaded machine never fails a check, while a server
// without the timeout never cuts at all.
const slowLimit = 30 * time.Second

func TestSecuritySlowClients(t *testing.T) {
	// Idle is the write-progress bound of a download too: 2 s keeps a
	// loaded machine (a CI neighbour, the race detector) from cutting the
	// 48 MiB download that must complete, while the stall checks stay short.
	to := Timeouts{ReadHeader: 500 * time.Millisecond, Request: time.Second, Idle: 2 * time.Second}
	n := startSecNode(t, to)
	k := newKey(t)
	n.authorize(t, "ops", k)
	cert := goodCert(t, k)
	c := httpClient(&cert)

	t.Run("defaults are sane", func(t *testing.T) {
		d := Timeouts{}.withDefaults()
		if d.ReadHeader <= 0 || d.ReadHeader > 30*time.Second || d.Idle <= 0 || d.Idle > 5*time.Minute || d.Request <= 0 || d.Request > 5*time.Minute {
			t.Fatalf("defaults %+v", d)
		}
		if n.a.srv.ReadHeaderTimeout != to.ReadHeader || n.a.srv.IdleTimeout != to.Idle || n.a.srv.MaxHeaderBytes <= 0 || n.a.srv.MaxHeaderBytes > 1<<20 {
			t.Fatalf("server timeouts: header %v idle %v max header %d", n.a.srv.ReadHeaderTimeout, n.a.srv.IdleTimeout, n.a.srv.MaxHeaderBytes)
		}
	})
	t.Run("no TLS handshake", func(t *testing.T) {
		raw, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		closedWithin(t, raw, slowLimit)
	})
	t.Run("slowloris headers", func(t *testing.T) {
		conn := rawConn(t, n, &cert)
		wrote := make(chan int, 1)
		headers := "GET /v1/ping HTTP/1.1\r\nHost: a0\r\nX-Slow: " + strings.Repeat("a", 600)
		go dribble(conn, headers, 50*time.Millisecond, wrote)
		closedWithin(t, conn, slowLimit)
		if n := <-wrote; n >= len(headers) {
			t.Fatalf("slow headers not cut: all %d bytes written", n)
		}
		n.mustPing(t, c)
	})
	t.Run("slow JSON body", func(t *testing.T) {
		conn := rawConn(t, n, &cert)
		body := `{"device":"` + strings.Repeat("a", 200) + `"}`
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: a0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", api.PathSetAsBackup, len(body))
		wrote := make(chan int, 1)
		go dribble(conn, body, 50*time.Millisecond, wrote)
		conn.SetReadDeadline(time.Now().Add(slowLimit))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 4 {
				t.Fatalf("slow body answered %d", resp.StatusCode)
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow body: connection still open after %v", slowLimit)
		}
		conn.Close()
		if n := <-wrote; n >= len(body) {
			t.Fatalf("slow body not cut: all %d bytes written (%v)", n, err)
		}
		n.mustPing(t, c)
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		conn := rawConn(t, n, &cert)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: a0\r\n\r\n", api.PathPing)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ping %d", resp.StatusCode)
		}
		closedWithin(t, conn, to.Idle+slowLimit)
	})
	t.Run("slow but moving upload outlives the request timeout", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 8 {
				pw.Write(bytes.Repeat([]byte("z"), 1000))
				time.Sleep(to.Request / 3)
			}
			pw.Close()
		}()
		start := time.Now()
		req, _ := http.NewRequest("PUT", n.url(api.PathUploads+"slow"), pr)
		req.Header.Set(api.HeaderOffset, "0")
		req.ContentLength = 8000
		// A client of its own: a pooled keep-alive connection may be the one
		// the server is closing for idleness, and a streamed body cannot be
		// retried on another.
		resp, err := httpClient(&cert).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"size":8000`) {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if time.Since(start) < 2*to.Request {
			t.Fatalf("upload took %v: not slower than the request timeout", time.Since(start))
		}
	})
	t.Run("stalled upload is cut and keeps what arrived", func(t *testing.T) {
		conn := rawConn(t, n, &cert)
		fmt.Fprintf(conn, "PUT %sstall HTTP/1.1\r\nHost: a0\r\n%s: 0\r\nContent-Length: 1000\r\n\r\n%s", api.PathUploads, api.HeaderOffset, strings.Repeat("s", 100))
		closedWithin(t, conn, to.Idle+slowLimit)
		r := do(c, "GET", n.url(api.PathUploads+"stall"), nil, nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"size":100`) {
			t.Fatalf("upload state %d %s", r.status, r.body)
		}
	})
	t.Run("stalled download is cut", func(t *testing.T) {
		dev := t.TempDir()
		if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`"}`), nil); r.status != 200 {
			t.Fatalf("set-as-backup %d %s", r.status, r.body)
		}
		// A stored file larger than any socket buffer (contents do not matter here).
		const size = 48 << 20
		p, err := store.Slot{Dir: filepath.Join(dev, store.FolderName), Kind: api.SlotBackup}.Create("01-01-2026-00-00-00.tar.gz")
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte{0xa0}, 1<<20)
		for range size >> 20 {
			p.Write(chunk)
		}
		if _, err := p.Commit(store.Meta{Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		conn := rawConn(t, n, &cert)
		fmt.Fprintf(conn, "GET %sbackup/file HTTP/1.1\r\nHost: a0\r\n\r\n", api.PathSlot)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("download: %v %v", resp, err)
		}
		time.Sleep(to.Idle + 1500*time.Millisecond) // read nothing: the server's writes block
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.Copy(io.Discard, resp.Body)
		if err == nil || got >= size {
			t.Fatalf("stalled download was not cut: read %d of %d (%v)", got, size, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection left open: read %d of %d", got, size)
		}
		n.mustPing(t, c)
		// The same download, read at once, completes: the cut was the stall.
		r := do(c, "GET", n.url(api.PathSlot+"backup/file"), nil, nil)
		if r.err != nil || r.status != 200 || len(r.body) != size {
			t.Fatalf("download %d, %d bytes, %v", r.status, len(r.body), r.err)
		}
	})
}
