package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits of the server that a restore's documents must meet. A document
// refused here is refused before the first write: the insert would fail
// later, after targets were dropped.
const (
	// maxUserDocSize is the largest document a client may insert
	// (mongod's BSONObjMaxUserSize).
	maxUserDocSize = 16 << 20
	// maxDocSize is what the server allows internally, for oplog entries
	// that wrap a full-size document (BSONObjMaxInternalSize).
	maxDocSize = maxUserDocSize + 16<<10
	// maxDepth is the nesting the server accepts in a stored document
	// (documented limit: 100 levels); oplog entries wrap it once.
	maxDepth      = 100
	maxOplogDepth = maxDepth + 2
)

// ValidateDocument checks doc as the server would before storing it: every
// nested document and array has a consistent length and terminator, every
// element a known type whose value fits, every key and C string is
// NUL-terminated, booleans are 0 or 1, nesting is at most depth levels, and
// the whole is at most max bytes. It also refuses what mongod refuses for
// an _id: an array, a regular expression or undefined. It is the one deep
// check: Plan (and so verify) calls it on every document before anything
// is written.
//
// Strings are not checked for UTF-8: mongod stores what it is given, and
// a dump of a real server may hold invalid UTF-8, which mongorestore
// restores as is.
func ValidateDocument(doc []byte, max int, depth int) error {
	if len(doc) > max {
		return fmt.Errorf("document of %d bytes exceeds the server's %d-byte limit", len(doc), max)
	}
	n, err := validateDoc(doc, 1, depth, true)
	if err != nil {
		return err
	}
	if n != len(doc) {
		return fmt.Errorf("document length %d, but %d bytes given", n, len(doc))
	}
	return nil
}

var errShort = errors.New("value runs past the end of its document")

// validateDoc validates the document at the start of b and returns its
// length.
func validateDoc(b []byte, level, maxLevel int, top bool) (int, error) {
	// An empty document or array does not count toward the depth, as the
	// server's validateDepth does not count it.
	if level > maxLevel && (len(b) < 5 || int32(binary.LittleEndian.Uint32(b)) != 5) {
		return 0, fmt.Errorf("nested deeper than %d levels", maxLevel)
	}
	if len(b) < 5 {
		return 0, errShort
	}
	size := int(int32(binary.LittleEndian.Uint32(b)))
	if size < 5 || size > len(b) {
		return 0, fmt.Errorf("embedded length %d outside [5, %d]", size, len(b))
	}
	if b[size-1] != 0 {
		return 0, errors.New("document not terminated by a NUL byte")
	}
	body := b[4 : size-1]
	for len(body) > 0 {
		t := body[0]
		body = body[1:]
		kn, err := cstring(body)
		if err != nil {
			return 0, fmt.Errorf("key: %w", err)
		}
		key := string(body[:kn-1])
		body = body[kn:]
		if top && key == "_id" {
			switch t {
			case 0x04, 0x0B, 0x06:
				return 0, fmt.Errorf("_id may not be of BSON type 0x%02x (array, regular expression or undefined)", t)
			}
		}
		vn, err := validateValue(t, body, level, maxLevel)
		if err != nil {
			return 0, fmt.Errorf("field %q: %w", key, err)
		}
		body = body[vn:]
	}
	return size, nil
}

// cstring returns the length of the NUL-terminated string at b, NUL included.
func cstring(b []byte) (int, error) {
	for i, c := range b {
		if c == 0 {
			return i + 1, nil
		}
	}
	return 0, errors.New("C string not terminated")
}

// bstring validates a length-prefixed, NUL-terminated string.
func bstring(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, errShort
	}
	n := int(int32(binary.LittleEndian.Uint32(b)))
	if n < 1 || n > len(b)-4 {
		return 0, fmt.Errorf("string length %d outside [1, %d]", n, len(b)-4)
	}
	if b[4+n-1] != 0 {
		return 0, errors.New("string not terminated by a NUL byte")
	}
	return 4 + n, nil
}

func fixed(b []byte, n int) (int, error) {
	if len(b) < n {
		return 0, errShort
	}
	return n, nil
}

func validateValue(t byte, b []byte, level, maxLevel int) (int, error) {
	switch t {
	case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
		return fixed(b, 8)
	case 0x02, 0x0D, 0x0E: // string, javascript, symbol
		return bstring(b)
	case 0x03, 0x04: // document, array
		return validateDoc(b, level+1, maxLevel, false)
	case 0x05: // binary
		if len(b) < 5 {
			return 0, errShort
		}
		n := int(int32(binary.LittleEndian.Uint32(b)))
		if n < 0 || n > len(b)-5 {
			return 0, fmt.Errorf("binary length %d outside [0, %d]", n, len(b)-5)
		}
		if b[4] == 0x02 { // old binary: the data repeats its length
			if n < 4 || int(int32(binary.LittleEndian.Uint32(b[5:]))) != n-4 {
				return 0, errors.New("old binary subtype with an inconsistent inner length")
			}
		}
		return 5 + n, nil
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, maxkey, minkey
		return 0, nil
	case 0x07: // objectid
		return fixed(b, 12)
	case 0x08: // bool
		if len(b) < 1 {
			return 0, errShort
		}
		if b[0] > 1 {
			return 0, fmt.Errorf("boolean byte %d", b[0])
		}
		return 1, nil
	case 0x0B: // regex: pattern, options
		p, err := cstring(b)
		if err != nil {
			return 0, fmt.Errorf("regex pattern: %w", err)
		}
		o, err := cstring(b[p:])
		if err != nil {
			return 0, fmt.Errorf("regex options: %w", err)
		}
		return p + o, nil
	case 0x0C: // dbpointer: namespace, objectid
		n, err := bstring(b)
		if err != nil {
			return 0, err
		}
		m, err := fixed(b[n:], 12)
		return n + m, err
	case 0x0F: // code with scope: total length, code, scope
		if len(b) < 4 {
			return 0, errShort
		}
		total := int(int32(binary.LittleEndian.Uint32(b)))
		if total < 14 || total > len(b) {
			return 0, fmt.Errorf("code with scope length %d outside [14, %d]", total, len(b))
		}
		n, err := bstring(b[4:total])
		if err != nil {
			return 0, err
		}
		m, err := validateDoc(b[4+n:total], level+1, maxLevel, false)
		if err != nil {
			return 0, err
		}
		if 4+n+m != total {
			return 0, errors.New("code with scope length disagrees with its parts")
		}
		return total, nil
	case 0x10: // int32
		return fixed(b, 4)
	case 0x13: // decimal128
		return fixed(b, 16)
	}
	return 0, fmt.Errorf("unknown BSON type 0x%02x", t)
}
