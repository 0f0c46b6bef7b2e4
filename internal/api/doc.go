// Package api owns the wire contract between a0cli and a0agent: paths,
// request and response bodies, and the error codes that one place on each
// side turns into HTTP statuses (agent) and back into typed errors (CLI).
package api
