package bench

import (
	"context"
	"os/exec"
	"time"
)

// The stock tools' side of the live and external comparisons: the pipes an
// operator would run, timed as a whole (bash, pipefail).
const (
	stockBackupPipe  = `"$1" --uri "$2" --archive --gzip --quiet | openssl enc -aes-256-ctr -pbkdf2 -iter 600000 -pass env:` + PasswordEnv + ` > "$3" && sync "$3"`
	stockRestorePipe = `openssl enc -d -aes-256-ctr -pbkdf2 -iter 600000 -pass env:` + PasswordEnv + ` < "$3" | "$1" --uri "$2" --archive --gzip --noIndexRestore --quiet`
)

// runStock runs pipe with tool, uri and file as $1, $2, $3 under env, and
// returns its wall time in seconds and its combined output.
func runStock(ctx context.Context, env []string, pipe, tool, uri, file string) (float64, []byte, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", pipe, "stock", tool, uri, file)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return time.Since(start).Seconds(), out, err
}
