package embeddedtest

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/embedded"
)

// Client starts an embedded server with cfg (in a fresh temporary directory
// when cfg.Dir is empty) and returns a client to it; both are closed when
// the test ends.
func Client(t testing.TB, cfg embedded.Config) *mongo.Client {
	t.Helper()
	ctx := context.Background()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}
