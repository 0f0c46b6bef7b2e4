package agentcmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestHelpForEverySubcommand: every a0agent command, including the ones
// the usage text names, has help: `help CMD`, `CMD --help` and `CMD -h`
// exit 0 and print its usage, each flag with its default, and an example.
func TestHelpForEverySubcommand(t *testing.T) {
	ctx := context.Background()
	known := map[string]bool{}
	for _, s := range subcommands() {
		known[s.name] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^  a0agent ([a-z-]+)`).FindAllStringSubmatch(usage, -1) {
		if !strings.HasPrefix(m[1], "-") && !known[m[1]] {
			t.Errorf("a0agent %s is in the usage but has no help: add it to subcommands() in help.go", m[1])
		}
	}
	for _, s := range subcommands() {
		t.Run(s.name, func(t *testing.T) {
			forms := [][]string{{"help", s.name}}
			if s.name != "help" {
				forms = append(forms, []string{s.name, "--help"}, []string{s.name, "-h"})
			}
			if s.name == "run" {
				forms = [][]string{{"help", "run"}, {"--state-dir", t.TempDir(), "--help"}}
			}
			for _, form := range forms {
				var out, errb bytes.Buffer
				if code := Main(ctx, form, &out, &errb); code != 0 {
					t.Fatalf("%v: exit %d\n%s%s", form, code, out.String(), errb.String())
				}
				text := out.String()
				if !strings.Contains(text, "usage: "+s.usage) || !strings.Contains(text, "example:\n  a0agent") {
					t.Fatalf("%v: no usage or example:\n%s", form, text)
				}
				for _, flag := range regexp.MustCompile(`--[a-z-]+`).FindAllString(s.usage, -1) {
					if !regexp.MustCompile(`(?m)^  ` + flag + `\b.*\(default: [^)]+\)$`).MatchString(text) {
						t.Errorf("%v: flag %s without a line and default:\n%s", form, flag, text)
					}
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"help", "frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("help of an unknown command: exit %d, want 2", code)
	}
}
