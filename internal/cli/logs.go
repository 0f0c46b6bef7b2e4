package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
)

// LogsOptions are the options of logs.
type LogsOptions struct {
	Since  string
	Level  string
	Job    string
	Follow bool
	JSON   bool
	Tail   int
}

// logsPoll is how often logs -f asks the node for new records.
const logsPoll = time.Second

func logsFlags(fs *pflag.FlagSet) runFunc {
	var o LogsOptions
	fs.StringVar(&o.Since, "since", "", "records of the last `D` (10m, 2h) or since a time (2026-12-06T07:30:00Z)")
	fs.StringVar(&o.Level, "level", "", "records at or above `L`: debug, info, warn, error")
	fs.StringVar(&o.Job, "job", "", "records of job `ID` (KIND@STARTED, as the records show it) or of every job of a kind (backup, restore, ...)")
	fs.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new records until interrupted")
	fs.BoolVar(&o.JSON, "json", false, "print each record as one JSON line")
	fs.IntVar(&o.Tail, "tail", 100, "at most the last `N` matching records (0: all the node keeps)")
	return func(ctx context.Context, env *Env, _ []string) error { return runLogs(ctx, env, o, time.Now()) }
}

// logsRequest checks the options and makes the node's request.
func logsRequest(o LogsOptions, now time.Time) (api.LogsRequest, error) {
	req := api.LogsRequest{Job: o.Job, Tail: o.Tail}
	if o.Tail < 0 {
		return req, usagef("--tail: want a count, 0 for all, got %d", o.Tail)
	}
	if o.Level != "" {
		if _, err := api.ParseLogLevel(o.Level); err != nil {
			return req, usagef("--level: unknown level %q: want one of %s", o.Level, strings.Join(api.LogLevels, ", "))
		}
		req.Level = strings.ToLower(o.Level)
	}
	if o.Since != "" {
		if d, err := time.ParseDuration(o.Since); err == nil && d >= 0 {
			req.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, o.Since); err == nil {
			req.Since = t
		} else {
			return req, usagef("--since: want a duration (10m, 2h) or an RFC 3339 time (2026-12-06T07:30:00Z), got %q", o.Since)
		}
	}
	return req, nil
}

func runLogs(ctx context.Context, env *Env, o LogsOptions, now time.Time) error {
	req, err := logsRequest(o, now)
	if err != nil {
		return err
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	for first := true; ; first = false {
		var out api.LogsReply
		if err := c.JSON(ctx, http.MethodGet, api.PathLogs+"?"+req.Query().Encode(), nil, &out); err != nil {
			if !first && ctx.Err() != nil {
				return nil // -f ends with Ctrl-C
			}
			return err
		}
		if first && out.LeftOff > 0 && !o.JSON {
			fmt.Fprintf(env.Stderr, "(%d earlier matching records not shown: --tail 0 shows all)\n", out.LeftOff)
		}
		for _, r := range out.Records {
			if err := printLogRecord(env.Stdout, r, o.JSON); err != nil {
				return err
			}
		}
		if !o.Follow {
			return nil
		}
		// Following: every new record, however many.
		req.After, req.Tail = out.Next, 0
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logsPoll):
		}
	}
}

// printLogRecord prints a record as the agent's text log does (time, level,
// message, key=value...), or as one flat JSON object.
func printLogRecord(w io.Writer, r api.LogRecord, asJSON bool) error {
	if asJSON {
		var b bytes.Buffer
		b.WriteByte('{')
		field := func(k, v string) {
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(v)
			b.Write(kb)
			b.WriteByte(':')
			b.Write(vb)
		}
		field("time", r.Time.UTC().Format(time.RFC3339Nano))
		field("level", strings.ToUpper(r.Level))
		field("msg", r.Msg)
		if r.Job != "" {
			field("job", r.Job)
		}
		for _, a := range r.Attrs {
			k := a.Key
			if k == "time" || k == "level" || k == "msg" || k == "job" {
				k = "attr." + k
			}
			field(k, a.Value)
		}
		b.WriteString("}\n")
		_, err := w.Write(b.Bytes())
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), strings.ToUpper(r.Level), logValue(r.Msg))
	for _, a := range r.Attrs {
		fmt.Fprintf(&b, " %s=%s", a.Key, logValue(a.Value))
	}
	if r.Job != "" {
		fmt.Fprintf(&b, " job=%s", r.Job)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// logValue quotes a value when it is empty or holds spaces, quotes, '=' or
// control characters, as slog's text handler does.
func logValue(s string) string {
	if s == "" || strings.ContainsAny(s, " \"=\t\r\n\\") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}
