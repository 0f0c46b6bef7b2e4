// Package version owns the version string of a0's binaries, set at build
// time with -ldflags "-X github.com/a0backup/a0/internal/version.Version=...".
package version
