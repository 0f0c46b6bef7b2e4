// Package embedded owns the embedded default MongoDB-wire server that
// a0agent runs when it is given no MongoDB URI: FerretDB v1.24.2 in-process
// on SQLite, and its oplog. This is production code: the README's appliance
// runs on it. (The sample data that demos and tests load is package
// sampledata.)
//
// It owns: Start/Server (the embedded server; Config.Oplog makes it log
// its writes like a replica-set member; it listens on a Unix socket in a
// 0700 directory, never on TCP unless a test asks, because FerretDB has no
// authentication: SocketDir, SocketURI), EnsureOplog/TrimOplog/
// RunOplogTrimmer (local.oplog.rs and its budget), and at Start the setting
// aside of database files a crash left without FerretDB's tables.
//
// FerretDB is not MongoDB: see ../shared/notes/ferretdb.md for what it
// rejects. Holds and HoldsValues say, from a document's bytes, whether it
// can store one (a restore drill asks before it sends anything: some
// documents make it drop the connection); HoldsCommand and HoldsIndex the
// same of an oplog command entry and an index spec (a create option it
// lacks, a TTL or collated index...), which would fail a drill's replay or
// index builds. Everything here goes through the official Go driver, so the same
// code paths serve a production MongoDB replica set, except where FerretDB
// is slow in ways no query avoids and its SQLite files answer directly
// (issue 14): IndexIDLookups (an index on the expression its _id pushdown
// filters by), CopyOplogSince (the oplog's tail by its insertion key), and
// Catalog (database files and row counts, where listDatabases and
// collStats walk every page). Those read SQLite beside FerretDB's own
// connections and write only an index and a scratch collection's rows.
package embedded
