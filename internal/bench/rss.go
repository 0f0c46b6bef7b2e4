package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// ChildArg is the hidden subcommand a0bench re-executes itself with, so that
// the pipeline's peak RSS is its own and not the benchmark driver's (which
// holds the agent, FerretDB and the generator's buffers).
const ChildArg = "pipeline-child"

// PasswordEnv passes the password to children and shell baselines.
const PasswordEnv = "A0BENCH_PW"

// ChildPipeline runs `exe pipeline-child ROOT SLOTDIR`, which must run
// SealedPipeline and print its Result as JSON, and returns that Result with
// the child's peak resident set size (getrusage ru_maxrss, the kernel's
// high-water mark of the whole process) in bytes.
func ChildPipeline(exe, root, slotDir, password string) (Result, int64, error) {
	cmd := exec.Command(exe, ChildArg, root, slotDir)
	cmd.Env = append(os.Environ(), PasswordEnv+"="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, 0, fmt.Errorf("pipeline child: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Result{}, 0, fmt.Errorf("pipeline child: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return r, 0, fmt.Errorf("pipeline child: no rusage")
	}
	// CPU time does not depend on what else the shared machine runs: it
	// says what the pipeline would do on idle cores.
	r.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	// Linux reports ru_maxrss in KiB.
	return r, ru.Maxrss * 1024, nil
}
