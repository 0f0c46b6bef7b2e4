// Package dbsize owns the database's data size as the agent reports it:
// read in the background, never on a request's path. dbStats on every
// database took 5-10 s on a 333 MB embedded database (34 s during a
// restore), which made node-status and a /metrics scrape wait that long
// (issue 28 point 4). A Cache serves the last value read with its age and
// starts a new read when the value is older than its refresh period.
package dbsize
