package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// OpenSSLIter is the PBKDF2 iteration count the baselines give openssl,
// the OWASP figure a careful shell script would use.
const OpenSSLIter = "600000"

// Baselines are the shell pipelines a0 replaces. Each runs under bash -o
// pipefail with the password in the environment (never on the command
// line), writes its file, and fsyncs that file with `sync FILE` (the a0
// pipeline fsyncs its own file, not the whole system).
const (
	// BaselineTarGz is the original appliance's way: tar's gzip is gzip -6.
	BaselineTarGz = `tar czf - -C "$DIR" . | openssl enc -aes-256-ctr -pbkdf2 -iter ` + OpenSSLIter + ` -pass env:A0BENCH_PW > "$OUT" && sync "$OUT"`
	// BaselinePigz is the best a script does with parallel gzip on all cores.
	BaselinePigz = `tar cf - -C "$DIR" . | pigz -6 | openssl enc -aes-256-ctr -pbkdf2 -iter ` + OpenSSLIter + ` -pass env:A0BENCH_PW > "$OUT" && sync "$OUT"`
	// BaselineRestore is the script way back: decrypt, gunzip, untar to files.
	BaselineRestore = `openssl enc -d -aes-256-ctr -pbkdf2 -iter ` + OpenSSLIter + ` -pass env:A0BENCH_PW -in "$IN" | pigz -d | tar xf - -C "$OUT"`
)

// Shell runs script under bash with pipefail and env added, returning the
// wall time and the CPU time of the whole pipeline (wait4's rusage covers
// bash and every child it reaped).
func Shell(script string, env ...string) (time.Duration, float64, error) {
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start)
	if err != nil {
		return el, 0, fmt.Errorf("%s: %w: %s", script, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var cpu float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	return el, cpu, nil
}

// ShellBackup runs a backup baseline on the data set into out.
func ShellBackup(script string, ds *Dataset, out string, password string) (Result, error) {
	el, cpu, err := Shell(script, "DIR="+ds.DumpDir(), "OUT="+out, PasswordEnv+"="+password)
	if err != nil {
		return Result{}, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return Result{}, fmt.Errorf("baseline output: %w", err)
	}
	// openssl's "Salted__"+salt header is not compressed data.
	return Result{Seconds: el.Seconds(), InBytes: ds.Bytes(), OutBytes: st.Size() - 16, File: out, CPUSeconds: cpu}, nil
}

// ShellRestore runs BaselineRestore on in (a BaselinePigz file of ds) into a
// fresh directory under scratch, which it removes afterwards.
func ShellRestore(in string, ds *Dataset, scratch, password string) (Result, error) {
	dir, err := os.MkdirTemp(scratch, "untar-")
	if err != nil {
		return Result{}, fmt.Errorf("baseline restore: %w", err)
	}
	defer os.RemoveAll(dir)
	el, cpu, err := Shell(BaselineRestore, "IN="+in, "OUT="+dir, PasswordEnv+"="+password)
	if err != nil {
		return Result{}, err
	}
	// A restore that produced nothing would look fast: check one file.
	c := ds.Collections[len(ds.Collections)/2]
	st, err := os.Stat(filepath.Join(dir, c.DB, c.Name+".bson"))
	if err != nil || st.Size() != c.Bytes {
		return Result{}, fmt.Errorf("baseline restore: %s.%s not restored whole (%v)", c.DB, c.Name, err)
	}
	return Result{Seconds: el.Seconds(), InBytes: ds.Bytes(), CPUSeconds: cpu}, nil
}
