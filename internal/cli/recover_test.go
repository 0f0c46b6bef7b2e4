package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/api"
)

// giveRecoveryConsent gives, on the node, the consent that lets a sensitive
// restore put the node's identity files back (a0agent allow-recovery). A
// build without that gate restores them without consent: then there is
// nothing to give. Every consent of these tests goes through here.
func giveRecoveryConsent(t *testing.T, bin, home, state string) {
	t.Helper()
	code, out, errs := sh(t, bin, t.TempDir(), home, nil, "a0agent", "allow-recovery", "--state-dir", state)
	if code == 0 {
		return
	}
	if strings.Contains(errs, `unknown command "allow-recovery"`) {
		t.Log("a0agent has no allow-recovery: identity files restore without consent in this build")
		return
	}
	t.Fatalf("a0agent allow-recovery: exit %d\n%s%s", code, out, errs)
}

// dbSnapshot hashes every document of every user collection of the agent's
// embedded database, read through the URI the running agent publishes.
func embeddedDBSnapshot(t *testing.T, state string) map[string]string {
	t.Helper()
	uri, err := os.ReadFile(filepath.Join(state, "embedded.uri"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(strings.TrimSpace(string(uri))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, db := range dbs {
		if db == "admin" || db == "local" || db == "config" {
			continue
		}
		colls, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, coll := range colls {
			cur, err := c.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				t.Fatal(err)
			}
			h, n := sha256.New(), 0
			for cur.Next(ctx) {
				h.Write(cur.Current)
				n++
			}
			if err := cur.Err(); err != nil {
				t.Fatal(err)
			}
			cur.Close(ctx)
			out[db+"."+coll] = hex.EncodeToString(h.Sum(nil)) + " " + strconv.Itoa(n)
		}
	}
	return out
}

// TestRecoverLostNodeWithBinaries: a node seeded, backed up (both kinds),
// retrieved, killed and its state deleted; a fresh agent at the same
// address; forget-node once; recover. Then every command works without
// another forget-node, the data equals the original, the keys in use equal
// the original node's (taken into use without a restart), the role and the
// device are back. Then the same recovery onto another fresh node,
// interrupted between two steps by killing the agent, continues when run
// again.
func TestRecoverLostNodeWithBinaries(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(dev, 0o700)
	pwEnv := []string{"A0_BACKUP_PASSWORD=Passw0rd-data-recover", "A0_BACKUP_SENSITIVE_PASSWORD=Passw0rd-keys-recover"}
	run := func(wantCode int, name string, args ...string) string {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, pwEnv, name, args...)
		if code != wantCode {
			t.Fatalf("%s %v: exit %d, want %d\nstdout: %s\nstderr: %s", name, args, code, wantCode, out, errs)
		}
		return out + errs
	}
	nodeStatus := func(addr string) api.NodeStatus {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, pwEnv, "a0cli", "-t", addr, "node-status", "--json")
		if code != 0 {
			t.Fatalf("node-status: exit %d\n%s%s", code, out, errs)
		}
		var st api.NodeStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("node-status --json: %v: %s", err, out)
		}
		return st
	}
	secretFiles := []string{"secrets/data-encryption.key", "secrets/token-signing.pem", "secrets/tls.key", "secrets/tls.crt"}
	readSecrets := func(state string) map[string]string {
		out := map[string]string{}
		for _, f := range secretFiles {
			b, err := os.ReadFile(filepath.Join(state, f))
			if err != nil {
				t.Fatal(err)
			}
			out[f] = string(b)
		}
		return out
	}

	// The node comes back at this address twice (loseNode).
	agent := startAgentProcAt(t, bin, state, quietAddr(t))
	addr := agent.addr
	// No job of this test stops at a hold point.
	noHolds := func(p *proc) {
		p.holdRelease(t, "backup")
		p.holdRelease(t, "restore")
	}
	noHolds(agent)
	run(0, "a0agent", "seed", "--state-dir", state, "--users", "300")
	pub := strings.TrimSpace(run(0, "a0cli", "create-key"))
	pub = strings.SplitN(pub, "\n", 2)[0]
	run(0, "a0agent", "authorize", "--state-dir", state, "me", pub)
	run(0, "a0cli", "-t", addr, "set-as-backup", dev)
	run(0, "a0cli", "-t", addr, "backup", "--wait")
	run(0, "a0cli", "-t", addr, "backup-sensitive", "--wait")
	run(0, "a0cli", "-t", addr, "backup-retrieve")
	run(0, "a0cli", "-t", addr, "backup-sensitive-retrieve")
	orig := nodeStatus(addr)
	origData := embeddedDBSnapshot(t, state)
	origSecrets := readSecrets(state)
	if len(origData) == 0 || orig.Keys == nil {
		t.Fatalf("nothing to compare: %d collections, keys %+v", len(origData), orig.Keys)
	}

	// The node is lost: a fresh one comes up at the same address.
	loseNode := func() {
		t.Helper()
		// One Wait per process: startAgentProcAt's goroutine waits.
		agent.signal(syscall.SIGKILL)
		if err := os.RemoveAll(state); err != nil {
			t.Fatal(err)
		}
		agent = startAgentProcAt(t, bin, state, addr)
		noHolds(agent)
		run(0, "a0agent", "authorize", "--state-dir", state, "me", pub)
		giveRecoveryConsent(t, bin, home, state)
		if out := run(ExitAuth, "a0cli", "-t", addr, "ping"); !strings.Contains(out, "CHANGED") {
			t.Fatalf("fresh node's certificate not refused: %s", out)
		}
		run(0, "a0cli", "forget-node", addr)
	}
	recoverArgs := []string{"-t", addr, "recover", "--sensitive", "backup-sensitive-retrieve.tar.gz.enc", "--backup", "backup-retrieve.tar.gz.enc", "--yes"}
	checkRecovered := func(label string) {
		t.Helper()
		st := nodeStatus(addr)
		if *st.Keys != *orig.Keys {
			t.Errorf("%s: keys in use %+v, want the original node's %+v", label, *st.Keys, *orig.Keys)
		}
		if len(st.Roles) != 1 || st.Roles[0] != "backup" || st.Device != dev {
			t.Errorf("%s: roles %v device %q, want [backup] %q", label, st.Roles, st.Device, dev)
		}
		if got := readSecrets(state); !equalMaps(got, origSecrets) {
			t.Errorf("%s: the key files differ from the original node's", label)
		}
		if got := embeddedDBSnapshot(t, state); !equalMaps(got, origData) {
			t.Errorf("%s: data differs from the original:\n got %v\nwant %v", label, got, origData)
		}
	}

	loseNode()
	out := run(0, "a0cli", recoverArgs...)
	for _, want := range []string{"== check", "== sensitive", "== data", "== roles", "== node-status", "pinned " + orig.Keys.TLSCertificate, "roles:          [backup]", "recovered"} {
		if !strings.Contains(out, want) {
			t.Errorf("recover output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "restart the agent") {
		t.Errorf("recover asks for a restart:\n%s", out)
	}
	checkRecovered("after recover")
	// Every command works without another forget-node.
	run(0, "a0cli", "-t", addr, "ping")
	run(0, "a0cli", "-t", addr, "update-commands")
	run(0, "a0cli", "-t", addr, "restore-status")
	if out := run(0, "a0cli", "-t", addr, "backup-status"); !strings.Contains(out, "Backup found") {
		t.Fatalf("backup-status on the recovered device: %s", out)
	}
	run(0, "a0cli", "-t", addr, "backup-delete")
	run(0, "a0cli", "-t", addr, "backup", "--wait")
	run(0, "a0cli", "-t", addr, "backup-retrieve", "-o", "after.enc")
	run(0, "a0cli", "verify", "after.enc")
	run(0, "a0cli", "-t", addr, "backup-sensitive-status")

	// Again onto a fresh node, interrupted after the sensitive step: the
	// agent is killed there, the next step fails and says how to go on,
	// and the rerun continues once the agent is back.
	loseNode()
	cmd := exec.Command(filepath.Join(bin, "a0cli"), recoverArgs...)
	cmd.Dir = work
	cmd.Env = append(append(os.Environ(), "A0CLI_HOME="+home, recoverPauseEnv+"=sensitive"), pwEnv...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stderr.String(), "paused after step sensitive") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("recover did not pause:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	agent.signal(syscall.SIGKILL)
	io.WriteString(stdin, "\n")
	stdin.Close()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitConn {
		t.Fatalf("recover with the agent killed: %v, want exit %d\n%s%s", err, ExitConn, stdout.String(), stderr.String())
	}
	for _, want := range []string{`recover step "data" failed`, "run the same recover command again"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("interrupted recover's message lacks %q:\n%s", want, stderr.String())
		}
	}
	agent = startAgentProcAt(t, bin, state, addr)
	noHolds(agent)
	out = run(0, "a0cli", recoverArgs...)
	if !strings.Contains(out, "continuing (done: check, sensitive") || strings.Contains(out, "== sensitive") {
		t.Errorf("rerun did not continue after the sensitive step:\n%s", out)
	}
	checkRecovered("after the resumed recover")
	run(0, "a0cli", "-t", addr, "ping")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	ka := make([]string, 0, len(a))
	for k := range a {
		ka = append(ka, k)
	}
	sort.Strings(ka)
	for _, k := range ka {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
