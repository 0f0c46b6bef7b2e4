package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// Event is one line posted.
type Event struct {
	// Event is "job_done", "job_failed", "schedule_skipped",
	// "pitr_gap" (the continuous oplog archive lost a stretch: Gap says
	// which, Kind is "pitr", State "gap") or "restore_drill" (a restore
	// drill ended: Kind "drill", State "ok", "failed" or "skipped",
	// Drill what it restored).
	Event string `json:"event"`
	Node  string `json:"node"`
	// Kind is the job's kind: "backup", "backup-sensitive", "restore"...
	Kind string `json:"kind"`
	// State is "done", "failed" or "skipped".
	State     string     `json:"state"`
	Scheduled bool       `json:"scheduled,omitempty"`
	Started   time.Time  `json:"started"`
	Finished  *time.Time `json:"finished,omitempty"`
	// Error and Code say why a job failed or a run was skipped.
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// Backup is what a backup job stored.
	Backup *Backup `json:"backup,omitempty"`
	// Gap is the archive's gap a "pitr_gap" event reports.
	Gap *Gap `json:"gap,omitempty"`
	// Drill is what a "restore_drill" event's drill restored.
	Drill        *Drill `json:"drill,omitempty"`
	AgentVersion string `json:"agent_version"`
}

// Gap is a stretch of the oplog the continuous archive lacks: from the
// newest entry archived before it (ts "T.I" and its time) and why.
type Gap struct {
	From     string    `json:"from"`
	FromTime time.Time `json:"from_time"`
	Reason   string    `json:"reason"`
}

// Drill is a restore drill's measure: how long it took and what it
// restored and compared.
type Drill struct {
	// Seconds is the restore's, CompareSeconds the comparison's.
	Seconds        float64 `json:"seconds"`
	CompareSeconds float64 `json:"compare_seconds,omitempty"`
	Collections    int     `json:"collections,omitempty"`
	Documents      int64   `json:"documents,omitempty"`
	// CollectionsNotHeld: collections the embedded server cannot hold,
	// not compared.
	CollectionsNotHeld int    `json:"collections_not_held,omitempty"`
	Note               string `json:"note,omitempty"`
}

// Backup is the stored backup an event reports (nothing secret: the file's
// name, hashes and counts, as backup-status shows them).
type Backup struct {
	Name        string `json:"name"`
	MD5         string `json:"md5,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Documents   int64  `json:"documents,omitempty"`
	Collections int    `json:"collections,omitempty"`
	Files       int    `json:"files,omitempty"`
	Verified    bool   `json:"verified,omitempty"`
	// Replaced is the backup a scheduled run with "replace" replaced.
	Replaced string `json:"replaced,omitempty"`
}

// ConfigError is a webhook setting that cannot work.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// Check validates the config's "webhook" URL and "webhook_ca_file" without
// sending anything. Errors name the URL by scheme and host only.
func Check(rawURL, caFile string) error {
	_, err := parse(rawURL, caFile)
	return err
}

type settings struct {
	u    *url.URL
	pool *x509.CertPool
}

func parse(rawURL, caFile string) (settings, error) {
	var s settings
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's error quotes the URL: not here.
		return s, &ConfigError{"webhook: not a URL"}
	}
	if u.Scheme != "https" || u.Host == "" {
		return s, &ConfigError{fmt.Sprintf("webhook: want an https:// URL with a host, got scheme %q", u.Scheme)}
	}
	if u.User != nil {
		return s, &ConfigError{"webhook: credentials in the URL's user part are not sent; put a token in the path or query"}
	}
	s.u = u
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return s, &ConfigError{fmt.Sprintf("webhook_ca_file: %v", err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(b) {
			return s, &ConfigError{fmt.Sprintf("webhook_ca_file %s: no PEM certificate in it", caFile)}
		}
		s.pool = pool
	}
	return s, nil
}

// Config of a Poster.
type Config struct {
	URL string
	// CAFile is a PEM file of CA certificates trusted besides the system's.
	CAFile string
	Logger *slog.Logger
	// Timeout bounds one attempt (default 10s); Retries more attempts are
	// made, Backoff apart (default 2 and 2s).
	Timeout time.Duration
	Retries int
	Backoff time.Duration
}

// queueSize bounds the events waiting: a receiver down for days costs
// memory for this many, and what does not fit is counted in the log.
const queueSize = 64

// Poster sends events in the background.
type Poster struct {
	cfg    Config
	u      *url.URL
	client *http.Client
	log    *slog.Logger
	where  string

	queue chan Event
	mu    sync.Mutex
	done  bool
	drops int
	wg    sync.WaitGroup
	ctx   context.Context
	stop  context.CancelFunc
}

// New starts a Poster.
func New(cfg Config) (*Poster, error) {
	s, err := parse(cfg.URL, cfg.CAFile)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	p := &Poster{cfg: cfg, u: s.u, log: cfg.Logger, where: s.u.Scheme + "://" + s.u.Host,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			// A redirect could go anywhere, plain HTTP included: refuse.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		queue: make(chan Event, queueSize)}
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// Where is the receiver's scheme and host, for logs.
func (p *Poster) Where() string { return p.where }

// Post queues ev and returns at once. A full queue drops the event and
// says so in the log.
func (p *Poster) Post(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	select {
	case p.queue <- ev:
	default:
		p.drops++
		p.log.Warn("webhook queue full: event dropped", "webhook", p.where, "event", ev.Event, "kind", ev.Kind, "dropped", p.drops)
	}
}

// Close stops taking events and gives the queued ones up to wait to go out.
func (p *Poster) Close(wait time.Duration) {
	p.mu.Lock()
	if !p.done {
		p.done = true
		close(p.queue)
	}
	p.mu.Unlock()
	t := time.AfterFunc(wait, p.stop)
	p.wg.Wait()
	t.Stop()
	p.stop()
}

func (p *Poster) run() {
	defer p.wg.Done()
	for ev := range p.queue {
		if p.ctx.Err() != nil {
			p.log.Warn("webhook event not sent: the agent stopped", "webhook", p.where, "event", ev.Event, "kind", ev.Kind)
			continue
		}
		p.send(ev)
	}
}

func (p *Poster) send(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		p.log.Warn("webhook event not encoded", "err", err)
		return
	}
	b = append(b, '\n')
	for attempt := 0; ; attempt++ {
		err = p.post(b)
		if err == nil {
			p.log.Info("webhook posted", "webhook", p.where, "event", ev.Event, "kind", ev.Kind)
			return
		}
		if attempt >= p.cfg.Retries || p.ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(p.cfg.Backoff << attempt):
		case <-p.ctx.Done():
		}
	}
	p.log.Warn("webhook post failed; the job is not affected", "webhook", p.where, "event", ev.Event, "kind", ev.Kind,
		"attempts", p.cfg.Retries+1, "err", err)
}

func (p *Poster) post(body []byte) error {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.u.String(), bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "a0agent")
	resp, err := p.client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL, token and all: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}
