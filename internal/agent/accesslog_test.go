package agent

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/sampledata"
)

// TestRefusalsSummarized (issue 25.15): of twenty unauthenticated
// requests from one source, the first is logged in full and the others
// counted, then summarized in one line: a flood no longer floods the log.
func TestRefusalsSummarized(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	anon := httpClient(nil)
	for i := 0; i < 20; i++ {
		if r := do(anon, "GET", n.url(api.PathPing), nil, nil); r.status != 401 {
			t.Fatalf("status %d %v", r.status, r.err)
		}
	}
	if got := strings.Count(n.log.String(), "status=401"); got != 1 {
		t.Fatalf("%d refusals logged in full, want 1:\n%s", got, n.log.String())
	}
	n.a.summarizeRefusals()
	if !strings.Contains(n.log.String(), `msg="refused requests" source=127.0.0.1 count=19`) {
		t.Fatalf("no summary of the 19 counted refusals:\n%s", n.log.String())
	}
	// The next minute's first refusal is logged in full again.
	do(anon, "GET", n.url(api.PathPing), nil, nil)
	if got := strings.Count(n.log.String(), "status=401"); got != 2 {
		t.Fatalf("%d refusals logged in full after the summary, want 2", got)
	}
}

// TestStatusPollsLoggedAtDebug (issue 25.15): the status polls a CLI sends
// while it follows a job are not in the INFO log; other requests are.
func TestStatusPollsLoggedAtDebug(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	k := newKey(t)
	n.authorize(t, "operator", k)
	cert := goodCert(t, k)
	c := httpClient(&cert)
	n.mustPing(t, c)
	if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+t.TempDir()+`"}`), nil); r.status != 200 {
		t.Fatalf("set-as-backup: %d %s", r.status, r.body)
	}
	for _, p := range []string{api.PathRestoreStatus, api.PathSlot + api.SlotBackup + "/status"} {
		if r := do(c, "GET", n.url(p), nil, nil); r.err != nil || r.status >= 400 {
			t.Fatalf("%s: %d %s %v", p, r.status, r.body, r.err)
		}
	}
	log := n.log.String()
	if !strings.Contains(log, "path="+api.PathPing) {
		t.Fatalf("the ping is not in the INFO log:\n%s", log)
	}
	if strings.Contains(log, "/status") {
		t.Fatalf("status polls logged at INFO:\n%s", log)
	}
}

// TestMetricsDatabaseSizeCached (issue 25.15): a scrape serves the
// database size read in the background, not a dbStats of its own; when
// the database stops answering, a0_database_data_bytes keeps its last
// value (with its age), a0_database_data_bytes_error turns 1 and the log
// says why. (The old code ran dbStats at each scrape and dropped the
// metric silently when it failed.)
func TestMetricsDatabaseSizeCached(t *testing.T) {
	state := t.TempDir()
	buf := &lockedBuffer{}
	a := metricsAgentLog(t, state, buf)
	if _, err := sampledata.Seed(context.Background(), a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, a.MetricsAddr())
	size := m["a0_database_data_bytes"]
	if size <= 0 || m["a0_database_data_bytes_error"] != 0 {
		t.Fatalf("first scrape: size %v error %v", size, m["a0_database_data_bytes_error"])
	}
	if _, ok := m["a0_database_data_bytes_age_seconds"]; !ok {
		t.Fatal("no a0_database_data_bytes_age_seconds")
	}
	scrape(t, a.MetricsAddr())
	scrape(t, a.MetricsAddr())
	a.dbStats.mu.Lock()
	reads := a.dbStats.reads
	a.dbStats.mu.Unlock()
	if reads != 1 {
		t.Fatalf("three scrapes read the database size %d times, want once", reads)
	}

	// The database goes away; the next read is due.
	a.Embedded().Close()
	a.dbStats.mu.Lock()
	a.dbStats.lastStart = a.dbStats.lastStart.Add(-dbStatsInterval)
	a.dbStats.mu.Unlock()
	scrape(t, a.MetricsAddr())
	a.dbStats.waitDBStats()
	m = scrape(t, a.MetricsAddr())
	if m["a0_database_data_bytes"] != size {
		t.Fatalf("a0_database_data_bytes = %v after a failed read, want the last value %v", m["a0_database_data_bytes"], size)
	}
	if m["a0_database_data_bytes_error"] != 1 {
		t.Fatalf("a0_database_data_bytes_error = %v after a failed read", m["a0_database_data_bytes_error"])
	}
	if !strings.Contains(buf.String(), "could not read the database size for the metrics") {
		t.Fatalf("the failed read is not logged:\n%s", buf.String())
	}
}

// TestFailedHandshakesSummarized (issue 25.15): connections that fail
// before any request, whether their TLS handshake (bytes that are not
// TLS) or their HTTP/2 preface (garbage after a handshake that chose h2),
// do not flood the log: of twenty from one source the first is logged in
// full, the others counted into the minute's summary. (net/http logged
// each one at WARN: a flood of half-open handshakes wrote 55 MB in 40 s.)
func TestFailedHandshakesSummarized(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	for _, tc := range []struct {
		name, logged string
		dial         func() (net.Conn, error)
	}{
		{"not TLS", "TLS handshake error", func() (net.Conn, error) { return net.Dial("tcp", n.addr) }},
		{"no HTTP/2 preface", "error reading preface", func() (net.Conn, error) {
			return tls.Dial("tcp", n.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.a.summarizeRefusals() // a fresh minute
			before := n.log.String()
			for i := 0; i < 20; i++ {
				c, err := tc.dial()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write([]byte("\x01\x02\x03\x04\x05\x06 not what the server expects\r\n\r\n")); err != nil {
					t.Fatal(err)
				}
				// The server logs the failure before it closes the
				// connection: reading to EOF orders the log line before
				// the next connection.
				io.Copy(io.Discard, c)
				c.Close()
			}
			log := strings.TrimPrefix(n.log.String(), before)
			if got := strings.Count(log, tc.logged); got != 1 {
				t.Fatalf("%d failures logged in full, want 1:\n%s", got, log)
			}
			n.a.summarizeRefusals()
			log = strings.TrimPrefix(n.log.String(), before)
			if !strings.Contains(log, `msg="connections failed before a request (TLS handshake, HTTP/2 preface)" count=19 sources=1`) {
				t.Fatalf("no summary of the 19 counted failures:\n%s", log)
			}
		})
	}
}

// TestRefusalLogLineBounded (issue 25.15): the refusal logged in full
// carries at most 256 bytes of the caller's path, saying how long it was:
// a 60 KB path from each of a thousand sources wrote 60 MB of log a minute.
func TestRefusalLogLineBounded(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	long := "/v1/" + strings.Repeat("A", 60_000)
	if r := do(httpClient(nil), "GET", n.url(long), nil, nil); r.status != 401 {
		t.Fatalf("status %d %v", r.status, r.err)
	}
	log := n.log.String()
	if !strings.Contains(log, "status=401") || !strings.Contains(log, "(60004 bytes)") {
		t.Fatalf("the refusal is not logged with its path's length:\n%.2000s", log)
	}
	if len(log) > 4096 {
		t.Fatalf("the log holds %d bytes for one refusal", len(log))
	}
}
