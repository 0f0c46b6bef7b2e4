package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// FerretDB v1.24.2 on SQLite pushes a filter of exactly one key, `_id`
// equal to a string or an ObjectId, down to SQL as
// `WHERE _ferretdb_sjson->'$._id' = ?` (find, update and delete alike; its
// UpdateAll and DeleteAll then write by the same expression). Its own
// unique `_id` index is on `_ferretdb_sjson->"_id"`, an expression SQLite
// does not take for the pushdown's, so every such lookup scans the whole
// table (about 1 s at 100k documents here). Any other `_id` filter (a
// number, `$in`, two keys) is not pushed down at all and is matched in
// FerretDB's Go code over the whole collection.
//
// idLookupColumn is the pushdown's expression, verbatim: an index on it
// turns those lookups into an index search.
const (
	idLookupColumn = `_ferretdb_sjson->'$._id'`
	idLookupSuffix = "_a0_id_lookup"
	// metadataTable maps collection names to table names in every
	// database file.
	metadataTable = "_ferretdb_collections"
)

// IndexIDLookups adds, to each named collection of database db that
// exists, an SQLite index on the expression FerretDB's `_id` pushdown
// filters by (see idLookupColumn), so that a find, update or delete by
// `{_id: <string or ObjectId>}` searches an index instead of scanning the
// table. It returns how many indexes it created.
//
// The index is invisible to clients: FerretDB lists and drops only the
// indexes of its own metadata, and dropping the collection drops its
// table with the index. It costs one extra JSON extraction per insert.
// Collections that do not exist (yet) are left alone, as is an index
// that is already there.
func (s *Server) IndexIDLookups(ctx context.Context, db string, colls []string) (int, error) {
	return IndexIDLookups(ctx, s.dir, db, colls)
}

// IndexIDLookups is Server.IndexIDLookups for the SQLite directory dir of a
// server (running or not).
func IndexIDLookups(ctx context.Context, dir, db string, colls []string) (int, error) {
	path := filepath.Join(dir, db+".sqlite")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("embedded: index _id lookups of %s: %w", db, err)
	}
	sdb, err := openFile(dir, db)
	if err != nil {
		return 0, fmt.Errorf("embedded: index _id lookups of %s: %w", db, err)
	}
	defer sdb.Close()
	want := map[string]bool{}
	for _, c := range colls {
		want[c] = true
	}
	rows, err := sdb.QueryContext(ctx, `SELECT name, table_name FROM `+metadataTable)
	if err != nil {
		return 0, fmt.Errorf("embedded: index _id lookups of %s: list tables: %w", db, err)
	}
	var tables []string
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			rows.Close()
			return 0, fmt.Errorf("embedded: index _id lookups of %s: %w", db, err)
		}
		if want[name] {
			tables = append(tables, table)
		}
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("embedded: index _id lookups of %s: %w", db, err)
	}
	made := 0
	for _, table := range tables {
		name := table + idLookupSuffix
		var n int
		if err := sdb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&n); err != nil {
			return made, fmt.Errorf("embedded: index _id lookups of %s: %w", db, err)
		}
		if n > 0 {
			continue
		}
		if _, err := sdb.ExecContext(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, name, table, idLookupColumn)); err != nil {
			return made, fmt.Errorf("embedded: index _id lookups of %s (table %s): %w", db, table, err)
		}
		made++
	}
	return made, nil
}

// openFile opens the SQLite file of database db beside FerretDB's own
// connections, waiting for its locks.
func openFile(dir, db string) (*sql.DB, error) {
	u := &url.URL{Scheme: "file", Path: filepath.Join(dir, db+".sqlite")}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(60000)")
	u.RawQuery = q.Encode()
	sdb, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	sdb.SetMaxOpenConns(1)
	return sdb, nil
}

// Catalog answers, from the SQLite files, what FerretDB answers slowly:
// the database list (its listDatabases computes every database's size by
// walking every page, the oplog's too) and document counts (collStats
// does the same). It implements dump.Catalog.
type Catalog struct{ dir string }

// Catalog returns the server's Catalog.
func (s *Server) Catalog() Catalog { return Catalog{dir: s.dir} }

// CatalogOf is the Catalog of the SQLite directory dir of a server.
func CatalogOf(dir string) Catalog { return Catalog{dir: dir} }

// Databases names the databases: one SQLite file each, as FerretDB lists
// them.
func (c Catalog) Databases(ctx context.Context) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(c.dir, "*.sqlite"))
	if err != nil {
		return nil, fmt.Errorf("embedded: list databases: %w", err)
	}
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".sqlite"))
	}
	return out, nil
}

// Count counts the rows of db.coll's table (0 when it does not exist).
func (c Catalog) Count(ctx context.Context, db, coll string) (int64, error) {
	sdb, err := openFile(c.dir, db)
	if err != nil {
		return 0, fmt.Errorf("embedded: count %s.%s: %w", db, coll, err)
	}
	defer sdb.Close()
	var table string
	err = sdb.QueryRowContext(ctx, `SELECT table_name FROM `+metadataTable+` WHERE name = ?`, coll).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("embedded: count %s.%s: %w", db, coll, err)
	}
	var n int64
	if err := sdb.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("embedded: count %s.%s: %w", db, coll, err)
	}
	return n, nil
}
