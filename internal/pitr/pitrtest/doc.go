// Package pitrtest is the proof tool of continuous point-in-time recovery
// (issue 26) for tests: a writer of inserts, updates and deletes across
// several collections (Writer), and an independent reading of a source's
// own oplog that computes each collection as it was at a position
// (ReadModel, Model.At), to which a restore to that position must be equal
// document for document (Current, Same). It reads the entries itself; it
// shares no code with restore's replay.
package pitrtest
