package restore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/a0backup/a0/internal/dumpname"
)

// kinds of archive entries.
type kind int

const (
	kindPrelude kind = iota + 1
	kindManifest
	kindOplog
	kindMetadata
	kindBSON
)

const (
	preludeName  = "prelude.json"
	oplogName    = "oplog.bson"
	metaSuffix   = ".metadata.json"
	bsonSuffix   = ".bson"
	maxNameParts = 2
)

// entryName is an archive entry mapped onto the mongodump layout.
type entryName struct {
	kind kind
	db   string
	file string // the collection's file name without extension, still escaped
}

// classify maps a cleaned entry name, relative to the wrapper directory, to
// its role. Anything outside the mongodump layout is refused: an archive we
// cannot account for entirely is not restored.
func classify(rel string) (entryName, error) {
	parts := strings.Split(rel, "/")
	switch len(parts) {
	case 1:
		switch rel {
		case preludeName:
			return entryName{kind: kindPrelude}, nil
		case "manifest.json":
			return entryName{kind: kindManifest}, nil
		case oplogName:
			return entryName{kind: kindOplog}, nil
		}
	case maxNameParts:
		db, file := parts[0], parts[1]
		if err := validDB(db); err != nil {
			return entryName{}, fmt.Errorf("%w: %q: %w", ErrInvalidArchive, rel, err)
		}
		var k kind
		var coll string
		switch {
		case strings.HasSuffix(file, metaSuffix):
			k, coll = kindMetadata, strings.TrimSuffix(file, metaSuffix)
		case strings.HasSuffix(file, bsonSuffix):
			k, coll = kindBSON, strings.TrimSuffix(file, bsonSuffix)
		default:
			return entryName{}, fmt.Errorf("%w: %q: not a .bson or .metadata.json file", ErrInvalidArchive, rel)
		}
		// The file name is resolved to a collection name once its
		// metadata.json is known (resolveName): a shortened name has no
		// other source. Here it must only be a name mongodump can write.
		if coll == "" || strings.ContainsAny(coll, "/\x00") || strings.HasPrefix(coll, ".") {
			return entryName{}, fmt.Errorf("%w: %q: bad collection name", ErrInvalidArchive, rel)
		}
		return entryName{kind: k, db: db, file: coll}, nil
	}
	return entryName{}, fmt.Errorf("%w: %q: not part of the mongodump layout", ErrInvalidArchive, rel)
}

// resolveName is the collection a data or metadata file holds: its file
// name unescaped, or, from its metadata.json, the collectionName the file
// name was made from (a shortened name must take it from there). Every
// check on a name (system.*, --ns) runs on what this returns, never on the
// file name alone.
func resolveName(db, file, metaName string) (string, error) {
	name, err := dumpname.Resolve(file, metaName)
	if err != nil {
		return "", fmt.Errorf("%w: %s/%s: %w", ErrInvalidArchive, db, file, err)
	}
	if err := validColl(db, name); err != nil {
		return "", fmt.Errorf("%w: %s/%s: %w", ErrInvalidArchive, db, file, err)
	}
	return name, nil
}

// validColl is what MongoDB accepts as a collection name of db: valid
// UTF-8, no "$" or NUL, no leading ".", and a namespace within 255 bytes.
func validColl(db, name string) error {
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "$\x00") || strings.HasPrefix(name, ".") || len(db)+1+len(name) > 255 {
		return fmt.Errorf("%w %q", dumpname.ErrName, name)
	}
	return nil
}

// validDB is what MongoDB on Linux accepts as a database name: the
// characters only Windows forbids (*<>:|?) are legal there, and mongodump
// dumps such databases, so they restore.
func validDB(db string) error {
	if db == "" || len(db) > 64 || strings.ContainsAny(db, `/\. "$`+"\x00") {
		return fmt.Errorf("bad database name %q", db)
	}
	return nil
}

// matcher selects namespaces by "db.coll" patterns where "*" matches any
// run of characters; a pattern without a dot means the whole database.
type matcher []string

func newMatcher(patterns []string) (matcher, error) {
	m := make(matcher, 0, len(patterns))
	for _, p := range patterns {
		if p == "" {
			return nil, fmt.Errorf("empty namespace pattern")
		}
		if !strings.Contains(p, ".") {
			p += ".*"
		}
		m = append(m, p)
	}
	return m, nil
}

func (m matcher) match(ns string) bool {
	if len(m) == 0 {
		return true
	}
	for _, p := range m {
		if glob(p, ns) {
			return true
		}
	}
	return false
}

// glob matches s against p, where only '*' is special.
func glob(p, s string) bool {
	star, next := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && p[i] == '*':
			star, next = i, j
			i++
		case i < len(p) && p[i] == s[j]:
			i++
			j++
		case star >= 0:
			next++
			i, j = star+1, next
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}
