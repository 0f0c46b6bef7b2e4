package connlimit

import (
	"container/list"
	"context"
	"net"
	"sync"
)

// Defaults when a Limits field is zero. Max stays far under the descriptor
// limit a service gets (systemd: 524288 hard, Go raises the soft limit to
// it) and far over what operators and a0cli's few connections need.
const (
	DefaultMax       = 1024
	DefaultPerSource = 128
)

// Limits of a Listener. Zero fields take the defaults.
type Limits struct {
	// Max is the number of connections held at once.
	Max int
	// PerSource is the number of connections held at once from one source
	// address (the remote IP, whatever the port).
	PerSource int
}

func (l Limits) withDefaults() Limits {
	if l.Max <= 0 {
		l.Max = DefaultMax
	}
	if l.PerSource <= 0 {
		l.PerSource = DefaultPerSource
	}
	if l.PerSource > l.Max {
		l.PerSource = l.Max
	}
	return l
}

// Drop says why a connection was closed by the limits.
type Drop int

const (
	// Evicted: an unproven connection closed to make room for a new one.
	Evicted Drop = iota
	// Refused: a new connection closed at once, the limit being held by
	// proven connections that are busy.
	Refused
	// Idle: a proven connection closed while idle between requests to
	// make room; its client dials again for its next request.
	Idle
)

// Listener is a net.Listener that holds its connections within Limits.
type Listener struct {
	net.Listener
	lim Limits
	// OnDrop, if set, is told of every connection the limits closed (the
	// agent counts them for its summarized log). Called without the lock.
	OnDrop func(source string, why Drop)

	mu       sync.Mutex
	total    int
	bySource map[string]int
	unproven *list.List // of *Conn, oldest first
	all      *list.List // of *Conn, oldest first
}

// NewListener wraps ln.
func NewListener(ln net.Listener, lim Limits) *Listener {
	return &Listener{Listener: ln, lim: lim.withDefaults(), bySource: map[string]int{}, unproven: list.New(), all: list.New()}
}

// Accept returns the next connection within the limits, closing what it
// must to make room (see the package comment).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// Held is the number of connections held now, and of those unproven.
func (l *Listener) Held() (total, unproven int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.unproven.Len()
}

func (l *Listener) admit(c net.Conn) *Conn {
	src := source(c.RemoteAddr())
	type victim struct {
		c   *Conn
		why Drop
	}
	var victims []victim
	l.mu.Lock()
	// Room is made from the oldest unproven connection, else from the
	// oldest proven one that sits idle between requests: a client that
	// keeps connections alive (or a process that never closes them) must
	// not fill the limits with connections doing nothing.
	makeRoom := func(src string) {
		if v := l.oldestUnproven(src); v != nil {
			l.release(v)
			victims = append(victims, victim{v, Evicted})
		} else if v := l.oldestIdle(src); v != nil {
			l.release(v)
			victims = append(victims, victim{v, Idle})
		}
	}
	if l.bySource[src] >= l.lim.PerSource {
		makeRoom(src)
	}
	if l.bySource[src] < l.lim.PerSource && l.total >= l.lim.Max {
		makeRoom("")
	}
	var lc *Conn
	if l.bySource[src] < l.lim.PerSource && l.total < l.lim.Max {
		lc = &Conn{Conn: c, l: l, src: src}
		l.total++
		l.bySource[src]++
		lc.elem = l.unproven.PushBack(lc)
		lc.allElem = l.all.PushBack(lc)
	}
	l.mu.Unlock()
	for _, v := range victims {
		v.c.Conn.Close()
		l.dropped(v.c.src, v.why)
	}
	if lc == nil {
		c.Close()
		l.dropped(src, Refused)
	}
	return lc
}

func (l *Listener) dropped(src string, why Drop) {
	if l.OnDrop != nil {
		l.OnDrop(src, why)
	}
}

// oldestUnproven is the oldest unproven connection from src, or from any
// source when src is empty; nil if there is none. Linear: at most Max.
func (l *Listener) oldestUnproven(src string) *Conn {
	for e := l.unproven.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*Conn); src == "" || c.src == src {
			return c
		}
	}
	return nil
}

// oldestIdle is the oldest proven connection idle between requests, from
// src or from any source when src is empty; nil if there is none.
func (l *Listener) oldestIdle(src string) *Conn {
	for e := l.all.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*Conn); c.elem == nil && c.idle && (src == "" || c.src == src) {
			return c
		}
	}
	return nil
}

// release forgets c; l.mu held. Idempotent.
func (l *Listener) release(c *Conn) {
	if c.released {
		return
	}
	c.released = true
	l.total--
	if l.bySource[c.src]--; l.bySource[c.src] <= 0 {
		delete(l.bySource, c.src)
	}
	if c.elem != nil {
		l.unproven.Remove(c.elem)
		c.elem = nil
	}
	if c.allElem != nil {
		l.all.Remove(c.allElem)
		c.allElem = nil
	}
}

func source(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Conn is a connection a Listener holds.
type Conn struct {
	net.Conn
	l   *Listener
	src string
	// Under l.mu:
	elem     *list.Element // in l.unproven while unproven
	allElem  *list.Element // in l.all while held
	released bool
	idle     bool
}

// Close closes the connection and frees its place.
func (c *Conn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// Prove marks the connection as the server's trusted caller's: the limits
// never close it to make room.
func (c *Conn) Prove() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.elem != nil {
		c.l.unproven.Remove(c.elem)
		c.elem = nil
	}
}

// SetIdle says whether the connection sits idle between requests (the
// server's ConnState): an idle proven connection may be closed to make
// room, a busy one never is.
func (c *Conn) SetIdle(idle bool) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.idle = idle
}

// Proven says whether Prove was called.
func (c *Conn) Proven() bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return !c.released && c.elem == nil
}

// Closed says whether the connection was closed (by the server or by the
// limits).
func (c *Conn) Closed() bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.released
}

// Source is the connection's source address.
func (c *Conn) Source() string { return c.src }

// Of finds the *Conn under c (through a *tls.Conn's NetConn), or nil.
func Of(c net.Conn) *Conn {
	for c != nil {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

type connKey struct{}

// WithConn keeps c in ctx, for http.Server.ConnContext: a handler finds it
// with FromContext.
func WithConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// FromContext is the *Conn WithConn kept in ctx, or nil.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return Of(c)
}
