package oplogsim

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
)

// start serves o in the test's process and connects the official driver to
// it as to a replica set.
func start(t *testing.T, o *Oplog) (*Server, *mongo.Client) {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", "a0sim", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Disconnect(context.Background())
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, c
}

// TestArchiverAgainstSimulatedOplog: a0's archiver (pitr.MongoSource over
// the wire, the official driver's tailable awaitData cursor and getMores)
// tailing the simulated oplog while the generator writes 200 entries/s for
// 20 s archives every generated entry exactly once, byte for byte, in
// order, in one unbroken window without a gap. Not timed: the waits are
// bounds on a correct result, not measurements.
func TestArchiverAgainstSimulatedOplog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 20 s generator: skipped with -short")
	}
	ctx := context.Background()
	o := NewOplog(1 << 15) // holds the whole run (4,000 entries): nothing trimmed
	_, c := start(t, o)
	g := NewGenerator(o, 200, 1)
	gctx, stopGen := context.WithTimeout(ctx, 20*time.Second)
	defer stopGen()
	genDone := make(chan error, 1)
	go func() { genDone <- g.Run(gctx) }()

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oplog")
	src := pitr.NewMongoSource(c)
	src.Await = 200 * time.Millisecond
	a, err := pitr.New(pitr.Config{Source: src, Dir: dir, Recipients: []age.Recipient{id.Recipient()}, SliceLength: time.Second, Node: "oplogsim-test"})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopArchiver := context.WithCancel(ctx)
	archDone := make(chan error, 1)
	go func() { archDone <- a.Run(actx) }()
	defer func() {
		stopArchiver()
		if err := <-archDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("archiver: %v", err)
		}
	}()
	if err := <-genDone; err != nil {
		t.Fatal(err)
	}
	want := o.Entries()
	if len(want) < 1000 || int64(len(want)) != g.Written() {
		t.Fatalf("the generator wrote %d entries (held %d)", g.Written(), len(want))
	}
	newest := o.Newest()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ar, err := pitr.Open(dir, crypt.Unlock{})
		if err == nil && len(ar.Slices) > 0 && !ar.Slices[len(ar.Slices)-1].Last.Before(newest) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach the newest entry %v: %v", newest, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopArchiver()

	proof, err := pitr.Verify(ctx, dir, crypt.Unlock{Identities: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(proof.Windows) != 1 || len(proof.Gaps) != 0 || proof.Entries != int64(len(want)) {
		t.Fatalf("proof: %d entries, windows %v, gaps %v; want %d entries in one window", proof.Entries, proof.Windows, proof.Gaps, len(want))
	}
	ar, err := pitr.Open(dir, crypt.Unlock{Identities: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	err = ar.Entries(ctx, proof.Windows[0].From, proof.Windows[0].To, func(raw bson.Raw) error {
		if i >= len(want) {
			return errors.New("more entries archived than generated")
		}
		if !bytes.Equal(raw, want[i]) {
			return errors.New("archived entry " + raw.String() + " is not the generated " + want[i].String())
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("archived %d of %d entries", i, len(want))
	}
	t.Logf("%d entries in %d slices, archived once each, in order", i, proof.Slices)
}

// TestSimulatedOplogAnswers: what the simulation answers over the wire,
// through the official driver: reads by ts bound and in reverse, the
// replica set a0 records, a capped position lost, and CommandNotFound for
// anything it does not simulate.
func TestSimulatedOplogAnswers(t *testing.T) {
	ctx := context.Background()
	o := NewOplog(100)
	g := NewGenerator(o, 1, 1)
	now := time.Unix(1_800_000_000, 0)
	for k := range 50 {
		raw, err := g.entry(now.Add(time.Duration(k/10) * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Append(raw); err != nil {
			t.Fatal(err)
		}
	}
	all := o.Entries()
	tsAt := func(i int) bson.Timestamp { ts, _ := tsOf(all[i]); return ts }
	srv, c := start(t, o)
	oplog := c.Database("local").Collection("oplog.rs")

	for _, tc := range []struct {
		name   string
		filter bson.D
		opts   *options.FindOptionsBuilder
		want   []int
	}{
		{"all", bson.D{}, options.Find(), seq(0, 50)},
		{"$gt", bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: tsAt(17)}}}}, options.Find().SetBatchSize(5), seq(18, 50)},
		{"$gte $lt", bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: tsAt(10)}, {Key: "$lt", Value: tsAt(20)}}}}, options.Find(), seq(10, 20)},
		{"equal", bson.D{{Key: "ts", Value: tsAt(33)}}, options.Find(), []int{33}},
		{"newest three", bson.D{}, options.Find().SetSort(bson.D{{Key: "$natural", Value: -1}}).SetLimit(3), []int{49, 48, 47}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := oplog.Find(ctx, tc.filter, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for cur.Next(ctx) {
				ts, _ := tsOf(cur.Current)
				for i := range all {
					if tsAt(i) == ts {
						got = append(got, i)
					}
				}
			}
			if err := cur.Err(); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got entries %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got entries %v, want %v", got, tc.want)
				}
			}
		})
	}

	t.Run("replica set", func(t *testing.T) {
		set, err := pitr.NewMongoSource(c).ReplicaSet(ctx)
		if err != nil || set.Name != "a0sim" || set.ID != srv.setID.Hex() {
			t.Fatalf("ReplicaSet: %+v, %v", set, err)
		}
	})

	t.Run("capped position lost", func(t *testing.T) {
		cur, err := oplog.Find(ctx, bson.D{}, options.Find().SetBatchSize(1).SetCursorType(options.TailableAwait))
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close(ctx)
		if !cur.Next(ctx) {
			t.Fatalf("no first entry: %v", cur.Err())
		}
		// 100 more entries trim what the cursor was to read next.
		for k := range 100 {
			raw, _ := g.entry(now.Add(time.Hour + time.Duration(k)*time.Millisecond))
			if err := o.Append(raw); err != nil {
				t.Fatal(err)
			}
		}
		cur.SetBatchSize(10)
		if cur.Next(ctx) {
			t.Fatal("a getMore past the trimmed position answered entries")
		}
		var se mongo.ServerError
		if !errors.As(cur.Err(), &se) || !se.HasErrorCode(codeCappedPositionLost) {
			t.Fatalf("getMore after the trim: %v, want CappedPositionLost", cur.Err())
		}
	})

	t.Run("not simulated", func(t *testing.T) {
		for _, cmd := range []bson.D{{{Key: "insert", Value: "x"}}, {{Key: "replSetGetStatus", Value: 1}}, {{Key: "collStats", Value: "oplog.rs"}}} {
			err := c.Database("local").RunCommand(ctx, cmd).Err()
			var se mongo.ServerError
			if !errors.As(err, &se) || !se.HasErrorCode(codeCommandNotFound) {
				t.Errorf("%v: %v, want CommandNotFound", cmd, err)
			}
		}
		_, err := c.Database("pitrbench").Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
		var se mongo.ServerError
		if !errors.As(err, &se) || !se.HasErrorCode(codeCommandNotFound) {
			t.Errorf("insert: %v, want CommandNotFound", err)
		}
	})
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
