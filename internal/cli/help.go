package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// helpError is what parse returns for -h, -help or --help: it carries the
// command's flag set, so that help lists exactly the flags the command
// parses, with their defaults, and no list can drift from the code.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string { return "help requested" }

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

// takesFlags are the commands whose run parses flags (with parse) first
// thing: help asks them for their flag set by running them with --help,
// which returns before anything else happens. The others take none.
var takesFlags = map[string]bool{
	"create-key": true, "node-status": true, "backup": true, "backup-retrieve": true,
	"backup-sensitive": true, "backup-sensitive-retrieve": true, "restore": true, "restore-status": true,
	"restore-sensitive": true, "recover": true, "verify": true, "decrypt": true,
	"backup-copy": true, "backups": true,
}

// flagHelp describes flags by name; "command.flag" wins over "flag". A flag
// registered with its own usage text needs no entry.
var flagHelp = map[string]string{
	"password":                "the `PASSWORD` (visible in shell history and process listings: prefer --password-file or the environment)",
	"password-file":           "read the password from `FILE` (one trailing newline is ignored)",
	"wait":                    "follow the job with a progress bar to its end",
	"allow-primary":           "let the dump read from the primary of a replica set (off: it reads from a secondary)",
	"force":                   "replace an existing file",
	"create-key.force":        "replace an existing key pair",
	"o":                       "write to `FILE`",
	"output":                  "write to `FILE`",
	"json":                    "print JSON for scripts",
	"type":                    "key `TYPE`: ed25519 or rsa (3072 bits)",
	"drop":                    "drop target collections that hold documents before restoring them",
	"restore.ns":              "restore only `DB.COLL` ('*' wildcards; repeat for more)",
	"ns":                      "only `DB.COLL` ('*' wildcards; repeat for more)",
	"dry-run":                 "print the plan, write nothing",
	"backups.dry-run":         "with prune: list what the retention policy would remove, delete nothing",
	"backup-retrieve.remote":  "retrieve the copy `NAME` (as `backups` lists it) from the node's remote store, through the node",
	"restore.remote":          "restore the copy `NAME` from the node's remote store (the node downloads and authenticates it first)",
	"backup-copy.wait":        "follow the copy to its end (copied or failed)",
	"plain":                   "FILE is a plain mongodump directory packed as .tar.gz (not encrypted)",
	"detach":                  "start the restore and return; follow it with restore-status",
	"restore-status.wait":     "follow the running restore with a progress bar to its report",
	"yes":                     "do not ask for confirmation",
	"legacy":                  "the file is in the original appliance's format (openssl enc -aes-256-ctr -md md5 -nosalt): no MAC, not authenticated",
	"sensitive":               "the sensitive backup `FILE` (from backup-sensitive-retrieve)",
	"backup":                  "the data backup `FILE` (from backup-retrieve)",
	"sensitive-password":      "the sensitive backup's `PASSWORD` (prefer --sensitive-password-file or the environment)",
	"sensitive-password-file": "read the sensitive backup's password from `FILE`",
	"max-age-gap":             "the most by which the sensitive backup may be older than the data backup without asking (a `DURATION` such as 720h)",
	"allow-other-node":        "accept backups made on two different nodes",
	"recover.drop":            "replace collections that already hold documents",
	"to":                      "also encrypt to the authorized CLI key `NAME` (repeat for more)",
	"to-all":                  "also encrypt to every authorized CLI key",
	"no-password":             "no password: encrypt only to --to keys and the agent config's \"recipients\"",
	"identity":                "open a backup encrypted to public keys with the private key `FILE` (repeat for more; default: the CLI key in $A0CLI_HOME)",
	"stop-on-error":           "stop at the first document the server refuses (default: count and report them, exit 6)",
	"users-and-roles":         "also restore the dump's users and roles (admin.system.users, admin.system.roles)",
}

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
	"backup":                    {"a0cli -t a0-1 backup --password-file ~/.a0-pass --wait", "A0_BACKUP_PASSWORD=... a0cli -t a0-1 backup"},
	"backup-status":             {"a0cli -t a0-1 backup-status"},
	"backup-retrieve":           {"a0cli -t a0-1 backup-retrieve", "a0cli -t a0-1 backup-retrieve -o /srv/a0/a0-1.tar.gz.enc"},
	"backup-delete":             {"a0cli -t a0-1 backup-delete"},
	"backup-copy":               {"a0cli -t a0-1 backup-copy --wait"},
	"backups":                   {"a0cli -t a0-1 backups", "a0cli -t a0-1 backups prune --dry-run"},
	"backup-sensitive":          {"a0cli -t a0-1 backup-sensitive --password-file ~/.a0-sensitive-pass --wait"},
	"backup-sensitive-status":   {"a0cli -t a0-1 backup-sensitive-status"},
	"backup-sensitive-retrieve": {"a0cli -t a0-1 backup-sensitive-retrieve"},
	"backup-sensitive-delete":   {"a0cli -t a0-1 backup-sensitive-delete"},
	"restore":                   {"a0cli -t a0-2 restore backup-retrieve.tar.gz.enc --password-file ~/.a0-pass", "a0cli -t a0-2 restore backup-retrieve.tar.gz.enc --ns 'auth0.*' --drop"},
	"restore-status":            {"a0cli -t a0-2 restore-status", "a0cli -t a0-2 restore-status --wait"},
	"restore-sensitive":         {"a0cli -t a0-1 restore-sensitive backup-sensitive-retrieve.tar.gz.enc --password-file ~/.a0-sensitive-pass"},
	"recover":                   {"a0cli -t a0-1 recover --sensitive backup-sensitive-retrieve.tar.gz.enc --backup backup-retrieve.tar.gz.enc"},
	"verify":                    {"a0cli verify backup-retrieve.tar.gz.enc --password-file ~/.a0-pass"},
	"decrypt":                   {"a0cli decrypt backup-retrieve.tar.gz.enc -o backup.tar.gz", "a0cli decrypt backup-retrieve.tar.gz.enc -o - | tar tz"},
	"completion":                {"a0cli completion bash > /etc/bash_completion.d/a0cli", "a0cli completion zsh > \"${fpath[1]}/_a0cli\"", "a0cli completion fish > ~/.config/fish/completions/a0cli.fish"},
	"help":                      {"a0cli help", "a0cli help backup"},
}

// passwordSources says, for the commands that need a password, where it
// comes from, first found wins.
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

// commandFlags returns the flag set a command parses, or an empty one.
func commandFlags(ctx context.Context, env *Env, c command) (*flag.FlagSet, error) {
	if !takesFlags[c.name] || c.run == nil {
		return flag.NewFlagSet(c.name, flag.ContinueOnError), nil
	}
	quiet := *env
	quiet.Stdout, quiet.Stderr = io.Discard, io.Discard
	err := c.run(ctx, &quiet, []string{"--help"})
	var he *helpError
	if !errors.As(err, &he) {
		return nil, fmt.Errorf("%s did not describe its flags: %v", c.name, err)
	}
	return he.fs, nil
}

// flagLine is one flag of a help text, its aliases joined.
type flagLine struct {
	names   []string
	arg     string
	usage   string
	defText string
}

func flagLines(cmd string, fs *flag.FlagSet) []flagLine {
	var lines []flagLine
	byValue := map[uintptr]int{}
	fs.VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		if v := reflect.ValueOf(f.Value); v.Kind() == reflect.Pointer {
			if i, ok := byValue[v.Pointer()]; ok {
				lines[i].names = append(lines[i].names, name)
				return
			}
			byValue[v.Pointer()] = len(lines)
		}
		text := f.Usage
		if h, ok := flagHelp[cmd+"."+f.Name]; ok {
			text = h
		} else if h, ok := flagHelp[f.Name]; ok && text == "" {
			text = h
		}
		f2 := *f
		f2.Usage = text
		arg, usage := flag.UnquoteUsage(&f2)
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			arg = ""
		} else if arg == "value" || arg == "" {
			arg = strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]":
			def = "none"
		case def == "false":
			def = "off"
		}
		lines = append(lines, flagLine{names: []string{name}, arg: arg, usage: usage, defText: def})
	})
	for i := range lines {
		sort.Slice(lines[i].names, func(a, b int) bool { return len(lines[i].names[a]) < len(lines[i].names[b]) })
	}
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
		fmt.Fprintln(w, "\nglobal flags (before the command):")
		fmt.Fprintln(w, "  -t, --target HOST                node host name or IP, or HOST:PORT (default: none, required)")
		fmt.Fprintln(w, "  -p, --port N                     node port (default: 10121)")
	}
	if p := passwordSources[c.name]; p != "" {
		fmt.Fprintf(w, "\npassword sources, first found wins: %s\n", p)
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
		return usagef("unknown command %q", args[0])
	}
	return printCommandHelp(ctx, env, c)
}
