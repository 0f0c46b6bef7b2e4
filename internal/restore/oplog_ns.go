package restore

import (
	"strings"

	"github.com/a0backup/a0/internal/oplog"
)

// The reason an oplog entry's namespace is not written besides
// namespace-not-restored, which covers the namespaces outside --ns or the
// restore and the server's own (local, config but the collections
// mongorestore keeps, admin.system.version, other system.* collections,
// __mdb_internal*), never written; the report names each namespace.
const (
	// skipUsersNotRequested: admin.system.users and admin.system.roles
	// without Options.UsersAndRoles (opt-in, as the backup's users are).
	skipUsersNotRequested = "users-and-roles-not-requested"
)

// configKept are the config collections mongorestore replays oplog
// entries of (mongo-tools dumprestore.ConfigCollectionsToKeep).
var configKept = map[string]bool{"chunks": true, "collections": true, "databases": true,
	"settings": true, "shards": true, "tags": true, "version": true}

// nsClass is what a namespace is to the replay.
type nsClass int

const (
	nsPlain nsClass = iota // a collection (system.js included)
	// nsConfig is a config collection mongorestore keeps: written when the
	// archive holds it, never "created during the dump" (the dump does not
	// read config, so one the oplog names is not new).
	nsConfig
	nsBuckets // <db>.system.buckets.<ts>: a time-series collection's data
	nsViews   // <db>.system.views: view definitions
	nsAuthz   // admin.system.users, admin.system.roles
	nsServer  // never written
	nsInvalid // not "db.coll"
)

func nsClassOf(ns string) nsClass {
	db, coll, ok := strings.Cut(ns, ".")
	switch {
	case !ok || db == "" || coll == "":
		return nsInvalid
	case strings.HasPrefix(db, "__mdb_internal"), db == "local":
		return nsServer
	case db == "config":
		if configKept[coll] {
			return nsConfig
		}
		return nsServer
	case db == "admin" && (coll == "system.users" || coll == "system.roles"):
		return nsAuthz
	case coll == "system.views":
		return nsViews
	case coll == "system.js":
		return nsPlain
	case strings.HasPrefix(coll, "system.buckets.") && len(coll) > len("system.buckets."):
		return nsBuckets
	case strings.HasPrefix(coll, "system."):
		return nsServer // admin.system.version, system.profile, admin.system.keys...
	}
	return nsPlain
}

// logicalNS is the namespace an entry's write belongs to, as --ns selects
// it and the restore knows it: a bucket write belongs to its time-series
// collection, a system.views write to the view it defines (its _id).
func logicalNS(ns string, e *oplog.Entry) string {
	switch nsClassOf(ns) {
	case nsBuckets:
		db, coll, _ := strings.Cut(ns, ".")
		return db + "." + strings.TrimPrefix(coll, "system.buckets.")
	case nsViews:
		if e != nil && e.Op != "c" {
			if id, ok := e.ID(); ok {
				if s, ok := id.StringValueOK(); ok && strings.HasPrefix(s, e.DB()+".") {
					return s
				}
			}
		}
	}
	return ns
}

// nsVerdict says whether the replay may write ns (for entry e, nil for a
// command's target): "" when it may, else the reason it is skipped. restored
// says whether a plain or time-series namespace is being restored (planned
// or created by the oplog).
func nsVerdict(ns string, e *oplog.Entry, sel matcher, usersAndRoles bool, restored func(string) bool) string {
	c := nsClassOf(ns)
	if c == nsInvalid {
		return skipNotRestored
	}
	logical := logicalNS(ns, e)
	if !sel.match(logical) {
		return skipNotRestored
	}
	switch c {
	case nsServer:
		return skipNotRestored
	case nsAuthz:
		if !usersAndRoles {
			return skipUsersNotRequested
		}
		return ""
	case nsViews:
		// A view definition is written when the view is selected: views
		// hold no documents, so there is no target to check for emptiness.
		return ""
	}
	if restored != nil && !restored(logical) {
		return skipNotRestored
	}
	return ""
}

// oplogFeature names what a server must hold for writes to a namespace of
// class c, "" for a plain collection.
func oplogFeature(c nsClass) string {
	switch c {
	case nsBuckets:
		return "time-series collection"
	case nsViews:
		return "view"
	case nsAuthz:
		return "users and roles of"
	}
	return ""
}
