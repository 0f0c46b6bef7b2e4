package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
)

// cancelFlags is cancel (kind "": whatever job runs), backup-cancel and
// restore-cancel (only that kind: another one running is refused, exit 4).
func cancelFlags(kind string) func(fs *pflag.FlagSet) runFunc {
	return func(fs *pflag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the node's answer as one JSON line")
		return func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("%s takes no arguments", cancelName(kind))
			}
			return RunCancel(ctx, env, kind, *asJSON)
		}
	}
}

func cancelName(kind string) string {
	if kind == "" {
		return "cancel"
	}
	return kind + "-cancel"
}

// RunCancel cancels the job running on the node and prints what it left
// (the job's record once it stopped): a backup removed its partial file; a
// restore says whether the database is unchanged or partly restored, and
// what it wrote.
func RunCancel(ctx context.Context, env *Env, kind string, asJSON bool) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodPost, api.PathCancel, api.CancelRequest{Kind: kind}, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := env.Stdout.Write(append(compact(raw), '\n'))
		return err
	}
	var out api.Reply[api.CancelReply]
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("decode the node's answer: %w", err)
	}
	a := out.Arguments
	fmt.Fprintf(env.Stdout, "%s: the %s job started %s\n", out.Message, a.Kind, a.Started.UTC().Format("2006-01-02T15:04:05Z"))
	if a.Error != "" {
		fmt.Fprintf(env.Stdout, "the node says: %s\n", a.Error)
	}
	var res api.RestoreResult
	if a.Kind == "restore" && json.Unmarshal(a.Result, &res) == nil && len(res.Written) > 0 {
		fmt.Fprintf(env.Stdout, "written before the cancel (the database is partly restored): %s\n", strings.Join(res.Written, ", "))
	}
	return nil
}
