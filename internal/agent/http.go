package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/store"
)

// handlerFunc is a handler that returns its error instead of writing it:
// wrap turns errors into statuses in one place.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type ctxKey int

const keyNameKey ctxKey = 0

// maxBody bounds every JSON request body.
const maxBody = api.MaxBody

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h handlerFunc) { mux.Handle(pattern, a.wrap(h)) }
	// Uploads and downloads may take hours: bounded when idle, not in total.
	stream := func(pattern string, h handlerFunc) { mux.Handle(pattern, a.wrapStream(h)) }
	handle("GET "+api.PathPing, a.ping)
	handle("GET "+api.PathCommands, a.commands)
	handle("POST "+api.PathSetAsBackup, a.setAsBackup)
	handle("GET "+api.PathNodeStatus, a.nodeStatus)
	handle("GET "+api.PathPITRStatus, a.pitrStatus)
	handle("GET "+api.PathLogs, a.logs)
	handle("POST "+api.PathSlot+"{slot}", a.startBackup)
	handle("GET "+api.PathSlot+"{slot}/status", a.slotStatus)
	stream("GET "+api.PathSlot+"{slot}/file", a.download)
	stream("HEAD "+api.PathSlot+"{slot}/file", a.download)
	handle("DELETE "+api.PathSlot+"{slot}", a.deleteBackup)
	handle("GET "+api.PathUploads+"{id}", a.uploadState)
	stream("PUT "+api.PathUploads+"{id}", a.upload)
	handle("DELETE "+api.PathUploads+"{id}", a.deleteUpload)
	handle("POST "+api.PathRestore, a.startRestore)
	handle("GET "+api.PathRestoreStatus, a.restoreStatus)
	handle("POST "+api.PathRestoreSens, a.restoreSensitive)
	handle("POST "+api.PathCancel, a.cancelJob)
	// Point-in-time restore (pitrrestore.go).
	handle("POST "+api.PathPITRPlan, a.pitrPlan)
	handle("POST "+api.PathPITRSlices, a.pitrSlices)
	handle("POST "+api.PathOplogFind, a.oplogFind)
	// The remote store (remote.go).
	handle("POST "+api.PathRemoteCopy, a.copyNow)
	handle("GET "+api.PathBackups, a.listBackups)
	handle("POST "+api.PathDrill, a.drillNow)
	handle("POST "+api.PathBackupsPrune, a.prunePost)
	handle("GET "+api.PathRemoteBackup+"{name}", a.remoteBackup)
	stream("GET "+api.PathRemoteBackup+"{name}/file", a.remoteFile)
	stream("HEAD "+api.PathRemoteBackup+"{name}/file", a.remoteFile)
	handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.CodeNotFound, "unknown endpoint %s %s", r.Method, r.URL.Path)
	})
	return a.gate(mux)
}

// gate refuses an unauthenticated caller before the ServeMux sees the
// request: the mux itself answers some requests without calling a handler
// (a 307 to the cleaned path for "/v1//ping", a 405 listing the allowed
// methods), and each such answer would tell an anonymous caller something.
// Every refusal is the one errUnauthorized 401. (The server's own
// "OPTIONS *" answer is switched off in New: DisableGeneralOptionsHandler.)
func (a *Agent) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.authenticate(r); err != nil {
			refusedConn(w, r) // conns.go
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			http.NewResponseController(w).SetWriteDeadline(start.Add(a.cfg.Timeouts.withDefaults().Request))
			a.writeError(sw, r, err)
			a.logRefusal(r, sw.status, time.Since(start)) // accesslog.go
			return
		}
		provenConn(r) // conns.go
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status for the access log. On a stream (rc
// set) every Write first pushes the write deadline idle further.
type statusWriter struct {
	http.ResponseWriter
	status int
	rc     *http.ResponseController
	idle   time.Duration
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.rc != nil {
		s.rc.SetWriteDeadline(time.Now().Add(s.idle))
	}
	return s.ResponseWriter.Write(p)
}

// idleBody pushes the read deadline idle further before every Read: a
// stalled upload is cut, a slow but moving one is not.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.ReadCloser.Read(p)
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// wrap authenticates the caller, runs h, and turns its error into a status
// and a JSON error body (writeError, through the error funnel toAPIError). The request
// (body in, answer out) must complete within Timeouts.Request.
func (a *Agent) wrap(h handlerFunc) http.Handler { return a.wrapWith(h, false) }

// wrapStream is wrap for uploads and downloads: no bound on the total time,
// but Timeouts.Idle without a byte read or written cuts the connection.
func (a *Agent) wrapStream(h handlerFunc) http.Handler { return a.wrapWith(h, true) }

func (a *Agent) wrapWith(h handlerFunc, stream bool) http.Handler {
	to := a.cfg.Timeouts.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		// The server itself bounds only the headers (ReadHeaderTimeout);
		// errors here mean a ResponseWriter without deadlines (tests).
		rc := http.NewResponseController(w)
		if stream {
			sw.rc, sw.idle = rc, to.Idle
			rc.SetWriteDeadline(start.Add(to.Idle))
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: to.Idle}
			}
		} else {
			rc.SetReadDeadline(start.Add(to.Request))
			// The answer to a body cut by the read deadline still goes out.
			rc.SetWriteDeadline(start.Add(2 * to.Request))
		}
		name, err := a.authenticate(r)
		if err == nil {
			ctx := context.WithValue(r.Context(), keyNameKey, name)
			ctx = context.WithValue(ctx, pubKeyCtx{}, r.TLS.PeerCertificates[0].PublicKey)
			if stream {
				// A revoke stops a running upload or download.
				var stop func()
				ctx, stop = a.whileAuthorized(ctx, requestKey(ctx), r.Method+" "+r.URL.Path)
				defer stop()
			}
			r = r.WithContext(ctx)
			err = h(sw, r)
		}
		if err != nil {
			a.writeError(sw, r, err)
		}
		// Never log bodies or query strings: a body may hold a password.
		a.log.LogAttrs(r.Context(), requestLevel(r, sw.status), "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.String("key", name),
			slog.Duration("took", time.Since(start)))
	})
}

func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae == nil {
		a.log.Error("request failed", "path", r.URL.Path, "err", err)
		ae = api.Errorf(api.CodeInternal, "internal error: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status())
	json.NewEncoder(w).Encode(api.ErrorBody{Error: ae})
}

// The error funnel: the one place where the failures of the domain (the
// jobs' and services' *ops.Error, the store's and the runner's errors)
// become API codes, for a handler's answer (toAPIError) and for a job's
// record (jobError).

// kindCodes maps each kind of ops failure to its API code.
var kindCodes = map[ops.Kind]api.Code{
	ops.Invalid:        api.CodeBadRequest,
	ops.NotFound:       api.CodeNotFound,
	ops.NotBackupRole:  api.CodeNotBackupRole,
	ops.Exists:         api.CodeBackupExists,
	ops.Busy:           api.CodeJobRunning,
	ops.NoSpace:        api.CodeInsufficientSpace,
	ops.WrongKey:       api.CodeWrongPassword,
	ops.Integrity:      api.CodeIntegrity,
	ops.NonEmptyTarget: api.CodeNonEmptyTarget,
	ops.Unsupported:    api.CodeUnsupported,
	ops.Remote:         api.CodeRemote,
	ops.Cancelled:      api.CodeCancelled,
	ops.NotRestorable:  api.CodeNotRestorable,
}

// opsError is the API error of an *ops.Error in err's chain, or nil.
func opsError(err error) *api.Error {
	var oe *ops.Error
	if !errors.As(err, &oe) {
		return nil
	}
	code, ok := kindCodes[oe.Kind]
	if !ok {
		code = api.CodeInternal
	}
	return &api.Error{Code: code, Message: oe.Msg, Details: oe.Details}
}

// codeOf is the API code err carries (an *api.Error or an *ops.Error in its
// chain), or "" when it names none.
func codeOf(err error) api.Code {
	if c := api.CodeOf(err); c != "" {
		return c
	}
	if ae := opsError(err); ae != nil {
		return ae.Code
	}
	return ""
}

// toAPIError is the answer to a handler's error, nil for an internal error.
func toAPIError(err error) *api.Error {
	var ae *api.Error
	var be *job.BusyError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case opsError(err) != nil:
		return opsError(err)
	case errors.Is(err, store.ErrNoBackup):
		return api.Errorf(api.CodeNotFound, "%s", err.Error())
	case errors.Is(err, store.ErrExists):
		return api.Errorf(api.CodeBackupExists, "only one backup may be stored; delete it with backup-delete")
	case errors.As(err, new(*store.DamagedMetaError)):
		return api.Errorf(api.CodeIntegrity, "%s", err.Error())
	case errors.As(err, &be):
		return api.Errorf(api.CodeJobRunning, "%s", be.Error())
	case errors.As(err, &mbe):
		return api.Errorf(api.CodeTooLarge, "request body larger than %d bytes", mbe.Limit)
	}
	return nil
}

// jobError gives a job's error the code it names, for the job's record,
// keeping its message.
func jobError(err error) error {
	if err == nil || api.CodeOf(err) != "" || errors.As(err, new(*codedError)) {
		return err
	}
	if ae := opsError(err); ae != nil {
		return &codedError{err: err, code: ae.Code}
	}
	return err
}

// codedError is a job's error with its API code (job.Record.Code).
type codedError struct {
	err  error
	code api.Code
}

func (e *codedError) Error() string     { return e.err.Error() }
func (e *codedError) Unwrap() error     { return e.err }
func (e *codedError) ErrorCode() string { return string(e.code) }

// errUnauthorized says the same thing for every refused caller, so that a
// refusal tells an attacker nothing about the node or about which check failed.
var errUnauthorized = api.Errorf(api.CodeUnauthorized, "client key not authorized on this node")

func (a *Agent) authenticate(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", errUnauthorized
	}
	cert := r.TLS.PeerCertificates[0]
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return "", errUnauthorized
	}
	name, ok := a.auth.Lookup(cert.PublicKey)
	if !ok {
		return "", errUnauthorized
	}
	return name, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads a bounded JSON body into v, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) error { return api.DecodeRequest(w, r, v) }
