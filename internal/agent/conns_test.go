package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/connlimit"
	"github.com/a0backup/a0/internal/ops/dbjob"
)

// startLimitedNode is startSecNode with connection limits.
func startLimitedNode(t *testing.T, lim connlimit.Limits) *secNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: ln.Addr().String(),
		Logger: slog.New(slog.NewTextHandler(buf, nil)), Connections: lim})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() { a.Close(); <-done })
	return &secNode{a: a, addr: ln.Addr().String(), log: buf}
}

// closedByPeer says whether the server closed c: a read gets EOF (or a
// reset) before the deadline, which only a connection the server keeps
// open reaches.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestConnectionFloodLeavesOperatorsIn (issue 25.5): a flood of real TLS
// connections past the cap (unauthenticated, held open) does not lock the
// operator out: the oldest unauthenticated ones are closed to make room,
// the node never holds more than the cap, an authorized ping succeeds, and
// its kept-alive connection, proven, survives a second flood.
func TestConnectionFloodLeavesOperatorsIn(t *testing.T) {
	const capacity, flood = 150, 300
	n := startLimitedNode(t, connlimit.Limits{Max: capacity, PerSource: capacity})
	op := newKey(t)
	n.authorize(t, "operator", op)
	cert := goodCert(t, op)
	opClient := httpClient(&cert)

	dialFlood := func() []*tls.Conn {
		var conns []*tls.Conn
		for i := 0; i < flood; i++ {
			c, err := tls.Dial("tcp", n.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				// Closed by the node before the handshake ended: what the
				// limits do to the oldest; not a failure.
				continue
			}
			conns = append(conns, c)
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		return conns
	}
	conns := dialFlood()
	if total, _ := n.a.conns.Held(); total > capacity {
		t.Fatalf("the node holds %d connections, over its cap of %d", total, capacity)
	}
	closed := 0
	for _, c := range conns[:flood-capacity] {
		if closedByPeer(c, 5*time.Second) {
			closed++
		}
	}
	if closed == 0 {
		t.Fatalf("none of the %d oldest flood connections was closed: the node holds them all", flood-capacity)
	}
	// The newest are held (the node is full of unauthenticated connections).
	if closedByPeer(conns[len(conns)-1], 100*time.Millisecond) {
		t.Fatal("the newest flood connection was closed")
	}

	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	ping := func() {
		t.Helper()
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", n.url(api.PathPing), nil)
		resp, err := opClient.Do(req)
		if err != nil {
			t.Fatalf("authorized ping during the flood: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "PONG") {
			t.Fatalf("authorized ping during the flood: %d %s", resp.StatusCode, b)
		}
	}
	ping()
	dialFlood()
	ping()
	if !reused {
		t.Error("the operator's kept-alive connection did not survive the second flood")
	}
	if total, unproven := n.a.conns.Held(); total > capacity || unproven >= total {
		t.Fatalf("held %d connections, %d unproven; want at most %d, the operator's proven", total, unproven, capacity)
	}
}

// TestUnauthenticatedConnectionClosedAfter401 (issue 25.5): an
// unauthenticated HTTP/1.1 connection is closed once its 401 is written,
// not kept alive for Timeouts.Idle (two minutes); the refusal's headers
// are unchanged. An authorized connection stays open for its next request.
func TestUnauthenticatedConnectionClosedAfter401(t *testing.T) {
	n := startLimitedNode(t, connlimit.Limits{})
	op := newKey(t)
	n.authorize(t, "operator", op)
	for _, tc := range []struct {
		name       string
		cert       *tls.Certificate
		status     int
		wantClosed bool
	}{
		{"no certificate", nil, 401, true},
		{"unknown key", func() *tls.Certificate { c := goodCert(t, newKey(t)); return &c }(), 401, true},
		{"authorized key", func() *tls.Certificate { c := goodCert(t, op); return &c }(), 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
			if tc.cert != nil {
				conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tc.cert, nil }
			}
			c, err := tls.Dial("tcp", n.addr, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a0\r\n\r\n", api.PathPing)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			for k := range resp.Header {
				if k != "Content-Type" && k != "Content-Length" && k != "Date" {
					t.Errorf("answer carries header %s", k)
				}
			}
			// 30 s: far under the two minutes the old code kept it.
			if got := closedByPeer(c, map[bool]time.Duration{true: 30 * time.Second, false: time.Second}[tc.wantClosed]); got != tc.wantClosed {
				t.Fatalf("connection closed after the answer: %v, want %v", got, tc.wantClosed)
			}
		})
	}
}

// TestUnauthenticatedHTTP2ConnectionClosedAfter401: over HTTP/2 the 401
// makes the node send GOAWAY, so the next request needs a new connection.
func TestUnauthenticatedHTTP2ConnectionClosedAfter401(t *testing.T) {
	n := startLimitedNode(t, connlimit.Limits{})
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var reused []bool
	var proto []string
	for i := 0; i < 2; i++ {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", n.url(api.PathPing), nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		proto = append(proto, resp.Proto)
		if resp.StatusCode != 401 || resp.Header.Get("Connection") != "" {
			t.Fatalf("%s: status %d, Connection %q", resp.Proto, resp.StatusCode, resp.Header.Get("Connection"))
		}
	}
	if proto[0] != "HTTP/2.0" {
		t.Fatalf("protocol %s, want HTTP/2.0", proto[0])
	}
	if reused[1] {
		t.Fatal("the second unauthenticated request reused the refused HTTP/2 connection")
	}
}
