package oplog

import "go.mongodb.org/mongo-driver/v2/bson"

// reducedFields are the fields of an entry sent to applyOps, as
// mongorestore sends them (its db.Oplog): position, term, version, op, ns
// and the two documents. Everything else (ui: the restored collection has
// a new UUID; lsid, txnNumber, stmtId, prevOpTime: the restore is no
// session; needsRetryImage, preImageOpTime, postImageOpTime, rid, wall,
// fromMigrate, destinedRecipient...) stays out.
var reducedFields = []string{"ts", "t", "v", "op", "ns", "o", "o2"}

// Reduce returns the entry applyOps receives for e. o, when not nil,
// replaces e.O (collMod without its index part).
func Reduce(e Entry, o bson.Raw) bson.D {
	out := bson.D{}
	for _, k := range reducedFields {
		if e.inner && (k == "ts" || k == "t" || k == "v") {
			continue // an applyOps operation carries none of its own
		}
		if k == "o" && o != nil {
			out = append(out, bson.E{Key: "o", Value: o})
			continue
		}
		if k == "ns" {
			out = append(out, bson.E{Key: "ns", Value: e.NS})
			continue
		}
		v, err := e.Raw.LookupErr(k)
		if err != nil {
			continue
		}
		out = append(out, bson.E{Key: k, Value: v})
	}
	return out
}
