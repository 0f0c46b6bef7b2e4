package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"database/sql"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// OplogReader reads local.oplog.rs by its SQLite key (the capped table's
// record id, see recordIDColumn), for the continuous archive (package
// pitr): FerretDB's tailable cursor sends entries again, out of order, and
// skips entries that become visible after later ones, and a find by ts
// decodes the whole oplog (no index on ts). The key is indexed (it is the
// table's primary key), so reading "the entries after key K" reads only
// those, and a key never changes, so a reader that remembers the keys it
// returned can tell a late entry from one it returned already.
//
// As CopyOplogSince, it copies the rows it reads into a capped collection
// of its own (local.<OplogTailPrefix>pitr_...) with one SQL statement and
// reads that through the driver, which turns FerretDB's stored JSON back
// into the entries' BSON; the copy is emptied at every read and dropped by
// Close (or when the server starts again).
type OplogReader struct {
	client *mongo.Client
	sdb    *sql.DB
	name   string // the copy's collection
	from   string // the oplog's table
	to     string // the copy's table
}

// recordIDField is the field FerretDB adds to a document found with
// showRecordId: its record id.
const recordIDField = "$recordId"

// NewOplogReader opens a reader; client is a connection to this server.
func (s *Server) NewOplogReader(ctx context.Context, client *mongo.Client) (*OplogReader, error) {
	name := fmt.Sprintf("%spitr_%d", OplogTailPrefix, time.Now().UnixNano())
	local := client.Database(OplogDB)
	if err := local.CreateCollection(ctx, name, options.CreateCollection().SetCapped(true).SetSizeInBytes(oplogSizeBytes)); err != nil {
		return nil, fmt.Errorf("embedded: oplog reader: create: %w", err)
	}
	r := &OplogReader{client: client, name: name}
	fail := func(err error) (*OplogReader, error) {
		r.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("embedded: oplog reader: %w", err)
	}
	sdb, err := openFile(s.dir, OplogDB)
	if err != nil {
		return fail(err)
	}
	r.sdb = sdb
	table := func(coll string) (string, error) {
		var t string
		err := sdb.QueryRowContext(ctx, `SELECT table_name FROM `+metadataTable+` WHERE name = ?`, coll).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("no table for %s.%s", OplogDB, coll)
		}
		return t, err
	}
	if r.from, err = table(OplogColl); err != nil {
		return fail(err)
	}
	if r.to, err = table(name); err != nil {
		return fail(err)
	}
	return r, nil
}

// Close drops the reader's copy.
func (r *OplogReader) Close(ctx context.Context) error {
	var errs []error
	if r.sdb != nil {
		errs = append(errs, r.sdb.Close())
	}
	if err := r.client.Database(OplogDB).Collection(r.name).Drop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("embedded: drop oplog reader copy: %w", err))
	}
	return errors.Join(errs...)
}

// Keys returns the keys of the entries whose key lies in (after, upto], in
// key order: SQLite reads the primary key's index only.
func (r *OplogReader) Keys(ctx context.Context, after, upto int64) ([]int64, error) {
	rows, err := r.sdb.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM %q WHERE %s > ? AND %s <= ? ORDER BY %s`,
		recordIDColumn, r.from, recordIDColumn, recordIDColumn, recordIDColumn), after, upto)
	if err != nil {
		return nil, fmt.Errorf("embedded: oplog keys: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("embedded: oplog keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: oplog keys: %w", err)
	}
	return out, nil
}

// Read calls fn with up to limit entries whose key is after `after`, in
// key order. The entry is valid until fn returns.
func (r *OplogReader) Read(ctx context.Context, after int64, limit int, fn func(key int64, entry bson.Raw) error) error {
	return r.read(ctx, fmt.Sprintf(`WHERE %s > ? ORDER BY %s LIMIT ?`, recordIDColumn, recordIDColumn), []any{after, limit}, fn)
}

// ReadKeys calls fn with the entries of the given keys that are in the
// oplog, in key order.
func (r *OplogReader) ReadKeys(ctx context.Context, keys []int64, fn func(key int64, entry bson.Raw) error) error {
	if len(keys) == 0 {
		return nil
	}
	for len(keys) > 0 {
		n := min(len(keys), 500) // SQLite's bound on parameters is far above
		args := make([]any, n)
		for i, k := range keys[:n] {
			args[i] = k
		}
		where := fmt.Sprintf(`WHERE %s IN (?%s) ORDER BY %s`, recordIDColumn, strings.Repeat(", ?", n-1), recordIDColumn)
		if err := r.read(ctx, where, args, fn); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (r *OplogReader) read(ctx context.Context, where string, args []any, fn func(int64, bson.Raw) error) error {
	// One transaction: the copy is emptied and filled from one snapshot.
	tx, err := r.sdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %q`, r.to)); err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	res, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %q (%s, %s) SELECT %s, %s FROM %q %s`,
		r.to, recordIDColumn, defaultColumn, recordIDColumn, defaultColumn, r.from, where), args...)
	if err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	cur, err := r.client.Database(OplogDB).Collection(r.name).Find(ctx, bson.D{},
		options.Find().SetShowRecordID(true).SetSort(bson.D{{Key: "$natural", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	defer cur.Close(ctx)
	var buf []byte
	for cur.Next(ctx) {
		key, entry, err := splitRecordID(cur.Current, buf[:0])
		if err != nil {
			return err
		}
		buf = entry
		if err := fn(key, entry); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	return nil
}

// splitRecordID returns the record id FerretDB added to raw and the entry
// without it, byte for byte as stored (into buf).
func splitRecordID(raw bson.Raw, buf []byte) (int64, bson.Raw, error) {
	elems, err := raw.Elements()
	if err != nil {
		return 0, nil, fmt.Errorf("embedded: read oplog: %w", err)
	}
	var key int64
	found := false
	buf = append(buf, 0, 0, 0, 0)
	for _, e := range elems {
		if e.Key() == recordIDField {
			k, ok := e.Value().AsInt64OK()
			if !ok {
				return 0, nil, fmt.Errorf("embedded: read oplog: %s is a %v", recordIDField, e.Value().Type)
			}
			key, found = k, true
			continue
		}
		buf = append(buf, e...)
	}
	if !found {
		return 0, nil, fmt.Errorf("embedded: read oplog: an entry without %s", recordIDField)
	}
	buf = append(buf, 0)
	n := len(buf)
	buf[0], buf[1], buf[2], buf[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return key, buf, nil
}
