package cli

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/sampledata"
)

// testNode is a real agent (embedded FerretDB, real TLS) on a random
// loopback port, with its own state directory.
type testNode struct {
	t     *testing.T
	a     *agent.Agent
	addr  string
	state string
	log   *syncBuffer
	done  chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode starts an agent on state (a new temp dir when ""), listening on
// addr ("" for a random port).
func startNode(t *testing.T, state, addr string) *testNode {
	t.Helper()
	return startNodeWith(t, state, addr, agent.Config{})
}

// startNodeWith is startNode with more agent configuration.
func startNodeWith(t *testing.T, state, addr string, cfg agent.Config) *testNode {
	t.Helper()
	if state == "" {
		state = t.TempDir()
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	cfg.StateDir, cfg.Listen, cfg.Logger = state, ln.Addr().String(), slog.New(slog.NewTextHandler(buf, nil))
	cfg.Jobs = dbjob.Runners()
	a, err := agent.New(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	n := &testNode{t: t, a: a, addr: ln.Addr().String(), state: state, log: buf, done: make(chan error, 1)}
	go func() { n.done <- a.Serve(ln) }()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if n.a == nil {
		return
	}
	n.a.Close()
	<-n.done
	n.a = nil
}

func (n *testNode) client() *mongo.Client { return n.a.Client() }

// authorize registers the key of home under name, as `a0agent authorize` does.
func (n *testNode) authorize(name, home string) {
	n.t.Helper()
	line, err := keys.PublicLine(home)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := keys.OpenAuthorized(filepath.Join(n.state, "authorized_keys")).Add(name, line); err != nil {
		n.t.Fatal(err)
	}
}

// seed fills the node's database with sample data.
func (n *testNode) seed(users int) sampledata.Stats {
	n.t.Helper()
	st, err := sampledata.Seed(context.Background(), n.client(), sampledata.Options{Users: users})
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

// operator is a workstation: a CLI home and a working directory.
type operator struct {
	t    *testing.T
	home string
	dir  string
	env  map[string]string
	// answers, when set, are what the password prompt reads, in order;
	// prompted records the prompts shown.
	answers  []string
	prompted []string
}

func newOperator(t *testing.T) *operator {
	return &operator{t: t, home: filepath.Join(t.TempDir(), "a0cli"), dir: t.TempDir(), env: map[string]string{}}
}

// withKey creates the operator's key and registers it on the nodes.
func (o *operator) withKey(nodes ...*testNode) *operator {
	o.t.Helper()
	if r := o.run("create-key"); r.code != 0 {
		o.t.Fatalf("create-key: %d %s", r.code, r.stderr)
	}
	for _, n := range nodes {
		n.authorize(fmt.Sprintf("ops%d", keyNames.Add(1)), o.home)
	}
	return o
}

// skipOutsideCI skips a test whose requirement (root, a binary) is missing,
// except under CI=true, where every requirement is installed and a skip
// would hide a check: there it fails.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}

// holds stops a node's jobs at hold points (agent.HoldBackup, ...): the
// job waits at the point until the test has put its fault in and released
// it, so the fault always lands mid-job. A point holds once; once released
// it lets every later pass through.
type holds struct {
	reached, release map[string]chan struct{}
	once             map[string]*sync.Once
}

func newHolds(points ...string) *holds {
	h := &holds{reached: map[string]chan struct{}{}, release: map[string]chan struct{}{}, once: map[string]*sync.Once{}}
	for _, p := range points {
		h.reached[p], h.release[p], h.once[p] = make(chan struct{}), make(chan struct{}), &sync.Once{}
	}
	return h
}

func (h *holds) hook(ctx context.Context, point string) {
	if h.reached[point] == nil {
		return
	}
	h.once[point].Do(func() { close(h.reached[point]) })
	select {
	case <-h.release[point]:
	case <-ctx.Done():
	}
}

// wait blocks until a job reached point.
func (h *holds) wait(t *testing.T, point string) {
	t.Helper()
	select {
	case <-h.reached[point]:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no job reached the %s hold point in 2 minutes", point)
	}
}

// let releases point (once).
func (h *holds) let(point string) {
	select {
	case <-h.release[point]:
	default:
		close(h.release[point])
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs a0cli with args in the operator's directory.
func (o *operator) run(args ...string) result {
	return o.runCtx(context.Background(), args...)
}

var chdirMu sync.Mutex

var keyNames atomic.Int64

func (o *operator) runCtx(ctx context.Context, args ...string) result {
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Home: o.home, Port: 10121,
		Getenv: func(k string) string { return o.env[k] }}
	if o.answers != nil {
		env.PromptPassword = func(prompt string) (string, error) {
			o.prompted = append(o.prompted, prompt)
			if len(o.answers) == 0 {
				return "", fmt.Errorf("test: no answer left for %q", prompt)
			}
			a := o.answers[0]
			o.answers = o.answers[1:]
			return a, nil
		}
	}
	// Commands write relative paths (backup-retrieve.tar.gz.enc) into the
	// working directory, as for a user.
	chdirMu.Lock()
	wd, _ := os.Getwd()
	os.Chdir(o.dir)
	code := Main(ctx, args, env)
	os.Chdir(wd)
	chdirMu.Unlock()
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// onConcurrently runs a0cli against n without holding the working
// directory: for commands that write no file, so that calls from several
// goroutines really run at the same time.
func (o *operator) onConcurrently(n *testNode, args ...string) result {
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Home: o.home, Port: 10121,
		Getenv: func(k string) string { return o.env[k] }}
	code := Main(context.Background(), append([]string{"-t", n.addr}, args...), env)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (o *operator) on(n *testNode, args ...string) result {
	return o.run(append([]string{"-t", n.addr}, args...)...)
}

func (o *operator) mustOn(n *testNode, args ...string) result {
	o.t.Helper()
	r := o.on(n, args...)
	if r.code != 0 {
		o.t.Fatalf("a0cli %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// waitStatus polls a status command until its message is not "... in progress".
func (o *operator) waitStatus(n *testNode, cmd string) string {
	o.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r := o.mustOn(n, cmd)
		if !strings.Contains(r.stdout, "in progress") {
			return r.stdout
		}
		time.Sleep(100 * time.Millisecond)
	}
	o.t.Fatalf("%s still in progress after 2 minutes", cmd)
	return ""
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = io.Discard

func keysOpen(n *testNode) *keys.Authorized {
	return keys.OpenAuthorized(filepath.Join(n.state, "authorized_keys"))
}

// agentNew makes an agent on a database URI, logging to log.
func agentNew(t *testing.T, uri string, log *syncBuffer) (*agent.Agent, error) {
	a, err := agent.New(context.Background(), agent.Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: "127.0.0.1:0", MongoURI: uri,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err == nil {
		t.Cleanup(func() { a.Close() })
	}
	return a, err
}
