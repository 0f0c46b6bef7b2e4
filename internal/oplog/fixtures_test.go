package oplog

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oracle"
)

// readBSON reads a file of concatenated BSON documents (an oplog.bson).
func readBSON(t *testing.T, path string) []bson.Raw {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for len(b) > 0 {
		n := int(binary.LittleEndian.Uint32(b))
		d := bson.Raw(b[:n])
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
		b = b[n:]
	}
	return out
}

// txnCase is one case of mongo-tools' common/txn/testdata/oplog_entries.json.
type txnCase struct {
	Ops       []bson.Raw `bson:"ops"`
	NS        string     `bson:"ns"`
	Postimage []bson.Raw `bson:"postimage"`
}

func readTxnCases(t *testing.T) map[string]txnCase {
	t.Helper()
	b, err := os.ReadFile(oracle.Fixture(t, "txn", "oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]txnCase
	if err := bson.UnmarshalExtJSON(bytes.TrimSpace(b), false, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 12 {
		t.Fatalf("read %d cases", len(cases))
	}
	return cases
}

func parseAll(t *testing.T, raws []bson.Raw) []Entry {
	t.Helper()
	out := make([]Entry, len(raws))
	for i, r := range raws {
		e, err := Parse(r)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		out[i] = e
	}
	return out
}
