// Package retention decides which backups a policy keeps, as restic's
// `forget` does: the newest N, and the newest of each of the last N days,
// ISO weeks and months that hold a backup. It is pure (no I/O): the agent
// lists the remote store, asks Apply, and deletes what it returns as
// removed. The newest verified backup is always kept.
package retention
