package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// completionCommand is what a completion script knows of one command.
type completionCommand struct {
	name, summary string
	flags         []string // "--wait", "-o"...
}

// completionTable is built from the command table and each command's own
// flag set, so a script never lists a flag the CLI does not take.
func completionTable(ctx context.Context, env *Env) ([]completionCommand, error) {
	var out []completionCommand
	for _, c := range commands {
		fs, err := commandFlags(ctx, env, c)
		if err != nil {
			return nil, err
		}
		cc := completionCommand{name: c.name, summary: c.summary}
		for _, l := range flagLines(c.name, fs) {
			cc.flags = append(cc.flags, l.names...)
		}
		cc.flags = append(cc.flags, "--help")
		sort.Strings(cc.flags)
		out = append(out, cc)
	}
	return out, nil
}

var globalFlags = []string{"-t", "--target", "-p", "--port", "-V", "--version", "-h", "--help"}

func runCompletionCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) != 1 {
		return usagef("usage: completion bash|zsh|fish")
	}
	table, err := completionTable(ctx, env)
	if err != nil {
		return err
	}
	switch args[0] {
	case "bash":
		writeBashCompletion(env.Stdout, table, false)
	case "zsh":
		writeBashCompletion(env.Stdout, table, true)
	case "fish":
		writeFishCompletion(env.Stdout, table)
	default:
		return usagef("completion: unknown shell %q: bash, zsh or fish", args[0])
	}
	return nil
}

func writeBashCompletion(w io.Writer, table []completionCommand, zsh bool) {
	var names []string
	for _, c := range table {
		names = append(names, c.name)
	}
	if zsh {
		fmt.Fprintln(w, "#compdef a0cli")
		fmt.Fprintln(w, "# a0cli completion for zsh: source it, or put it in a directory of $fpath as _a0cli")
		fmt.Fprintln(w, "autoload -U +X bashcompinit && bashcompinit")
	} else {
		fmt.Fprintln(w, "# a0cli completion for bash: source it, or put it in /etc/bash_completion.d/a0cli")
	}
	fmt.Fprintf(w, `_a0cli() {
    local cur cmd i
    cur="${COMP_WORDS[COMP_CWORD]}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -t|--target|-p|--port) ((i++)) ;;
            -*) ;;
            *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    if [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "%s %s" -- "$cur"))
        return 0
    fi
    case "$cmd" in
`, strings.Join(names, " "), strings.Join(globalFlags, " "))
	for _, c := range table {
		words := strings.Join(c.flags, " ")
		switch c.name {
		case "help":
			words = strings.Join(names, " ")
		case "completion":
			words = "bash zsh fish"
		}
		fmt.Fprintf(w, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c.name, words)
	}
	fmt.Fprint(w, `    esac
    if [[ ${#COMPREPLY[@]} -eq 0 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}
complete -o filenames -F _a0cli a0cli
`)
}

func writeFishCompletion(w io.Writer, table []completionCommand) {
	fmt.Fprintln(w, "# a0cli completion for fish: put it in ~/.config/fish/completions/a0cli.fish")
	var names []string
	for _, c := range table {
		names = append(names, c.name)
	}
	fmt.Fprintln(w, "complete -c a0cli -s t -l target -r -d 'node host name or IP'")
	fmt.Fprintln(w, "complete -c a0cli -s p -l port -r -d 'node port'")
	fmt.Fprintln(w, "complete -c a0cli -s V -l version -d 'print the version'")
	for _, c := range table {
		fmt.Fprintf(w, "complete -c a0cli -f -n '__fish_use_subcommand' -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range table {
		switch c.name {
		case "help":
			fmt.Fprintf(w, "complete -c a0cli -f -n '__fish_seen_subcommand_from help' -a %s\n", fishQuote(strings.Join(names, " ")))
			continue
		case "completion":
			fmt.Fprintln(w, "complete -c a0cli -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'")
			continue
		}
		for _, f := range c.flags {
			opt := "-l " + strings.TrimPrefix(f, "--")
			if !strings.HasPrefix(f, "--") {
				opt = "-o " + strings.TrimPrefix(f, "-")
			}
			fmt.Fprintf(w, "complete -c a0cli -n '__fish_seen_subcommand_from %s' %s\n", c.name, opt)
		}
	}
}

// fishQuote quotes s for fish: single quotes, with \ and ' escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
