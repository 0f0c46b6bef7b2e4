// Package cli owns a0cli: its commands (each an options struct and a
// runX(ctx, env, opts) function that tests call directly), the password
// sources, progress display, and the one place (exitCode) that maps error
// kinds to exit codes and advice.
package cli
