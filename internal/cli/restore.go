package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
)

// RestoreOptions are the options of restore.
type RestoreOptions struct {
	PasswordOptions
	File   string
	Drop   bool
	NS     stringList
	DryRun bool
	Plain  bool
	Detach bool
	JSON   bool
}

func runRestoreCmd(ctx context.Context, env *Env, args []string) error {
	var o RestoreOptions
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	o.flags(fs)
	fs.BoolVar(&o.Drop, "drop", false, "")
	fs.Var(&o.NS, "ns", "")
	fs.BoolVar(&o.DryRun, "dry-run", false, "")
	fs.BoolVar(&o.Plain, "plain", false, "")
	fs.BoolVar(&o.Detach, "detach", false, "")
	fs.BoolVar(&o.JSON, "json", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("usage: restore [FILE] [password options] [--drop] [--ns DB.COLL]... [--dry-run] [--plain] [--detach]")
	}
	if len(pos) == 1 {
		o.File = pos[0]
	}
	o.EnvVars = []string{"A0_BACKUP_PASSWORD"}
	return RunRestore(ctx, env, o)
}

// RunRestore uploads FILE (or uses the node's stored backup), starts the
// restore and, unless Detach, follows it to its report.
func RunRestore(ctx context.Context, env *Env, o RestoreOptions) error {
	if o.Plain && o.File == "" {
		return usagef("restore --plain needs a FILE (a mongodump directory packed as .tar.gz, or a mongodump --archive file)")
	}
	var pw string
	if !o.Plain {
		var err error
		if pw, err = o.resolve(env, false); err != nil {
			return err
		}
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	req := api.RestoreRequest{Password: pw, Plain: o.Plain, Drop: o.Drop, NS: o.NS, DryRun: o.DryRun}
	if o.File != "" {
		id, err := upload(ctx, env, c, o.File)
		if err != nil {
			return err
		}
		req.UploadID = id
	}
	var out api.Message
	if err := c.JSON(ctx, http.MethodPost, api.PathRestore, req, &out); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, out.Message)
	if o.Detach {
		fmt.Fprintln(env.Stderr, "a0cli: follow it with restore-status")
		return nil
	}
	return followRestore(ctx, env, c, o.JSON)
}

// upload sends a file to the node, resuming what the node already holds.
// The upload is named after the file's sha256, so a rerun finds it.
func upload(ctx context.Context, env *Env, c *client.Client, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", &NotFoundError{Msg: fmt.Sprintf("no such file: %s", path)}
		}
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	id := hex.EncodeToString(h.Sum(nil))[:32]
	have, err := c.UploadState(ctx, id)
	if err != nil {
		return "", err
	}
	if have > st.Size() {
		if err := c.JSON(ctx, http.MethodDelete, api.PathUploads+id, nil, nil); err != nil {
			return "", err
		}
		have = 0
	}
	if have == st.Size() && have > 0 {
		return id, nil
	}
	if have > 0 {
		fmt.Fprintf(env.Stderr, "a0cli: resuming upload at byte %d of %d\n", have, st.Size())
	}
	b := newBar(env, "upload")
	b.initial = have
	defer b.finish()
	const chunk = 64 << 20
	for have < st.Size() {
		n := min(int64(chunk), st.Size()-have)
		sec := io.NewSectionReader(f, have, n)
		pr := &progressReader{r: sec, base: have, f: func(x int64) { b.update(x, st.Size(), "") }}
		size, err := c.UploadChunk(ctx, id, have, pr, n)
		if err != nil {
			return "", fmt.Errorf("upload interrupted at byte %d (run the command again to resume): %w", have, err)
		}
		have = size
	}
	return id, nil
}

type progressReader struct {
	r    io.Reader
	base int64
	n    int64
	f    func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.f(p.base + p.n)
	return n, err
}

type restoreStatus struct {
	Message   string `json:"message"`
	Arguments struct {
		Progress struct {
			Phase            string `json:"phase"`
			Step             string `json:"step"`
			CollectionsTotal int64  `json:"collections_total"`
			CollectionsDone  int64  `json:"collections_done"`
			Documents        int64  `json:"documents"`
			DocumentsTotal   int64  `json:"documents_total"`
			Bytes            int64  `json:"bytes"`
			BytesTotal       int64  `json:"bytes_total"`
		} `json:"progress"`
		Error  string          `json:"error"`
		Code   string          `json:"code"`
		Result json.RawMessage `json:"result"`
	} `json:"arguments"`
}

func followRestore(ctx context.Context, env *Env, c *client.Client, asJSON bool) error {
	b := newBar(env, "restore")
	defer b.finish()
	for {
		var raw json.RawMessage
		if err := c.JSON(ctx, http.MethodGet, api.PathRestoreStatus, nil, &raw); err != nil {
			return err
		}
		var st restoreStatus
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		if st.Message == "Restore in progress" {
			p := st.Arguments.Progress
			label := p.Phase
			switch p.Step {
			case "indexes":
				label += " (building indexes)"
			case "oplog":
				label += " (replaying the oplog)"
			case "report":
				label += " (checking counts)"
			}
			b.update(p.Bytes, p.BytesTotal, fmt.Sprintf("%s %d docs, %d/%d collections", label, p.Documents, p.CollectionsDone, p.CollectionsTotal))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
			continue
		}
		b.finish()
		if asJSON {
			env.Stdout.Write(append(compact(raw), '\n'))
		} else {
			printRestoreResult(env, st.Arguments.Result)
		}
		if st.Message == "Restore failed" {
			return codeForJobError(st.Arguments.Code, "restore failed: "+st.Arguments.Error)
		}
		if st.Message == "No restore found" {
			return &NotFoundError{Msg: "no restore has run on this node"}
		}
		fmt.Fprintln(env.Stdout, st.Message)
		return nil
	}
}

func printRestoreResult(env *Env, raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	var res struct {
		Phase string `json:"phase"`
		Plan  *struct {
			Created      string   `json:"created"`
			Consistency  string   `json:"consistency"`
			Collections  []string `json:"collections"`
			Documents    int64    `json:"documents"`
			OplogEntries int64    `json:"oplog_entries"`
		} `json:"plan"`
		Report *struct {
			OK          bool `json:"ok"`
			Collections []struct {
				Namespace         string   `json:"namespace"`
				DocumentsExpected int64    `json:"documents_expected"`
				DocumentsFound    int64    `json:"documents_found"`
				IndexesExpected   int      `json:"indexes_expected"`
				IndexesFound      int      `json:"indexes_found"`
				IndexErrors       []string `json:"index_errors"`
				OplogEntries      int64    `json:"oplog_entries"`
				OK                bool     `json:"ok"`
			} `json:"collections"`
		} `json:"report"`
	}
	if json.Unmarshal(raw, &res) != nil {
		return
	}
	w := env.Stdout
	if p := res.Plan; p != nil {
		fmt.Fprintf(w, "backup of %s (%s): %d collections, %d documents, %d oplog entries\n", p.Created, p.Consistency, len(p.Collections), p.Documents, p.OplogEntries)
		if res.Phase == "dry-run" || res.Phase == "planned" {
			fmt.Fprintf(w, "would restore: %s\n", strings.Join(p.Collections, ", "))
		}
	}
	if r := res.Report; r != nil {
		fmt.Fprintf(w, "%-40s %12s %12s %8s %8s  %s\n", "collection", "docs backup", "docs found", "idx exp", "idx found", "")
		for _, c := range r.Collections {
			mark := "ok"
			if !c.OK {
				mark = "DIFFERS"
			}
			if c.OplogEntries > 0 {
				mark += fmt.Sprintf(" (+%d oplog entries replayed)", c.OplogEntries)
			}
			fmt.Fprintf(w, "%-40s %12d %12d %8d %8d  %s\n", c.Namespace, c.DocumentsExpected, c.DocumentsFound, c.IndexesExpected, c.IndexesFound, mark)
			// Say which index the server refused and why: the count
			// alone does not tell an operator what is missing.
			for _, e := range c.IndexErrors {
				fmt.Fprintf(w, "  index not restored: %s\n", e)
			}
		}
	}
}

func runRestoreStatusCmd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("restore-status", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	if *wait {
		return followRestore(ctx, env, c, false)
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodGet, api.PathRestoreStatus, nil, &raw); err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(compact(raw), '\n'))
	return err
}

// RestoreSensitiveOptions are the options of restore-sensitive.
type RestoreSensitiveOptions struct {
	PasswordOptions
	File string
	Yes  bool
}

func runRestoreSensitiveCmd(ctx context.Context, env *Env, args []string) error {
	var o RestoreSensitiveOptions
	fs := flag.NewFlagSet("restore-sensitive", flag.ContinueOnError)
	o.flags(fs)
	fs.BoolVar(&o.Yes, "yes", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: restore-sensitive FILE [password options] [--yes]")
	}
	o.File = pos[0]
	o.EnvVars = []string{"A0_BACKUP_SENSITIVE_PASSWORD", "A0_BACKUP_PASSWORD"}
	return RunRestoreSensitive(ctx, env, o)
}

// RunRestoreSensitive uploads a sensitive backup, shows what it would
// replace, asks for confirmation (unless Yes) and restores it.
func RunRestoreSensitive(ctx context.Context, env *Env, o RestoreSensitiveOptions) error {
	pw, err := o.resolve(env, false)
	if err != nil {
		return err
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	id, err := upload(ctx, env, c, o.File)
	if err != nil {
		return err
	}
	type planned struct {
		Message   string `json:"message"`
		Arguments struct {
			Files []struct {
				Path    string `json:"path"`
				Target  string `json:"target"`
				Mode    string `json:"mode"`
				Exists  bool   `json:"exists"`
				Changes bool   `json:"changes"`
			} `json:"files"`
			Reloaded []string `json:"reloaded"`
			Restart  string   `json:"restart_needed_for"`
		} `json:"arguments"`
	}
	var plan planned
	req := api.RestoreSensitiveRequest{UploadID: id, Password: pw}
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &plan); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "restore-sensitive will write:")
	for _, f := range plan.Arguments.Files {
		state := "new"
		if f.Exists && f.Changes {
			state = "REPLACES a different file"
		} else if f.Exists {
			state = "identical"
		}
		fmt.Fprintf(env.Stdout, "  %-50s %s (%s)\n", f.Target, f.Mode, state)
	}
	if !o.Yes {
		if !env.Interactive {
			return usagef("restore-sensitive replaces the node's keys: confirm on a terminal or pass --yes")
		}
		fmt.Fprint(env.Stderr, "Replace these files on the node? [y/N] ")
		var answer string
		fmt.Fscanln(env.Stdin, &answer)
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &RefusedError{Msg: "not confirmed: nothing changed"}
		}
	}
	req.Confirm = true
	var done planned
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &done); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d files; reloaded: %s\n", done.Message, len(done.Arguments.Files), strings.Join(done.Arguments.Reloaded, ", "))
	if done.Arguments.Restart != "" {
		fmt.Fprintf(env.Stdout, "note: %s\n", done.Arguments.Restart)
	}
	return nil
}
