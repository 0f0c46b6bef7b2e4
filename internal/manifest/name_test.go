package manifest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCheckName (issue 25 point 1): a manifest proves its backup's name;
// one made before a0 recorded names proves it by its start, a moment
// after the time the name gives.
func TestCheckName(t *testing.T) {
	at := time.Date(2026, 2, 1, 3, 4, 5, 0, time.UTC)
	const name = "01-02-2026-03-04-05.tar.gz"
	for _, tc := range []struct {
		what string
		m    Manifest
		want string
		ok   bool
	}{
		{"its name", Manifest{Name: name, Started: at}, name, true},
		{"another name", Manifest{Name: "01-01-2026-03-04-05.tar.gz", Started: at}, name, false},
		{"a name wins over the start", Manifest{Name: "01-01-2026-03-04-05.tar.gz", Started: at}, "01-01-2026-03-04-05.tar.gz", true},
		{"older backup, started that second", Manifest{Started: at.Add(400 * time.Millisecond)}, name, true},
		{"older backup, started a few seconds later", Manifest{Started: at.Add(3 * time.Second)}, name, true},
		{"older backup, started before its name", Manifest{Started: at.Add(-time.Second)}, name, false},
		{"older backup, started an hour later", Manifest{Started: at.Add(time.Hour)}, name, false},
		{"older backup, a name that is no time", Manifest{Started: at}, "x.tar.gz", false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			tc.m.Source.Node = "node-a"
			err := tc.m.CheckName(tc.want)
			var ne *NameError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.As(err, &ne):
				t.Fatalf("accepted (%v)", err)
			case !tc.ok && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.m.BackupName()) || !strings.Contains(err.Error(), "node-a")):
				t.Fatalf("the error does not name both backups and the node: %v", err)
			}
		})
	}
}
