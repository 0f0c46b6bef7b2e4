package restore

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dumparchive"
	"github.com/a0backup/a0/internal/spool"
)

// entries is what Plan and Run read: the regular files of a tar.gz (an a0
// backup, or a packed mongodump directory), or the collections of a
// mongodump archive presented as the files of its directory layout.
type entries interface {
	Next() (*archive.Entry, error)
	io.Reader
	Close() error
}

// openEntries opens r as an a0 backup's tar.gz or, with opts.Plain, as
// whichever of a tar.gz or a mongodump archive (gzipped or not) it is.
func openEntries(r io.Reader, opts Options, budget *spool.Budget) (entries, error) {
	if !opts.Plain {
		return archive.NewReader(r, archive.Limits{})
	}
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(len(dumparchive.Magic))
	if dumparchive.IsArchive(head) {
		return newDumpArchive(br, nil, opts.SpoolDir, budget)
	}
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		// Inflate the first buffered bytes to see what the gzip holds:
		// the magic number of a mongodump archive, or a tar header.
		buffered, _ := br.Peek(br.Size())
		if zr, err := gzip.NewReader(bytes.NewReader(buffered)); err == nil {
			var m [4]byte
			if n, _ := io.ReadFull(zr, m[:]); n == len(m) && dumparchive.IsArchive(m[:]) {
				gz, err := gzip.NewReader(br)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrInvalidArchive, err)
				}
				return newDumpArchive(gz, gz, opts.SpoolDir, budget)
			}
		}
	}
	return archive.NewReader(br, archive.Limits{})
}

// dumpArchive adapts a dumparchive.Reader to entries.
type dumpArchive struct {
	r  *dumparchive.Reader
	gz io.Closer
}

func newDumpArchive(r io.Reader, gz io.Closer, spoolDir string, budget *spool.Budget) (*dumpArchive, error) {
	dr, err := dumparchive.NewReader(r, spoolDir)
	if err != nil {
		return nil, archiveError(err)
	}
	dr.SetSpoolBudget(budget)
	return &dumpArchive{r: dr, gz: gz}, nil
}

func archiveError(err error) error {
	if errors.Is(err, dumparchive.ErrFormat) || errors.Is(err, spool.ErrBound) {
		return fmt.Errorf("%w: %w", ErrInvalidArchive, err)
	}
	return err
}

func (d *dumpArchive) Next() (*archive.Entry, error) {
	name, err := d.r.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, archiveError(err)
	}
	return &archive.Entry{Name: name, Mode: 0o600}, nil
}

func (d *dumpArchive) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = archiveError(err)
	}
	return n, err
}

func (d *dumpArchive) Close() error {
	err := d.r.Close()
	if d.gz != nil {
		d.gz.Close()
	}
	return err
}
