package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/store"
)

// Result is one timed run.
type Result struct {
	Seconds float64 `json:"seconds"`
	// InBytes is the BSON the run consumed or produced (the MB/s basis).
	InBytes int64 `json:"in_bytes"`
	// OutBytes is what the run wrote (the encrypted file for a backup).
	OutBytes int64 `json:"out_bytes,omitempty"`
	// File is the backup the run wrote, when it wrote one.
	File string `json:"file,omitempty"`
	// CPUSeconds is user+system time, when the run was a child process
	// (the a0 pipeline child, or a shell baseline's whole pipeline).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// MBps is BSON megabytes (10^6) per second.
func (r Result) MBps() float64 { return float64(r.InBytes) / 1e6 / r.Seconds }

// Ratio is BSON bytes over output bytes.
func (r Result) Ratio() float64 {
	if r.OutBytes == 0 {
		return 0
	}
	return float64(r.InBytes) / float64(r.OutBytes)
}

// fileMode is what the dump gives archive entries.
const fileMode = 0o600

// SealedPipeline runs the agent's backup tail on the data set, exactly as
// internal/dump feeds it from its spool files: prelude, then per collection
// metadata.json and the .bson file via AddFile, then manifest.json, into
// store.Slot.CreateSealed (tar -> pgzip -> crypt -> md5+sha256 -> fsync ->
// rename). slotDir must not hold a backup yet. The KDF (argon2id) is inside
// the timing, as it is in a real backup.
func SealedPipeline(ds *Dataset, slotDir string, password []byte, opts archive.Options) (Result, *store.Meta, error) {
	start := time.Now()
	s, err := store.Slot{Dir: slotDir, Kind: "backup"}.CreateSealed("bench.tar.gz", password, opts)
	if err != nil {
		return Result{}, nil, fmt.Errorf("sealed pipeline: %w", err)
	}
	m, err := writeDump(s.Archive(), ds, start, false)
	if err != nil {
		s.Abort()
		return Result{}, nil, fmt.Errorf("sealed pipeline: %w", err)
	}
	meta, err := s.Finish(store.Meta{Created: start.UTC(), Documents: m.TotalDocuments(), Collections: len(m.Collections)})
	if err != nil {
		return Result{}, nil, fmt.Errorf("sealed pipeline: %w", err)
	}
	el := time.Since(start).Seconds()
	return Result{Seconds: el, InBytes: ds.Bytes(), OutBytes: meta.Size, File: store.Slot{Dir: slotDir, Kind: "backup"}.Path(meta)}, meta, nil
}

// writeDump packs the data set in the order and layout dump.Run uses, so the
// result passes restore.Plan's manifest checks. With digests the manifest
// carries each collection's content digest as dump.Run computes it (a
// read of each file before it is packed; the pipeline's figures leave it
// out, as they always have).
func writeDump(aw *archive.Writer, ds *Dataset, start time.Time, digests bool) (*manifest.Manifest, error) {
	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, Kind: manifest.KindBackup, ToolVersion: "a0bench",
		Started: start.UTC(), Consistency: manifest.ConsistencyNone,
	}
	if err := aw.AddBytes("prelude.json", fileMode, start, []byte(`{"ServerVersion":"a0bench","ToolVersion":"a0bench"}`+"\n")); err != nil {
		return nil, err
	}
	for _, c := range ds.Collections {
		meta, err := os.ReadFile(c.MetadataPath(ds.DumpDir()))
		if err != nil {
			return nil, err
		}
		mc := manifest.Collection{DB: c.DB, Name: c.Name, Type: "collection", Documents: c.Documents, Bytes: c.Bytes,
			Indexes: c.Indexes, BSONFile: c.DB + "/" + c.Name + ".bson", MetadataFile: c.DB + "/" + c.Name + ".metadata.json"}
		if digests {
			if mc.Digest, err = fileDigest(c.BSONPath(ds.DumpDir())); err != nil {
				return nil, err
			}
		}
		if err := aw.AddBytes(mc.MetadataFile, fileMode, start, meta); err != nil {
			return nil, err
		}
		f, err := os.Open(c.BSONPath(ds.DumpDir()))
		if err != nil {
			return nil, err
		}
		err = aw.AddFile(mc.BSONFile, fileMode, c.Bytes, start, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		m.Collections = append(m.Collections, mc)
	}
	m.Finished = time.Now().UTC()
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if err := aw.AddBytes(manifest.Name, fileMode, m.Finished, b); err != nil {
		return nil, err
	}
	return m, nil
}

// RestoreFileSide runs what restore does to the file before the first
// database write (planFile): backupfile.Open (KDF, header MAC) then
// restore.Plan, which authenticates every record, gunzips, walks the tar
// and validates every BSON document and the manifest, then the rest of the
// file authenticated. bsonBytes is the MB/s basis (BSON out).
func RestoreFileSide(ctx context.Context, file string, password []byte) (Result, error) {
	start := time.Now()
	p, err := planFile(ctx, file, password)
	if err != nil {
		return Result{}, fmt.Errorf("restore file side: %w", err)
	}
	var n int64
	for _, c := range p.Collections {
		n += c.Bytes
	}
	st, err := os.Stat(file)
	if err != nil {
		return Result{}, fmt.Errorf("restore file side: %w", err)
	}
	return Result{Seconds: time.Since(start).Seconds(), InBytes: n, OutBytes: st.Size()}, nil
}
