// Package remotetest owns the shared test suite of remote.Store: the one
// contract (put, get from an offset, stat, list, delete, errors matched
// with errors.Is, resumable multipart puts) that every implementation's
// test runs with Suite.Run against a real store, as restic's
// internal/backend/test is for its backends. It imports "testing" and is
// imported by tests only.
package remotetest
