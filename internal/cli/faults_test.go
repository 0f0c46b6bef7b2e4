package cli

// Faults, crafted input and load against real agents and the real CLI:
// concurrent status calls during a backup, connection drops during retrieve
// and upload (resumed by the next run), passwords that never leak, crafted
// archives inside authentic files, and a backup device that fills up.
// docs/security.md maps each promise to these tests.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/crypt"
)

// cutProxy forwards TCP to a node and cuts each connection once it has
// carried more than up (client to node) or down (node to client) bytes;
// a negative limit means none.
type cutProxy struct {
	ln       net.Listener
	up, down int64
}

func startCutProxy(t *testing.T, target string, up, down int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, up: up, down: down}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve(c net.Conn, target string) {
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	var once sync.Once
	cut := func() { once.Do(func() { c.Close(); s.Close() }) }
	pipe := func(dst, src net.Conn, limit int64) {
		defer cut()
		if limit < 0 {
			io.Copy(dst, src)
			return
		}
		io.CopyN(dst, src, limit)
	}
	go pipe(s, c, p.up)
	go pipe(c, s, p.down)
}

// stableSize waits until the file's size stops changing (the node may still
// be writing what arrived before a cut) and returns it.
func stableSize(t *testing.T, glob string) int64 {
	t.Helper()
	last := int64(-1)
	for range 50 {
		var size int64
		ms, _ := filepath.Glob(glob)
		for _, m := range ms {
			if st, err := os.Stat(m); err == nil {
				size += st.Size()
			}
		}
		if size == last {
			return size
		}
		last = size
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func TestFaultLoadAndDroppedConnections(t *testing.T) {
	n, op, _ := backupNode(t, 600)
	const pw = "Passw0rd-faults"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(n, "backup")

	t.Run("twenty concurrent backup-status calls during a running backup", func(t *testing.T) {
		var wg sync.WaitGroup
		var inProgress atomic.Int32
		errs := make(chan string, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out, errb bytes.Buffer
				env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Home: op.home, Target: n.addr,
					Getenv: func(string) string { return "" }}
				if err := RunBackupStatus(context.Background(), env, "backup"); err != nil {
					errs <- fmt.Sprintf("call %d: %v %s", i, err, errb.String())
					return
				}
				var st foundStatus
				if err := json.Unmarshal(out.Bytes(), &st); err != nil {
					errs <- fmt.Sprintf("call %d: not JSON: %q", i, out.String())
					return
				}
				switch st.Message {
				case "Backup in progress":
					inProgress.Add(1)
				case "Backup found":
				default:
					errs <- fmt.Sprintf("call %d: %s", i, out.String())
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if inProgress.Load() == 0 {
			t.Fatal("the backup finished before the calls: none saw it running (seed more data)")
		}
		t.Logf("%d of 20 calls saw the backup running", inProgress.Load())
	})
	if st := decodeStatus(t, op.waitStatus(n, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v\n%s", st, n.log.String())
	}
	st := decodeStatus(t, op.mustOn(n, "backup-status").stdout)
	size := st.Arguments.Size
	if size < 64<<10 {
		t.Fatalf("backup of %d bytes is too small to cut part-way", size)
	}

	t.Run("retrieve cut by the network resumes on the next run", func(t *testing.T) {
		px := startCutProxy(t, n.addr, -1, size/2)
		r := op.run("-t", px.addr(), "backup-retrieve")
		if r.code == 0 {
			t.Fatalf("retrieve through a cutting proxy succeeded: %+v", r)
		}
		part := filepath.Join(op.dir, ".backup-retrieve.tar.gz.enc."+st.Arguments.SHA256[:16]+".part")
		got := stableSize(t, part)
		if got <= 0 || got >= size {
			t.Fatalf("partial download holds %d of %d bytes (exit %d: %s)", got, size, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")); err == nil {
			t.Fatal("an interrupted retrieve left a file with the final name")
		}
		r = op.on(n, "backup-retrieve")
		if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("resuming download at byte %d", got)) {
			t.Fatalf("second run did not resume at %d: %s", got, r.stderr)
		}
		if !strings.Contains(r.stdout, st.Arguments.MD5) {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("upload cut by the network resumes on the next run", func(t *testing.T) {
		file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
		uploads := filepath.Join(n.state, "uploads", "*.upload")
		var sizes []int64
		for _, limit := range []int64{size / 4, size / 2} {
			px := startCutProxy(t, n.addr, limit, -1)
			// --drop: the targets are the source's own collections; a dry run writes nothing.
			r := op.run("-t", px.addr(), "restore", file, "--dry-run", "--drop")
			if r.code == 0 {
				t.Fatalf("upload through a proxy cutting at %d succeeded: %+v", limit, r)
			}
			sizes = append(sizes, stableSize(t, uploads))
		}
		if sizes[0] <= 0 || sizes[1] <= sizes[0] || sizes[1] >= size {
			t.Fatalf("node's upload sizes across runs %v (file %d): not growing", sizes, size)
		}
		r := op.on(n, "restore", file, "--dry-run", "--drop")
		if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("resuming upload at byte %d", sizes[1])) || !strings.Contains(r.stdout, "would restore") {
			t.Fatalf("third run did not resume at %d: %+v", sizes[1], r)
		}
		if got := stableSize(t, uploads); got != size {
			t.Fatalf("upload holds %d bytes, file %d", got, size)
		}
	})
}

// cmdlines returns the command lines of every process we may read.
func cmdlines() string {
	var b strings.Builder
	ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range ms {
		if c, err := os.ReadFile(m); err == nil {
			b.Write(c)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// grepTree reports the files under dir whose bytes contain s.
func grepTree(dir, s string) []string {
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

func TestFaultPasswordsNeverLeak(t *testing.T) {
	const (
		pw      = "Zq9-distinctive-backup-pw-7741"
		wrong   = "Zq9-distinctive-wrong-pw-8852"
		sensPW  = "Zq9-distinctive-sensitive-pw-9963"
		needles = "Zq9-distinctive"
	)
	n, op, dev := backupNode(t, 200)
	dst := startNode(t, "", "")
	dst.authorize("ops", op.home)
	var outputs []string
	var procs strings.Builder
	run := func(node *testNode, args ...string) result {
		r := op.on(node, args...)
		outputs = append(outputs, fmt.Sprintf("a0cli %s: exit %d\n%s%s", args[0], r.code, r.stdout, r.stderr))
		procs.WriteString(cmdlines())
		return r
	}
	expect := func(r result, code int) {
		t.Helper()
		if r.code != code {
			t.Fatalf("exit %d, want %d: %s %s", r.code, code, r.stdout, r.stderr)
		}
	}

	expect(run(n, "backup", "--password", pw), 0)
	procs.WriteString(cmdlines()) // while the backup runs
	op.waitStatus(n, "backup-status")
	expect(run(n, "backup-status"), 0)
	expect(run(n, "backup", "--password", pw), ExitRefused) // one stored already
	expect(run(n, "backup-retrieve"), 0)
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	expect(run(n, "verify", file, "--password", wrong), ExitIntegrity)
	expect(run(n, "verify", file, "--password", pw), 0)
	expect(run(n, "restore", "--password", wrong, "--dry-run"), ExitIntegrity) // the node's stored backup
	expect(run(dst, "restore", file, "--password", wrong), ExitIntegrity)
	expect(run(dst, "restore", file, "--password", pw), 0)
	expect(run(dst, "restore-status"), 0)
	expect(run(n, "backup-sensitive", "--password", sensPW), 0)
	op.waitStatus(n, "backup-sensitive-status")
	expect(run(n, "backup-sensitive-status"), 0)
	expect(run(n, "backup-sensitive-retrieve"), 0)
	sens := filepath.Join(op.dir, "backup-sensitive-retrieve.tar.gz.enc")
	expect(run(n, "verify", sens, "--password", wrong), ExitIntegrity)
	expect(run(dst, "restore-sensitive", sens, "--password", wrong, "--yes"), ExitIntegrity)
	expect(run(n, "node-status"), 0)

	for _, o := range outputs {
		if strings.Contains(o, needles) {
			t.Errorf("CLI output holds a password:\n%s", o)
		}
	}
	for name, log := range map[string]string{"source agent": n.log.String(), "target agent": dst.log.String()} {
		if strings.Contains(log, needles) {
			t.Errorf("%s log holds a password:\n%s", name, log)
		}
		if !strings.Contains(log, "status=") {
			t.Errorf("%s log is empty: the scan proves nothing", name)
		}
	}
	// The test's own process carries no password in argv (the CLI runs in
	// process); any other process with one was started by an agent.
	if strings.Contains(procs.String(), needles) {
		t.Error("a process command line holds a password")
	}
	for _, dir := range []string{n.state, dst.state, dev} {
		if hits := grepTree(dir, needles); len(hits) > 0 {
			t.Errorf("password stored on the node's disk: %v", hits)
		}
	}
}

// tarEntry is one entry of an archive being crafted.
type tarEntry struct {
	hdr  tar.Header
	data []byte
	raw  bool // write the header only (its declared size is a lie)
}

// readEntries decrypts an a0 file and returns its entries in order.
func readEntries(t *testing.T, path, password string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr, err := crypt.NewReader(f, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(cr)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: *h, data: b})
	}
}

// sealEntries packs entries as tar.gz and encrypts them with password: an
// authentic file whose content is whatever the test crafted.
func sealEntries(t *testing.T, path, password string, entries []tarEntry) {
	t.Helper()
	var plain bytes.Buffer
	gz := gzip.NewWriter(&plain)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if !e.raw && (h.Typeflag == tar.TypeReg || h.Typeflag == 0) {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.raw {
			// Header only: what follows is the end of the stream.
			tw.Flush()
			gz.Write(e.data)
			gz.Close()
			goto seal
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
seal:
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w, err := crypt.NewWriter(f, []byte(password), nil)
	if err == nil {
		_, err = w.Write(plain.Bytes())
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestFaultCraftedArchives(t *testing.T) {
	src, op, _ := backupNode(t, 40)
	const pw = "Passw0rd-crafted"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup")
	if st := decodeStatus(t, op.waitStatus(src, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v", st)
	}
	op.mustOn(src, "backup-retrieve")
	base := readEntries(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"), pw)
	idx := func(suffix string) int {
		for i, e := range base {
			if strings.HasSuffix(e.hdr.Name, suffix) && e.hdr.Name != "oplog.bson" {
				return i
			}
		}
		t.Fatalf("no %s entry in the backup", suffix)
		return -1
	}
	bsonAt, metaAt, manAt := idx(".bson"), idx(".metadata.json"), idx("manifest.json")
	if manAt != len(base)-1 {
		t.Fatalf("manifest is not last: %d of %d", manAt, len(base))
	}
	outside := t.TempDir() // an absolute target that must stay empty
	dst := startNode(t, "", "")
	dst.authorize("ops", op.home)
	before, stateBefore := dbSnapshot(t, dst.client()), stateFiles(t, dst.state)

	reg := func(name string, data []byte) tarEntry {
		return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: time.Now()}, data: data}
	}
	insert := func(at int, es ...tarEntry) []tarEntry {
		out := append([]tarEntry(nil), base[:at]...)
		out = append(out, es...)
		return append(out, base[at:]...)
	}
	replace := func(at int, data []byte) []tarEntry {
		out := append([]tarEntry(nil), base...)
		out[at].data = data
		return out
	}
	truncateAt := func(at int, e tarEntry) []tarEntry {
		return append(append([]tarEntry(nil), base[:at]...), e)
	}
	doc := []byte{0x05, 0, 0, 0, 0} // the empty BSON document
	cases := []struct {
		name    string
		entries []tarEntry
		// want (a regexp) is what both restore and verify must say: the
		// reason, so that a size limit is told from a truncated
		// stream and neither passes for the other.
		want string
	}{
		{"traversal ../x.bson", insert(0, reg("../x.bson", doc)), "path traversal"},
		{"traversal inside a name", insert(bsonAt, reg(base[bsonAt].hdr.Name[:strings.IndexByte(base[bsonAt].hdr.Name, '/')]+"/../../x.bson", doc)), "path traversal"},
		{"absolute path", insert(0, reg(filepath.Join(outside, "x.bson"), doc)), "absolute path"},
		{"symlink", insert(bsonAt, tarEntry{hdr: tar.Header{Name: "evil/link.bson", Typeflag: tar.TypeSymlink, Linkname: outside, ModTime: time.Now()}}), "link to"},
		{"hard link", insert(bsonAt, tarEntry{hdr: tar.Header{Name: "evil/hard.bson", Typeflag: tar.TypeLink, Linkname: "/etc/passwd", ModTime: time.Now()}}), "link to"},
		{"fifo", insert(bsonAt, tarEntry{hdr: tar.Header{Name: "evil/fifo.bson", Typeflag: tar.TypeFifo, ModTime: time.Now()}}), "device or fifo"},
		{"huge declared size above the limit", truncateAt(bsonAt, tarEntry{hdr: tar.Header{Name: base[bsonAt].hdr.Name, Typeflag: tar.TypeReg, Mode: 0o600, Size: 4 << 40, ModTime: time.Now()}, data: doc, raw: true}), "above the limit"},
		{"declared size larger than the data", truncateAt(bsonAt, tarEntry{hdr: tar.Header{Name: base[bsonAt].hdr.Name, Typeflag: tar.TypeReg, Mode: 0o600, Size: 1 << 30, ModTime: time.Now()}, data: doc, raw: true}), "truncated"},
		{"BSON with an impossible length", replace(bsonAt, []byte{0xff, 0xff, 0xff, 0x7f, 0x03, 0x00}), `(bad|impossible) length 2147483647`},
		{"BSON length below the minimum", replace(bsonAt, []byte{0x03, 0, 0, 0}), `(bad|impossible) length 3`},
		{"BSON garbage inside a document", replace(bsonAt, []byte{0x0c, 0, 0, 0, 0x7e, 'a', 0, 1, 2, 3, 4, 0}), "document 0"},
		{"malformed metadata JSON", replace(metaAt, []byte(`{"options":{`)), "parse metadata"},
		{"metadata JSON of the wrong shape", replace(metaAt, []byte(`{"indexes":"all of them"}`)), "parse metadata"},
		{"malformed manifest JSON", replace(manAt, []byte(`{"format_version":`)), "manifest"},
		{"manifest of the wrong kind", replace(manAt, bytes.Replace(base[manAt].data, []byte(`"kind": "backup"`), []byte(`"kind": "sensitive"`), 1)), "sensitive"},
		{"duplicate names", insert(bsonAt+1, base[bsonAt]), "duplicate name"},
		{"entry after the manifest", append(append([]tarEntry(nil), base...), reg("late/x.bson", doc)), "after manifest.json"},
		{"name outside the mongodump layout", insert(0, reg("etc/cron.d/a0", []byte("* * * * * root true\n"))), "not part of the mongodump layout"},
	}

	t.Run("control: the repacked authentic archive is accepted", func(t *testing.T) {
		p := filepath.Join(op.dir, "control.enc")
		sealEntries(t, p, pw, base)
		if r := op.run("verify", p); r.code != 0 {
			t.Fatalf("verify: %+v", r)
		}
		if r := op.on(dst, "restore", p, "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would restore") {
			t.Fatalf("dry run: %+v", r)
		}
	})
	var summary []string
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(op.dir, fmt.Sprintf("crafted-%02d.enc", i))
			sealEntries(t, p, pw, tc.entries)
			r := op.on(dst, "restore", p)
			if r.code != ExitIntegrity || !regexp.MustCompile(tc.want).MatchString(r.stderr) {
				t.Fatalf("restore: exit %d, want %d with %q\n%s%s", r.code, ExitIntegrity, tc.want, r.stdout, r.stderr)
			}
			if tc.want == "truncated" && strings.Contains(r.stderr, "limit") || tc.want == "above the limit" && strings.Contains(r.stderr, "truncated") {
				t.Fatalf("a size limit and a truncated stream are told apart: %s", r.stderr)
			}
			summary = append(summary, fmt.Sprintf("%-40s restore exit %d", tc.name, r.code))
			if after := dbSnapshot(t, dst.client()); after != before {
				t.Fatalf("database written:\n%s", after)
			}
			if m := restoreMarkerOf(t, dst.client()); m != "" {
				t.Fatalf("a refused restore left a restore marker: %s", m)
			}
			if after := stateFiles(t, dst.state); after != stateBefore {
				t.Fatalf("node's state directory changed outside uploads/ and jobs/:\nbefore:\n%s\nafter:\n%s", stateBefore, after)
			}
			v := op.run("verify", p)
			if v.code != ExitIntegrity || !regexp.MustCompile(tc.want).MatchString(v.stderr) {
				if verifyGaps[tc.name] {
					t.Logf("KNOWN GAP: verify accepts it (see docs/security.md)")
				} else {
					t.Errorf("verify: exit %d, want %d with %q\n%s%s", v.code, ExitIntegrity, tc.want, v.stdout, v.stderr)
				}
			} else if verifyGaps[tc.name] {
				t.Errorf("verify now refuses it: remove it from verifyGaps")
			}
			summary[len(summary)-1] += fmt.Sprintf(", verify exit %d: %s", v.code, firstLine(v.stderr))
			for _, x := range []string{filepath.Join(outside, "x.bson"), filepath.Join(dst.state, "x.bson"),
				filepath.Join(filepath.Dir(dst.state), "x.bson"), filepath.Join(op.dir, "x.bson")} {
				if _, err := os.Stat(x); err == nil {
					t.Fatalf("%s written", x)
				}
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("%s holds %d entries", outside, len(ents))
			}
		})
	}
	t.Logf("crafted archives:\n%s", strings.Join(summary, "\n"))
	if hits := grepTree(filepath.Join(dst.state, "uploads"), "* * * * * root"); len(hits) > 0 {
		t.Logf("note: uploads keep the (encrypted) files; plaintext found in %v", hits)
	}
}

// stateFiles lists the files of a node's state directory with their sizes
// and modes, but for uploads/ (refused uploads stay to be resumed), jobs/
// (the record of the refused job) and the database files.
func stateFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && (rel == "uploads" || rel == "jobs" || rel == "db") {
			return filepath.SkipDir
		}
		if info, err := d.Info(); err == nil && info.Mode().Type() == fs.ModeSocket {
			// The embedded server's socket (run/mongodb.sock): its mode,
			// no content to hash.
			fmt.Fprintf(&b, "%s %v\n", rel, info.Mode())
		} else if err == nil && !d.IsDir() {
			sum := sha256.Sum256(readFile(t, p))
			fmt.Fprintf(&b, "%s %v %x\n", rel, info.Mode(), sum[:8])
		}
		return nil
	})
	return b.String()
}

// verifyGaps are crafted archives that the node refuses but `a0cli verify`
// would still call authentic. Empty since verify runs restore.Plan over an
// ordinary backup and checks a sensitive backup's file list exactly; a case
// added here must come with an entry in docs/security.md.
var verifyGaps = map[string]bool{}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// freeOf is the free space of dir as the agent sees it.
func freeOf(t *testing.T, dir string) int64 {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Bavail) * int64(s.Bsize)
}

// fill writes dir/filler until about leave bytes are free.
func fill(t *testing.T, dir string, leave int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for free := freeOf(t, dir); free > leave; free = freeOf(t, dir) {
		n := min(int64(len(buf)), free-leave)
		if _, err := f.Write(buf[:n]); err != nil {
			return // full
		}
	}
}

func TestFaultDeviceFull(t *testing.T) {
	dev := tmpfsDevice(t, "8m")
	h := newHolds(agent.HoldBackup)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(400)
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", dev)
	var ns struct {
		DatabaseBytes int64 `json:"database_bytes"`
	}
	if err := json.Unmarshal([]byte(op.mustOn(n, "node-status", "--json").stdout), &ns); err != nil || ns.DatabaseBytes == 0 {
		t.Fatalf("node-status: %+v %v", ns, err)
	}
	const pw = "Passw0rd-devicefull"
	op.env["A0_BACKUP_PASSWORD"] = pw
	folder := filepath.Join(dev, "backup")
	noValidFile := func(t *testing.T) {
		t.Helper()
		ents, _ := os.ReadDir(folder)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".enc") {
				t.Fatalf("a file that looks valid was left: %s", e.Name())
			}
			if strings.HasSuffix(e.Name(), ".part") || e.Name() == ".work" {
				t.Errorf("left behind: %s", e.Name())
			}
		}
	}

	t.Run("refused before starting when free space is under twice the data", func(t *testing.T) {
		fill(t, dev, ns.DatabaseBytes) // leaves about 1x
		defer os.Remove(filepath.Join(dev, "filler"))
		r := op.on(n, "backup")
		if r.code != ExitRefused || !strings.Contains(r.stderr, "not enough free space") {
			t.Fatalf("%+v", r)
		}
		needed := fmt.Sprint(2 * ns.DatabaseBytes)
		if !strings.Contains(r.stderr, "free") || !strings.Contains(r.stderr, needed) || len(regexp.MustCompile(`\d+`).FindAllString(r.stderr, -1)) < 2 {
			t.Fatalf("refusal does not print both numbers (needed %s): %s", needed, r.stderr)
		}
		noValidFile(t)
	})

	t.Run("device fills during the backup", func(t *testing.T) {
		// Pass the check with room to spare, then take the room away while
		// the backup is held after creating its file: the agent must see
		// ENOSPC part-way.
		r := op.on(n, "backup")
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		h.wait(t, agent.HoldBackup)
		fill(t, dev, 0)
		h.let(agent.HoldBackup)
		st := decodeStatus(t, op.waitStatus(n, "backup-status"))
		if st.Message != "Backup failed" || !strings.Contains(st.Arguments.Error, "no space left on device") {
			t.Fatalf("status %+v, want Backup failed with a no-space error", st)
		}
		noValidFile(t)
		if err := os.Remove(filepath.Join(dev, "filler")); err != nil {
			t.Fatal(err)
		}
		if r := op.on(n, "backup"); r.code != 0 {
			t.Fatalf("backup after freeing space: %+v", r)
		}
		if st := decodeStatus(t, op.waitStatus(n, "backup-status")); st.Message != "Backup found" {
			t.Fatalf("backup after freeing space: %+v\n%s", st, n.log.String())
		}
		if r := op.on(n, "backup-retrieve"); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		if r := op.run("verify", filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")); r.code != 0 {
			t.Fatalf("verify after the device-full run: %+v", r)
		}
	})
}
