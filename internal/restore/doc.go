// Package restore owns the way back: a mongodump-layout tar.gz (an a0 backup
// or a plain mongodump directory) into a MongoDB deployment, through the
// official Go driver, followed by the replay of the dump's oplog.
//
// A restore is two passes over the same (already authenticated) archive.
// Plan reads all of it and writes nothing: every entry name, every metadata
// file, the framing of every BSON document and the manifest counts are
// checked first, so a bad archive is refused before the first database
// write. Run is the second pass. Neither holds a collection or the archive
// in memory: documents are streamed from the tar entry into bounded batches.
//
// Index specs are rewritten to what both MongoDB and FerretDB accept (no
// "ns", no "v"), and when the server has no applyOps (FerretDB) the oplog is
// replayed entry by entry as idempotent writes.
package restore
