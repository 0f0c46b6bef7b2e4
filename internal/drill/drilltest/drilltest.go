// Package drilltest is for tests only: it makes the altered backups a
// restore test must catch (issue 29's proof), by repacking a backup's
// plaintext archive with one document's bytes changed while its manifest
// keeps the digest the dump computed.
package drilltest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/a0backup/a0/internal/archive"
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
