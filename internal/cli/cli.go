package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/version"
)

// Env is what a command may touch: its streams, the CLI home, the target
// node and the environment. Tests build one directly.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Home is the CLI home ($A0CLI_HOME or ~/.a0cli).
	Home string
	// Target is host or host:port; Port is used when Target has none.
	Target string
	Port   int
	Getenv func(string) string
	// Interactive is true when stdin and stderr are terminals (prompts,
	// progress bars).
	Interactive bool
	// PromptPassword reads a password without echo; nil uses the terminal.
	PromptPassword func(prompt string) (string, error)

	// clients are the node clients made during the run, whose kept-alive
	// connections Main closes at its end.
	clientsMu sync.Mutex
	clients   []*client.Client
}

// closeClients closes the kept-alive connections of the run's clients.
func (e *Env) closeClients() {
	e.clientsMu.Lock()
	defer e.clientsMu.Unlock()
	for _, c := range e.clients {
		c.CloseIdle()
	}
	e.clients = nil
}

// node is the target as host:port.
func (e *Env) node() (string, error) {
	if e.Target == "" {
		return "", usagef("no target node: use -t HOST")
	}
	if _, _, err := net.SplitHostPort(e.Target); err == nil {
		return e.Target, nil
	}
	return net.JoinHostPort(e.Target, strconv.Itoa(e.Port)), nil
}

// client connects to the target node. On first contact, on a terminal,
// the operator sees the node's fingerprint and accepts it before anything
// (a password included) is sent, as ssh asks; elsewhere (scripts) the
// certificate is pinned and its fingerprint printed, as ssh's
// StrictHostKeyChecking=accept-new does.
func (e *Env) client(ctx context.Context) (*client.Client, error) {
	node, err := e.node()
	if err != nil {
		return nil, err
	}
	c, err := client.New(e.Home, node, func(node, fp string) error {
		known := filepath.Join(e.Home, "known_nodes")
		if !e.Interactive {
			e.say(fmt.Sprintf("a0cli: first contact with %s: pinned its certificate %s in %s", node, fp, known))
			return nil
		}
		e.say(fmt.Sprintf("a0cli: first contact with %s: its certificate is %s.\n"+
			"Compare it with the node's own (`a0agent fingerprint --state-dir DIR` on the node, or the agent's log line \"a0agent listening ... certificate=\").", node, fp))
		fmt.Fprint(e.Stderr, "Pin it and go on? [y/N] ")
		var answer string
		fmt.Fscanln(e.Stdin, &answer)
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &client.PinRefusedError{Node: node, Fingerprint: fp}
		}
		e.say(fmt.Sprintf("a0cli: pinned the certificate of %s in %s", node, known))
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.clientsMu.Lock()
	e.clients = append(e.clients, c)
	e.clientsMu.Unlock()
	return c, nil
}

// runFunc runs a command once its flags are parsed, with its positional
// arguments.
type runFunc func(ctx context.Context, env *Env, args []string) error

// argKind is what a command's positional arguments are, for completion.
type argKind int

const (
	argsNone  argKind = iota // nothing to complete (a password, a node's path, a name)
	argsFiles                // local files: completion offers paths
)

// command is one a0cli command: its entry of api.CommandList, and how it
// declares its flags and runs.
type command struct {
	name    string
	usage   string
	summary string
	remote  bool
	// setup declares the command's flags on fs, each with its help, bound
	// to a fresh options value, and returns what runs the command.
	setup func(fs *pflag.FlagSet) runFunc
	args  argKind
}

// noFlags is the setup of a command that takes no flags.
func noFlags(run runFunc) func(*pflag.FlagSet) runFunc {
	return func(*pflag.FlagSet) runFunc { return run }
}

// commandSetups says how each command of api.CommandList declares its
// flags and runs; a name missing here (or here and not there) fails init.
var commandSetups = map[string]struct {
	setup func(*pflag.FlagSet) runFunc
	args  argKind
}{
	"create-key":                {createKeyFlags, argsNone},
	"show-key":                  {noFlags(runShowKeyCmd), argsNone},
	"delete-key":                {noFlags(runDeleteKeyCmd), argsNone},
	"forget-node":               {noFlags(runForgetNodeCmd), argsNone},
	"ping":                      {noFlags(runPingCmd), argsNone},
	"update-commands":           {noFlags(runUpdateCommandsCmd), argsNone},
	"set-as-backup":             {setAsBackupFlags, argsNone},
	"node-status":               {nodeStatusFlags, argsNone},
	"pitr-status":               {pitrStatusFlags, argsNone},
	"drill":                     {drillFlags, argsNone},
	"logs":                      {logsFlags, argsNone},
	"backup":                    {slotCmd(api.SlotBackup, "start"), argsNone},
	"backup-status":             {slotCmd(api.SlotBackup, "status"), argsNone},
	"backup-retrieve":           {slotCmd(api.SlotBackup, "retrieve"), argsNone},
	"backup-delete":             {slotCmd(api.SlotBackup, "delete"), argsNone},
	"backup-copy":               {backupCopyFlags, argsNone},
	"backups":                   {backupsFlags, argsNone},
	"backup-sensitive":          {slotCmd(api.SlotSensitive, "start"), argsNone},
	"backup-sensitive-status":   {slotCmd(api.SlotSensitive, "status"), argsNone},
	"backup-sensitive-retrieve": {slotCmd(api.SlotSensitive, "retrieve"), argsNone},
	"backup-sensitive-delete":   {slotCmd(api.SlotSensitive, "delete"), argsNone},
	"restore":                   {restoreFlags, argsFiles},
	"restore-status":            {restoreStatusFlags, argsNone},
	"oplog-find":                {oplogFindFlags, argsNone},
	"restore-sensitive":         {restoreSensitiveFlags, argsFiles},
	"cancel":                    {cancelFlags(""), argsNone},
	"backup-cancel":             {cancelFlags("backup"), argsNone},
	"restore-cancel":            {cancelFlags("restore"), argsNone},
	"recover":                   {recoverFlags, argsNone},
	"verify":                    {verifyFlags, argsFiles},
	"decrypt":                   {decryptFlags, argsFiles},
	"completion":                {noFlags(runCompletionCmd), argsNone},
	"version":                   {noFlags(runVersionCmd), argsNone},
	"help":                      {noFlags(runHelpCmd), argsNone},
}

// commands is api.CommandList with each command's setup.
var commands []command

func init() {
	for _, spec := range api.CommandList {
		s, ok := commandSetups[spec.Name]
		if !ok {
			panic("a0cli: command " + spec.Name + " of api.CommandList has no setup in cli.commandSetups")
		}
		commands = append(commands, command{name: spec.Name, usage: spec.Usage, summary: spec.Summary, remote: spec.Node, setup: s.setup, args: s.args})
	}
	if len(commands) != len(commandSetups) {
		panic("a0cli: cli.commandSetups names a command api.CommandList does not have")
	}
}

// Main runs a0cli with args (without the program name) and returns the exit
// code.
func Main(ctx context.Context, args []string, env *Env) int {
	if _, ok := env.Stderr.(*lineWriter); !ok && env.Stderr != nil {
		env.Stderr = &lineWriter{w: env.Stderr}
	}
	// A private key pasted as an argument (`--to "$(cat id_a0)"`) is
	// refused before anything quotes it: the flag parser's errors and the
	// node's "cannot encrypt to %q" printed all of it (issue 25.16).
	if err := keys.RefusePrivateKeyArgs(args); err != nil {
		return report(env, usagef("%v", err))
	}
	root := newRoot(ctx, env)
	root.SetArgs(normaliseArgs(root, args))
	err := root.ExecuteContext(ctx)
	env.closeClients()
	if code, ok := interruptExit(ctx, err); ok {
		// Ctrl-C: say what goes on on the node (an InterruptedError) or
		// at least that a0cli was interrupted, never "context canceled".
		var ie *InterruptedError
		if errors.As(err, &ie) {
			env.say("a0cli: " + ie.Error())
		} else {
			env.say("a0cli: interrupted")
		}
		return code
	}
	return report(env, err)
}

// exitStatus ends a run with a code and nothing more to say (the usage was
// printed, or the version).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// newRoot builds the command tree: the global flags, accepted before and
// after the command, and one cobra command per entry of commands.
func newRoot(ctx context.Context, env *Env) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:               "a0cli",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		// An unknown command: say so, with the nearest commands.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q%s", args[0], didYouMean(suggestCommands(args[0])))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			printUsage(env)
			return exitStatus(ExitUsage)
		},
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	gf := root.PersistentFlags()
	gf.StringVarP(&env.Target, "target", "t", env.Target, "node `HOST` name or IP, or HOST:PORT")
	gf.IntVarP(&env.Port, "port", "p", api.DefaultPort, "node `PORT`")
	gf.BoolVarP(&showVersion, "version", "V", false, "print the version")
	gf.BoolP("help", "h", false, "print the usage, or the command's")
	root.RegisterFlagCompletionFunc("target", noFileCompletion)
	root.RegisterFlagCompletionFunc("port", noFileCompletion)
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if showVersion {
			printVersion(env)
			return exitStatus(ExitOK)
		}
		// -t HOST:PORT -p OTHER: which one was meant is not for a0cli
		// to guess.
		if cmd.Flags().Changed("port") {
			if _, port, err := net.SplitHostPort(env.Target); err == nil && port != strconv.Itoa(env.Port) {
				return usagef("-t %s names port %s and -p names port %d: give the port one way", env.Target, port, env.Port)
			}
		}
		return nil
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(cmd, err) })
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if cmd == root {
			printUsage(env)
			return
		}
		if c, ok := findCommand(cmd.Name()); ok {
			if err := printCommandHelp(ctx, env, c); err != nil {
				report(env, err)
			}
		}
	})
	for _, c := range commands {
		cc := &cobra.Command{Use: c.name, Short: c.summary}
		run := c.setup(cc.Flags())
		cc.RunE = func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), env, args) }
		completeArgs(cc, c)
		root.AddCommand(cc)
		if c.name == "help" {
			root.SetHelpCommand(cc)
		}
	}
	return root
}

func report(env *Env, err error) int {
	var done exitStatus
	if errors.As(err, &done) {
		return int(done)
	}
	code, advice := exitCode(err)
	if err != nil {
		// A line of its own, and exactly one line end.
		env.say("a0cli: " + err.Error())
		if advice != "" {
			fmt.Fprintln(env.Stderr, advice)
		}
	}
	return code
}

func printUsage(env *Env) {
	w := env.Stdout
	fmt.Fprintf(w, "a0cli %s: back up, retrieve, verify and restore an a0 appliance node\n\n", version.Version)
	fmt.Fprintln(w, "usage: a0cli [-t HOST] [-p PORT] <command> [arguments]")
	fmt.Fprintln(w, "  -t, --target HOST   node host name or IP")
	fmt.Fprintf(w, "  -p, --port N        node port (default %d)\n", api.DefaultPort)
	fmt.Fprintln(w, "  -V, --version       print the version")
	fmt.Fprintln(w, "  (these may also follow the command: a0cli backup-status -t HOST)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-28s %s\n", c.name, c.summary)
	}
	if cached := cachedCommands(env.Home); len(cached) > 0 {
		fmt.Fprintln(w, "\ncommands the node accepts (from update-commands):")
		for _, c := range cached {
			fmt.Fprintf(w, "  %s\n", c.Usage)
		}
	}
	fmt.Fprintln(w, "\nrun `a0cli help COMMAND` or `a0cli COMMAND --help` for a command's flags and examples")
	fmt.Fprintln(w, "password options: <password> | --password P | --password-file FILE | $A0_BACKUP_PASSWORD | a prompt")
	fmt.Fprintln(w, "public keys: backup --to NAME (an authorized key's name) / --to-all; verify, decrypt, restore --identity FILE (default: this CLI key)")
	fmt.Fprintln(w, "exit codes: 0 ok, 1 failure, 2 usage, 3 key/auth, 4 refused by the node, 5 not found, 6 integrity, 7 unreachable")
}

func printVersion(env *Env) { fmt.Fprintf(env.Stdout, "a0cli %s\n", version.Version) }

// runVersionCmd is `a0cli version`: what -V prints.
func runVersionCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		return usagef("version takes no arguments")
	}
	printVersion(env)
	return nil
}

func commandsCachePath(home string) string { return filepath.Join(home, "commands.json") }

func cachedCommands(home string) []api.Command {
	b, err := os.ReadFile(commandsCachePath(home))
	if err != nil {
		return nil
	}
	var cmds api.Commands
	if json.Unmarshal(b, &cmds) != nil {
		return nil
	}
	sort.Slice(cmds.Commands, func(i, j int) bool { return cmds.Commands[i].Name < cmds.Commands[j].Name })
	return cmds.Commands
}

// DefaultEnv is the Env of the real process.
func DefaultEnv() (*Env, error) {
	home, err := keys.DefaultHome()
	if err != nil {
		return nil, err
	}
	return &Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Home: home, Port: api.DefaultPort,
		Getenv:      os.Getenv,
		Interactive: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd())),
	}, nil
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
func (s *stringList) Type() string       { return "strings" }

var errInterrupted = errors.New("interrupted")
