package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/store"
)

// TestSecurityParallelPasswordRequests (issue 25 point 11): 40 parallel
// sensitive-backup requests with a password, while a backup protected by
// the same password is stored (so that each would check it, one argon2id
// KDF of 64 MiB each), get their busy answer from the one-job rule before
// any KDF: one is accepted, the others are busy, the requests ran a few
// KDFs and never more than crypt.MaxKDFsAtOnce at once.
func TestSecurityParallelPasswordRequests(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	cert := goodCert(t, ops)
	c := httpClient(&cert)
	dev := t.TempDir()
	if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`"}`), nil); r.status != 200 {
		t.Fatalf("set-as-backup: %d %s", r.status, r.body)
	}
	// A stored backup under the password, so that every request's
	// same-password check has a file to open.
	const password = "correct horse battery"
	folder := filepath.Join(dev, store.FolderName)
	name := "01-02-2026-03-04-05.tar.gz"
	var enc bytes.Buffer
	w, err := crypt.NewWriter(&enc, []byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("not a tar, never read past the header"))
	w.Close()
	if err := os.WriteFile(filepath.Join(folder, name+".enc"), enc.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(store.Meta{Name: name, File: name + ".enc", Format: FormatName, Size: int64(enc.Len())})
	if err := os.WriteFile(filepath.Join(folder, "backup.json"), meta, 0o600); err != nil {
		t.Fatal(err)
	}

	const requests = 40
	before := crypt.KDFCounts()
	var wg sync.WaitGroup
	replies := make([]reply, requests)
	start := make(chan struct{})
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = do(c, "POST", n.url(api.PathSlot+api.SlotSensitive), strings.NewReader(`{"password":"`+password+`"}`), nil)
		}()
	}
	close(start)
	wg.Wait()
	during := crypt.KDFCounts()
	accepted := 0
	for _, r := range replies {
		switch {
		case r.status == http.StatusAccepted:
			accepted++
		case r.status == http.StatusConflict && apiError(t, r).Code == api.CodeJobRunning:
		default:
			t.Errorf("request: %d %s (%v)", r.status, r.body, r.err)
		}
	}
	if accepted != 1 {
		t.Errorf("%d of %d parallel requests accepted, want 1 (the others busy)", accepted, requests)
	}
	// The accepted request's check and its job's writer: a few KDFs, not
	// one per request.
	if ran := during.Total - before.Total; ran > 4 {
		t.Errorf("%d parallel requests ran %d KDFs before answering; the busy ones must run none", requests, ran)
	}
	if err := n.a.jobs.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after := crypt.KDFCounts(); after.Peak > crypt.MaxKDFsAtOnce {
		t.Errorf("%d KDFs ran at once, the bound is %d", after.Peak, crypt.MaxKDFsAtOnce)
	}
}
