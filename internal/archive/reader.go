package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	gzip "github.com/klauspost/pgzip"
)

// ErrUnsafe is matched (errors.Is) by every refusal of an archive entry that
// could escape the extraction directory, alias another file or exhaust the
// disk. The archive may be authentic and still crafted by someone who knows
// the password, so the reader never trusts a header.
var ErrUnsafe = errors.New("unsafe archive entry")

// Default limits, used for a zero field of Limits. They are sized from
// what a0 writes for the appliance's database (docs/security.md): one
// entry per collection's data (at most 64 GiB), two per collection (at
// most 100,000 entries), and the whole archive's plaintext at most 256 GiB.
// A crafted archive declaring more is refused before it is read.
const (
	DefaultMaxEntrySize int64 = 64 << 30
	DefaultMaxEntries         = 100_000
	DefaultMaxTotal     int64 = 256 << 30
)

// maxTrailer bounds the zero padding read after the tar end marker; tar
// writers pad to a record (10 KiB by default), never to megabytes.
const maxTrailer = 1 << 20

// Limits bounds what a Reader accepts. A zero field means its default.
type Limits struct {
	MaxEntrySize int64 // declared size of one entry
	MaxEntries   int   // headers, directories included
	MaxTotal     int64 // sum of the declared sizes
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntrySize <= 0 {
		l.MaxEntrySize = DefaultMaxEntrySize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultMaxTotal
	}
	return l
}

// Entry is one regular file of the archive.
type Entry struct {
	// Name is clean, relative and slash-separated: no "..", no leading "/"
	// or "./", never empty.
	Name    string
	Mode    int64
	Size    int64
	ModTime time.Time
}

// Reader reads the regular files of a tar.gz stream, refusing anything
// unsafe. Directory entries are checked and skipped.
type Reader struct {
	ra      *readAhead
	gz      *gzip.Reader
	tr      *tar.Reader
	limits  Limits
	seen    map[string]struct{}
	entries int
	total   int64
	err     error // sticky: once refused, the stream is not trusted further
}

// NewReader starts reading the .tar.gz stream r (multi-member gzip is fine).
// It fails when r does not start with a gzip header.
func NewReader(r io.Reader, l Limits) (*Reader, error) {
	// pgzip decompresses ahead in its own goroutine (4 blocks of 1 MiB),
	// so gunzip runs beside the tar parsing and BSON validation of the
	// caller instead of in turn with them.
	ra := newReadAhead(r)
	gz, err := gzip.NewReaderN(ra, 1<<20, 4)
	if err != nil {
		ra.Close()
		return nil, fmt.Errorf("archive: open gzip: %w", err)
	}
	return &Reader{ra: ra, gz: gz, tr: tar.NewReader(gz), limits: l.withDefaults(), seen: make(map[string]struct{})}, nil
}

// Next advances to the next regular file and returns its header. It returns
// io.EOF after the last entry, once the gzip trailer (its CRC) has been
// checked. Errors wrapping ErrUnsafe name the entry and the reason.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (*Entry, error) {
	for {
		h, err := r.tr.Next()
		if errors.Is(err, io.EOF) {
			if err := r.drain(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("archive: read tar header: %w", err)
		}
		r.entries++
		if r.entries > r.limits.MaxEntries {
			return nil, fmt.Errorf("%w: %q: more than %d entries", ErrUnsafe, h.Name, r.limits.MaxEntries)
		}
		if h.Typeflag == tar.TypeDir && path.Clean(h.Name) == "." {
			continue // "./", written by tar -C dir .
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return nil, err
		}
		// A sparse entry (GNU or PAX) declares a size its data need not
		// have: the reader would expand holes, so a few bytes could make
		// verify hash, and extraction write, terabytes. a0 writes none.
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, fmt.Errorf("%w: %q: sparse entry", ErrUnsafe, name)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg, tar.TypeRegA:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, fmt.Errorf("%w: %q: link to %q", ErrUnsafe, name, h.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return nil, fmt.Errorf("%w: %q: device or fifo", ErrUnsafe, name)
		default:
			return nil, fmt.Errorf("%w: %q: entry type %q is not a regular file", ErrUnsafe, name, h.Typeflag)
		}
		if h.Size < 0 || h.Size > r.limits.MaxEntrySize {
			return nil, fmt.Errorf("%w: %q: size %d above the limit %d", ErrUnsafe, name, h.Size, r.limits.MaxEntrySize)
		}
		r.total += h.Size
		if r.total > r.limits.MaxTotal {
			return nil, fmt.Errorf("%w: %q: total size above the limit %d", ErrUnsafe, name, r.limits.MaxTotal)
		}
		if _, dup := r.seen[name]; dup {
			return nil, fmt.Errorf("%w: %q: duplicate name", ErrUnsafe, name)
		}
		r.seen[name] = struct{}{}
		return &Entry{Name: name, Mode: h.Mode, Size: h.Size, ModTime: h.ModTime}, nil
	}
}

// drain reads what follows the tar end marker so that gzip checks the CRC
// and length of its last member: archive/tar stops reading before them, and
// a truncated or altered tail would otherwise go unnoticed.
func (r *Reader) drain() error {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.gz.Read(buf)
		n += int64(k)
		if bytes.ContainsFunc(buf[:k], func(c rune) bool { return c != 0 }) {
			return fmt.Errorf("archive: data after the end of the tar stream")
		}
		if n > maxTrailer {
			return fmt.Errorf("archive: more than %d bytes of padding after the tar stream", maxTrailer)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: read gzip trailer: %w", err)
		}
	}
}

// Close stops the goroutines that read and decompress ahead. Call it when
// done with the Reader, in particular when abandoning it before io.EOF; the
// underlying reader is not closed.
func (r *Reader) Close() error {
	// The decompressor first: its goroutine may be waiting in ra.Read.
	err := r.gz.Close()
	r.ra.Close()
	return err
}

// Read reads the content of the current entry; io.EOF at its end.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.tr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("archive: read entry: %w", err)
	}
	return n, err
}

// CleanName returns the safe form of a tar entry name, or an error wrapping
// ErrUnsafe. Leading "./" and trailing "/" are dropped; "..", absolute paths,
// backslashes, NUL and names that clean to nothing are refused.
func CleanName(name string) (string, error) {
	orig := name
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimRight(name, "/")
	switch {
	case name == "" || name == ".":
		return "", fmt.Errorf("%w: %q: empty name", ErrUnsafe, orig)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: %q: absolute path", ErrUnsafe, orig)
	case strings.ContainsAny(name, "\\\x00"):
		return "", fmt.Errorf("%w: %q: backslash or NUL in name", ErrUnsafe, orig)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q: path traversal", ErrUnsafe, orig)
		}
	}
	return path.Clean(name), nil
}

// Extract writes every regular file of r under dir, which must exist:
// files 0600 created with O_EXCL, directories 0700. Writes go through
// os.Root, so no name and no symlink planted in dir can lead outside it.
func Extract(ctx context.Context, r *Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("archive: extract: %w", err)
	}
	defer root.Close()
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d := path.Dir(e.Name); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("archive: extract %q: %w", e.Name, err)
			}
		}
		if err := extractFile(ctx, root, e, r); err != nil {
			return err
		}
	}
}

func extractFile(ctx context.Context, root *os.Root, e *Entry, r io.Reader) error {
	f, err := root.OpenFile(e.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("archive: extract %q: %w", e.Name, err)
	}
	err = CopyContext(ctx, f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive: extract %q: %w", e.Name, err)
	}
	return nil
}

// CopyContext is io.Copy that stops between chunks once ctx is cancelled,
// so a huge entry cannot outlive its job.
func CopyContext(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
