package remote_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/remote/remotetest"
	"github.com/a0backup/a0/internal/s3gw"
)

// TestS3Suite runs the shared suite (remotetest) against versitygw, over
// HTTP and over TLS with the CA in ca_file; each subtest gets its own
// prefix. It is an external test, as any other Store's would be: the suite
// imports remote, so remote's own tests cannot import it.
func TestS3Suite(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			gw := s3gw.Start(t, s3gw.Options{TLS: tlsOn, Buckets: []string{"a0-backups"}})
			var n atomic.Int64
			remotetest.Suite{
				NewStore: func(t *testing.T) remote.Store {
					s, err := remote.OpenS3(remote.Config{Endpoint: gw.Endpoint, Bucket: "a0-backups",
						Prefix: fmt.Sprintf("node/%d", n.Add(1)), AccessKeyID: gw.AccessKey, CAFile: gw.CAFile,
						PathStyle: true, PartSize: remote.MinPartSize, Region: "us-east-1"}, remote.Secret(gw.SecretKey))
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				PartSize: remote.MinPartSize,
			}.Run(t)
		})
	}
}
