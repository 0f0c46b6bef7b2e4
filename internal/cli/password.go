package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

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

func (p *PasswordOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&p.Password, "password", "", "")
	fs.StringVar(&p.PasswordFile, "password-file", "", "")
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
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return "", usagef("cannot read password file: %v", err)
		}
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
