// Package cmdline owns the command-line conventions a0cli and a0agent share
// on top of cobra and pflag: the Go flag forms scripts were written with
// (-password P, -wait, --o FILE), rewritten into pflag's before it parses,
// and the "did you mean" of a mistyped command or flag.
package cmdline
