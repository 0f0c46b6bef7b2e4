// Package drill owns the restore test (a "drill"): a backup restored into a
// throwaway embedded server and compared, collection by collection, with
// what its dump wrote. A checksum proves the bytes; only a restore proves
// the backup (issue 29). `a0cli verify --restore-test` runs it on a
// workstation; the agent's scheduled drills run it on the node.
//
// API (stable: other packages build on it):
//
//	Run(ctx, Options) (*Report, error)
//	    Options{Open, Parent, InputSize, SpoolReserve, Logger, Progress}:
//	    Open returns the backup's plaintext archive (the tar.gz an a0 file
//	    holds) from its start; Run calls it once per pass (plan, restore).
//	    Parent is where the drill's temporary directory is made
//	    (os.TempDir() when empty).
//	Report{Started, RestoreTime, CompareTime, Collections, counts by
//	    status, NotHeldVerified, Digests, OplogEntries, OplogApplied,
//	    OplogSkipped, OK}
//	Collection{Namespace, Status, DocumentsExpected, DocumentsFound,
//	    DigestExpected, DigestFound, IndexesExpected, IndexesFound, Reason,
//	    DocumentsNotHeld, DocumentsArchived, DigestArchived, BytesVerified}
//	Status*: StatusOK, StatusDiffers, StatusNotHeld, StatusNoDigest,
//	    StatusNotRestored
//	*RestoreError{Step, Err}: the backup did not restore (the data, the
//	    oplog replay, the indexes): the drill failed, as a difference does.
//	CleanStale(parent) ([]string, error): removes the directories of
//	    drills a killed process left (SIGKILL), never a running drill's.
//	DirPattern: the temporary directories' names ("a0-drill-*").
//
// How: Run makes DirPattern in Parent and holds a lock file in it for its
// whole life (a flock, dropped by the kernel with the process), starts an
// embedded server (package embedded) on SQLite files inside it, restores
// the backup there with package restore (the data as dumped), and, through
// restore.Options.AfterData, reads every collection back before the oplog
// replay changes it: the count and the content digest (manifest.Digest,
// the order-independent sum the dump computed while it read the
// collection) are compared with the authenticated manifest. The replay then
// runs to the backup's consistent_to and must succeed (applied and skipped
// entries are reported), and the indexes built are counted against the
// dump's. The directory is removed when Run returns, whatever the outcome,
// also when ctx is cancelled.
//
// A collection the embedded server cannot hold is left out of the
// restore and reported as StatusNotHeld, named and counted; the rest is
// restored. Two ways: documents FerretDB cannot store (embedded.Holds:
// field names with '.' or a leading '$', Decimal128...), which a real
// mongod's backup holds, found from the bytes in the plan's pass before
// anything is sent (restore.Options.Holds), with the documents counted
// (Collection.DocumentsNotHeld); oplog commands it lacks or refuses
// (restore.Options.HoldsCommand = embedded.HoldsCommand: a create with a
// validator, an index with a TTL or a collation...), dumped indexes it
// cannot build (embedded.HoldsIndex), and views or time-series
// collections the oplog writes (restore.PlanResult.OplogFeatures), which
// would fail the replay or the index builds of a backup that is fine; and
// restore.Preflight's *UnsupportedError, a collection option FerretDB
// lacks. A collection only the oplog creates is listed after the
// manifest's. A not-held collection's documents are still checked in
// the archive: the plan's pass sums their count and digest
// (restore.PlannedCollection.Digest, the dump's manifest.Digest) and
// they are compared with the manifest: BytesVerified, or StatusDiffers
// when altered, which fails the drill. A backup made before the dump
// wrote digests is compared by counts and indexes only, each such
// collection StatusNoDigest.
package drill
