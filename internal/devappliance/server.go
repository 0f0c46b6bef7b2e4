package devappliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Config says where the embedded server keeps its data and where it listens.
type Config struct {
	// Dir holds the SQLite files, one per database. Created 0700 if missing.
	Dir string
	// Listen is a TCP address; empty means 127.0.0.1:0 (a random loopback port).
	Listen string
	// Logger receives FerretDB's logs; nil discards them.
	Logger *slog.Logger
}

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan error
}

// Start runs FerretDB in-process until Close. It returns once the server
// answers a ping, so callers can connect at once.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devappliance: empty data directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("devappliance: create data directory: %w", err)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("devappliance: %w", err)
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: abs + "/"}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("devappliance: start ferretdb: %w", err)
	}
	// The server outlives the ctx of Start: it stops on Close.
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{uri: f.MongoDBURI(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- f.Run(runCtx) }()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(s.uri))
	if err != nil {
		return fmt.Errorf("devappliance: connect: %w", err)
	}
	defer c.Disconnect(context.Background())
	for {
		if err = c.Ping(ctx, nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devappliance: server did not answer: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// URI is the mongodb:// connection string of the running server.
func (s *Server) URI() string { return s.uri }

// Close stops the server and waits for it to release its files.
func (s *Server) Close() error {
	s.cancel()
	return <-s.done
}
