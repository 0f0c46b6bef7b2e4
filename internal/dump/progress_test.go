package dump

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/sampledata"
)

// TestProgressTotalIsBSONSize: on the embedded server (FerretDB, whose
// collStats size is the SQLite storage size, about 4x the BSON), Totals
// and the dump's first total estimate the BSON bytes the dump reads within
// 25%, and the total equals the bytes read once the dump is done, so a bar
// ends at 100%.
func TestProgressTotalIsBSONSize(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{Dir: t.TempDir()})
	if _, err := sampledata.Seed(ctx, client, sampledata.Options{Users: 3000}); err != nil {
		t.Fatal(err)
	}
	colls, est, err := Totals(ctx, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	aw, err := archive.NewWriter(io.Discard, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prog := &Progress{}
	firstTotal := make(chan int64, 1)
	go func() {
		for prog.EstimatedBytes.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		firstTotal <- prog.EstimatedBytes.Load()
	}()
	m, err := Run(ctx, client, aw, Options{SpoolDir: t.TempDir(), Oplog: OplogOff}, prog)
	if err != nil {
		t.Fatal(err)
	}
	aw.Close()
	var bsonBytes int64
	for _, c := range m.Collections {
		bsonBytes += c.Bytes
	}
	if colls != int64(len(m.Collections)) || colls != prog.CollectionsTotal.Load() {
		t.Errorf("Totals says %d collections, the dump listed %d and dumped %d", colls, prog.CollectionsTotal.Load(), len(m.Collections))
	}
	for what, got := range map[string]int64{"Totals": est, "the dump's first total": <-firstTotal} {
		if ratio := float64(got) / float64(bsonBytes); ratio < 0.75 || ratio > 1.25 {
			t.Errorf("%s estimates %d bytes for %d bytes of BSON (%.2fx)", what, got, bsonBytes, ratio)
		}
	}
	if s := prog.Snapshot(); s.Bytes != bsonBytes || s.EstimatedBytes != s.Bytes {
		t.Errorf("at the end: bytes %d, total %d, BSON dumped %d: the total must equal the bytes", s.Bytes, s.EstimatedBytes, bsonBytes)
	}
}
