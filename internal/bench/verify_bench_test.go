package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/a0backup/a0/internal/archive"
)

// BenchmarkSealedPipelineVerified is BenchmarkSealedPipeline plus the
// read-back that makes a backup "found" (FinishVerified + restore.Plan).
// verify_share is the read-back's part of the whole run: with no database
// in front of the pipeline this is the worst case, since a real backup
// also waits for the server's reads.
func BenchmarkSealedPipelineVerified(b *testing.B) {
	ds := dataset(b)
	b.SetBytes(ds.Bytes())
	var total, verify float64
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "slot")
		r, v, err := SealedPipelineVerified(ds, dir, benchPassword, archive.Options{})
		if err != nil {
			b.Fatal(err)
		}
		total += r.Seconds
		verify += v
		os.Remove(r.File)
	}
	b.ReportMetric(verify/total, "verify_share")
	b.ReportMetric(verify/float64(b.N)*1e3, "verify_ms/op")
}

// BenchmarkAgentBackupVerified is a whole backup through a real agent on
// the embedded server (seeded, then a0cli backup's request, then
// backup-status until found): verify_share is the read-back's part of the
// backup as the operator waits for it.
func BenchmarkAgentBackupVerified(b *testing.B) {
	ctx := context.Background()
	work := b.TempDir()
	st, err := SeedNode(ctx, work, 10000)
	if err != nil {
		b.Fatal(err)
	}
	n, err := StartNode(ctx, work)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var total, verify float64
	for b.Loop() {
		r, err := n.Backup(ctx, string(benchPassword), st.Bytes, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += r.Seconds + r.VerifySeconds
		verify += r.VerifySeconds
	}
	b.ReportMetric(verify/total, "verify_share")
	b.ReportMetric(verify/float64(b.N)*1e3, "verify_ms/op")
	b.ReportMetric(float64(st.Bytes)/1e6, "bson_MB")
}
