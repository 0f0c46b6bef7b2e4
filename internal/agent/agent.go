package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/connlimit"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/logring"
	"github.com/a0backup/a0/internal/metrics"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/retention"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/webhook"
)

// Config of an agent.
type Config struct {
	StateDir string
	// Jobs are the bodies of the jobs that read or write the database
	// (dbjob.Runners()): the composition root (agentcmd, the benchmarks,
	// the tests) hands them in, so that this package imports neither dump
	// nor restore. New refuses a Config without them.
	Jobs ops.Runners
	// Listen is the HTTPS address, ":10121" by default.
	Listen string
	// MongoURI selects a real MongoDB; empty runs the embedded database.
	MongoURI string
	// SensitivePaths are extra files an operator declares sensitive.
	SensitivePaths []string
	// Recipients are public keys ("ssh-ed25519 AAAA...", "ssh-rsa AAAA...",
	// "age1...") every backup without a password is encrypted to.
	Recipients []string
	// MetricsListen, if set, serves Prometheus metrics (plain HTTP) there.
	MetricsListen string
	// Unattended backups (schedule.go, notify.go). Schedule, when set, runs
	// backups by itself, encrypted to Recipients; Replace lets a run
	// replace the stored backup once the new one is verified. Webhook
	// (https) hears of every job's end; WebhookCAFile adds CAs for it.
	Schedule      *schedule.Schedule
	Replace       bool
	Webhook       string
	WebhookCAFile string
	// OplogKeepEntries bounds the embedded oplog (0: a default).
	OplogKeepEntries int64
	Logger           *slog.Logger
	// Timeouts bound slow or stalled clients; zero fields take the defaults.
	Timeouts Timeouts
	// Connections bounds the connections held, in total and per source
	// address (conns.go; zero fields take connlimit's defaults).
	Connections connlimit.Limits
	// UploadReserve is the free space uploads must leave on the state
	// disk (0: 256 MiB).
	UploadReserve int64
	// Hold is called at the hold points of a job (HoldBackup, HoldRestore)
	// and may block: tests only (hold.go).
	Hold func(ctx context.Context, point string)
	// BeforeReadBack, when set, is given each finished backup file before
	// its read-back (store.Sealed.BeforeReadBack): tests only, they damage
	// the file there as a failing disk would.
	BeforeReadBack func(path string)
	// BeforeSeal, when set, runs after a backup's dump and before its file
	// is sealed, and its error fails the backup: tests only (a backup held
	// there is running, with its progress complete).
	BeforeSeal func(ctx context.Context) error

	// Remote, if set, receives a copy of every verified backup (remote.go);
	// Retention then applies to its copies.
	Remote    remote.Store
	Retention retention.Policy
	// RemoteRetry is the first wait after a failed copy (0: 5s), doubled
	// after each failure up to 5 minutes; RemoteAttempts bounds the
	// attempts (0: 10).
	RemoteRetry    time.Duration
	RemoteAttempts int

	// PITR, when set, runs the continuous oplog archive (package pitr) on
	// the backup device, encrypted to Recipients (jobs.go openArchive).
	PITR *PITR

	// Drill, when set, runs restore drills of the stored backup by its
	// schedule (drill.go, issue 29).
	Drill *Drill
}

// PITR is the continuous archive's config ("pitr" in the config file).
type PITR struct {
	// Slice is the slices' length (pitr.MinSliceLength to
	// pitr.MaxSliceLength; 0: pitr.DefaultSliceLength).
	Slice time.Duration
	// Retry is the archiver's pause after a failure (0: its default).
	Retry time.Duration
}

// Timeouts of the HTTPS server. A zero field means its default.
type Timeouts struct {
	// ReadHeader bounds the TLS handshake and the request line and
	// headers (slowloris). Default 10s.
	ReadHeader time.Duration
	// Request bounds a whole JSON request: reading its body and writing
	// its answer. Default 2 minutes.
	Request time.Duration
	// Idle bounds a keep-alive connection waiting for its next request,
	// and the time without a byte moving on an upload or a download, whose
	// total time is not bounded. Default 2 minutes.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = 10 * time.Second
	}
	if t.Request <= 0 {
		t.Request = 2 * time.Minute
	}
	if t.Idle <= 0 {
		t.Idle = 2 * time.Minute
	}
	return t
}

// Agent is a running node agent.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	state     *statedir.Dir
	auth      *keys.Authorized
	jobs      *job.Runner
	client    *mongo.Client
	dbName    string // "embedded" or "mongodb"
	embed     *embedded.Server
	uploadsMu sync.Mutex
	uploading map[string]bool // upload files being written
	// uploadReserved is the sum of the declared lengths of the uploads
	// being written (guarded by uploadsMu).
	uploadReserved int64
	// recipients are the config's, parsed at start.
	recipients []keys.Recipient
	// metrics records backups for the Prometheus metrics; metricsSrv serves
	// them when configured.
	metrics     *metrics.Recorder
	metricsSrv  *http.Server
	metricsAddr string
	// conns holds the HTTPS connections within their limits (conns.go).
	conns     *connlimit.Listener
	connDrops connDrops
	// dbStats caches the database size for the metrics and node-status
	// (dbstats.go); serverVersion is the server's, read with it.
	dbStats       dbStatsCache
	serverVersion atomic.Value // string
	// refusals summarizes the refused requests in the log (accesslog.go).
	refusals refusalLog
	// handshakes counts the failed TLS handshakes likewise.
	handshakes refusalLog
	// The services beside the jobs (jobs.go): sched runs the schedule
	// (nil without one; schedDone closes when its loop ends), copier the
	// remote copy (nil without a remote store).
	sched     *ops.Scheduler
	schedDone chan struct{}
	copier    *ops.Copier
	// archive runs the continuous oplog archive (nil without "pitr").
	archive *ops.Archive
	// sliceCopier copies the archive's slices to the remote store (nil
	// without one).
	sliceCopier *ops.SliceCopier
	// driller runs the restore drills (nil without "drill"); drillDone
	// closes when its loop ends.
	driller   *ops.Driller
	drillDone chan struct{}
	// pitrMetricsDone closes when the archive's metrics loop ends.
	pitrMetricsDone chan struct{}
	// prunePending: a backup ended before the archive reached its base;
	// the metrics loop prunes again until it has (prunePending in pitr.go).
	prunePending atomic.Bool
	// hook posts job ends.
	hook *webhook.Poster
	// logRing keeps the agent's recent log for `a0cli logs` (logs.go).
	logRing *logring.Ring

	certMu sync.RWMutex
	cert   tls.Certificate
	// secrets are the data encryption and token signing keys in use,
	// replaced in place when a sensitive restore writes new ones.
	secrets statedir.Secrets
	hosts   []string
	srv     *http.Server

	ctx  context.Context // the agent's lifetime; jobs run under it
	stop context.CancelFunc
}

// New opens the state directory, starts or connects the database and
// prepares the HTTPS server. Serve starts answering.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Jobs.Check(); err != nil {
		return nil, fmt.Errorf("agent: Config.Jobs: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = ":10121"
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	if dir := os.Getenv(holdDirEnv); dir != "" && cfg.Hold == nil {
		cfg.Hold = holdDir(dir)
	}
	st, err := statedir.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, state: st, auth: keys.OpenAuthorized(st.AuthorizedKeysPath())}
	a.openLog()
	if a.recipients, err = parseRecipients(cfg.Recipients); err != nil {
		return nil, err
	}
	a.ctx, a.stop = context.WithCancel(context.Background())

	runner, interrupted, err := job.NewRunner(st.JobsDir())
	if err != nil {
		return nil, err
	}
	a.jobs = runner
	for _, kind := range interrupted {
		a.log.Warn("job interrupted by the previous stop", "job", kind)
	}
	if err := a.cleanSlots(); err != nil {
		return nil, err
	}
	a.cleanSpools()
	if err := a.openMetrics(interrupted); err != nil {
		return nil, err
	}

	host, _, _ := net.SplitHostPort(cfg.Listen)
	var hosts []string
	if host != "" {
		hosts = append(hosts, host)
	}
	a.hosts = hosts
	if err := a.reloadCert(); err != nil {
		return nil, err
	}
	if err := a.reloadSecrets(); err != nil {
		return nil, err
	}
	if err := a.openUnattended(); err != nil {
		return nil, err
	}

	if err := a.connect(ctx); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.serveMetrics(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.startServices(); err != nil {
		a.Close()
		return nil, err
	}
	a.srv = &http.Server{
		Handler:           a.routes(),
		TLSConfig:         a.tlsConfig(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		IdleTimeout:       cfg.Timeouts.Idle,
		MaxHeaderBytes:    64 << 10,
		// "OPTIONS *" would get a 200 before any authentication: gate
		// answers it with the same 401 as every other refusal.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     a.newServerErrorLog(),
		// The connection limits (conns.go).
		ConnContext: connlimit.WithConn,
		ConnState:   closeUnproven,
	}
	return a, nil
}

func (a *Agent) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			a.certMu.RLock()
			defer a.certMu.RUnlock()
			return &a.cert, nil
		},
		// Any certificate at the TLS layer proves possession of its key; the
		// HTTP layer (authenticate) decides whether that key may call us, so
		// that a refusal is a clear 401 rather than an opaque TLS alert.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
		// TLS 1.2: AEAD suites only, no CBC or SHA-1 (issue 25.12).
		CipherSuites: keys.AEADCipherSuites(),
	}
}

func (a *Agent) connect(ctx context.Context) error {
	uri := a.cfg.MongoURI
	if uri == "" {
		// A Unix socket in a 0700 directory: the server has no
		// authentication, so only the agent's user may reach it.
		srv, err := embedded.Start(ctx, embedded.Config{Dir: a.state.DBDir(), Oplog: true,
			SocketDir: a.state.EmbeddedSocketDir(), Logger: slog.New(warnOnly{a.log.Handler()})})
		if err != nil {
			return fmt.Errorf("embedded database: %w", err)
		}
		a.embed, uri, a.dbName = srv, srv.URI(), "embedded"
		if err := atomicfile.Write(a.state.EmbeddedURIPath(), []byte(uri+"\n"), 0o600); err != nil {
			return err
		}
	} else {
		a.dbName = "mongodb"
	}
	copts := options.Client().ApplyURI(uri).SetAppName("a0agent")
	if a.embed != nil {
		// An in-process server that does not answer is gone, not electing
		// a new primary: fail a job in seconds rather than the driver's 30.
		copts.SetServerSelectionTimeout(5 * time.Second)
	}
	c, err := mongo.Connect(copts)
	if err != nil {
		// The URI may carry a password: never print it.
		return fmt.Errorf("connect to the database: %w", redactURIError(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.Ping(pctx, nil); err != nil {
		c.Disconnect(context.Background())
		return fmt.Errorf("database does not answer: %w", redactURIError(err))
	}
	a.client = c
	if a.embed != nil {
		keep := a.cfg.OplogKeepEntries
		if keep <= 0 {
			keep = 1_000_000
		}
		go a.embed.RunOplogTrimmer(a.ctx, c, 30*time.Second, keep)
	}
	return nil
}

// redactURIError keeps a driver error but drops anything that looks like a
// connection string, which may hold credentials.
func redactURIError(err error) error {
	return errors.New(uriPattern.ReplaceAllString(err.Error(), "<uri>"))
}

var uriPattern = regexp.MustCompile(`mongodb(\+srv)?://[^\s"]*`)

// cleanSlots removes what interrupted backups left on the device.
func (a *Agent) cleanSlots() error {
	n, err := a.state.LoadNode()
	if err != nil || n.Device == "" {
		return err
	}
	for _, kind := range []string{"backup", "sensitive"} {
		removed, err := a.slot(n, kind).Clean()
		if err != nil {
			return fmt.Errorf("clean backup folder: %w", err)
		}
		for _, r := range removed {
			a.log.Warn("removed partial backup file", "file", r)
		}
	}
	ops.CleanWorkDir(n.Device)
	// Restore drills a killed agent left (their throwaway server's files),
	// whether or not drills are still configured.
	for _, r := range a.cfg.Jobs.CleanDrills(ops.DrillDir(n.Device)) {
		a.log.Warn("removed the directory of an interrupted restore drill", "dir", r)
	}
	return nil
}

// cleanSpools removes the encrypted spools a killed restore left: their
// key died with the process.
func (a *Agent) cleanSpools() {
	for _, r := range a.cfg.Jobs.CleanSpools(a.state.SpoolDir()) {
		a.log.Warn("removed a spool file of an interrupted restore", "file", r)
	}
	// The oplog slices a killed restore to a time downloaded from the
	// remote store (ops.PITR.FetchSlices): no job reads them any more.
	left, _ := filepath.Glob(filepath.Join(a.state.UploadsDir(), ops.RemoteSlicesPattern))
	for _, d := range left {
		if err := os.RemoveAll(d); err == nil {
			a.log.Warn("removed the oplog slices an interrupted restore downloaded", "dir", d)
		}
	}
}

// reloadCert (re)reads the node's TLS identity, creating it on first start.
func (a *Agent) reloadCert() error {
	c, err := keys.LoadOrCreateNodeCert(a.state.TLSCertPath(), a.state.TLSKeyPath(), a.hosts)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	a.certMu.Lock()
	a.cert = c
	a.certMu.Unlock()
	return nil
}

// reloadSecrets (re)reads the data encryption and token signing keys. On
// error the keys in use stay as they were.
func (a *Agent) reloadSecrets() error {
	s, err := a.state.LoadSecrets()
	if err != nil {
		return err
	}
	a.certMu.Lock()
	a.secrets = s
	a.certMu.Unlock()
	return nil
}

// keysInUse identifies the keys the agent holds now.
func (a *Agent) keysInUse() *api.NodeKeys {
	a.certMu.RLock()
	defer a.certMu.RUnlock()
	dk, sk := a.secrets.Fingerprints()
	return &api.NodeKeys{DataEncryptionKey: dk, TokenSigningKey: sk, TLSCertificate: keys.Fingerprint(a.cert.Certificate[0])}
}

// Serve answers HTTPS on ln until Close.
func (a *Agent) Serve(ln net.Listener) error {
	a.log.Info("a0agent listening", "addr", ln.Addr().String(), "database", a.dbName,
		"certificate", a.Fingerprint())
	err := a.srv.ServeTLS(a.limitConns(ln), "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on the configured address.
func (a *Agent) ListenAndServe() error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return err
	}
	return a.Serve(ln)
}

// Close stops serving, cancels the running job and releases the database.
func (a *Agent) Close() error {
	if a.metricsSrv != nil {
		a.metricsSrv.Close()
	}
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.srv.Shutdown(ctx)
		cancel()
	}
	a.stop()
	a.stopServices()
	if a.jobs != nil {
		a.jobs.Shutdown()
	}
	if a.hook != nil {
		// The interrupted job's event gets a few seconds to go out.
		a.hook.Close(5 * time.Second)
	}
	if a.client != nil {
		a.client.Disconnect(context.Background())
	}
	if a.embed != nil {
		os.Remove(a.state.EmbeddedURIPath())
		a.embed.Close()
	}
	return nil
}

// Fingerprint is the SHA256 fingerprint of the node's certificate, as the
// CLI prints it on first contact.
func (a *Agent) Fingerprint() string {
	a.certMu.RLock()
	defer a.certMu.RUnlock()
	return keys.Fingerprint(a.cert.Certificate[0])
}

// Embedded is the embedded database server, or nil when the agent serves a
// real MongoDB. Stopping it is how tests make the database go away.
func (a *Agent) Embedded() *embedded.Server { return a.embed }

// Client is the agent's database client (for tests and seeding).
func (a *Agent) Client() *mongo.Client { return a.client }

// warnOnly passes on the embedded database's warnings and errors (a repaired
// file, a failing query) without its per-connection chatter.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

// Handle drops FerretDB's dumps of a failed command's request and
// response (multi-line wire messages, logged at WARN for every
// unsupported command such as the driver's endSessions at disconnect):
// noise in the journal that says nothing an operator can act on.
func (w warnOnly) Handle(ctx context.Context, r slog.Record) error {
	for _, p := range []string{"Response header:", "Response message:", "Request header:", "Request message:"} {
		if strings.HasPrefix(r.Message, p) {
			return nil
		}
	}
	return w.Handler.Handle(ctx, r)
}

func (w warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{w.Handler.WithAttrs(attrs)}
}

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.Handler.WithGroup(name)} }
