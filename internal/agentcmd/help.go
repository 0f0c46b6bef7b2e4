package agentcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpError is what parse returns for -h, -help or --help, with the flag
// set of the command, so that help lists exactly the flags it parses.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string { return "help requested" }

// subcommand is one a0agent command as help describes it. flags runs the
// command with --help, which returns its flag set before doing anything.
type subcommand struct {
	name, usage, summary string
	flags                func(ctx context.Context) error
	examples             []string
}

func subcommands() []subcommand {
	return []subcommand{
		{"run", "a0agent --state-dir DIR [--listen ADDR] [--mongodb-uri URI | --mongodb-uri-file FILE] [--config FILE] [--log-json]",
			"run the agent (HTTPS on :10121); without a MongoDB URI it runs the embedded database (FerretDB on SQLite under DIR/db); $A0_MONGODB_URI is read too",
			func(ctx context.Context) error { return runAgentCmd(ctx, []string{"--help"}, io.Discard) },
			[]string{"a0agent --state-dir /var/lib/a0agent", "A0_MONGODB_URI='mongodb://a0@localhost:27017/?directConnection=true' a0agent --state-dir /var/lib/a0agent"}},
		{"seed", "a0agent seed --state-dir DIR --users N [--mongodb-uri URI]", "fill the database with deterministic Auth0-like sample data",
			func(ctx context.Context) error { return runSeedCmd(ctx, []string{"--help"}, io.Discard) },
			[]string{"a0agent seed --state-dir /var/lib/a0agent --users 10000"}},
		{"authorize", `a0agent authorize --state-dir DIR NAME "PUBLIC KEY LINE"`, "allow a CLI key (the output of a0cli show-key) to call this node",
			func(ctx context.Context) error { return runKeysCmd("authorize", []string{"--help"}, io.Discard) },
			[]string{`a0agent authorize --state-dir /var/lib/a0agent alice "ssh-ed25519 AAAA... alice@laptop"`}},
		{"keys", "a0agent keys --state-dir DIR", "list the authorized CLI keys",
			func(ctx context.Context) error { return runKeysCmd("keys", []string{"--help"}, io.Discard) },
			[]string{"a0agent keys --state-dir /var/lib/a0agent"}},
		{"revoke", "a0agent revoke --state-dir DIR NAME", "remove an authorized CLI key",
			func(ctx context.Context) error { return runKeysCmd("revoke", []string{"--help"}, io.Discard) },
			[]string{"a0agent revoke --state-dir /var/lib/a0agent alice"}},
		{"allow-recovery", "a0agent allow-recovery --state-dir DIR [--for DURATION]",
			"consent, on the node itself, to the next restore-sensitive (or recover) replacing authorized_keys and the node's TLS key and certificate (single use, expires)",
			func(ctx context.Context) error { return runAllowRecoveryCmd([]string{"--help"}, io.Discard) },
			[]string{"a0agent allow-recovery --state-dir /var/lib/a0agent --for 30m"}},
		{"check-config", "a0agent check-config --config FILE",
			"check a config file (schedule, recipients, paths, listen and metrics addresses, webhook URL) and say what is wrong; exit 1 when anything is (run it as the agent's user: paths are checked for that user)",
			func(ctx context.Context) error { return runCheckConfigCmd([]string{"--help"}, io.Discard) },
			[]string{"a0agent check-config --config /etc/a0/agent.json"}},
		{"fingerprint", "a0agent fingerprint --state-dir DIR", "print the node certificate's fingerprint, to compare with what a0cli shows on first contact",
			func(ctx context.Context) error { return runFingerprintCmd([]string{"--help"}, io.Discard) },
			[]string{"a0agent fingerprint --state-dir /var/lib/a0agent"}},
		{"version", "a0agent version", "print the version", nil, []string{"a0agent version"}},
		{"help", "a0agent help [COMMAND]", "print the usage, or a command's flags and examples", nil, []string{"a0agent help seed"}},
	}
}

// flagText describes the agent's flags by name.
var flagText = map[string]string{
	"state-dir":        "the agent's state `DIR` (keys, role, embedded database, job records)",
	"listen":           "HTTPS address `ADDR` to listen on (none: :10121)",
	"mongodb-uri":      "the MongoDB `URI` of this node (visible in the process listing: prefer --mongodb-uri-file or $A0_MONGODB_URI); empty: the embedded database",
	"mongodb-uri-file": "read the MongoDB URI from `FILE`",
	"config":           "JSON config `FILE` (state_dir, listen, mongodb_uri, sensitive_paths, recipients, metrics_listen, schedule, replace, webhook, webhook_ca_file); flags win",
	"log-json":         "log JSON lines instead of text (one object per line on stderr, as journald stores it)",
	"users":            "`N` sample users to seed, with their related documents",
	"for":              "how long the consent stays valid (`DURATION`, at most 24h)",
}

func findSub(name string) (subcommand, bool) {
	for _, s := range subcommands() {
		if s.name == name {
			return s, true
		}
	}
	return subcommand{}, false
}

// wantsHelp reports whether args ask for help (before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func printSubHelp(ctx context.Context, w io.Writer, s subcommand) error {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", s.usage, s.summary)
	if s.flags != nil {
		var he *helpError
		if err := s.flags(ctx); !errors.As(err, &he) {
			return fmt.Errorf("%s did not describe its flags: %v", s.name, err)
		}
		fmt.Fprintln(w, "\nflags:")
		he.fs.VisitAll(func(f *flag.Flag) {
			g := *f
			if g.Usage == "" {
				g.Usage = flagText[f.Name]
			}
			arg, usage := flag.UnquoteUsage(&g)
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
				arg = ""
			} else if arg == "value" || arg == "" {
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
