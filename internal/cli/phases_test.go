package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/restore"
)

// screen is what a terminal shows of a bar's output: each line as last
// drawn (the text after its last carriage return, escapes removed).
func screen(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if i := strings.LastIndex(l, "\r"); i >= 0 {
			l = l[i+1:]
		}
		lines = append(lines, strings.ReplaceAll(l, "\033[K", ""))
	}
	return lines
}

func checkScreen(t *testing.T, out string, want [][]string) {
	t.Helper()
	got := screen(out)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(got[i], p) {
				t.Fatalf("line %d %q lacks %q; the screen:\n%s", i+1, got[i], p, strings.Join(got, "\n"))
			}
		}
	}
}

func interactiveEnv() (*Env, *bytes.Buffer) {
	var out bytes.Buffer
	return &Env{Stderr: &lineWriter{w: &out}, Interactive: true}, &out
}

// The bars of issue 28 point 6, drawn as a terminal shows them: each
// phase on a line of its own, with its own figures, ended complete when
// the next phase starts.
func TestBarsShowEachPhase(t *testing.T) {
	t.Run("sensitive backup counts files", func(t *testing.T) {
		env, out := interactiveEnv()
		ph := newPhases(env, "backup")
		showBackup(ph, api.SlotProgress{SensitiveProgress: api.SensitiveProgress{FilesDone: 2, FilesTotal: 5}})
		ph.done()
		checkScreen(t, out.String(), [][]string{{"backup files [", "100% 5/5 files"}})
		if strings.Contains(out.String(), " B/") || strings.Contains(out.String(), "B/s") {
			t.Fatalf("files counted as bytes: %q", out.String())
		}
	})
	t.Run("backup", func(t *testing.T) {
		env, out := interactiveEnv()
		ph := newPhases(env, "backup")
		const est = 88_500_000
		for _, pr := range []api.BackupProgress{
			{CollectionsTotal: 8, EstimatedBytes: est},
			{CollectionsTotal: 8, CollectionsDone: 2, Documents: 1000, Bytes: 30_000_000, EstimatedBytes: est},
			{CollectionsTotal: 8, CollectionsDone: 8, Documents: 100_000, Bytes: est, EstimatedBytes: est},
			{CollectionsTotal: 8, CollectionsDone: 8, Documents: 100_000, Bytes: est, EstimatedBytes: est, Verifying: true},
		} {
			showBackup(ph, api.SlotProgress{BackupProgress: pr})
		}
		ph.done()
		checkScreen(t, out.String(), [][]string{
			{"backup starting: the oplog's start and the list of collections: done"},
			{"backup reading [========================] 100% 88.5 MB/88.5 MB", "8/8 collections"},
			{"backup oplog: every collection read (100000 docs): reading the oplog written meanwhile: done"},
			{"backup verifying: the written file (100000 docs, 8 collections): done"},
		})
	})
	t.Run("restore", func(t *testing.T) {
		env, out := interactiveEnv()
		ph := newPhases(env, "restore")
		const file, bsonBytes = 17_000_000, 88_500_000
		for _, p := range []api.RestoreProgress{
			// The last poll of the first pass saw 56%: it ends at 100%.
			{Phase: "authenticating", FileBytes: 9_520_000, FileBytesTotal: file},
			{Phase: "restoring", RestoreCounters: api.RestoreCounters{CollectionsTotal: 8, Step: restore.StepData, Documents: 50_000, Bytes: 40_000_000},
				DocumentsTotal: 100_000, BytesTotal: bsonBytes},
			{Phase: "restoring", RestoreCounters: api.RestoreCounters{CollectionsTotal: 8, Step: restore.StepIndexes, CollectionsDone: 3, Documents: 100_000, Bytes: bsonBytes},
				DocumentsTotal: 100_000, BytesTotal: bsonBytes},
			{Phase: "restoring", RestoreCounters: api.RestoreCounters{CollectionsTotal: 8, CollectionsDone: 8, Step: restore.StepOplog, OplogApplied: 1},
				DocumentsTotal: 100_000, BytesTotal: bsonBytes, OplogEntriesTotal: 3},
			{Phase: "restoring", RestoreCounters: api.RestoreCounters{CollectionsTotal: 8, CollectionsDone: 8, Step: restore.StepReport}},
		} {
			showRestore(ph, p)
		}
		ph.done()
		checkScreen(t, out.String(), [][]string{
			{"restore authenticating [========================] 100% 17.0 MB/17.0 MB every byte before the first write"},
			{"restore data [========================] 100% 88.5 MB/88.5 MB 100000/100000 docs"},
			{"restore indexes [========================] 100% 8/8 collections"},
			{"restore oplog [========================] 100% 3/3 entries replayed"},
			{"restore checking: the counts read back: done"},
		})
	})
	t.Run("recover's restore never seen authenticating", func(t *testing.T) {
		env, out := interactiveEnv()
		ph := newPhases(env, "restore")
		showRestore(ph, api.RestoreProgress{Phase: "authenticating", FileBytesTotal: 17_000_000})
		showRestore(ph, api.RestoreProgress{Phase: "restoring", RestoreCounters: api.RestoreCounters{Step: restore.StepData, CollectionsTotal: 8},
			DocumentsTotal: 10, BytesTotal: 100})
		ph.finish()
		checkScreen(t, out.String(), [][]string{
			{"restore authenticating", "100% 17.0 MB/17.0 MB"},
			{"restore data", "0% 0 B/100 B", "0/10 docs"},
		})
	})
}
