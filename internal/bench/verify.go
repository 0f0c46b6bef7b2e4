package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/store"
)

// SealedPipelineVerified is SealedPipeline finished as the agent finishes a
// backup: store.Sealed.FinishVerified reads the file back from the disk
// with the writer's keys and runs restore.Plan over it before the rename.
// verifySeconds is the read-back alone (from the start of the read to the
// last authenticated byte); Result.Seconds includes it.
func SealedPipelineVerified(ds *Dataset, slotDir string, password []byte, opts archive.Options) (r Result, verifySeconds float64, err error) {
	start := time.Now()
	s, err := store.Slot{Dir: slotDir, Kind: "backup"}.CreateSealed("bench.tar.gz", password, opts)
	if err != nil {
		return Result{}, 0, fmt.Errorf("sealed pipeline: %w", err)
	}
	m, err := writeDump(s.Archive(), ds, start, false)
	if err != nil {
		s.Abort()
		return Result{}, 0, fmt.Errorf("sealed pipeline: %w", err)
	}
	var vStart time.Time
	meta, err := s.FinishVerified(store.Meta{Created: start.UTC(), Documents: m.TotalDocuments(), Collections: len(m.Collections)},
		func(plain io.Reader) error {
			vStart = time.Now()
			_, err := restore.Plan(context.Background(), plain, restore.Options{})
			return err
		})
	if err != nil {
		return Result{}, 0, fmt.Errorf("sealed pipeline: %w", err)
	}
	end := time.Now()
	return Result{Seconds: end.Sub(start).Seconds(), InBytes: ds.Bytes(), OutBytes: meta.Size,
		File: store.Slot{Dir: slotDir, Kind: "backup"}.Path(meta)}, end.Sub(vStart).Seconds(), nil
}
