package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/a0backup/a0/internal/embedded"
)

// TestStartNodeURIHasNoSideChannels: the external-server figures are only
// worth something if the agent reaches the server over the wire alone. An
// agent given a URI runs no embedded server, so it has none of the embedded
// side channels (they hang off Agent.Embedded) and publishes no embedded
// URI; StartNode, for contrast, has them.
func TestStartNodeURIHasNoSideChannels(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(t.TempDir(), "db"), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		name     string
		uri      string
		embedded bool
	}{
		{"external", srv.URI(), false},
		{"embedded", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			var n *Node
			var err error
			if tc.uri != "" {
				n, err = StartNodeURI(ctx, work, tc.uri)
			} else {
				n, err = StartNode(ctx, work)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if got := n.a.Embedded() != nil; got != tc.embedded {
				t.Errorf("agent runs an embedded server: %v, want %v", got, tc.embedded)
			}
			_, err = os.Stat(filepath.Join(n.State, "embedded.uri"))
			if got := err == nil; got != tc.embedded {
				t.Errorf("embedded.uri published: %v, want %v", got, tc.embedded)
			}
		})
	}
	if _, err := StartNodeURI(ctx, t.TempDir(), ""); err == nil {
		t.Error("StartNodeURI with an empty URI: no error")
	}
}

// TestStatCPUSeconds: the server's CPU figure is read from /proc/PID/stat,
// whose command name may hold spaces and parentheses.
func TestStatCPUSeconds(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want float64
	}{
		{"plain", "1234 (a0bench) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 9 0 100 0 0", 3.75},
		{"name with spaces and parens", "1234 (a (b) c) R 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 9 0 100 0 0", 0.10},
		{"cut short", "1234 (a0bench) S 1 1234", 0},
		{"no name", "garbage", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statCPUSeconds([]byte(tc.stat)); got < tc.want-1e-9 || got > tc.want+1e-9 {
				t.Errorf("statCPUSeconds = %v, want %v", got, tc.want)
			}
		})
	}
}
