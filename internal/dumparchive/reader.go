package dumparchive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"
	"sort"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/dumpname"
	"github.com/a0backup/a0/internal/spool"
)

// Magic is the first four bytes of every mongodump archive (0x8199e26d,
// little-endian).
var Magic = []byte{0x6d, 0xe2, 0x99, 0x81}

// IsArchive reports whether prefix starts like a mongodump archive.
func IsArchive(prefix []byte) bool { return bytes.HasPrefix(prefix, Magic) }

// ErrFormat is matched by every refusal of malformed archive input.
var ErrFormat = errors.New("malformed mongodump archive")

const terminator = 0xffffffff

// Limits on hostile input. mongodump writes documents up to the server's
// 16 MiB (plus the slack mongod allows for internal fields); its prelude
// holds one small document per collection.
const (
	maxDocSize     = 16<<20 + 16<<10
	maxPreludeSize = 64 << 20
	// MaxCollections bounds the collections one archive declares.
	MaxCollections = 1 << 16
	// MaxInterleaved bounds how many collections may be open (started,
	// not yet delivered) at once: mongodump interleaves as many as its
	// --numParallelCollections (4 by default).
	MaxInterleaved = 256
)

// Header is the archive's first document.
type Header struct {
	ConcurrentCollections int32
	FormatVersion         string
	ServerVersion         string
	ToolVersion           string
}

// namespace is one collection (or the oplog) of the archive.
type namespace struct {
	db, coll   string
	metadata   string
	typ        string
	data       bool // segments seen
	synthetic  bool // a time-series collection's buckets, not in the prelude itself
	eof        bool
	delivered  bool
	crc        hash.Hash64
	spool      *os.File
	spoolBytes int64
}

func (n *namespace) key() string { return n.db + "." + n.coll }

// entryName is the file mongodump's directory mode would write.
func (n *namespace) entryName(suffix string) string {
	if n.db == "" && n.coll == "oplog" {
		return "oplog" + suffix
	}
	return n.db + "/" + dumpname.Escape(n.coll) + suffix
}

// Reader reads one mongodump archive as mongodump directory entries.
type Reader struct {
	in       *bufio.Reader
	spoolDir string
	budget   *spool.Budget
	header   Header
	byKey    map[string]*namespace
	metas    []*namespace // prelude order, for the metadata entries
	nextMeta int
	open     int // namespaces started and not delivered

	// The current entry reads from cur (metadata, a spool) or, when live
	// is set, from the stream: first live's spool, then its segments.
	cur     io.Reader
	live    *namespace
	block   *namespace // namespace of the segment being read, nil between blocks
	pending []byte
	doc     []byte
	err     error
}

// NewReader reads the magic number, header and prelude of the
// (decompressed) archive r. Spooled documents go to files in spoolDir
// (os.TempDir() when ""), removed by Close.
func NewReader(r io.Reader, spoolDir string) (*Reader, error) {
	ar := &Reader{in: bufio.NewReaderSize(r, 1<<20), spoolDir: spoolDir, byKey: map[string]*namespace{}, doc: make([]byte, 0, 64<<10)}
	var magic [4]byte
	if _, err := io.ReadFull(ar.in, magic[:]); err != nil || !IsArchive(magic[:]) {
		return nil, fmt.Errorf("%w: does not start with the mongodump archive magic number", ErrFormat)
	}
	hdr, term, err := ar.readDoc()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
	}
	if term {
		return nil, fmt.Errorf("%w: no header", ErrFormat)
	}
	if err := ar.parseHeader(hdr); err != nil {
		return nil, err
	}
	var total int
	for {
		d, term, err := ar.readDoc()
		if err != nil {
			return nil, fmt.Errorf("%w: prelude: %w", ErrFormat, err)
		}
		if term {
			break
		}
		if total += len(d); total > maxPreludeSize {
			return nil, fmt.Errorf("%w: prelude larger than %d bytes", ErrFormat, maxPreludeSize)
		}
		if err := ar.addMetadata(d); err != nil {
			return nil, err
		}
	}
	return ar, nil
}

// Header returns the archive's header.
func (ar *Reader) Header() Header { return ar.header }

func (ar *Reader) parseHeader(d []byte) error {
	doc := bsoncore.Document(d)
	h := &ar.header
	var ok bool
	if h.FormatVersion, ok = doc.Lookup("version").StringValueOK(); !ok {
		return fmt.Errorf("%w: header without a format version", ErrFormat)
	}
	if h.FormatVersion != "0.1" {
		return fmt.Errorf("%w: unknown archive format version %q", ErrFormat, h.FormatVersion)
	}
	h.ServerVersion, _ = doc.Lookup("server_version").StringValueOK()
	h.ToolVersion, _ = doc.Lookup("tool_version").StringValueOK()
	h.ConcurrentCollections, _ = doc.Lookup("concurrent_collections").Int32OK()
	return nil
}

func (ar *Reader) addMetadata(d []byte) error {
	doc := bsoncore.Document(d)
	db, ok1 := doc.Lookup("db").StringValueOK()
	coll, ok2 := doc.Lookup("collection").StringValueOK()
	if !ok1 || !ok2 || coll == "" {
		return fmt.Errorf("%w: prelude entry without db or collection", ErrFormat)
	}
	n := &namespace{db: db, coll: coll, crc: crc64.New(crc64.MakeTable(crc64.ECMA))}
	if v := doc.Lookup("metadata"); v.Type != 0 {
		if n.metadata, ok1 = v.StringValueOK(); !ok1 {
			return fmt.Errorf("%w: metadata of %s is not a string", ErrFormat, n.key())
		}
	}
	n.typ, _ = doc.Lookup("type").StringValueOK()
	if ar.byKey[n.key()] != nil {
		return fmt.Errorf("%w: %s declared twice", ErrFormat, n.key())
	}
	if len(ar.byKey) >= MaxCollections {
		return fmt.Errorf("%w: more than %d collections", ErrFormat, MaxCollections)
	}
	ar.byKey[n.key()] = n
	if n.metadata != "" {
		ar.metas = append(ar.metas, n)
	}
	if n.typ == "timeseries" {
		// Its documents travel as the buckets collection.
		b := &namespace{db: db, coll: "system.buckets." + coll, crc: crc64.New(crc64.MakeTable(crc64.ECMA)), synthetic: true}
		if ar.byKey[b.key()] == nil {
			ar.byKey[b.key()] = b
		}
	}
	return nil
}

// readDoc reads a BSON document or a terminator. The document is valid
// only until the next call.
func (ar *Reader) readDoc() (doc []byte, term bool, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(ar.in, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false, io.EOF
		}
		return nil, false, fmt.Errorf("truncated: %w", err)
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size == terminator {
		return nil, true, nil
	}
	if size < 5 || size > maxDocSize {
		return nil, false, fmt.Errorf("%d is neither a BSON length nor a terminator", int32(size))
	}
	if cap(ar.doc) < int(size) {
		ar.doc = make([]byte, 0, size)
	}
	b := ar.doc[:size]
	copy(b, hdr[:])
	if _, err := io.ReadFull(ar.in, b[4:]); err != nil {
		return nil, false, fmt.Errorf("truncated document: %w", err)
	}
	if b[size-1] != 0 {
		return nil, false, errors.New("document does not end with a null byte")
	}
	return b, false, nil
}

// Next advances to the next entry and returns its name. It returns io.EOF
// after the last one, once the whole archive was read and found complete.
func (ar *Reader) Next() (string, error) {
	if ar.err != nil {
		return "", ar.err
	}
	name, err := ar.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = ar.fail(err)
		}
		return "", err
	}
	return name, nil
}

func (ar *Reader) fail(err error) error {
	if !errors.Is(err, ErrFormat) {
		err = fmt.Errorf("%w: %w", ErrFormat, err)
	}
	ar.err = err
	return err
}

func (ar *Reader) next() (string, error) {
	// The caller may leave an entry unread: the stream goes on past it.
	if ar.live != nil {
		if _, err := io.Copy(io.Discard, ar); err != nil {
			return "", err
		}
	}
	if r, ok := ar.cur.(*removeAtEOF); ok {
		r.close()
	}
	ar.cur = nil
	if ar.nextMeta < len(ar.metas) {
		n := ar.metas[ar.nextMeta]
		ar.nextMeta++
		ar.cur = bytes.NewReader([]byte(n.metadata))
		return n.entryName(".metadata.json"), nil
	}
	// A finished collection waiting in its spool goes first.
	if n := ar.finishedSpool(); n != nil {
		if _, err := n.spool.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		ar.cur = io.LimitReader(n.spool, n.spoolBytes)
		ar.deliver(n, true)
		return n.entryName(".bson"), nil
	}
	// Else the collection of the next segment becomes the live entry.
	for ar.block == nil {
		n, err := ar.readHeader()
		if errors.Is(err, io.EOF) {
			return "", ar.checkComplete()
		}
		if err != nil {
			return "", err
		}
		if n != nil {
			ar.block = n
		}
		if n := ar.finishedSpool(); n != nil {
			// An EOF block closed a spooled collection.
			return ar.next()
		}
	}
	n := ar.block
	ar.live = n
	if n.spool != nil {
		if _, err := n.spool.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		ar.cur = io.LimitReader(n.spool, n.spoolBytes)
	}
	return n.entryName(".bson"), nil
}

func (ar *Reader) finishedSpool() *namespace {
	var found []*namespace
	for _, n := range ar.byKey {
		if n.eof && !n.delivered && n.spool != nil {
			found = append(found, n)
		}
	}
	if len(found) == 0 {
		return nil
	}
	sort.Slice(found, func(i, j int) bool { return found[i].key() < found[j].key() })
	return found[0]
}

// deliver marks n's entry as handed out. A spool being read (fromSpool)
// goes once read, else at once.
func (ar *Reader) deliver(n *namespace, fromSpool bool) {
	n.delivered = true
	ar.open--
	if n.spool == nil {
		return
	}
	if fromSpool {
		ar.cur = &removeAtEOF{r: ar.cur, f: n.spool}
	} else {
		n.spool.Close()
		os.Remove(n.spool.Name())
	}
	n.spool = nil
}

// readHeader reads the header of the next block. A segment header returns
// its namespace; an EOF block is checked and consumed whole and returns
// nil. It returns io.EOF at the clean end of the stream.
func (ar *Reader) readHeader() (*namespace, error) {
	d, term, err := ar.readDoc()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	if term {
		return nil, errors.New("a terminator where a namespace header belongs")
	}
	doc := bsoncore.Document(d)
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("namespace header: %w", err)
	}
	db, ok1 := doc.Lookup("db").StringValueOK()
	coll, ok2 := doc.Lookup("collection").StringValueOK()
	if !ok1 || !ok2 || coll == "" {
		return nil, errors.New("namespace header without db or collection")
	}
	key := db + "." + coll
	n := ar.byKey[key]
	if n == nil {
		return nil, fmt.Errorf("data for %s, which the prelude does not declare", key)
	}
	if n.eof {
		return nil, fmt.Errorf("data for %s after its end", key)
	}
	if !n.data {
		n.data = true
		if ar.open++; ar.open > MaxInterleaved {
			return nil, fmt.Errorf("more than %d collections interleaved", MaxInterleaved)
		}
	}
	eof, _ := doc.Lookup("EOF").BooleanOK()
	if !eof {
		return n, nil
	}
	crc, ok := doc.Lookup("CRC").Int64OK()
	if !ok {
		return nil, fmt.Errorf("end of %s without a CRC", key)
	}
	if uint64(crc) != n.crc.Sum64() {
		return nil, fmt.Errorf("CRC mismatch for %s: the archive says %d, its documents give %d", key, crc, int64(n.crc.Sum64()))
	}
	if _, term, err := ar.readDoc(); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("truncated")
		}
		return nil, fmt.Errorf("end of %s: %w", key, err)
	} else if !term {
		return nil, fmt.Errorf("end of %s not followed by a terminator", key)
	}
	n.eof = true
	if n != ar.live && n.spool == nil {
		// Nothing spooled: an empty collection, or one whose documents
		// all went out live. It has no entry of its own.
		n.delivered = true
		ar.open--
	}
	return nil, nil
}

// checkComplete is the end of the stream: every collection of the prelude
// must have ended, as mongorestore requires.
func (ar *Reader) checkComplete() error {
	var open []string
	for _, n := range ar.byKey {
		if !n.eof && !n.synthetic && n.typ != "timeseries" || !n.eof && n.data {
			open = append(open, n.key())
		}
	}
	if len(open) > 0 {
		sort.Strings(open)
		return fmt.Errorf("%w: the archive ends before %v end", ErrFormat, open)
	}
	return io.EOF
}

// Read reads the current entry.
func (ar *Reader) Read(p []byte) (int, error) {
	if ar.err != nil {
		return 0, ar.err
	}
	if ar.cur != nil {
		n, err := ar.cur.Read(p)
		if !errors.Is(err, io.EOF) || ar.live == nil {
			if err != nil && !errors.Is(err, io.EOF) {
				err = ar.fail(err)
			}
			return n, err
		}
		ar.cur = nil
		if n > 0 {
			return n, nil
		}
	}
	if ar.live == nil {
		return 0, io.EOF
	}
	for len(ar.pending) == 0 {
		if err := ar.advance(); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, ar.fail(err)
		}
	}
	n := copy(p, ar.pending)
	ar.pending = ar.pending[n:]
	return n, nil
}

// advance reads the stream until the live entry has a document pending or
// ends (io.EOF); documents of other collections go to their spools.
func (ar *Reader) advance() error {
	live := ar.live
	if ar.block == nil {
		n, err := ar.readHeader()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the archive ends before %s ends", live.key())
		}
		if err != nil {
			return err
		}
		if n == nil {
			if live.eof {
				ar.live = nil
				ar.cur = nil
				ar.deliver(live, false)
				return io.EOF
			}
			return nil
		}
		ar.block = n
		return nil
	}
	d, term, err := ar.readDoc()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("segment of %s: %w", ar.block.key(), err)
	}
	if term {
		ar.block = nil
		return nil
	}
	n := ar.block
	n.crc.Write(d)
	if n == live {
		ar.pending = d
		return nil
	}
	return ar.spoolDoc(n, d)
}

// SetSpoolBudget bounds what the spools hold together: each document is
// taken from b before it is written (nil: no bound).
func (ar *Reader) SetSpoolBudget(b *spool.Budget) { ar.budget = b }

func (ar *Reader) spoolDoc(n *namespace, d []byte) error {
	if err := ar.budget.Take(int64(len(d))); err != nil {
		return fmt.Errorf("spool %s: %w", n.key(), err)
	}
	if n.spool == nil {
		f, err := os.CreateTemp(ar.spoolDir, ".a0-archive-spool-*")
		if err != nil {
			return fmt.Errorf("spool %s: %w", n.key(), err)
		}
		n.spool = f
	}
	if _, err := n.spool.Seek(n.spoolBytes, io.SeekStart); err != nil {
		return fmt.Errorf("spool %s: %w", n.key(), err)
	}
	w, err := n.spool.Write(d)
	n.spoolBytes += int64(w)
	if err != nil {
		return fmt.Errorf("spool %s: %w", n.key(), err)
	}
	return nil
}

// Close removes every spool file.
func (ar *Reader) Close() error {
	for _, n := range ar.byKey {
		if n.spool != nil {
			n.spool.Close()
			os.Remove(n.spool.Name())
			n.spool = nil
		}
	}
	if r, ok := ar.cur.(*removeAtEOF); ok {
		r.close()
	}
	return nil
}

// removeAtEOF reads a finished collection's spool and removes it once read.
type removeAtEOF struct {
	r io.Reader
	f *os.File
}

func (r *removeAtEOF) Read(p []byte) (int, error) {
	if r.r == nil {
		return 0, io.EOF
	}
	n, err := r.r.Read(p)
	if errors.Is(err, io.EOF) {
		r.close()
	}
	return n, err
}

func (r *removeAtEOF) close() {
	if r.f != nil {
		r.f.Close()
		os.Remove(r.f.Name())
		r.f = nil
	}
}
