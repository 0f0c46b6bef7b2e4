package dump

import "strings"

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
