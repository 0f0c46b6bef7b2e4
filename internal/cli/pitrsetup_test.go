package cli

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/pitr/pitrtest"
)

// pitrSetup is where the restore-to-a-point-in-time tests start: a node
// whose config encrypts to an age identity, an operator holding a key the
// node knows, the node set as backup on a fresh device, the identity in
// a file for --identity, and pitrtest's writer, which has already written.
type pitrSetup struct {
	x      *age.X25519Identity
	n      *testNode
	op     *operator
	dev    string
	ageKey string // the identity's file
	rng    *rand.Rand
	w      *pitrtest.Writer
}

// newPITRSetup starts it: cfg's Recipients are the identity's; the
// writer's random source is seeded from the clock (logged) on stream,
// and it makes warm writes before this returns.
func newPITRSetup(t *testing.T, cfg agent.Config, stream uint64, warm int) *pitrSetup {
	t.Helper()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Recipients = []string{x.Recipient().String()}
	s := &pitrSetup{x: x, n: startNodeWith(t, "", "", cfg)}
	s.op = newOperator(t).withKey(s.n)
	s.dev = t.TempDir()
	s.op.mustOn(s.n, "set-as-backup", s.dev)
	s.ageKey = filepath.Join(s.op.dir, "age.key")
	if err := os.WriteFile(s.ageKey, []byte(x.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	s.rng = rand.New(rand.NewPCG(seed, stream))
	s.w = pitrtest.NewWriter(s.n.client(), s.rng)
	for range warm {
		if err := s.w.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
