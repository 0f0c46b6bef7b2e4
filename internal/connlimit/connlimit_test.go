package connlimit

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// server accepts on a real loopback listener with lim and hands the
// accepted connections over in order.
type server struct {
	l     *Listener
	conns chan net.Conn
	mu    sync.Mutex
	drops []Drop
}

func newServer(t *testing.T, lim Limits) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: NewListener(ln, lim), conns: make(chan net.Conn, 100)}
	s.l.OnDrop = func(_ string, why Drop) { s.mu.Lock(); s.drops = append(s.drops, why); s.mu.Unlock() }
	go func() {
		for {
			c, err := s.l.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() { s.l.Close() })
	return s
}

// dial connects from the local address from (127.0.0.x) and waits until
// the server has accepted it (or closed it at once: then nil).
func (s *server) dial(t *testing.T, from string) (client net.Conn, accepted *Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case sc := <-s.conns:
		return c, sc.(*Conn)
	case <-time.After(200 * time.Millisecond):
		// Refused: Accept closed it and waits for the next.
		return c, nil
	}
}

func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func open(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestListener(t *testing.T) {
	t.Run("the oldest unproven is closed for a newcomer, a proven one never", func(t *testing.T) {
		s := newServer(t, Limits{Max: 3, PerSource: 3})
		c1, a1 := s.dial(t, "127.0.0.1")
		c2, _ := s.dial(t, "127.0.0.1")
		c3, _ := s.dial(t, "127.0.0.1")
		a1.Prove()
		c4, a4 := s.dial(t, "127.0.0.1")
		if a4 == nil || !closed(c2) || !open(c1) || !open(c3) || !open(c4) {
			t.Fatalf("accepted %v; closed: c1 %v c2 %v c3 %v", a4 != nil, !open(c1), !open(c2), !open(c3))
		}
		if total, unproven := s.l.Held(); total != 3 || unproven != 2 {
			t.Fatalf("held %d, %d unproven", total, unproven)
		}
	})
	t.Run("refused when proven connections hold the limit; a close frees a place", func(t *testing.T) {
		s := newServer(t, Limits{Max: 2, PerSource: 2})
		_, a1 := s.dial(t, "127.0.0.1")
		c2, a2 := s.dial(t, "127.0.0.1")
		a1.Prove()
		a2.Prove()
		c3, a3 := s.dial(t, "127.0.0.1")
		if a3 != nil || !closed(c3) || !open(c2) {
			t.Fatalf("a third connection over two proven ones: accepted %v", a3 != nil)
		}
		a1.Close()
		a1.Close() // twice: counted once
		if _, a4 := s.dial(t, "127.0.0.1"); a4 == nil {
			t.Fatal("no place after a close")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.drops) != 1 || s.drops[0] != Refused {
			t.Fatalf("drops %v, want one Refused", s.drops)
		}
	})
	t.Run("an idle proven connection makes room, a busy one never", func(t *testing.T) {
		// A client that keeps connections alive (or never closes them)
		// must not fill the limit with connections doing nothing.
		s := newServer(t, Limits{Max: 2, PerSource: 2})
		c1, a1 := s.dial(t, "127.0.0.1")
		c2, a2 := s.dial(t, "127.0.0.1")
		a1.Prove()
		a2.Prove()
		a1.SetIdle(true)
		c3, a3 := s.dial(t, "127.0.0.1")
		if a3 == nil || !closed(c1) || !open(c2) || !open(c3) {
			t.Fatalf("accepted %v; c1 closed %v, c2 open %v", a3 != nil, !open(c1), open(c2))
		}
		a3.Prove()
		// Both proven and busy: the next one is refused.
		c4, a4 := s.dial(t, "127.0.0.1")
		if a4 != nil || !closed(c4) {
			t.Fatal("a connection admitted over two busy proven ones")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.drops) != 2 || s.drops[0] != Idle || s.drops[1] != Refused {
			t.Fatalf("drops %v, want Idle then Refused", s.drops)
		}
	})
	t.Run("a source over its limit churns its own connections, not another's", func(t *testing.T) {
		s := newServer(t, Limits{Max: 10, PerSource: 2})
		other, _ := s.dial(t, "127.0.0.2")
		f1, _ := s.dial(t, "127.0.0.1")
		f2, _ := s.dial(t, "127.0.0.1")
		f3, a3 := s.dial(t, "127.0.0.1")
		if a3 == nil || !closed(f1) || !open(f2) || !open(f3) || !open(other) {
			t.Fatal("the flooding source's oldest was not the one closed")
		}
		if a3.Source() != "127.0.0.1" {
			t.Fatalf("source %q", a3.Source())
		}
	})
}
