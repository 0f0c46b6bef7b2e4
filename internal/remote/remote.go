package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store is a place off the node where backup copies live: a flat namespace
// of objects (a bucket and a prefix for S3). Names are plain file names
// ("02-12-2026-00-10-00.tar.gz.enc"): no slashes, no leading dot.
//
// Implementations must be safe for concurrent use and must never put a
// credential in an error or in Location.
type Store interface {
	// Location says where the store is (endpoint, bucket, prefix), for
	// people: never a credential.
	Location() string
	// Put stores size bytes of r as name, replacing any object of that
	// name. Large objects go in parts read straight from r (memory stays
	// bounded by the part size); a Put cut short (network, crash) and
	// called again resumes where the store says it stopped. Put returns
	// only once the store's answer (size and hash) matches what was read
	// from r.
	Put(ctx context.Context, name string, r io.ReaderAt, size int64) (PutResult, error)
	// Get streams the object from offset. The caller closes it.
	Get(ctx context.Context, name string, offset int64) (io.ReadCloser, error)
	// Stat describes one object, or returns an error matching ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// List describes every object directly under the store's prefix.
	List(ctx context.Context) ([]Info, error)
	// Delete removes an object; deleting a missing object is no error.
	Delete(ctx context.Context, name string) error
}

// Info describes an object.
type Info struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	ETag     string    `json:"etag,omitempty"`
	Modified time.Time `json:"modified"`
}

// PutResult is what a Put did.
type PutResult struct {
	Info
	// Parts is the number of parts of a multipart upload (0: one PUT).
	Parts int `json:"parts,omitempty"`
	// ResumedBytes were already in the store from an earlier, interrupted
	// Put and were not sent again.
	ResumedBytes int64 `json:"resumed_bytes,omitempty"`
}

// Errors a Store returns, matched with errors.Is.
var (
	// ErrNotFound: no object of that name.
	ErrNotFound = errors.New("not found in the remote store")
	// ErrAuth: the store refused the credentials.
	ErrAuth = errors.New("the remote store refused the credentials")
	// ErrNoBucket: the bucket does not exist.
	ErrNoBucket = errors.New("the remote bucket does not exist")
	// ErrUnreachable: the store did not answer (network, DNS, TLS).
	ErrUnreachable = errors.New("the remote store is unreachable")
	// ErrMismatch: the store's answer does not match what was sent.
	ErrMismatch = errors.New("the remote store's answer does not match the data sent")
	// ErrLocked: Object Lock keeps the object until its retention date.
	ErrLocked = errors.New("the object is locked (Object Lock retention)")
	// ErrBadName: a name that is not a plain file name.
	ErrBadName = errors.New("invalid remote object name")
)

// CheckName refuses names that could reach outside the prefix.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") ||
		strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}
