package api

// Point-in-time restore (issue 26): the routes, requests and replies of
// restore --to-time/--to-ts and oplog-find.

// Paths of the point-in-time routes.
const (
	// PathPITRPlan (POST PITRPlanRequest) answers the base and the slices
	// a restore to a point in time reads, with their crypt headers: the
	// CLI unwraps each file key with its identity and sends the keys in
	// RestoreRequest.SliceKeys.
	PathPITRPlan = "/v1/pitr/plan"
	// PathOplogFind (POST OplogFindRequest) lists the destructive
	// operations of the archive and the live oplog's tail.
	PathOplogFind = "/v1/oplog/find"
)

// CodeNotRestorable: no base and window of the oplog archive serve the
// point in time asked for (exit 4).
const CodeNotRestorable Code = "not_restorable"

// OplogTS is an oplog position: seconds and increment.
type OplogTS struct {
	T uint32 `json:"t"`
	I uint32 `json:"i"`
}

// OplogWindow is a stretch the archive holds without a gap.
type OplogWindow struct {
	From OplogTS `json:"from"`
	To   OplogTS `json:"to"`
}

// PITRPlanRequest is the body of POST /v1/pitr/plan.
type PITRPlanRequest struct {
	// ToTS is the last position to replay (inclusive).
	ToTS OplogTS `json:"to_ts"`
	// Remote plans from the remote store alone (restore --to-time
	// --remote): a remote copy as the base, the store's slices.
	Remote bool `json:"remote,omitempty"`
}

// PITRSlice is one slice a point-in-time restore reads.
type PITRSlice struct {
	Name string `json:"name"`
	// Header is the slice's crypt header (format v2), which the CLI
	// unwraps the slice's file key from.
	Header []byte `json:"header"`
}

// PITRPlan is the answer to POST /v1/pitr/plan.
type PITRPlan struct {
	// Base is the stored backup's name, BaseHeader its crypt header.
	Base         string  `json:"base"`
	BaseHeader   []byte  `json:"base_header"`
	ConsistentTo OplogTS `json:"consistent_to"`
	// ToTS is the point planned: the request's, or for a whole second
	// (I 4294967295, restore --to-time) the window's last entry when the
	// window ends inside that second (Note says so).
	ToTS   OplogTS     `json:"to_ts"`
	Window OplogWindow `json:"window"`
	Slices []PITRSlice `json:"slices"`
	// Remote: the base is the remote copy Base and the slices the
	// store's; the restore request names it (RestoreRequest.Remote).
	// Note says why the store was chosen without --remote.
	Remote bool   `json:"remote,omitempty"`
	Note   string `json:"note,omitempty"`
}

// OplogFindRequest is the body of POST /v1/oplog/find: the filter of
// pitr.Find, and the file keys of the archive's slices in the range (the
// CLI unwraps them from the headers PathPITRPlan... see cli/oplogfind.go).
type OplogFindRequest struct {
	// Since and Until bound the entries' wall time (RFC 3339, optional).
	Since string   `json:"since,omitempty"`
	Until string   `json:"until,omitempty"`
	NS    string   `json:"ns,omitempty"`
	Ops   []string `json:"ops,omitempty"`
	// SliceKeys open the archive's slices by name.
	SliceKeys map[string][]byte `json:"slice_keys,omitempty"`
}

// PathPITRSlices (POST PITRSlicesRequest) lists the archive's slices in a
// time range with their crypt headers, for oplog-find's keys.
const PathPITRSlices = "/v1/pitr/slices"

// PITRSlicesRequest is the body of POST /v1/pitr/slices.
type PITRSlicesRequest struct {
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
}

// PITRSlices is the answer to POST /v1/pitr/slices.
type PITRSlices struct {
	Slices []PITRSlice `json:"slices"`
}

// OplogFinding is one destructive operation, or a burst of deletes
// (pitr.Finding).
type OplogFinding struct {
	Op     string  `json:"op"`
	NS     string  `json:"ns"`
	To     string  `json:"to,omitempty"`
	Time   string  `json:"time"`
	TS     OplogTS `json:"ts"`
	LastTS OplogTS `json:"last_ts"`
	Count  int64   `json:"count"`
	// ToTS is the restore --to-ts that restores to just before it.
	ToTS OplogTS `json:"to_ts"`
	// Source is "archive" or "oplog" (the live oplog's tail, newer than
	// the archive).
	Source string `json:"source"`
}

// OplogFindReply is the answer to POST /v1/oplog/find.
type OplogFindReply struct {
	Findings []OplogFinding `json:"findings"`
	// Slices and Entries count what was read from the archive; Live the
	// entries of the live oplog newer than it.
	Slices  int   `json:"slices"`
	Entries int64 `json:"entries"`
	Live    int64 `json:"live"`
	// Windows are the archive's (by its names and gaps).
	Windows []OplogWindow `json:"windows"`
}
