package agentcmd

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/cmdline"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/version"
)

const usage = `a0agent: the a0 node agent

usage:
  a0agent --state-dir DIR [--listen ADDR] [--mongodb-uri URI | --mongodb-uri-file FILE] [--config FILE]
      run the agent (HTTPS on :10121). Without a MongoDB URI it runs the embedded
      database (FerretDB on SQLite under DIR/db). $A0_MONGODB_URI is read too.
  a0agent seed --state-dir DIR --users N [--mongodb-uri URI]
      fill the database with deterministic Auth0-like sample data
  a0agent authorize --state-dir DIR NAME "PUBLIC KEY LINE"
      allow a CLI key (the output of a0cli show-key) to call this node
  a0agent keys --state-dir DIR        list the authorized CLI keys
  a0agent revoke --state-dir DIR NAME remove an authorized CLI key
  a0agent allow-recovery --state-dir DIR [--for DURATION]
      let the next restore-sensitive (within DURATION, default 1h, at most 24h)
      put back authorized_keys and the node's TLS key and certificate; single use
  a0agent check-config --config FILE
      check a config file (schedule, recipients, paths, addresses, webhook)
      and say what is wrong; exit 1 when anything is
  a0agent version

exit codes: 0 ok, 1 failure, 2 usage
`

// Config is the agent's config file (JSON); flags win over it.
type Config struct {
	StateDir       string   `json:"state_dir"`
	Listen         string   `json:"listen"`
	MongoDBURI     string   `json:"mongodb_uri"`
	SensitivePaths []string `json:"sensitive_paths"`
	// Recipients: public keys every backup without a password is encrypted to.
	Recipients []string `json:"recipients"`
	// MetricsListen serves Prometheus metrics there ("127.0.0.1:10122").
	MetricsListen string `json:"metrics_listen"`
	// Unattended backups (config.go): {"every": "24h"} or {"cron": "30 2 * * *"},
	// whether a run replaces the stored backup, and the job-end webhook.
	Schedule      json.RawMessage `json:"schedule,omitempty"`
	Replace       bool            `json:"replace,omitempty"`
	Webhook       string          `json:"webhook,omitempty"`
	WebhookCAFile string          `json:"webhook_ca_file,omitempty"`
	// Remote is the S3-compatible store verified backups are copied to.
	Remote *remote.Config `json:"remote,omitempty"`
	// PITR turns the continuous oplog archive on (config.go).
	PITR *PITRConfig `json:"pitr,omitempty"`
	// Drill runs restore drills of the stored backup (config.go, issue 29).
	Drill *DrillConfig `json:"drill,omitempty"`
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Main runs a0agent and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// A private key pasted as an argument is refused before any parser
	// sees it: pflag would quote the whole argument in its error.
	if err := keys.RefusePrivateKeyArgs(args); err != nil {
		fmt.Fprintf(stderr, "a0agent: %v\n", err)
		return 1
	}
	root := newRoot(ctx, stdout, stderr)
	root.SetArgs(cmdline.Normalise(root, args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "a0agent: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, "run `a0agent help` for usage\n")
		return 2
	}
	return 1
}

// runFunc runs a command once its flags are parsed.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// newRoot builds the command tree: the root runs the agent itself (its
// flags are the agent's), each subcommand of subcommands() is a child.
func newRoot(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:               "a0agent",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				var names []string
				for _, s := range subcommands() {
					names = append(names, s.name)
				}
				return &usageError{fmt.Sprintf("unknown command %q%s", args[0], cmdline.DidYouMean(cmdline.Near(args[0], names)))}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Flags().BoolVarP(&showVersion, "version", "V", false, "print the version")
	root.Flags().BoolP("help", "h", false, "print the usage")
	run := runAgentFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if showVersion {
			return printVersion(stdout)
		}
		return run(cmd.Context(), args, stdout, stderr)
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		where := cmd.Name()
		typed, name, ok := cmdline.UnknownFlag(err)
		if !ok {
			return &usageError{fmt.Sprintf("%s: %v", where, err)}
		}
		var near []string
		if name != "" {
			near = cmdline.NearFlags(cmd, name)
		}
		return &usageError{fmt.Sprintf("%s: unknown flag %s%s", where, typed, cmdline.DidYouMean(near))}
	})
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		name := cmd.Name()
		if cmd == root {
			// a0agent -h: the usage; a0agent --state-dir D --help: the
			// agent's own flags.
			if cmd.Flags().NFlag() <= 1 {
				runHelp(ctx, nil, stdout)
				return
			}
			name = "run"
		}
		if s, ok := findSub(name); ok {
			if err := printSubHelp(ctx, stdout, s); err != nil {
				fmt.Fprintf(stderr, "a0agent: %v\n", err)
			}
		}
	})
	for _, s := range subcommands() {
		if s.name == "run" {
			continue
		}
		cc := &cobra.Command{Use: s.name, Short: s.summary}
		run := s.setup(cc.Flags())
		cc.RunE = func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), args, stdout, stderr) }
		root.AddCommand(cc)
		if s.name == "help" {
			root.SetHelpCommand(cc)
		}
	}
	return root
}

func printVersion(stdout io.Writer) error {
	fmt.Fprintf(stdout, "a0agent %s\n", version.Version)
	return nil
}

// RunOptions are the options of the agent itself.
type RunOptions struct {
	Config         string
	StateDir       string
	Listen         string
	MongoURI       string
	MongoURIFile   string
	SensitivePaths []string
	LogJSON        bool
	Recipients     []string
	MetricsListen  string
	Unattended
	// Remote is the config's "remote"; its secret comes from its file or
	// $A0_REMOTE_SECRET_ACCESS_KEY.
	Remote *remote.Config
	// PITR is the config's "pitr", checked.
	PITR *agent.PITR
	// Drill is the config's "drill", checked.
	Drill *agent.Drill
}

// runAgentFlags declares the agent's own flags (a0agent --state-dir DIR ...).
func runAgentFlags(fs *pflag.FlagSet) runFunc {
	var o RunOptions
	fs.StringVar(&o.Config, "config", "", "JSON config `FILE` (state_dir, listen, mongodb_uri, sensitive_paths, recipients, metrics_listen, schedule, replace, webhook, webhook_ca_file); flags win")
	stateDirFlag(fs, &o.StateDir)
	fs.StringVar(&o.Listen, "listen", "", "HTTPS address `ADDR` to listen on (none: :10121)")
	fs.StringVar(&o.MongoURI, "mongodb-uri", "", mongoURIHelp)
	fs.StringVar(&o.MongoURIFile, "mongodb-uri-file", "", "read the MongoDB URI from `FILE`")
	fs.BoolVar(&o.LogJSON, "log-json", false, "log JSON lines instead of text (one object per line on stderr, as journald stores it)")
	return func(ctx context.Context, pos []string, _, stderr io.Writer) error {
		return runAgentCmd(ctx, o, pos, stderr)
	}
}

const mongoURIHelp = "the MongoDB `URI` of this node (visible in the process listing: prefer --mongodb-uri-file or $A0_MONGODB_URI); empty: the embedded database"

func stateDirFlag(fs *pflag.FlagSet, dir *string) {
	fs.StringVar(dir, "state-dir", "", "the agent's state `DIR` (keys, role, embedded database, job records)")
}

func runAgentCmd(ctx context.Context, o RunOptions, pos []string, stderr io.Writer) error {
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("unknown command %q", pos[0])}
	}
	if err := o.fill(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return RunAgent(ctx, o, stderr)
}

// fill merges the config file and the environment under the flags.
func (o *RunOptions) fill() error {
	if o.Config != "" {
		b, err := os.ReadFile(o.Config)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		c, err := decodeConfig(o.Config, b)
		if err != nil {
			return err
		}
		o.StateDir = first(o.StateDir, c.StateDir)
		o.Listen = first(o.Listen, c.Listen)
		o.MongoURI = first(o.MongoURI, c.MongoDBURI)
		o.SensitivePaths = c.SensitivePaths
		o.Recipients = c.Recipients
		o.MetricsListen = c.MetricsListen
		o.Remote = c.Remote
		if c.Remote != nil {
			if err := c.Remote.Validate(); err != nil {
				return fmt.Errorf("config %s: %w", o.Config, err)
			}
		}
		if c.MetricsListen != "" {
			if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
				return fmt.Errorf("config %s: metrics_listen %q: want HOST:PORT, such as 127.0.0.1:10122", o.Config, c.MetricsListen)
			}
		}
		for i, l := range c.Recipients {
			if _, err := keys.ParseRecipient(l); err != nil {
				return fmt.Errorf("config %s: recipients[%d]: %w", o.Config, i, err)
			}
		}
		if o.Unattended, err = c.unattended(); err != nil {
			return fmt.Errorf("config %s: %w", o.Config, err)
		}
		if o.PITR, err = c.pitr(); err != nil {
			return fmt.Errorf("config %s: %w", o.Config, err)
		}
		if o.Drill, err = c.drill(); err != nil {
			return fmt.Errorf("config %s: %w", o.Config, err)
		}
	}
	if o.MongoURIFile != "" {
		b, err := os.ReadFile(o.MongoURIFile)
		if err != nil {
			return fmt.Errorf("mongodb uri file: %w", err)
		}
		o.MongoURI = strings.TrimSpace(string(b))
		if err := uriFileModeProblem(o.MongoURIFile, o.MongoURI); err != nil {
			return err
		}
	}
	// The environment keeps a URI with a password out of the process listing.
	o.MongoURI = first(o.MongoURI, os.Getenv("A0_MONGODB_URI"))
	if o.StateDir == "" {
		return &usageError{"--state-dir is required"}
	}
	return nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// RunAgent runs the agent until ctx ends.
func RunAgent(ctx context.Context, o RunOptions, logOut io.Writer) error {
	// First: a second agent on this state directory must touch nothing.
	lock, err := statedir.TakeLock(o.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	var h slog.Handler = slog.NewTextHandler(logOut, nil)
	if o.LogJSON {
		h = slog.NewJSONHandler(logOut, nil)
	}
	log := slog.New(h)
	// The composition root: the agent gets the jobs' database bodies
	// here, so that package agent imports neither dump nor restore.
	cfg := agent.Config{Jobs: dbjob.Runners(), StateDir: o.StateDir, Listen: o.Listen, MongoURI: o.MongoURI,
		SensitivePaths: o.SensitivePaths, Recipients: o.Recipients, MetricsListen: o.MetricsListen, Logger: log,
		Schedule: o.Schedule, Replace: o.Replace, Webhook: o.Webhook, WebhookCAFile: o.WebhookCAFile, PITR: o.PITR,
		Drill: o.Drill}
	if err := remoteConfig(&cfg, o.Remote); err != nil {
		return err
	}
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- a.ListenAndServe() }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	cerr := a.Close()
	if err != nil {
		return err
	}
	return cerr
}

// SeedOptions are the options of seed.
type SeedOptions struct {
	StateDir string
	MongoURI string
	Users    int
}

func seedFlags(fs *pflag.FlagSet) runFunc {
	var o SeedOptions
	stateDirFlag(fs, &o.StateDir)
	fs.StringVar(&o.MongoURI, "mongodb-uri", "", mongoURIHelp)
	fs.IntVar(&o.Users, "users", 1000, "`N` sample users to seed, with their related documents")
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		return runSeedCmd(ctx, o, pos, stdout)
	}
}

func runSeedCmd(ctx context.Context, o SeedOptions, pos []string, stdout io.Writer) error {
	if len(pos) > 0 {
		return &usageError{"seed takes no arguments"}
	}
	o.MongoURI = first(o.MongoURI, os.Getenv("A0_MONGODB_URI"))
	if o.StateDir == "" && o.MongoURI == "" {
		return &usageError{"seed needs --state-dir (embedded database) or --mongodb-uri"}
	}
	if o.Users < 0 {
		return &usageError{"--users must be >= 0"}
	}
	return RunSeed(ctx, o, stdout)
}

// RunSeed fills the database: the running agent's embedded database when
// it publishes one, else an embedded database started on the state dir, or
// the MongoDB of MongoURI.
func RunSeed(ctx context.Context, o SeedOptions, stdout io.Writer) error {
	uri := o.MongoURI
	if uri == "" {
		st, err := statedir.Open(o.StateDir)
		if err != nil {
			return err
		}
		// The agent's lock decides whose server runs on DIR/db: without an
		// agent, seed holds the lock while its own server runs, so an
		// agent started meanwhile refuses instead of running a second
		// server on the same SQLite files (issue 25.6); with an agent,
		// seed uses its server or refuses, never starts another.
		lock, lerr := statedir.TakeLock(o.StateDir)
		var held *statedir.LockedError
		switch {
		case lerr == nil:
			defer lock.Release()
			srv, err := embedded.Start(ctx, embedded.Config{Dir: st.DBDir()})
			if err != nil {
				return err
			}
			defer srv.Close()
			uri = srv.URI()
		case errors.As(lerr, &held):
			b, err := os.ReadFile(st.EmbeddedURIPath())
			if err != nil || !reachable(ctx, strings.TrimSpace(string(b))) {
				return fmt.Errorf("%w and its embedded database does not answer (seed it once it does, or give --mongodb-uri)", lerr)
			}
			uri = strings.TrimSpace(string(b))
			fmt.Fprintln(stdout, "seeding the running agent's embedded database")
		default:
			return lerr
		}
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer c.Disconnect(context.Background())
	stats, err := sampledata.Seed(ctx, c, sampledata.Options{Users: o.Users})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d documents (%.1f MB of BSON) in %s\n", stats.TotalDocs, float64(stats.Bytes)/1e6, stats.Duration.Round(time.Millisecond))
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, ns := range sortedKeys(stats.Docs) {
		fmt.Fprintf(tw, "  %s\t%d\n", ns, stats.Docs[ns])
	}
	return tw.Flush()
}

func reachable(ctx context.Context, uri string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		return false
	}
	defer c.Disconnect(context.Background())
	return c.Ping(ctx, nil) == nil
}

// keysFlags declares the flags of authorize, keys and revoke.
func keysFlags(name string) func(*pflag.FlagSet) runFunc {
	return func(fs *pflag.FlagSet) runFunc {
		var stateDir string
		stateDirFlag(fs, &stateDir)
		return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
			return runKeysCmd(name, stateDir, pos, stdout)
		}
	}
}

func runKeysCmd(name, stateDir string, pos []string, stdout io.Writer) error {
	if stateDir == "" {
		return &usageError{"--state-dir is required"}
	}
	open := statedir.OpenExisting // issue 25.14: only authorize may make a state directory
	if name == "authorize" {
		open = statedir.Open
	}
	st, err := open(stateDir)
	if err != nil {
		return err
	}
	auth := keys.OpenAuthorized(st.AuthorizedKeysPath())
	switch name {
	case "authorize":
		if len(pos) != 2 {
			return &usageError{`usage: a0agent authorize --state-dir DIR NAME "PUBLIC KEY LINE"`}
		}
		if err := auth.Add(pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "authorized key %q\n", pos[0])
	case "revoke":
		if len(pos) != 1 {
			return &usageError{"usage: a0agent revoke --state-dir DIR NAME"}
		}
		if err := auth.Remove(pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %q\n", pos[0])
	case "keys":
		entries, err := auth.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tFINGERPRINT\tCOMMENT")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Type, e.Fingerprint, e.Comment)
		}
		return tw.Flush()
	}
	return nil
}

// runAllowRecoveryCmd writes the node operator's consent for one sensitive
// restore to replace the node's identity files (statedir.IdentityPaths).
func allowRecoveryFlags(fs *pflag.FlagSet) runFunc {
	var stateDir string
	stateDirFlag(fs, &stateDir)
	dur := fs.Duration("for", statedir.DefaultRecoveryConsent, "how long the consent stays valid (`DURATION`, at most 24h)")
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		return runAllowRecoveryCmd(stateDir, *dur, pos, stdout)
	}
}

func runAllowRecoveryCmd(stateDir string, dur time.Duration, pos []string, stdout io.Writer) error {
	if stateDir == "" || len(pos) != 0 {
		return &usageError{"usage: a0agent allow-recovery --state-dir DIR [--for DURATION]"}
	}
	if dur <= 0 || dur > statedir.MaxRecoveryConsent {
		return &usageError{fmt.Sprintf("--for %v: give a duration above 0 and at most %v", dur, statedir.MaxRecoveryConsent)}
	}
	// A consent written into a mistyped directory would say "recovery
	// allowed" for a node that never sees it (issue 25.14).
	st, err := statedir.OpenExisting(stateDir)
	if err != nil {
		return err
	}
	expires, err := st.AllowRecovery(time.Now(), dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recovery allowed until %s: the next restore-sensitive may replace authorized_keys and the node's TLS key and certificate (single use)\n",
		expires.Format(time.RFC3339))
	return nil
}

// runFingerprintCmd prints the node certificate's fingerprint, the one
// a0cli shows on first contact, so that the operator can compare them.
func fingerprintFlags(fs *pflag.FlagSet) runFunc {
	var stateDir string
	stateDirFlag(fs, &stateDir)
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		return runFingerprintCmd(stateDir, pos, stdout)
	}
}

func runFingerprintCmd(stateDir string, pos []string, stdout io.Writer) error {
	if stateDir == "" || len(pos) != 0 {
		return &usageError{"usage: a0agent fingerprint --state-dir DIR"}
	}
	st, err := statedir.OpenExisting(stateDir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(st.TLSCertPath())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no node certificate in %s yet: the agent makes it when it first starts", stateDir)
	}
	if err != nil {
		return err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: not a PEM certificate", st.TLSCertPath())
	}
	fmt.Fprintln(stdout, keys.Fingerprint(block.Bytes))
	return nil
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
