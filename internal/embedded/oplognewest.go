package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// OplogHead is an oplog entry's ts and ns.
type OplogHead struct {
	TS bson.Timestamp
	NS string
}

// NewestOplog returns the ts and ns of the n newest entries of
// local.oplog.rs (the last inserted first), read from its SQLite table by
// the primary key: only those n rows, whatever the size of the oplog.
//
// Why not the driver: a find sorted by {$natural: -1} with a limit makes
// FerretDB v1.24.2 decode the whole oplog into memory and sort it (its
// SortIterator consumes every document; a limit is not pushed down beside
// a sort), and it goes on after the client gives up. Asked every few
// seconds (the archive's lag) while a restore fills the oplog, those
// reads piled up into gigabytes (issue 29).
//
// The ts is taken from the stored JSON as its text (json_extract of more
// than one path returns a JSON array that keeps a number's digits: a ts
// past 2^63 would lose its low bits as an SQL value), and only when the
// row's schema says it is a timestamp.
func (c Catalog) NewestOplog(ctx context.Context, n int) ([]OplogHead, error) {
	if n <= 0 {
		return nil, nil
	}
	sdb, err := openFile(c.dir, OplogDB)
	if err != nil {
		return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
	}
	defer sdb.Close()
	var table string
	err = sdb.QueryRowContext(ctx, `SELECT table_name FROM `+metadataTable+` WHERE name = ?`, OplogColl).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
	}
	rows, err := sdb.QueryContext(ctx, fmt.Sprintf(`SELECT json_extract(%s, '$."$s".p.ts.t', '$.ts', '$.ns') FROM %q ORDER BY %s DESC LIMIT ?`,
		defaultColumn, table, recordIDColumn), n)
	if err != nil {
		return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
	}
	defer rows.Close()
	var out []OplogHead
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
		}
		h, err := parseOplogHead(s.String)
		if err != nil {
			return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: newest oplog entries: %w", err)
	}
	return out, nil
}

// parseOplogHead reads the [type, ts, ns] array NewestOplog selects.
func parseOplogHead(s string) (OplogHead, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v []any
	if err := dec.Decode(&v); err != nil || len(v) != 3 {
		return OplogHead{}, fmt.Errorf("an entry's ts and ns: %q", s)
	}
	typ, _ := v[0].(string)
	num, _ := v[1].(json.Number)
	ns, _ := v[2].(string)
	if typ != "timestamp" || num == "" {
		return OplogHead{}, fmt.Errorf("an entry whose ts is not a timestamp: %q", s)
	}
	u, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return OplogHead{}, fmt.Errorf("an entry's ts %q: %w", num, err)
	}
	return OplogHead{TS: bson.Timestamp{T: uint32(u >> 32), I: uint32(u)}, NS: ns}, nil
}
