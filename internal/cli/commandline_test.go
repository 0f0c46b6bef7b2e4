package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/version"
)

// TestCommandLineForgiving: the command line forms of issue 28 point 11 and
// issue 23 point 4, without a node (an address where nothing listens shows
// that -t was taken: unreachable, exit 7, rather than a usage error).
func TestCommandLineForgiving(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	env, _, errb := helpEnv(t)
	env.Home = home
	if code := Main(ctx, []string{"create-key"}, env); code != ExitOK {
		t.Fatalf("create-key: exit %d: %s", code, errb)
	}
	const nowhere = "127.0.0.1:1"
	missing := filepath.Join(t.TempDir(), "missing.enc")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("long enough password\n"), 0o600)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // each must appear
		stderr []string
		not    []string // must not appear in stderr
	}{
		{"typo suggests the command", []string{"backup-stauts"}, ExitUsage, nil,
			[]string{`unknown command "backup-stauts"`, "did you mean backup-status?"}, nil},
		{"help of a typo suggests", []string{"help", "restor"}, ExitUsage, nil, []string{"did you mean", "restore"}, nil},
		{"flag typo named as typed, with a suggestion", []string{"backup", "--wiat"}, ExitUsage, nil,
			[]string{"unknown flag --wiat", "did you mean --wait?"}, []string{" -wiat"}},
		{"single-dash flag typo", []string{"backup", "-wiat"}, ExitUsage, nil,
			[]string{"unknown flag -wiat", "did you mean --wait?"}, nil},
		{"global flags after the command", []string{"backup-status", "-t", nowhere}, ExitConn, nil, nil, []string{"unknown", "no target"}},
		{"global flags after the command, long", []string{"backup-status", "--target", nowhere}, ExitConn, nil, nil, []string{"unknown"}},
		{"global flag between the command and its file", []string{"restore", "-t", nowhere, missing}, ExitNotFound, nil, []string{"no such file"}, nil},
		{"global flags before the command, help after", []string{"-t", "HOST", "backup-status", "--help"}, ExitOK,
			[]string{"usage: a0cli -t HOST [-p PORT] backup-status"}, nil, nil},
		{"-t HOST:PORT with another -p refused", []string{"-t", "h:22001", "-p", "22002", "ping"}, ExitUsage, nil,
			[]string{"22001", "22002", "one way"}, nil},
		{"-p after the command conflicts too", []string{"ping", "-t", "h:22001", "--port", "22002"}, ExitUsage, nil, []string{"one way"}, nil},
		{"-t HOST:PORT with the same -p is no conflict", []string{"-t", nowhere, "-p", "1", "ping"}, ExitConn, nil, nil, nil},
		{"version command", []string{"version"}, ExitOK, []string{"a0cli " + version.Version + "\n"}, nil, nil},
		{"-V", []string{"-V"}, ExitOK, []string{"a0cli " + version.Version + "\n"}, nil, nil},
		{"single-dash long flag with a value", []string{"create-key", "-type", "dsa"}, ExitUsage, nil, []string{`--type must be ed25519 or rsa, not "dsa"`}, nil},
		{"single-dash long flag with =", []string{"create-key", "-type=dsa"}, ExitUsage, nil, []string{`not "dsa"`}, nil},
		{"single-dash password flags both read", []string{"-t", nowhere, "backup", "-password", "abcdefghij", "-password-file", pwFile, "-wait"}, ExitUsage, nil,
			[]string{"give the password one way only"}, nil},
		{"double-dash one-letter flag", []string{"decrypt", missing, "--o", "out"}, ExitNotFound, nil, []string{"no such file"}, nil},
		{"single-dash long help", []string{"restore", "-help"}, ExitOK, []string{"usage: a0cli -t HOST [-p PORT] restore"}, nil, nil},
		{"set-as-backup takes --force", []string{"set-as-backup", "/dev/x", "--force", "-t", nowhere}, ExitConn, nil, nil, []string{"unknown"}},
		{"set-as-backup takes force", []string{"-t", nowhere, "set-as-backup", "/dev/x", "force"}, ExitConn, nil, nil, nil},
		{"set-as-backup refuses another word", []string{"-t", nowhere, "set-as-backup", "/dev/x", "please"}, ExitUsage, nil, []string{"set-as-backup <device> [force]"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := helpEnv(t)
			env.Home = home
			code := Main(ctx, tc.args, env)
			if code != tc.code {
				t.Fatalf("a0cli %v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out, errb)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(errb.String(), s) {
					t.Errorf("stderr has %q:\n%s", s, errb)
				}
			}
		})
	}
}

// TestHelpSaysPasswordSourcesExclusive: `a0cli help backup` says what the
// code does, two password sources are refused (issue 28 point 9).
func TestHelpSaysPasswordSourcesExclusive(t *testing.T) {
	for _, cmd := range []string{"backup", "restore", "verify", "decrypt", "restore-sensitive"} {
		env, out, _ := helpEnv(t)
		if code := Main(context.Background(), []string{"help", cmd}, env); code != ExitOK {
			t.Fatalf("help %s: exit %d", cmd, code)
		}
		if strings.Contains(out.String(), "first found wins") || !strings.Contains(out.String(), "one way only") {
			t.Errorf("help %s does not say the sources exclude one another:\n%s", cmd, out)
		}
	}
}

// TestNormaliseArgs: the Go flag forms scripts use become pflag's, and
// nothing else moves: values (even ones that look like flags), positional
// arguments, and everything after "--".
func TestNormaliseArgs(t *testing.T) {
	root := newRoot(context.Background(), &Env{Stdout: &strings.Builder{}, Stderr: &strings.Builder{}})
	for _, tc := range []struct{ in, want string }{
		{"backup -password P -wait", "backup --password P --wait"},
		{"backup --password -wait", "backup --password -wait"},
		{"backup -password=P -wait=true", "backup --password=P --wait=true"},
		{"-target h -port 1 backup-status", "--target h --port 1 backup-status"},
		{"-t h backup-status -target h2", "-t h backup-status --target h2"},
		{"decrypt F --o OUT", "decrypt F -o OUT"},
		{"decrypt F -output OUT", "decrypt F --output OUT"},
		{"decrypt F -oOUT", "decrypt F -oOUT"},
		{"restore -help", "restore --help"},
		{"restore -ns a.b -ns c.d F", "restore --ns a.b --ns c.d F"},
		{"restore -- -password", "restore -- -password"},
		{"create-key -type rsa -force", "create-key --type rsa --force"},
		{"backup -wiat", "backup -wiat"},
		{"-t -wait backup", "-t -wait backup"},
		{"recover -sensitive S -backup B -max-age-gap 1h", "recover --sensitive S --backup B --max-age-gap 1h"},
		// -backup is recover's flag, not restore's: left for pflag to refuse.
		{"restore -backup B", "restore -backup B"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := strings.Join(normaliseArgs(root, strings.Fields(tc.in)), " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCompletionDirectives: what `a0cli __complete` (the callback of every
// completion script) answers where a file is expected: file paths (cobra's
// directive :0, the shell's own file completion), and no flags; elsewhere
// no files (:4).
func TestCompletionDirectives(t *testing.T) {
	const files, noFiles = ":0", ":4"
	for _, tc := range []struct {
		args      string
		directive string
	}{
		{"verify ", files},
		{"decrypt ", files},
		{"restore ", files},
		{"-t n1 restore ", files},
		{"restore-sensitive ", files},
		{"recover --sensitive ", files},
		{"recover --backup ", files},
		{"recover --sensitive-password-file ", files},
		{"backup --password-file ", files},
		{"verify F --password-file ", files},
		{"verify F --identity ", files},
		{"decrypt F -o ", files},
		{"backup-retrieve --output ", files},
		{"backup ", noFiles},
		{"backup --password ", noFiles},
		{"backup --to ", noFiles},
		{"backup-status ", noFiles},
		{"set-as-backup ", noFiles},
		{"-t ", noFiles},
		{"", noFiles},
	} {
		t.Run(tc.args, func(t *testing.T) {
			words := append([]string{"__complete"}, strings.Fields(tc.args)...)
			if tc.args == "" || strings.HasSuffix(tc.args, " ") {
				words = append(words, "")
			}
			env, out, errb := helpEnv(t)
			if code := Main(context.Background(), words, env); code != ExitOK {
				t.Fatalf("exit %d: %s", code, errb)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if got := lines[len(lines)-1]; got != tc.directive {
				t.Errorf("directive %s, want %s:\n%s", got, tc.directive, out)
			}
			if tc.directive == files {
				for _, l := range lines[:len(lines)-1] {
					if strings.HasPrefix(l, "-") {
						t.Errorf("offers flag %q where a file is expected", l)
					}
				}
			}
		})
	}
}

// TestOneCommandList: the CLI's commands are api.CommandList's, and the
// node's update-commands reply is the part of it that runs on a node, with
// the CLI's usage (they once disagreed on backup-sensitive and
// restore-status).
func TestOneCommandList(t *testing.T) {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	var listed []string
	for _, c := range api.CommandList {
		listed = append(listed, c.Name)
	}
	if !slices.Equal(names, listed) {
		t.Fatalf("a0cli's commands %v are not api.CommandList %v", names, listed)
	}
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	op.mustOn(n, "update-commands")
	var cached api.Commands
	if err := json.Unmarshal(readFile(t, filepath.Join(op.home, "commands.json")), &cached); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, c := range commands {
		if c.remote {
			want[c.name] = c.usage
		}
	}
	if len(cached.Commands) != len(want) {
		t.Errorf("the node lists %d commands, the CLI runs %d against a node", len(cached.Commands), len(want))
	}
	for _, c := range cached.Commands {
		if want[c.Name] != c.Usage {
			t.Errorf("node: %s %q, CLI: %q", c.Name, c.Usage, want[c.Name])
		}
	}
}

// TestPrivateKeyArgumentNotEchoed (issue 25.16): a private key pasted as an
// argument of a0cli (`--to "$(cat id_a0)"`, or where a flag's value or a
// file goes) is refused (exit 2) naming the mistake, before any parser or
// node quotes it: nothing is sent, no line of it is printed.
func TestPrivateKeyArgumentNotEchoed(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	env, out, errb := helpEnv(t)
	env.Home = home
	if code := Main(ctx, []string{"create-key"}, env); code != ExitOK {
		t.Fatalf("create-key: exit %d: %s", code, errb)
	}
	priv, err := os.ReadFile(filepath.Join(home, "id_a0"))
	if err != nil {
		t.Fatal(err)
	}
	key := string(priv)
	for _, args := range [][]string{
		{"-t", "127.0.0.1:1", "backup", "--to", key},
		{"-t", "127.0.0.1:1", "backup", "--to=" + key},
		{"-t", "127.0.0.1:1", "backup", "--tp", key},
		{"verify", key},
	} {
		t.Run(strings.Join(args[:len(args)-1], " "), func(t *testing.T) {
			out.Reset()
			errb.Reset()
			if code := Main(ctx, args, env); code != ExitUsage {
				t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errb)
			}
			if !strings.Contains(errb.String(), "this is a private key") {
				t.Fatalf("stderr does not name the mistake: %s", errb)
			}
			for _, l := range strings.Split(key, "\n") {
				if len(l) > 8 && !strings.HasPrefix(l, "-----") && strings.Contains(out.String()+errb.String(), l) {
					t.Fatalf("the output quotes the key:\n%s%s", out, errb)
				}
			}
		})
	}
}
