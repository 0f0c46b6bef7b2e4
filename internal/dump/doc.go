// Package dump owns the logical backup of a MongoDB deployment: every
// database but local and config, read with the official Go driver and
// written into an archive.Writer in mongodump's directory layout
// (prelude.json, <db>/<coll>.metadata.json before <db>/<coll>.bson, oplog.bson)
// followed by a0's manifest.json.
//
// Collections are read in parallel into spool files (tar needs each size
// before the body) and a single packer appends finished spools in completion
// order, so memory stays flat whatever the data size. When local.oplog.rs
// exists the oplog is tailed for the whole dump, which makes the backup
// consistent to one point in time (as mongodump --oplog does).
package dump
