// Package planfuzz holds the fuzz target of restore.Plan with nested BSON
// and metadata.json. It is a package of its own so that its test binary
// does not link the embedded FerretDB (the restore package's tests do):
// fuzz instrumentation rebuilds every linked package.
package planfuzz
