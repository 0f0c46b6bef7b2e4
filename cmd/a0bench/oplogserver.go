package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/a0backup/a0/internal/bench"
	"github.com/a0backup/a0/internal/bench/oplogsim"
)

// oplogServerUsage is `a0bench oplog-server`'s synopsis.
const oplogServerUsage = `usage: a0bench oplog-server [--addr 127.0.0.1:0] [--rate 1000] [--for 0] [--oplog-entries 300000] [--repl-set a0sim] [--uri-file FILE]

A SIMULATED mongod oplog, for benchmarks only (no mongod runs here): it speaks
the MongoDB wire protocol as a MongoDB 7.0 replica-set primary would to what
a0's archiver sends (hello/isMaster, buildInfo, ping, replSetGetConfig,
endSessions; find, getMore and killCursors on local.oplog.rs, tailable
awaitData with a ts filter), from an in-memory capped oplog that its generator
fills at --rate entries/s (inserts, $v:2 updates and deletes across three
collections of db pitrbench, in the forms a real mongod writes). Every other
command is answered CommandNotFound. It writes its URI to --uri-file once it
listens, serves until SIGTERM or SIGINT, then prints what it generated as JSON.
It is not a database: nothing can be written to it.`

// runOplogServer is `a0bench oplog-server`.
func runOplogServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("a0bench oplog-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, oplogServerUsage); fs.PrintDefaults() }
	cfg := oplogsim.Config{Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "host:port the simulated mongod oplog listens on (port 0: any free port)")
	fs.IntVar(&cfg.Rate, "rate", 1000, "simulated oplog entries generated per second (steady, clock-paced)")
	fs.DurationVar(&cfg.For, "for", 0, "stop generating after this long and keep serving the simulated oplog (0: generate until stopped)")
	fs.IntVar(&cfg.Entries, "oplog-entries", 300_000, "the simulated oplog's capacity in entries (older ones are trimmed, as a capped oplog)")
	fs.StringVar(&cfg.ReplSet, "repl-set", "a0sim", "the replica set name the simulated member reports")
	fs.StringVar(&cfg.URIFile, "uri-file", "", "file to write the simulated server's URI to once it listens")
	seed := fs.Uint64("seed", 0, "seed of the simulated operations (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%s: unexpected arguments %q", bench.OplogServerArg, fs.Args())
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.URIFile == "" {
		fmt.Fprintln(stderr, "a0bench oplog-server: simulated mongod oplog (no mongod runs here); no --uri-file: the URI is mongodb://ADDR/?replicaSet="+cfg.ReplSet)
	}
	return oplogsim.Run(ctx, cfg, stdout)
}
