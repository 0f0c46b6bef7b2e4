// Package backupfile owns opening an a0 backup file for reading: its
// header read and unlocked (a password, identities or a version 2 file
// key, as crypt.Unlock says), a first pass that authenticates every byte
// while the caller's check (restore.Plan, verify's walk, the store's
// read-back) reads the plaintext, and further passes over the same open
// file with the keys the first pass derived, so the deliberately slow KDF
// runs once per file.
//
// The agent's restore, a0cli's verify and decrypt, the benchmarks and the
// store's read-back of a finished backup all open files here. The bytes
// and the cryptography are crypt's: every error that comes from the file
// is crypt's own, unwrapped (ErrWrongPassword, ErrWrongKey, ErrNoPassword,
// ErrNotA0, ErrUnsupported, *CorruptError), so callers keep matching them
// with errors.Is and errors.As and their exit codes and API codes do not
// change. The original appliance's unauthenticated files are not a0 files
// and are not opened here (crypt.NewLegacyReader).
package backupfile
