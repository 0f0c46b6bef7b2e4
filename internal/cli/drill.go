package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
)

// printDrill is node-status's restore drill lines (issue 29): the last
// drill ("drill: ok at ..., 42 s" / "drill: FAILED at ...: reason"), the
// last success when the last one did not pass, the next one.
func printDrill(w io.Writer, d *api.DrillStatus) {
	fmt.Fprintf(w, "drill:          %s\n", drillLine(d.Last, d.Schedule))
	if l := d.Last; l != nil && l.Outcome != "ok" {
		if s := d.LastSuccess; s != nil {
			fmt.Fprintf(w, "last ok drill:  %s\n", drillLine(s, ""))
		} else {
			fmt.Fprintln(w, "last ok drill:  none yet")
		}
	}
	if d.NextRun != nil {
		fmt.Fprintf(w, "next drill:     %s\n", d.NextRun.UTC().Format(time.RFC3339))
	}
}

func drillLine(r *api.DrillRun, schedule string) string {
	if r == nil {
		return fmt.Sprintf("none yet (%s)", schedule)
	}
	at := r.Started.UTC().Format(time.RFC3339)
	if r.Finished != nil {
		at = r.Finished.UTC().Format(time.RFC3339)
	}
	var line string
	switch r.Outcome {
	case "ok":
		line = fmt.Sprintf("ok at %s, %s (%s)", at, seconds(r.Seconds), r.Backup)
		if r.CompareSeconds > 0 || r.TotalSeconds > 0 {
			// The first figure is the restore's alone (what `backups`
			// predicts from): say what the rest of the drill took.
			line += fmt.Sprintf("; restore %s, compare %s, %s in all", seconds(r.Seconds), seconds(r.CompareSeconds), seconds(r.TotalSeconds))
		}
		if r.Note != "" {
			line += "; " + r.Note
		}
	case "failed":
		line = fmt.Sprintf("FAILED at %s: %s", at, r.Reason)
	case "running":
		line = fmt.Sprintf("running since %s (%s)", at, r.Backup)
	default:
		line = fmt.Sprintf("%s at %s: %s", r.Outcome, at, r.Reason)
	}
	return line
}

// seconds writes a drill's or a prediction's duration: "42 s", "7 min 3 s".
func seconds(s float64) string {
	n := int64(math.Round(s))
	if n < 60 {
		return fmt.Sprintf("%d s", n)
	}
	if n < 3600 {
		return fmt.Sprintf("%d min %d s", n/60, n%60)
	}
	return fmt.Sprintf("%d h %d min", n/3600, n%3600/60)
}

// predictionText is `backups`' restore prediction, labelled as one. A
// restore takes a second at least (never "≈ 0 s"); a restore of an
// uploaded file has no name on the node.
func predictionText(p *api.RestorePrediction) string {
	of := p.Backup
	if of == "" {
		of = "an uploaded file"
	}
	return fmt.Sprintf("restore ≈ %s (predicted from the %s of %s at %s, %s/s)", seconds(max(p.Seconds, 1)), p.From,
		of, p.At.UTC().Format(time.RFC3339), human(int64(p.BytesPerSecond)))
}

// DrillOptions are the options of drill.
type DrillOptions struct {
	Wait bool
}

func drillFlags(fs *pflag.FlagSet) runFunc {
	var o DrillOptions
	fs.BoolVar(&o.Wait, "wait", false, "follow the drill to its end and print its line (exit non-zero when it failed)")
	return func(ctx context.Context, env *Env, pos []string) error {
		if len(pos) > 0 {
			return usagef("drill takes no arguments")
		}
		return RunDrill(ctx, env, o)
	}
}

// RunDrill asks the node for a restore drill now; with Wait it follows it
// (node-status's "drill") to its end and prints node-status's drill line.
func RunDrill(ctx context.Context, env *Env, o DrillOptions) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	status := func() (*api.DrillStatus, error) {
		var st api.NodeStatus
		if err := c.JSON(ctx, http.MethodGet, api.PathNodeStatus, nil, &st); err != nil {
			return nil, err
		}
		return st.Drill, nil
	}
	// The drill before this request, to tell the new one from it.
	var before time.Time
	if o.Wait {
		d, err := status()
		if err != nil {
			return err
		}
		if d != nil && d.Last != nil {
			before = d.Last.Started
		}
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodPost, api.PathDrill, struct{}{}, &raw); err != nil {
		return err
	}
	if !o.Wait {
		_, err = env.Stdout.Write(append(compact(raw), '\n'))
		return err
	}
	for {
		d, err := status()
		if err != nil {
			return err
		}
		// A drill a job preempted runs again after the job: wait on.
		if d != nil && d.Last != nil && d.Last.Started.After(before) && d.Last.Outcome != "running" && !d.Last.Retry {
			fmt.Fprintf(env.Stdout, "drill:          %s\n", drillLine(d.Last, d.Schedule))
			if d.Last.Outcome == "ok" {
				return nil
			}
			code := api.Code(d.Last.Code)
			if code == "" {
				code = api.CodeInternal
			}
			return &api.Error{Code: code, Message: "restore drill " + d.Last.Outcome + ": " + d.Last.Reason}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
