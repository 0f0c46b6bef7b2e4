package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/oplog"
)

// ErrOplogEntry is matched by an oplog entry the restore refuses or cannot
// apply (a kind the decision table refuses, a malformed entry, a field the
// server cannot store).
var ErrOplogEntry = errors.New("cannot replay oplog entry")

// Skip reasons besides the entry kinds of the decision table.
const (
	skipNotRestored = "namespace-not-restored"
	skipAfterEnd    = "after-consistent-to"
	skipTxnAborted  = "transaction-aborted"
	skipTxnOpen     = "transaction-uncommitted"
	skipDiffPart    = "update-diff-part-superseded"
	skipNoServerCmd = "command-unsupported-by-server"
	// skipOtherUUID: a write to an incarnation of the collection (its
	// UUID) the restore does not hold: dropped or renamed over before the
	// dump read the name's current one.
	skipOtherUUID = "collection-incarnation-not-restored"
	// skipRenameNoSource: a rename whose source the target does not hold
	// (an archive without collection UUIDs whose dump read it under its
	// new name).
	skipRenameNoSource = "rename-source-not-restored"
	maxOplogNamespace  = 1 << 16
)

// More server error codes the replay reacts to.
const (
	codeNamespaceNotFound = 26
	codeIndexNotFound     = 27
	codeNotImplemented    = 238
	codeDuplicateKey      = 11000
)

// oplogEffect is what the replay did to one namespace.
type oplogEffect struct {
	entries int64
	net     int64 // documents created minus documents removed
	// reset is set once the oplog dropped the collection: net counts
	// from empty.
	reset bool
	// uncertain: an insert or delete command was sent again after a
	// transient error (writeCmd), so net may miss what the failed send
	// did: the count is not compared.
	uncertain bool
}

// replayMode is how entries reach the server.
type replayMode int

const (
	modeUnknown replayMode = iota
	// modeApplyOps sends each entry, reduced, to applyOps (MongoDB).
	modeApplyOps
	// modeWrites turns entries into idempotent insert/update/delete
	// commands, batched (servers without applyOps: FerretDB).
	modeWrites
)

// commander runs one command on a database; every write of the replay
// goes through it, so tests can record the exact commands.
type commander func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error)

// oplogScan is what Plan learns from oplog.bson.
type oplogScan struct {
	// kinds counts every operation up to consistent_to (applyOps
	// operations included) by kind.
	kinds map[string]int64
	after int64 // entries after consistent_to
	// entries counts Options.Extra's entries (planExtra).
	entries int64
	// namespaces are the restorable collections the entries name (a
	// time-series collection by its own name, not its buckets').
	namespaces map[string]bool
	// needs are the namespaces the replay writes that need a server
	// feature beyond plain collections (views, time-series, users), by
	// feature: Preflight refuses them, by name, on a server without
	// applyOps, which cannot hold them.
	needs     map[string]map[string]bool
	first     oplog.Timestamp
	haveFirst bool
	// usersAndRoles is Options.UsersAndRoles: admin.system.users and
	// .roles are written.
	usersAndRoles bool
	// txns checks, in Plan, that every transaction's entries chain, so a
	// broken chain is refused before the first write, not after the data.
	txns *oplog.Txns
	// ren, when the restore renames, maps every entry to the new names
	// before it is checked: namespaces are then the new names.
	ren *nsRename
	// holds is Options.Holds; notHeld counts by namespace the entries
	// whose documents it refused.
	holds   func(doc []byte, update bool) error
	notHeld map[string]NotHeld
	// holdsCmd is Options.HoldsCommand, its refusals counted in notHeld.
	holdsCmd func(o []byte) error
}

func newOplogScan(usersAndRoles bool) *oplogScan {
	return &oplogScan{kinds: map[string]int64{}, namespaces: map[string]bool{}, needs: map[string]map[string]bool{},
		usersAndRoles: usersAndRoles}
}

// crudEntry returns &e for a CRUD entry, whose document names a view's
// namespace, else nil.
func crudEntry(e *oplog.Entry) *oplog.Entry {
	if e.Op == "c" {
		return nil
	}
	return e
}

// check validates one entry in Plan: framing, the decision table's
// refusals for namespaces being restored, and the set of namespaces named.
func (s *oplogScan) check(doc []byte, to *oplog.Timestamp, sel matcher) error {
	e, err := oplog.Parse(doc)
	if err != nil {
		return err
	}
	if _, _, ok := bson.Raw(doc).Lookup("ts").TimestampOK(); !ok {
		return errors.New("oplog entry without ts")
	}
	if !s.haveFirst {
		s.first, s.haveFirst = e.TS, true
		s.txns = oplog.NewTxns(e.TS, 0)
	}
	if to != nil && to.Less(e.TS) {
		s.after++
		return nil
	}
	return s.checkOp(e, sel, 0)
}

func (s *oplogScan) checkOp(e oplog.Entry, sel matcher, depth int) error {
	d := oplog.Decide(e)
	s.kinds[string(d.Kind)]++
	switch d.Action {
	case oplog.TxnBuffer, oplog.TxnCommit, oplog.TxnAbort:
		if depth == 0 && s.txns != nil {
			if _, _, err := s.txns.Add(e, d); err != nil {
				return fmt.Errorf("%w: %w", ErrOplogEntry, err)
			}
		}
	}
	if d.Action == oplog.ApplyEach || d.Action == oplog.TxnBuffer || (d.Action == oplog.TxnCommit && e.Cmd == "applyOps") {
		if depth > 0 {
			return fmt.Errorf("%w: applyOps nested in applyOps at %s", ErrOplogEntry, e.TS)
		}
		s.kinds[string(d.Kind)]-- // counted by its operations
		inner, err := e.Inner()
		if err != nil {
			return err
		}
		for _, in := range inner {
			if err := s.checkOp(in, sel, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if s.ren != nil && d.Action != oplog.Skip {
		// Renamed first (--ns applied there), then checked under the
		// new names, which are all selected.
		out, skip, err := s.ren.entry(e, d)
		if err != nil || skip != "" {
			return err
		}
		for _, r := range out {
			if err := s.checkLeaf(r, oplog.Decide(r), nil); err != nil {
				return err
			}
		}
		return nil
	}
	return s.checkLeaf(e, d, sel)
}

// checkLeaf is checkOp for an operation that is not a container.
func (s *oplogScan) checkLeaf(e oplog.Entry, d oplog.Decision, sel matcher) error {
	t, err := oplog.TargetsOf(e)
	if err != nil {
		if d.Action == oplog.Skip {
			return nil
		}
		return err
	}
	touches := false
	for _, ns := range t.Namespaces {
		if nsVerdict(ns, crudEntry(&e), sel, s.usersAndRoles, nil) != "" {
			continue
		}
		touches = true
		c := nsClassOf(ns)
		logical := logicalNS(ns, crudEntry(&e))
		if f := oplogFeature(c); f != "" && d.Action != oplog.Skip {
			if s.needs[f] == nil {
				s.needs[f] = map[string]bool{}
			}
			if len(s.needs[f]) < maxOplogNamespace {
				s.needs[f][logical] = true
			}
		}
		// A namespace only skipped entries name (startIndexBuild,
		// abortIndexBuild...) is not written: not "created during the dump".
		if (s.holds != nil || s.holdsCmd != nil) && d.Action != oplog.Skip {
			if err := holdsEntry(e, s.holds, s.holdsCmd); err != nil {
				if s.notHeld == nil {
					s.notHeld = map[string]NotHeld{}
				}
				n := s.notHeld[logical]
				n.add(fmt.Errorf("oplog entry at %s: %w", e.TS, err))
				s.notHeld[logical] = n
			}
		}
		if (c == nsPlain || c == nsBuckets) && d.Action != oplog.Skip && !s.namespaces[logical] {
			if len(s.namespaces) >= maxOplogNamespace {
				return fmt.Errorf("oplog names more than %d namespaces", maxOplogNamespace)
			}
			s.namespaces[logical] = true
		}
	}
	if d.Kind == oplog.KindRename && len(t.Namespaces) == 2 &&
		(nsVerdict(t.Namespaces[0], nil, sel, s.usersAndRoles, nil) == "") != (nsVerdict(t.Namespaces[1], nil, sel, s.usersAndRoles, nil) == "") {
		// One name restored, the other not: the collection would move
		// into or out of what the restore may write.
		return fmt.Errorf("%w: %s of %s at %s: one name is restored and the other is not (--ns, or a server namespace): restore both or neither",
			ErrOplogEntry, d.Kind, strings.Join(t.Namespaces, " to "), e.TS)
	}
	if d.Action == oplog.Refuse && (touches || (t.Database != "" && sel.match(t.Database+".x"))) {
		return fmt.Errorf("%w: %s of %s at %s: %s", ErrOplogEntry, d.Kind, strings.Join(t.Namespaces, " to "), e.TS, d.Why)
	}
	return nil
}

// holdsEntry asks holds (Options.Holds) about the documents a CRUD entry
// writes: an insert's document, an update's operand (its names are
// paths and operators unless it replaces the document) and its query, a
// delete's query; and holdsCmd (Options.HoldsCommand) about a command's
// o. Either may be nil (not asked).
func holdsEntry(e oplog.Entry, holds func(doc []byte, update bool) error, holdsCmd func(o []byte) error) error {
	if e.Op == "c" {
		if holdsCmd == nil {
			return nil
		}
		return holdsCmd(e.O)
	}
	if holds == nil {
		return nil
	}
	switch e.Op {
	case "i", "d":
		return holds(e.O, false)
	case "u":
		first, err := e.O.IndexErr(0)
		update := err == nil && strings.HasPrefix(first.Key(), "$")
		if err := holds(e.O, update); err != nil {
			return err
		}
		if e.O2 != nil {
			return holds(e.O2, false)
		}
	}
	return nil
}

// replayer applies one oplog.bson; see replayOplog.
type replayer struct {
	rs   *runState
	mode replayMode
	run  commander
	sel  matcher
	to   *oplog.Timestamp
	txns *oplog.Txns
	byDB map[string][]string // restored namespaces per database
	// views are the restored views per database (planned, or written by
	// the replay): a dropDatabase drops them too.
	views   map[string]map[string]bool
	skipped map[string]int64
	// skippedNS counts the same entries by reason, then namespace.
	skippedNS map[string]map[string]int64
	batch     writeBatch
	// uuidAt is where each known collection UUID is on the target, nsUUID
	// the reverse: seeded with the UUIDs the dump read the collections
	// under, moved by the oplog's create, drop and renameCollection.
	// Writes carrying a ui go where their collection is (a collection the
	// dump read under its new name gets the writes made under its old
	// one), as a secondary applies them.
	uuidAt map[string]string
	nsUUID map[string]string
	// dumped are the planned collections' document counts.
	dumped map[string]int64
	// capped caches whether a collection of the target is capped, asked
	// of the server once per collection until the next command entry
	// (isCappedTarget).
	capped map[string]bool
	// ren, when the restore renames, maps every operation to the new
	// names before it is applied (sel is then everything: the renaming
	// applied --ns).
	ren *nsRename
}

// replayOplog applies the entries of r up to the manifest's ConsistentTo.
// Every entry goes through the decision table (internal/oplog). Only
// namespaces being restored are written (the planned collections and the
// selected namespaces the oplog itself creates, both checked by
// CheckTargets): an operation on any other namespace is skipped and
// counted. On MongoDB each entry goes to applyOps, reduced as mongorestore
// sends it; on a server without applyOps (FerretDB) entries become
// idempotent writes, consecutive ones on one collection batched.
func (rs *runState) replayOplog(ctx context.Context, r *bufio.Reader, p *PlanResult, sel matcher) error {
	rp := rs.replayer(ctx, p, sel)
	if err := rs.indexIDLookupsOnce(ctx, rp, p); err != nil {
		return fmt.Errorf("replay oplog: %w", err)
	}
	var buf []byte
	_, _, err := scanBSON(r, &buf, func(doc []byte) error {
		return rp.entry(ctx, doc)
	})
	if err == nil {
		err = rp.flush(ctx)
	}
	if err != nil {
		return fmt.Errorf("replay oplog: %w", err)
	}
	if rs.opts.Extra == nil {
		// Nothing follows: what is still open stays so.
		rs.endReplay()
	}
	return nil
}

// replayer returns the replay's one replayer, made at the first replay:
// the backup's oplog and then Options.Extra go through the same one.
func (rs *runState) replayer(ctx context.Context, p *PlanResult, sel matcher) *replayer {
	if rs.rp == nil {
		rs.prog.setStep(StepOplog)
		rs.oplog = map[string]*oplogEffect{}
		if rs.catalog == nil {
			rs.catalog = newIndexCatalog()
		}
		rs.rp = rs.newReplayer(ctx, p, sel)
	}
	return rs.rp
}

// indexIDLookupsOnce is indexIDLookups, once per restore.
func (rs *runState) indexIDLookupsOnce(ctx context.Context, rp *replayer, p *PlanResult) error {
	if rs.lookupsDone {
		return nil
	}
	rs.lookupsDone = true
	return rs.indexIDLookups(ctx, rp, p)
}

// endReplay counts what the replay left open (transactions without a
// commit) and hands its skip counts to the report.
func (rs *runState) endReplay() {
	rp := rs.rp
	if rp == nil || rs.replayEnded {
		return
	}
	rs.replayEnded = true
	for _, op := range rp.txns.PendingOps() {
		rp.skip(skipTxnOpen, op.NS, 1)
	}
	rs.skipped, rs.skippedNS = rp.skipped, rp.skippedNS
}

// indexIDLookups hands the restored collections the oplog names to
// Options.IndexIDLookups before an idempotent replay.
func (rs *runState) indexIDLookups(ctx context.Context, rp *replayer, p *PlanResult) error {
	if rp.mode != modeWrites || rs.opts.IndexIDLookups == nil || p.oplog == nil {
		return nil
	}
	byDB := map[string][]string{}
	var dbs []string
	for _, ns := range rs.restoredNamespaces(p) {
		if !p.oplog.namespaces[ns] {
			continue
		}
		db, coll, _ := strings.Cut(ns, ".")
		if byDB[db] == nil {
			dbs = append(dbs, db)
		}
		byDB[db] = append(byDB[db], coll)
	}
	for _, db := range dbs {
		if err := rs.opts.IndexIDLookups(ctx, db, byDB[db]); err != nil {
			return fmt.Errorf("index _id lookups of %s: %w", db, err)
		}
	}
	return nil
}

func (rs *runState) newReplayer(ctx context.Context, p *PlanResult, sel matcher) *replayer {
	if rs.ren != nil {
		sel = nil
	}
	rp := &replayer{rs: rs, run: rs.command, sel: sel, ren: rs.ren, byDB: map[string][]string{}, skipped: map[string]int64{},
		skippedNS: map[string]map[string]int64{}, views: map[string]map[string]bool{},
		uuidAt: map[string]string{}, nsUUID: map[string]string{}, dumped: map[string]int64{}}
	for _, c := range p.Collections {
		switch {
		case c.Type == "view":
			rp.addView(c.Namespace())
		case c.Type != "timeseries":
			rp.dumped[c.Namespace()] = c.Documents
			if c.uuid != "" {
				rp.place(c.uuid, c.Namespace())
			}
		}
	}
	if rs.runHook != nil {
		rp.run = rs.runHook(rp.run)
	}
	if p.Manifest != nil && p.Manifest.ConsistentTo != nil {
		rp.to = &oplog.Timestamp{T: p.Manifest.ConsistentTo.T, I: p.Manifest.ConsistentTo.I}
	}
	var start oplog.Timestamp
	if p.oplog != nil {
		start = p.oplog.first
	}
	rp.txns = oplog.NewTxns(start, 0)
	for _, ns := range rs.restoredNamespaces(p) {
		db, _, _ := strings.Cut(ns, ".")
		rp.byDB[db] = append(rp.byDB[db], ns)
	}
	rp.mode = rs.opts.testMode
	if rp.mode == modeUnknown {
		rp.mode = modeApplyOps
		// One probe decides for the whole replay: FerretDB has no
		// applyOps; MongoDB accepts an empty one.
		if _, err := rs.command(ctx, "admin", bson.D{{Key: "applyOps", Value: bson.A{}}}); isCode(err, codeCommandNotFound) {
			rp.mode = modeWrites
		}
	}
	rs.viaApplyOp = rp.mode == modeApplyOps
	return rp
}

// restoredNamespaces are the planned collections and the selected
// namespaces only the oplog names, sorted.
func (rs *runState) restoredNamespaces(p *PlanResult) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range p.Collections {
		if c.Type != "view" && !seen[c.Namespace()] {
			seen[c.Namespace()] = true
			out = append(out, c.Namespace())
		}
	}
	for _, ns := range p.OplogOnly {
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out
}

// skip counts n entries not applied, by reason and by namespace (ns ""
// for an entry that names none).
func (rp *replayer) skip(reason, ns string, n int64) {
	if n == 0 {
		return
	}
	rp.skipped[reason] += n
	if ns == "" {
		ns = "-"
	}
	m := rp.skippedNS[reason]
	if m == nil {
		m = map[string]int64{}
		rp.skippedNS[reason] = m
	}
	m[ns] += n
}

func (rp *replayer) entry(ctx context.Context, doc []byte) error {
	e, err := oplog.Parse(doc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOplogEntry, err)
	}
	if rp.to != nil && rp.to.Less(e.TS) {
		rp.skip(skipAfterEnd, e.NS, 1)
		return nil
	}
	return rp.op(ctx, e)
}

// op applies one entry or applyOps operation as the table decides.
func (rp *replayer) op(ctx context.Context, e oplog.Entry) error {
	d := oplog.Decide(e)
	switch d.Action {
	case oplog.Skip:
		ns := e.NS
		if t, err := oplog.TargetsOf(e); err == nil && len(t.Namespaces) == 1 {
			ns = t.Namespaces[0]
		}
		rp.skip(string(d.Kind), ns, 1)
		return nil
	case oplog.Refuse:
		// Plan refuses these for restored namespaces; here they can only
		// name namespaces outside the restore.
		if rp.ren != nil {
			_, skip, err := rp.ren.entry(e, d)
			if err != nil {
				return err
			}
			rp.skip(skipNotRestored, skip, 1)
			return nil
		}
		t, _ := oplog.TargetsOf(e)
		for _, ns := range t.Namespaces {
			if rp.allowed(ns) {
				return fmt.Errorf("%w: %s at %s: %s", ErrOplogEntry, d.Kind, e.TS, d.Why)
			}
		}
		rp.skip(skipNotRestored, strings.Join(t.Namespaces, " to "), 1)
		return nil
	case oplog.ApplyEach:
		if e.IsInner() {
			return fmt.Errorf("%w: applyOps nested in applyOps at %s", ErrOplogEntry, e.TS)
		}
		inner, err := e.Inner()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrOplogEntry, err)
		}
		for _, in := range inner {
			if err := rp.op(ctx, in); err != nil {
				return err
			}
		}
		return nil
	case oplog.TxnBuffer, oplog.TxnCommit, oplog.TxnAbort:
		if d.Action == oplog.TxnAbort {
			for _, op := range rp.txns.Buffered(e) {
				rp.skip(skipTxnAborted, op.NS, 1)
			}
		}
		apply, _, err := rp.txns.Add(e, d)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrOplogEntry, err)
		}
		for _, in := range apply {
			if err := rp.op(ctx, in); err != nil {
				return err
			}
		}
		return nil
	}
	if rp.ren != nil {
		out, skip, err := rp.ren.entry(e, d)
		if err != nil {
			return err
		}
		if skip != "" {
			rp.skip(skipNotRestored, skip, 1)
			return nil
		}
		for _, r := range out {
			if err := rp.leaf(ctx, r, oplog.Decide(r)); err != nil {
				return err
			}
		}
		return nil
	}
	return rp.leaf(ctx, e, d)
}

// leaf applies one operation that is not a container, under the names
// the target has.
func (rp *replayer) leaf(ctx context.Context, e oplog.Entry, d oplog.Decision) error {
	// Only a collection's writes follow its UUID: views, buckets and
	// users live in the server's catalog collections.
	if e.UI != "" && (e.Op == "i" || e.Op == "u" || e.Op == "d") && nsClassOf(e.NS) == nsPlain {
		if at, ok := rp.uuidAt[e.UI]; ok {
			e.NS = at
		} else if cur, ok := rp.nsUUID[e.NS]; ok && cur != e.UI {
			rp.skip(skipOtherUUID, e.NS, 1)
			return nil
		}
	}
	t, err := oplog.TargetsOf(e)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOplogEntry, err)
	}
	if t.Database == "" {
		if len(t.Namespaces) == 2 { // renameCollection
			from, to := rp.verdict(t.Namespaces[0], nil), rp.verdict(t.Namespaces[1], nil)
			switch {
			case from != "" && to != "":
				rp.skip(from, strings.Join(t.Namespaces, " to "), 1)
				return nil
			case from != "" || to != "":
				// Plan refuses this for an archive it checked.
				return fmt.Errorf("%w: %s of %s at %s moves a collection across the restore's bounds", ErrOplogEntry, d.Kind, strings.Join(t.Namespaces, " to "), e.TS)
			}
			if err := rp.flush(ctx); err != nil {
				return err
			}
			rp.capped = nil
			return rp.rename(ctx, e, t.Namespaces[0], t.Namespaces[1])
		}
		if len(t.Namespaces) != 1 {
			rp.skip(skipNotRestored, strings.Join(t.Namespaces, " to "), 1)
			return nil
		}
		if why := rp.verdict(t.Namespaces[0], crudEntry(&e)); why != "" {
			rp.skip(why, logicalNS(t.Namespaces[0], crudEntry(&e)), 1)
			return nil
		}
	}
	if t.Database != "" && len(rp.byDB[t.Database]) == 0 && len(rp.views[t.Database]) == 0 {
		rp.skip(skipNotRestored, t.Database, 1)
		return nil
	}
	if d.Action == oplog.Apply && e.Cmd != "drop" && e.Cmd != "dropDatabase" && len(t.Namespaces) == 1 {
		rp.rs.catalog.revive(t.Namespaces[0])
	}
	switch d.Action {
	case oplog.IndexCatalog:
		if err := rp.flush(ctx); err != nil {
			return err
		}
		if err := rp.rs.catalog.apply(e); err != nil {
			return fmt.Errorf("%w: %s at %s: %w", ErrOplogEntry, d.Kind, e.TS, err)
		}
		rp.count(t.Namespaces[0], 0)
		return nil
	case oplog.Apply:
		if e.Op == "c" {
			if err := rp.flush(ctx); err != nil {
				return err
			}
			rp.capped = nil // a command may create, drop or convert one
			return rp.command(ctx, e, d, t)
		}
		if rp.mode == modeApplyOps {
			if _, err := rp.run(ctx, "admin", applyOpsCmd(oplog.Reduce(e, nil))); err != nil {
				return fmt.Errorf("applyOps %s %s at %s: %w", e.Op, e.NS, e.TS, err)
			}
			if nsClassOf(e.NS) == nsViews && e.Op == "i" {
				rp.addView(logicalNS(e.NS, &e))
			}
			rp.count(logicalNS(e.NS, &e), 0)
			return nil
		}
		if f := oplogFeature(nsClassOf(e.NS)); f != "" {
			// Preflight refuses these on a server without applyOps;
			// never written as plain documents.
			return &UnsupportedError{Namespace: logicalNS(e.NS, &e), Feature: f,
				Err: fmt.Errorf("%w: %s %s at %s needs applyOps", ErrOplogEntry, e.Op, e.NS, e.TS)}
		}
		return rp.write(ctx, e)
	}
	return fmt.Errorf("%w: %s: no rule for action %s", ErrOplogEntry, d.Kind, d.Action)
}

// applyOpsCmd is the command that replays one operation on MongoDB. It
// bypasses document validation, as the data's inserts do and mongorestore
// sends it: an update of a document deleted later in the oplog becomes an
// upsert of a partial document on 5.0-8.0, which a strict validator refuses
// although the end state is valid.
func applyOpsCmd(op bson.D) bson.D {
	return bson.D{{Key: "applyOps", Value: bson.A{op}}, {Key: "bypassDocumentValidation", Value: true}}
}

// allowed says whether the replay may write ns: it is being restored
// (planned, or selected and named by the oplog and checked empty).
func (rp *replayer) allowed(ns string) bool { return rp.verdict(ns, nil) == "" }

// verdict is nsVerdict for this replay: "" when ns (of entry e, nil for a
// command's target) may be written, else why not.
func (rp *replayer) verdict(ns string, e *oplog.Entry) string {
	return nsVerdict(ns, e, rp.sel, rp.rs.opts.UsersAndRoles, rp.restored)
}

// restored says whether the collection ns is being restored.
func (rp *replayer) restored(ns string) bool {
	db, _, _ := strings.Cut(ns, ".")
	for _, n := range rp.byDB[db] {
		if n == ns {
			return true
		}
	}
	return false
}

func (rp *replayer) count(ns string, net int64) {
	ns = logicalNS(ns, nil) // a time-series collection's, not its buckets'
	eff := rp.rs.oplog[ns]
	if eff == nil {
		eff = &oplogEffect{}
		rp.rs.oplog[ns] = eff
	}
	eff.entries++
	eff.net += net
	rp.rs.applied++
	rp.rs.prog.oplogEntry()
}

// command replays a "c" entry the table applies.
func (rp *replayer) command(ctx context.Context, e oplog.Entry, d oplog.Decision, t oplog.Targets) error {
	db := e.DB()
	fail := func(err error) error { return fmt.Errorf("%s %s at %s: %w", d.Kind, e.NS, e.TS, err) }
	switch e.Cmd {
	case "dropDatabase":
		// Only what the restore wrote in that database goes (its
		// collections and views); the others are not the restore's to
		// drop.
		var views []string
		for ns := range rp.views[t.Database] {
			views = append(views, ns)
		}
		sort.Strings(views)
		for _, ns := range views {
			_, coll, _ := strings.Cut(ns, ".")
			if _, err := rp.run(ctx, db, bson.D{{Key: "drop", Value: coll}}); err != nil && !isCode(err, codeNamespaceNotFound) {
				return fail(err)
			}
			rp.count(ns, 0)
		}
		delete(rp.views, t.Database)
		for _, ns := range rp.byDB[t.Database] {
			_, coll, _ := strings.Cut(ns, ".")
			if _, err := rp.run(ctx, db, bson.D{{Key: "drop", Value: coll}}); err != nil && !isCode(err, codeNamespaceNotFound) {
				return fail(err)
			}
			rp.rs.catalog.dropCollection(ns)
			rp.unplace(ns)
			rp.count(ns, 0)
			rp.reset(ns)
		}
		return nil
	case "drop":
		rp.rs.catalog.dropCollection(t.Namespaces[0])
	case "collMod":
		o, rest, err := rp.rs.catalog.collMod(e)
		if err != nil {
			return fail(err)
		}
		if !rest {
			rp.count(t.Namespaces[0], 0)
			return nil
		}
		if rp.mode == modeApplyOps {
			_, err = rp.run(ctx, "admin", applyOpsCmd(oplog.Reduce(e, o)))
		} else {
			var cmd bson.D
			if err = bson.Unmarshal(o, &cmd); err == nil {
				_, err = rp.run(ctx, db, cmd)
			}
			if isCode(err, codeCommandNotFound) || isCode(err, codeNotImplemented) {
				rp.skip(skipNoServerCmd+":"+string(d.Kind), t.Namespaces[0], 1)
				return nil
			}
		}
		if err != nil {
			return fail(err)
		}
		rp.count(t.Namespaces[0], 0)
		return nil
	}
	o := e.O
	if e.Cmd == "create" {
		var err error
		if o, err = createCommand(o); err != nil {
			return fail(err)
		}
	}
	var err error
	if rp.mode == modeApplyOps {
		_, err = rp.run(ctx, "admin", applyOpsCmd(oplog.Reduce(e, o)))
	} else {
		var cmd bson.D
		if err = bson.Unmarshal(o, &cmd); err == nil {
			_, err = rp.run(ctx, db, cmd)
		}
	}
	switch {
	case err == nil:
	case e.Cmd == "create" && isCode(err, codeNamespaceExists):
		// The data restore created it already (created during the dump,
		// before the listing).
	case e.Cmd == "drop" && isCode(err, codeNamespaceNotFound):
	default:
		return fail(err)
	}
	rp.count(t.Namespaces[0], 0)
	if e.Cmd == "drop" || e.Cmd == "emptycapped" {
		rp.reset(t.Namespaces[0])
	}
	switch {
	case e.Cmd == "drop":
		rp.unplace(t.Namespaces[0])
	case e.Cmd == "create" && e.UI != "":
		// Every write since its creation follows in this oplog.
		rp.place(e.UI, t.Namespaces[0])
	}
	return nil
}

// place records that the collection with UUID uuid is at ns.
func (rp *replayer) place(uuid, ns string) {
	rp.unplace(ns)
	if old, ok := rp.uuidAt[uuid]; ok {
		delete(rp.nsUUID, old)
	}
	rp.uuidAt[uuid], rp.nsUUID[ns] = ns, uuid
}

// unplace forgets the collection at ns.
func (rp *replayer) unplace(ns string) {
	if u, ok := rp.nsUUID[ns]; ok {
		delete(rp.uuidAt, u)
		delete(rp.nsUUID, ns)
	}
}

// rename replays a renameCollection entry (5.0-8.0: {renameCollection:
// from, to, stayTemp, dropTarget: <UUID of the dropped target>} with the
// source's ui; $out, mapReduce and convertToCapped rename a temporary
// collection over their target so; a rename across databases is logged
// as a copy into a temporary collection of the target database renamed
// within it). When the target holds the entry's collection already (the
// dump read it under its new name), the rename is in the data: nothing is
// sent. Otherwise the renameCollection command runs, always with
// dropTarget: whatever the target holds there was replaced at that point.
func (rp *replayer) rename(ctx context.Context, e oplog.Entry, from, to string) error {
	if e.UI != "" && rp.uuidAt[e.UI] == to {
		rp.count(to, 0)
		return nil
	}
	cmd := bson.D{{Key: "renameCollection", Value: from}, {Key: "to", Value: to}, {Key: "dropTarget", Value: true}}
	if rp.mode == modeWrites {
		// FerretDB has no dropTarget: the target is dropped first.
		cmd = cmd[:2]
		db, coll, _ := strings.Cut(to, ".")
		if _, err := rp.run(ctx, db, bson.D{{Key: "drop", Value: coll}}); err != nil && !isCode(err, codeNamespaceNotFound) {
			return fmt.Errorf("renameCollection %s to %s at %s: drop the target: %w", from, to, e.TS, err)
		}
	}
	_, err := rp.run(ctx, "admin", cmd)
	if rp.mode == modeWrites && isCode(err, codeInvalidNamespace) {
		// FerretDB 1.24 renames only names without a dot ($out's
		// tmp.agg_out.*): the documents are copied, then the source
		// dropped.
		err = rp.copyCollection(ctx, from, to)
	}
	if err != nil {
		if isCode(err, codeNamespaceNotFound) {
			rp.skip(skipRenameNoSource, from+" to "+to, 1)
			return nil
		}
		return fmt.Errorf("renameCollection %s to %s at %s: %w", from, to, e.TS, err)
	}
	// The target now counts what the source held.
	expected := rp.dumped[from]
	uncertain := false
	if eff := rp.rs.oplog[from]; eff != nil {
		if eff.reset {
			expected = 0
		}
		expected += eff.net
		uncertain = eff.uncertain
	}
	rp.rs.catalog.rename(from, to)
	rp.count(to, 0)
	eff := rp.rs.oplog[to]
	eff.reset, eff.net, eff.uncertain = true, expected, uncertain
	if _, ok := rp.rs.oplog[from]; !ok {
		rp.rs.oplog[from] = &oplogEffect{}
	}
	rp.reset(from)
	u := e.UI
	if u == "" {
		u = rp.nsUUID[from]
	}
	rp.unplace(to)
	rp.unplace(from)
	if u != "" {
		rp.place(u, to)
	}
	return nil
}

// addView records a restored view, "db.name".
func (rp *replayer) addView(ns string) {
	db, _, _ := strings.Cut(ns, ".")
	if rp.views[db] == nil {
		rp.views[db] = map[string]bool{}
	}
	rp.views[db][ns] = true
}

// reset records that ns was emptied: its expected count starts from 0. A
// time-series collection's buckets count on the collection (as count
// does): a drop of system.buckets.<ts> resets <ts>.
func (rp *replayer) reset(ns string) {
	ns = logicalNS(ns, nil)
	eff := rp.rs.oplog[ns]
	if eff == nil {
		eff = &oplogEffect{}
		rp.rs.oplog[ns] = eff
	}
	eff.reset, eff.net, eff.uncertain = true, 0, false
}

// copyCollection moves the documents of from into to (created by the
// insert) in batches, then drops from: a rename on a server that cannot
// rename that name. Memory holds one batch.
func (rp *replayer) copyCollection(ctx context.Context, from, to string) error {
	fdb, fcoll, _ := strings.Cut(from, ".")
	tdb, tcoll, _ := strings.Cut(to, ".")
	// The target keeps the source's options (convertToCapped's capped).
	specs, err := rp.rs.client.Database(fdb).ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: fcoll}})
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		return mongo.CommandError{Code: codeNamespaceNotFound, Message: "source " + from + " not found"}
	}
	create := bson.D{{Key: "create", Value: tcoll}}
	var opts bson.D
	if err := bson.Unmarshal(specs[0].Options, &opts); err != nil {
		return err
	}
	if _, err := rp.run(ctx, tdb, append(create, opts...)); err != nil && !isCode(err, codeNamespaceExists) {
		return err
	}
	src := rp.rs.client.Database(fdb).Collection(fcoll)
	cur, err := src.Find(ctx, bson.D{}, options.Find().SetBatchSize(1000))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	var batch bson.A
	size := 0
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := rp.run(ctx, tdb, bson.D{{Key: "insert", Value: tcoll}, {Key: "documents", Value: batch}})
		batch, size = nil, 0
		return err
	}
	for cur.Next(ctx) {
		doc := append(bson.Raw(nil), cur.Current...)
		batch = append(batch, doc)
		if size += len(doc); len(batch) >= replayBatchOps || size >= replayBatchBytes {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	if err := send(); err != nil {
		return err
	}
	_, err = rp.run(ctx, fdb, bson.D{{Key: "drop", Value: fcoll}})
	return err
}

// createCommand is a create entry's command without the options a server
// refuses or must not be given, as mongorestore strips them: autoIndexId
// (false is refused since 4.0, the option itself since 8.2; true is the
// default) and recordIdsReplicated (the source cluster's storage choice).
func createCommand(o bson.Raw) (bson.Raw, error) {
	var d bson.D
	if err := bson.Unmarshal(o, &d); err != nil {
		return nil, err
	}
	kept := createOptions(d)
	if len(kept) == len(d) {
		return o, nil
	}
	return bson.Marshal(kept)
}

// createOptions drops autoIndexId and recordIdsReplicated from a create
// command or collection options.
func createOptions(d bson.D) bson.D {
	out := make(bson.D, 0, len(d))
	for _, f := range d {
		if f.Key != "autoIndexId" && f.Key != "recordIdsReplicated" {
			out = append(out, f)
		}
	}
	return out
}
