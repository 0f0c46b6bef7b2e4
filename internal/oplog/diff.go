package oplog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrDiff is matched by a $v:2 update diff a0 cannot read.
var ErrDiff = errors.New("unsupported update diff")

// FieldNameError names a field the server without applyOps cannot store:
// a name holding '.' or starting with '$' (MongoDB allows them since 5.0,
// FerretDB refuses them; a plain update cannot address them either).
type FieldNameError struct {
	Path string
}

func (e *FieldNameError) Error() string {
	return fmt.Sprintf("field %q has a name with '.' or a leading '$', which this server cannot store", e.Path)
}

// CheckFieldNames returns a *FieldNameError for the first field name in d
// (at any depth) that holds '.' or starts with '$'.
func CheckFieldNames(d bson.D) error { return checkNames(d, "") }

func checkNames(v any, path string) error {
	switch x := v.(type) {
	case bson.D:
		for _, f := range x {
			p := f.Key
			if path != "" {
				p = path + "." + f.Key
			}
			if strings.Contains(f.Key, ".") || strings.HasPrefix(f.Key, "$") {
				return &FieldNameError{Path: p}
			}
			if err := checkNames(f.Value, p); err != nil {
				return err
			}
		}
	case bson.A:
		for i, el := range x {
			if err := checkNames(el, path+"."+strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsDiff reports whether the o of an update entry is a $v:2 diff, and
// returns the diff.
func IsDiff(o bson.D) (bson.D, bool) {
	var diff bson.D
	v2 := false
	for _, f := range o {
		switch f.Key {
		case "$v":
			if n, ok := numberOf(f.Value); ok && n == 2 {
				v2 = true
			}
		case "diff":
			diff, _ = f.Value.(bson.D)
		}
	}
	return diff, v2 && diff != nil
}

func numberOf(v any) (int64, bool) {
	switch n := v.(type) {
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// ApplyDiff applies a $v:2 update diff to doc, as mongod does, and returns
// the new document and how many sub-diffs it left out. A sub-diff whose
// field is not (or no longer) a document or an array is left out: when an
// oplog is replayed over data read later than the entry, such a field was
// changed by a later entry of the same oplog, whose replay then sets it;
// the other parts of the diff are applied all the same.
func ApplyDiff(doc bson.D, diff bson.D) (bson.D, int, error) {
	return applyDocDiff(doc, diff)
}

func applyDocDiff(doc bson.D, diff bson.D) (bson.D, int, error) {
	out := append(bson.D(nil), doc...)
	skipped := 0
	index := func(k string) int {
		for i, f := range out {
			if f.Key == k {
				return i
			}
		}
		return -1
	}
	for _, f := range diff {
		switch {
		case f.Key == "d":
			d, ok := f.Value.(bson.D)
			if !ok {
				return nil, 0, fmt.Errorf("%w: \"d\" is not a document", ErrDiff)
			}
			for _, g := range d {
				if i := index(g.Key); i >= 0 {
					out = append(out[:i], out[i+1:]...)
				}
			}
		case f.Key == "u" || f.Key == "i":
			d, ok := f.Value.(bson.D)
			if !ok {
				return nil, 0, fmt.Errorf("%w: %q is not a document", ErrDiff, f.Key)
			}
			for _, g := range d {
				if i := index(g.Key); i >= 0 && f.Key == "u" {
					out[i].Value = g.Value
				} else {
					if i >= 0 {
						out = append(out[:i], out[i+1:]...)
					}
					out = append(out, g)
				}
			}
		case strings.HasPrefix(f.Key, "s") && len(f.Key) > 1:
			sub, ok := f.Value.(bson.D)
			if !ok {
				return nil, 0, fmt.Errorf("%w: sub-diff %q is not a document", ErrDiff, f.Key)
			}
			i := index(f.Key[1:])
			if i < 0 {
				skipped++
				continue
			}
			v, n, err := applySubDiff(out[i].Value, sub)
			if err != nil {
				return nil, 0, err
			}
			if v == nil {
				skipped++
				continue
			}
			out[i].Value = v
			skipped += n
		default:
			return nil, 0, fmt.Errorf("%w: field %q", ErrDiff, f.Key)
		}
	}
	return out, skipped, nil
}

// applySubDiff applies sub to v; it returns nil when v is not of the kind
// the diff expects.
func applySubDiff(v any, sub bson.D) (any, int, error) {
	isArray := false
	for _, f := range sub {
		if f.Key == "a" {
			isArray = true
		}
	}
	if !isArray {
		d, ok := v.(bson.D)
		if !ok {
			return nil, 0, nil
		}
		return applyDocDiffAny(d, sub)
	}
	arr, ok := v.(bson.A)
	if !ok {
		return nil, 0, nil
	}
	out := append(bson.A(nil), arr...)
	skipped := 0
	for _, f := range sub {
		switch {
		case f.Key == "a":
		case f.Key == "l":
			n, ok := numberOf(f.Value)
			if !ok || n < 0 {
				return nil, 0, fmt.Errorf("%w: array length %v", ErrDiff, f.Value)
			}
			for int64(len(out)) < n {
				out = append(out, nil)
			}
			out = out[:n]
		case strings.HasPrefix(f.Key, "u"):
			i, err := strconv.Atoi(f.Key[1:])
			if err != nil || i < 0 {
				return nil, 0, fmt.Errorf("%w: array field %q", ErrDiff, f.Key)
			}
			for len(out) <= i {
				out = append(out, nil)
			}
			out[i] = f.Value
		case strings.HasPrefix(f.Key, "s"):
			i, err := strconv.Atoi(f.Key[1:])
			d, ok := f.Value.(bson.D)
			if err != nil || i < 0 || !ok {
				return nil, 0, fmt.Errorf("%w: array field %q", ErrDiff, f.Key)
			}
			if i >= len(out) {
				skipped++
				continue
			}
			nv, n, err := applySubDiff(out[i], d)
			if err != nil {
				return nil, 0, err
			}
			if nv == nil {
				skipped++
				continue
			}
			out[i] = nv
			skipped += n
		default:
			return nil, 0, fmt.Errorf("%w: array field %q", ErrDiff, f.Key)
		}
	}
	return out, skipped, nil
}

func applyDocDiffAny(d bson.D, sub bson.D) (any, int, error) {
	out, n, err := applyDocDiff(d, sub)
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}
