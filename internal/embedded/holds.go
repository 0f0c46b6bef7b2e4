package embedded

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// NotHeldError is a document the embedded server (FerretDB v1.24) cannot
// hold as it is: it refuses it with a write error, closes the connection
// (Decimal128 and the other types its conversion has no case for make it
// panic), or stores something else (-0 as 0, invalid UTF-8 replaced).
// Path is the field ("a.b.2"), Why what about it.
type NotHeldError struct {
	Path string
	Why  string
}

func (e *NotHeldError) Error() string {
	if e.Path == "" {
		return e.Why
	}
	return fmt.Sprintf("field %q: %s", e.Path, e.Why)
}

// Holds says whether the embedded server can store doc (a valid BSON
// document, as a dump wrote it) and give back the same bytes: nil, or a
// *NotHeldError naming the first field it cannot. It inspects the bytes
// only, so a caller finds out before sending the document: FerretDB
// answers some of these by dropping the connection, which would end
// every other write on it too. The rules are FerretDB v1.24.2's
// (types.Document.ValidateData, wirebson's decoder, its bson package's
// conversion, its "known differences"; ../shared/notes/ferretdb.md):
//
//   - field names: not starting with '$', without '.', valid UTF-8, no
//     name twice in one document (MongoDB 5.0+ stores such names: DBRef's
//     $ref/$id, a map keyed by host names or versions);
//   - types: no Decimal128, undefined, DBPointer, JavaScript (with or
//     without scope), Symbol, MinKey or MaxKey;
//   - values: no NaN or ±Inf doubles, no -0 (stored as 0), no array
//     directly inside an array, no string of invalid UTF-8 (replaced by
//     U+FFFD). A string holding a NUL, which FerretDB's documentation
//     lists, is held on SQLite (TestHolds).
func Holds(doc []byte) error {
	return holds(bsoncore.Document(doc), "", true, 0)
}

// HoldsValues is Holds for an update's operand (an oplog "u" entry's o:
// {$set: {"a.b": 1}}, {$v: 2, diff: {...}}), whose field names are
// operators and paths the server reads as such: only the values are
// checked.
func HoldsValues(doc []byte) error {
	return holds(bsoncore.Document(doc), "", false, 0)
}

// maxHoldsDepth bounds the recursion (the restore validates documents to
// 200 levels before anything asks; this is a second guard).
const maxHoldsDepth = 256

func holds(doc bsoncore.Document, prefix string, names bool, depth int) error {
	if depth > maxHoldsDepth {
		return &NotHeldError{Path: prefix, Why: "nested too deep"}
	}
	elems, err := doc.Elements()
	if err != nil {
		return &NotHeldError{Path: prefix, Why: fmt.Sprintf("not valid BSON: %v", err)}
	}
	// Duplicate names: compared pairwise in a small document (no map per
	// document: Holds runs on every document of a drill's backup).
	var seen map[string]bool
	if names && len(elems) > 16 {
		seen = make(map[string]bool, len(elems))
	}
	for i, e := range elems {
		key := e.Key()
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		if names {
			switch {
			case strings.HasPrefix(key, "$"):
				return &NotHeldError{Path: path, Why: "a field name starting with '$'"}
			case strings.Contains(key, "."):
				return &NotHeldError{Path: path, Why: "a field name containing '.'"}
			case !utf8.ValidString(key):
				return &NotHeldError{Path: path, Why: "a field name that is not valid UTF-8"}
			case seen != nil && seen[key], seen == nil && twice(elems[:i], key):
				return &NotHeldError{Path: path, Why: "a field name twice in one document"}
			}
			if seen != nil {
				seen[key] = true
			}
		}
		if err := holdsValue(e.Value(), path, names, false, depth); err != nil {
			return err
		}
	}
	return nil
}

func holdsValue(v bsoncore.Value, path string, names, inArray bool, depth int) error {
	switch v.Type {
	case bsoncore.TypeDecimal128:
		return &NotHeldError{Path: path, Why: "a Decimal128 value"}
	case bsoncore.TypeUndefined, bsoncore.TypeDBPointer, bsoncore.TypeJavaScript, bsoncore.TypeCodeWithScope,
		bsoncore.TypeSymbol, bsoncore.TypeMinKey, bsoncore.TypeMaxKey:
		return &NotHeldError{Path: path, Why: "a value of type " + v.Type.String()}
	case bsoncore.TypeDouble:
		f, ok := v.DoubleOK()
		switch {
		case !ok:
			return &NotHeldError{Path: path, Why: "a malformed double"}
		case math.IsNaN(f) || math.IsInf(f, 0):
			return &NotHeldError{Path: path, Why: fmt.Sprintf("a double %v", f)}
		case f == 0 && math.Signbit(f):
			return &NotHeldError{Path: path, Why: "a double -0 (stored as 0)"}
		}
	case bsoncore.TypeString:
		s, ok := v.StringValueOK()
		switch {
		case !ok:
			return &NotHeldError{Path: path, Why: "a malformed string"}
		case !utf8.ValidString(s):
			return &NotHeldError{Path: path, Why: "a string that is not valid UTF-8"}
		}
	case bsoncore.TypeEmbeddedDocument:
		d, ok := v.DocumentOK()
		if !ok {
			return &NotHeldError{Path: path, Why: "a malformed document"}
		}
		return holds(d, path, names, depth+1)
	case bsoncore.TypeArray:
		if inArray {
			return &NotHeldError{Path: path, Why: "an array directly inside an array"}
		}
		a, ok := v.ArrayOK()
		if !ok {
			return &NotHeldError{Path: path, Why: "a malformed array"}
		}
		vals, err := a.Values()
		if err != nil {
			return &NotHeldError{Path: path, Why: fmt.Sprintf("not valid BSON: %v", err)}
		}
		for i, iv := range vals {
			if err := holdsValue(iv, fmt.Sprintf("%s.%d", path, i), names, true, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// twice says whether one of before is named key.
func twice(before []bsoncore.Element, key string) bool {
	for _, e := range before {
		if e.Key() == key {
			return true
		}
	}
	return false
}
