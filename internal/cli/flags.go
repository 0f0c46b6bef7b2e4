package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// normaliseArgs rewrites the flag forms a0cli took before cobra into the
// ones pflag parses, so that scripts keep working: Go's flag package read
// -password P, -wait and --o FILE, where pflag wants --password, --wait and
// -o. Only names the command (or the global flags) declares are rewritten,
// flag values are left alone, and nothing after "--" is touched.
func normaliseArgs(root *cobra.Command, args []string) []string {
	global := root.PersistentFlags()
	// The command: the first word that is neither a flag nor a global
	// flag's value.
	var cmd *cobra.Command
	for i := 0; i < len(args) && cmd == nil; i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if f, inline, ok := flagOf(global, a); ok {
			if f != nil && !inline && f.NoOptDefVal == "" {
				i++
			}
			continue
		}
		for _, c := range root.Commands() {
			if c.Name() == a {
				cmd = c
			}
		}
		if cmd == nil {
			break
		}
	}
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.AddFlagSet(global)
	if cmd != nil {
		fs.AddFlagSet(cmd.Flags())
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		f, inline, ok := flagOf(fs, a)
		if !ok {
			out = append(out, a)
			continue
		}
		if f != nil {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !strings.HasPrefix(a, "--") && len(name) > 1:
				a = "-" + a // -password → --password
			case strings.HasPrefix(a, "--") && len(name) == 1:
				a = a[1:] // --o → -o
			}
		}
		out = append(out, a)
		// A value given as the next word stays as it is, even "-wait".
		if f != nil && !inline && f.NoOptDefVal == "" && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

// flagOf says whether a is a flag (ok) and, if fs declares it under the
// name it is written with (long, by one dash or two, or a shorthand), which
// one and whether its value is inline (--name=value).
func flagOf(fs *pflag.FlagSet, a string) (f *pflag.Flag, inline, ok bool) {
	if len(a) < 2 || a[0] != '-' {
		return nil, false, false
	}
	name, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
	if name == "" {
		return nil, false, true
	}
	if f = fs.Lookup(name); f == nil && len(name) == 1 {
		f = fs.ShorthandLookup(name)
	}
	return f, inline, true
}

// flagError turns pflag's parse errors into a usage error that names the
// flag as it was typed and suggests the nearest one the command takes.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return usagef("%s: %v", cmd.Name(), err)
	}
	typed, name := "--"+ne.GetSpecifiedName(), ne.GetSpecifiedName()
	if sh := ne.GetSpecifiedShortnames(); sh != "" {
		// -wiat: pflag reads shorthands; a0cli's users mean a long name.
		typed, name = "-"+sh, sh
		if len(sh) == 1 {
			name = ""
		}
	}
	var near []string
	if name != "" {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.HasPrefix(f.Name, name) || levenshtein(name, f.Name) <= 2 {
				near = append(near, "--"+f.Name)
			}
		})
	}
	where := cmd.Name()
	if !cmd.HasParent() {
		where = "a0cli"
	}
	return usagef("%s: unknown flag %s%s", where, typed, didYouMean(near))
}

// suggestCommands are the commands near a mistyped name: within two edits,
// or starting with it.
func suggestCommands(name string) []string {
	var near []string
	for _, c := range commands {
		if strings.HasPrefix(c.name, name) || levenshtein(name, c.name) <= 2 {
			near = append(near, c.name)
		}
	}
	return near
}

// didYouMean is the tail of an error that suggests names, or "".
func didYouMean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "; did you mean " + names[0] + "?"
	}
	return "; did you mean one of " + strings.Join(names, ", ") + "?"
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
