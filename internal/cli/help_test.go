package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func helpEnv(t *testing.T) (*Env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Env{Stdout: &out, Stderr: &errb, Home: t.TempDir(), Port: 10121,
		Getenv: func(string) string { return "" }}, &out, &errb
}

// takesFlags are the commands that declare flags: help must describe some
// for each of them.
var takesFlags = map[string]bool{
	"create-key": true, "node-status": true, "backup": true, "backup-retrieve": true,
	"backup-sensitive": true, "backup-sensitive-retrieve": true, "restore": true, "restore-status": true,
	"restore-sensitive": true, "recover": true, "verify": true, "decrypt": true,
	"backup-copy": true, "backups": true,
}

// TestHelpForEveryCommand: for every command of the table, `help COMMAND`,
// `COMMAND --help`, `COMMAND -h` and `-h COMMAND` exit 0 without a node and
// print the usage, every flag the command parses with a description and its
// default, the password sources where it takes a password, and an example.
// A command added without help text fails here.
func TestHelpForEveryCommand(t *testing.T) {
	ctx := context.Background()
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			env, _, _ := helpEnv(t)
			fs, err := commandFlags(ctx, env, c)
			if err != nil {
				t.Fatal(err)
			}
			lines := flagLines(c.name, fs)
			if takesFlags[c.name] && len(lines) == 0 {
				t.Fatalf("%s is marked as taking flags but describes none", c.name)
			}
			if len(examples[c.name]) == 0 {
				t.Fatalf("no example for %s: add one to examples in help.go", c.name)
			}
			for _, l := range lines {
				if strings.TrimSpace(l.usage) == "" {
					t.Errorf("flag %v of %s has no help text: give it a usage or add it to flagHelp in help.go", l.names, c.name)
				}
			}
			for _, form := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}, {"-h", c.name}} {
				env, out, errb := helpEnv(t)
				if code := Main(ctx, form, env); code != ExitOK {
					t.Fatalf("%v: exit %d\n%s%s", form, code, out, errb)
				}
				text := out.String()
				if strings.Contains(errb.String(), "help requested") || !strings.Contains(text, "usage: a0cli") || !strings.Contains(text, c.usage) {
					t.Fatalf("%v: no usage:\n%s%s", form, text, errb)
				}
				for _, l := range lines {
					for _, n := range l.names {
						if !strings.Contains(text, "  "+n) && !strings.Contains(text, ", "+n) {
							t.Errorf("%v: flag %s not listed:\n%s", form, n, text)
						}
					}
				}
				if n := strings.Count(text, "(default: "); n < len(lines) {
					t.Errorf("%v: %d defaults for %d flags:\n%s", form, n, len(lines), text)
				}
				if fs.Lookup("password") != nil && (!strings.Contains(text, "password sources") || !strings.Contains(text, "$A0_BACKUP_PASSWORD")) {
					t.Errorf("%v: takes a password but does not say where from:\n%s", form, text)
				}
				for _, ex := range examples[c.name] {
					if !strings.Contains(text, ex) {
						t.Errorf("%v: example %q missing", form, ex)
					}
				}
			}
		})
	}
}

// TestCompletionScriptsParse: each completion script parses in its shell,
// and the bash one, run as bash runs it (it calls back the built a0cli's
// __complete), completes commands, a command's flags and fixed words. The
// scripts are cobra's: the commands and flags come from a0cli itself, so
// what each script offers is checked through __complete.
func TestCompletionScriptsParse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for args, want := range map[string][]string{
		"":                     {"recover", "backup-sensitive-retrieve"},
		"recover --max":        {"--max-age-gap"},
		"-t n1 restore --dr":   {"--drop", "--dry-run"},
		"-t n1 backup-sens":    {"backup-sensitive", "backup-sensitive-status", "backup-sensitive-retrieve", "backup-sensitive-delete"},
		"completion f":         {"fish"},
		"decrypt backup.enc -": {"-o", "--output"},
	} {
		words := append([]string{"__complete"}, strings.Fields(args)...)
		if args == "" || strings.HasSuffix(args, " ") {
			words = append(words, "")
		}
		env, out, errb := helpEnv(t)
		if code := Main(ctx, words, env); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", words, code, errb)
		}
		got := map[string]bool{}
		for _, l := range strings.Split(out.String(), "\n") {
			name, _, _ := strings.Cut(l, "\t")
			got[name] = true
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("completing %q: %q not offered:\n%s", args, w, out)
			}
		}
	}
	shells := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			env, out, errb := helpEnv(t)
			if code := Main(ctx, []string{"completion", sh}, env); code != ExitOK {
				t.Fatalf("exit %d: %s", code, errb)
			}
			if !strings.Contains(out.String(), "__complete") {
				t.Errorf("%s script does not ask a0cli __complete", sh)
			}
			path := filepath.Join(dir, "a0cli."+sh)
			if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			argv := shells[sh]
			if _, err := exec.LookPath(argv[0]); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s not installed (.ci/run installs it)", argv[0])
				}
				t.Skipf("%s not installed", argv[0])
			}
			if b, err := exec.Command(argv[0], append(argv[1:], path)...).CombinedOutput(); err != nil {
				t.Fatalf("%s does not parse its completion script: %v\n%s", sh, err, b)
			}
			if sh != "bash" {
				return
			}
			bin := buildBinaries(t)
			for line, want := range map[string]string{
				"a0cli -t n1 backup-sens":  "backup-sensitive backup-sensitive-delete backup-sensitive-retrieve backup-sensitive-status",
				"a0cli -t n1 restore --dr": "--drop --dry-run",
				"a0cli completion f":       "fish",
			} {
				script := "source " + path + "\nCOMP_WORDS=(" + line + ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\nCOMP_LINE=\"" + line + "\"\nCOMP_POINT=${#COMP_LINE}\n__start_a0cli\necho \"${COMPREPLY[*]}\"\n"
				cmd := exec.Command("bash", "-c", script)
				cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
				// stdout only: compopt complains on stderr outside a real
				// completion.
				b, err := cmd.Output()
				if err != nil || strings.TrimSpace(string(b)) != want {
					t.Errorf("completing %q: %q (%v), want %q", line, b, err, want)
				}
			}
		})
	}
	env, _, _ := helpEnv(t)
	if code := Main(ctx, []string{"completion", "tcsh"}, env); code != ExitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, ExitUsage)
	}
}
