package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/oracle"
)

// fixtureCase is one real-server dump of mongo-tools' mongorestore test
// data and what `a0cli restore --plain` must do with it.
type fixtureCase struct {
	name string
	// path under mongorestore/; a directory is packed as a tar.gz of its
	// contents (under prefix), a file is given as it is (an archive).
	path, prefix string
	// only packs these files of the directory (loose collections).
	only []string
	// exit is the exit code; out must match stdout and stderr (the
	// report, then the error).
	exit int
	out  string
	// docs are "ns=count" pairs the node must hold afterwards.
	docs []string
}

func TestInteropFixtures(t *testing.T) {
	root := oracle.Fixture(t, "mongorestore")
	node := startNode(t, "", "")
	op := newOperator(t).withKey(node)
	for _, tc := range fixtureCases() {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(root, filepath.FromSlash(tc.path))
			file := src
			if st, err := os.Stat(src); err != nil {
				t.Fatal(err)
			} else if st.IsDir() {
				file = filepath.Join(t.TempDir(), "fixture.tar.gz")
				dir := src
				if tc.only != nil {
					dir = t.TempDir()
					for _, f := range tc.only {
						if err := os.WriteFile(filepath.Join(dir, f), readFile(t, filepath.Join(src, f)), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
				packDir(t, dir, tc.prefix, file)
			}
			r := op.on(node, "restore", "--plain", "--drop", file)
			t.Logf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			if r.code != tc.exit {
				t.Fatalf("exit %d, want %d", r.code, tc.exit)
			}
			text := r.stdout + r.stderr
			if !regexp.MustCompile(tc.out).MatchString(text) {
				t.Fatalf("output does not match %q", tc.out)
			}
			if strings.Contains(text, "interrupted") {
				t.Fatalf("a restore that ran to its end is reported as interrupted")
			}
			for _, d := range tc.docs {
				ns, n, _ := strings.Cut(d, "=")
				db, coll := splitNS(ns)
				got, err := node.client().Database(db).Collection(coll).EstimatedDocumentCount(t.Context())
				if err != nil || strings.TrimSpace(n) != itoa(got) {
					t.Errorf("%s holds %d documents (%v), want %s", ns, got, err, n)
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// row matches one line of the restore report.
func row(ns string, docs, idxExp, idxFound int, mark string) string {
	return regexp.QuoteMeta(ns) + fmt.Sprintf(`\s+%d\s+%d\s+%d\s+%d\s+`, docs, docs, idxExp, idxFound) + mark
}

// Refusals and what they name.
const (
	refusedLayout = `backup archive refused: invalid archive: .*not part of the mongodump layout`
	differs       = `restore finished with differences between the backup and the database`
)

// fixtureCases is every real-server dump of the fixtures, with its exact
// outcome on the embedded server. A refusal is an outcome: it must name
// what the server (or a0, today) cannot hold. Outcomes that change once
// a0 restores time-series collections, users and roles, or more oplog
// commands are marked.
func fixtureCases() []fixtureCase {
	return []fixtureCase{
		// Plain collections and index metadata.
		{name: "coll_with_index", path: "coll_with_index", out: row("test.foo", 1, 2, 2, "ok"), docs: []string{"test.foo=1"}},
		{name: "coll_without_index", path: "coll_without_index", out: row("test.foo", 1, 1, 1, "ok"), docs: []string{"test.foo=1"}},
		{name: "foodump", path: "foodump", out: row("test.foo", 1, 1, 1, "ok"), docs: []string{"test.foo=1"}},
		{name: "longindextestdump", path: "longindextestdump", out: row("longindextest.test_collection", 100, 2, 2, "ok"), docs: []string{"longindextest.test_collection=100"}},
		{name: "aws_test_db", path: "aws_test_db", prefix: "aws_test_db", out: row("aws_test_db.c1", 3, 1, 1, "ok"), docs: []string{"aws_test_db.c1=3"}},
		{name: "test_auto_idx", path: ".", prefix: "test", only: []string{"test_auto_idx.bson", "test_auto_idx.metadata.json"}, out: row("test.test_auto_idx", 2, 1, 1, "ok"), docs: []string{"test.test_auto_idx=2"}},
		// Index kinds FerretDB cannot build: the data restores, the report
		// names each refused index and why, the exit code says it differs.
		{name: "coll_with_ttl_index", path: "coll_with_ttl_index", exit: ExitIntegrity, out: `(?s)index not restored: f_1: .*expireAfterSeconds.*` + differs, docs: []string{"test.foo=1"}},
		{name: "coll_with_geohaystack_index", path: "coll_with_geohaystack_index", exit: ExitIntegrity, out: `(?s)index not restored: f_1: .*geoHaystack.*` + differs, docs: []string{"geohaystack_test.foo=1"}},
		{name: "hashedIndexes", path: ".", prefix: "test", only: []string{"hashedIndexes.bson", "hashedIndexes.metadata.json"}, exit: ExitIntegrity, out: `(?s)index not restored: a.b_hashed: .*hashed.*` + differs, docs: []string{"test.hashedIndexes=2"}},
		{name: "duplicate_index_key", path: "duplicate_index_key", exit: ExitIntegrity, out: `(?s)index not restored: foo_1: .*IndexOptionsConflict.*` + differs},
		{name: "indexmetadata", path: "indexmetadata", exit: ExitIntegrity, out: `(?s)index not restored: a_1_b_true: .*` + differs, docs: []string{"indextest.test_coll_no_index_ns=100"}},
		{name: "indextestdump", path: "indextestdump", exit: ExitIntegrity, out: `(?s)index not restored: a_1_b_true: .*` + differs, docs: []string{"indextest.test_collection=100"}},
		// Names: escaped, and hashed long names (the real name from
		// metadata.json; FerretDB holds at most 235 characters).
		{name: "specialcharacter", path: "specialcharacter", out: row("db1.cafés", 1, 1, 1, "ok"), docs: []string{"db1.cafés=1"}},
		{name: "longcollectionname/db1", path: "longcollectionname/db1", prefix: "db1", exit: ExitFailure, out: `drop db1\.aVery(Very)+LongCollectionNameConsistingOfExactlyTwoHundredAndFortySevenCharacters: \(InvalidNamespace\) Invalid collection name`},
		{name: "longcollectionname", path: "longcollectionname", exit: ExitIntegrity, out: refusedLayout},
		// prelude.json variants.
		{name: "prelude_test/prelude_top_level", path: "prelude_test/prelude_top_level", out: row("test.foo", 1, 1, 1, "ok"), docs: []string{"test.foo=1"}},
		{name: "prelude_test/server_version_unknown", path: "prelude_test/server_version_unknown", out: row("test.foo", 1, 1, 1, "ok"), docs: []string{"test.foo=1"}},
		{name: "prelude_test/prelude_db_target", path: "prelude_test/prelude_db_target", out: row("test.foo", 1, 1, 1, "ok"), docs: []string{"test.foo=1"}},
		{name: "prelude_test/prelude_gzip", path: "prelude_test/prelude_gzip", exit: ExitIntegrity, out: `backup archive refused: invalid archive: "prelude.json.gz": not part of the mongodump layout`},
		// Files mongorestore skips with a warning: a0 refuses the archive.
		{name: "testdirs", path: "testdirs", exit: ExitIntegrity, out: `"badfile.txt": not part of the mongodump layout`},
		// Archives (mongodump --archive), well-formed and malformed.
		{name: "test.bar.archive", path: "test.bar.archive", out: row("test.bar", 1, 1, 1, "ok"), docs: []string{"test.bar=1"}},
		{name: "dump-w-oplog.archive", path: "dump-w-oplog.archive", out: row("test.foo", 25, 1, 1, `ok \(\+16 oplog entries replayed\)`)},
		{name: "bad-format.archive", path: "bad-format.archive", exit: ExitIntegrity, out: `backup archive refused: invalid archive: test/ixtest.metadata.json: parse metadata`},
		// Users and roles (admin.system.*): skipped and counted without
		// --users-and-roles; local is never restored.
		{name: "usersdump", path: "usersdump", out: `(?s)plain dump \(no manifest\): 0 collections, 0 documents.*not restored .*: admin\.system\.roles, admin\.system\.users`},
		{name: "dump_local_oplog", path: "dump_local_oplog", out: `0 collections, 0 documents, 0 oplog entries`},
		{name: "local", path: "local", prefix: "local", out: `0 collections, 0 documents, 0 oplog entries`},
		// Time-series collections: planned (buckets joined to their
		// metadata); FerretDB cannot create them, which is named before
		// the first write.
		{name: "timeseries_tests/ts_dump", path: "timeseries_tests/ts_dump", exit: ExitRefused, out: `the server cannot hold the time-series collection timeseries_test\.foo_ts: .*not implemented.*nothing was restored`},
		{name: "timeseries_tests/ts_dump_invalid_buckets", path: "timeseries_tests/ts_dump_invalid_buckets", exit: ExitRefused, out: `the server cannot hold the time-series collection timeseries_test\.foo_ts: .*not implemented.*nothing was restored`},
		{name: "timeseries_tests/ts_dump_with_oplog", path: "timeseries_tests/ts_dump_with_oplog", exit: ExitRefused, out: `the server cannot hold the time-series collection timeseries_test\.foo_ts: .*not implemented.*nothing was restored`},
		{name: "timeseries_tests/dump.archive", path: "timeseries_tests/dump.archive", exit: ExitRefused, out: `the server cannot hold the time-series collection timeseries_test\.foo_ts: .*not implemented.*nothing was restored`},
		{name: "timeseries_tests/ts_single_buckets_file", path: "timeseries_tests/ts_single_buckets_file", exit: ExitIntegrity, out: `"system.buckets.foo_ts.bson": not part of the mongodump layout`},
		// Dumps with oplog.bson: replayed where the embedded server and
		// a0's replay know the commands; else the command is named.
		// 5 documents and 5 inserts, 3 of them inside an applyOps.
		{name: "oplogdump", path: "oplogdump", out: row("db1.c1", 10, 1, 1, `ok \(\+5 oplog entries replayed\)`), docs: []string{"db1.c1=10"}},
		{name: "oplogdumpmaxsize", path: "oplogdumpmaxsize", out: row("db1.c1", 5, 1, 1, "ok"), docs: []string{"db1.c1=5"}},
		{name: "dump_oplog_conflict", path: "dump_oplog_conflict", out: `0 collections, 0 documents, 5 oplog entries`},
		{name: "dump_with_noop_in_oplog", path: "dump_with_noop_in_oplog", out: `0 collections, 0 documents, 4 oplog entries`},
		{name: "oplog_partial_skips", path: "oplog_partial_skips", out: `0 collections, 0 documents, 21 oplog entries`},
		{name: "tools-2002", path: "tools-2002", out: `0 collections, 0 documents, 2 oplog entries`},
		// The dump holds two documents with a:1 (one deleted during the
		// dump): the unique index builds after the oplog, as mongorestore
		// orders it.
		{name: "duplicate_index_key_with_oplog", path: "duplicate_index_key_with_oplog", out: row("test.foo", 1, 2, 2, `ok \(\+2 oplog entries replayed\)`), docs: []string{"test.foo=1"}},
		// Index builds, collMod and createIndexes of the oplog join the
		// index phase; what FerretDB cannot build is named.
		{name: "collMod_ttl_index", path: "collMod_ttl_index", exit: ExitIntegrity, out: `(?s)index not restored: a_1: .*expireAfterSeconds.*` + differs, docs: []string{"mongodump_test_db.coll1=10"}},
		{name: "commit_indexes_build", path: "commit_indexes_build", exit: ExitIntegrity, out: `(?s)index not restored: b_1: .*partialFilterExpression.*` + differs, docs: []string{"commit_index.test=1"}},
		// An aborted build: skipped and counted, as mongorestore skips it.
		{name: "oplog_ignore_index", path: "oplog_ignore_index", out: `not replayed: abortIndexBuild 1, startIndexBuild 1\s+Restore finished`},
		{name: "create_indexes", path: "create_indexes", exit: ExitIntegrity, out: `(?s)index not restored: b_1: .*partialFilterExpression.*` + differs},
	}
}
