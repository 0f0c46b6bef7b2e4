package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/keys"
)

// CreateKeyOptions are the options of create-key.
type CreateKeyOptions struct {
	Type  string
	Force bool
}

func createKeyFlags(fs *pflag.FlagSet) runFunc {
	var o CreateKeyOptions
	fs.StringVar(&o.Type, "type", "ed25519", "key `TYPE`: ed25519 or rsa (3072 bits)")
	fs.BoolVar(&o.Force, "force", false, "replace an existing key pair")
	return func(ctx context.Context, env *Env, pos []string) error {
		if len(pos) > 0 {
			return usagef("create-key takes no arguments")
		}
		return RunCreateKey(ctx, env, o)
	}
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

func setAsBackupFlags(fs *pflag.FlagSet) runFunc {
	var force bool
	fs.BoolVar(&force, "force", false, "use the device even if it already holds an a0 backup folder (the same as the word force after the device)")
	return func(ctx context.Context, env *Env, args []string) error {
		// The original's form: set-as-backup <device> force.
		if len(args) == 2 && args[1] == "force" {
			force, args = true, args[:1]
		}
		if len(args) != 1 {
			return usagef("usage: set-as-backup <device> [force]")
		}
		return runSetAsBackup(ctx, env, args[0], force)
	}
}

func runSetAsBackup(ctx context.Context, env *Env, device string, force bool) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Message
	err = c.JSON(ctx, http.MethodPost, api.PathSetAsBackup, api.SetAsBackupRequest{Device: device, Force: force}, &out)
	if err != nil {
		return err
	}
	if err := printCompact(env, out); err != nil {
		return err
	}
	// A forced switch left stored backups on the previous device: say
	// where, as the node no longer lists them (issue 28.8).
	var reply api.SetAsBackupReply
	if b, err := json.Marshal(out.Arguments); err == nil && json.Unmarshal(b, &reply) == nil {
		for _, l := range reply.LeftBehind {
			what := "backup"
			if l.Kind != api.SlotBackup {
				what = l.Kind + " backup"
			}
			fmt.Fprintf(env.Stderr, "a0cli: the stored %s %s stays on the previous device %s, at %s; the node no longer manages it (backup-status and retrieve see the new device only): copy it off the node to keep it, `a0cli restore FILE` restores it from a copy\n",
				what, l.Name, l.Device, l.Path)
		}
	}
	return nil
}

// NodeStatusOptions are the options of node-status.
type NodeStatusOptions struct{ JSON bool }

func nodeStatusFlags(fs *pflag.FlagSet) runFunc {
	var o NodeStatusOptions
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	// Arguments are ignored, as they always were.
	return func(ctx context.Context, env *Env, _ []string) error { return runNodeStatus(ctx, env, o) }
}

func runNodeStatus(ctx context.Context, env *Env, o NodeStatusOptions) error {
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
	fmt.Fprintf(w, "database:       %s\n", databaseLine(st))
	if st.Job != "" {
		fmt.Fprintf(w, "running job:    %s\n", st.Job)
	}
	printSchedule(w, st.Schedule)
	if st.Drill != nil {
		printDrill(w, st.Drill)
	}
	if m := st.InterruptedRestore; m != nil {
		why := "the agent stopped while it ran"
		if e, ok := m["error"].(string); ok && e != "" {
			why = e
		}
		fmt.Fprintf(w, "WARNING:        a restore started %v did not finish (%s): the database is partly restored; run restore again (with --drop)\n", m["started"], why)
	}
	return nil
}

// databaseLine is node-status's database line. The size comes from the
// agent's cache, read in the background: its age is shown when it is older
// than the refresh period (a read is then running or failed), and "being
// measured" when none was read yet.
func databaseLine(st api.NodeStatus) string {
	head := strings.TrimSpace(st.Database + " " + st.ServerVersion)
	var size string
	switch {
	case st.DatabaseBytesRead == nil && st.DatabaseBytesRefreshSeconds > 0:
		size = "data size being measured (ask again in a few seconds)"
	default:
		size = human(st.DatabaseBytes) + " of data"
		if st.DatabaseBytesRefreshSeconds > 0 && st.DatabaseBytesAgeSeconds > st.DatabaseBytesRefreshSeconds {
			size += fmt.Sprintf(" (measured %s ago)", time.Duration(st.DatabaseBytesAgeSeconds)*time.Second)
		}
	}
	if st.DatabaseBytesError != "" {
		size += "; the last measurement failed: " + st.DatabaseBytesError
	}
	return head + ", " + size
}
