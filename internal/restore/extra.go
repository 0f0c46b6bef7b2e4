package restore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/oplog"
)

// Position is an oplog position (Options.ExtraAfter, ExtraTo).
type Position = oplog.Timestamp

// ExtraSource streams oplog entries, in the oplog's order, to fn; raw is
// valid only during the call (pitr.EntrySource has this shape).
type ExtraSource func(ctx context.Context, fn func(raw bson.Raw) error) error

// ErrBaseMismatch is wrapped (with ErrInvalidArchive) when the archive's
// consistent_to is not the position Options.ExtraAfter names.
var ErrBaseMismatch = errors.New("the backup's consistent_to is not the one its metadata gave")

// planExtra reads opts.Extra once, after the archive: the manifest is
// known then. Each entry is validated and checked as oplog.bson's are;
// transactions are chained by the replay (an archive's range may begin
// inside one the backup's oplog opened).
func planExtra(ctx context.Context, man *manifest.Manifest, sel matcher, ren *nsRename, opts Options) (*oplogScan, error) {
	if opts.ExtraAfter != nil {
		if man == nil || man.ConsistentTo == nil {
			return nil, fmt.Errorf("%w: %w: it has no consistent_to, so no oplog can be replayed after it", ErrInvalidArchive, ErrBaseMismatch)
		}
		if got := (oplog.Timestamp{T: man.ConsistentTo.T, I: man.ConsistentTo.I}); got != *opts.ExtraAfter {
			return nil, fmt.Errorf("%w: %w: the manifest says %s, the base was chosen at %s", ErrInvalidArchive, ErrBaseMismatch, got, *opts.ExtraAfter)
		}
	}
	if opts.ExtraReplicaSet != nil {
		set := ""
		if man != nil {
			set = man.Source.ReplicaSet
		}
		opts.ExtraReplicaSet(set)
	}
	s := newOplogScan(opts.UsersAndRoles)
	s.ren = ren
	s.haveFirst = true // no transaction chain checks here: see above
	err := opts.Extra(ctx, func(raw bson.Raw) error {
		if err := ValidateDocument(raw, maxDocSize, maxOplogDepth); err != nil {
			return fmt.Errorf("%w: archived oplog entry: %w", ErrInvalidArchive, err)
		}
		e, err := oplog.Parse(raw)
		if err != nil {
			return fmt.Errorf("%w: archived oplog entry: %w", ErrInvalidArchive, err)
		}
		if s.entries == 0 {
			s.first = e.TS
		}
		if opts.ExtraAfter != nil && !opts.ExtraAfter.Less(e.TS) {
			return fmt.Errorf("%w: archived oplog entry at %s is not after the base's consistent_to %s", ErrInvalidArchive, e.TS, *opts.ExtraAfter)
		}
		s.entries++
		if opts.ExtraTo != nil && opts.ExtraTo.Less(e.TS) {
			s.after++
			return nil
		}
		if err := s.checkOp(e, sel, 0); err != nil {
			return fmt.Errorf("%w: archived oplog: %w", ErrInvalidArchive, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// mergeScan adds what extra found to base (nil when the backup has no
// oplog.bson).
func mergeScan(base, extra *oplogScan) *oplogScan {
	if base == nil {
		return extra
	}
	for k, n := range extra.kinds {
		base.kinds[k] += n
	}
	for ns := range extra.namespaces {
		if len(base.namespaces) < maxOplogNamespace {
			base.namespaces[ns] = true
		}
	}
	for f, m := range extra.needs {
		if base.needs[f] == nil {
			base.needs[f] = map[string]bool{}
		}
		for ns := range m {
			base.needs[f][ns] = true
		}
	}
	return base
}

// replayExtra replays opts.Extra up to opts.ExtraTo with the replayer of
// the backup's own oplog, so that a transaction, a rename or a collection
// UUID the backup's oplog began carries on into the archive's entries.
func (rs *runState) replayExtra(ctx context.Context, p *PlanResult, sel matcher) error {
	rp := rs.replayer(ctx, p, sel)
	if err := rs.indexIDLookupsOnce(ctx, rp, p); err != nil {
		return fmt.Errorf("replay archived oplog: %w", err)
	}
	rp.to = rs.opts.ExtraTo
	var n int64
	err := rs.opts.Extra(ctx, func(raw bson.Raw) error {
		n++
		return rp.entry(ctx, raw)
	})
	if err == nil {
		err = rp.flush(ctx)
	}
	if err != nil {
		return fmt.Errorf("replay archived oplog: %w", err)
	}
	if n != p.ExtraEntries {
		return fmt.Errorf("%w: the archived oplog held %d entries in the second pass, %d in the first", ErrInvalidArchive, n, p.ExtraEntries)
	}
	return nil
}
