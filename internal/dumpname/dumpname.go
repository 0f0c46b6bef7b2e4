package dumpname

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Lengths of mongodump's rule for long names: an escaped name longer than
// MaxEscaped bytes would make "<name>.metadata.json.gz" longer than the 255
// bytes file systems allow, so it is cut to PrefixLen bytes (possibly inside
// a %XX escape) followed by HashSep and the unpadded base64url SHA-1 of the
// real name: 208 + 3 + 27 = 238 bytes.
const (
	MaxEscaped = 238
	PrefixLen  = 208
	HashSep    = "%24" // an escaped "$", which no escaped name contains otherwise
)

// Escape is the file name (without extension) mongodump 100.x gives the
// collection name: url.QueryEscape, shortened and hashed when too long.
func Escape(name string) string { return shorten(url.QueryEscape(name), name) }

// legacyEscape is the name a0 before 0.x and mongodump before 100.x (path
// escaping) wrote; backups made then still restore.
func legacyEscape(name string) string { return shorten(url.PathEscape(name), name) }

func shorten(esc, name string) string {
	if len(esc) <= MaxEscaped {
		return esc
	}
	sum := sha1.Sum([]byte(name))
	return esc[:PrefixLen] + HashSep + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Hashed reports whether a file name (without extension) is a shortened
// one, by mongorestore's own test: the real name is then only in the
// metadata.json's collectionName.
func Hashed(file string) bool {
	return len(file) == MaxEscaped && strings.Contains(file, HashSep)
}

// ErrName is matched by every refusal of a collection file name.
var ErrName = errors.New("bad collection name")

// Unescape returns the collection name a file name (without extension)
// stands for. A hashed name has none of its own: Unescape refuses it, and
// the caller must use Resolve with the metadata's collectionName.
func Unescape(file string) (string, error) {
	if Hashed(file) {
		return "", fmt.Errorf("%w: %q is a shortened name: the real name must come from its metadata.json (collectionName)", ErrName, file)
	}
	name, err := url.QueryUnescape(file)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrName, file, err)
	}
	return name, nil
}

// Resolve returns the collection a file name (without extension) holds,
// given the collectionName of its metadata.json ("" when absent). A
// metadata name must be the one the file name was made from (mongodump
// 100.x's escaping, or the path escaping of older writers): a file named
// "u" cannot claim to be "system.users", and a hashed file name must carry
// the prefix and hash of its metadata name.
func Resolve(file, metaName string) (string, error) {
	if metaName == "" {
		return Unescape(file)
	}
	if file != Escape(metaName) && file != legacyEscape(metaName) {
		return "", fmt.Errorf("%w: file name %q does not match the collectionName %q of its metadata (mongodump would name it %q)",
			ErrName, file, metaName, Escape(metaName))
	}
	return metaName, nil
}
