// Package atomicfile owns the one way a0 replaces a small file durably: a
// temporary file beside it (created with the final mode, so a secret is
// never briefly readable), fsynced, renamed over the target, and the
// directory fsynced, so a reader or a crash sees the old or the new
// content, never a torn file. Large files (backups) stream through
// store.Part, which follows the same discipline.
package atomicfile
