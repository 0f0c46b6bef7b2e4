package cli

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// PasswordOptions are the password sources shared by every command that
// needs one. The positional form and --password exist because the original
// had them; they leak into shell history and process listings, so the file,
// the environment and the prompt are preferred.
type PasswordOptions struct {
	Password     string
	PasswordFile string
	// Positional is the original's `backup <password>` form.
	Positional string
	// EnvVars are read in order when no other source is given.
	EnvVars []string
	// Prompt is what a terminal prompt says ("Password: " when empty).
	Prompt string
}

func (p *PasswordOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&p.Password, "password", "", "the `PASSWORD` (visible in shell history and process listings: prefer --password-file or the environment)")
	fs.StringVar(&p.PasswordFile, "password-file", "", "read the password from `FILE` (one trailing newline is ignored)")
}

// MinPasswordLen is the shortest password a backup accepts.
const MinPasswordLen = 8

// resolve returns the password from the first source given. confirm asks
// twice at a prompt (for a new backup, where a typo would make it useless).
func (p *PasswordOptions) resolve(env *Env, confirm bool) (string, error) {
	given := 0
	for _, s := range []string{p.Password, p.PasswordFile, p.Positional} {
		if s != "" {
			given++
		}
	}
	if given > 1 {
		return "", usagef("give the password one way only (argument, --password or --password-file)")
	}
	switch {
	case p.Password != "":
		return p.Password, nil
	case p.Positional != "":
		return p.Positional, nil
	case p.PasswordFile != "":
		if err := checkPasswordFileMode(env, p.PasswordFile); err != nil {
			return "", err
		}
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return "", usagef("cannot read password file: %v", err)
		}
		defer clear(b)
		// One trailing newline is what editors and echo add; it is not
		// part of the password.
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", usagef("password file %s is empty", p.PasswordFile)
		}
		return s, nil
	}
	for _, name := range p.EnvVars {
		if v := env.Getenv(name); v != "" {
			return v, nil
		}
	}
	if !env.Interactive && env.PromptPassword == nil {
		return "", usagef("no password given: use --password-file FILE, $%s, or run on a terminal to be asked", p.EnvVars[0])
	}
	prompt := env.PromptPassword
	if prompt == nil {
		prompt = terminalPrompt(env)
	}
	ask := p.Prompt
	if ask == "" {
		ask = "Password: "
	}
	pw, err := prompt(ask)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := prompt("Password (again): ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usagef("the passwords do not match")
		}
	}
	return pw, nil
}

// checkPasswordFileMode treats a password file as ssh treats a private key:
// one that others may read, or that anyone but its owner may write (and so
// replace with a password they know), is refused; one its group may read
// is used with a warning.
func checkPasswordFileMode(env *Env, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return usagef("cannot read password file: %v", err)
	}
	if runtime.GOOS == "windows" {
		return nil // no Unix modes to check
	}
	perm := st.Mode().Perm()
	if perm&0o026 != 0 {
		return usagef("password file %s is accessible by others (mode %04o): run chmod 600 %s", path, perm, path)
	}
	if perm&0o040 != 0 {
		fmt.Fprintf(env.Stderr, "a0cli: warning: password file %s is readable by its group (mode %04o); chmod 600 it\n", path, perm)
	}
	return nil
}

func terminalPrompt(env *Env) func(string) (string, error) {
	return func(prompt string) (string, error) {
		fmt.Fprint(env.Stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
}

func checkStrength(pw string) error {
	if len(pw) < MinPasswordLen {
		return usagef("password too short: at least %d characters", MinPasswordLen)
	}
	return nil
}
