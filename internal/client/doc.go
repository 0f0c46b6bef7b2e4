// Package client owns a0cli's side of the HTTPS API: mutual TLS with the
// CLI key, pinning of the node's certificate (known_nodes, accept-new), and
// turning error responses back into typed errors (*api.Error) that the CLI
// maps to exit codes. Downloads resume with HTTP Range; uploads resume at
// the offset the node reports.
package client
