package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Policy says how many backups to keep. A zero Policy keeps everything.
type Policy struct {
	Last    int `json:"keep_last,omitempty"`
	Daily   int `json:"keep_daily,omitempty"`
	Weekly  int `json:"keep_weekly,omitempty"`
	Monthly int `json:"keep_monthly,omitempty"`
}

// Empty reports whether the policy keeps everything (nothing configured).
func (p Policy) Empty() bool { return p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 }

func (p Policy) String() string {
	var parts []string
	for _, f := range []struct {
		n    int
		name string
	}{{p.Last, "last"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}} {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.name, f.n))
		}
	}
	if len(parts) == 0 {
		return "keep all"
	}
	return "keep " + strings.Join(parts, ", ")
}

// Item is one backup.
type Item struct {
	Name     string
	Created  time.Time
	Verified bool
}

// Decision is what Apply decided for one item.
type Decision struct {
	Item
	Keep bool
	// Reasons are the rules that keep it ("last", "daily 2026-12-01",
	// "newest verified"...), empty for a removed item.
	Reasons []string
}

// Apply decides for every item, newest first. Buckets (days, weeks,
// months) are in UTC; within a bucket the newest backup is kept; a rule
// counts only buckets that hold a backup, as restic does.
func Apply(items []Item, p Policy) []Decision {
	ds := make([]Decision, len(items))
	for i, it := range items {
		ds[i] = Decision{Item: it}
	}
	sort.SliceStable(ds, func(i, j int) bool {
		if !ds[i].Created.Equal(ds[j].Created) {
			return ds[i].Created.After(ds[j].Created)
		}
		return ds[i].Name > ds[j].Name
	})
	if p.Empty() {
		for i := range ds {
			ds[i].Keep, ds[i].Reasons = true, []string{"no retention policy"}
		}
		return ds
	}
	for i := range ds {
		if i < p.Last {
			ds[i].keep("last")
		}
	}
	bucket := func(n int, name string, key func(time.Time) string) {
		seen := map[string]bool{}
		for i := range ds {
			k := key(ds[i].Created.UTC())
			if seen[k] {
				continue
			}
			if len(seen) >= n {
				return
			}
			seen[k] = true
			ds[i].keep(name + " " + k)
		}
	}
	bucket(p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(p.Weekly, "weekly", func(t time.Time) string {
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	})
	bucket(p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") })
	for i := range ds {
		if ds[i].Verified {
			// Whatever the rules say, the newest verified backup stays:
			// it may be the only one that restores.
			ds[i].keep("newest verified")
			break
		}
	}
	return ds
}

func (d *Decision) keep(reason string) {
	d.Keep = true
	d.Reasons = append(d.Reasons, reason)
}
