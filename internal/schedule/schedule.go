package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest "every" accepted: a backup dumps the whole
// database, a shorter period is a typo (tests use a few seconds).
const MinEvery = time.Second

// Spec is the config's "schedule" object: exactly one of Every and Cron.
type Spec struct {
	// Every is a Go duration ("24h", "90m"): runs are that far apart,
	// counted from the last run's start.
	Every string `json:"every,omitempty"`
	// Cron is a five-field cron expression ("30 2 * * *": 02:30 every
	// day) in the agent's local time zone, or a descriptor such as
	// "@daily". "CRON_TZ=UTC 30 2 * * *" picks a zone.
	Cron string `json:"cron,omitempty"`
}

// Schedule says when runs are due.
type Schedule struct {
	spec  Spec
	every time.Duration
	cron  cron.Schedule
}

// SpecError is a schedule the config gets wrong.
type SpecError struct{ Msg string }

func (e *SpecError) Error() string { return "schedule: " + e.Msg }

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse checks a Spec. The errors say what to write instead.
func Parse(s Spec) (*Schedule, error) {
	s.Every, s.Cron = strings.TrimSpace(s.Every), strings.TrimSpace(s.Cron)
	switch {
	case s.Every != "" && s.Cron != "":
		return nil, &SpecError{`give either "every" or "cron", not both`}
	case s.Every != "":
		d, err := time.ParseDuration(s.Every)
		if err != nil {
			return nil, &SpecError{fmt.Sprintf(`"every": %q is not a duration (write "24h", "12h", "90m")`, s.Every)}
		}
		if d < MinEvery {
			return nil, &SpecError{fmt.Sprintf(`"every": %s is shorter than %s`, d, MinEvery)}
		}
		return &Schedule{spec: s, every: d}, nil
	case s.Cron != "":
		c, err := parser.Parse(s.Cron)
		if err != nil {
			return nil, &SpecError{fmt.Sprintf(`"cron": %q: %v (five fields: minute hour day-of-month month day-of-week, such as "30 2 * * *")`, s.Cron, err)}
		}
		// An expression that never fires ("0 0 30 2 *") is an error too.
		if c.Next(time.Now()).IsZero() {
			return nil, &SpecError{fmt.Sprintf(`"cron": %q never runs`, s.Cron)}
		}
		return &Schedule{spec: s, cron: c}, nil
	}
	return nil, &SpecError{`give "every" (such as "24h") or "cron" (such as "30 2 * * *")`}
}

// ParseJSON parses the config's raw "schedule" value, refusing unknown keys.
func ParseJSON(raw json.RawMessage) (*Schedule, error) {
	var s Spec
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, &SpecError{fmt.Sprintf(`want {"every": "24h"} or {"cron": "30 2 * * *"}: %v`, err)}
	}
	return Parse(s)
}

// Spec is what the schedule was parsed from.
func (s *Schedule) Spec() Spec { return s.spec }

// String is how node-status shows it: "every 24h0m0s" or "cron 30 2 * * *".
func (s *Schedule) String() string {
	if s.cron != nil {
		return "cron " + s.spec.Cron
	}
	return "every " + s.every.String()
}

// Next is the first run strictly after t.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.cron != nil {
		return s.cron.Next(t)
	}
	return t.Add(s.every)
}

// maxCount bounds the count of missed runs (a minute-cron down for years).
const maxCount = 100000

// Due is the missed-run rule. base is when the schedule last ran (or, never
// having run, when it was set up); now is the time of the check. When the
// first run after base is not yet due, Due returns it as next, with run
// false. When it is due (its time is at or before now), run is true: the
// agent runs once now, however many runs fell between base and now;
// missed counts them (1 for a run on time, more after downtime), and next
// is the first run after now.
func (s *Schedule) Due(base, now time.Time) (run bool, missed int, next time.Time) {
	first := s.Next(base)
	if first.IsZero() {
		return false, 0, time.Time{}
	}
	if first.After(now) {
		return false, 0, first
	}
	t := first
	for missed = 1; missed < maxCount; missed++ {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			break
		}
		t = n
	}
	return true, missed, s.Next(now)
}

// ErrNoSchedule is returned by LoadState for a state dir without one.
var ErrNoSchedule = errors.New("no schedule state")
