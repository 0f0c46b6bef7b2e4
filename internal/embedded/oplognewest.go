package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// newestScan is how many of the newest entries NewestOplogTS looks at
// (as many as the agent's query in natural order).
const newestScan = 100

// NewestOplogTS is the ts of the newest entry of local.oplog.rs outside
// local.* among its newest hundred by SQLite key (the capped table's
// record id: insertion order), zero when there is none. FerretDB answers
// a find sorted by $natural by reading and sorting the whole oplog in
// memory (its limit is not pushed down with a sort): tens of seconds at
// 100,000 entries. This reads the key's index backwards and a hundred rows.
func (s *Server) NewestOplogTS(ctx context.Context) (bson.Timestamp, error) {
	if _, err := os.Stat(filepath.Join(s.dir, OplogDB+".sqlite")); errors.Is(err, os.ErrNotExist) {
		return bson.Timestamp{}, nil // no oplog: opening would create the file
	}
	sdb, err := openFile(s.dir, OplogDB)
	if err != nil {
		return bson.Timestamp{}, fmt.Errorf("embedded: newest oplog entry: %w", err)
	}
	defer sdb.Close()
	var table string
	err = sdb.QueryRowContext(ctx, `SELECT table_name FROM `+metadataTable+` WHERE name = ?`, OplogColl).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return bson.Timestamp{}, nil
	}
	if err != nil {
		return bson.Timestamp{}, fmt.Errorf("embedded: newest oplog entry: %w", err)
	}
	// FerretDB stores a timestamp as one JSON number, T<<32 | I.
	rows, err := sdb.QueryContext(ctx, fmt.Sprintf(`SELECT %s->>'$.ts', %s->>'$.ns' FROM %q ORDER BY %s DESC LIMIT ?`,
		defaultColumn, defaultColumn, table, recordIDColumn), newestScan)
	if err != nil {
		return bson.Timestamp{}, fmt.Errorf("embedded: newest oplog entry: %w", err)
	}
	defer rows.Close()
	var newest uint64
	for rows.Next() {
		var ts sql.NullInt64
		var ns sql.NullString
		if err := rows.Scan(&ts, &ns); err != nil {
			return bson.Timestamp{}, fmt.Errorf("embedded: newest oplog entry: %w", err)
		}
		if !ts.Valid || strings.HasPrefix(ns.String, "local.") {
			continue
		}
		newest = max(newest, uint64(ts.Int64))
	}
	if err := rows.Err(); err != nil {
		return bson.Timestamp{}, fmt.Errorf("embedded: newest oplog entry: %w", err)
	}
	return bson.Timestamp{T: uint32(newest >> 32), I: uint32(newest)}, nil
}
