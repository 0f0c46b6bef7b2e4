//go:build !unix

package drill

import "os"

// lockFile cannot tell a live drill from a dead one here: report it held,
// so that CleanStale removes nothing it cannot prove stale.
func lockFile(*os.File) error { return errHeld }
