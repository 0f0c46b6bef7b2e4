// Package devappliance owns the local appliance used for development, demos
// and tests: a real MongoDB-wire server (FerretDB v1.24.2 embedded in-process
// on SQLite), its oplog, and the deterministic Auth0-like sample data.
//
// It owns: Start/Server (the embedded server; Config.Oplog makes it log
// its writes like a replica-set member), EnsureOplog/TrimOplog/
// RunOplogTrimmer (local.oplog.rs and its budget) and Seed (the sample data
// set: auth0, logs and config_store databases).
//
// FerretDB is not MongoDB: see ../shared/notes/ferretdb.md for what it
// rejects. Everything here goes through the official Go driver, so the same
// code paths serve a production MongoDB replica set, except where FerretDB
// is slow in ways no query avoids and its SQLite files answer directly
// (issue 14): IndexIDLookups (an index on the expression its _id pushdown
// filters by), CopyOplogSince (the oplog's tail by its insertion key), and
// Catalog (database files and row counts, where listDatabases and
// collStats walk every page). Those read SQLite beside FerretDB's own
// connections and write only an index and a scratch collection's rows.
package devappliance
