// Package oracle locates, for tests, what nobody on this project wrote: the
// stock MongoDB Database Tools (mongodump, mongorestore, bsondump) and the
// dumps and oplog entries written by real mongod servers, both kept in the
// read-only ../shared folder beside the checkout (and beside CI's clone).
//
// A test that needs them fails when CI=true and they are missing (a skip in
// CI would hide a check), and skips elsewhere.
package oracle
