package ops

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
)

// timeRange is a find's [since, until] as oplog positions (whole
// seconds; zero times mean unbounded).
func timeRange(since, until time.Time) (from, to bson.Timestamp) {
	to = bson.Timestamp{T: ^uint32(0), I: ^uint32(0)}
	if !since.IsZero() && since.Unix() > 0 {
		from = bson.Timestamp{T: uint32(since.Unix())}
	}
	if !until.IsZero() && until.Unix() > 0 {
		to = bson.Timestamp{T: uint32(until.Unix()), I: ^uint32(0)}
	}
	return from, to
}

// SlicesIn returns the archive's slices that may hold entries between
// since and until.
func SlicesIn(device string, since, until time.Time) ([]pitr.Slice, error) {
	if device == "" {
		return nil, &Error{Kind: NotBackupRole, Msg: "this node has no backup device: no oplog archive"}
	}
	arch, err := pitr.Open(OplogDir(device), crypt.Unlock{})
	if err != nil {
		return nil, err
	}
	from, to := timeRange(since, until)
	return arch.Needed(from, to), nil
}

// FindResult is what Find read and found.
type FindResult struct {
	Findings []api.OplogFinding
	Slices   int
	Entries  int64
	Live     int64
	Windows  []pitr.Window
}

// Find lists the destructive operations of the archive on device (read
// with the slices' file keys the CLI unwrapped, window by window) and of
// the live oplog's entries newer than the archive (client's
// local.oplog.rs), as pitr.Find reports them.
func Find(ctx context.Context, client *mongo.Client, device string, f pitr.Filter, keys map[string][]byte) (*FindResult, error) {
	if device == "" {
		return nil, &Error{Kind: NotBackupRole, Msg: "this node has no backup device: no oplog archive"}
	}
	arch, err := pitr.Open(OplogDir(device), crypt.Unlock{})
	if err != nil {
		return nil, err
	}
	from, to := timeRange(f.Since, f.Until)
	needed := arch.Needed(from, to)
	missing := 0
	for _, s := range needed {
		if len(keys[s.Name]) == 0 {
			missing++
		}
	}
	if missing > 0 {
		return nil, &Error{Kind: Invalid, Msg: fmt.Sprintf("no file key was sent for %d of the %d slices in the range (the archive changed: run oplog-find again)", missing, len(needed))}
	}
	arch.FileKeys = keys
	res := &FindResult{Slices: len(needed), Windows: arch.Windows()}
	var newest bson.Timestamp
	if n := len(arch.Slices); n > 0 {
		newest = arch.Slices[n-1].Last
	}
	src := func(ctx context.Context, fn func(bson.Raw) error) error {
		for _, w := range res.Windows {
			lo, hi := maxTS(from, w.From), minTS(to, w.To)
			if tsLess(hi, lo) {
				continue
			}
			if err := arch.Entries(ctx, lo, hi, func(raw bson.Raw) error { res.Entries++; return fn(raw) }); err != nil {
				return err
			}
		}
		return nil
	}
	archived, err := pitr.Find(ctx, src, f)
	if err != nil {
		if pe := PITRError(err); pe != nil {
			return nil, pe
		}
		return nil, err
	}
	for _, x := range archived {
		res.Findings = append(res.Findings, finding(x, "archive"))
	}
	// The live oplog's tail: what the archive does not hold yet.
	if client != nil && tsLess(newest, to) {
		liveFrom := maxTS(from, pitr.After(newest))
		if newest.IsZero() {
			liveFrom = from
		}
		live := func(ctx context.Context, fn func(bson.Raw) error) error {
			cur, err := client.Database("local").Collection("oplog.rs").Find(ctx,
				bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: liveFrom}, {Key: "$lte", Value: to}}}})
			if err != nil {
				return fmt.Errorf("read the oplog: %w", err)
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				res.Live++
				if err := fn(cur.Current); err != nil {
					return err
				}
			}
			return cur.Err()
		}
		found, err := pitr.Find(ctx, live, f)
		if err != nil {
			return nil, err
		}
		for _, x := range found {
			res.Findings = append(res.Findings, finding(x, "oplog"))
		}
	}
	if res.Findings == nil {
		res.Findings = []api.OplogFinding{}
	}
	return res, nil
}

func finding(x pitr.Finding, source string) api.OplogFinding {
	return api.OplogFinding{Op: x.Op, NS: x.NS, To: x.To, Time: x.Time.UTC().Format(time.RFC3339Nano), TS: api.OplogTS{T: x.TS.T, I: x.TS.I},
		LastTS: api.OplogTS{T: x.LastTS.T, I: x.LastTS.I}, Count: x.Count, ToTS: api.OplogTS{T: x.ToTS.T, I: x.ToTS.I}, Source: source}
}

func maxTS(a, b bson.Timestamp) bson.Timestamp {
	if tsLess(a, b) {
		return b
	}
	return a
}

func minTS(a, b bson.Timestamp) bson.Timestamp {
	if tsLess(a, b) {
		return a
	}
	return b
}
