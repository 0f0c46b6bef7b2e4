package pitr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/embedded"
)

// setSource is the embedded server's real oplog, read by the real
// MongoSource, on a member that says it belongs to set: embedded FerretDB
// has no replica set name to give (its embedding API does not take one),
// and a test cannot move a device to another set's member otherwise.
type setSource struct {
	*MongoSource
	set ReplicaSet
}

func (s *setSource) ReplicaSet(context.Context) (ReplicaSet, error) { return s.set, nil }

func onSet(set ReplicaSet) func(*Config) {
	return func(c *Config) { c.Source = &setSource{MongoSource: c.Source.(*MongoSource), set: set} }
}

func TestArchiverOwnerRecord(t *testing.T) {
	a := ReplicaSet{Name: "rsA", ID: "65700000aaaaaaaaaaaaaaaa"}
	cases := []struct {
		name     string
		before   ReplicaSet
		noRecord bool // the archive was written before the owner record existed
		after    ReplicaSet
		gap      string // what the gap's reason holds; "" for no gap
		record   ReplicaSet
	}{
		{name: "another set", before: a, after: ReplicaSet{Name: "rsB"},
			gap: ReasonSetChanged + ": rsA (id 65700000aaaaaaaaaaaaaaaa) -> rsB", record: ReplicaSet{Name: "rsB"}},
		{name: "re-initiated under the same name", before: a, after: ReplicaSet{Name: "rsA", ID: "65800000bbbbbbbbbbbbbbbb"},
			gap: ReasonSetChanged + ": rsA (id 65700000aaaaaaaaaaaaaaaa) -> rsA (id 65800000bbbbbbbbbbbbbbbb)", record: ReplicaSet{Name: "rsA", ID: "65800000bbbbbbbbbbbbbbbb"}},
		{name: "same set", before: a, after: a, record: a},
		{name: "same set, its id learned", before: ReplicaSet{Name: "rsA"}, after: a, record: a},
		{name: "same set, its id not told", before: a, after: ReplicaSet{Name: "rsA"}, record: a},
		{name: "no record", before: a, noRecord: true, after: a, record: a},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, embedded.Config{})
			run := r.start(t, onSet(c.before))
			write(t, r.client, 0, 30)
			r.waitArchived(t, run)
			run.stop(t)
			last := run.a.Status().Newest
			if o, ok, err := ReadOwner(r.dir); err != nil || !ok || o.ReplicaSet != c.before || o.Node != "n1" {
				t.Fatalf("owner record %+v %v %v, want %v written by n1", o, ok, err, c.before)
			}
			if c.noRecord {
				if err := os.Remove(filepath.Join(r.dir, OwnerFile)); err != nil {
					t.Fatal(err)
				}
			}

			// The member's oplog still holds the newest archived entry (the
			// same server): only the replica set tells the change.
			run = r.start(t, onSet(c.after))
			write(t, r.client, 30, 20)
			r.waitArchived(t, run)
			run.stop(t)

			if o, ok, err := ReadOwner(r.dir); err != nil || !ok || o.ReplicaSet != c.record {
				t.Fatalf("owner record %+v %v %v, want %v", o, ok, err, c.record)
			}
			p, _ := r.archiveEntries(t)
			ar, err := Open(r.dir, unlockWith(r.id))
			if err != nil {
				t.Fatal(err)
			}
			if c.gap == "" {
				if len(r.gaps) != 0 || len(p.Windows) != 1 || len(ar.Gaps) != 0 {
					t.Fatalf("gaps %+v, proof %+v: want one window, no gap", r.gaps, p)
				}
				return
			}
			if len(r.gaps) != 1 || !strings.HasPrefix(r.gaps[0].Reason, c.gap) || r.gaps[0].From != last {
				t.Fatalf("gaps reported %+v, want one from %v: %q", r.gaps, last, c.gap)
			}
			// gaps.json (pitr-status, the remote copy) and the next slice's
			// authenticated header both hold it; every window ends there.
			if len(ar.Gaps) != 1 || ar.Gaps[0].Reason != r.gaps[0].Reason || ar.Gaps[0].To.IsZero() {
				t.Fatalf("gaps.json %+v", ar.Gaps)
			}
			if ws := ar.Windows(); len(ws) != 2 || ws[0].To != last {
				t.Fatalf("windows %+v, want two cut at %v", ws, last)
			}
			if len(p.Windows) != 2 || p.Windows[0].To != last {
				t.Fatalf("proof %+v: want two windows cut at %v", p, last)
			}
			if err := os.Remove(filepath.Join(r.dir, GapsFile)); err != nil {
				t.Fatal(err)
			}
			if p2, err := Verify(context.Background(), r.dir, unlockWith(r.id)); err != nil || len(p2.Windows) != 2 || p2.Gaps[0].Reason != r.gaps[0].Reason {
				t.Fatalf("without gaps.json: %+v %v", p2, err)
			}
		})
	}
}

// TestMongoSourceReplicaSet: the embedded FerretDB answers hello without a
// set name; the archiver then takes Config.ReplSet, and a restart is no
// change.
func TestMongoSourceReplicaSet(t *testing.T) {
	r := newRig(t, embedded.Config{})
	set, err := NewMongoSource(r.client).ReplicaSet(context.Background())
	if err != nil || set != (ReplicaSet{}) {
		t.Fatalf("ReplicaSet: %+v %v, want no name from FerretDB", set, err)
	}
	for i := 0; i < 2; i++ {
		run := r.start(t, nil)
		write(t, r.client, i*20, 20)
		r.waitArchived(t, run)
		run.stop(t)
	}
	if o, ok, err := ReadOwner(r.dir); err != nil || !ok || o.ReplicaSet != (ReplicaSet{Name: "rs0"}) {
		t.Fatalf("owner record %+v %v %v, want rs0 (Config.ReplSet)", o, ok, err)
	}
	if len(r.gaps) != 0 {
		t.Fatalf("gaps %+v", r.gaps)
	}
}

// TestArchiverRefusesUnreadableOwnerRecord: a record that cannot be read
// ends Run with an error naming it (as an unreadable gaps.json does); it
// is not taken for a missing one, which would be rewritten with no gap.
func TestArchiverRefusesUnreadableOwnerRecord(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(`{"replica_set":`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Source: &MongoSource{}, Dir: dir, Recipients: []age.Recipient{testKey(t).Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), OwnerFile) {
		t.Fatalf("Run: %v, want an error naming %s", err, OwnerFile)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, OwnerFile)); string(b) != `{"replica_set":` {
		t.Fatalf("the record was rewritten: %s", b)
	}
}
