// Package spool owns temporary files that hold database content while a
// job runs (a restore's oplog waiting for the data). Their content is
// sealed with AES-256-GCM under a key that exists only in the process's
// memory, so no plaintext reaches the disk, and a file changed underneath
// (the disk may be a network share) is refused when read back. A killed
// process leaves only ciphertext nobody can read; the next start removes
// it.
package spool
