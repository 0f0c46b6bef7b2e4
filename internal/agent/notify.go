package agent

import (
	"encoding/json"
	"os"

	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/version"
	"github.com/a0backup/a0/internal/webhook"
)

// openUnattended sets up what runs without an operator: the schedule and
// the webhook.
func (a *Agent) openUnattended() error {
	if err := a.openServices(); err != nil {
		return err
	}
	// Every job's end is logged (logs.go), and posted with a webhook.
	a.jobs.OnEnd(a.jobEnded)
	if a.cfg.Webhook == "" {
		return nil
	}
	p, err := webhook.New(webhook.Config{URL: a.cfg.Webhook, CAFile: a.cfg.WebhookCAFile, Logger: a.log})
	if err != nil {
		return err
	}
	a.hook = p
	a.log.Info("webhook on", "webhook", p.Where())
	return nil
}

// jobEnded logs a job's end and posts it.
func (a *Agent) jobEnded(rec job.Record) {
	a.logJobEnd(rec)
	ev := webhook.Event{Event: "job_done", Kind: rec.Kind, State: rec.State, Started: rec.Started,
		Finished: rec.Finished, Code: rec.Code}
	if rec.State == job.StateFailed {
		ev.Event, ev.Error = "job_failed", rec.Error
	}
	if rec.Kind == kindBackup || rec.Kind == kindBackupSensitive {
		// Only these fields of the result: nothing else a job may carry
		// is sent.
		var res struct {
			webhook.Backup
			Scheduled bool `json:"scheduled"`
		}
		if len(rec.Result) > 0 && json.Unmarshal(rec.Result, &res) == nil {
			ev.Scheduled = res.Scheduled
			if res.Name != "" {
				b := res.Backup
				ev.Backup = &b
			}
		}
	}
	a.notify(ev)
}

// notify posts ev when a webhook is configured; it never blocks.
func (a *Agent) notify(ev webhook.Event) {
	if a.hook == nil {
		return
	}
	ev.Node, _ = os.Hostname()
	ev.AgentVersion = version.Version
	a.hook.Post(ev)
}
