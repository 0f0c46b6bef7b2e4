// Package crypt owns the encrypted file format of a0 backups: a fixed header
// (KDF parameters, salt, IV, password check, header MAC, checksum) followed by
// records of AES-256-CTR ciphertext, each authenticated by HMAC-SHA256 bound
// to its index and to whether it is the last one. docs/format.md describes the
// bytes.
//
// The reader never releases plaintext that has not been authenticated, and it
// reports a wrong password (ErrWrongPassword) before producing any output. It
// cannot, however, take back records it has already released when a later one
// fails: callers about to do something destructive (restore) authenticate the
// whole file with Verify first.
//
// The package also reads, but never writes, the unauthenticated files of the
// original appliance (NewLegacyReader).
package crypt
