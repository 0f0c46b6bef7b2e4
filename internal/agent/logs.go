package agent

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/logring"
)

// jobIDKey names the job of a record logged outside it (its end).
const jobIDKey = "job_id"

// openLog tees the agent's log into a bounded ring in memory (the last
// 10,000 records or 8 MiB), which GET /v1/logs serves (`a0cli logs`): an
// operator reads why a job failed without a shell on the node. The log
// never holds a secret, so neither does the ring.
func (a *Agent) openLog() {
	a.logRing = logring.New(0, 0)
	a.log = slog.New(a.logRing.Handler(a.cfg.Logger.Handler(), logring.Options{
		Job:    a.currentJob,
		JobKey: jobIDKey,
		Skip:   isLogsRequest,
	}))
}

// currentJob is the running job as the log names it: "KIND@STARTED".
func (a *Agent) currentJob() string {
	if a.jobs == nil {
		return ""
	}
	kind, started := a.jobs.Current()
	if kind == "" {
		return ""
	}
	return jobID(kind, started)
}

func jobID(kind string, started time.Time) string {
	return kind + "@" + started.UTC().Format(time.RFC3339)
}

// isLogsRequest: the access log's line of a GET /v1/logs stays out of the
// ring, so that following the log does not fill it with its own polls.
func isLogsRequest(r slog.Record) bool {
	if r.Message != "request" {
		return false
	}
	logs := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "path" {
			logs = a.Value.String() == api.PathLogs
			return false
		}
		return true
	})
	return logs
}

// logJobEnd logs how a job ended, with its error: the line `a0cli logs
// --job KIND` shows last.
func (a *Agent) logJobEnd(rec job.Record) {
	attrs := []any{"kind", rec.Kind, "state", rec.State, jobIDKey, jobID(rec.Kind, rec.Started)}
	if rec.Finished != nil {
		attrs = append(attrs, "took", rec.Finished.Sub(rec.Started).Round(time.Millisecond))
	}
	if rec.State == job.StateFailed {
		attrs = append(attrs, "err", rec.Error)
		if rec.Code != "" {
			attrs = append(attrs, "code", rec.Code)
		}
		a.log.Error("job failed", attrs...)
		return
	}
	a.log.Info("job done", attrs...)
}

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

func (a *Agent) logs(w http.ResponseWriter, r *http.Request) error {
	req, err := api.ParseLogsRequest(r.URL.Query())
	if err != nil {
		return err
	}
	f := logring.Filter{After: req.After, Since: req.Since, Job: req.Job, Tail: req.Tail, Level: slog.LevelDebug}
	if req.Level != "" {
		f.Level = logLevels[req.Level]
	}
	recs, leftOff, next := a.logRing.Read(f)
	out := api.LogsReply{Records: make([]api.LogRecord, 0, len(recs)), LeftOff: leftOff, Next: next}
	for _, rec := range recs {
		lr := api.LogRecord{Seq: rec.Seq, Time: rec.Time.UTC(), Level: strings.ToLower(rec.Level.String()), Msg: rec.Msg, Job: rec.Job}
		for _, at := range rec.Attrs {
			lr.Attrs = append(lr.Attrs, api.LogAttr{Key: at.Key, Value: at.Value})
		}
		out.Records = append(out.Records, lr)
	}
	return writeJSON(w, http.StatusOK, out)
}
