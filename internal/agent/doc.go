// Package agent owns a0agent's HTTPS API: the TLS identity of the node, the
// authentication of every call against the authorized CLI keys, the mapping
// of errors to HTTP statuses (one place: wrap), and the handlers that start
// jobs (backup, sensitive backup, restore) on the job runner.
//
// Passwords arrive in request bodies over TLS, live in memory only for the
// job that needs them, and never reach a log line or an error message.
package agent
