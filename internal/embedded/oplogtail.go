package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// recordIDColumn is the INTEGER PRIMARY KEY of a capped collection's table
// in FerretDB v1.24.2 on SQLite: the insertion order. Its value is the
// insert's timestamp (unix seconds << 32 | a process-wide counter), taken
// when the entry is inserted, after the entry's ts.
const recordIDColumn = "_ferretdb_record_id"

// OplogTailPrefix starts the names of the collections CopyOplogSince makes
// in the local database.
const OplogTailPrefix = "a0_oplog_tail_"

// CopyOplogSince copies the oplog entries inserted at or after since (to
// the second) into a new capped collection local.<OplogTailPrefix>..., in
// the same order, and returns its name and a function that drops it.
//
// Why: FerretDB has no index on ts, so a find on local.oplog.rs with a ts
// filter makes FerretDB decode every entry of the oplog, which costs as
// much as reading data of the same size (and a live oplog is as large as
// the data). The capped table's primary key is the insertion time, so one
// SQLite statement copies the tail by a range of that key, reading nothing
// before it, and FerretDB then decodes only the tail. The copy is one
// statement, so it is one snapshot of the oplog, as one find would be; an
// entry whose ts is at or after since was inserted at or after since (its
// ts is taken first), so the copy holds every entry a find with
// {ts: {$gte: since}} returns, and some older ones, which the caller's own
// ts filter drops.
//
// client is a connection to this server: the collection is created and
// dropped through it, so that FerretDB's catalog knows it; only the rows
// go behind its back, and writes to local are not logged.
func (s *Server) CopyOplogSince(ctx context.Context, client *mongo.Client, since time.Time) (string, func(context.Context) error, error) {
	name := fmt.Sprintf("%s%d", OplogTailPrefix, time.Now().UnixNano())
	local := client.Database(OplogDB)
	if err := local.CreateCollection(ctx, name, options.CreateCollection().SetCapped(true).SetSizeInBytes(oplogSizeBytes)); err != nil {
		return "", nil, fmt.Errorf("embedded: copy oplog tail: create: %w", err)
	}
	drop := func(ctx context.Context) error {
		if err := local.Collection(name).Drop(ctx); err != nil {
			return fmt.Errorf("embedded: drop oplog tail copy: %w", err)
		}
		return nil
	}
	if err := s.copyOplogRows(ctx, name, since); err != nil {
		drop(context.WithoutCancel(ctx))
		return "", nil, err
	}
	return name, drop, nil
}

func (s *Server) copyOplogRows(ctx context.Context, name string, since time.Time) error {
	sdb, err := openFile(s.dir, OplogDB)
	if err != nil {
		return fmt.Errorf("embedded: copy oplog tail: %w", err)
	}
	defer sdb.Close()
	table := func(coll string) (string, error) {
		var t string
		err := sdb.QueryRowContext(ctx, `SELECT table_name FROM `+metadataTable+` WHERE name = ?`, coll).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("embedded: copy oplog tail: no table for %s.%s", OplogDB, coll)
		}
		return t, err
	}
	from, err := table(OplogColl)
	if err != nil {
		return err
	}
	to, err := table(name)
	if err != nil {
		return err
	}
	sec := since.Unix()
	if sec < 0 {
		sec = 0
	}
	_, err = sdb.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %q (%s, %s) SELECT %s, %s FROM %q WHERE %s >= ? ORDER BY %s`,
		to, recordIDColumn, defaultColumn, recordIDColumn, defaultColumn, from, recordIDColumn, recordIDColumn), sec<<32)
	if err != nil {
		return fmt.Errorf("embedded: copy oplog tail: %w", err)
	}
	return nil
}

// defaultColumn holds a document's JSON in FerretDB's tables.
const defaultColumn = "_ferretdb_sjson"
