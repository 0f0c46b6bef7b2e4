package cli

import (
	"bytes"
	"encoding/json"
	"github.com/a0backup/a0/internal/bytesize"
)

// printCompact prints v as one compact JSON line, the original's output.
func printCompact(env *Env, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := env.Stdout.Write(buf.Bytes())
	return err
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// human formats a byte count for people (SI: MB as in the benchmarks).
func human(n int64) string { return bytesize.SI(n) }
