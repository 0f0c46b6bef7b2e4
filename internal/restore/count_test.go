package restore

import (
	"context"
	"testing"

	"github.com/a0backup/a0/internal/embedded"
)

// TestCountOption: the count check takes Options.Count when given (the
// embedded server's row count in SQL): the real counts pass, a count that
// disagrees with the archive fails the report.
func TestCountOption(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	data := sampleDump().archive(t)
	rep, err := restore(t, client, data, Options{Drop: true, Count: srv.Catalog().Count})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("restore with the SQL counts not OK: %+v", rep.Collections)
	}
	for _, c := range rep.Collections {
		if c.CountCompared && c.DocumentsFound != c.DocumentsExpected {
			t.Fatalf("%s: found %d, expected %d", c.Namespace, c.DocumentsFound, c.DocumentsExpected)
		}
	}
	lie := func(ctx context.Context, db, coll string) (int64, error) {
		n, err := srv.Catalog().Count(ctx, db, coll)
		return n + 1, err
	}
	rep, err = restore(t, client, data, Options{Drop: true, Count: lie})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("a count one off passed the count check")
	}
}
