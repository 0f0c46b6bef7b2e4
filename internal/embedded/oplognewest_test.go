package embedded

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestParseOplogHead: the ts is read from the stored JSON's digits, exact
// past 2^63 (an SQL integer would turn it into a float), and an entry
// whose schema does not say timestamp is refused, not read as one.
func TestParseOplogHead(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     OplogHead
		err      bool
	}{
		{"today", `["timestamp",7716223783115161601,"app.c"]`, OplogHead{TS: bson.Timestamp{T: 1796573350, I: 1}, NS: "app.c"}, false},
		{"past 2^63", `["timestamp",18446744073709551615,"a.b"]`, OplogHead{TS: bson.Timestamp{T: 1<<32 - 1, I: 1<<32 - 1}, NS: "a.b"}, false},
		{"not a timestamp", `["long",12,"a.b"]`, OplogHead{}, true},
		{"no ts", `["timestamp",null,"a.b"]`, OplogHead{}, true},
		{"not an array", `{}`, OplogHead{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOplogHead(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseOplogHead(%s) = %+v, %v", tc.in, got, err)
			}
		})
	}
}
