// Package store owns the backup slots on a node's backup device: the one
// stored backup of each kind, its metadata beside it, and the durable-write
// discipline (a hidden .part file, 0600, hashed while written, fsynced,
// renamed, directory fsynced) that guarantees a file with a backup's name is
// always complete. A failed or interrupted write leaves only a .part file,
// which Clean removes.
package store
