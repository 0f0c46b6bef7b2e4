package agent

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/a0backup/a0/internal/connlimit"
)

// The connection limits (issue 25.5). Serve holds its connections within
// Config.Connections (package connlimit): a flood of unauthenticated
// connections is churned, the oldest first, and never keeps an operator's
// new connection out; a connection whose request authenticated is proven
// and never closed to make room. An unauthenticated connection is closed
// once its 401 is written instead of being kept alive for Timeouts.Idle.

// limitConns wraps the listener Serve is given.
func (a *Agent) limitConns(ln net.Listener) net.Listener {
	l := connlimit.NewListener(ln, a.cfg.Connections)
	l.OnDrop = a.droppedConn
	a.conns = l
	go a.runRefusalSummaries() // accesslog.go
	return l
}

// provenConn marks the request's connection as an authorized caller's.
func provenConn(r *http.Request) {
	if c := connlimit.FromContext(r.Context()); c != nil {
		c.Prove()
	}
}

// refusedConn makes the refused request's connection close after the 401.
// HTTP/2: "Connection: close" is not sent on the wire but makes the server
// send GOAWAY. HTTP/1.1: closeUnproven closes it once the answer is out,
// so the refusal keeps its exact headers.
func refusedConn(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		w.Header().Set("Connection", "close")
	}
}

// closeUnproven is the server's ConnState hook: an HTTP/1.1 connection
// that goes idle (its answer written) while still unproven had only
// refused requests: close it. HTTP/2 connections go idle before their
// first request; refusedConn handles them.
func closeUnproven(c net.Conn, s http.ConnState) {
	if lc := connlimit.Of(c); lc != nil {
		// An idle proven connection may make room for a new one
		// (connlimit): idle means between requests, never mid-answer.
		lc.SetIdle(s == http.StateIdle)
	}
	if s != http.StateIdle {
		return
	}
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return
	}
	if lc := connlimit.Of(c); lc != nil && !lc.Proven() {
		c.Close()
	}
}

// connDrops counts the connections the limits closed, by why.
type connDrops struct{ evicted, refused atomic.Int64 }

// droppedConn hears of a connection the limits closed. Counted, not
// logged one by one: a flood would flood the log.
func (a *Agent) droppedConn(source string, why connlimit.Drop) {
	if why != connlimit.Refused { // Evicted, or Idle: closed to make room
		a.connDrops.evicted.Add(1)
	} else {
		a.connDrops.refused.Add(1)
	}
}
