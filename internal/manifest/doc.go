// Package manifest owns manifest.json, a0's own description of a backup,
// stored as the last entry of every archive. Restore, verify and the backup
// status read it; the dump and the sensitive backup write it.
//
// The format is versioned: readers refuse a FormatVersion they do not know
// rather than guess.
package manifest
