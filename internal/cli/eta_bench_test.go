package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/sampledata"
)

// etaNode starts a real agent on its embedded server, seeds it with
// $A0_BENCH_ETA_USERS users through the agent's client (so the oplog holds
// the writes, as on a live node), authorizes a key and sets a device, and
// returns a0cli bound to that node.
func etaNode(b *testing.B) (cli func(args ...string) string) {
	b.Helper()
	users := 60000
	if v, err := strconv.Atoi(os.Getenv("A0_BENCH_ETA_USERS")); err == nil && v > 0 {
		users = v
	}
	ctx := context.Background()
	state, home, dev := b.TempDir(), filepath.Join(b.TempDir(), "cli"), b.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	a, err := agent.New(ctx, agent.Config{Jobs: dbjob.Runners(), StateDir: state, Listen: ln.Addr().String()})
	if err != nil {
		b.Fatal(err)
	}
	go a.Serve(ln)
	b.Cleanup(func() { a.Close() })
	pub, err := keys.Create(home, keys.KeyType("ed25519"), false)
	if err != nil {
		b.Fatal(err)
	}
	if err := keys.OpenAuthorized(filepath.Join(state, "authorized_keys")).Add("bench", pub); err != nil {
		b.Fatal(err)
	}
	if _, err := sampledata.Seed(ctx, a.Client(), sampledata.Options{Users: users}); err != nil {
		b.Fatal(err)
	}
	cli = func(args ...string) string {
		var out, errb bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errb, Home: home, Port: 10121,
			Getenv: func(k string) string {
				if k == "A0_BACKUP_PASSWORD" {
					return "bench-eta-password"
				}
				return ""
			}}
		if code := Main(ctx, append([]string{"-t", ln.Addr().String()}, args...), env); code != 0 {
			b.Fatalf("a0cli %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	cli("set-as-backup", dev)
	return cli
}

// BenchmarkBackupETA measures how honest backup progress is (issue 14.4) on
// the embedded server seeded with $A0_BENCH_ETA_USERS users (default
// 60000, about 50 MiB of BSON): it polls backup-status as `backup --wait`
// does and reports, at the first poll with a fifth of the bytes done, the
// error of the ETA the bar shows (remaining bytes at the rate since the
// first bytes moved) against the time the backup really took from there,
// beside the ETA from the job's start (the bar's before); the first status's
// total against the bytes dumped; and the last progress seen. Run:
//
//	go test -run '^$' -bench BackupETA -benchtime 1x ./internal/cli/
func BenchmarkBackupETA(b *testing.B) {
	cli := etaNode(b)
	for i := 0; i < b.N; i++ {
		if i > 0 {
			cli("backup-delete")
		}
		type sample struct {
			at           time.Duration
			bytes, total int64
		}
		var samples []sample
		start := time.Now()
		cli("backup")
		var first, last progressArgs
		for {
			var st slotStatus
			raw := cli("backup-status")
			if err := json.Unmarshal([]byte(raw), &st); err != nil {
				b.Fatal(err)
			}
			if st.Message != "Backup in progress" {
				if !strings.Contains(raw, "Backup found") {
					b.Fatalf("backup ended: %s", raw)
				}
				break
			}
			var p progressArgs
			json.Unmarshal(st.Arguments, &p)
			if len(samples) == 0 {
				first = p
			}
			last = p
			samples = append(samples, sample{time.Since(start), p.Progress.Bytes, p.Progress.EstimatedBytes})
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		var found struct {
			Arguments struct{ Documents int64 } `json:"arguments"`
		}
		json.Unmarshal([]byte(cli("backup-status")), &found)
		// still is the last poll before the first byte: the bar measures
		// its rate from there (progress.go).
		var moved *sample
		still := time.Duration(0)
		for i, s := range samples {
			if moved == nil && s.bytes > 0 {
				moved = &samples[i]
			}
			if moved == nil {
				still = s.at
			}
			if s.total <= 0 || s.bytes*5 < s.total {
				continue
			}
			real := took - s.at
			// The bar's ETA: the rate since the first bytes.
			if el := (s.at - still).Seconds(); el > 0 {
				eta := float64(s.total-s.bytes) / (float64(s.bytes) / el)
				b.ReportMetric(100*(eta-real.Seconds())/real.Seconds(), "eta_err_%_at_fifth")
			}
			// The rate over the whole job, which the bar used before:
			// the wait before the first byte stretches it.
			eta := float64(s.total-s.bytes) / (float64(s.bytes) / s.at.Seconds())
			b.ReportMetric(100*(eta-real.Seconds())/real.Seconds(), "eta_from_job_start_err_%")
			b.ReportMetric(real.Seconds(), "s_left_at_fifth")
			b.ReportMetric(moved.at.Seconds(), "s_to_first_byte")
			break
		}
		dumped := last.Progress.Bytes
		b.ReportMetric(took.Seconds(), "s_backup")
		b.ReportMetric(float64(first.Progress.EstimatedBytes)/float64(max(dumped, 1)), "first_total/bytes")
		b.ReportMetric(float64(first.Progress.CollectionsTotal), "first_collections_total")
		b.ReportMetric(100*float64(last.Progress.Bytes)/float64(max(last.Progress.EstimatedBytes, 1)), "last_progress_%")
		b.ReportMetric(float64(dumped)/1e6, "MB_bson")
	}
}

// BenchmarkRestoreETA is BenchmarkBackupETA for restore (issue 14.4): a
// point-in-time backup of the seeded node is retrieved and restored onto
// the same node with --drop, as an operator does, while restore-status is
// polled as `restore --wait` does. Its bar has one phase per bar; the data
// phase ("restoring", bytes of the plan's exact BSON total) is what an ETA
// is shown for. Reported: the ETA error at the first poll with a fifth of
// the bytes in (rates since its first bytes; the mean of the bytes' and the
// documents' ETAs, as the bar computes it) against when the last byte was
// in, each of the two alone, the last
// progress seen, and the phases' times. A0_BENCH_ETA_TRACE=1 prints every
// poll (seconds, phase/step, bytes, total, documents, total) on stderr.
//
//	go test -run '^$' -bench RestoreETA -benchtime 1x ./internal/cli/
func BenchmarkRestoreETA(b *testing.B) {
	cli := etaNode(b)
	cli("backup", "--wait")
	file := filepath.Join(b.TempDir(), "backup.tar.gz.enc")
	cli("backup-retrieve", "-o", file)
	for i := 0; i < b.N; i++ {
		type sample struct {
			at              time.Duration
			phase           string
			bytes, total    int64
			docs, docsTotal int64
		}
		var samples []sample
		start := time.Now()
		cli("restore", file, "--drop", "--detach")
		var final string
		for {
			raw := cli("restore-status")
			var st restoreStatus
			if err := json.Unmarshal([]byte(raw), &st); err != nil {
				b.Fatal(err)
			}
			if st.Message != "Restore in progress" {
				if st.Message != "Restore finished" {
					b.Fatalf("restore ended: %s", raw)
				}
				final = raw
				break
			}
			var running api.JobRunning[api.RestoreProgress]
			json.Unmarshal(st.Arguments, &running)
			p := running.Progress
			samples = append(samples, sample{time.Since(start), p.Phase + "/" + p.Step, p.Bytes, p.BytesTotal, p.Documents, p.DocumentsTotal})
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		if os.Getenv("A0_BENCH_ETA_TRACE") != "" {
			for _, s := range samples {
				fmt.Fprintf(os.Stderr, "TRACE %.2f %s %d %d %d %d\n", s.at.Seconds(), s.phase, s.bytes, s.total, s.docs, s.docsTotal)
			}
		}
		var phaseStart, dataEnd time.Duration
		var last sample
		for _, s := range samples {
			if strings.HasPrefix(s.phase, "restoring") && phaseStart == 0 {
				phaseStart = s.at
			}
			if s.total > 0 && s.bytes >= s.total && dataEnd == 0 {
				dataEnd = s.at
			}
			if s.total > 0 {
				last = s
			}
		}
		if phaseStart == 0 || dataEnd == 0 || last.total == 0 {
			b.Fatalf("no data phase seen in %d polls (%s)", len(samples), final)
		}
		// The bar of the data phase starts at its first poll and measures
		// its rate from the last poll before its first bytes.
		still := phaseStart
		for _, s := range samples {
			if s.at < phaseStart {
				continue
			}
			if s.bytes == 0 {
				still = s.at
				continue
			}
			if s.total <= 0 || s.bytes*5 < s.total {
				continue
			}
			el := (s.at - still).Seconds()
			if el <= 0 {
				continue
			}
			eta := float64(s.total-s.bytes) / (float64(s.bytes) / el)
			real := (dataEnd - s.at).Seconds()
			b.ReportMetric(100*(eta-real)/max(real, 0.1), "eta_bytes_err_%")
			// The bar's ETA: the mean of the bytes' and the documents'
			// (progress.go); the documents' alone for comparison.
			if s.docs > 0 && s.docsTotal > 0 {
				etaDocs := float64(s.docsTotal-s.docs) / (float64(s.docs) / el)
				b.ReportMetric(100*(etaDocs-real)/max(real, 0.1), "eta_docs_err_%")
				eta = (eta + etaDocs) / 2
			}
			b.ReportMetric(100*(eta-real)/max(real, 0.1), "eta_err_%_at_fifth")
			b.ReportMetric(real, "s_left_at_fifth")
			break
		}
		b.ReportMetric(took.Seconds(), "s_restore")
		b.ReportMetric(phaseStart.Seconds(), "s_to_data_phase")
		b.ReportMetric((dataEnd - phaseStart).Seconds(), "s_data_phase")
		b.ReportMetric((took - dataEnd).Seconds(), "s_after_data")
		b.ReportMetric(100*float64(last.bytes)/float64(last.total), "last_progress_%")
		b.ReportMetric(float64(last.total)/1e6, "MB_bson")
	}
}
