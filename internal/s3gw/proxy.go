package s3gw

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// CutProxy forwards TCP to an upstream address and, once more than limit
// bytes went upstream, cuts every connection and refuses new ones (the
// port closed) until Reopen: a network cut in the middle of an upload.
type CutProxy struct {
	Addr     string
	upstream string
	limit    atomic.Int64
	sent     atomic.Int64
	mu       sync.Mutex
	ln       net.Listener
	conns    []net.Conn
}

// NewCutProxy listens on a loopback port; limit 0 never cuts.
func NewCutProxy(t testing.TB, upstream string, limit int64) *CutProxy {
	p := &CutProxy{upstream: upstream}
	p.limit.Store(limit)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// Sent is the number of bytes forwarded upstream so far.
func (p *CutProxy) Sent() int64 { return p.sent.Load() }

func (p *CutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(c, u); c.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if l := p.limit.Load(); l > 0 && p.sent.Add(int64(n)) > l {
							p.Cut()
							return
						}
						if _, werr := u.Write(buf[:n]); werr != nil {
							c.Close()
							return
						}
					}
					if err != nil {
						u.Close()
						return
					}
				}
			}()
		}
	}()
}

// Cut closes the port and every connection through it.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Reopen listens again on the same address, without a limit.
func (p *CutProxy) Reopen(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p.limit.Store(0)
	p.serve(ln)
}
