package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/a0backup/a0/internal/api"
)

// printSchedule is node-status's schedule lines: the schedule, the last
// run and how it ended, the next run.
func printSchedule(w io.Writer, s *api.ScheduleStatus) {
	if s == nil {
		fmt.Fprintln(w, "schedule:       none")
		return
	}
	repl := "a run with a backup stored is skipped"
	if s.Replace {
		repl = "replaces the stored backup once the new one is verified"
	}
	fmt.Fprintf(w, "schedule:       %s, encrypted to %d recipient(s); %s\n", s.Schedule, s.Recipients, repl)
	if r := s.LastRun; r != nil {
		line := fmt.Sprintf("%s %s", r.Started.UTC().Format(time.RFC3339), r.Outcome)
		switch {
		case r.Outcome == "done" && r.Replaced != "":
			line += fmt.Sprintf(": %s (replaced %s)", r.Name, r.Replaced)
		case r.Outcome == "done":
			line += ": " + r.Name
		case r.Reason != "":
			line += ": " + r.Reason
		}
		if r.Missed > 0 {
			line += fmt.Sprintf(" [%d run(s) missed while the agent was down, run once]", r.Missed)
		}
		fmt.Fprintf(w, "last run:       %s\n", line)
	} else {
		fmt.Fprintln(w, "last run:       none yet")
	}
	if s.NextRun != nil {
		fmt.Fprintf(w, "next run:       %s\n", s.NextRun.UTC().Format(time.RFC3339))
	}
}
