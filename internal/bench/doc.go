// Package bench measures a0's data paths on a deterministic, mongodump-style
// data set: the sealed backup pipeline (archive -> crypt -> hashed, fsynced
// part file), the file side of restore (authenticate, decrypt, gunzip,
// validate BSON), backup-retrieve over loopback with a real agent and CLI,
// and an end-to-end backup against the embedded FerretDB, each beside the
// shell baseline it replaces (tar | gzip/pigz | openssl); MeasureLive and
// MeasureExternal compare a0 with the stock mongodump and mongorestore on a
// loaded server, the agent's embedded one or (the figures of record) one
// run as its own process and reached over the wire only (WireServer).
//
// Every measured path calls the production packages (store, archive, crypt,
// restore, dump, agent, cli); nothing here reimplements them, so a figure
// moves only when the product moves. MB is 10^6 bytes of BSON input unless a
// figure says otherwise.
package bench
