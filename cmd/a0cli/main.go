// Command a0cli is the operator's CLI for a0 nodes: see `a0cli help`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/a0backup/a0/internal/cli"
)

func main() {
	env, err := cli.DefaultEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "a0cli: %v\n", err)
		os.Exit(cli.ExitFailure)
	}
	ctx, stop := cli.SignalContext(context.Background())
	code := cli.Main(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}
