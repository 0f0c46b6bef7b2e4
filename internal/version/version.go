// Package version owns the version string of a0's binaries, set at build
// time with -ldflags "-X github.com/a0backup/a0/internal/version.Version=...".
package version

// Version of a0cli and a0agent.
var Version = "0.1.0-dev"
