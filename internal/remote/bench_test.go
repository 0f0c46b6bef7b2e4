package remote

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/a0backup/a0/internal/s3gw"
)

// benchFile writes n random bytes (incompressible, as an encrypted backup
// is) to a file and opens it.
func benchFile(b *testing.B, n int64) *os.File {
	b.Helper()
	p := filepath.Join(b.TempDir(), "backup.enc")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		b.Fatal(err)
	}
	f.Close()
	f, err = os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

const benchSize = 256 << 20

// BenchmarkS3Copy is the agent's copy of a finished backup: a 256 MiB file
// on disk put to versitygw (posix backend) on loopback in 16 MiB parts, each
// hashed, sent with its MD5 and checked, then the object stat'ed.
func BenchmarkS3Copy(b *testing.B) {
	gw := s3gw.Start(b, s3gw.Options{Buckets: []string{"a0-bench"}})
	st, err := OpenS3(Config{Endpoint: gw.Endpoint, Bucket: "a0-bench", AccessKeyID: gw.AccessKey, PathStyle: true}, Secret(gw.SecretKey))
	if err != nil {
		b.Fatal(err)
	}
	f := benchFile(b, benchSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.Put(context.Background(), "bench.enc", f, benchSize); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st.Delete(context.Background(), "bench.enc")
		b.StartTimer()
	}
}

// BenchmarkS3Fetch is the download a restore --remote makes before it
// authenticates the file: the object streamed from versitygw to a file.
func BenchmarkS3Fetch(b *testing.B) {
	gw := s3gw.Start(b, s3gw.Options{Buckets: []string{"a0-bench"}})
	st, err := OpenS3(Config{Endpoint: gw.Endpoint, Bucket: "a0-bench", AccessKeyID: gw.AccessKey, PathStyle: true}, Secret(gw.SecretKey))
	if err != nil {
		b.Fatal(err)
	}
	f := benchFile(b, benchSize)
	if _, err := st.Put(context.Background(), "bench.enc", f, benchSize); err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), "fetched")
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rc, err := st.Get(context.Background(), "bench.enc", 0)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := os.Create(dst)
		if _, err := io.CopyBuffer(out, rc, make([]byte, 1<<20)); err != nil {
			b.Fatal(err)
		}
		out.Sync()
		out.Close()
		rc.Close()
	}
}
