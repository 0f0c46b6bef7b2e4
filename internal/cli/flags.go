package cli

import (
	"github.com/spf13/cobra"

	"github.com/a0backup/a0/internal/cmdline"
)

// flagError turns pflag's parse errors into a usage error that names the
// flag as it was typed and suggests the nearest ones the command takes.
func flagError(cmd *cobra.Command, err error) error {
	where := cmd.Name()
	if !cmd.HasParent() {
		where = "a0cli"
	}
	typed, name, ok := cmdline.UnknownFlag(err)
	if !ok {
		return usagef("%s: %v", where, err)
	}
	var near []string
	if name != "" {
		near = cmdline.NearFlags(cmd, name)
	}
	return usagef("%s: unknown flag %s%s", where, typed, cmdline.DidYouMean(near))
}

// suggestCommands are the commands near a mistyped name.
func suggestCommands(name string) []string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return cmdline.Near(name, names)
}

func normaliseArgs(root *cobra.Command, args []string) []string { return cmdline.Normalise(root, args) }

func didYouMean(names []string) string { return cmdline.DidYouMean(names) }
