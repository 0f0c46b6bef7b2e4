package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/store"
)

// DrillChildArg is the hidden subcommand that runs one restore drill in a
// process of its own (`a0bench drill-child FILE PARENT`, the password in
// PasswordEnv), so that its peak RSS is the drill's: the throwaway
// FerretDB and the restore, as they add to an agent's.
const DrillChildArg = "drill-child"

// DrillFigures is the cost of one restore drill (package drill, as
// `verify --restore-test` and the node's scheduled drills run it): into a
// throwaway embedded FerretDB, by nature, whatever server the backup came
// from.
type DrillFigures struct {
	BSONBytes   int64 `json:"bson_bytes"`
	Documents   int64 `json:"documents"`
	Collections int   `json:"collections"`
	FileBytes   int64 `json:"file_bytes"`
	// AuthSeconds is the file authenticated to its last byte before the
	// drill (dbjob.RunDrill's first pass); RestoreSeconds and
	// CompareSeconds are drill.Report's; TotalSeconds the whole child
	// run (authentication, server start, restore, comparison, removal).
	AuthSeconds    float64 `json:"auth_seconds"`
	RestoreSeconds float64 `json:"restore_seconds"`
	CompareSeconds float64 `json:"compare_seconds"`
	TotalSeconds   float64 `json:"total_seconds"`
	// PeakDiskBytes is the most the drill's directory held (allocated
	// blocks, sampled every 250 ms): what the device must have free.
	PeakDiskBytes int64 `json:"peak_disk_bytes"`
	// PeakRSS is the child's own resident high-water mark; CPUSeconds its
	// user+system time.
	PeakRSS    int64   `json:"peak_rss"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	OK         bool    `json:"ok"`
	Same       int     `json:"same"`
	Differs    int     `json:"differs"`
	NotHeld    int     `json:"not_held"`
}

// SealedBackup seals the data set as SealedPipeline does, with the
// content digests a backup's manifest carries (dump.Run computes them as
// it reads): the backup a drill compares. It returns the file.
func SealedBackup(ds *Dataset, slotDir string, password []byte) (string, error) {
	start := time.Now()
	slot := store.Slot{Dir: slotDir, Kind: "backup"}
	s, err := slot.CreateSealed("bench.tar.gz", password, archive.Options{})
	if err != nil {
		return "", fmt.Errorf("sealed backup: %w", err)
	}
	m, err := writeDump(s.Archive(), ds, start, true)
	if err != nil {
		s.Abort()
		return "", fmt.Errorf("sealed backup: %w", err)
	}
	meta, err := s.Finish(store.Meta{Created: start.UTC(), Documents: m.TotalDocuments(), Collections: len(m.Collections)})
	if err != nil {
		return "", fmt.Errorf("sealed backup: %w", err)
	}
	return slot.Path(meta), nil
}

// fileDigest is a .bson file's content digest (manifest.Digest).
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var d manifest.Digest
	if err := ReadDocs(f, func(doc bsoncore.Document) error { d.Add(doc); return nil }); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return d.String(), nil
}

// RunDrillChild is the child's body: the file authenticated, then
// drill.Run with its directory in parent, measured.
func RunDrillChild(ctx context.Context, file, parent string, password []byte) (*DrillFigures, error) {
	start := time.Now()
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: password}})
	if err != nil {
		return nil, err
	}
	if _, err := bf.Authenticate(ctx, nil); err != nil {
		return nil, err
	}
	auth := time.Since(start)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	disk := watchDisk(parent, 250*time.Millisecond)
	rep, err := drill.Run(ctx, drill.Options{Open: bf.Reopen, Parent: parent, InputSize: st.Size()})
	peak := disk()
	if err != nil {
		return nil, err
	}
	return &DrillFigures{BSONBytes: rep.Bytes, Documents: rep.Documents, Collections: len(rep.Collections), FileBytes: st.Size(),
		AuthSeconds: auth.Seconds(), RestoreSeconds: rep.RestoreSeconds, CompareSeconds: rep.CompareSeconds,
		TotalSeconds: time.Since(start).Seconds(), PeakDiskBytes: peak, PeakRSS: SelfPeakRSS(),
		OK: rep.OK, Same: rep.Same, Differs: rep.Differs, NotHeld: rep.NotHeld}, nil
}

// watchDisk samples the allocated size of everything under dir every
// period until the returned function is called, which returns the peak.
func watchDisk(dir string, period time.Duration) func() int64 {
	var (
		mu   sync.Mutex
		peak int64
		wg   sync.WaitGroup
	)
	sample := func() {
		n := diskUsage(dir)
		mu.Lock()
		peak = max(peak, n)
		mu.Unlock()
	}
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// diskUsage is what dir's files occupy on the disk (512-byte blocks, as
// du counts them); files that vanish while it walks are skipped.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// ChildDrill runs `exe drill-child FILE PARENT` and returns its figures
// with its CPU time.
func ChildDrill(ctx context.Context, exe, file, parent, password string) (*DrillFigures, error) {
	cmd := exec.CommandContext(ctx, exe, DrillChildArg, file, parent)
	cmd.Env = append(os.Environ(), PasswordEnv+"="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("drill child: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var f DrillFigures
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return nil, fmt.Errorf("drill child: %w", err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		f.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	return &f, nil
}

// MeasureDrill generates a data set of size in work (or reuses the one
// there), seals it with digests and runs the drill in a child process,
// runs times.
func MeasureDrill(ctx context.Context, exe, work string, size int64, runs int, password string, logf func(string, ...any)) ([]DrillFigures, error) {
	dataDir := filepath.Join(work, fmt.Sprintf("drill-data-%d", size))
	ds, err := LoadDataset(dataDir)
	if err != nil {
		logf("drill: generating %d bytes of BSON in %s", size, dataDir)
		if ds, err = Generate(dataDir, size, 1); err != nil {
			return nil, err
		}
	}
	slot := filepath.Join(work, fmt.Sprintf("drill-slot-%d", size))
	os.RemoveAll(slot)
	if err := os.MkdirAll(slot, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(slot)
	logf("drill: sealing the backup (with content digests)")
	file, err := SealedBackup(ds, slot, []byte(password))
	if err != nil {
		return nil, err
	}
	var out []DrillFigures
	for i := range runs {
		logf("drill: run %d of %d (restore into a throwaway embedded FerretDB, compare)", i+1, runs)
		f, err := ChildDrill(ctx, exe, file, filepath.Join(work, "drill-parent"), password)
		if err != nil {
			return nil, err
		}
		out = append(out, *f)
	}
	return out, nil
}
