package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

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
	return client.New(e.Home, node, func(node, fp string) error {
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
}

// command is one a0cli command.
type command struct {
	name    string
	usage   string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
	remote  bool
}

var commands []command

func init() {
	commands = []command{
		{"create-key", "create-key [--type ed25519|rsa] [--force]", "make this workstation's key pair and print the public key", runCreateKeyCmd, false},
		{"show-key", "show-key", "print the public key (register it on nodes with a0agent authorize)", runShowKeyCmd, false},
		{"delete-key", "delete-key", "delete this workstation's key pair", runDeleteKeyCmd, false},
		{"forget-node", "forget-node HOST:PORT", "forget a node's pinned certificate", runForgetNodeCmd, false},
		{"ping", "ping", "check that the node answers", runPingCmd, true},
		{"update-commands", "update-commands", "fetch and cache the commands the node accepts", runUpdateCommandsCmd, true},
		{"set-as-backup", "set-as-backup <device> [force]", "give the node the backup role and its backup device", runSetAsBackupCmd, true},
		{"node-status", "node-status [--json]", "roles, device, free space, database size, agent version", runNodeStatusCmd, true},
		{"backup", "backup [<password>] [--password P | --password-file F] [--to NAME]... [--to-all] [--no-password] [--wait]", "start a backup", slotCmd(api.SlotBackup, "start"), true},
		{"backup-status", "backup-status", "show the stored, running or failed backup (one JSON line)", slotCmd(api.SlotBackup, "status"), true},
		{"backup-retrieve", "backup-retrieve [-o FILE] [--force] [--remote NAME]", "download the backup into backup-retrieve.tar.gz.enc", slotCmd(api.SlotBackup, "retrieve"), true},
		{"backup-delete", "backup-delete", "delete the stored backup", slotCmd(api.SlotBackup, "delete"), true},
		// The remote store (remote.go).
		{"backup-copy", "backup-copy [--wait]", "copy the stored backup to the node's remote store now", runBackupCopyCmd, true},
		{"backups", "backups [--json] | backups prune [--dry-run] [--json]", "list the local and remote backups; prune applies the retention policy", runBackupsCmd, true},
		{"backup-sensitive", "backup-sensitive [--password P | --password-file F] [--wait]", "back up the node's sensitive configuration", slotCmd(api.SlotSensitive, "start"), true},
		{"backup-sensitive-status", "backup-sensitive-status", "show the stored, running or failed sensitive backup", slotCmd(api.SlotSensitive, "status"), true},
		{"backup-sensitive-retrieve", "backup-sensitive-retrieve [-o FILE] [--force]", "download it into backup-sensitive-retrieve.tar.gz.enc", slotCmd(api.SlotSensitive, "retrieve"), true},
		{"backup-sensitive-delete", "backup-sensitive-delete", "delete the stored sensitive backup", slotCmd(api.SlotSensitive, "delete"), true},
		{"restore", "restore [FILE] [password options] [--identity FILE] [--drop] [--ns DB.COLL]... [--dry-run] [--plain] [--detach] [--stop-on-error] [--users-and-roles] [--remote NAME]", "restore a backup onto the node", runRestoreCmd, true},
		{"restore-status", "restore-status [--wait]", "show the running or last restore", runRestoreStatusCmd, true},
		{"restore-sensitive", "restore-sensitive FILE [password options] [--yes]", "put the sensitive configuration back on the node", runRestoreSensitiveCmd, true},
		{"recover", "recover --sensitive FILE --backup FILE [password options] [--yes] [--max-age-gap DURATION]", "recover a lost node from its two backups (keys, certificate pin, data, role)", runRecoverCmd, true},
		{"verify", "verify FILE [password options] [--identity FILE] [--legacy] [--json]", "check every byte of a backup file offline and list what it holds", runVerifyCmd, false},
		{"decrypt", "decrypt FILE [-o OUT] [password options] [--identity FILE] [--legacy]", "write the plain .tar.gz of a backup file", runDecryptCmd, false},
		{"completion", "completion bash|zsh|fish", "print a shell completion script", runCompletionCmd, false},
		{"help", "help [COMMAND]", "print this usage, or a command's usage, flags and examples", runHelpCmd, false},
	}
}

// Main runs a0cli with args (without the program name) and returns the exit
// code.
func Main(ctx context.Context, args []string, env *Env) int {
	if _, ok := env.Stderr.(*lineWriter); !ok && env.Stderr != nil {
		env.Stderr = &lineWriter{w: env.Stderr}
	}
	gf := flag.NewFlagSet("a0cli", flag.ContinueOnError)
	gf.SetOutput(io.Discard)
	gf.StringVar(&env.Target, "t", env.Target, "")
	gf.StringVar(&env.Target, "target", env.Target, "")
	gf.IntVar(&env.Port, "p", api.DefaultPort, "")
	gf.IntVar(&env.Port, "port", api.DefaultPort, "")
	showVersion := gf.Bool("V", false, "")
	gf.BoolVar(showVersion, "version", false, "")
	help := gf.Bool("h", false, "")
	gf.BoolVar(help, "help", false, "")
	if err := gf.Parse(args); err != nil {
		return report(env, usagef("%v", err))
	}
	if *showVersion {
		fmt.Fprintf(env.Stdout, "a0cli %s\n", version.Version)
		return ExitOK
	}
	rest := gf.Args()
	if *help && len(rest) > 0 {
		return report(env, runHelpCmd(ctx, env, rest[:1]))
	}
	if *help || len(rest) == 0 {
		printUsage(env)
		if len(rest) == 0 && !*help {
			return ExitUsage
		}
		return ExitOK
	}
	if c, ok := findCommand(rest[0]); ok {
		// COMMAND -h, -help or --help: that command's help, exit 0.
		if wantsHelp(rest[1:]) {
			return report(env, printCommandHelp(ctx, env, c))
		}
		return report(env, c.run(ctx, env, rest[1:]))
	}
	return report(env, usagef("unknown command %q", rest[0]))
}

func report(env *Env, err error) int {
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

// parse parses flags placed anywhere among the positional arguments, which
// Go's flag package does not do by itself.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, &helpError{fs: fs}
		} else if err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
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

var errInterrupted = errors.New("interrupted")
