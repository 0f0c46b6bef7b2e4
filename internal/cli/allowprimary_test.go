package cli

// --allow-primary end to end. FerretDB is no replica set, so a wire proxy in
// front of a real FerretDB server makes it answer `hello` as the primary of
// set rs0 (the only change it makes), and records the read preference of
// every collection read the agent sends. The agent (with --mongodb-uri
// naming the proxy) then takes the replica-set path: one member picked by
// the read preference, reads through a direct connection to it.

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/sampledata"
)

const (
	opReply = 1
	opMsg   = 2013
)

// rsProxy forwards MongoDB wire messages to a server, rewriting its hello
// replies into those of a replica-set primary, and records the
// $readPreference mode of each find it forwards ("none" without one).
type rsProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	finds map[string]map[string]int // collection -> mode -> count
}

func startRSProxy(t *testing.T, target string) *rsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rsProxy{ln: ln, target: target, finds: map[string]map[string]int{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *rsProxy) addr() string { return p.ln.Addr().String() }

func (p *rsProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { p.pump(server, client, p.inspect); done <- struct{}{} }()
	go func() { p.pump(client, server, p.rewrite); done <- struct{}{} }()
	<-done
}

// pump copies whole messages from src to dst through f.
func (p *rsProxy) pump(dst io.Writer, src io.Reader, f func([]byte) []byte) {
	for {
		var head [4]byte
		if _, err := io.ReadFull(src, head[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(head[:])
		if n < 16 || n > 64<<20 {
			return
		}
		msg := make([]byte, n)
		copy(msg, head[:])
		if _, err := io.ReadFull(src, msg[4:]); err != nil {
			return
		}
		if _, err := dst.Write(f(msg)); err != nil {
			return
		}
	}
}

// body0 is the section-0 document of an OP_MSG (nil for anything else).
func body0(msg []byte) (bson.Raw, int) {
	if len(msg) < 21 || binary.LittleEndian.Uint32(msg[12:]) != opMsg || msg[20] != 0 {
		return nil, 0
	}
	l := int(binary.LittleEndian.Uint32(msg[21:]))
	if 21+l > len(msg) {
		return nil, 0
	}
	return bson.Raw(msg[21 : 21+l]), 21
}

func (p *rsProxy) inspect(msg []byte) []byte {
	doc, _ := body0(msg)
	if doc == nil {
		return msg
	}
	if el, err := doc.IndexErr(0); err == nil && el.Key() == "find" {
		coll, _ := el.Value().StringValueOK()
		mode := "none"
		if v, err := doc.LookupErr("$readPreference", "mode"); err == nil {
			mode = v.StringValue()
		}
		p.mu.Lock()
		if p.finds[coll] == nil {
			p.finds[coll] = map[string]int{}
		}
		p.finds[coll][mode]++
		p.mu.Unlock()
	}
	return msg
}

func (p *rsProxy) rewrite(msg []byte) []byte {
	switch binary.LittleEndian.Uint32(msg[12:]) {
	case opMsg:
		doc, at := body0(msg)
		if doc == nil || !isHelloReply(doc) {
			return msg
		}
		nd := p.primaryHello(doc)
		rest := msg[at+len(doc):]
		flags := binary.LittleEndian.Uint32(msg[16:])
		if flags&1 != 0 { // checksum present: drop it, and the flag
			rest = rest[:len(rest)-4]
			flags &^= 1
		}
		out := append(append(append([]byte(nil), msg[:at]...), nd...), rest...)
		binary.LittleEndian.PutUint32(out[16:], flags)
		binary.LittleEndian.PutUint32(out, uint32(len(out)))
		return out
	case opReply:
		const at = 36 // header, flags, cursor id, starting from, number returned
		if len(msg) < at+5 {
			return msg
		}
		l := int(binary.LittleEndian.Uint32(msg[at:]))
		doc := bson.Raw(msg[at : at+l])
		if !isHelloReply(doc) {
			return msg
		}
		out := append(append(append([]byte(nil), msg[:at]...), p.primaryHello(doc)...), msg[at+l:]...)
		binary.LittleEndian.PutUint32(out, uint32(len(out)))
		return out
	}
	return msg
}

func isHelloReply(doc bson.Raw) bool {
	_, a := doc.LookupErr("isWritablePrimary")
	_, b := doc.LookupErr("ismaster")
	_, ok := doc.LookupErr("ok")
	return ok == nil && (a == nil || b == nil)
}

// primaryHello is doc plus what a replica-set primary's hello says.
func (p *rsProxy) primaryHello(doc bson.Raw) bson.Raw {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return doc
	}
	me := p.addr()
	d = append(d, bson.E{Key: "setName", Value: "rs0"}, bson.E{Key: "setVersion", Value: int32(1)},
		bson.E{Key: "hosts", Value: bson.A{me}}, bson.E{Key: "primary", Value: me}, bson.E{Key: "me", Value: me},
		bson.E{Key: "secondary", Value: false})
	out, err := bson.Marshal(d)
	if err != nil {
		return doc
	}
	return out
}

// modes is the read preference modes of the finds of coll, and resets them.
func (p *rsProxy) modes(coll string) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.finds[coll]
	p.finds = map[string]map[string]int{}
	return m
}

// TestAllowPrimaryEndToEnd: on a replica-set member the backup's collection
// reads go with read preference secondaryPreferred; with --allow-primary
// they go to the primary (primaryPreferred is what a driver sends for primary
// over a direct connection), never secondaryPreferred. Both backups are
// found, and the manifest names the member read from.
func TestAllowPrimaryEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir(), Oplog: true,
		// The replica-set proxy in front of it dials TCP.
		Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	if _, err := sampledata.Seed(ctx, c, sampledata.Options{Users: 30}); err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(srv.URI(), "mongodb://")
	target, _, _ = strings.Cut(target, "/")
	proxy := startRSProxy(t, target)

	n := startNodeWith(t, "", "", agent.Config{MongoURI: "mongodb://" + proxy.addr() + "/?replicaSet=rs0"})
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", t.TempDir())
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-primary"
	for _, tc := range []struct {
		name       string
		args       []string
		want, not  string
		wantReadOf string
	}{
		{"default: a secondary if there is one", nil, "secondaryPreferred", "", proxy.addr()},
		{"--allow-primary", []string{"--allow-primary"}, "primaryPreferred", "secondaryPreferred", proxy.addr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.modes("users")
			op.mustOn(n, append([]string{"backup", "--wait"}, tc.args...)...)
			got := proxy.modes("users")
			if got[tc.want] == 0 || (tc.not != "" && got[tc.not] != 0) {
				t.Fatalf("read preferences of the reads of auth0.users: %v, want %s (and no %s)\n%s", got, tc.want, tc.not, n.log.String())
			}
			op.mustOn(n, "backup-retrieve", "-o", "rs.enc", "--force")
			m := verifyManifest(t, op, op.dir+"/rs.enc")
			if m.Source.ReplicaSet != "rs0" || m.Source.ReadFrom != tc.wantReadOf {
				t.Fatalf("manifest source %+v, want set rs0 read from %s", m.Source, tc.wantReadOf)
			}
			t.Logf("reads of auth0.users: %v", got)
			op.mustOn(n, "backup-delete")
		})
	}
}
