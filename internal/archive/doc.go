// Package archive owns the container of every a0 backup: a standard tar
// stream compressed with gzip (.tar.gz), readable by GNU tar and by Go's
// archive/tar + compress/gzip.
//
// Writer produces it: tar headers (PAX where a name needs it) and a parallel
// gzip compressor, because compression is the bound of the whole backup
// pipeline. The safe Reader (reader.go) consumes it and refuses anything a
// dump never writes: traversal, absolute paths, links, devices, duplicates and
// entries above its limits.
package archive
