package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
)

// PITRStatusOptions are the options of pitr-status.
type PITRStatusOptions struct{ JSON bool }

func pitrStatusFlags(fs *pflag.FlagSet) runFunc {
	var o PITRStatusOptions
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	return func(ctx context.Context, env *Env, _ []string) error { return runPITRStatus(ctx, env, o) }
}

func runPITRStatus(ctx context.Context, env *Env, o PITRStatusOptions) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw struct {
		Message   string          `json:"message"`
		Arguments json.RawMessage `json:"arguments,omitempty"`
	}
	if err := c.JSON(ctx, http.MethodGet, api.PathPITRStatus, nil, &raw); err != nil {
		return err
	}
	var st api.PITRStatus
	if len(raw.Arguments) > 0 {
		if err := json.Unmarshal(raw.Arguments, &st); err != nil {
			return fmt.Errorf("pitr-status: the node's reply: %w", err)
		}
	}
	if o.JSON {
		msg := api.Message{Message: raw.Message}
		if len(raw.Arguments) > 0 {
			msg.Arguments = st
		}
		return printCompact(env, msg)
	}
	printPITRStatus(env.Stdout, raw.Message, st)
	return nil
}

// printPITRStatus says what can be restored, first.
func printPITRStatus(w io.Writer, message string, st api.PITRStatus) {
	fmt.Fprintln(w, message)
	if message == api.MessagePITRNotConfigured {
		fmt.Fprintln(w, `turn it on with "pitr": {"slice": "10s"} and "recipients" in the agent's config`)
		return
	}
	lag := "unknown"
	if st.LagSeconds >= 0 {
		lag = (time.Duration(st.LagSeconds) * time.Second).String()
	}
	if len(st.Windows) == 0 {
		fmt.Fprintln(w, "restorable: nothing yet (a restore to a time needs a backup taken while the archive runs: run backup)")
	}
	const day = "2006-01-02 15:04:05"
	for _, win := range st.Windows {
		base := win.Base
		if win.Remote {
			base = "remote copy " + base // restore --to-time serves it from the store
		}
		fmt.Fprintf(w, "restorable: %s (base %s) .. %s UTC, lag %s\n", win.From.UTC().Format(day), base, win.To.UTC().Format(day), lag)
	}
	if st.Since != nil && st.Newest != nil {
		fmt.Fprintf(w, "archive:    %d slices, %s, %s .. %s UTC\n", st.Slices, human(st.Bytes), st.Since.UTC().Format(day), st.Newest.UTC().Format(day))
	} else {
		fmt.Fprintln(w, "archive:    empty (no write since it started)")
	}
	if st.Dir != "" {
		fmt.Fprintf(w, "directory:  %s\n", st.Dir)
	}
	for _, g := range st.Gaps {
		to := "not ended yet"
		if g.To != nil {
			to = g.To.UTC().Format(day) + " UTC"
		}
		fmt.Fprintf(w, "GAP:        %s UTC .. %s: %s\n", g.From.UTC().Format(day), to, g.Reason)
	}
	if r := st.Remote; r != nil {
		fmt.Fprintf(w, "remote:     %s, %d slices waiting on the device\n", r.Location, r.Pending)
		if r.Error != "" {
			fmt.Fprintf(w, "remote error: %s\n", r.Error)
		}
	}
	if st.Error != "" {
		fmt.Fprintf(w, "error:      %s\n", st.Error)
	}
}
