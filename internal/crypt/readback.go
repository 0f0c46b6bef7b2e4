package crypt

import (
	"errors"
	"io"
)

// ErrNotWriter is returned by ReadBack for a writer NewWriter or
// NewSealedWriter did not make.
var ErrNotWriter = errors.New("crypt: read-back needs a writer made by NewWriter or NewSealedWriter")

// ReadBack returns a Reader over src, the file that w (made by NewWriter or
// NewSealedWriter and closed) wrote, read again from its first byte, with the keys w derived: a
// backup is read back and checked before it is called found, and that pass
// must not pay the deliberately slow key derivation (nor its 64 MiB) a
// second time. As with Reopen, the header read from src must equal the one
// w wrote byte for byte, and every record is authenticated as NewReader
// does: the read-back trusts nothing the writer remembers but its keys.
func ReadBack(w io.WriteCloser, src io.Reader) (*Reader, error) {
	wr, ok := w.(*writer)
	if !ok || wr.keys == nil {
		return nil, ErrNotWriter
	}
	if wr.v2 != nil {
		r := &Reader{hdr: wr.v2.info, v2: wr.v2, keys: wr.keys}
		return r.Reopen(src)
	}
	r := &Reader{hdr: wr.hdr, rawHdr: wr.rawHdr, keys: wr.keys}
	return r.Reopen(src)
}
