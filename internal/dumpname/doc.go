// Package dumpname owns the file names of the mongodump directory layout:
// how a collection name becomes "<db>/<file>.bson" exactly as mongodump
// 100.x writes it (query escaping, and long names cut and hashed), and how
// a file name read back is resolved to, and checked against, the real
// collection name from its metadata.json.
package dumpname
