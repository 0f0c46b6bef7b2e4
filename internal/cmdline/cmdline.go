package cmdline

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Normalise rewrites the flag forms a0cli and a0agent took before cobra into the
// ones pflag parses, so that scripts keep working: Go's flag package read
// -password P, -wait and --o FILE, where pflag wants --password, --wait and
// -o. Only names the command (or the global flags) declares are rewritten,
// flag values are left alone, and nothing after "--" is touched.
func Normalise(root *cobra.Command, args []string) []string {
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
	} else {
		fs.AddFlagSet(root.Flags())
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

// Near are the names near a mistyped one: within two edits, or starting
// with it.
func Near(typed string, names []string) []string {
	var near []string
	for _, n := range names {
		if strings.HasPrefix(n, typed) || Distance(typed, n) <= 2 {
			near = append(near, n)
		}
	}
	return near
}

// NearFlags are the flags of cmd (its own and inherited) near a mistyped
// long name, written --name.
func NearFlags(cmd *cobra.Command, typed string) []string {
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	near := Near(typed, names)
	for i := range near {
		near[i] = "--" + near[i]
	}
	return near
}

// UnknownFlag says which flag a parse error is about, as it was typed
// (--wiat, -wiat), and its long name when it was meant as one ("" for a
// single unknown shorthand); ok is false for other errors.
func UnknownFlag(err error) (typed, name string, ok bool) {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return "", "", false
	}
	typed, name = "--"+ne.GetSpecifiedName(), ne.GetSpecifiedName()
	if sh := ne.GetSpecifiedShortnames(); sh != "" {
		// -wiat: pflag reads shorthands; a0's users meant a long name.
		typed, name = "-"+sh, sh
		if len(sh) == 1 {
			name = ""
		}
	}
	return typed, name, true
}

// DidYouMean is the tail of an error that suggests names, or "".
func DidYouMean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "; did you mean " + names[0] + "?"
	}
	return "; did you mean one of " + strings.Join(names, ", ") + "?"
}

// Distance is the Levenshtein distance between a and b.
func Distance(a, b string) int {
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
