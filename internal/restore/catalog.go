package restore

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oplog"
)

// indexCatalog is the list of indexes the restore builds once the oplog is
// replayed: the dumped ones, changed by the oplog's index entries
// (createIndexes and commitIndexBuild add, dropIndexes removes, collMod
// changes an index's options, drop forgets them). Building after the replay
// means a unique index is checked against the data at consistent_to, not
// against collections read at different moments (mongorestore does the
// same).
type indexCatalog struct {
	colls map[string]*catalogEntry
}

type catalogEntry struct {
	db, name string
	specs    []bson.D
	bytes    int64 // data size, to build the largest first
	// fromOplog counts the specs added by the oplog.
	fromOplog int
	// dropped: the oplog dropped the collection and nothing wrote to it
	// since; it has no index to build and none to expect.
	dropped bool
}

func newIndexCatalog() *indexCatalog { return &indexCatalog{colls: map[string]*catalogEntry{}} }

func (c *indexCatalog) entry(ns string) *catalogEntry {
	ce := c.colls[ns]
	if ce == nil {
		db, name, _ := strings.Cut(ns, ".")
		ce = &catalogEntry{db: db, name: name}
		c.colls[ns] = ce
	}
	return ce
}

// add puts the dumped indexes of a restored collection in.
func (c *indexCatalog) add(pc *PlannedCollection) {
	ce := c.entry(pc.Namespace())
	ce.specs = append(ce.specs, pc.Indexes...)
	ce.bytes = pc.Bytes
}

// sorted returns the entries, the largest collection first.
func (c *indexCatalog) sorted() []*catalogEntry {
	out := make([]*catalogEntry, 0, len(c.colls))
	for _, ce := range c.colls {
		out = append(out, ce)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].bytes != out[j].bytes {
			return out[i].bytes > out[j].bytes
		}
		return out[i].db+"."+out[i].name < out[j].db+"."+out[j].name
	})
	return out
}

// dropCollection records a drop, also of a collection only the oplog
// created: it ends the restore with no index to expect.
func (c *indexCatalog) dropCollection(ns string) {
	ce := c.entry(ns)
	ce.specs, ce.fromOplog, ce.dropped = nil, 0, true
}

// rename moves from's indexes to to (replacing to's: a rename drops its
// target), as the server does.
func (c *indexCatalog) rename(from, to string) {
	src := c.entry(from)
	dst := c.entry(to)
	dst.specs, dst.fromOplog, dst.dropped = src.specs, src.fromOplog, false
	dst.bytes = max(dst.bytes, src.bytes)
	src.specs, src.fromOplog, src.dropped = nil, 0, true
}

// revive records a write to ns after a drop: the collection exists again.
func (c *indexCatalog) revive(ns string) {
	if ce := c.colls[ns]; ce != nil {
		ce.dropped = false
	}
}

func specName(s bson.D) string {
	for _, f := range s {
		if f.Key == "name" {
			n, _ := f.Value.(string)
			return n
		}
	}
	return ""
}

func (ce *catalogEntry) put(spec bson.D) {
	ce.dropped = false
	name := specName(spec)
	for i, s := range ce.specs {
		if specName(s) == name {
			ce.specs[i] = spec
			return
		}
	}
	ce.specs = append(ce.specs, spec)
	ce.fromOplog++
}

// apply takes an entry decided IndexCatalog.
func (c *indexCatalog) apply(e oplog.Entry) error {
	t, err := oplog.TargetsOf(e)
	if err != nil {
		return err
	}
	ce := c.entry(t.Namespaces[0])
	var o bson.D
	if err := bson.Unmarshal(e.O, &o); err != nil {
		return err
	}
	switch e.Cmd {
	case "createIndexes":
		// 4.2+ writes one index per entry, its spec beside the name.
		spec, err := cleanIndexSpec(o[1:])
		if err != nil {
			return err
		}
		if spec != nil {
			ce.put(spec)
		}
		return nil
	case "commitIndexBuild":
		for _, f := range o[1:] {
			if f.Key != "indexes" {
				continue
			}
			arr, ok := f.Value.(bson.A)
			if !ok {
				return errors.New("indexes is not an array")
			}
			for _, v := range arr {
				d, ok := v.(bson.D)
				if !ok {
					return errors.New("index spec is not a document")
				}
				spec, err := cleanIndexSpec(d)
				if err != nil {
					return err
				}
				if spec != nil {
					ce.put(spec)
				}
			}
			return nil
		}
		return errors.New("commitIndexBuild without indexes")
	default: // dropIndexes and its aliases
		for _, f := range o[1:] {
			if f.Key == "index" {
				return ce.drop(f.Value)
			}
		}
		return errors.New("dropIndexes without index")
	}
}

// drop removes the indexes dropIndexes names: a name, "*", a key pattern
// or a list of names.
func (ce *catalogEntry) drop(v any) error {
	keep := ce.specs[:0]
	match := func(s bson.D) bool {
		switch x := v.(type) {
		case string:
			return x == "*" || specName(s) == x
		case bson.D:
			for _, f := range s {
				if f.Key == "key" {
					a, _ := bson.Marshal(f.Value)
					b, _ := bson.Marshal(normalizeKey(x))
					return string(a) == string(b)
				}
			}
		case bson.A:
			for _, n := range x {
				if n == specName(s) {
					return true
				}
			}
		}
		return false
	}
	switch v.(type) {
	case string, bson.D, bson.A:
	default:
		return fmt.Errorf("dropIndexes index of type %T", v)
	}
	for _, s := range ce.specs {
		if !match(s) {
			keep = append(keep, s)
		}
	}
	ce.specs = keep
	return nil
}

// normalizeKey turns integral float key values into int32, as
// cleanIndexSpec does for specs.
func normalizeKey(k bson.D) bson.D {
	out := make(bson.D, len(k))
	for i, f := range k {
		if v, ok := f.Value.(float64); ok && v == float64(int32(v)) {
			f.Value = int32(v)
		}
		out[i] = f
	}
	return out
}

// collMod applies a collMod's index part to the catalog and returns the
// command without it (and without the options servers >= 4.2 reject), and
// whether anything is left to apply.
func (c *indexCatalog) collMod(e oplog.Entry) (bson.Raw, bool, error) {
	t, err := oplog.TargetsOf(e)
	if err != nil {
		return nil, false, err
	}
	var o bson.D
	if err := bson.Unmarshal(e.O, &o); err != nil {
		return nil, false, err
	}
	rest := bson.D{}
	for _, f := range o {
		switch f.Key {
		case "index":
			mod, ok := f.Value.(bson.D)
			if !ok {
				return nil, false, errors.New("collMod index is not a document")
			}
			c.entry(t.Namespaces[0]).modify(mod)
		case "noPadding", "usePowerOf2Sizes":
		default:
			rest = append(rest, f)
		}
	}
	raw, err := bson.Marshal(rest)
	return raw, len(rest) > 1, err
}

// modify changes the options of the index a collMod names (by name or key
// pattern): expireAfterSeconds, hidden, unique, prepareUnique.
func (ce *catalogEntry) modify(mod bson.D) {
	var name string
	var key bson.D
	for _, f := range mod {
		switch f.Key {
		case "name":
			name, _ = f.Value.(string)
		case "keyPattern":
			key, _ = f.Value.(bson.D)
		}
	}
	for i, s := range ce.specs {
		hit := name != "" && specName(s) == name
		if !hit && key != nil {
			for _, f := range s {
				if f.Key == "key" {
					a, _ := bson.Marshal(f.Value)
					b, _ := bson.Marshal(normalizeKey(key))
					hit = string(a) == string(b)
				}
			}
		}
		if !hit {
			continue
		}
		for _, f := range mod {
			if f.Key == "name" || f.Key == "keyPattern" {
				continue
			}
			set := false
			for j := range s {
				if s[j].Key == f.Key {
					s[j].Value, set = f.Value, true
				}
			}
			if !set {
				s = append(s, f)
			}
		}
		ce.specs[i] = s
	}
}
