package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Config says where the embedded server keeps its data and where it listens.
type Config struct {
	// Dir holds the SQLite files, one per database. Created 0700 if missing.
	Dir string
	// Listen is a TCP address to listen on instead of a Unix socket (tests
	// that put a proxy in front of the server). A TCP port has no
	// authentication: any local user could read and write every database,
	// so nothing in production sets it (issue 25.4).
	Listen string
	// SocketDir is the directory that holds the server's Unix socket
	// (SocketName) when Listen is empty: created 0700, or made 0700 when it
	// exists, and refused unless this process's user owns it, so that only
	// that user (and root) can connect. A socket left by a killed process is
	// removed: one server per SocketDir (the agent's state directory lock).
	// Empty means a fresh private directory under os.TempDir(), removed on
	// Close. A path too long for a socket address takes that fallback too.
	SocketDir string
	// Logger receives FerretDB's logs; nil discards them.
	Logger *slog.Logger
	// Oplog makes the server behave like a replica-set member that logs its
	// writes: Start creates local.oplog.rs (EnsureOplogMax) before returning.
	// Nothing trims it: run RunOplogTrimmer with the same budget for that.
	Oplog bool
	// OplogEntries is the oplog's entry budget when Start creates it; zero
	// means DefaultOplogEntries.
	OplogEntries int64
}

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	dir    string // the SQLite files
	tmpDir string // the private socket directory Start made, removed on Close
	cancel context.CancelFunc
	done   chan error

	closeOnce sync.Once
	closeErr  error
}

// Start runs FerretDB in-process until Close. It returns once the server
// answers a ping, so callers can connect at once.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded: empty data directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create data directory: %w", err)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := setAsideOrphans(ctx, abs, logger); err != nil {
		return nil, err
	}
	var listener ferretdb.ListenerConfig
	var sock, tmpDir string
	if cfg.Listen != "" {
		listener.TCP = cfg.Listen
	} else {
		if sock, tmpDir, err = socketPath(cfg.SocketDir); err != nil {
			return nil, err
		}
		listener.Unix = sock
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  listener,
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(abs),
	})
	if err != nil {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
		return nil, fmt.Errorf("embedded: start ferretdb: %w", err)
	}
	uri := SocketURI(sock)
	if sock == "" {
		uri = f.MongoDBURI()
	}
	// The server outlives the ctx of Start: it stops on Close.
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{uri: uri, dir: abs, tmpDir: tmpDir, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- f.Run(runCtx) }()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Oplog {
		if err := s.ensureOplog(ctx, cfg.OplogEntries); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(s.uri))
	if err != nil {
		return fmt.Errorf("embedded: connect: %w", err)
	}
	defer c.Disconnect(context.Background())
	for {
		if err = c.Ping(ctx, nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded: server did not answer: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) ensureOplog(ctx context.Context, entries int64) error {
	if entries == 0 {
		entries = DefaultOplogEntries
	}
	c, err := mongo.Connect(options.Client().ApplyURI(s.uri))
	if err != nil {
		return fmt.Errorf("embedded: connect: %w", err)
	}
	defer c.Disconnect(context.Background())
	if _, err = EnsureOplogMax(ctx, c, entries); err != nil {
		return err
	}
	return dropOplogTails(ctx, c)
}

// dropOplogTails drops the copies CopyOplogSince left behind when the
// process stopped before their backup ended.
func dropOplogTails(ctx context.Context, c *mongo.Client) error {
	names, err := c.Database(OplogDB).ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("embedded: list %s: %w", OplogDB, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, OplogTailPrefix) {
			if err := c.Database(OplogDB).Collection(n).Drop(ctx); err != nil {
				return fmt.Errorf("embedded: drop %s.%s: %w", OplogDB, n, err)
			}
		}
	}
	return nil
}

// URI is the mongodb:// connection string of the running server.
func (s *Server) URI() string { return s.uri }

// Connect returns an official-driver client to the running server.
func (s *Server) Connect(ctx context.Context) (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(s.uri))
}

// Close stops the server and waits for it to release its files.
// It may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.closeErr = <-s.done
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
	})
	return s.closeErr
}

// sqliteURL is the SQLite location with our pragmas. FerretDB sets WAL mode;
// synchronous(normal) makes a commit skip its fsync (the WAL is synced at
// checkpoints instead), which is what makes seeding and restores fast. A
// power cut can lose the last commits but never corrupts the database: the
// right trade for a development appliance, not for production data (which
// lives in MongoDB).
func sqliteURL(dir string) string {
	u := &url.URL{Scheme: "file", Path: dir + "/"}
	q := url.Values{}
	q.Add("_pragma", "synchronous(normal)")
	u.RawQuery = q.Encode()
	return u.String()
}
