package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
)

// TestConcurrentUploadRefused: while one client appends to an upload, a
// second client writing the same upload is refused instead of writing at
// the same offset; once the first is done the second can go on.
func TestConcurrentUploadRefused(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	k := newKey(t)
	n.authorize(t, "ops", k)
	cert := goodCert(t, k)
	c := httpClient(&cert)
	url := n.url(api.PathUploads + "same-id")

	pr, pw := io.Pipe()
	first := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, url, pr)
		req.Header.Set(api.HeaderOffset, "0")
		resp, err := c.Do(req)
		if err != nil {
			first <- reply{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- reply{status: resp.StatusCode, body: b}
	}()
	pw.Write([]byte("first bytes "))
	// Let the first request reach the handler and take the upload.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.a.uploadsMu.Lock()
		busy := len(n.a.uploading) == 1
		n.a.uploadsMu.Unlock()
		if busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first upload never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	second := do(httpClient(&cert), http.MethodPut, url, strings.NewReader("second"), map[string]string{api.HeaderOffset: "0"})
	if second.status != http.StatusConflict || apiError(t, second).Code != api.CodeJobRunning {
		t.Fatalf("second writer: %d %s", second.status, second.body)
	}
	pw.Write([]byte("and the rest"))
	pw.Close()
	if r := <-first; r.err != nil || r.status != http.StatusOK {
		t.Fatalf("first writer: %+v", r)
	}
	third := do(c, http.MethodPut, url, strings.NewReader("!"), map[string]string{api.HeaderOffset: "24"})
	if third.status != http.StatusOK {
		t.Fatalf("after the first finished: %d %s", third.status, third.body)
	}
}
