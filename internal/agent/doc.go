// Package agent owns a0agent's HTTPS API: the TLS identity of the node, the
// authentication of every call against the authorized CLI keys, the routes
// and their handlers, uploads, and the error funnel (http.go: the one map of
// the domain's failures, *ops.Error and the store's and runner's errors, to
// API codes and HTTP statuses, for an answer and for a job's record).
//
// The jobs (backup, sensitive backup, restore, sensitive restore) and the
// services beside them (the remote copy, the schedule) are package ops's;
// jobs.go is the one place that gives them their dependencies and starts
// and stops the services with the agent. The bodies that read or write the
// database through dump and restore arrive as a value, Config.Jobs
// (ops.Runners, normally dbjob.Runners()), from the composition root that
// builds the agent (agentcmd, the benchmarks, the tests): this package
// imports neither dump nor restore, and New refuses a Config without them.
//
// Passwords arrive in request bodies over TLS, live in memory only for the
// job that needs them, and never reach a log line or an error message.
package agent
