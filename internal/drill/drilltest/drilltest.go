// Package drilltest is for tests only: it makes the altered backups a
// restore test must catch (issue 29's proof), by repacking a backup's
// plaintext archive with one document's bytes changed while its manifest
// keeps the digest the dump computed; and (Inject) the intact backups of
// documents a real mongod stores but the embedded server cannot hold,
// which no dump from the embedded server can make.
package drilltest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/manifest"
)

// Alter repacks the tar.gz archive tgz entry by entry (package archive,
// as the dump packs), replacing the first occurrence of old by replacement
// (of the same length, so that the manifest's counts and sizes still
// hold) in the first .bson entry that holds it (oplog.bson excluded). It
// returns the new archive and the entry changed.
func Alter(tgz []byte, old, replacement []byte) ([]byte, string, error) {
	if len(old) != len(replacement) || len(old) == 0 {
		return nil, "", errors.New("drilltest: old and replacement must be non-empty and of one length")
	}
	ar, err := archive.NewReader(bytes.NewReader(tgz), archive.Limits{})
	if err != nil {
		return nil, "", err
	}
	defer ar.Close()
	var out bytes.Buffer
	aw, err := archive.NewWriter(&out, archive.Options{})
	if err != nil {
		return nil, "", err
	}
	changed := ""
	for {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		data, err := io.ReadAll(ar)
		if err != nil {
			return nil, "", err
		}
		if changed == "" && strings.HasSuffix(e.Name, ".bson") && e.Name != "oplog.bson" {
			if i := bytes.Index(data, old); i >= 0 {
				copy(data[i:], replacement)
				changed = e.Name
			}
		}
		if err := aw.AddBytes(e.Name, e.Mode, e.ModTime, data); err != nil {
			return nil, "", err
		}
	}
	if err := aw.Close(); err != nil {
		return nil, "", err
	}
	if changed == "" {
		return nil, "", fmt.Errorf("drilltest: no collection's documents hold %q", old)
	}
	return out.Bytes(), changed, nil
}

// Inject repacks the tar.gz archive tgz with docs appended to the data
// entry named entry ("db/coll.bson") and the manifest's record of the
// collection ns brought along: its documents, bytes and content digest
// count the new documents as if the dump had read them. The result is an
// intact backup (nothing differs from what the "dump" wrote) holding
// documents that a real mongod stores (field names with '.' or '$',
// Decimal128...) and the embedded server, which made the original dump,
// refuses.
func Inject(tgz []byte, entry, ns string, docs ...[]byte) ([]byte, error) {
	ar, err := archive.NewReader(bytes.NewReader(tgz), archive.Limits{})
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	var out bytes.Buffer
	aw, err := archive.NewWriter(&out, archive.Options{})
	if err != nil {
		return nil, err
	}
	var added int64
	for _, d := range docs {
		added += int64(len(d))
	}
	injected, counted := false, false
	for {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(ar)
		if err != nil {
			return nil, err
		}
		switch e.Name {
		case entry:
			data = append(data, bytes.Join(docs, nil)...)
			injected = true
		case manifest.Name:
			m, err := manifest.Decode(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			for i := range m.Collections {
				c := &m.Collections[i]
				if c.Namespace() != ns {
					continue
				}
				sum, err := manifest.ParseDigest(c.Digest)
				if err != nil {
					return nil, fmt.Errorf("drilltest: %s: %w", ns, err)
				}
				for _, d := range docs {
					sum.Add(d)
				}
				c.Digest, c.Documents, c.Bytes = sum.String(), c.Documents+int64(len(docs)), c.Bytes+added
				counted = true
			}
			if data, err = m.Encode(); err != nil {
				return nil, err
			}
		}
		if err := aw.AddBytes(e.Name, e.Mode, e.ModTime, data); err != nil {
			return nil, err
		}
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	if !injected || !counted {
		return nil, fmt.Errorf("drilltest: no entry %s or no manifest record of %s", entry, ns)
	}
	return out.Bytes(), nil
}
