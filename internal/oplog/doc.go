// Package oplog owns what a0 knows about MongoDB oplog entries: what kind of
// entry one is, and what a backup and a restore do with it. The decision
// table (Decide, CheckCapture) is the one place where an entry kind is
// judged; the dump uses it to refuse what cannot be captured consistently
// (importCollection, admin.system.version writes), the restore's replay to
// apply (renames included), defer, skip (counted by reason and namespace) or
// refuse each entry. It also owns the parts of a replay that do
// not need a server: transaction buffering (Txns), the reduced entry sent to
// applyOps (Reduce), and applying a $v:2 update diff to a document
// (ApplyDiff).
//
// The package talks to no server; it is pure functions over BSON, tested
// against entries written by real mongod servers (the mongo-tools fixtures).
package oplog
