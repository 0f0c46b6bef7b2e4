package oplogsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// MongoDB 7.0's wire version (WireVersion::WIRE_VERSION_70) and version.
const (
	maxWireVersion = 21
	serverVersion  = "7.0.0"
	// maxMessageSize is mongod's MaxMessageSizeBytes; maxBSONSize its
	// BSONObjMaxUserSize, which also bounds a reply's batch.
	maxMessageSize = 48_000_000
	maxBSONSize    = 16 * 1024 * 1024
)

// Server codes and names (src/mongo/base/error_codes.yml).
const (
	codeBadValue           = 2
	codeCursorNotFound     = 43
	codeCommandNotFound    = 59
	codeCappedPositionLost = 136
)

// Server answers the MongoDB wire protocol as a replica-set primary whose
// oplog is an Oplog (see the package doc: a simulation, for benchmarks).
type Server struct {
	oplog   *Oplog
	set     string
	ln      net.Listener
	addr    string
	setID   bson.ObjectID
	log     *slog.Logger
	connIDs atomic.Int32

	mu      sync.Mutex
	cursors map[int64]*cursor
	conns   map[net.Conn]struct{}
}

// Listen opens the server's socket on addr (host:port; port 0 picks one).
func Listen(addr, replSet string, o *Oplog, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oplogsim: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{oplog: o, set: replSet, ln: ln, addr: ln.Addr().String(), setID: bson.NewObjectID(), log: log,
		cursors: map[int64]*cursor{}, conns: map[net.Conn]struct{}{}}, nil
}

// Addr is host:port, as the server names itself in hello (hosts, me).
func (s *Server) Addr() string { return s.addr }

// URI is a replica-set URI of the server: the driver discovers it as a
// replica set's primary from its hello.
func (s *Server) URI() string { return "mongodb://" + s.addr + "/?replicaSet=" + s.set }

// Serve answers connections until ctx is done, then closes them all.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("oplogsim: accept: %w", err)
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			if err := s.serveConn(ctx, c, s.connIDs.Add(1)); err != nil && ctx.Err() == nil {
				s.log.Warn("oplogsim: connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn, connID int32) error {
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := int32(binary.LittleEndian.Uint32(size[:]))
		if n < 16 || n > maxMessageSize {
			return fmt.Errorf("message of %d bytes", n)
		}
		msg := make([]byte, n)
		copy(msg, size[:])
		if _, err := io.ReadFull(r, msg[4:]); err != nil {
			return err
		}
		reply, err := s.handle(ctx, msg, connID)
		if err != nil {
			return err
		}
		if reply != nil {
			if _, err := c.Write(reply); err != nil {
				return err
			}
		}
	}
}

// handle answers one message: OP_MSG, or OP_QUERY on a $cmd collection
// (the drivers' first hello, before they know the server's wire version).
func (s *Server) handle(ctx context.Context, msg []byte, connID int32) ([]byte, error) {
	_, reqID, _, opcode, rem, ok := wiremessage.ReadHeader(msg)
	if !ok {
		return nil, errors.New("bad message header")
	}
	switch opcode {
	case wiremessage.OpMsg:
		flags, rem, ok := wiremessage.ReadMsgFlags(rem)
		if !ok {
			return nil, errors.New("bad OP_MSG flags")
		}
		if flags&wiremessage.ChecksumPresent != 0 {
			if len(rem) < 4 {
				return nil, errors.New("bad OP_MSG checksum")
			}
			rem = rem[:len(rem)-4]
		}
		var body bsoncore.Document
		for len(rem) > 0 {
			var st wiremessage.SectionType
			if st, rem, ok = wiremessage.ReadMsgSectionType(rem); !ok {
				return nil, errors.New("bad OP_MSG section")
			}
			switch st {
			case wiremessage.SingleDocument:
				if body, rem, ok = wiremessage.ReadMsgSectionSingleDocument(rem); !ok {
					return nil, errors.New("bad OP_MSG body")
				}
			case wiremessage.DocumentSequence:
				// Only writes send sequences; the command that carries
				// them is answered CommandNotFound below.
				if _, _, rem, ok = wiremessage.ReadMsgSectionDocumentSequence(rem); !ok {
					return nil, errors.New("bad OP_MSG document sequence")
				}
			default:
				return nil, fmt.Errorf("OP_MSG section kind %d", st)
			}
		}
		if body == nil {
			return nil, errors.New("OP_MSG without a body")
		}
		out := s.command(ctx, bson.Raw(body), connID, false)
		if flags&wiremessage.MoreToCome != 0 {
			return nil, nil // the client asked for no reply (w:0)
		}
		return opMsg(reqID, out)
	case wiremessage.OpQuery:
		_, rem, ok := wiremessage.ReadQueryFlags(rem)
		if !ok {
			return nil, errors.New("bad OP_QUERY")
		}
		coll, rem, ok := wiremessage.ReadQueryFullCollectionName(rem)
		if !ok {
			return nil, errors.New("bad OP_QUERY")
		}
		_, rem, _ = wiremessage.ReadQueryNumberToSkip(rem)
		_, rem, _ = wiremessage.ReadQueryNumberToReturn(rem)
		q, _, ok := wiremessage.ReadQueryQuery(rem)
		if !ok {
			return nil, errors.New("bad OP_QUERY document")
		}
		var out bson.D
		if !strings.HasSuffix(coll, ".$cmd") {
			out = cmdError(codeCommandNotFound, "CommandNotFound", "the simulated mongod oplog answers OP_QUERY on $cmd only (the legacy hello), not a query on "+coll)
		} else {
			doc := bson.Raw(q)
			if v, err := doc.LookupErr("$query"); err == nil {
				if d, ok := v.DocumentOK(); ok {
					doc = d
				}
			}
			out = s.command(ctx, doc, connID, true)
		}
		return opReply(reqID, out)
	default:
		return nil, fmt.Errorf("opcode %v not supported by the simulated mongod oplog", opcode)
	}
}

func opMsg(responseTo int32, doc bson.D) ([]byte, error) {
	body, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	idx, b := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), responseTo, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, 0)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, body...)
	return bsoncore.UpdateLength(b, idx, int32(len(b[idx:]))), nil
}

func opReply(responseTo int32, doc bson.D) ([]byte, error) {
	body, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	idx, b := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), responseTo, wiremessage.OpReply)
	b = wiremessage.AppendReplyFlags(b, wiremessage.AwaitCapable)
	b = wiremessage.AppendReplyCursorID(b, 0)
	b = wiremessage.AppendReplyStartingFrom(b, 0)
	b = wiremessage.AppendReplyNumberReturned(b, 1)
	b = append(b, body...)
	return bsoncore.UpdateLength(b, idx, int32(len(b[idx:]))), nil
}

func cmdError(code int32, name, msg string) bson.D {
	return bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: msg}, {Key: "code", Value: code}, {Key: "codeName", Value: name}}
}

// command answers one command document. A replica-set member adds the
// cluster time and operation time to every reply; the signature is the
// zero one a member without keys (no auth) sends.
func (s *Server) command(ctx context.Context, cmd bson.Raw, connID int32, legacy bool) bson.D {
	elems, err := cmd.Elements()
	if err != nil || len(elems) == 0 {
		return cmdError(codeBadValue, "BadValue", "empty or malformed command document")
	}
	name := elems[0].Key()
	db, _ := cmd.Lookup("$db").StringValueOK()
	if legacy {
		db = "admin"
	}
	var out bson.D
	switch strings.ToLower(name) {
	case "hello", "ismaster":
		out = s.hello(cmd, name, connID)
	case "buildinfo":
		out = buildInfo()
	case "ping":
		out = bson.D{{Key: "ok", Value: 1.0}}
	case "endsessions":
		out = bson.D{{Key: "ok", Value: 1.0}}
	case "replsetgetconfig":
		out = s.replSetConfig()
	case "find":
		out = s.find(cmd, db)
	case "getmore":
		out = s.getMore(ctx, cmd, db)
	case "killcursors":
		out = s.killCursors(cmd)
	default:
		s.log.Warn("oplogsim: command not simulated", "command", name, "db", db)
		out = cmdError(codeCommandNotFound, "CommandNotFound",
			fmt.Sprintf("no such command: '%s' (a0bench oplog-server is a simulated mongod oplog for benchmarks: it answers hello, buildInfo, ping, replSetGetConfig, endSessions, and find/getMore/killCursors on local.oplog.rs only)", name))
	}
	now := s.oplog.Newest()
	if now.IsZero() {
		now = bson.Timestamp{T: uint32(time.Now().Unix())}
	}
	return append(out,
		bson.E{Key: "$clusterTime", Value: bson.D{{Key: "clusterTime", Value: now},
			{Key: "signature", Value: bson.D{{Key: "hash", Value: bson.Binary{Data: make([]byte, 20)}}, {Key: "keyId", Value: int64(0)}}}}},
		bson.E{Key: "operationTime", Value: now})
}

// hello is a MongoDB 7.0 primary's answer (ismaster under the legacy
// name). No topologyVersion: with one, drivers monitor by awaitable hellos
// on exhaust (moreToCome) streams, which this server does not simulate; the
// drivers poll instead, every heartbeat, as they do a server before 4.4.
func (s *Server) hello(cmd bson.Raw, name string, connID int32) bson.D {
	now := time.Now()
	op := s.oplog.Newest()
	opTime := bson.D{{Key: "ts", Value: op}, {Key: "t", Value: int64(1)}}
	primaryKey := "isWritablePrimary"
	if name != "hello" {
		primaryKey = "ismaster"
	}
	out := bson.D{}
	if ok, _ := cmd.Lookup("helloOk").BooleanOK(); ok {
		out = append(out, bson.E{Key: "helloOk", Value: true})
	}
	return append(out,
		bson.E{Key: "hosts", Value: bson.A{s.addr}},
		bson.E{Key: "setName", Value: s.set},
		bson.E{Key: "setVersion", Value: int32(1)},
		bson.E{Key: primaryKey, Value: true},
		bson.E{Key: "secondary", Value: false},
		bson.E{Key: "primary", Value: s.addr},
		bson.E{Key: "me", Value: s.addr},
		bson.E{Key: "electionId", Value: electionID},
		bson.E{Key: "lastWrite", Value: bson.D{{Key: "opTime", Value: opTime}, {Key: "lastWriteDate", Value: bson.NewDateTimeFromTime(time.Unix(int64(op.T), 0))},
			{Key: "majorityOpTime", Value: opTime}, {Key: "majorityWriteDate", Value: bson.NewDateTimeFromTime(time.Unix(int64(op.T), 0))}}},
		bson.E{Key: "maxBsonObjectSize", Value: int32(maxBSONSize)},
		bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessageSize)},
		bson.E{Key: "maxWriteBatchSize", Value: int32(100000)},
		bson.E{Key: "localTime", Value: bson.NewDateTimeFromTime(now)},
		bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		bson.E{Key: "connectionId", Value: connID},
		bson.E{Key: "minWireVersion", Value: int32(0)},
		bson.E{Key: "maxWireVersion", Value: int32(maxWireVersion)},
		bson.E{Key: "readOnly", Value: false},
		bson.E{Key: "ok", Value: 1.0})
}

// electionID is the first term's, as a member elected in term 1 reports it.
var electionID = func() bson.ObjectID {
	id, _ := bson.ObjectIDFromHex("7fffffff0000000000000001")
	return id
}()

// buildInfo is MongoDB 7.0's answer, without ferretdbVersion: a0's
// MongoSource tails a server without it by a tailable awaitData cursor.
func buildInfo() bson.D {
	return bson.D{
		{Key: "version", Value: serverVersion},
		{Key: "gitVersion", Value: "simulated-mongod-oplog-a0bench"},
		{Key: "modules", Value: bson.A{}},
		{Key: "allocator", Value: "tcmalloc"},
		{Key: "javascriptEngine", Value: "mozjs"},
		{Key: "sysInfo", Value: "deprecated"},
		{Key: "versionArray", Value: bson.A{int32(7), int32(0), int32(0), int32(0)}},
		{Key: "bits", Value: int32(64)},
		{Key: "debug", Value: false},
		{Key: "maxBsonObjectSize", Value: int32(maxBSONSize)},
		{Key: "storageEngines", Value: bson.A{"devnull", "wiredTiger"}},
		{Key: "ok", Value: 1.0},
	}
}

// replSetConfig is replSetGetConfig's answer for a one-member set.
func (s *Server) replSetConfig() bson.D {
	return bson.D{{Key: "config", Value: bson.D{
		{Key: "_id", Value: s.set},
		{Key: "version", Value: int32(1)},
		{Key: "term", Value: int32(1)},
		{Key: "members", Value: bson.A{bson.D{{Key: "_id", Value: int32(0)}, {Key: "host", Value: s.addr}, {Key: "arbiterOnly", Value: false},
			{Key: "buildIndexes", Value: true}, {Key: "hidden", Value: false}, {Key: "priority", Value: 1.0}, {Key: "tags", Value: bson.D{}},
			{Key: "secondaryDelaySecs", Value: int64(0)}, {Key: "votes", Value: int32(1)}}}},
		{Key: "protocolVersion", Value: int64(1)},
		{Key: "writeConcernMajorityJournalDefault", Value: true},
		{Key: "settings", Value: bson.D{{Key: "chainingAllowed", Value: true}, {Key: "heartbeatIntervalMillis", Value: int32(2000)},
			{Key: "heartbeatTimeoutSecs", Value: int32(10)}, {Key: "electionTimeoutMillis", Value: int32(10000)},
			{Key: "catchUpTimeoutMillis", Value: int32(-1)}, {Key: "catchUpTakeoverDelayMillis", Value: int32(30000)},
			{Key: "getLastErrorModes", Value: bson.D{}}, {Key: "getLastErrorDefaults", Value: bson.D{{Key: "w", Value: int32(1)}, {Key: "wtimeout", Value: int32(0)}}},
			{Key: "replicaSetId", Value: s.setID}}},
	}}, {Key: "ok", Value: 1.0}}
}

// cursor is an open find on the oplog: the sequence number of the next
// entry to look at, the ts bounds, and what the find asked for.
type cursor struct {
	id        int64
	next      uint64 // forward: next seq to look at; reverse: one past it
	reverse   bool
	lo, hi    bound
	left      int64 // entries still to return under a limit (-1: none)
	proj      []string
	tailable  bool
	awaitData bool
}

// bound is one side of a ts filter.
type bound struct {
	set    bool
	ts     bson.Timestamp
	strict bool
}

func (c *cursor) match(ts bson.Timestamp) (ok, past bool) {
	if c.lo.set && (ts.Before(c.lo.ts) || (c.lo.strict && ts.Equal(c.lo.ts))) {
		return false, c.reverse
	}
	if c.hi.set && (c.hi.ts.Before(ts) || (c.hi.strict && ts.Equal(c.hi.ts))) {
		return false, !c.reverse
	}
	return true, false
}

const oplogNS = "local.oplog.rs"

// find opens a cursor on local.oplog.rs. It takes what an oplog reader
// sends (a ts filter, $natural order, a projection of fields, limit,
// batchSize, singleBatch, tailable, awaitData) and refuses, with a
// BadValue naming it, anything the simulation does not do.
func (s *Server) find(cmd bson.Raw, db string) bson.D {
	coll, _ := cmd.Lookup("find").StringValueOK()
	if db+"."+coll != oplogNS {
		return cmdError(codeCommandNotFound, "CommandNotFound",
			fmt.Sprintf("find on %s.%s: a0bench oplog-server is a simulated mongod oplog and holds %s only", db, coll, oplogNS))
	}
	c := &cursor{left: -1}
	batch := int64(101) // mongod's default first batch
	single := false
	elems, _ := cmd.Elements()
	for _, e := range elems[1:] {
		v := e.Value()
		switch k := e.Key(); k {
		case "filter":
			if err := c.parseFilter(v); err != nil {
				return cmdError(codeBadValue, "BadValue", err.Error())
			}
		case "sort":
			d, ok := v.DocumentOK()
			if !ok {
				return cmdError(codeBadValue, "BadValue", "sort must be a document")
			}
			se, _ := d.Elements()
			for _, x := range se {
				if x.Key() != "$natural" {
					return cmdError(codeBadValue, "BadValue", "the simulated oplog sorts by $natural only, not "+x.Key())
				}
				if n, ok := x.Value().AsInt64OK(); ok && n < 0 {
					c.reverse = true
				}
			}
		case "projection":
			d, ok := v.DocumentOK()
			if !ok {
				return cmdError(codeBadValue, "BadValue", "projection must be a document")
			}
			pe, _ := d.Elements()
			for _, x := range pe {
				if !truthy(x.Value()) {
					if x.Key() == "_id" {
						continue // oplog entries have no _id
					}
					return cmdError(codeBadValue, "BadValue", "the simulated oplog projects by inclusion only, not by excluding "+x.Key())
				}
				c.proj = append(c.proj, x.Key())
			}
			if c.proj == nil {
				c.proj = []string{}
			}
		case "limit":
			n, _ := v.AsInt64OK()
			if n < 0 {
				n, single = -n, true
			}
			if n > 0 {
				c.left = n
			}
		case "batchSize":
			batch, _ = v.AsInt64OK()
		case "singleBatch":
			single, _ = v.BooleanOK()
		case "tailable":
			c.tailable, _ = v.BooleanOK()
		case "awaitData":
			c.awaitData, _ = v.BooleanOK()
		case "skip":
			if n, _ := v.AsInt64OK(); n != 0 {
				return cmdError(codeBadValue, "BadValue", "the simulated oplog does not skip")
			}
		case "$db", "lsid", "$clusterTime", "$readPreference", "readConcern", "maxTimeMS", "comment", "txnNumber", "noCursorTimeout", "allowPartialResults", "hint":
			// Nothing to do: no sessions, no replication lag, nothing to time out.
		default:
			return cmdError(codeBadValue, "BadValue", "find option "+k+" is not simulated by a0bench oplog-server")
		}
	}
	if c.reverse && c.tailable {
		return cmdError(codeBadValue, "BadValue", "a tailable cursor reads in $natural order only")
	}
	if c.awaitData && !c.tailable {
		return cmdError(codeBadValue, "BadValue", "Cannot set 'awaitData' without also setting 'tailable'")
	}
	s.oplog.mu.Lock()
	empty := s.oplog.next == s.oplog.first
	if c.reverse {
		c.next = s.oplog.next
		if c.hi.set {
			c.next = s.oplog.search(c.hi.ts, !c.hi.strict)
		}
	} else {
		c.next = s.oplog.first
		if c.lo.set {
			c.next = s.oplog.search(c.lo.ts, c.lo.strict)
		}
	}
	docs, done, err := s.take(c, batch)
	s.oplog.mu.Unlock()
	if err != nil {
		return cmdError(codeBadValue, "BadValue", err.Error())
	}
	// mongod keeps a tailable cursor open at the end of the oplog unless
	// the collection is empty (find_cmd.cpp shouldSaveCursor); others
	// close when nothing more matches.
	keep := !single && !done
	if c.tailable {
		keep = !single && !empty && !done
	}
	if keep {
		c.id = s.register(c)
	}
	return cursorReply("firstBatch", docs, c.id)
}

func truthy(v bson.RawValue) bool {
	if b, ok := v.BooleanOK(); ok {
		return b
	}
	if n, ok := v.AsFloat64OK(); ok {
		return n != 0
	}
	return true
}

func (c *cursor) parseFilter(v bson.RawValue) error {
	d, ok := v.DocumentOK()
	if !ok {
		return errors.New("filter must be a document")
	}
	elems, err := d.Elements()
	if err != nil {
		return err
	}
	for _, e := range elems {
		if e.Key() != "ts" {
			return fmt.Errorf("the simulated oplog filters on ts only, not %s", e.Key())
		}
		if t, i, ok := e.Value().TimestampOK(); ok {
			ts := bson.Timestamp{T: t, I: i}
			c.lo, c.hi = bound{set: true, ts: ts}, bound{set: true, ts: ts}
			continue
		}
		ops, ok := e.Value().DocumentOK()
		if !ok {
			return errors.New("a ts filter is a Timestamp or operators on one")
		}
		oe, err := ops.Elements()
		if err != nil {
			return err
		}
		for _, o := range oe {
			t, i, ok := o.Value().TimestampOK()
			if !ok {
				return fmt.Errorf("ts %s takes a Timestamp", o.Key())
			}
			ts := bson.Timestamp{T: t, I: i}
			switch o.Key() {
			case "$gt":
				c.lo = bound{set: true, ts: ts, strict: true}
			case "$gte":
				c.lo = bound{set: true, ts: ts}
			case "$lt":
				c.hi = bound{set: true, ts: ts, strict: true}
			case "$lte":
				c.hi = bound{set: true, ts: ts}
			case "$eq":
				c.lo, c.hi = bound{set: true, ts: ts}, bound{set: true, ts: ts}
			default:
				return fmt.Errorf("ts operator %s is not simulated", o.Key())
			}
		}
	}
	return nil
}

// errPositionLost: the entries a cursor was to read next were trimmed.
var errPositionLost = errors.New("CollectionScan died due to position in capped collection being deleted")

// take reads up to n entries (0: no count bound) for c under s.oplog.mu,
// within a reply's size; done is true when no entry can match any more
// (never at the end of the oplog for a tailable cursor).
func (s *Server) take(c *cursor, n int64) (docs []bson.Raw, done bool, err error) {
	o := s.oplog
	size := 0
	for n <= 0 || int64(len(docs)) < n {
		if c.left == 0 {
			return docs, true, nil
		}
		var seq uint64
		if c.reverse {
			if c.next <= o.first {
				return docs, true, nil
			}
			seq = c.next - 1
		} else {
			if c.next < o.first {
				return docs, true, errPositionLost
			}
			if c.next >= o.next {
				return docs, !c.tailable, nil
			}
			seq = c.next
		}
		e := o.at(seq)
		ok, past := c.match(e.ts)
		if past {
			return docs, true, nil
		}
		doc := e.raw
		if ok && c.proj != nil {
			if doc, err = project(doc, c.proj); err != nil {
				return docs, true, err
			}
		}
		if ok && size+len(doc) > maxBSONSize && len(docs) > 0 {
			return docs, false, nil
		}
		if c.reverse {
			c.next--
		} else {
			c.next++
		}
		if ok {
			docs = append(docs, doc)
			size += len(doc)
			if c.left > 0 {
				c.left--
			}
		}
	}
	return docs, false, nil
}

// project keeps the named top-level fields, in the entry's order.
func project(raw bson.Raw, fields []string) (bson.Raw, error) {
	elems, err := raw.Elements()
	if err != nil {
		return nil, err
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		for _, f := range fields {
			if e.Key() == f {
				b = append(b, e...)
				break
			}
		}
	}
	b, err = bsoncore.AppendDocumentEnd(b, idx)
	return bson.Raw(b), err
}

func (s *Server) register(c *cursor) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := rand.Int64N(1<<62) + 1 // mongod's ids are random positive int64s
		if _, dup := s.cursors[id]; !dup {
			s.cursors[id] = c
			return id
		}
	}
}

func cursorReply(key string, docs []bson.Raw, id int64) bson.D {
	batch := make(bson.A, len(docs))
	for i, d := range docs {
		batch[i] = d
	}
	return bson.D{{Key: "cursor", Value: bson.D{{Key: key, Value: batch}, {Key: "id", Value: id}, {Key: "ns", Value: oplogNS}}}, {Key: "ok", Value: 1.0}}
}

// getMore continues a cursor. On a tailable awaitData cursor at the end of
// the oplog it waits for new entries up to maxTimeMS (1 s by default, as
// mongod), and answers an empty batch with the cursor still open when none
// came.
func (s *Server) getMore(ctx context.Context, cmd bson.Raw, db string) bson.D {
	id, ok := cmd.Lookup("getMore").Int64OK()
	if !ok {
		return cmdError(codeBadValue, "BadValue", "getMore takes an int64 cursor id")
	}
	coll, _ := cmd.Lookup("collection").StringValueOK()
	s.mu.Lock()
	c := s.cursors[id]
	s.mu.Unlock()
	if c == nil || db+"."+coll != oplogNS {
		return cmdError(codeCursorNotFound, "CursorNotFound", fmt.Sprintf("cursor id %d not found", id))
	}
	batch, _ := cmd.Lookup("batchSize").AsInt64OK()
	wait := time.Second
	if ms, ok := cmd.Lookup("maxTimeMS").AsInt64OK(); ok && ms > 0 {
		wait = time.Duration(ms) * time.Millisecond
	}
	deadline := time.Now().Add(wait)
	for {
		s.oplog.mu.Lock()
		docs, done, err := s.take(c, batch)
		grew := s.oplog.grew
		s.oplog.mu.Unlock()
		if errors.Is(err, errPositionLost) {
			s.forget(id)
			return cmdError(codeCappedPositionLost, "CappedPositionLost", err.Error())
		}
		if err != nil {
			s.forget(id)
			return cmdError(codeBadValue, "BadValue", err.Error())
		}
		if len(docs) > 0 || done || !c.awaitData {
			if done {
				s.forget(id)
				id = 0
			}
			return cursorReply("nextBatch", docs, id)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return cursorReply("nextBatch", nil, id)
		}
		t := time.NewTimer(left)
		select {
		case <-grew:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return cursorReply("nextBatch", nil, id)
		}
	}
}

func (s *Server) forget(id int64) {
	s.mu.Lock()
	delete(s.cursors, id)
	s.mu.Unlock()
}

func (s *Server) killCursors(cmd bson.Raw) bson.D {
	arr, ok := cmd.Lookup("cursors").ArrayOK()
	if !ok {
		return cmdError(codeBadValue, "BadValue", "killCursors takes an array of cursors")
	}
	vals, _ := arr.Values()
	killed, notFound := bson.A{}, bson.A{}
	s.mu.Lock()
	for _, v := range vals {
		id, _ := v.Int64OK()
		if _, ok := s.cursors[id]; ok {
			delete(s.cursors, id)
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	s.mu.Unlock()
	return bson.D{{Key: "cursorsKilled", Value: killed}, {Key: "cursorsNotFound", Value: notFound},
		{Key: "cursorsAlive", Value: bson.A{}}, {Key: "cursorsUnknown", Value: bson.A{}}, {Key: "ok", Value: 1.0}}
}
