package oplogsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/atomicfile"
)

// Config is `a0bench oplog-server`'s: where it listens, the replica set it
// names, the entries per second its generator writes, for how long (0:
// until stopped; the server keeps answering after), and the oplog's
// capacity in entries.
type Config struct {
	Addr    string
	ReplSet string
	Rate    int
	For     time.Duration
	Entries int
	// URIFile receives the server's URI once it listens (0600, atomic).
	URIFile string
	Seed    uint64
	Logger  *slog.Logger
}

// Stats is what the oplog-server prints on stdout when it stops.
type Stats struct {
	Simulated string         `json:"simulated"`
	Entries   int64          `json:"entries_generated"`
	Newest    bson.Timestamp `json:"newest"`
	Held      int            `json:"entries_held"`
}

// Run serves a simulated mongod oplog until ctx is done, then writes its
// Stats as JSON to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Rate < 1 {
		return fmt.Errorf("oplogsim: the rate must be at least 1 entry/s, not %d", cfg.Rate)
	}
	if cfg.Entries < 1 {
		return fmt.Errorf("oplogsim: the oplog must hold at least 1 entry, not %d", cfg.Entries)
	}
	o := NewOplog(cfg.Entries)
	srv, err := Listen(cfg.Addr, cfg.ReplSet, o, cfg.Logger)
	if err != nil {
		return err
	}
	g := NewGenerator(o, cfg.Rate, cfg.Seed)
	gctx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	if cfg.For > 0 {
		gctx, stopGen = context.WithTimeout(ctx, cfg.For)
		defer stopGen()
	}
	genErr := make(chan error, 1)
	go func() { genErr <- g.Run(gctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx) }()
	if cfg.URIFile != "" {
		if err := atomicfile.Write(cfg.URIFile, []byte(srv.URI()+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := <-genErr; err != nil {
		return err
	}
	if err := <-serveErr; err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(Stats{Simulated: "simulated mongod oplog (a0bench oplog-server; no mongod runs here)",
		Entries: g.Written(), Newest: o.Newest(), Held: o.Len()})
}
