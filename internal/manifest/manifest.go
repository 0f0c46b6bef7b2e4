package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/a0backup/a0/internal/jsonlimit"
)

// FormatVersion is the version of this manifest layout.
const FormatVersion = 1

// Name is the archive entry that holds the manifest.
const Name = "manifest.json"

// Kinds of backup.
const (
	KindBackup    = "backup"
	KindSensitive = "sensitive"
)

// Consistency levels.
const (
	ConsistencyPointInTime = "point-in-time"
	ConsistencyNone        = "none"
)

// ErrUnsupported is returned for a manifest of an unknown format version.
var ErrUnsupported = errors.New("unsupported manifest format version")

// Manifest describes one backup archive.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	Kind          string `json:"kind"`
	// Name is the backup's name as the node gave it (its file is
	// Name+".enc" in the slot and in the remote store). Inside the
	// authenticated archive, it proves which backup a file is where a
	// file name or a record beside the file cannot (CheckName). Empty in
	// backups made before a0 wrote it.
	Name        string    `json:"name,omitempty"`
	ToolVersion string    `json:"tool_version"`
	Source      Source    `json:"source"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`

	// Consistency is ConsistencyPointInTime when oplog.bson holds every write
	// between OplogStart and ConsistentTo, ConsistencyNone otherwise.
	Consistency  string       `json:"consistency,omitempty"`
	OplogStart   *OplogPos    `json:"oplog_start,omitempty"`
	ConsistentTo *OplogPos    `json:"consistent_to,omitempty"`
	OplogEntries int64        `json:"oplog_entries,omitempty"`
	Collections  []Collection `json:"collections,omitempty"`
	// ChangedDuringDump lists the collections that were dropped or renamed
	// between the dump's listing and its read of them. A dropped one is not
	// in the archive; a renamed one is in it under its new name (Collections
	// lists it there). Restore and verify show it; it never makes a backup
	// unrestorable.
	ChangedDuringDump []Change `json:"changed_during_dump,omitempty"`

	// Files lists the files of a sensitive backup.
	Files []File `json:"files,omitempty"`
}

// Source says what was backed up.
type Source struct {
	Node          string `json:"node,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	ReplicaSet    string `json:"replica_set,omitempty"`
	// ReadFrom is the host the dump read from.
	ReadFrom string `json:"read_from,omitempty"`
	// Roles and Device are the node's role configuration when the backup
	// was made (sensitive backups), so that recover can put them back.
	Roles  []string `json:"roles,omitempty"`
	Device string   `json:"device,omitempty"`
}

// OplogPos is a position in the oplog: a BSON timestamp and its wall time.
type OplogPos struct {
	T    uint32    `json:"t"`
	I    uint32    `json:"i"`
	Wall time.Time `json:"wall,omitempty"`
}

// Collection is one dumped collection.
type Collection struct {
	DB        string `json:"db"`
	Name      string `json:"name"`
	Type      string `json:"type,omitempty"` // "collection", "view" or "timeseries"
	Documents int64  `json:"documents"`
	Bytes     int64  `json:"bytes"`
	Indexes   int    `json:"indexes"`
	// BSONFile and MetadataFile are the archive entry names (escaped as
	// mongodump escapes them).
	BSONFile     string `json:"bson_file,omitempty"`
	MetadataFile string `json:"metadata_file"`
	// Digest is the content digest of the documents dumped (Digest: the
	// sum of their SHA-256, order-independent), computed as the dump read
	// them. Empty for a view and in backups made before a0 wrote it: a
	// restore test then compares counts and indexes only.
	Digest string `json:"digest,omitempty"`
}

// Kinds of Change.
const (
	ChangeDropped = "dropped"
	ChangeRenamed = "renamed"
	// ChangeRecreated is a collection dropped and created again under its
	// name: what was read of the first one is left out, the second one
	// is dumped.
	ChangeRecreated = "recreated"
)

// Change is a collection that changed while the dump ran.
type Change struct {
	DB   string `json:"db"`
	Name string `json:"name"`
	// Change is ChangeDropped or ChangeRenamed.
	Change string `json:"change"`
	// NewName is the name a renamed collection was dumped under.
	NewName string `json:"new_name,omitempty"`
}

// File is one file of a sensitive backup.
type File struct {
	Path   string `json:"path"`   // path inside the archive
	Origin string `json:"origin"` // absolute path on the node it came from
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Namespace is "db.collection".
func (c Collection) Namespace() string { return c.DB + "." + c.Name }

// TotalDocuments sums the documents of all collections.
func (m *Manifest) TotalDocuments() int64 {
	var n int64
	for _, c := range m.Collections {
		n += c.Documents
	}
	return n
}

// TotalBytes sums the BSON bytes of all collections.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for _, c := range m.Collections {
		n += c.Bytes
	}
	return n
}

// Encode returns the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// maxSize bounds what Decode reads: a manifest of a million collections is
// still far below it, and a crafted archive cannot make us buffer gigabytes.
const maxSize = 64 << 20

// limits bound what decoding a manifest builds, which maxSize does not: a
// 64 MiB list of "{}" would decode into 20 million collections. An archive
// holds at most 100,000 entries (package archive), so no manifest lists
// more collections, files or changes than that; a collection is about 20
// values.
var limits = jsonlimit.Limits{Depth: 16, Values: 2_500_000, Containers: 200_100}

// Decode reads a manifest and checks its version and kind.
func Decode(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("manifest larger than %d bytes", maxSize)
	}
	if _, err := jsonlimit.Check(b, limits); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: %d", ErrUnsupported, m.FormatVersion)
	}
	switch m.Kind {
	case KindBackup, KindSensitive:
	default:
		return nil, fmt.Errorf("decode manifest: unknown kind %q", m.Kind)
	}
	return &m, nil
}
