package ops

import (
	"context"
	"errors"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RestoreOptions are what an operator chooses of a restore (the request's
// flags) and the embedded server's fast paths.
type RestoreOptions struct {
	Drop bool
	NS   []string
	// NSFrom and NSTo rename (see restore.Options).
	NSFrom, NSTo  []string
	DryRun        bool
	Plain         bool
	StopOnError   bool
	UsersAndRoles bool
	// SpoolDir holds the restore's encrypted spools.
	SpoolDir string
	// InputSize and SpoolReserve bound the restore's spools (issue 25.2):
	// see restore.Options.
	InputSize    int64
	SpoolReserve int64
	// IndexIDLookups and Count are the embedded server's: see
	// restore.Options.
	IndexIDLookups func(ctx context.Context, db string, colls []string) error
	Count          func(ctx context.Context, db, coll string) (int64, error)
}

// Restore is a restore job's inputs: it restores a backup file onto the
// database. Runners.Restore runs it: pass 1 authenticates every byte and
// plans, then the targets and the server are checked, the restore marker is
// written, and pass 2 writes; it returns the *api.RestoreResult, also on
// failure once the plan is known.
type Restore struct {
	Client  *mongo.Client
	Source  Source
	Options RestoreOptions
	// LockUpload takes an upload's lock, so that no client changes the
	// file between the passes; ok false when a client writes it now.
	LockUpload func(path string) (unlock func(), ok bool)
	Hold       Hold
	Log        *slog.Logger
	// PITR, when set, restores to a point in time: Source is its base,
	// then the oplog archive's entries are replayed to PITR.To.
	PITR *PITR
}

// The restore marker lives in the node's `local` database, which is never
// dumped, restored or replicated: it describes this node's data, and it
// survives an agent crash, so a half-written database is never silent.
const (
	markerDB   = "local"
	markerColl = "a0_restore_marker"
	markerID   = "restore"
)

func markerCollection(c *mongo.Client) *mongo.Collection {
	return c.Database(markerDB).Collection(markerColl)
}

// SetMarker upserts fields into the marker (the restore job's: "running"
// before its first write, "failed" and why when it fails part way).
func SetMarker(ctx context.Context, c *mongo.Client, fields bson.D) error {
	_, err := markerCollection(c).UpdateOne(ctx, bson.D{{Key: "_id", Value: markerID}},
		bson.D{{Key: "$set", Value: fields}}, options.UpdateOne().SetUpsert(true))
	return err
}

// ClearMarker removes the marker once a restore has finished.
func ClearMarker(ctx context.Context, c *mongo.Client) error {
	_, err := markerCollection(c).DeleteOne(ctx, bson.D{{Key: "_id", Value: markerID}})
	return err
}

// Marker returns the marker of an unfinished restore, or nil.
func Marker(ctx context.Context, c *mongo.Client) (map[string]any, error) {
	var m bson.M
	err := markerCollection(c).FindOne(ctx, bson.D{{Key: "_id", Value: markerID}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	delete(m, "_id")
	return m, nil
}
