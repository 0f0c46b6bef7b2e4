package agent

// Tests of issue 13's findings against a real agent over real mTLS: what an
// unauthenticated caller can reach before the router, and what one key
// holder can do to the others. docs/security.md names each.

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"

	"github.com/a0backup/a0/internal/api"
)

func TestSecurityRefusalBeforeRouting(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	opsCert := goodCert(t, ops)
	ok := httpClient(&opsCert)
	n.mustPing(t, ok)
	stranger := newKey(t)
	strangerCert := goodCert(t, stranger)

	ref := do(httpClient(nil), "GET", n.url(api.PathPing), nil, nil)
	if ref.status != http.StatusUnauthorized {
		t.Fatalf("reference refusal: %d %s", ref.status, ref.body)
	}
	for _, tc := range []struct{ name, method, path string }{
		{"double slash", "GET", "/v1//ping"},
		{"dot segment", "GET", "/v1/../v1/ping"},
		{"wrong method on a known path", "DELETE", api.PathPing},
		{"unknown path", "GET", "/nope"},
	} {
		for _, who := range []struct {
			name string
			c    *http.Client
		}{{"no certificate", httpClient(nil)}, {"unknown key", httpClient(&strangerCert)}} {
			t.Run(tc.name+", "+who.name, func(t *testing.T) {
				r := do(who.c, tc.method, n.url(tc.path), nil, nil)
				if r.err != nil || r.status != http.StatusUnauthorized || !bytes.Equal(r.body, ref.body) {
					t.Fatalf("%s %s: %d %q %v, want the 401 %q", tc.method, tc.path, r.status, r.body, r.err, ref.body)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Fatalf("refusal redirects to %q", loc)
				}
			})
		}
	}
	t.Run("OPTIONS * unauthenticated", func(t *testing.T) {
		c := rawConn(t, n, nil)
		if _, err := c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: a0\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !bytes.Equal(body.Bytes(), ref.body) {
			t.Fatalf("OPTIONS *: %d %q, want the 401", resp.StatusCode, body.Bytes())
		}
	})
	n.mustPing(t, ok)
}
