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
// code paths serve a production MongoDB replica set.
package devappliance
