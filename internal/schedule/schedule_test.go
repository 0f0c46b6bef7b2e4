package schedule

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want, err string
	}{
		{"every", `{"every": "24h"}`, "every 24h0m0s", ""},
		{"cron", `{"cron": "30 2 * * *"}`, "cron 30 2 * * *", ""},
		{"descriptor", `{"cron": "@daily"}`, "cron @daily", ""},
		{"both", `{"every": "1h", "cron": "30 2 * * *"}`, "", "not both"},
		{"neither", `{}`, "", `give "every"`},
		{"bad duration", `{"every": "daily"}`, "", "not a duration"},
		{"too short", `{"every": "10ms"}`, "", "shorter than"},
		{"bad cron", `{"cron": "61 2 * * *"}`, "", "five fields"},
		{"six fields", `{"cron": "0 30 2 * * *"}`, "", "five fields"},
		{"never", `{"cron": "0 0 30 2 *"}`, "", "never runs"},
		{"unknown key", `{"evry": "24h"}`, "", "unknown field"},
		{"not an object", `"24h"`, "", "want {"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseJSON([]byte(tc.raw))
			if tc.err != "" {
				var se *SpecError
				if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want a SpecError with %q", err, tc.err)
				}
				return
			}
			if err != nil || s.String() != tc.want {
				t.Fatalf("got %v, %v; want %q", s, err, tc.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	every, _ := Parse(Spec{Every: "24h"})
	if got := every.Next(at); !got.Equal(at.Add(24 * time.Hour)) {
		t.Fatalf("every: %v", got)
	}
	c, _ := Parse(Spec{Cron: "CRON_TZ=UTC 30 2 * * *"})
	if got, want := c.Next(at), time.Date(2026, 12, 2, 2, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("cron: %v, want %v", got, want)
	}
	if got, want := c.Next(time.Date(2026, 12, 2, 2, 30, 0, 0, time.UTC)), time.Date(2026, 12, 3, 2, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("cron, strictly after: %v, want %v", got, want)
	}
}

// The missed-run rule: a run on time runs; runs missed while the agent was
// down run once, counted; nothing runs before it is due.
func TestDue(t *testing.T) {
	base := time.Date(2026, 12, 1, 2, 30, 0, 0, time.UTC)
	daily, _ := Parse(Spec{Cron: "CRON_TZ=UTC 30 2 * * *"})
	hourly, _ := Parse(Spec{Every: "1h"})
	for _, tc := range []struct {
		name     string
		s        *Schedule
		now      time.Time
		run      bool
		missed   int
		wantNext time.Time
	}{
		{"cron not yet due", daily, base.Add(23 * time.Hour), false, 0, base.Add(24 * time.Hour)},
		{"cron on time", daily, base.Add(24 * time.Hour), true, 1, base.Add(48 * time.Hour)},
		{"cron down three days", daily, base.Add(72*time.Hour + time.Minute), true, 3, base.Add(96 * time.Hour)},
		{"every not yet due", hourly, base.Add(59 * time.Minute), false, 0, base.Add(time.Hour)},
		{"every on time", hourly, base.Add(time.Hour), true, 1, base.Add(2 * time.Hour)},
		{"every down 10h", hourly, base.Add(10*time.Hour + 30*time.Minute), true, 10, base.Add(11*time.Hour + 30*time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, missed, next := tc.s.Due(base, tc.now)
			if run != tc.run || missed != tc.missed || !next.Equal(tc.wantNext) {
				t.Fatalf("Due = %v %d %v, want %v %d %v", run, missed, next, tc.run, tc.missed, tc.wantNext)
			}
		})
	}
}

func TestStateDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.json")
	s, _ := Parse(Spec{Every: "24h"})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st, err := Open(path, s, t0)
	if err != nil || !st.Since.Equal(t0) || st.Base() != t0 {
		t.Fatalf("open: %+v %v", st, err)
	}
	st.LastRun = &Run{Due: t0.Add(24 * time.Hour), Started: t0.Add(24 * time.Hour), Outcome: OutcomeDone, Name: "x"}
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	// The same schedule later: the last run stands and is the base.
	st2, err := Open(path, s, t0.Add(100*time.Hour))
	if err != nil || st2.LastRun == nil || st2.LastRun.Name != "x" || !st2.Base().Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("reopen: %+v %v", st2, err)
	}
	// Another schedule starts afresh from now, keeping the last run shown.
	other, _ := Parse(Spec{Every: "12h"})
	now := t0.Add(200 * time.Hour)
	st3, err := Open(path, other, now)
	if err != nil || !st3.Base().Equal(now) || st3.LastRun == nil {
		t.Fatalf("new schedule: %+v %v", st3, err)
	}
	// A damaged file is an error, not a fresh start.
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := Open(path, s, now); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("damaged state: %v", err)
	}
}
