package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
)

// cancelWait bounds how long POST /v1/cancel waits for the cancelled job to
// record its end: a job stops at its next read or write of the context,
// and a restore then counts what it wrote.
const cancelWait = 2 * time.Minute

// cancelJob is POST /v1/cancel (issue 28.1): it cancels the running job
// and answers once the job has ended, with its record, which says what the
// job left: a backup removed its partial file; a restore stopped before its
// first write left the database as it was, one stopped after it left it
// partly restored (the restore marker stays, naming what was written).
// restore-sensitive is not cancelled: it writes each file atomically and
// takes the keys into use as one step.
func (a *Agent) cancelJob(w http.ResponseWriter, r *http.Request) error {
	var req api.CancelRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	kind, started, _ := a.jobs.Running()
	switch {
	case kind == "":
		return api.Errorf(api.CodeNotFound, "no job is running on this node: nothing to cancel")
	case req.Kind != "" && req.Kind != kind:
		return api.Errorf(api.CodeJobRunning, "the job running on this node is a %s, not a %s: nothing cancelled (`a0cli cancel` cancels whatever runs)", kind, req.Kind)
	case kind == kindRestoreSensitive:
		return api.Errorf(api.CodeJobRunning, "restore-sensitive cannot be cancelled: it writes each file atomically and ends in seconds")
	}
	if got := a.jobs.Cancel(); got != kind {
		// It ended (and maybe another started) between the two looks.
		return api.Errorf(api.CodeNotFound, "the %s job ended before it could be cancelled: see its status", kind)
	}
	a.log.Warn("job cancelled", "kind", kind, "key", r.Context().Value(keyNameKey))
	ctx, cancel := context.WithTimeout(r.Context(), cancelWait)
	defer cancel()
	if err := a.jobs.Wait(ctx); err != nil {
		return writeJSON(w, http.StatusAccepted, api.Message{Message: "Job cancelling",
			Arguments: api.CancelReply{Kind: kind, Started: started, State: job.StateRunning,
				Error: "the job has not stopped yet: follow it with its status command"}})
	}
	rec, err := a.jobs.Last(kind)
	if err != nil {
		return err
	}
	out := api.CancelReply{Kind: kind, Started: started}
	if rec != nil {
		out.Ended, out.State, out.Code, out.Error, out.Result = rec.Finished, rec.State, rec.Code, rec.Error, rec.Result
	}
	msg := "Job cancelled"
	if out.State == job.StateDone {
		msg = "Job finished before the cancel reached it"
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: msg, Arguments: out})
}
