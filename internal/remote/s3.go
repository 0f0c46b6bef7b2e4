package remote

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	minPartSize     = 5 << 20
	defaultPartSize = 16 << 20
	// maxParts is S3's limit; the part size grows for files above
	// maxParts*partSize.
	maxParts = 10000
)

// S3 is a Store in an S3-compatible bucket.
type S3 struct {
	core     minio.Core
	bucket   string
	prefix   string
	location string
	partSize int64
	// lockDays and lockMode: Object Lock retention of every new object.
	lockDays int
	lockMode minio.RetentionMode
}

// OpenS3 prepares a client for the config (it does not connect).
func OpenS3(c Config, secret Secret) (*S3, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(c.Endpoint)
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("remote: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("remote: ca_file %s holds no PEM certificate", c.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	cl, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKeyID, string(secret), ""),
		Secure:       secure,
		Transport:    tr,
		Region:       c.Region,
		BucketLookup: lookup,
		// The copier retries with its own backoff and reports each
		// failure; a few quick retries here ride over a dropped request.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	ps := c.PartSize
	if ps == 0 {
		ps = defaultPartSize
	}
	prefix := strings.Trim(c.Prefix, "/")
	loc := fmt.Sprintf("%s://%s/%s", u.Scheme, u.Host, c.Bucket)
	if prefix != "" {
		loc += "/" + prefix
	}
	s := &S3{core: minio.Core{Client: cl}, bucket: c.Bucket, prefix: prefix, location: loc, partSize: ps, lockDays: c.ObjectLockDays}
	s.lockMode = minio.Governance
	if strings.EqualFold(c.ObjectLockMode, "COMPLIANCE") {
		s.lockMode = minio.Compliance
	}
	return s, nil
}

// putOptions of a new object: with Object Lock configured, the object is
// immutable (not deletable, not overwritable) until now + lockDays.
func (s *S3) putOptions() minio.PutObjectOptions {
	o := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if s.lockDays > 0 {
		o.Mode = s.lockMode
		o.RetainUntilDate = time.Now().UTC().Add(time.Duration(s.lockDays) * 24 * time.Hour)
	}
	return o
}

// LockedUntil is when an object put now stays immutable until (zero
// without Object Lock).
func (s *S3) LockedUntil() time.Time {
	if s.lockDays <= 0 {
		return time.Time{}
	}
	return time.Now().UTC().Add(time.Duration(s.lockDays) * 24 * time.Hour)
}

// Location is scheme://host/bucket/prefix.
func (s *S3) Location() string { return s.location }

func (s *S3) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// classify turns a client error into one of the package's errors, keeping
// the store's code and message (which never hold the secret: S3 signs
// requests, it does not send the key).
func (s *S3) classify(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	what := s.location
	if name != "" {
		what += "/" + name
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NoSuchObject":
		return fmt.Errorf("%s %s: %w", op, what, ErrNotFound)
	case "NoSuchBucket":
		return fmt.Errorf("%s %s: %w: %q (create it, or fix \"bucket\")", op, what, ErrNoBucket, s.bucket)
	case "ObjectLocked", "InvalidRetentionPeriod":
		return fmt.Errorf("%s %s: %w (%s)", op, what, ErrLocked, resp.Message)
	}
	if resp.Code == "AccessDenied" && strings.Contains(strings.ToLower(resp.Message), "object lock") {
		return fmt.Errorf("%s %s: %w (%s)", op, what, ErrLocked, resp.Message)
	}
	switch resp.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidSecurity", "ExpiredToken",
		"XAdminUserNotFound", "InvalidClientTokenId":
		return fmt.Errorf("%s %s: %w (%s): check access_key_id and the secret access key", op, what, ErrAuth, resp.Code)
	case "":
		var ne net.Error
		var ue *url.Error
		if errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%s %s: %w: %v", op, what, ErrUnreachable, err)
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s %s: %w", op, what, ErrNotFound)
		}
		return fmt.Errorf("%s %s: %w", op, what, err)
	}
	if resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%s %s: %w (%s: %s)", op, what, ErrAuth, resp.Code, resp.Message)
	}
	return fmt.Errorf("%s %s: %s: %s", op, what, resp.Code, resp.Message)
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	if err := CheckName(name); err != nil {
		return Info{}, err
	}
	oi, err := s.core.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		err = s.classify("stat", name, err)
		// A HEAD answer has no body: a missing bucket looks like a
		// missing object until asked.
		if errors.Is(err, ErrNotFound) {
			if _, lerr := s.core.ListObjectsV2(s.bucket, s.key(name), "", "", "", 1); lerr != nil {
				err = s.classify("stat", name, lerr)
			}
		}
		return Info{}, err
	}
	return Info{Name: name, Size: oi.Size, ETag: strings.Trim(oi.ETag, `"`), Modified: oi.LastModified}, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	var o minio.GetObjectOptions
	if offset > 0 {
		if err := o.SetRange(offset, 0); err != nil {
			return nil, err
		}
	}
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, s.key(name), o)
	if err != nil {
		return nil, s.classify("get", name, err)
	}
	return &classifiedReader{rc: rc, s: s, name: name}, nil
}

type classifiedReader struct {
	rc   io.ReadCloser
	s    *S3
	name string
}

func (r *classifiedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.classify("read", r.name, err)
	}
	return n, err
}

func (r *classifiedReader) Close() error { return r.rc.Close() }

// List implements Store.
func (s *S3) List(ctx context.Context) ([]Info, error) {
	prefix := ""
	if s.prefix != "" {
		prefix = s.prefix + "/"
	}
	var out []Info
	for oi := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if oi.Err != nil {
			return nil, s.classify("list", "", oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, prefix)
		if CheckName(name) != nil {
			continue // a "folder" or another tool's object
		}
		out = append(out, Info{Name: name, Size: oi.Size, ETag: strings.Trim(oi.ETag, `"`), Modified: oi.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	err := s.core.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{})
	if err != nil {
		err = s.classify("delete", name, err)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
	}
	return err
}

// Put implements Store: one PUT below the part size, else a multipart
// upload that resumes the newest unfinished upload of the same key. Each
// part is hashed from r and its MD5 sent along (the store refuses a part
// whose bytes differ); a part already in the store is skipped only when
// its ETag is that MD5 and its size matches. The final object's ETag is
// checked against the one computed from the parts.
func (s *S3) Put(ctx context.Context, name string, r io.ReaderAt, size int64) (PutResult, error) {
	if err := CheckName(name); err != nil {
		return PutResult{}, err
	}
	if size < s.partSize {
		return s.putSingle(ctx, name, r, size)
	}
	return s.putMultipart(ctx, name, r, size)
}

func sectionMD5(r io.ReaderAt, off, n int64) ([]byte, error) {
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, off, n)); err != nil {
		return nil, fmt.Errorf("read the local file: %w", err)
	}
	return h.Sum(nil), nil
}

func (s *S3) putSingle(ctx context.Context, name string, r io.ReaderAt, size int64) (PutResult, error) {
	sum, err := sectionMD5(r, 0, size)
	if err != nil {
		return PutResult{}, err
	}
	ui, err := s.core.PutObject(ctx, s.bucket, s.key(name), io.NewSectionReader(r, 0, size), size,
		base64.StdEncoding.EncodeToString(sum), "", s.putOptions())
	if err != nil {
		return PutResult{}, s.classify("put", name, err)
	}
	want := hex.EncodeToString(sum)
	if got := strings.Trim(ui.ETag, `"`); got != want {
		return PutResult{}, fmt.Errorf("put %s/%s: %w: ETag %s, MD5 of the data %s", s.location, name, ErrMismatch, got, want)
	}
	return s.checkStored(ctx, name, size, want, PutResult{})
}

// checkStored asks the store again for what it holds.
func (s *S3) checkStored(ctx context.Context, name string, size int64, etag string, res PutResult) (PutResult, error) {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return PutResult{}, err
	}
	if info.Size != size || info.ETag != etag {
		return PutResult{}, fmt.Errorf("put %s/%s: %w: the store holds %d bytes (ETag %s), %d sent (ETag %s)",
			s.location, name, ErrMismatch, info.Size, info.ETag, size, etag)
	}
	res.Info = info
	return res, nil
}

func (s *S3) partSizeFor(size int64) int64 {
	ps := s.partSize
	for (size+ps-1)/ps > maxParts {
		ps *= 2
	}
	return ps
}

// findUpload returns the newest unfinished multipart upload of key.
func (s *S3) findUpload(ctx context.Context, key string) (string, error) {
	var best minio.ObjectMultipartInfo
	keyMarker, idMarker := "", ""
	for {
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, key, keyMarker, idMarker, "", 1000)
		if err != nil {
			return "", err
		}
		for _, u := range res.Uploads {
			if u.Key == key && (best.UploadID == "" || u.Initiated.After(best.Initiated)) {
				best = u
			}
		}
		if !res.IsTruncated {
			return best.UploadID, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

func (s *S3) listParts(ctx context.Context, key, id string) (map[int]minio.ObjectPart, error) {
	parts := map[int]minio.ObjectPart{}
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, key, id, marker, 1000)
		if err != nil {
			return nil, err
		}
		for _, p := range res.ObjectParts {
			parts[p.PartNumber] = p
		}
		if !res.IsTruncated {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
	}
}

func (s *S3) putMultipart(ctx context.Context, name string, r io.ReaderAt, size int64) (PutResult, error) {
	key := s.key(name)
	ps := s.partSizeFor(size)
	id, err := s.findUpload(ctx, key)
	if err != nil {
		return PutResult{}, s.classify("list uploads", name, err)
	}
	have := map[int]minio.ObjectPart{}
	if id != "" {
		if have, err = s.listParts(ctx, key, id); err != nil {
			// Gone between the two calls (completed or aborted): start over.
			id, have = "", map[int]minio.ObjectPart{}
		}
	}
	if id == "" {
		if id, err = s.core.NewMultipartUpload(ctx, s.bucket, key, s.putOptions()); err != nil {
			return PutResult{}, s.classify("start upload", name, err)
		}
	}
	var res PutResult
	n := int((size + ps - 1) / ps)
	done := make([]minio.CompletePart, 0, n)
	all := md5.New()
	for i := 1; i <= n; i++ {
		off := int64(i-1) * ps
		ln := min(ps, size-off)
		sum, err := sectionMD5(r, off, ln)
		if err != nil {
			return PutResult{}, err
		}
		all.Write(sum)
		want := hex.EncodeToString(sum)
		if p, ok := have[i]; ok && p.Size == ln && strings.Trim(p.ETag, `"`) == want {
			res.ResumedBytes += ln
			done = append(done, minio.CompletePart{PartNumber: i, ETag: p.ETag})
			continue
		}
		p, err := s.core.PutObjectPart(ctx, s.bucket, key, id, i, io.NewSectionReader(r, off, ln), ln,
			minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum),
				// The store checks the part against its MD5: no SHA-256 of the
				// payload on top (it would cost a second hash of every byte).
				DisableContentSha256: true})
		if err != nil {
			return PutResult{}, s.classify(fmt.Sprintf("put part %d/%d of", i, n), name, err)
		}
		if got := strings.Trim(p.ETag, `"`); got != want {
			return PutResult{}, fmt.Errorf("put part %d of %s/%s: %w: ETag %s, MD5 of the data %s", i, s.location, name, ErrMismatch, got, want)
		}
		done = append(done, minio.CompletePart{PartNumber: i, ETag: p.ETag})
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, id, done, minio.PutObjectOptions{}); err != nil {
		return PutResult{}, s.classify("complete upload", name, err)
	}
	res.Parts = n
	return s.checkStored(ctx, name, size, fmt.Sprintf("%s-%d", hex.EncodeToString(all.Sum(nil)), n), res)
}

var _ Store = (*S3)(nil)

// Sub is the store under <prefix>/dir/ in the same bucket, with the same
// client and settings (the continuous oplog archive's slices go under
// <prefix>/oplog/). List on s does not list what Sub holds: it lists the
// objects directly under the prefix only.
func (s *S3) Sub(dir string) Store {
	c := *s
	c.prefix = strings.Trim(s.prefix+"/"+strings.Trim(dir, "/"), "/")
	c.location = s.location + "/" + strings.Trim(dir, "/")
	return &c
}
