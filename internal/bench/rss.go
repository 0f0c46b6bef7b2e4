package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// ChildArg is the hidden subcommand a0bench re-executes itself with, so that
// the pipeline's peak RSS is its own and not the benchmark driver's (which
// holds the agent, FerretDB and the generator's buffers).
const ChildArg = "pipeline-child"

// PasswordEnv passes the password to children and shell baselines.
const PasswordEnv = "A0BENCH_PW"

// ChildPipeline runs `exe pipeline-child ROOT SLOTDIR`, which must run
// SealedPipeline and print its Result as JSON (with its own PeakRSS), and
// returns that Result with the child's peak resident set size in bytes.
//
// The child reads its own high-water mark (VmHWM) because getrusage's
// ru_maxrss of a child is not its own: Linux carries the parent's
// high-water mark over the fork into the child, so a big parent (FerretDB,
// the generator) would show up as the child's peak.
func ChildPipeline(exe, root, slotDir, password string) (Result, int64, error) {
	cmd := exec.Command(exe, ChildArg, root, slotDir)
	cmd.Env = append(os.Environ(), PasswordEnv+"="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, 0, fmt.Errorf("pipeline child: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r struct {
		Result
		PeakRSS int64 `json:"peak_rss"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Result{}, 0, fmt.Errorf("pipeline child: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return r.Result, 0, fmt.Errorf("pipeline child: no rusage")
	}
	// CPU time does not depend on what else the shared machine runs: it
	// says what the pipeline would do on idle cores.
	r.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	return r.Result, r.PeakRSS, nil
}

// SelfPeakRSS is this process's own resident high-water mark (VmHWM) in
// bytes, for children to report about themselves.
func SelfPeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}
