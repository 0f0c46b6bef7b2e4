package manifest

import (
	"fmt"
	"strings"
	"time"
)

// NameLayout is the layout of a backup's name before its ".tar.gz": the
// time the backup started, in UTC, as the original appliance named them.
const NameLayout = "02-01-2006-15-04-05"

// nameSlack is how long after the time its name gives a backup made
// before a0 wrote Name may have started its dump (Started): the name is
// taken when the job starts, the dump's clock read a moment later.
const nameSlack = time.Minute

// NameError is a backup that is not the one asked for: its manifest,
// authenticated with the file, gives another name (or, for a backup made
// before a0 recorded names, another creation time).
type NameError struct {
	// Want is the name asked for; Got what the manifest proves (a name,
	// or for an older backup the name its creation time gives).
	Want, Got string
	Node      string
	Started   time.Time
}

func (e *NameError) Error() string {
	node := e.Node
	if node == "" {
		node = "an unnamed node"
	}
	return fmt.Sprintf("the file given as backup %s is backup %s (node %s, created %s), according to its authenticated manifest: refused",
		e.Want, e.Got, node, e.Started.UTC().Format(time.RFC3339))
}

// BackupName is the name a backup's manifest proves: Name, or for a
// backup made before a0 wrote it, the one its start time gives (which may
// be up to a minute later than the name the node gave it).
func (m *Manifest) BackupName() string {
	if m.Name != "" {
		return m.Name
	}
	return m.Started.UTC().Format(NameLayout) + ".tar.gz"
}

// CheckName returns a *NameError unless m is the manifest of the backup
// named want: its Name, or, for a backup made before a0 wrote Name, a
// start no earlier than the time want gives and within a minute of it.
// The manifest must come from an authenticated archive: it is the proof,
// the file's name and any record beside it are not.
func (m *Manifest) CheckName(want string) error {
	if m.Name != "" {
		if m.Name == want {
			return nil
		}
		return &NameError{Want: want, Got: m.Name, Node: m.Source.Node, Started: m.Started}
	}
	if t, err := time.Parse(NameLayout, strings.TrimSuffix(want, ".tar.gz")); err == nil && strings.HasSuffix(want, ".tar.gz") {
		if d := m.Started.Sub(t); d >= 0 && d < nameSlack {
			return nil
		}
	}
	return &NameError{Want: want, Got: m.BackupName(), Node: m.Source.Node, Started: m.Started}
}
