package restore

import (
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/oplog"
)

// nsRename is one restore's renaming (Options.NSFrom/NSTo) of the
// namespaces --ns selected. A selected namespace no pair renames is not
// restored: a renaming restores beside the live data, never over it
// (mongorestore would restore it under its own name). Everything after
// the renaming (targets, drop, the replay's writes, the report) sees the
// new names only; the old ones are never written.
type nsRename struct {
	r   *Renamer
	sel matcher
	// src maps each renamed namespace to its new name, dst the reverse:
	// two namespaces onto one are refused.
	src map[string]string
	dst map[string]string
}

func newNSRename(r *Renamer, sel matcher, known map[string]string) *nsRename {
	n := &nsRename{r: r, sel: sel, src: map[string]string{}, dst: map[string]string{}}
	for s, d := range known {
		n.src[s], n.dst[d] = d, s
	}
	return n
}

// mapNS returns the new name of the collection (or view, or time-series
// collection) ns, and false when it is not restored (not selected, no
// pair matches it, or a namespace of the server's that is never renamed).
func (n *nsRename) mapNS(ns string) (string, bool, error) {
	if t, ok := n.src[ns]; ok {
		return t, true, nil
	}
	if nsClassOf(ns) != nsPlain || !n.sel.match(ns) {
		return "", false, nil
	}
	t, ok := n.r.Map(ns)
	if !ok {
		return "", false, nil
	}
	if err := checkTarget(ns, t); err != nil {
		return "", false, err
	}
	if other, ok := n.dst[t]; ok && other != ns {
		return "", false, fmt.Errorf("%w: %s and %s would both be renamed %s", ErrBadRename, other, ns, t)
	}
	if len(n.src) >= maxOplogNamespace {
		return "", false, fmt.Errorf("%w: more than %d namespaces renamed", ErrBadRename, maxOplogNamespace)
	}
	n.src[ns], n.dst[t] = t, ns
	return t, true, nil
}

// check refuses a new name that is one of the renamed namespaces: the
// old names are never written.
func (n *nsRename) check() error {
	var bad []string
	for t, s := range n.dst {
		if _, ok := n.src[t]; ok {
			bad = append(bad, fmt.Sprintf("%s would be renamed %s, which is renamed too", s, t))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: %s (the namespaces renamed are never written)", ErrBadRename, strings.Join(bad, "; "))
	}
	return nil
}

// viewOn is the collection a view of the new database tdb reads, given
// the one it read in db: its new name when it is renamed into tdb too,
// else the same name.
func (n *nsRename) viewOn(db, tdb, on string) string {
	src := db + "." + on
	t, ok := n.src[src]
	if !ok && n.sel.match(src) {
		t, ok = n.r.Map(src)
	}
	if ok {
		if d, c, _ := strings.Cut(t, "."); d == tdb {
			return c
		}
	}
	return on
}

// physical is the namespace the server stores the logical namespace
// target under, for an entry on ns: a time-series collection's buckets,
// the views' catalog.
func physical(ns, target string) string {
	tdb, tcoll, _ := strings.Cut(target, ".")
	switch nsClassOf(ns) {
	case nsBuckets:
		return tdb + ".system.buckets." + tcoll
	case nsViews:
		return tdb + ".system.views"
	}
	return target
}

// entry rewrites one operation (not an applyOps or a transaction's
// container: their operations come here one by one) under the new names.
// It returns the operations to apply, or skip, the namespace to count as
// not restored, when the entry names no renamed namespace. A dropDatabase
// becomes a drop of each renamed collection of that database (their new
// names may be in several databases); a renameCollection between a
// renamed and an unrenamed namespace is refused, as with --ns.
func (n *nsRename) entry(e oplog.Entry, d oplog.Decision) (out []oplog.Entry, skip string, err error) {
	t, err := oplog.TargetsOf(e)
	if err != nil {
		return nil, "", err
	}
	if d.Action == oplog.Refuse {
		for _, ns := range t.Namespaces {
			if _, ok, err := n.mapNS(logicalNS(ns, crudEntry(&e))); err != nil || ok {
				return nil, "", refusal(e, d, t, err)
			}
		}
		return nil, strings.Join(t.Namespaces, " to "), nil
	}
	if t.Database != "" { // dropDatabase
		var srcs []string
		for s := range n.src {
			if db, _, _ := strings.Cut(s, "."); db == t.Database {
				srcs = append(srcs, s)
			}
		}
		if len(srcs) == 0 {
			return nil, t.Database, nil
		}
		sort.Strings(srcs)
		for _, s := range srcs {
			tdb, tcoll, _ := strings.Cut(n.src[s], ".")
			o, err := bson.Marshal(bson.D{{Key: "drop", Value: tcoll}})
			if err != nil {
				return nil, "", err
			}
			r, err := rewriteEntry(e, tdb+".$cmd", o, nil)
			if err != nil {
				return nil, "", err
			}
			out = append(out, r)
		}
		return out, "", nil
	}
	if e.Op != "c" {
		return n.crud(e)
	}
	if e.Cmd == "renameCollection" && len(t.Namespaces) == 2 {
		from, okF, err := n.mapNS(logicalNS(t.Namespaces[0], nil))
		if err != nil {
			return nil, "", err
		}
		to, okT, err := n.mapNS(logicalNS(t.Namespaces[1], nil))
		if err != nil {
			return nil, "", err
		}
		switch {
		case !okF && !okT:
			return nil, strings.Join(t.Namespaces, " to "), nil
		case okF != okT:
			return nil, "", fmt.Errorf("%w: %s of %s at %s: one name is renamed and the other is not (--ns-from, --ns): restore both or neither",
				ErrOplogEntry, d.Kind, strings.Join(t.Namespaces, " to "), e.TS)
		}
		tdb, _, _ := strings.Cut(from, ".")
		o, err := setFields(e.O, map[string]string{"renameCollection": physical(t.Namespaces[0], from), "to": physical(t.Namespaces[1], to)})
		if err != nil {
			return nil, "", err
		}
		r, err := rewriteEntry(e, tdb+".$cmd", o, nil)
		return []oplog.Entry{r}, "", err
	}
	if len(t.Namespaces) != 1 {
		return nil, strings.Join(t.Namespaces, " to "), nil
	}
	ns := t.Namespaces[0]
	target, ok, err := n.mapNS(logicalNS(ns, nil))
	if err != nil || !ok {
		return nil, logicalNS(ns, nil), err
	}
	tdb, _, _ := strings.Cut(target, ".")
	_, tcoll, _ := strings.Cut(physical(ns, target), ".")
	set := map[string]string{e.Cmd: tcoll}
	if on, ok := e.CmdString("viewOn"); ok {
		set["viewOn"] = n.viewOn(e.DB(), tdb, on)
	}
	o, err := setFields(e.O, set)
	if err != nil {
		return nil, "", err
	}
	r, err := rewriteEntry(e, tdb+".$cmd", o, nil)
	return []oplog.Entry{r}, "", err
}

// crud rewrites an insert, update or delete: its ns, and for a view
// definition (system.views) its _id, the view's namespace, and viewOn.
func (n *nsRename) crud(e oplog.Entry) ([]oplog.Entry, string, error) {
	logical := logicalNS(e.NS, &e)
	target, ok, err := n.mapNS(logical)
	if err != nil || !ok {
		return nil, logical, err
	}
	o, o2 := e.O, e.O2
	if nsClassOf(e.NS) == nsViews {
		tdb, _, _ := strings.Cut(target, ".")
		switch e.Op {
		case "i", "d":
			set := map[string]string{"_id": target}
			if on, ok := e.CmdString("viewOn"); ok {
				set["viewOn"] = n.viewOn(e.DB(), tdb, on)
			}
			if o, err = setFields(o, set); err != nil {
				return nil, "", err
			}
		case "u":
			if o2, err = setFields(o2, map[string]string{"_id": target}); err != nil {
				return nil, "", err
			}
		}
	}
	r, err := rewriteEntry(e, physical(e.NS, target), o, o2)
	return []oplog.Entry{r}, "", err
}

func refusal(e oplog.Entry, d oplog.Decision, t oplog.Targets, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s of %s at %s: %s", ErrOplogEntry, d.Kind, strings.Join(t.Namespaces, " to "), e.TS, d.Why)
}

// rewriteEntry is e with ns, o and (when not nil) o2 replaced.
func rewriteEntry(e oplog.Entry, ns string, o, o2 bson.Raw) (oplog.Entry, error) {
	idx, b := bsoncore.AppendDocumentStart(nil)
	elems, err := e.Raw.Elements()
	if err != nil {
		return e, err
	}
	hasNS := false
	for _, el := range elems {
		switch el.Key() {
		case "ns":
			hasNS = true
			b = bsoncore.AppendStringElement(b, "ns", ns)
		case "o":
			b = bsoncore.AppendDocumentElement(b, "o", o)
		case "o2":
			if o2 != nil {
				b = bsoncore.AppendDocumentElement(b, "o2", o2)
			} else {
				b = append(b, el...)
			}
		default:
			b = append(b, el...)
		}
	}
	if !hasNS {
		b = bsoncore.AppendStringElement(b, "ns", ns)
	}
	b, err = bsoncore.AppendDocumentEnd(b, idx)
	if err != nil {
		return e, err
	}
	return e.WithRaw(bson.Raw(b))
}

// setFields returns doc with the string fields named in set replaced,
// every other field kept byte for byte.
func setFields(doc bson.Raw, set map[string]string) (bson.Raw, error) {
	idx, b := bsoncore.AppendDocumentStart(nil)
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	for _, el := range elems {
		if v, ok := set[el.Key()]; ok {
			b = bsoncore.AppendStringElement(b, el.Key(), v)
			continue
		}
		b = append(b, el...)
	}
	b, err = bsoncore.AppendDocumentEnd(b, idx)
	return bson.Raw(b), err
}

// renameViewOn rewrites a planned view's viewOn option for its new
// database.
func (n *nsRename) renameViewOn(opts bson.D, db, tdb string) bson.D {
	out := make(bson.D, len(opts))
	copy(out, opts)
	for i, f := range out {
		if s, ok := f.Value.(string); ok && f.Key == "viewOn" {
			out[i].Value = n.viewOn(db, tdb, s)
		}
	}
	return out
}
