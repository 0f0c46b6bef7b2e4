package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/cli"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/store"
)

// Node is a real agent (embedded FerretDB, mTLS HTTPS) on a loopback port
// with an operator key authorized, as internal/cli's tests start one.
type Node struct {
	Addr    string
	State   string
	Device  string
	CLIHome string
	a       *agent.Agent
	done    chan error
}

// StartNode starts an agent under work and makes it a backup node whose
// device is work/device.
func StartNode(ctx context.Context, work string) (*Node, error) {
	return startNode(ctx, work, "")
}

// StartNodeURI is StartNode for an agent whose database is the server at
// uri, as `a0agent --mongodb-uri-file FILE` runs: no embedded server, so
// none of its side channels (the SQLite catalog, the oplog tail by
// insertion key, the _id lookup index); the agent uses them only when it
// runs the server itself.
func StartNodeURI(ctx context.Context, work, uri string) (*Node, error) {
	if uri == "" {
		return nil, fmt.Errorf("start node: empty MongoDB URI")
	}
	return startNode(ctx, work, uri)
}

// NodeOptions are what StartNodeWith adds to a node's agent config.
type NodeOptions struct {
	// PITR turns the continuous oplog archive on; its slices are
	// encrypted to Recipients.
	PITR       *agent.PITR
	Recipients []string
}

// StartNodeWith is StartNode (uri "") or StartNodeURI with o in the agent's
// config.
func StartNodeWith(ctx context.Context, work, uri string, o NodeOptions) (*Node, error) {
	return startNodeOpts(ctx, work, uri, o)
}

func startNode(ctx context.Context, work, uri string) (*Node, error) {
	return startNodeOpts(ctx, work, uri, NodeOptions{})
}

func startNodeOpts(ctx context.Context, work, uri string, o NodeOptions) (*Node, error) {
	n := &Node{State: filepath.Join(work, "state"), Device: filepath.Join(work, "device"), CLIHome: filepath.Join(work, "cli"), done: make(chan error, 1)}
	for _, d := range []string{n.State, n.Device} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	n.Addr = ln.Addr().String()
	n.a, err = agent.New(ctx, agent.Config{Jobs: dbjob.Runners(), StateDir: n.State, Listen: n.Addr, MongoURI: uri, Logger: agentLogger(),
		PITR: o.PITR, Recipients: o.Recipients})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start node: %w", err)
	}
	go func() { n.done <- n.a.Serve(ln) }()
	if _, err := n.CLI(ctx, "create-key"); err != nil {
		n.Close()
		return nil, err
	}
	line, err := keys.PublicLine(n.CLIHome)
	if err == nil {
		err = keys.OpenAuthorized(filepath.Join(n.State, "authorized_keys")).Add("a0bench", line)
	}
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("start node: authorize: %w", err)
	}
	if _, err := n.CLI(ctx, "-t", n.Addr, "set-as-backup", n.Device); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// CLI runs a0cli with args and returns its stdout; a non-zero exit is an
// error carrying stderr.
func (n *Node) CLI(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Home: n.CLIHome, Port: 10121,
		Getenv: func(string) string { return "" }}
	if code := cli.Main(ctx, args, env); code != 0 {
		return stdout.String(), fmt.Errorf("a0cli %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Slot is the node's backup slot on its device.
func (n *Node) Slot() store.Slot {
	return store.Slot{Dir: filepath.Join(n.Device, store.FolderName), Kind: "backup"}
}

// Close stops the agent.
func (n *Node) Close() {
	if n.a == nil {
		return
	}
	n.a.Close()
	<-n.done
	n.a = nil
}

// InstallBackup moves a sealed backup (its file and slot metadata, as
// written by SealedPipeline into slotDir) into the node's backup slot, where
// backup-status and backup-retrieve find it.
func (n *Node) InstallBackup(slotDir string) error {
	src := store.Slot{Dir: slotDir, Kind: "backup"}
	m, err := src.Stored()
	if err != nil {
		return fmt.Errorf("install backup: %w", err)
	}
	dst := n.Slot()
	if err := os.Rename(src.Path(m), dst.Path(m)); err != nil {
		return fmt.Errorf("install backup: %w", err)
	}
	if err := os.Rename(filepath.Join(slotDir, "backup.json"), filepath.Join(dst.Dir, "backup.json")); err != nil {
		return fmt.Errorf("install backup: %w", err)
	}
	return nil
}

// Retrieve times `a0cli -t NODE backup-retrieve -o out` (download over
// loopback HTTPS, md5 and sha256 checked, file renamed into place) and
// removes out afterwards. InBytes is the file size: retrieve moves
// encrypted bytes, not BSON.
func (n *Node) Retrieve(ctx context.Context, out string) (Result, error) {
	start := time.Now()
	if _, err := n.CLI(ctx, "-t", n.Addr, "backup-retrieve", "-o", out); err != nil {
		return Result{}, err
	}
	el := time.Since(start).Seconds()
	st, err := os.Stat(out)
	if err != nil {
		return Result{}, fmt.Errorf("retrieve: %w", err)
	}
	os.Remove(out)
	return Result{Seconds: el, InBytes: st.Size(), OutBytes: st.Size()}, nil
}

// AgentLogEnv, set to anything, sends the agents' logs to stderr.
const AgentLogEnv = "A0BENCH_AGENT_LOG"

func agentLogger() *slog.Logger {
	if os.Getenv(AgentLogEnv) != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
