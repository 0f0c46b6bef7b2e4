package pitr

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/crypt"
)

// FormatVersion is the slice layout this package writes and reads.
const FormatVersion = 1

// Bounds a reader enforces on a slice, which may come from anywhere (a
// download, a shared bucket): nothing in a slice can make a reader
// allocate or loop beyond these.
const (
	// MaxHeaderBytes bounds the header document.
	MaxHeaderBytes = 64 << 10
	// MaxEntryBytes bounds one entry: a 16 MiB document plus the oplog
	// entry's own fields, as on a MongoDB server.
	MaxEntryBytes = 16<<20 + 64<<10
	// MaxSliceEntries bounds the entries of one slice. The writer cuts a
	// slice at DefaultMaxEntries, far below.
	MaxSliceEntries = 1 << 24
	// maxWindow bounds the zstd window a reader accepts (the writer uses
	// 1 MiB): the decoder's memory.
	maxWindow = 8 << 20
)

// magic starts a slice's plaintext.
var magic = [8]byte{'A', '0', 'O', 'P', 'L', 'O', 'G', '\n'}

// Frame kinds inside the compressed stream.
const (
	frameEntry   = 'E'
	frameTrailer = 'T'
)

// SliceExt ends a slice's file name; partExt ends a slice being written.
const (
	SliceExt = ".oplog"
	partExt  = ".part"
)

// nameRE is a slice's file name: first and last ts, zero-padded so that
// names sort by time.
var nameRE = regexp.MustCompile(`^([0-9]{10})\.([0-9]{10})-([0-9]{10})\.([0-9]{10})\.oplog$`)

// SliceName is the file name of a slice whose first entry is at first and
// whose newest entry is at last.
func SliceName(first, last bson.Timestamp) string {
	return fmt.Sprintf("%010d.%010d-%010d.%010d%s", first.T, first.I, last.T, last.I, SliceExt)
}

// ParseSliceName returns the first and last ts a slice's name claims (not
// proven: Verify compares them with the slice's authenticated content).
func ParseSliceName(name string) (first, last bson.Timestamp, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return first, last, false
	}
	var v [4]uint32
	for i := range v {
		n, err := strconv.ParseUint(m[i+1], 10, 32)
		if err != nil {
			return first, last, false
		}
		v[i] = uint32(n)
	}
	first, last = bson.Timestamp{T: v[0], I: v[1]}, bson.Timestamp{T: v[2], I: v[3]}
	if tsLess(last, first) {
		return first, last, false
	}
	return first, last, true
}

// Meta is what a slice says about itself, all of it inside the
// authenticated plaintext: the header (written first) and the trailer
// (written last, so that a slice streams to its file).
type Meta struct {
	Version int
	Node    string
	ReplSet string
	// Prev is the SHA-256 of the previous slice's file (the chain); zero
	// for the first slice of an archive.
	Prev    [32]byte
	First   bson.Timestamp
	Last    bson.Timestamp
	Entries int64
	// Created is the node's clock when the slice was opened.
	Created time.Time
	// Gap, when set, is the gap this slice's first entry follows.
	Gap *Gap
}

type header struct {
	Version int32          `bson:"v"`
	Node    string         `bson:"node"`
	ReplSet string         `bson:"rs"`
	Prev    []byte         `bson:"prev"`
	First   bson.Timestamp `bson:"first"`
	Created time.Time      `bson:"created"`
	Gap     *Gap           `bson:"gap,omitempty"`
}

type trailer struct {
	Last  bson.Timestamp `bson:"last"`
	Count int64          `bson:"count"`
}

// Gap is a stretch of the oplog the archive does not hold. It ends every
// window that crosses it.
type Gap struct {
	// From is the newest archived entry before the gap (zero when the
	// archive held nothing before it).
	From bson.Timestamp `bson:"from" json:"from"`
	// To is the first archived entry after the gap; zero while no slice
	// followed it yet.
	To       bson.Timestamp `bson:"to" json:"to"`
	Reason   string         `bson:"reason" json:"reason"`
	Detected time.Time      `bson:"detected" json:"detected"`
}

// Gap reasons (the start of Gap.Reason; details follow).
const (
	ReasonRolledOff = "oplog rolled past the archive"
	ReasonRollback  = "rollback removed archived entries"
	// ReasonDeviceFull: a slice write was refused for lack of space.
	ReasonDeviceFull = "device full"
)

// sliceWriter streams one slice to a hidden .part file in dir: entries
// go through zstd into crypt's writer into the file, and a hash of the
// file's bytes, which is the next slice's Prev.
type sliceWriter struct {
	dir   string
	part  *os.File
	fh    hash.Hash
	bw    *bufio.Writer
	enc   io.WriteCloser // crypt
	zw    *zstd.Encoder
	hdr   header
	first bson.Timestamp
	last  bson.Timestamp
	n     int64
	bytes int64 // plaintext entry bytes
	kind  [1]byte
}

// createSlice opens a slice that starts at h.First (see Slice.First).
func createSlice(dir string, recipients []age.Recipient, h header) (*sliceWriter, error) {
	part, err := os.CreateTemp(dir, ".slice-*"+partExt)
	if err != nil {
		return nil, fmt.Errorf("pitr: create slice: %w", err)
	}
	sw := &sliceWriter{dir: dir, part: part, fh: sha256.New(), hdr: h, first: h.First, last: h.First}
	fail := func(err error) (*sliceWriter, error) {
		sw.abort()
		return nil, err
	}
	if err := part.Chmod(0o600); err != nil {
		return fail(fmt.Errorf("pitr: create slice: %w", err))
	}
	sw.bw = bufio.NewWriterSize(io.MultiWriter(part, sw.fh), 256<<10)
	sw.enc, err = crypt.NewSealedWriter(sw.bw, crypt.Seal{Recipients: recipients}, &crypt.WriterOptions{Codec: crypt.CodecOplogSlice})
	if err != nil {
		return fail(fmt.Errorf("pitr: create slice: %w", err))
	}
	raw, err := bson.Marshal(h)
	if err != nil {
		return fail(fmt.Errorf("pitr: slice header: %w", err))
	}
	if _, err := sw.enc.Write(magic[:]); err != nil {
		return fail(err)
	}
	if _, err := sw.enc.Write(raw); err != nil {
		return fail(err)
	}
	// One thread, a 1 MiB window: the memory of a slice being written is
	// flat whatever its size.
	sw.zw, err = zstd.NewWriter(sw.enc, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
		zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return fail(fmt.Errorf("pitr: compressor: %w", err))
	}
	return sw, nil
}

// add appends one entry whose ts is ts.
func (sw *sliceWriter) add(raw bson.Raw, ts bson.Timestamp) error {
	if len(raw) > MaxEntryBytes {
		return fmt.Errorf("pitr: oplog entry at %d.%d is %d bytes, more than a slice holds (%d)", ts.T, ts.I, len(raw), MaxEntryBytes)
	}
	sw.kind[0] = frameEntry
	if _, err := sw.zw.Write(sw.kind[:]); err != nil {
		return fmt.Errorf("pitr: write slice: %w", err)
	}
	if _, err := sw.zw.Write(raw); err != nil {
		return fmt.Errorf("pitr: write slice: %w", err)
	}
	sw.n++
	sw.bytes += int64(len(raw))
	if tsLess(sw.last, ts) {
		sw.last = ts
	}
	return nil
}

// finish writes the trailer, makes the slice durable under its name and
// returns what it is. before, when not nil, runs once the slice's bytes
// are durable and before it takes its name (the archiver records the
// tail's position there: a slice under its name always has one).
func (sw *sliceWriter) finish(before func(name string) error) (Slice, error) {
	raw, err := bson.Marshal(trailer{Last: sw.last, Count: sw.n})
	if err != nil {
		sw.abort()
		return Slice{}, err
	}
	sw.kind[0] = frameTrailer
	steps := []func() error{
		func() error { _, err := sw.zw.Write(sw.kind[:]); return err },
		func() error { _, err := sw.zw.Write(raw); return err },
		sw.zw.Close,
		sw.enc.Close,
		sw.bw.Flush,
		sw.part.Sync,
		sw.part.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			sw.abort()
			return Slice{}, fmt.Errorf("pitr: write slice: %w", err)
		}
	}
	name := SliceName(sw.first, sw.last)
	path := filepath.Join(sw.dir, name)
	if before != nil {
		if err := before(name); err != nil {
			sw.abort()
			return Slice{}, fmt.Errorf("pitr: write slice: %w", err)
		}
	}
	if err := os.Rename(sw.part.Name(), path); err != nil {
		sw.abort()
		return Slice{}, fmt.Errorf("pitr: write slice: %w", err)
	}
	if err := atomicfile.SyncDir(sw.dir); err != nil {
		// The slice is complete under its name; only its rename may not
		// survive a power cut, which a restart sees as a shorter archive.
		return Slice{}, fmt.Errorf("pitr: write slice: sync %s: %w", sw.dir, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return Slice{}, fmt.Errorf("pitr: write slice: %w", err)
	}
	s := Slice{Name: name, Path: path, First: sw.first, Last: sw.last, Entries: sw.n, Size: st.Size()}
	copy(s.Prev[:], sw.hdr.Prev)
	copy(s.SHA256[:], sw.fh.Sum(nil))
	return s, nil
}

// abort removes the .part file.
func (sw *sliceWriter) abort() {
	if sw.zw != nil {
		sw.zw.Close()
		sw.zw = nil
	}
	sw.part.Close()
	os.Remove(sw.part.Name())
}

// Slice is one durable slice file.
type Slice struct {
	Name string
	Path string
	// First is where the slice starts: its first entry's ts, or just
	// after the previous slice when its first entry landed late (FerretDB);
	// Last is the newest ts it holds, at least First. Both from the name
	// until Verify or Entries read the file.
	First, Last bson.Timestamp
	Entries     int64 // 0 when only listed
	Size        int64
	// SHA256 is the hash of the file (the next slice's Prev); Prev the
	// chain hash it holds. Zero when only listed.
	SHA256, Prev [32]byte
}

// ErrSlice is matched (errors.Is) by every *SliceError.
var ErrSlice = errors.New("pitr: bad slice")

// SliceError says what is wrong with a slice's content.
type SliceError struct {
	Name string
	Err  error
}

func (e *SliceError) Error() string { return fmt.Sprintf("pitr: slice %s: %v", e.Name, e.Err) }
func (e *SliceError) Unwrap() error { return e.Err }
func (e *SliceError) Is(target error) bool {
	return target == ErrSlice
}

// sliceReader reads one slice's plaintext: its header, then each entry,
// then the trailer, enforcing the bounds above.
type sliceReader struct {
	name string
	meta Meta
	br   *bufio.Reader
	st   *readState
	done bool
}

// readState is what reading a slice takes besides the slice: the
// decompressor and the buffers. One reader (one goroutine) reuses it from
// slice to slice instead of allocating them again for each.
type readState struct {
	zr    *zstd.Decoder
	plain *bufio.Reader // the authenticated plaintext (crypt's reader)
	ents  *bufio.Reader // the decompressed entries
	buf   []byte        // an entry larger than ents' buffer
}

// readBufSize is the size of readState's buffers: an entry that fits is
// read in place.
const readBufSize = 256 << 10

func newReadState() (*readState, error) {
	// One thread and a bounded window: a reader's memory is flat whatever
	// the slice holds.
	zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderMaxMemory(maxWindow*2), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("pitr: decompressor: %w", err)
	}
	return &readState{zr: zr, plain: bufio.NewReaderSize(nil, readBufSize), ents: bufio.NewReaderSize(nil, readBufSize)}, nil
}

func (st *readState) close() { st.zr.Close() }

// openSlice authenticates the slice's crypt header with u and reads its
// header, with st's decompressor and buffers (which the slice holds until
// the next openSlice with st). The caller hashes src as it reads it when
// it needs the file's hash; crypt authenticates every byte of plaintext
// before it is released.
func openSlice(name string, src io.Reader, u crypt.Unlock, st *readState) (*sliceReader, error) {
	cr, err := crypt.Open(src, u)
	if err != nil {
		return nil, &SliceError{Name: name, Err: err}
	}
	if c := cr.Header().Codec; c != crypt.CodecOplogSlice {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("not an oplog slice (codec %d)", c)}
	}
	br := st.plain
	br.Reset(cr)
	var m [8]byte
	if _, err := io.ReadFull(br, m[:]); err != nil {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("header: %w", err)}
	}
	if m != magic {
		return nil, &SliceError{Name: name, Err: errors.New("not an oplog slice (magic)")}
	}
	raw, err := readDoc(br, MaxHeaderBytes, nil)
	if err != nil {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("header: %w", err)}
	}
	var h header
	if err := bson.Unmarshal(raw, &h); err != nil {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("header: %w", err)}
	}
	if h.Version != FormatVersion {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("format version %d: this reader reads version %d", h.Version, FormatVersion)}
	}
	if len(h.Prev) != 0 && len(h.Prev) != 32 {
		return nil, &SliceError{Name: name, Err: fmt.Errorf("header: chain hash of %d bytes", len(h.Prev))}
	}
	if err := st.zr.Reset(br); err != nil {
		return nil, &SliceError{Name: name, Err: err}
	}
	st.ents.Reset(st.zr)
	r := &sliceReader{name: name, br: st.ents, st: st}
	r.meta = Meta{Version: int(h.Version), Node: h.Node, ReplSet: h.ReplSet, First: h.First, Created: h.Created, Gap: h.Gap}
	copy(r.meta.Prev[:], h.Prev)
	return r, nil
}

// next returns the next entry (valid until the next call), or nil once
// the trailer was read and the plaintext ended there.
func (r *sliceReader) next() (bson.Raw, error) {
	if r.done {
		return nil, nil
	}
	kind, err := r.br.ReadByte()
	if err != nil {
		return nil, r.fail(fmt.Errorf("ends without a trailer: %w", noEOF(err)))
	}
	switch kind {
	case frameEntry:
		if r.meta.Entries >= MaxSliceEntries {
			return nil, r.fail(fmt.Errorf("more than %d entries", MaxSliceEntries))
		}
		raw, ts, ok, err := readEntry(r.br, r.st.buf)
		if err != nil {
			return nil, r.fail(fmt.Errorf("entry %d: %w", r.meta.Entries+1, err))
		}
		if len(raw) > r.br.Size() {
			r.st.buf = raw // kept for the next entry this large
		}
		if !ok {
			return nil, r.fail(fmt.Errorf("entry %d has no ts", r.meta.Entries+1))
		}
		if r.meta.Entries == 0 {
			r.meta.Last = r.meta.First
		}
		if tsLess(r.meta.Last, ts) {
			r.meta.Last = ts
		}
		r.meta.Entries++
		return raw, nil
	case frameTrailer:
		raw, err := readDoc(r.br, MaxHeaderBytes, nil)
		if err != nil {
			return nil, r.fail(fmt.Errorf("trailer: %w", err))
		}
		var t trailer
		if err := bson.Unmarshal(raw, &t); err != nil {
			return nil, r.fail(fmt.Errorf("trailer: %w", err))
		}
		if t.Count != r.meta.Entries || r.meta.Entries == 0 || t.Last != r.meta.Last {
			return nil, r.fail(fmt.Errorf("trailer says %d entries up to %d.%d, the slice holds %d up to %d.%d",
				t.Count, t.Last.T, t.Last.I, r.meta.Entries, r.meta.Last.T, r.meta.Last.I))
		}
		// Nothing may follow the trailer, in the compressed stream or
		// after it.
		if _, err := r.br.ReadByte(); err != io.EOF {
			return nil, r.fail(errors.New("data after the trailer"))
		}
		r.done = true
		return nil, nil
	default:
		return nil, r.fail(fmt.Errorf("unknown frame %q after entry %d", kind, r.meta.Entries))
	}
}

func (r *sliceReader) fail(err error) error {
	return &SliceError{Name: r.name, Err: err}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readDoc reads one BSON document no longer than max into buf.
func readDoc(r io.Reader, max int, buf []byte) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, noEOF(err)
	}
	n := int(int32(binary.LittleEndian.Uint32(l[:])))
	if n < 5 || n > max {
		return nil, fmt.Errorf("document of %d bytes (at most %d)", n, max)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, l[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		return nil, noEOF(err)
	}
	if err := bson.Raw(buf).Validate(); err != nil {
		return nil, err
	}
	return buf, nil
}

// readEntry reads one entry as readDoc(br, MaxEntryBytes, buf) does, and
// its ts as entryTS does, in one walk over its elements (validateEntry).
// An entry that fits br's buffer is returned in place (valid until br's
// next read), a larger one in buf: no copy and no allocation per entry.
func readEntry(br *bufio.Reader, buf []byte) (raw []byte, ts bson.Timestamp, ok bool, err error) {
	l, err := br.Peek(4)
	if err != nil {
		return nil, ts, false, noEOF(err)
	}
	n := int(int32(binary.LittleEndian.Uint32(l)))
	if n < 5 || n > MaxEntryBytes {
		return nil, ts, false, fmt.Errorf("document of %d bytes (at most %d)", n, MaxEntryBytes)
	}
	if n <= br.Size() {
		if raw, err = br.Peek(n); err != nil {
			return nil, ts, false, noEOF(err)
		}
		if _, err := br.Discard(n); err != nil {
			return nil, ts, false, err
		}
	} else {
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		raw = buf[:n]
		if _, err := io.ReadFull(br, raw); err != nil {
			return nil, ts, false, noEOF(err)
		}
	}
	ts, ok, err = validateEntry(raw)
	if err != nil {
		return nil, ts, false, err
	}
	return raw, ts, ok, nil
}

// validateEntry checks d as bson.Raw(d).Validate does, with the same
// errors (it is bsoncore's Document.Validate, step for step), and returns
// what entryTS(d) returns, found on the same walk: the entry is walked once
// instead of once to validate and once to look its ts up, the reader's
// main per-entry cost. Document.Validate also calls Element.Validate on
// each element ReadElement returned; that cannot fail (it finds the same
// key end and the same value length within the element ReadElement cut),
// so it is not repeated here. TestValidateEntryAsValidate holds the two to
// the same answers.
func validateEntry(d []byte) (ts bson.Timestamp, hasTS bool, err error) {
	// An error keeps its own copy of the bytes: d may be a reader's
	// buffer, reused once the error is returned.
	insufficient := func(rem []byte) error {
		c := bytes.Clone(d)
		return bsoncore.NewInsufficientBytesError(c, c[len(c)-len(rem):])
	}
	length, rem, ok := bsoncore.ReadLength(d)
	if !ok {
		return ts, false, insufficient(rem)
	}
	if int(length) > len(d) {
		return ts, false, bsoncore.NewDocumentLengthError(int(length), len(d))
	}
	if length < 5 {
		return ts, false, bsoncore.ErrInvalidLength
	}
	if d[length-1] != 0x00 {
		return ts, false, bsoncore.ErrMissingNull
	}
	length -= 4
	seen := false // a "ts" key was met: Lookup takes the first one
	var elem bsoncore.Element
	for length > 1 {
		elem, rem, ok = bsoncore.ReadElement(rem)
		length -= int32(len(elem))
		if !ok {
			return bson.Timestamp{}, false, insufficient(rem)
		}
		// ReadElement found the key's end: elem is type, key, 0, value.
		if !seen && len(elem) > 3 && elem[1] == 't' && elem[2] == 's' && elem[3] == 0 {
			seen = true
			if bsoncore.Type(elem[0]) == bsoncore.TypeTimestamp {
				t, i, _, tok := bsoncore.ReadTimestamp(elem[4:])
				ts, hasTS = bson.Timestamp{T: t, I: i}, tok
			}
		}
	}
	if len(rem) < 1 || rem[0] != 0x00 {
		return bson.Timestamp{}, false, bsoncore.ErrMissingNull
	}
	return ts, hasTS, nil
}

func entryTS(raw bson.Raw) (bson.Timestamp, bool) {
	t, i, ok := raw.Lookup("ts").TimestampOK()
	return bson.Timestamp{T: t, I: i}, ok
}

func tsLess(a, b bson.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }
