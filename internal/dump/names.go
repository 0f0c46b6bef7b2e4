package dump

import (
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"strings"
)

// escapeCollection is mongodump's file name for a collection: URL path
// escaping, and names whose escaped form would push a file name past 255
// bytes (with ".metadata.json.gz") cut to 208 bytes plus "%24" and the
// base64url SHA-1 of the real name, so distinct names stay distinct.
func escapeCollection(name string) string {
	esc := url.PathEscape(name)
	if len(esc) <= 238 {
		return esc
	}
	sum := sha1.Sum([]byte(name))
	return esc[:208] + "%24" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// skipNamespace mirrors mongodump's rule for system namespaces it never
// dumps: server-internal collections whose restore would break a node.
func skipNamespace(db, coll string) bool {
	switch db {
	case "admin":
		if coll == "system.keys" {
			return true
		}
	case "config":
		return true
	default:
		if coll != "system.js" && strings.HasPrefix(coll, "system.") {
			return true
		}
	}
	return strings.Contains(coll, "$") && !strings.Contains(coll, ".oplog.$")
}

// skipDatabase: local is per node and config is cluster state; mongodump
// dumps them only when asked by name.
func skipDatabase(db string) bool { return db == "local" || db == "config" }
