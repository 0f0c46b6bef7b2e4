// Package sampledata owns the deterministic Auth0-like sample data set that
// `a0agent seed`, the demo, the benchmarks and the tests load: Seed writes
// the auth0, logs and config_store databases through the official Go
// driver (so into the embedded server or any MongoDB), equal Options giving
// equal documents, _ids included. It never deletes and never mixes two data
// sets (ErrAlreadySeeded).
package sampledata
