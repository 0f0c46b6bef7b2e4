package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/a0backup/a0/internal/api"
)

// ExitInterrupted is a0cli's exit code after Ctrl-C (SIGINT), 128+2 as
// shells report it; SIGTERM gives 143.
const ExitInterrupted = 130

// Signalled is the cause of the context SignalContext cancels: the signal
// that stopped a0cli.
type Signalled struct{ Signal os.Signal }

func (s *Signalled) Error() string { return "interrupted by " + s.Signal.String() }

// exitCode is 128 + the signal's number, as a shell reports a process a
// signal ended.
func (s *Signalled) exitCode() int {
	if n, ok := s.Signal.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return ExitInterrupted
}

// SignalContext is the context a0cli runs under: Ctrl-C (SIGINT) or SIGTERM
// cancels it with a *Signalled cause, so that a command interrupted while it
// follows a job on the node says what goes on there (InterruptedError) and
// a0cli exits 130 (143 for SIGTERM). A second signal after the first is
// left to its default (it ends the process at once).
func SignalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(&Signalled{Signal: s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// InterruptedError is a command stopped by the operator (Ctrl-C) while the
// node goes on: Next says what goes on there and how to follow or stop it.
type InterruptedError struct {
	Next string
	Err  error
}

func (e *InterruptedError) Error() string { return "interrupted: " + e.Next }
func (e *InterruptedError) Unwrap() error { return e.Err }

// interrupted turns err into an *InterruptedError saying next when ctx
// ended (the operator's Ctrl-C) and err came of it; other errors pass.
func interrupted(ctx context.Context, err error, next string) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	var ie *InterruptedError
	if errors.As(err, &ie) {
		return err
	}
	return &InterruptedError{Next: next, Err: err}
}

// interruptExit is the exit code of a run that ended with err under ctx:
// 128+signal when a signal ended ctx (with or without an
// InterruptedError saying more), else 0 and false.
func interruptExit(ctx context.Context, err error) (int, bool) {
	if err == nil || ctx.Err() == nil {
		return 0, false
	}
	var s *Signalled
	if errors.As(context.Cause(ctx), &s) {
		return s.exitCode(), true
	}
	var ie *InterruptedError
	if errors.As(err, &ie) {
		return ExitInterrupted, true
	}
	return 0, false
}

// targetArgs is the -t (and -p) an operator types to reach this node again.
func (e *Env) targetArgs() string {
	t := "-t " + e.Target
	if _, _, err := net.SplitHostPort(e.Target); err != nil && e.Port != api.DefaultPort {
		t += " -p " + strconv.Itoa(e.Port)
	}
	return t
}

// jobGoesOn is what an interrupted command that followed a job says: the
// job goes on on the node, how to follow it and how to stop it.
func jobGoesOn(env *Env, what, statusCmd, stopNote string) string {
	return fmt.Sprintf("the %s goes on on the node: follow it with `a0cli %s %s --wait`, or stop it with `a0cli %s cancel`%s",
		what, env.targetArgs(), statusCmd, env.targetArgs(), stopNote)
}
