package logring

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRingBoundsAndFilters(t *testing.T) {
	t.Run("records", func(t *testing.T) {
		g := New(3, 0)
		log := slog.New(g.Handler(slog.NewTextHandler(&bytes.Buffer{}, nil), Options{}))
		for i := 0; i < 5; i++ {
			log.Info("m", "i", i)
		}
		recs, _, next := g.Read(Filter{})
		if len(recs) != 3 || recs[0].Attrs[0].Value != "2" || next != 5 {
			t.Fatalf("got %+v next %d, want the last 3 of 5", recs, next)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		g := New(0, 1000)
		log := slog.New(g.Handler(slog.NewTextHandler(&bytes.Buffer{}, nil), Options{}))
		for i := 0; i < 100; i++ {
			log.Info(strings.Repeat("x", 100))
		}
		recs, _, _ := g.Read(Filter{})
		total := 0
		for i := range recs {
			total += recs[i].size()
		}
		if len(recs) == 0 || total > 1000 || recs[len(recs)-1].Seq != 100 {
			t.Fatalf("%d records of %d bytes, last %d: want at most 1000 bytes, the newest kept", len(recs), total, recs[len(recs)-1].Seq)
		}
	})
	t.Run("filters", func(t *testing.T) {
		g := New(0, 0)
		job := ""
		var out bytes.Buffer
		log := slog.New(g.Handler(slog.NewTextHandler(&out, nil), Options{Job: func() string { return job }, JobKey: "job_id",
			Skip: func(r slog.Record) bool { return r.Message == "poll" }}))
		log.Info("before")
		job = "backup@2026-12-06T07:34:09Z"
		log.Warn("in the job", "err", "boom")
		job = ""
		log.Error("job ended", "job_id", "backup@2026-12-06T07:34:09Z")
		log.Info("poll")
		log.Debug("not enabled")
		log.With("a", 1).WithGroup("g").Info("grouped", "b", 2)
		cut := time.Now()
		job = "restore@2026-12-06T08:00:00Z"
		log.Info("restoring")

		for _, tc := range []struct {
			name string
			f    Filter
			want []string
		}{
			{"all", Filter{}, []string{"before", "in the job", "job ended", "grouped", "restoring"}},
			{"level", Filter{Level: slog.LevelWarn}, []string{"in the job", "job ended"}},
			{"job kind", Filter{Job: "backup"}, []string{"in the job", "job ended"}},
			{"job id", Filter{Job: "restore@2026-12-06T08:00:00Z"}, []string{"restoring"}},
			{"no such job", Filter{Job: "back"}, nil},
			{"since", Filter{Since: cut}, []string{"restoring"}},
			{"after", Filter{After: 3}, []string{"grouped", "restoring"}},
			{"tail", Filter{Tail: 2}, []string{"grouped", "restoring"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				recs, _, _ := g.Read(tc.f)
				var got []string
				for _, r := range recs {
					got = append(got, r.Msg)
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}
		recs, _, _ := g.Read(Filter{After: 3, Tail: 2})
		if a := recs[0].Attrs; len(a) != 2 || a[0] != (Attr{"a", "1"}) || a[1] != (Attr{"g.b", "2"}) {
			t.Fatalf("attrs of the grouped record: %+v", a)
		}
		// Every record is passed on, the skipped one too.
		if !strings.Contains(out.String(), "msg=poll") || !strings.Contains(out.String(), "g.b=2") {
			t.Fatalf("passed on:\n%s", out.String())
		}
	})
}
