package retention

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestApply(t *testing.T) {
	// Two backups a day from Mon 2026-11-23 to Tue 2026-12-01, verified
	// unless listed in unverified.
	var week []Item
	for d := 0; d < 9; d++ {
		for _, h := range []string{"02:30", "14:30"} {
			c := at("2026-11-23 "+h).AddDate(0, 0, d)
			week = append(week, Item{Name: c.Format("02-01-2006-15-04"), Created: c, Verified: true})
		}
	}
	names := func(ds []Decision) []string {
		var out []string
		for _, d := range ds {
			if d.Keep {
				out = append(out, d.Name)
			}
		}
		return out
	}
	cases := []struct {
		name  string
		items []Item
		p     Policy
		keep  []string
	}{
		{"empty policy keeps all", week[:3], Policy{}, []string{"24-11-2026-02-30", "23-11-2026-14-30", "23-11-2026-02-30"}},
		{"last 2", week, Policy{Last: 2}, []string{"01-12-2026-14-30", "01-12-2026-02-30"}},
		{"daily 3: newest of each of 3 days", week, Policy{Daily: 3}, []string{"01-12-2026-14-30", "30-11-2026-14-30", "29-11-2026-14-30"}},
		{"weekly 2: ISO weeks 49 and 48", week, Policy{Weekly: 2}, []string{"01-12-2026-14-30", "29-11-2026-14-30"}},
		{"monthly 2: December and November", week, Policy{Monthly: 2}, []string{"01-12-2026-14-30", "30-11-2026-14-30"}},
		{"rules overlap", week, Policy{Last: 1, Daily: 2}, []string{"01-12-2026-14-30", "30-11-2026-14-30"}},
		{"more kept than exist", week[:2], Policy{Last: 5}, []string{"23-11-2026-14-30", "23-11-2026-02-30"}},
		{"newest verified kept though last 1 is unverified",
			[]Item{{Name: "new", Created: at("2026-12-02 10:00")}, {Name: "old", Created: at("2026-12-01 10:00"), Verified: true}, {Name: "older", Created: at("2026-11-30 10:00"), Verified: true}},
			Policy{Last: 1}, []string{"new", "old"}},
		{"nothing verified: rules only",
			[]Item{{Name: "b", Created: at("2026-12-02 10:00")}, {Name: "a", Created: at("2026-12-01 10:00")}},
			Policy{Last: 1}, []string{"b"}},
		{"days count only days with a backup",
			[]Item{{Name: "c", Created: at("2026-12-10 10:00"), Verified: true}, {Name: "b", Created: at("2026-12-01 10:00"), Verified: true}, {Name: "a", Created: at("2026-11-01 10:00"), Verified: true}},
			Policy{Daily: 2}, []string{"c", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := Apply(tc.items, tc.p)
			if len(ds) != len(tc.items) {
				t.Fatalf("%d decisions for %d items", len(ds), len(tc.items))
			}
			if got := names(ds); !reflect.DeepEqual(got, tc.keep) {
				t.Fatalf("kept %v, want %v", got, tc.keep)
			}
			for _, d := range ds {
				if d.Keep != (len(d.Reasons) > 0) {
					t.Fatalf("%s: keep %v with reasons %v", d.Name, d.Keep, d.Reasons)
				}
			}
		})
	}
}

// TestApplyNeverDeletesNewestVerified: whatever the policy, the newest
// verified item is kept.
func TestApplyNeverDeletesNewestVerified(t *testing.T) {
	var items []Item
	for i := 0; i < 20; i++ {
		items = append(items, Item{Name: fmt.Sprint(i), Created: at("2026-01-01 00:00").Add(time.Duration(i) * 7 * time.Hour), Verified: i%3 == 0})
	}
	for _, p := range []Policy{{Last: 1}, {Daily: 1}, {Weekly: 1}, {Monthly: 1}, {Last: 1, Daily: 1}} {
		ds := Apply(items, p)
		for _, d := range ds {
			if d.Verified {
				if !d.Keep {
					t.Fatalf("%v removed the newest verified backup %s", p, d.Name)
				}
				break
			}
		}
	}
}

func TestPolicyString(t *testing.T) {
	if s := (Policy{Last: 3, Monthly: 6}).String(); s != "keep last 3, monthly 6" {
		t.Fatal(s)
	}
	if s := (Policy{}).String(); s != "keep all" {
		t.Fatal(s)
	}
}
