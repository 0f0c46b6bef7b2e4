// Package logring owns the agent's recent log in memory: a slog.Handler
// that passes every record on to the agent's own handler and keeps a copy
// in a bounded ring (the last MaxRecords records or MaxBytes of them,
// whichever is less), which `a0cli logs` reads, so that an operator sees
// why a job failed without a shell on the node (issue 28 point 14).
//
// The ring holds exactly what the agent logs, which never holds a
// password, key or token; nothing is written to disk.
package logring
