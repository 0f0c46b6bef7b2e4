package cli

import (
	"context"
	"flag"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"net/http"
	"os"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
)

// CreateKeyOptions are the options of create-key.
type CreateKeyOptions struct {
	Type  string
	Force bool
}

func runCreateKeyCmd(ctx context.Context, env *Env, args []string) error {
	var o CreateKeyOptions
	fs := flag.NewFlagSet("create-key", flag.ContinueOnError)
	fs.StringVar(&o.Type, "type", "ed25519", "")
	fs.BoolVar(&o.Force, "force", false, "")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("create-key takes no arguments")
	}
	return RunCreateKey(ctx, env, o)
}

// RunCreateKey makes the key pair and prints the public key line.
func RunCreateKey(ctx context.Context, env *Env, o CreateKeyOptions) error {
	if o.Type != "ed25519" && o.Type != "rsa" {
		return usagef("--type must be ed25519 or rsa, not %q", o.Type)
	}
	pub, err := keys.Create(env.Home, keys.KeyType(o.Type), o.Force)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, pub)
	fmt.Fprintf(env.Stderr, "a0cli: key pair written to %s (private key 0600: anyone who can read it has your rights on the nodes)\n", env.Home)
	fmt.Fprintln(env.Stderr, "register it on each node: a0agent authorize --state-dir DIR NAME \"<the line above>\"")
	return nil
}

func runShowKeyCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		return usagef("show-key takes no arguments")
	}
	pub, err := keys.PublicLine(env.Home)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, pub)
	return nil
}

func runDeleteKeyCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		return usagef("delete-key takes no arguments")
	}
	if err := keys.Delete(env.Home); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Key deleted from %s\n", env.Home)
	return nil
}

func runForgetNodeCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) != 1 {
		return usagef("usage: forget-node HOST:PORT")
	}
	if err := (keys.KnownNodes{Path: env.Home + "/known_nodes"}).Forget(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Forgot the certificate of %s; the next contact pins the new one\n", args[0])
	return nil
}

func runPingCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		return usagef("ping takes no arguments")
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Message
	if err := c.JSON(ctx, http.MethodGet, api.PathPing, nil, &out); err != nil {
		return err
	}
	return printCompact(env, out)
}

func runUpdateCommandsCmd(ctx context.Context, env *Env, args []string) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Commands
	if err := c.JSON(ctx, http.MethodGet, api.PathCommands, nil, &out); err != nil {
		return err
	}
	b, err := jsonIndent(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(env.Home, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(commandsCachePath(env.Home), b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%d commands cached; run a0cli without arguments to list them\n", len(out.Commands))
	return nil
}

func runSetAsBackupCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "force") {
		return usagef("usage: set-as-backup <device> [force]")
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Message
	err = c.JSON(ctx, http.MethodPost, api.PathSetAsBackup, api.SetAsBackupRequest{Device: args[0], Force: len(args) == 2}, &out)
	if err != nil {
		return err
	}
	return printCompact(env, out)
}

// NodeStatusOptions are the options of node-status.
type NodeStatusOptions struct{ JSON bool }

func runNodeStatusCmd(ctx context.Context, env *Env, args []string) error {
	var o NodeStatusOptions
	fs := flag.NewFlagSet("node-status", flag.ContinueOnError)
	fs.BoolVar(&o.JSON, "json", false, "")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var st api.NodeStatus
	if err := c.JSON(ctx, http.MethodGet, api.PathNodeStatus, nil, &st); err != nil {
		return err
	}
	if o.JSON {
		return printCompact(env, st)
	}
	w := env.Stdout
	fmt.Fprintf(w, "node:           %s\n", st.Node)
	fmt.Fprintf(w, "agent version:  %s\n", st.AgentVersion)
	roles := "none"
	if len(st.Roles) > 0 {
		roles = fmt.Sprint(st.Roles)
	}
	fmt.Fprintf(w, "roles:          %s\n", roles)
	if st.Device != "" {
		fmt.Fprintf(w, "backup device:  %s (%s free)\n", st.Device, human(st.DeviceFreeBytes))
	} else {
		fmt.Fprintln(w, "backup device:  none (run set-as-backup)")
	}
	fmt.Fprintf(w, "database:       %s %s, %s of data\n", st.Database, st.ServerVersion, human(st.DatabaseBytes))
	if st.Job != "" {
		fmt.Fprintf(w, "running job:    %s\n", st.Job)
	}
	printSchedule(w, st.Schedule)
	if m := st.InterruptedRestore; m != nil {
		why := "the agent stopped while it ran"
		if e, ok := m["error"].(string); ok && e != "" {
			why = e
		}
		fmt.Fprintf(w, "WARNING:        a restore started %v did not finish (%s): the database is partly restored; run restore again (with --drop)\n", m["started"], why)
	}
	return nil
}
