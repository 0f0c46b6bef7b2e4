// Command a0agent is the a0 node agent: see `a0agent help`.
package main

import (
	"context"
	"os"

	"github.com/a0backup/a0/internal/agentcmd"
)

func main() {
	os.Exit(agentcmd.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
