package agentcmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// subcommand is one a0agent command: its usage, summary and examples, and
// setup, which declares its flags (each with its help) and returns what
// runs it. "run" is the agent itself, the root command's flags.
type subcommand struct {
	name, usage, summary string
	setup                func(fs *pflag.FlagSet) runFunc
	examples             []string
}

func subcommands() []subcommand {
	return []subcommand{
		{"run", "a0agent --state-dir DIR [--listen ADDR] [--mongodb-uri URI | --mongodb-uri-file FILE] [--config FILE] [--log-json]",
			"run the agent (HTTPS on :10121); without a MongoDB URI it runs the embedded database (FerretDB on SQLite under DIR/db); $A0_MONGODB_URI is read too",
			runAgentFlags,
			[]string{"a0agent --state-dir /var/lib/a0agent", "A0_MONGODB_URI='mongodb://a0@localhost:27017/?directConnection=true' a0agent --state-dir /var/lib/a0agent"}},
		{"seed", "a0agent seed --state-dir DIR --users N [--mongodb-uri URI]", "fill the database with deterministic Auth0-like sample data",
			seedFlags,
			[]string{"a0agent seed --state-dir /var/lib/a0agent --users 10000"}},
		{"authorize", `a0agent authorize --state-dir DIR NAME "PUBLIC KEY LINE"`, "allow a CLI key (the output of a0cli show-key) to call this node",
			keysFlags("authorize"),
			[]string{`a0agent authorize --state-dir /var/lib/a0agent alice "ssh-ed25519 AAAA... alice@laptop"`}},
		{"keys", "a0agent keys --state-dir DIR", "list the authorized CLI keys",
			keysFlags("keys"),
			[]string{"a0agent keys --state-dir /var/lib/a0agent"}},
		{"revoke", "a0agent revoke --state-dir DIR NAME", "remove an authorized CLI key",
			keysFlags("revoke"),
			[]string{"a0agent revoke --state-dir /var/lib/a0agent alice"}},
		{"allow-recovery", "a0agent allow-recovery --state-dir DIR [--for DURATION]",
			"consent, on the node itself, to the next restore-sensitive (or recover) replacing authorized_keys and the node's TLS key and certificate (single use, expires)",
			allowRecoveryFlags,
			[]string{"a0agent allow-recovery --state-dir /var/lib/a0agent --for 30m"}},
		{"check-config", "a0agent check-config --config FILE",
			"check a config file (schedule, recipients, paths, listen and metrics addresses, webhook URL) and say what is wrong; exit 1 when anything is (run it as the agent's user: paths are checked for that user)",
			checkConfigFlags,
			[]string{"a0agent check-config --config /etc/a0/agent.json"}},
		{"fingerprint", "a0agent fingerprint --state-dir DIR", "print the node certificate's fingerprint, to compare with what a0cli shows on first contact",
			fingerprintFlags,
			[]string{"a0agent fingerprint --state-dir /var/lib/a0agent"}},
		{"version", "a0agent version", "print the version", noFlags(func(_ context.Context, _ []string, stdout, _ io.Writer) error { return printVersion(stdout) }),
			[]string{"a0agent version"}},
		{"help", "a0agent help [COMMAND]", "print the usage, or a command's flags and examples",
			noFlags(func(ctx context.Context, args []string, stdout, _ io.Writer) error { return runHelp(ctx, args, stdout) }),
			[]string{"a0agent help seed"}},
	}
}

// noFlags is the setup of a command without flags.
func noFlags(run runFunc) func(*pflag.FlagSet) runFunc {
	return func(*pflag.FlagSet) runFunc { return run }
}

func findSub(name string) (subcommand, bool) {
	for _, s := range subcommands() {
		if s.name == name {
			return s, true
		}
	}
	return subcommand{}, false
}

func printSubHelp(ctx context.Context, w io.Writer, s subcommand) error {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", s.usage, s.summary)
	fs := pflag.NewFlagSet(s.name, pflag.ContinueOnError)
	s.setup(fs)
	if fs.HasFlags() {
		fmt.Fprintln(w, "\nflags:")
		fs.VisitAll(func(f *pflag.Flag) {
			arg, usage := pflag.UnquoteUsage(f)
			if f.Value.Type() == "bool" {
				arg = ""
			} else if arg == "" || arg == f.Value.Type() {
				arg = strings.ToUpper(f.Name)
			}
			head := "--" + f.Name
			if arg != "" {
				head += " " + arg
			}
			def := f.DefValue
			switch def {
			case "", "[]":
				def = "none"
			case "false":
				def = "off"
			}
			fmt.Fprintf(w, "  %-26s %s (default: %s)\n", head, usage, def)
		})
	}
	fmt.Fprintln(w, "\nexample:")
	for _, e := range s.examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	return nil
}

func runHelp(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, "run `a0agent help COMMAND` or `a0agent COMMAND --help` for its flags and examples (`a0agent help run` for the agent itself)")
		return nil
	}
	s, ok := findSub(args[0])
	if !ok || len(args) > 1 {
		return &usageError{fmt.Sprintf("usage: a0agent help [COMMAND]: unknown command %q", strings.Join(args, " "))}
	}
	return printSubHelp(ctx, stdout, s)
}
