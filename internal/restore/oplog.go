package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrOplogEntry is matched by an oplog entry Run cannot apply without a
// server-side applyOps (an unsupported command, a malformed update).
var ErrOplogEntry = errors.New("cannot replay oplog entry")

// oplogEffect is what the replay did to one namespace.
type oplogEffect struct {
	entries int64
	net     int64 // documents created minus documents removed
}

// oplogEntry is the part of an oplog entry the replay reads.
type oplogEntry struct {
	TS bson.Timestamp `bson:"ts"`
	Op string         `bson:"op"`
	NS string         `bson:"ns"`
	O  bson.Raw       `bson:"o"`
	O2 bson.Raw       `bson:"o2,omitempty"`
}

// replayOplog applies the entries of r up to the manifest's ConsistentTo
// for the selected namespaces. It tries applyOps once; on a server without
// it (FerretDB) every entry becomes its own idempotent write, so replaying
// entries whose effect the dumped data already holds changes nothing.
func (rs *runState) replayOplog(ctx context.Context, r *bufio.Reader, p *PlanResult, sel matcher) error {
	rs.prog.setStep(StepOplog)
	rs.oplog = map[string]*oplogEffect{}
	restored := map[string]bool{}
	for _, c := range p.Collections {
		restored[c.Namespace()] = true
	}
	tryApplyOps := true
	var buf []byte
	_, _, err := scanBSON(r, &buf, func(doc []byte) error {
		var e oplogEntry
		if err := bson.Unmarshal(doc, &e); err != nil {
			return fmt.Errorf("%w: %w", ErrOplogEntry, err)
		}
		if p.Manifest != nil && p.Manifest.ConsistentTo != nil {
			to := bson.Timestamp{T: p.Manifest.ConsistentTo.T, I: p.Manifest.ConsistentTo.I}
			if e.TS.After(to) {
				return nil
			}
		}
		ns := e.NS
		if e.Op == "c" {
			ns = commandTarget(e)
		}
		if e.Op == "n" || !replayable(ns) || !sel.match(ns) {
			return nil
		}
		if tryApplyOps {
			err := rs.applyOps(ctx, doc)
			if err == nil {
				rs.viaApplyOp = true
				rs.count(ns, 0)
				return nil
			}
			if !isCode(err, codeCommandNotFound) {
				return fmt.Errorf("applyOps: %w", err)
			}
			tryApplyOps = false
		}
		net, err := rs.applyOne(ctx, e)
		if err != nil {
			return fmt.Errorf("%s %s at %d.%d: %w", e.Op, e.NS, e.TS.T, e.TS.I, err)
		}
		rs.count(ns, net)
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay oplog: %w", err)
	}
	return nil
}

func (rs *runState) count(ns string, net int64) {
	eff := rs.oplog[ns]
	if eff == nil {
		eff = &oplogEffect{}
		rs.oplog[ns] = eff
	}
	eff.entries++
	eff.net += net
	rs.applied++
	rs.prog.oplogEntry()
}

// replayable excludes the server's own namespaces, which a restore must not
// rewrite.
func replayable(ns string) bool {
	db, coll, ok := strings.Cut(ns, ".")
	return ok && coll != "" && db != "local" && db != "config" && !strings.HasPrefix(coll, "system.")
}

// applyOps sends one entry, without its collection UUID ("ui": the restored
// collection has a new one), as mongorestore does.
func (rs *runState) applyOps(ctx context.Context, doc []byte) error {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return err
	}
	out := d[:0]
	for _, f := range d {
		if f.Key != "ui" {
			out = append(out, f)
		}
	}
	return rs.client.Database("admin").RunCommand(ctx, bson.D{{Key: "applyOps", Value: bson.A{out}}}).Err()
}

// applyOne applies an entry as a plain write and returns how many documents
// it created (1), removed (-1) or neither (0).
func (rs *runState) applyOne(ctx context.Context, e oplogEntry) (int64, error) {
	db, coll, _ := strings.Cut(e.NS, ".")
	c := rs.client.Database(db).Collection(coll)
	upsert := options.Replace().SetUpsert(true)
	switch e.Op {
	case "i":
		id, err := e.O.LookupErr("_id")
		if err != nil {
			return 0, fmt.Errorf("%w: insert without _id", ErrOplogEntry)
		}
		res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, e.O, upsert)
		if err != nil {
			return 0, err
		}
		return res.UpsertedCount, nil
	case "u":
		return rs.applyUpdate(ctx, c, e)
	case "d":
		id, err := e.O.LookupErr("_id")
		if err != nil {
			return 0, fmt.Errorf("%w: delete without _id", ErrOplogEntry)
		}
		res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
		if err != nil {
			return 0, err
		}
		return -res.DeletedCount, nil
	case "c":
		return 0, rs.applyCommand(ctx, e)
	}
	return 0, fmt.Errorf("%w: unknown op %q", ErrOplogEntry, e.Op)
}

func (rs *runState) applyUpdate(ctx context.Context, c *mongo.Collection, e oplogEntry) (int64, error) {
	id, err := e.O2.LookupErr("_id")
	if err != nil {
		return 0, fmt.Errorf("%w: update without o2._id", ErrOplogEntry)
	}
	filter := bson.D{{Key: "_id", Value: id}}
	var o bson.D
	if err := bson.Unmarshal(e.O, &o); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrOplogEntry, err)
	}
	update, replacement, err := updateFromOplog(o, id)
	if err != nil {
		return 0, err
	}
	if replacement != nil {
		res, err := c.ReplaceOne(ctx, filter, replacement, options.Replace().SetUpsert(true))
		if err != nil {
			return 0, err
		}
		return res.UpsertedCount, nil
	}
	// Upsert, as mongod's own oplog application does: a later delete in the
	// same oplog removes what an update of a missing document creates.
	res, err := c.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return 0, err
	}
	return res.UpsertedCount, nil
}

// updateFromOplog turns the o field of a "u" entry into either an update
// document or a full replacement:
//   - no "$" keys: o is the new document (a replacement);
//   - {$v: 2, diff: {...}}: MongoDB >= 5.0 delta format, turned into
//     $set/$unset;
//   - {$v: 1, $set: doc} where doc carries the _id: FerretDB's shape, which
//     logs the whole new document; a replacement, so fields removed by the
//     update are removed here too;
//   - otherwise $set/$unset/... operators, applied as they are (minus $v).
func updateFromOplog(o bson.D, id bson.RawValue) (update, replacement bson.D, err error) {
	ops := bson.D{}
	var diff bson.D
	hasDiff := false
	for _, f := range o {
		switch {
		case f.Key == "$v":
		case f.Key == "diff":
			d, ok := f.Value.(bson.D)
			if !ok {
				return nil, nil, fmt.Errorf("%w: diff is not a document", ErrOplogEntry)
			}
			diff, hasDiff = d, true
		case strings.HasPrefix(f.Key, "$"):
			ops = append(ops, f)
		default:
			return nil, o, nil
		}
	}
	if hasDiff {
		set, unset := bson.D{}, bson.D{}
		if err := flattenDiff(diff, "", &set, &unset); err != nil {
			return nil, nil, err
		}
		if len(set) > 0 {
			update = append(update, bson.E{Key: "$set", Value: set})
		}
		if len(unset) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: unset})
		}
		if len(update) == 0 {
			update = bson.D{{Key: "$set", Value: bson.D{{Key: "_id", Value: id}}}}
		}
		return update, nil, nil
	}
	if len(ops) == 0 {
		return nil, nil, fmt.Errorf("%w: empty update", ErrOplogEntry)
	}
	if len(ops) == 1 && ops[0].Key == "$set" {
		if doc, ok := ops[0].Value.(bson.D); ok && hasField(doc, "_id") {
			return nil, doc, nil
		}
	}
	return ops, nil, nil
}

func hasField(d bson.D, key string) bool {
	for _, f := range d {
		if f.Key == key {
			return true
		}
	}
	return false
}

// flattenDiff converts a $v:2 diff ("u"/"i" set, "d" delete, "s<field>"
// sub-diff) into dotted $set/$unset paths. Array diffs that resize an
// array ("l") have no $set equivalent and are refused.
func flattenDiff(diff bson.D, prefix string, set, unset *bson.D) error {
	isArray := false
	for _, f := range diff {
		if f.Key == "a" {
			isArray = true
		}
	}
	for _, f := range diff {
		switch {
		case f.Key == "a":
		case f.Key == "u" || f.Key == "i":
			d, ok := f.Value.(bson.D)
			if !ok {
				return fmt.Errorf("%w: diff %q is not a document", ErrOplogEntry, f.Key)
			}
			for _, g := range d {
				*set = append(*set, bson.E{Key: prefix + g.Key, Value: g.Value})
			}
		case f.Key == "d":
			d, ok := f.Value.(bson.D)
			if !ok {
				return fmt.Errorf("%w: diff \"d\" is not a document", ErrOplogEntry)
			}
			for _, g := range d {
				*unset = append(*unset, bson.E{Key: prefix + g.Key, Value: ""})
			}
		case isArray && strings.HasPrefix(f.Key, "u"):
			*set = append(*set, bson.E{Key: prefix + f.Key[1:], Value: f.Value})
		case strings.HasPrefix(f.Key, "s"):
			d, ok := f.Value.(bson.D)
			if !ok {
				return fmt.Errorf("%w: sub-diff %q is not a document", ErrOplogEntry, f.Key)
			}
			if err := flattenDiff(d, prefix+f.Key[1:]+".", set, unset); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: unsupported diff field %q", ErrOplogEntry, f.Key)
		}
	}
	return nil
}

// commandTarget is the namespace a "c" entry acts on ("db.coll"), or "db."
// for database-wide commands, which replayable then excludes.
func commandTarget(e oplogEntry) string {
	db, _, _ := strings.Cut(e.NS, ".")
	elems, err := e.O.Elements()
	if err != nil || len(elems) == 0 {
		return db + "."
	}
	if coll, ok := elems[0].Value().StringValueOK(); ok {
		return db + "." + coll
	}
	return db + "."
}

// applyCommand replays the simple DDL commands; anything else is refused
// rather than approximated.
func (rs *runState) applyCommand(ctx context.Context, e oplogEntry) error {
	db, _, _ := strings.Cut(e.NS, ".")
	var o bson.D
	if err := bson.Unmarshal(e.O, &o); err != nil || len(o) == 0 {
		return fmt.Errorf("%w: malformed command", ErrOplogEntry)
	}
	d := rs.client.Database(db)
	switch o[0].Key {
	case "create":
		err := d.RunCommand(ctx, o).Err()
		if isCode(err, codeNamespaceExists) {
			return nil
		}
		return err
	case "drop":
		coll, _ := o[0].Value.(string)
		return d.Collection(coll).Drop(ctx)
	case "createIndexes":
		coll, _ := o[0].Value.(string)
		spec, err := cleanIndexSpec(o[1:])
		if err != nil || spec == nil {
			return err
		}
		return d.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{spec}}}).Err()
	case "dropIndexes", "deleteIndexes":
		coll, _ := o[0].Value.(string)
		for _, f := range o[1:] {
			if f.Key == "index" {
				err := d.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: f.Value}}).Err()
				if err != nil && !strings.Contains(err.Error(), "not found") {
					return err
				}
				return nil
			}
		}
	}
	return fmt.Errorf("%w: unsupported command %q", ErrOplogEntry, o[0].Key)
}
