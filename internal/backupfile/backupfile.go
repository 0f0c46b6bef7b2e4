package backupfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/a0backup/a0/internal/crypt"
)

// ErrFirstPassUnfinished is returned by Reopen before the first pass has
// read the file to its end: a second pass is for a file already
// authenticated whole, never a way around that.
var ErrFirstPassUnfinished = errors.New("backupfile: a second pass before the first one has read the whole file")

// bufSize is each pass's read buffer: one record of the default chunk
// size, so a record is read from the file in one call.
const bufSize = 1 << 20

// Options say how to open a file.
type Options struct {
	// Unlock opens an encrypted file, with crypt.Open's rules: a version
	// 1 file with the password, a version 2 file with the file key, an
	// identity or the password.
	Unlock crypt.Unlock
	// Plain says the file is not encrypted (a plain mongodump archive,
	// restore --plain): every pass reads its bytes as they are, and
	// nothing authenticates them.
	Plain bool
	// Tee, when not nil, receives every byte of the file as the first
	// pass reads it (the agent hashes an upload this way, and compares
	// with the hash the client sent once the first pass has ended).
	Tee io.Writer
}

// File is a backup file open for reading. It reads src, which the caller
// opened and closes; one pass reads it at a time.
type File struct {
	src   io.ReadSeeker
	keys  *crypt.Reader // the first pass's reader (its keys), nil for a plain file
	first *pass
}

// Open reads src's header from its start and unlocks it. For an encrypted
// file the header is authenticated and the keys derived before Open
// returns, so a wrong password or key is reported (crypt's error, as is)
// before any plaintext exists. First or Authenticate then read the first
// pass.
func Open(src io.ReadSeeker, o Options) (*File, error) {
	in, err := rewind(src)
	if err != nil {
		return nil, err
	}
	if o.Tee != nil {
		in = io.TeeReader(in, o.Tee)
	}
	br := bufio.NewReaderSize(in, bufSize)
	if o.Plain {
		return &File{src: src, first: &pass{r: br}}, nil
	}
	cr, err := crypt.Open(br, o.Unlock)
	if err != nil {
		return nil, err
	}
	return &File{src: src, keys: cr, first: &pass{r: cr}}, nil
}

// OpenWritten opens src, the file that w (a writer crypt.NewWriter or
// crypt.NewSealedWriter made, now closed) wrote, with the keys w derived
// (crypt.ReadBack): the store reads each finished backup back this way
// before calling it found, without a second key derivation.
func OpenWritten(src io.ReadSeeker, w io.WriteCloser) (*File, error) {
	in, err := rewind(src)
	if err != nil {
		return nil, err
	}
	cr, err := crypt.ReadBack(w, bufio.NewReaderSize(in, bufSize))
	if err != nil {
		return nil, err
	}
	return &File{src: src, keys: cr, first: &pass{r: cr}}, nil
}

func rewind(src io.ReadSeeker) (io.Reader, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("backupfile: %w", err)
	}
	return src, nil
}

// Header is what an encrypted file's header says (zero for a plain file).
func (f *File) Header() crypt.HeaderInfo {
	if f.keys == nil {
		return crypt.HeaderInfo{}
	}
	return f.keys.Header()
}

// Stanzas describe whom a version 2 file's key is wrapped for
// (crypt.Reader.Stanzas); nil for version 1 and plain files.
func (f *File) Stanzas() []string {
	if f.keys == nil {
		return nil
	}
	return f.keys.Stanzas()
}

// First is the first pass's plaintext. Each record is released only once
// authenticated, but a record damaged further on is found only when the
// pass gets there: a caller that acts on what it reads before the end
// (decrypt writes a temporary file) must read to io.EOF before trusting
// it. Authenticate does that.
func (f *File) First() io.Reader { return f.first }

// Authenticate runs the first pass: check reads the plaintext (it may stop
// early; nil reads nothing), then the rest of the file is read and
// authenticated to its last byte, since an archive ends before the
// encrypted stream does. It returns the plaintext bytes of the whole pass
// and the first error: check's, or crypt's for the file, or ctx's.
//
// When the file itself failed while check read it (a damaged or truncated
// record: crypt's *CorruptError, or an I/O error), that error is returned,
// not what check made of the stream ending there: a tar or BSON parser
// reports "truncated" or wraps the error as text, and the file's damage,
// with its chunk and offset, is the cause (issue 28).
func (f *File) Authenticate(ctx context.Context, check func(plain io.Reader) error) (int64, error) {
	if check != nil {
		if err := check(f.first); err != nil {
			if ferr := f.first.err; ferr != nil {
				return f.first.n, ferr
			}
			return f.first.n, err
		}
	}
	_, err := io.Copy(discard{ctx}, f.first)
	return f.first.n, err
}

// discard drops what it is given, until ctx ends: the rest of a pass
// goes straight from crypt's record buffer to nowhere, and a cancelled
// job stops within a record.
type discard struct{ ctx context.Context }

func (d discard) Write(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Err is the error the file itself returned to the first pass (crypt's,
// unwrapped: a *crypt.CorruptError for a damaged or truncated record, or
// a read error), nil while it has returned none. A caller that hands
// First to a parser reports Err, when set, instead of the parser's error:
// crypt never releases a record's plaintext before its tag verifies, so
// the parser saw only authentic bytes and then the end of what could be
// trusted, which it calls a truncated document or a bad gzip stream.
func (f *File) Err() error { return f.first.err }

// Reopen starts another pass over the file from its start, once the first
// pass has read it to its end. An encrypted file is read with the first
// pass's keys (no second key derivation), and its header must be the one
// the first pass read, byte for byte (otherwise a *crypt.CorruptError):
// the file authenticated is the file read again, even if its path now
// names another one. Only one pass reads the file at a time.
func (f *File) Reopen() (io.Reader, error) {
	if !f.first.done {
		return nil, ErrFirstPassUnfinished
	}
	in, err := rewind(f.src)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(in, bufSize)
	if f.keys == nil {
		return br, nil
	}
	return f.keys.Reopen(br)
}

// pass is the first pass's stream: it counts the plaintext and notes when
// the file has been read to its end.
type pass struct {
	r    io.Reader
	n    int64
	done bool
	err  error // the first error other than io.EOF the file returned
}

func (p *pass) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.note(err)
	return n, err
}

func (p *pass) note(err error) {
	switch {
	case err == io.EOF:
		p.done = true
	case err != nil && p.err == nil:
		p.err = err
	}
}

// WriteTo keeps io.Copy on crypt.Reader's (and bufio.Reader's) WriteTo,
// which hands over each record without a copy.
func (p *pass) WriteTo(w io.Writer) (int64, error) {
	wt, ok := p.r.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{p})
	}
	// The writer's own failures are not the file's: only an error the
	// writer did not return is noted as the file's.
	ew := &errWriter{w: w}
	n, err := wt.WriteTo(ew)
	p.n += n
	switch {
	case err == nil:
		p.done = true
	case ew.err == nil:
		p.note(err)
	}
	return n, err
}

// errWriter remembers the error its writer returned.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
