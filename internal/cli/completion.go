package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Completion is cobra's: the scripts `a0cli completion SHELL` prints call
// back `a0cli __complete ARGS...`, which answers from the same command tree
// the CLI runs, so a script never offers a command or flag a0cli does not
// take. Where a local file is expected (verify, decrypt, restore and
// restore-sensitive's FILE; --password-file, --identity, -o, recover's
// --sensitive and --backup) the answer is "complete file paths"; where
// something else is expected (a password, a node's path, a name) it is
// "nothing to offer", never the command's flags.

// fileFlags are the flags whose value is a local file.
var fileFlags = map[string]bool{
	"password-file": true, "sensitive-password-file": true, "identity": true,
	"output": true, "sensitive": true, "backup": true,
}

func fileCompletion(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveDefault
}

func noFileCompletion(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// words completes the first argument from a fixed list.
func words(list ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, w := range list {
			if strings.HasPrefix(w, toComplete) {
				out = append(out, w)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeArgs sets what completion offers for cmd's arguments and for the
// values of its flags.
func completeArgs(cmd *cobra.Command, c command) {
	switch {
	case c.name == "completion":
		cmd.ValidArgsFunction = words("bash", "zsh", "fish")
	case c.name == "backups":
		cmd.ValidArgsFunction = words("prune")
	case c.name == "help":
		var names []string
		for _, c := range commands {
			names = append(names, c.name)
		}
		cmd.ValidArgsFunction = words(names...)
	case c.args == argsFiles:
		cmd.ValidArgsFunction = fileCompletion
	default:
		cmd.ValidArgsFunction = noFileCompletion
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		switch {
		case f.Value.Type() == "bool":
		case fileFlags[f.Name]:
			cmd.RegisterFlagCompletionFunc(f.Name, fileCompletion)
		case f.Name == "type":
			cmd.RegisterFlagCompletionFunc(f.Name, words("ed25519", "rsa"))
		default:
			cmd.RegisterFlagCompletionFunc(f.Name, noFileCompletion)
		}
	})
}

// bashPrelude stands in for the one function of the bash-completion package
// that cobra's bash script needs, when that package is not loaded: the
// script then works in a bare bash too, as a0cli's did before cobra.
const bashPrelude = `# a0cli completion for bash: source it, or put it in /etc/bash_completion.d/a0cli
if ! declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
_get_comp_words_by_ref() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -n) shift ;;
            cur) cur="${COMP_WORDS[COMP_CWORD]}" ;;
            prev) prev="${COMP_WORDS[COMP_CWORD-1]}" ;;
            words) words=("${COMP_WORDS[@]}") ;;
            cword) cword=$COMP_CWORD ;;
        esac
        shift
    done
}
fi
`

func runCompletionCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) != 1 {
		return usagef("usage: completion bash|zsh|fish")
	}
	root := newRoot(ctx, env)
	switch args[0] {
	case "bash":
		fmt.Fprint(env.Stdout, bashPrelude)
		return root.GenBashCompletionV2(env.Stdout, true)
	case "zsh":
		return root.GenZshCompletion(env.Stdout)
	case "fish":
		return root.GenFishCompletion(env.Stdout, true)
	}
	return usagef("completion: unknown shell %q: bash, zsh or fish", args[0])
}
