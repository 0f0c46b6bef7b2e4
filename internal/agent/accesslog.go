package agent

import (
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/connlimit"
)

// The access log stays readable under load (issue 25.15): a refused (401)
// request is logged in full only when it is the first from its source
// since the last summary; the others are counted and summarized once a
// minute, one line per source, with the connections the limits closed
// (conns.go). Status polls (GET .../status, which the CLI sends every
// second while it follows a job) are logged at DEBUG when they succeed.

// refusalSummaryEvery is how often the counted refusals are logged.
const refusalSummaryEvery = time.Minute

// maxRefusalSources bounds the sources counted one by one; refusals from
// more are counted together.
const maxRefusalSources = 1024

type refusalLog struct {
	mu sync.Mutex
	// counted holds, per source seen since the last summary, the refusals
	// after the first (which was logged in full).
	counted map[string]int64
	others  int64 // refusals from sources past maxRefusalSources
}

// first says whether this refusal from source is the first since the last
// summary, to be logged in full; otherwise it is counted.
func (l *refusalLog) first(source string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counted == nil {
		l.counted = map[string]int64{}
	}
	if _, seen := l.counted[source]; seen {
		l.counted[source]++
		return false
	}
	if len(l.counted) >= maxRefusalSources {
		l.others++
		return false
	}
	l.counted[source] = 0
	return true
}

// take returns what was counted and starts afresh.
func (l *refusalLog) take() (map[string]int64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, o := l.counted, l.others
	l.counted, l.others = nil, 0
	return c, o
}

// logRefusal logs a refused request: in full when it is its source's first
// since the last summary, else only counted.
func (a *Agent) logRefusal(r *http.Request, status int, took time.Duration) {
	if c := connlimit.FromContext(r.Context()); c != nil && c.Closed() {
		// A request the client sent before closeUnproven closed its
		// connection, read from the server's buffer: no answer reaches the
		// client, which sends it again on a new connection.
		return
	}
	src := r.RemoteAddr
	if host, _, err := net.SplitHostPort(src); err == nil {
		src = host
	}
	if !a.refusals.first(src) {
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", clip(r.Method)), slog.String("path", clip(r.URL.Path)),
		slog.Int("status", status), slog.String("key", ""),
		slog.Duration("took", took), slog.String("source", src),
		slog.String("note", "later refusals from this source are counted, logged once a minute"))
}

// connErrorPrefixes start the lines net/http (and its HTTP/2 server) logs
// for a connection that failed before any request: each is followed by
// the client's address.
var connErrorPrefixes = []string{
	"http: TLS handshake error from ",
	"http2: server: error reading preface from client ",
	"http2: server connection error from ",
	"http2: timeout waiting for SETTINGS frames from ",
}

// serverErrorLog is the http.Server's ErrorLog, at WARN as before, but a
// connection that failed before any request (TLS handshake, HTTP/2
// preface) is treated as a refusal (issue 25.15): a flood of connections
// that never finish their handshake (or are closed by the connection
// limits before they do), or that send no HTTP/2 preface, wrote one WARN
// line each, tens of MB a minute; now the first per source is logged in
// full and the others are counted into the summary.
type serverErrorLog struct{ a *Agent }

func (w serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	for _, prefix := range connErrorPrefixes {
		rest, ok := strings.CutPrefix(msg, prefix)
		if !ok {
			continue
		}
		src, _, _ := strings.Cut(rest, ": ")
		if host, _, err := net.SplitHostPort(src); err == nil {
			src = host
		}
		if !w.a.handshakes.first(src) {
			return len(p), nil
		}
		w.a.log.Warn(msg, "note", "later failed connections from this source are counted, logged once a minute")
		return len(p), nil
	}
	w.a.log.Warn(msg)
	return len(p), nil
}

// newServerErrorLog is the *log.Logger for http.Server.ErrorLog.
func (a *Agent) newServerErrorLog() *log.Logger {
	return log.New(serverErrorLog{a}, "", 0)
}

// maxLoggedField bounds a refused request's method and path in the log:
// they are the caller's, up to the 64 KiB of headers, and the first
// refusal of each of a thousand sources a minute wrote 60 MB a minute.
const maxLoggedField = 256

// clip cuts s to maxLoggedField bytes, saying how long it was.
func clip(s string) string {
	if len(s) <= maxLoggedField {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", strings.ToValidUTF8(s[:maxLoggedField], ""), len(s))
}

// summarizeRefusals logs what was counted since the last summary.
func (a *Agent) summarizeRefusals() {
	if counted, others := a.handshakes.take(); len(counted) > 0 || others > 0 {
		n := others
		for _, c := range counted {
			n += c
		}
		if n > 0 {
			a.log.Warn("connections failed before a request (TLS handshake, HTTP/2 preface)", "count", n, "sources", len(counted), "since", refusalSummaryEvery)
		}
	}
	counted, others := a.refusals.take()
	sources := make([]string, 0, len(counted))
	for s, n := range counted {
		if n > 0 {
			sources = append(sources, s)
		}
	}
	sort.Strings(sources)
	for _, s := range sources {
		a.log.Info("refused requests", "source", s, "count", counted[s], "since", refusalSummaryEvery)
	}
	if others > 0 {
		a.log.Info("refused requests", "source", "other sources", "count", others, "since", refusalSummaryEvery)
	}
	evicted, refused := a.connDrops.evicted.Swap(0), a.connDrops.refused.Swap(0)
	if evicted > 0 || refused > 0 {
		a.log.Warn("connections closed by the connection limits: unauthenticated ones to make room, new ones while authorized ones held every place",
			"unauthenticated_closed", evicted, "new_refused", refused, "since", refusalSummaryEvery)
	}
}

// runRefusalSummaries summarizes every refusalSummaryEvery until the agent
// stops.
func (a *Agent) runRefusalSummaries() {
	t := time.NewTicker(refusalSummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			a.summarizeRefusals()
		}
	}
}

// requestLevel is the access log's level for an answered request: DEBUG
// for a successful status poll or read of the log (`logs -f` polls each
// second), INFO otherwise.
func requestLevel(r *http.Request, status int) slog.Level {
	if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/status") || r.URL.Path == api.PathLogs) && status < 400 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
