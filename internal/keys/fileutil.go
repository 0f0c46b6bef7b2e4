package keys

import (
	"fmt"
	"os"
)

// mkdirPrivate creates dir 0700 if missing; an existing directory is left as
// is because $A0CLI_HOME may point at a directory the user manages.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
