package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/a0backup/a0/internal/job"
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

// startKeyJob starts a job that a revoke of the key of r stops. The watch
// is a child of the job's own context: ending it when the job returns must
// not cancel the context the job runner reads to tell a job the agent's
// stop interrupted from one that failed on its own.
func (a *Agent) startKeyJob(r *http.Request, kind string, fn job.Func) error {
	pub := requestKey(r.Context())
	return a.jobs.Start(a.ctx, kind, func(ctx context.Context, j *job.Job) (any, error) {
		wctx, stop := a.whileAuthorized(ctx, pub, kind)
		defer stop()
		res, err := fn(wctx, j)
		if err != nil && errors.Is(context.Cause(wctx), errRevoked) {
			// Say why the job stopped, not only "context canceled".
			err = fmt.Errorf("stopped: %w (%w)", errRevoked, err)
		}
		return res, err
	})
}
