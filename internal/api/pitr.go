package api

import "time"

// PathPITRStatus is pitr-status's route.
const PathPITRStatus = "/v1/pitr-status"

// pitr-status messages.
const (
	MessagePITRRunning       = "PITR running"
	MessagePITRStopped       = "PITR stopped"
	MessagePITRNotConfigured = "PITR not configured"
)

// OplogPos is an oplog position: its ts (T seconds, I increment) and, when
// known, its wall time.
type OplogPos struct {
	T    uint32    `json:"t"`
	I    uint32    `json:"i"`
	Wall time.Time `json:"wall,omitempty"`
}

// PITRStatus is the "arguments" of GET /v1/pitr-status (a Message whose
// message is MessagePITRRunning, MessagePITRStopped or
// MessagePITRNotConfigured, the last without arguments).
type PITRStatus struct {
	// Since is the oldest archived entry's time, Newest the newest's (zero
	// when nothing is archived yet).
	Since  *time.Time `json:"since"`
	Newest *time.Time `json:"newest"`
	// LagSeconds is how far the newest archived entry trails the server's
	// newest write (0 when caught up; -1 when unknown).
	LagSeconds float64 `json:"lag_seconds"`
	Slices     int     `json:"slices"`
	Bytes      int64   `json:"bytes"`
	// Windows are what a restore to a time can serve: each a stretch of
	// the archive without a gap that starts at a base.
	Windows []PITRWindow `json:"windows"`
	Gaps    []PITRGap    `json:"gaps"`
	// Dir is the archive's directory on the node; Error the archiver's
	// last failure (cleared by the next slice).
	Dir   string `json:"dir,omitempty"`
	Error string `json:"error,omitempty"`
	// Remote is the copy of the slices to the remote store, when there is
	// one.
	Remote *PITRRemote `json:"remote,omitempty"`
}

// PITRRemote is pitr-status's "remote": where the slices go, how many
// wait on the device, and the last failure.
type PITRRemote struct {
	Location string `json:"location"`
	Pending  int    `json:"pending"`
	Error    string `json:"error,omitempty"`
}

// PITRWindow is a restorable window: from its base's consistent_to to the
// newest entry archived without a gap after it.
type PITRWindow struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Base is the name of the backup it starts from; FromTS and ToTS the
	// exact oplog positions (restore --to-ts).
	Base   string   `json:"base"`
	FromTS OplogPos `json:"from_ts"`
	ToTS   OplogPos `json:"to_ts"`
	// Remote: the base is a remote copy and the window the remote
	// store's archive (<prefix>/oplog/): restore --to-time serves it from
	// the store.
	Remote bool `json:"remote,omitempty"`
}

// PITRGap is a stretch of the oplog the archive lacks, and why.
type PITRGap struct {
	From   time.Time  `json:"from"`
	To     *time.Time `json:"to"`
	Reason string     `json:"reason"`
}

// PITRPrune is what a prune did to the archive's slices: those ending
// before the oldest kept base's consistent_to (Before) are removed from
// the device and from the store (the store's own oldest base there).
type PITRPrune struct {
	Before        *OplogPos `json:"before,omitempty"`
	Removed       []string  `json:"removed"`
	RemovedRemote []string  `json:"removed_remote"`
}
