package embedded

import (
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// HoldsCommand is Holds for an oplog command entry's o (the command as a
// real mongod logs it: {create: "c", validator: ..., idIndex: ...},
// {createIndexes: "c", v: 2, key: ..., name: ...}, {commitIndexBuild:
// "c", indexes: [...]}, {collMod: "c", index: {...}}...): nil when the
// embedded server (FerretDB v1.24.2) takes what a restore's replay makes
// of it, else a *NotHeldError naming the first field it does not. It
// inspects the bytes only, so a restore test finds out in its plan's pass
// rather than fail its replay (or its index builds) on a backup that is
// fine. The rules, from FerretDB v1.24.2's handlers:
//
//   - every value: as in HoldsValues (a Decimal128 in a validator or a
//     partial filter makes FerretDB's conversion drop the connection);
//   - create (msg_create.go): no timeseries, expireAfterSeconds,
//     validator, validationLevel, validationAction, viewOn, pipeline or
//     collation (not implemented), no clusteredIndex (accepted and
//     dropped), no _id index but the default one (idIndex is ignored);
//   - createIndexes and commitIndexBuild: every index as HoldsIndex;
//   - collMod: an index change other than unique (expireAfterSeconds,
//     hidden, prepareUnique, forceNonUnique) lands in the index the
//     restore builds, which FerretDB refuses; its other changes (a
//     validator...) the replay skips when the server has no collMod;
//   - convertToCapped and emptycapped: FerretDB has neither command.
//
// The other commands a replay applies (drop, dropDatabase,
// renameCollection, dropIndexes) are held.
func HoldsCommand(o []byte) error {
	doc := bsoncore.Document(o)
	first, err := doc.IndexErr(0)
	if err != nil {
		return &NotHeldError{Why: fmt.Sprintf("not a command: %v", err)}
	}
	cmd := first.Key()
	if err := holds(doc, "", false, 0); err != nil {
		return err
	}
	elems, err := doc.Elements()
	if err != nil {
		return &NotHeldError{Why: fmt.Sprintf("not valid BSON: %v", err)}
	}
	switch cmd {
	case "create":
		for _, e := range elems[1:] {
			switch e.Key() {
			case "timeseries", "expireAfterSeconds", "validator", "validationLevel", "validationAction", "viewOn", "pipeline", "collation":
				return &NotHeldError{Path: e.Key(), Why: "a create option FerretDB lacks"}
			case "clusteredIndex":
				return &NotHeldError{Path: e.Key(), Why: "a clustered collection (FerretDB drops the option)"}
			case "idIndex":
				if err := defaultIDIndex(e.Value()); err != nil {
					return err
				}
			}
		}
	case "createIndexes":
		// The oplog's form: the spec's fields beside the command's name.
		if err := holdsIndex(elems[1:], ""); err != nil {
			return err
		}
	case "commitIndexBuild":
		v, err := doc.LookupErr("indexes")
		if err != nil {
			return nil
		}
		a, ok := v.ArrayOK()
		if !ok {
			return &NotHeldError{Path: "indexes", Why: "not an array"}
		}
		vals, err := a.Values()
		if err != nil {
			return &NotHeldError{Path: "indexes", Why: fmt.Sprintf("not valid BSON: %v", err)}
		}
		for i, iv := range vals {
			spec, ok := iv.DocumentOK()
			if !ok {
				return &NotHeldError{Path: fmt.Sprintf("indexes.%d", i), Why: "not a document"}
			}
			if err := HoldsIndexPath(spec, fmt.Sprintf("indexes.%d", i)); err != nil {
				return err
			}
		}
	case "collMod":
		v, err := doc.LookupErr("index")
		if err != nil {
			return nil
		}
		mod, ok := v.DocumentOK()
		if !ok {
			return &NotHeldError{Path: "index", Why: "not a document"}
		}
		mods, err := mod.Elements()
		if err != nil {
			return &NotHeldError{Path: "index", Why: fmt.Sprintf("not valid BSON: %v", err)}
		}
		for _, m := range mods {
			switch m.Key() {
			case "name", "keyPattern", "unique":
			default:
				return &NotHeldError{Path: "index." + m.Key(), Why: "an index option FerretDB lacks"}
			}
		}
	case "convertToCapped", "emptycapped":
		return &NotHeldError{Why: fmt.Sprintf("a %s command, which FerretDB lacks", cmd)}
	}
	return nil
}

// HoldsIndex says whether the embedded server (FerretDB v1.24.2,
// msg_createindexes.go) builds the index spec (as a dump's
// metadata.json or the oplog holds it): nil, or a *NotHeldError naming
// the first field it refuses. Its options may be key, name, unique,
// background and sparse (v and ns, which a restore removes, are
// allowed), its key fields ascending or descending (1 or -1: no text,
// 2dsphere, hashed or wildcard index), and no other option
// (expireAfterSeconds, partialFilterExpression, hidden, collation...).
func HoldsIndex(spec []byte) error {
	return HoldsIndexPath(bsoncore.Document(spec), "")
}

// HoldsIndexPath is HoldsIndex with the spec's place in a larger document
// (its errors' paths start with prefix).
func HoldsIndexPath(spec []byte, prefix string) error {
	doc := bsoncore.Document(spec)
	if err := holds(doc, prefix, false, 0); err != nil {
		return err
	}
	elems, err := doc.Elements()
	if err != nil {
		return &NotHeldError{Path: prefix, Why: fmt.Sprintf("not valid BSON: %v", err)}
	}
	return holdsIndex(elems, prefix)
}

func holdsIndex(elems []bsoncore.Element, prefix string) error {
	at := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	for _, e := range elems {
		switch e.Key() {
		case "name", "v", "ns", "background", "sparse", "unique":
		case "key":
			key, ok := e.Value().DocumentOK()
			if !ok {
				return &NotHeldError{Path: at("key"), Why: "not a document"}
			}
			fields, err := key.Elements()
			if err != nil {
				return &NotHeldError{Path: at("key"), Why: fmt.Sprintf("not valid BSON: %v", err)}
			}
			for _, f := range fields {
				if !plusMinusOne(f.Value()) {
					return &NotHeldError{Path: at("key." + f.Key()), Why: fmt.Sprintf("an index key %s (FerretDB builds only 1 and -1)", f.Value())}
				}
			}
		default:
			return &NotHeldError{Path: at(e.Key()), Why: "an index option FerretDB lacks"}
		}
	}
	return nil
}

// plusMinusOne says whether v is the number 1 or -1 (an ascending or
// descending key; FerretDB takes a whole double too).
func plusMinusOne(v bsoncore.Value) bool {
	var f float64
	switch v.Type {
	case bsoncore.TypeInt32:
		f = float64(v.Int32())
	case bsoncore.TypeInt64:
		f = float64(v.Int64())
	case bsoncore.TypeDouble:
		f = v.Double()
	default:
		return false
	}
	return math.Abs(f) == 1
}

// defaultIDIndex says whether a create's idIndex is the default one
// ({v, key: {_id: 1}, name: "_id_", ns}): FerretDB ignores idIndex, so any
// other (a collation) would not be kept.
func defaultIDIndex(v bsoncore.Value) error {
	spec, ok := v.DocumentOK()
	if !ok {
		return &NotHeldError{Path: "idIndex", Why: "not a document"}
	}
	elems, err := spec.Elements()
	if err != nil {
		return &NotHeldError{Path: "idIndex", Why: fmt.Sprintf("not valid BSON: %v", err)}
	}
	for _, e := range elems {
		switch e.Key() {
		case "v", "ns", "name":
		case "key":
			key, ok := e.Value().DocumentOK()
			if !ok {
				return &NotHeldError{Path: "idIndex.key", Why: "not a document"}
			}
			fields, _ := key.Elements()
			if len(fields) != 1 || fields[0].Key() != "_id" || !plusMinusOne(fields[0].Value()) {
				return &NotHeldError{Path: "idIndex.key", Why: "a custom _id index FerretDB does not keep"}
			}
		default:
			return &NotHeldError{Path: "idIndex." + e.Key(), Why: "a custom _id index FerretDB does not keep"}
		}
	}
	return nil
}
