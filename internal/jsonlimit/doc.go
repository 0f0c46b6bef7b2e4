// Package jsonlimit bounds the shape of untrusted JSON before a decoder
// builds it. A parser turns a few bytes into much more memory (each "[]"
// of a nested or wide array becomes a slice, an interface value and a
// frame of recursion: about 30 times the input), so a byte limit alone
// does not bound what decoding a crafted metadata.json or manifest costs.
// Check walks the bytes once, allocating nothing, and refuses a document
// deeper, or with more values or containers, than the caller allows.
package jsonlimit
