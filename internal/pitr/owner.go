package pitr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/a0backup/a0/internal/atomicfile"
)

// OwnerFile, in the archive's directory, names the replica set whose
// oplog the slices hold, in clear text (JSON, written with atomicfile).
// The slices' headers say it too, but inside the ciphertext a node never
// decrypts: without this record an archive moved to another replica set
// (a device set as backup on a node of another set, a node re-initiated
// as a new set) would resume by ts alone and chain the new set's entries
// onto the old set's.
const OwnerFile = "owner.json"

// maxOwnerBytes bounds what readOwner accepts.
const maxOwnerBytes = 64 << 10

// ReasonSetChanged: the archive's replica set is not the member's (the
// start of Gap.Reason; "old -> new" follows).
const ReasonSetChanged = "replica set changed"

// ReplicaSet identifies a replica set: its name and, where the server
// tells it (replSetGetConfig's settings.replicaSetId, a MongoDB replica
// set), the id a new initiation gets even under the same name.
type ReplicaSet struct {
	Name string `json:"replica_set"`
	ID   string `json:"replica_set_id,omitempty"`
}

// Same reports whether r and o are the same replica set: the same name,
// and the same id when both are known (an id missing on one side, a
// server that does not tell it, is no evidence of a change).
func (r ReplicaSet) Same(o ReplicaSet) bool {
	return r.Name == o.Name && (r.ID == "" || o.ID == "" || r.ID == o.ID)
}

func (r ReplicaSet) String() string {
	name := r.Name
	if name == "" {
		name = "(no replica set)"
	}
	if r.ID != "" {
		return fmt.Sprintf("%s (id %s)", name, r.ID)
	}
	return name
}

// SetReporter is a Source that can say which replica set its member
// belongs to now. The archiver asks before each resume; a Source that is
// not one is taken to read Config.ReplSet.
type SetReporter interface {
	ReplicaSet(ctx context.Context) (ReplicaSet, error)
}

// Owner is the owner record: the replica set the archive's slices come
// from, the node that wrote it and when.
type Owner struct {
	ReplicaSet
	Node  string    `json:"node,omitempty"`
	Since time.Time `json:"since"`
}

// ReadOwner reads dir's owner record; ok is false when there is none (an
// archive written before the record existed, or a new one).
func ReadOwner(dir string) (o Owner, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, OwnerFile))
	if errors.Is(err, os.ErrNotExist) {
		return Owner{}, false, nil
	}
	if err != nil {
		return Owner{}, false, fmt.Errorf("pitr: read the owner record: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxOwnerBytes+1))
	if err != nil {
		return Owner{}, false, fmt.Errorf("pitr: read the owner record: %w", err)
	}
	if len(b) > maxOwnerBytes {
		return Owner{}, false, fmt.Errorf("pitr: read the owner record: %s is larger than %d bytes", OwnerFile, maxOwnerBytes)
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return Owner{}, false, fmt.Errorf("pitr: read the owner record: %s: %w", OwnerFile, err)
	}
	return o, true, nil
}

func writeOwner(dir string, o Owner) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, OwnerFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pitr: write the owner record: %w", err)
	}
	return nil
}
