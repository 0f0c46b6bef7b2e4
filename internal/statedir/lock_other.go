//go:build !unix

package statedir

import (
	"errors"
	"os"
)

func lockFile(*os.File) error {
	return errors.New("the agent runs on unix systems only")
}
