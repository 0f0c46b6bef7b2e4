package agent

import (
	"context"
	"crypto"
	"errors"
	"io"
	"time"
)

type pubKeyCtx struct{}

// errRevoked ends what a key started once the key is no longer authorized.
var errRevoked = errors.New("the client key was revoked on this node")

// revokePoll is how often a running transfer or job re-checks its key.
const revokePoll = time.Second

// whileAuthorized returns a context cancelled (cause errRevoked) once pub
// is no longer in authorized_keys, and a stop that ends the watch. A
// revoke then stops a running download, upload or job of that key within
// about revokePoll, not only its next call.
func (a *Agent) whileAuthorized(parent context.Context, pub crypto.PublicKey, what string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	if pub == nil {
		return ctx, func() { cancel(nil) }
	}
	go func() {
		t := time.NewTicker(revokePoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if name, ok := a.auth.Lookup(pub); !ok {
					a.log.Warn("client key revoked: stopping what it started", "what", what, "key", name)
					cancel(errRevoked)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// requestKey is the public key that authenticated r (nil in tests without
// TLS).
func requestKey(ctx context.Context) crypto.PublicKey {
	pub, _ := ctx.Value(pubKeyCtx{}).(crypto.PublicKey)
	return pub
}

// ctxReader fails its reads once ctx is done: a download's file and an
// upload's body are read through it, so a revoked key's transfer stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ctxReadSeeker is ctxReader for http.ServeContent.
type ctxReadSeeker struct {
	ctx context.Context
	rs  io.ReadSeeker
}

func (c ctxReadSeeker) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.rs.Read(p)
}

func (c ctxReadSeeker) Seek(off int64, whence int) (int64, error) { return c.rs.Seek(off, whence) }
