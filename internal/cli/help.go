package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// examples show each command as a user types it; the help test requires
// one per command.
var examples = map[string][]string{
	"create-key":                {"a0cli create-key", "a0cli create-key --type rsa"},
	"show-key":                  {`a0agent authorize --state-dir /var/lib/a0agent me "$(a0cli show-key)"   # on the node`},
	"delete-key":                {"a0cli delete-key"},
	"forget-node":               {"a0cli forget-node a0-1:10121"},
	"ping":                      {"a0cli -t a0-1 ping"},
	"update-commands":           {"a0cli -t a0-1 update-commands"},
	"set-as-backup":             {"a0cli -t a0-1 set-as-backup /mnt/backup", "a0cli -t a0-1 set-as-backup /mnt/backup force"},
	"node-status":               {"a0cli -t a0-1 node-status", "a0cli -t a0-1 node-status --json"},
	"pitr-status":               {"a0cli -t a0-1 pitr-status", "a0cli -t a0-1 pitr-status --json"},
	"logs":                      {"a0cli -t a0-1 logs --job backup", "a0cli -t a0-1 logs --since 1h --level warn", "a0cli -t a0-1 logs -f"},
	"backup":                    {"a0cli -t a0-1 backup --password-file ~/.a0-pass --wait", "A0_BACKUP_PASSWORD=... a0cli -t a0-1 backup"},
	"backup-status":             {"a0cli -t a0-1 backup-status", "a0cli -t a0-1 backup-status --wait"},
	"cancel":                    {"a0cli -t a0-1 cancel"},
	"backup-cancel":             {"a0cli -t a0-1 backup-cancel"},
	"restore-cancel":            {"a0cli -t a0-2 restore-cancel --json"},
	"backup-retrieve":           {"a0cli -t a0-1 backup-retrieve", "a0cli -t a0-1 backup-retrieve -o /srv/a0/a0-1.tar.gz.enc"},
	"backup-delete":             {"a0cli -t a0-1 backup-delete"},
	"backup-copy":               {"a0cli -t a0-1 backup-copy --wait"},
	"drill":                     {"a0cli -t a0-1 drill --wait"},
	"backups":                   {"a0cli -t a0-1 backups", "a0cli -t a0-1 backups prune --dry-run"},
	"backup-sensitive":          {"a0cli -t a0-1 backup-sensitive --password-file ~/.a0-sensitive-pass --wait"},
	"backup-sensitive-status":   {"a0cli -t a0-1 backup-sensitive-status"},
	"backup-sensitive-retrieve": {"a0cli -t a0-1 backup-sensitive-retrieve"},
	"backup-sensitive-delete":   {"a0cli -t a0-1 backup-sensitive-delete"},
	"restore":                   {"a0cli -t a0-2 restore backup-retrieve.tar.gz.enc --password-file ~/.a0-pass", "a0cli -t a0-2 restore backup-retrieve.tar.gz.enc --ns 'auth0.*' --drop", "a0cli -t a0-2 restore --to-ts 1796551103,3 --identity ops.key --drop --ns 'shop.users'"},
	"restore-status":            {"a0cli -t a0-2 restore-status", "a0cli -t a0-2 restore-status --wait"},
	"oplog-find":                {"a0cli -t a0-2 oplog-find --since 2026-12-06T10:00:00Z --ns 'shop.*' --identity ops.key", "a0cli -t a0-2 oplog-find --op drop,dropDatabase --json"},
	"restore-sensitive":         {"a0cli -t a0-1 restore-sensitive backup-sensitive-retrieve.tar.gz.enc --password-file ~/.a0-sensitive-pass"},
	"recover":                   {"a0cli -t a0-1 recover --sensitive backup-sensitive-retrieve.tar.gz.enc --backup backup-retrieve.tar.gz.enc"},
	"verify":                    {"a0cli verify backup-retrieve.tar.gz.enc --password-file ~/.a0-pass", "a0cli verify --oplog ./oplog backup-retrieve.tar.gz.enc --identity ops.key"},
	"decrypt":                   {"a0cli decrypt backup-retrieve.tar.gz.enc -o backup.tar.gz", "a0cli decrypt backup-retrieve.tar.gz.enc -o - | tar tz"},
	"version":                   {"a0cli version"},
	"completion":                {"a0cli completion bash > /etc/bash_completion.d/a0cli", "a0cli completion zsh > \"${fpath[1]}/_a0cli\"", "a0cli completion fish > ~/.config/fish/completions/a0cli.fish"},
	"help":                      {"a0cli help", "a0cli help backup"},
}

// passwordSources says, for the commands that need a password, where it
// comes from: the argument, --password and --password-file exclude one
// another (two are refused); without them the environment, then a prompt.
var passwordSources = map[string]string{
	"backup":            "<password> argument, --password, --password-file, $A0_BACKUP_PASSWORD, a prompt on a terminal (asked twice); at least 8 characters",
	"backup-sensitive":  "<password> argument, --password, --password-file, $A0_BACKUP_SENSITIVE_PASSWORD, $A0_BACKUP_PASSWORD, a prompt on a terminal (asked twice); at least 8 characters; use another password than the data backup's",
	"restore":           "--password, --password-file, $A0_BACKUP_PASSWORD, a prompt on a terminal (none with --plain)",
	"restore-sensitive": "--password, --password-file, $A0_BACKUP_SENSITIVE_PASSWORD, $A0_BACKUP_PASSWORD, a prompt on a terminal",
	"verify":            "--password, --password-file, $A0_BACKUP_PASSWORD, a prompt on a terminal",
	"decrypt":           "--password, --password-file, $A0_BACKUP_PASSWORD, a prompt on a terminal",
	"recover": "data backup: --password, --password-file, $A0_BACKUP_PASSWORD, a prompt; " +
		"sensitive backup: --sensitive-password, --sensitive-password-file, $A0_BACKUP_SENSITIVE_PASSWORD, $A0_BACKUP_PASSWORD, a prompt",
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// commandFlags returns the flags a command declares: the ones it parses,
// with their help and defaults, so that no list can drift from the code.
func commandFlags(ctx context.Context, env *Env, c command) (*pflag.FlagSet, error) {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	c.setup(fs)
	return fs, nil
}

// flagLine is one flag of a help text, its aliases joined.
type flagLine struct {
	names   []string
	arg     string
	usage   string
	defText string
}

func flagLines(cmd string, fs *pflag.FlagSet) []flagLine {
	var lines []flagLine
	fs.VisitAll(func(f *pflag.Flag) {
		names := []string{"--" + f.Name}
		if f.Shorthand != "" {
			names = []string{"-" + f.Shorthand, "--" + f.Name}
		}
		arg, usage := pflag.UnquoteUsage(f)
		if f.Value.Type() == "bool" {
			arg = ""
		} else if arg == "" || arg == f.Value.Type() {
			arg = strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]":
			def = "none"
		case def == "false":
			def = "off"
		}
		lines = append(lines, flagLine{names: names, arg: arg, usage: usage, defText: def})
	})
	return lines
}

// printCommandHelp prints a command's usage, summary, flags with their
// defaults, password sources and examples.
func printCommandHelp(ctx context.Context, env *Env, c command) error {
	fs, err := commandFlags(ctx, env, c)
	if err != nil {
		return err
	}
	w := env.Stdout
	prefix := "a0cli"
	if c.remote {
		prefix = "a0cli -t HOST [-p PORT]"
	}
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n", prefix, c.usage, c.summary)
	if lines := flagLines(c.name, fs); len(lines) > 0 {
		fmt.Fprintln(w, "\nflags:")
		for _, l := range lines {
			head := strings.Join(l.names, ", ")
			if l.arg != "" {
				head += " " + l.arg
			}
			fmt.Fprintf(w, "  %-32s %s (default: %s)\n", head, l.usage, l.defText)
		}
	}
	if c.remote {
		fmt.Fprintln(w, "\nglobal flags (before or after the command):")
		fmt.Fprintln(w, "  -t, --target HOST                node host name or IP, or HOST:PORT (default: none, required)")
		fmt.Fprintln(w, "  -p, --port N                     node port (default: 10121)")
	}
	if p := passwordSources[c.name]; p != "" {
		fmt.Fprintf(w, "\npassword sources: %s\n", p)
		fmt.Fprintln(w, "  give the password one way only: two of the argument, --password and --password-file are refused (exit 2);")
		fmt.Fprintln(w, "  without any of them the environment is read, then a terminal prompt")
	}
	if ex := examples[c.name]; len(ex) > 0 {
		fmt.Fprintln(w, "\nexample:")
		for _, e := range ex {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	return nil
}

func runHelpCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		printUsage(env)
		return nil
	}
	if len(args) > 1 {
		return usagef("usage: help [COMMAND]")
	}
	c, ok := findCommand(args[0])
	if !ok {
		return usagef("unknown command %q%s", args[0], didYouMean(suggestCommands(args[0])))
	}
	return printCommandHelp(ctx, env, c)
}
