// Package pitr owns continuous point-in-time recovery's oplog archive
// (issue 26): the archiver that tails a member's oplog into encrypted,
// chained slices on the backup device, and the reading side that proves
// an archive (Verify), lists its windows, streams a range of its entries
// for a restore's replay (Archive.Entries) and finds the destructive
// operations an operator wants to undo (Find).
//
// # Slices
//
// A slice is a file <dir>/<first>-<last>.oplog, where first is its first
// entry's ts and last its newest, each as zero-padded seconds.increment,
// so names sort by time. It is a crypt format v2 file (codec
// CodecOplogSlice) encrypted to the configured recipients only: a node
// holds no password and no private key, and never reads its slices back.
// The authenticated plaintext is a magic, a BSON header (format version,
// node, replica set, first ts, the SHA-256 of the previous slice's file:
// the chain, and the gap this slice follows, if any), then a zstd stream
// of frames, each an entry's BSON, ending with a trailer frame (last ts,
// entry count). The header comes first and the trailer last so that a
// slice streams to its file: memory stays flat whatever a slice holds.
// Slices are written as a0 writes backups: a hidden .part file, 0600,
// fsynced, renamed, the directory fsynced; a file with a slice's name is
// complete.
//
// A reader bounds everything a slice can make it do: the header (64 KiB),
// an entry (16 MiB plus the oplog's own fields), the entries of a slice
// (2^24), the zstd window (8 MiB); a count, a ts or a name that disagrees
// with the content, a frame after the trailer or a missing trailer are
// refused (*SliceError). Verify reports the first broken slice as a
// *ChainError naming it: not authentic, or not following the one before
// it (ErrChain: a slice missing, reordered or replaced). It reads several
// slices at once (one per core, at most 8) and takes their results in
// order, so the first broken slice is the one a sequential read meets.
//
// # Archiver
//
// Archiver.Run tails the oplog (Source; MongoSource reads local.oplog.rs
// with a tailable awaitData cursor on MongoDB, by polls on a FerretDB
// server: see MongoSource.Poll) and cuts a slice SliceLength after its
// first entry (or at MaxEntries). An idle oplog writes nothing: a slice is
// only opened by an entry, so the archive's newest point is the newest
// write (a MongoDB primary writes a no-op every 10 s when idle, so its
// archive keeps advancing; the embedded server's stays at its last write,
// which is the data's state until the next one).
//
// It resumes from the newest durable slice: its name gives the newest
// archived ts, its bytes the chain hash. A slice open when Run stops is
// abandoned, as a kill would; its entries are taken again from the oplog.
// Before tailing it checks that the oplog still holds the newest archived
// entry; when it does not, it records a Gap (gaps.json, written with
// atomicfile, and the header of the next slice, so that it is
// authenticated), calls OnGap, and goes on with what the oplog holds:
// ReasonRolledOff when the oplog's oldest entry is newer (down too long),
// ReasonRollback when older entries are there but not that one (a
// rollback after a failover removed it). A failed write (device full or
// gone) removes its .part and is retried every Retry from the last
// durable slice: nothing is lost while the oplog still holds the entries,
// and a gap, marked as following the write failure, when it does not.
// A gap ends every window that crosses it.
//
// First, though, it checks that the member belongs to the replica set the
// archive's owner record (OwnerFile, clear text) names: another set's
// oplog is another history, which may hold an entry with the archived ts
// all the same, so another set is a gap (ReasonSetChanged) whatever the
// oplog holds, and the record then names the new set. An archive without
// the record (written before it existed) gets one, with no gap.
//
// Limits: the embedded FerretDB inserts the oplog entries of concurrent
// writers out of ts order, and a resume by ts may then miss an entry
// that landed after a newer one just before a kill; a MongoDB oplog has
// no such holes. A deleted newest slice cannot be told from one never
// written (the chain proves what lies between slices, the node's own
// status says where it stands).
package pitr
