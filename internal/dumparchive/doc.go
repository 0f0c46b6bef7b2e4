// Package dumparchive reads the archive format of `mongodump --archive`
// (mongo-tools common/archive/spec.md): a magic number, a header, one
// metadata document per collection, then namespace segments whose
// documents may interleave between collections, each collection closed by
// an EOF block carrying the CRC-64 (ECMA) of its documents.
//
// The Reader presents it as the entries of a mongodump directory ("db/
// <file>.metadata.json", "db/<file>.bson", "oplog.bson", named as
// mongodump names files), one entry per collection, so that restore reads
// an archive and a directory alike. Documents of collections that are not
// the current entry are spooled to disk, never held in memory. Every
// refusal of the input matches ErrFormat and says what is wrong.
package dumparchive
