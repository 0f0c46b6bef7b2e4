package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"
)

// DigestPrefix starts every Collection.Digest: the algorithm, so that a
// later one can be told apart.
const DigestPrefix = "sha256-sum:"

// Digest is a collection's content digest: the sum modulo 2^256 of the
// SHA-256 of every document's raw BSON bytes (a multiset hash, "AdHash").
//
// Why this one: a restore writes and a server returns a collection's
// documents in an order nobody promises (parallel inserts, FerretDB's
// storage order), so the digest must not depend on the order; it must be
// computed while the dump streams the documents (one pass, constant memory,
// no sort, no second read); and two copies of the same document must count
// twice (a lost or doubled document must change it), which rules out XOR,
// where pairs cancel. A sum of SHA-256 values is all three. It is not a
// defence against a forger (sums of hashes can be searched for collisions
// far faster than SHA-256 itself): the manifest holding it is inside the
// authenticated archive, and its job is to catch a document the restore
// path lost, doubled or changed, together with the count.
//
// The zero value is the digest of no documents. Not safe for concurrent use.
type Digest struct {
	// sum is the 256-bit sum, as four big-endian 64-bit words (sum[0]
	// most significant), so that String is the big-endian number.
	sum [4]uint64
}

// Add counts one document's raw bytes.
func (d *Digest) Add(doc []byte) {
	h := sha256.Sum256(doc)
	var carry uint64
	for i := 3; i >= 0; i-- {
		d.sum[i], carry = bits.Add64(d.sum[i], binary.BigEndian.Uint64(h[i*8:]), carry)
	}
	// The carry out of the top word is dropped: modulo 2^256.
}

// String is the digest as a manifest holds it: DigestPrefix and 64 hex
// digits.
func (d Digest) String() string {
	var b [32]byte
	for i, w := range d.sum {
		binary.BigEndian.PutUint64(b[i*8:], w)
	}
	return DigestPrefix + hex.EncodeToString(b[:])
}

// ParseDigest reads a digest String wrote. A digest of another algorithm
// is an error: a reader must not compare what it cannot compute.
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, DigestPrefix)
	b, err := hex.DecodeString(hexPart)
	if !ok || err != nil || len(b) != 32 {
		return Digest{}, fmt.Errorf("manifest: digest %q is not %s and 64 hex digits", s, DigestPrefix)
	}
	var d Digest
	for i := range d.sum {
		d.sum[i] = binary.BigEndian.Uint64(b[i*8:])
	}
	return d, nil
}
