package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/crypt"
)

// The remote store's commands (issue 16): backup-copy, backups, backups
// prune, and the --remote of backup-retrieve and restore. The node holds
// the store's credentials; the workstation needs none.

// BackupCopyOptions are the options of backup-copy.
type BackupCopyOptions struct {
	Wait bool
}

func backupCopyFlags(fs *pflag.FlagSet) runFunc {
	var o BackupCopyOptions
	fs.BoolVar(&o.Wait, "wait", false, "follow the copy to its end (copied or failed)")
	return func(ctx context.Context, env *Env, pos []string) error {
		if len(pos) > 0 {
			return usagef("backup-copy takes no arguments")
		}
		return RunBackupCopy(ctx, env, o)
	}
}

// RunBackupCopy asks the node to copy its stored backup to the remote
// store now; with Wait it follows the copy to its end.
func RunBackupCopy(ctx context.Context, env *Env, o BackupCopyOptions) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodPost, api.PathRemoteCopy, struct{}{}, &raw); err != nil {
		return err
	}
	if !o.Wait {
		_, err = env.Stdout.Write(append(compact(raw), '\n'))
		return err
	}
	b := newBar(env, "copy")
	defer b.finish()
	for {
		st, raw, err := getStatus(ctx, c, api.SlotBackup)
		if err != nil {
			return err
		}
		var args api.BackupFound
		json.Unmarshal(st.Arguments, &args)
		if st.Message != "Backup found" {
			return &NotFoundError{Msg: "the stored backup is gone: " + st.Message}
		}
		if r := args.Remote; r != nil && r.State != "copying" {
			b.finish()
			env.Stdout.Write(append(compact(raw), '\n'))
			if r.State == "failed" {
				return fmt.Errorf("copy failed: %s", r.Error)
			}
			return nil
		} else if r != nil && r.Error != "" {
			b.update(0, 0, fmt.Sprintf("attempt %d failed, retrying: %s", r.Attempts, r.Error))
		} else {
			b.update(0, 0, "copying")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// BackupsOptions are the options of backups and backups prune.
type BackupsOptions struct {
	JSON   bool
	DryRun bool
}

func backupsFlags(fs *pflag.FlagSet) runFunc {
	var o BackupsOptions
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	fs.BoolVar(&o.DryRun, "dry-run", false, "with prune: list what the retention policy would remove, delete nothing")
	return func(ctx context.Context, env *Env, pos []string) error { return runBackupsCmd(ctx, env, o, pos) }
}

func runBackupsCmd(ctx context.Context, env *Env, o BackupsOptions, pos []string) error {
	switch {
	case len(pos) == 0:
		if o.DryRun {
			return usagef("--dry-run goes with backups prune")
		}
		return RunBackups(ctx, env, o)
	case len(pos) == 1 && pos[0] == "prune":
		return RunBackupsPrune(ctx, env, o)
	}
	return usagef("usage: backups [--json] | backups prune [--dry-run] [--json]")
}

// RunBackups lists the node's local backup and its remote copies.
func RunBackups(ctx context.Context, env *Env, o BackupsOptions) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodGet, api.PathBackups, nil, &raw); err != nil {
		return err
	}
	var out api.Backups
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("decode backups: %w", err)
	}
	if o.JSON {
		env.Stdout.Write(append(compact(raw), '\n'))
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tSIZE\tVERIFIED\tWHERE\tSHA256")
		for _, b := range out.Backups {
			sha := b.SHA256
			if len(sha) > 16 {
				sha = sha[:16]
			}
			where := strings.Join(b.Where, "+")
			if b.Problem != "" {
				where += " (" + b.Problem + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", b.Name, b.Created.UTC().Format("2006-01-02T15:04:05Z"), human(b.Size), b.Verified, where, sha)
		}
		tw.Flush()
		if out.Remote != "" {
			fmt.Fprintf(env.Stdout, "remote store: %s (retention: %s)\n", out.Remote, out.Retention)
		} else {
			fmt.Fprintln(env.Stdout, "remote store: none configured on this node")
		}
		for _, b := range out.Backups {
			if p := b.RestorePrediction; p != nil {
				fmt.Fprintf(env.Stdout, "%s: %s\n", b.Name, predictionText(p))
			}
		}
		for _, w := range out.PITRWindows {
			base := w.Base
			if w.Remote {
				base = "remote copy " + base
			}
			fmt.Fprintf(env.Stdout, "pitr window: %s (base %s) .. %s UTC\n", w.From.UTC().Format("2006-01-02 15:04:05"), base, w.To.UTC().Format("2006-01-02 15:04:05"))
		}
	}
	if out.RemoteError != "" {
		return &remoteError{msg: "the remote store could not be listed: " + out.RemoteError}
	}
	return nil
}

// remoteError is a failure of the node's remote store (exit 1).
type remoteError struct{ msg string }

func (e *remoteError) Error() string { return e.msg }

// RunBackupsPrune applies the node's retention policy to the remote copies.
func RunBackupsPrune(ctx context.Context, env *Env, o BackupsOptions) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodPost, api.PathBackupsPrune, api.BackupsPruneRequest{DryRun: o.DryRun}, &raw); err != nil {
		return err
	}
	if o.JSON {
		_, err := env.Stdout.Write(append(compact(raw), '\n'))
		return err
	}
	var res api.BackupsPrune
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decode prune: %w", err)
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tDECISION\tWHY")
	removed := 0
	for _, d := range res.Decisions {
		what := "keep"
		switch {
		case !d.Keep && d.Deleted:
			what, removed = "removed", removed+1
		case !d.Keep:
			what, removed = "would remove", removed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, d.Created.UTC().Format("2006-01-02T15:04:05Z"), what, strings.Join(d.Reasons, ", "))
	}
	tw.Flush()
	verb := "removed"
	if res.DryRun {
		verb = "would remove (dry run, nothing deleted)"
	}
	fmt.Fprintf(env.Stdout, "%s: %d of %d copies %s\n", res.Retention, removed, len(res.Decisions), verb)
	if p := res.PITR; p != nil {
		fmt.Fprintf(env.Stdout, "pitr: %d oplog slices on the device and %d in the store %s (older than the oldest kept base)\n", len(p.Removed), len(p.RemovedRemote), verb)
	}
	return nil
}

func remoteBackupPath(name string) string { return api.PathRemoteBackup + url.PathEscape(name) }

// RunRetrieveRemote downloads a remote copy through the node, checked
// against its record (<name>.json) in the store.
func RunRetrieveRemote(ctx context.Context, env *Env, o RetrieveOptions) error {
	if o.Output == "" {
		o.Output = o.Remote + ".enc"
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var rb api.RemoteBackup
	if err := c.JSON(ctx, http.MethodGet, remoteBackupPath(o.Remote), nil, &rb); err != nil {
		return err
	}
	if rb.SHA256 == "" || rb.Name != o.Remote {
		return &IntegrityError{Msg: fmt.Sprintf("the node's record of %s lacks checksums", o.Remote)}
	}
	if err := retrieveTo(ctx, env, c, o, foundArgs{Name: rb.Name, MD5: rb.MD5, SHA256: rb.SHA256, Size: rb.Size},
		remoteBackupPath(o.Remote)+"/file", "backup-retrieve --remote "+o.Remote, "the remote copy's record"); err != nil {
		return err
	}
	// The record is the bucket's word (issue 25 point 1): with the
	// bucket's keys, another backup and a record to match it can be put
	// under this name. Say what was checked, and how to prove the rest.
	fmt.Fprintf(env.Stderr, "a0cli: the checksums are those of the copy's record, read from the bucket: they show the download is intact, not that it is backup %s; "+
		"`a0cli verify %s --expect-name %s` proves it from the file's authenticated manifest (a restore --remote checks it itself)\n",
		o.Remote, o.Output, o.Remote)
	return nil
}

// readRemoteHeader reads the header of a remote copy (to unwrap a v2 file
// key locally).
func readRemoteHeader(ctx context.Context, c *client.Client, name string) ([]byte, error) {
	d, err := c.GetFile(ctx, remoteBackupPath(name)+"/file", 0, "")
	if err != nil {
		return nil, err
	}
	defer d.Body.Close()
	h, err := crypt.ReadHeader(d.Body)
	if errors.Is(err, crypt.ErrNotA0) {
		return nil, &IntegrityError{Msg: fmt.Sprintf("remote copy %s is not an a0 backup file", name)}
	}
	return h, err
}

// remoteLine is backup-status's text line about the remote copy, "" when
// the status has none.
func remoteLine(args json.RawMessage) string {
	var a api.BackupFound
	if json.Unmarshal(args, &a) != nil || a.Remote == nil {
		return ""
	}
	r := a.Remote
	switch r.State {
	case "copied":
		at := ""
		if r.CopiedAt != nil {
			at = " at " + r.CopiedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		return fmt.Sprintf("remote copy: copied to %s%s", r.Location, at)
	case "failed":
		return fmt.Sprintf("remote copy: failed after %d attempts: %s (a0cli backup-copy retries)", r.Attempts, r.Error)
	}
	if r.Error != "" {
		return fmt.Sprintf("remote copy: copying to %s, attempt %d failed, retrying: %s", r.Location, r.Attempts, r.Error)
	}
	return "remote copy: copying to " + r.Location
}
