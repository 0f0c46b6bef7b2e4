// Package oplogsim is a SIMULATED mongod oplog, for benchmarks only: no
// mongod runs where a0 is developed, and the only external server that does
// (FerretDB v1.24.2) decodes its whole oplog for every read of it (no index
// on ts; a tailable cursor's getMore runs the query again from the start),
// so the archiver's RPO against a replica-set member cannot be measured on
// it. The project's rule allows a fake only for what no real part can
// produce, a real mongod's oplog, and this is that fake and nothing more.
//
// Oplog is an in-memory capped oplog, ordered and searched by ts; Generator
// appends entries to it at a steady, clock-paced rate across three
// collections, in the forms a MongoDB 7.0 primary writes for retryable
// single-document writes (insert with o2's document key, update as a $v:2
// diff, delete; lsid, txnNumber, ts, t, v, wall, stmtId, prevOpTime: the
// forms of the mongo-tools fixtures and of the server's oplog_entry.idl);
// Server answers, over the MongoDB wire protocol (OP_MSG, and OP_QUERY for
// the drivers' first handshake), what a replica-set member answers to what
// a0's pitr.MongoSource and the benchmark send: hello/isMaster, buildInfo
// (7.0), ping, replSetGetConfig, endSessions, and find, getMore and
// killCursors on local.oplog.rs (tailable awaitData cursors with a ts
// filter, as mongo-tools and PBM tail an oplog). Every other command is
// answered with CommandNotFound, so that a command a0 starts to send is seen
// and not silently accepted. Messages are parsed and built with the official
// driver's wiremessage and bson packages.
//
// `a0bench oplog-server` runs it as a process of its own; `a0bench pitr
// --source oplog-server` measures the archiver against it. Its figures are
// labelled "simulated mongod oplog" wherever they appear.
package oplogsim
