package cli

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
)

// RefusedError is a local refusal (for example an existing output file).
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// slotCmd declares the flags of a slot's command (backup, backup-status,
// backup-retrieve, backup-delete and their -sensitive twins).
func slotCmd(slot, action string) func(*pflag.FlagSet) runFunc {
	return func(fs *pflag.FlagSet) runFunc {
		switch action {
		case "start":
			return backupFlags(fs, slot)
		case "retrieve":
			return retrieveFlags(fs, slot)
		case "status":
			wait := fs.Bool("wait", false, "follow a running backup with a progress bar to its end (then print the status line)")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("%s takes no arguments", cmdName(slot, "status"))
				}
				if *wait {
					return RunBackupStatusWait(ctx, env, slot)
				}
				return RunBackupStatus(ctx, env, slot)
			}
		default:
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("%s takes no arguments", cmdName(slot, "delete"))
				}
				return RunBackupDelete(ctx, env, slot)
			}
		}
	}
}

// cmdName is the command of a slot: backup-status, backup-sensitive-status...
func cmdName(slot, suffix string) string {
	base := "backup"
	if slot == api.SlotSensitive {
		base = "backup-sensitive"
	}
	if suffix == "" {
		return base
	}
	return base + "-" + suffix
}

// BackupOptions are the options of backup and backup-sensitive.
type BackupOptions struct {
	PasswordOptions
	Wait         bool
	AllowPrimary bool
	// To names authorized keys on the node to encrypt to; ToAll all of
	// them; NoPassword asks for no password (the node's configured
	// recipients, and To, open the backup).
	To         stringList
	ToAll      bool
	NoPassword bool
}

func backupFlags(fs *pflag.FlagSet, slot string) runFunc {
	o := BackupOptions{}
	o.flags(fs)
	fs.BoolVar(&o.Wait, "wait", false, "follow the job with a progress bar to its end")
	fs.BoolVar(&o.AllowPrimary, "allow-primary", false, "let the dump read from the primary of a replica set (off: it reads from a secondary)")
	fs.Var(&o.To, "to", "also encrypt to the authorized CLI key `NAME` (repeat for more)")
	fs.BoolVar(&o.ToAll, "to-all", false, "also encrypt to every authorized CLI key")
	fs.BoolVar(&o.NoPassword, "no-password", false, "no password: encrypt only to --to keys and the agent config's \"recipients\"")
	return func(ctx context.Context, env *Env, pos []string) error { return runBackupCmd(ctx, env, slot, o, pos) }
}

func runBackupCmd(ctx context.Context, env *Env, slot string, o BackupOptions, pos []string) error {
	if len(pos) > 1 {
		return usagef("usage: %s [<password>] [--password P | --password-file F] [--wait]", cmdName(slot, ""))
	}
	if len(pos) == 1 {
		o.Positional = pos[0]
	}
	o.EnvVars = []string{"A0_BACKUP_PASSWORD"}
	if slot == api.SlotSensitive {
		o.EnvVars = []string{"A0_BACKUP_SENSITIVE_PASSWORD", "A0_BACKUP_PASSWORD"}
	}
	return RunBackup(ctx, env, slot, o)
}

// RunBackup starts a backup of a slot; with Wait it follows it to the end.
func RunBackup(ctx context.Context, env *Env, slot string, o BackupOptions) error {
	toKeys := len(o.To) > 0 || o.ToAll || o.NoPassword
	if toKeys && slot == api.SlotSensitive {
		return usagef("backup-sensitive is encrypted with a password only (--to, --to-all and --no-password apply to backup)")
	}
	var pw string
	var err error
	if toKeys {
		// Encrypted to public keys: a password is added only if given
		// (never asked for).
		if pw, err = o.givenPassword(env); err != nil {
			return err
		}
		if o.NoPassword && pw != "" {
			return usagef("--no-password, yet a password was given (argument, --password, --password-file or $%s)", o.EnvVars[0])
		}
	} else if pw, err = o.resolve(env, true); err != nil {
		return err
	}
	if pw != "" || !toKeys {
		if err := checkStrength(pw); err != nil {
			return err
		}
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Reply[api.BackupStarted]
	req := api.BackupRequest{Password: pw, AllowPrimary: o.AllowPrimary, To: o.To, ToAll: o.ToAll}
	// The node measures the collections before it answers (seconds on a
	// large database): say so rather than print nothing.
	sizing := newBar(env, "backup sizing")
	if o.Wait && slot == api.SlotBackup {
		sizing.status("the collections and their sizes")
	}
	err = c.JSON(ctx, http.MethodPost, api.PathSlot+slot, req, &out)
	if err == nil {
		sizing.complete()
	}
	sizing.finish()
	if err != nil {
		return err
	}
	for _, r := range out.Arguments.Recipients {
		name := r.Name
		if name == "" {
			name = "(agent config)"
		}
		fmt.Fprintf(env.Stderr, "a0cli: encrypted to %s %s\n", name, r.Key)
	}
	if out.Arguments.Warning != "" {
		fmt.Fprintf(env.Stderr, "a0cli: warning: %s\n", out.Arguments.Warning)
	}
	fmt.Fprintln(env.Stdout, out.Message)
	if !o.Wait {
		return nil
	}
	return waitBackup(ctx, env, c, slot)
}

// slotStatus is the decoded backup-status answer: its arguments are
// api.JobRunning[api.SlotProgress], api.BackupFound or api.BackupFailed,
// by its message.
type slotStatus = api.Reply[json.RawMessage]

// foundArgs is what a download is checked against.
type foundArgs = api.BackupFound

type progressArgs = api.JobRunning[api.SlotProgress]

func getStatus(ctx context.Context, c *client.Client, slot string) (slotStatus, json.RawMessage, error) {
	var raw json.RawMessage
	var st slotStatus
	if err := c.JSON(ctx, http.MethodGet, api.PathSlot+slot+"/status", nil, &raw); err != nil {
		return st, nil, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("decode status: %w", err)
	}
	return st, raw, nil
}

// showBackup draws one poll of a running backup, in its phase: starting
// (the oplog's start and the list of collections: nothing read yet),
// reading (bytes of the estimate, documents, collections), oplog (every
// collection read: the oplog written meanwhile), verifying (the stored
// file read back); a sensitive backup counts its files.
func showBackup(ph *phases, pr api.SlotProgress) {
	switch {
	case pr.FilesTotal > 0:
		ph.enter("files", "files").update(pr.FilesDone, pr.FilesTotal, "")
	case pr.Verifying:
		ph.enter("verifying", "").status(fmt.Sprintf("the written file (%d docs, %d collections)", pr.Documents, pr.CollectionsTotal))
	case pr.Bytes == 0 && pr.Documents == 0 && pr.CollectionsDone == 0:
		ph.enter("starting", "").status("the oplog's start and the list of collections")
	case pr.CollectionsTotal > 0 && pr.CollectionsDone >= pr.CollectionsTotal:
		ph.enter("oplog", "").status(fmt.Sprintf("every collection read (%d docs): reading the oplog written meanwhile", pr.Documents))
	default:
		b := ph.enter("reading", "")
		b.doneExtra = fmt.Sprintf("%d/%d collections", pr.CollectionsTotal, pr.CollectionsTotal)
		b.update(pr.Bytes, pr.EstimatedBytes, fmt.Sprintf("%d docs, %d/%d collections", pr.Documents, pr.CollectionsDone, pr.CollectionsTotal))
	}
}

func waitBackup(ctx context.Context, env *Env, c *client.Client, slot string) error {
	err := followBackup(ctx, env, c, slot)
	return interrupted(ctx, err, jobGoesOn(env, cmdName(slot, ""), cmdName(slot, "status"), " (a cancelled backup removes its partial file)"))
}

func followBackup(ctx context.Context, env *Env, c *client.Client, slot string) error {
	label := "backup"
	if slot == api.SlotSensitive {
		label = "backup-sensitive"
	}
	ph := newPhases(env, label)
	defer ph.finish()
	for {
		st, raw, err := getStatus(ctx, c, slot)
		if err != nil {
			return err
		}
		switch st.Message {
		case "Backup in progress":
			var p progressArgs
			json.Unmarshal(st.Arguments, &p)
			showBackup(ph, p.Progress)
		case "Backup found":
			// Done: the last phase's bar ends complete, whatever the
			// last poll saw.
			ph.done()
			env.Stdout.Write(append(compact(raw), '\n'))
			return nil
		case "Backup failed":
			ph.finish()
			var f api.BackupFailed
			json.Unmarshal(st.Arguments, &f)
			if f.Code == string(api.CodeInsufficientSpace) {
				// The job's own free-space check (the 202 answered on an
				// estimate): the exit code of the refusal before a 202.
				return codeForJobError(f.Code, "backup failed: "+f.Error)
			}
			return fmt.Errorf("backup failed: %s", f.Error)
		default:
			ph.finish()
			env.Stdout.Write(append(compact(raw), '\n'))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func compact(raw []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// RunBackupStatus prints the slot's status as one compact JSON line.
func RunBackupStatus(ctx context.Context, env *Env, slot string) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	st, raw, err := getStatus(ctx, c, slot)
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(compact(raw), '\n'))
	// The remote copy, for people, on stderr: stdout stays the original's
	// one JSON line.
	if line := remoteLine(st.Arguments); line != "" {
		fmt.Fprintln(env.Stderr, line)
	}
	return err
}

// RunBackupStatusWait is backup-status --wait: a running backup is followed
// with a bar to its end, as backup --wait does, then the status line is
// printed (a failed one exits 1 naming its error); without a running
// backup it prints the status line at once.
func RunBackupStatusWait(ctx context.Context, env *Env, slot string) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	return waitBackup(ctx, env, c, slot)
}

// RunBackupDelete deletes the slot's backup.
func RunBackupDelete(ctx context.Context, env *Env, slot string) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.JSON(ctx, http.MethodDelete, api.PathSlot+slot, nil, &raw); err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(compact(raw), '\n'))
	return err
}

// RetrieveOptions are the options of backup-retrieve.
type RetrieveOptions struct {
	Output string
	Force  bool
	// Remote names a copy in the node's remote store (remote.go).
	Remote string
}

func retrieveFlags(fs *pflag.FlagSet, slot string) runFunc {
	var o RetrieveOptions
	fs.StringVarP(&o.Output, "output", "o", "", "write to `FILE`")
	fs.BoolVar(&o.Force, "force", false, "replace an existing file")
	if slot == api.SlotBackup {
		fs.StringVar(&o.Remote, "remote", "", "retrieve the copy `NAME` (as `backups` lists it) from the node's remote store, through the node")
	}
	return func(ctx context.Context, env *Env, pos []string) error { return runRetrieveCmd(ctx, env, slot, o, pos) }
}

func runRetrieveCmd(ctx context.Context, env *Env, slot string, o RetrieveOptions, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s takes no arguments (use -o FILE)", cmdName(slot, "retrieve"))
	}
	if o.Remote != "" {
		return RunRetrieveRemote(ctx, env, o)
	}
	return RunRetrieve(ctx, env, slot, o)
}

// DefaultRetrieveName is the original's download file name.
func DefaultRetrieveName(slot string) string { return cmdName(slot, "retrieve") + ".tar.gz.enc" }

// RunRetrieve downloads the slot's backup, resuming a partial download of
// the same backup, and checks md5 and sha256 before the file gets its name.
func RunRetrieve(ctx context.Context, env *Env, slot string, o RetrieveOptions) error {
	if o.Output == "" {
		o.Output = DefaultRetrieveName(slot)
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	st, _, err := getStatus(ctx, c, slot)
	if err != nil {
		return err
	}
	if st.Message != "Backup found" {
		return &NotFoundError{Msg: fmt.Sprintf("nothing to retrieve: %s", st.Message)}
	}
	var want foundArgs
	if err := json.Unmarshal(st.Arguments, &want); err != nil || want.SHA256 == "" {
		return fmt.Errorf("node status lacks checksums")
	}
	return retrieveTo(ctx, env, c, o, want, api.PathSlot+slot+"/file", cmdName(slot, "retrieve"), "the node's")
}

// checkFoundArgs refuses what a node or bucket returned before any of it
// names a file (issue 25.7): the sha256 goes into the partial file's name,
// so "/../../../../zzz" made a retrieve delete a file outside the output's
// directory, and one shorter than 16 characters panicked. Checksums must
// be lowercase hex of their length, the size not negative. The value is
// not quoted: it may hold terminal escapes.
func checkFoundArgs(want foundArgs, from string) error {
	if !isLowerHex(want.SHA256, sha256.Size*2) || !isLowerHex(want.MD5, md5.Size*2) || want.Size < 0 {
		return &IntegrityError{Msg: fmt.Sprintf("%s checksums or size are malformed (want hex md5 and sha256, a size of 0 or more): nothing written", from)}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// retrieveTo downloads the file at path of the API into o.Output,
// resuming a partial download of the same file, and checks md5 and sha256
// against want (whose checksums are "from") before the file gets its name.
func retrieveTo(ctx context.Context, env *Env, c *client.Client, o RetrieveOptions, want foundArgs, path, cmd, from string) error {
	if err := checkFoundArgs(want, from); err != nil {
		return err
	}
	if existing, err := fileSHA256(o.Output); err == nil {
		if existing == want.SHA256 {
			fmt.Fprintf(env.Stdout, "%s already holds backup %s; md5 %s and sha256 match %s\n", o.Output, want.Name, want.MD5, from)
			return nil
		}
		if !o.Force {
			return &RefusedError{Msg: fmt.Sprintf("%s exists and is not backup %s; use --force to replace it, or -o to choose another file", o.Output, want.Name)}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	// The partial file's name carries the backup's sha256, so a resumed
	// download can only continue the same backup.
	part := filepath.Join(filepath.Dir(o.Output), "."+filepath.Base(o.Output)+"."+want.SHA256[:16]+".part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	hmd5, hsha := md5.New(), sha256.New()
	have, err := io.Copy(io.MultiWriter(hmd5, hsha), f)
	if err != nil {
		return err
	}
	if have > want.Size {
		// Longer than the backup: not a prefix of it.
		if err := f.Truncate(0); err != nil {
			return err
		}
		f.Seek(0, io.SeekStart)
		hmd5.Reset()
		hsha.Reset()
		have = 0
	}
	if have > 0 {
		fmt.Fprintf(env.Stderr, "a0cli: resuming download at byte %d of %d\n", have, want.Size)
	}
	if have < want.Size || want.Size == 0 {
		if err := download(ctx, env, c, path, cmd, f, have, want, hmd5, hsha); err != nil {
			return err
		}
	}
	gotMD5, gotSHA := hex.EncodeToString(hmd5.Sum(nil)), hex.EncodeToString(hsha.Sum(nil))
	if gotMD5 != want.MD5 || gotSHA != want.SHA256 {
		f.Close()
		os.Remove(part)
		short := "node"
		if from != "the node's" {
			short = "record"
		}
		return &IntegrityError{Msg: fmt.Sprintf("downloaded file does not match %s checksums (md5 %s, %s %s; sha256 %s, %s %s): removed it, run %s again",
			from, gotMD5, short, want.MD5, gotSHA, short, want.SHA256, cmd)}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, o.Output); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Retrieved backup %s into %s (%s); md5 %s and sha256 %s match %s\n",
		want.Name, o.Output, human(want.Size), gotMD5, gotSHA, from)
	return nil
}

func download(ctx context.Context, env *Env, c *client.Client, path, cmd string, f *os.File, have int64, want foundArgs, hmd5, hsha hash.Hash) error {
	d, err := c.GetFile(ctx, path, have, want.SHA256)
	if err != nil {
		return interrupted(ctx, err, downloadStopped(have, want.Size, cmd))
	}
	defer d.Body.Close()
	if d.SHA256 != want.SHA256 {
		return fmt.Errorf("the backup on the node changed while retrieving; run %s again", cmd)
	}
	if d.Offset != have {
		// The node sent the whole file: start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		hmd5.Reset()
		hsha.Reset()
		have = 0
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	b := newBar(env, "retrieve")
	b.initial = have
	defer b.finish()
	pw := &progressWriter{n: have, f: func(n int64) { b.update(n, want.Size, "") }}
	n, err := copyHashed(io.MultiWriter(f, hsha, pw), hmd5, d.Body)
	if err == nil && want.Size > 0 && have+n < want.Size {
		// The body ended early without an error: as interrupted.
		err = fmt.Errorf("the node sent %d of %d bytes", have+n, want.Size)
	}
	if err != nil {
		f.Sync()
		if ctx.Err() != nil {
			// Ctrl-C: nothing runs on the node for a download; what
			// arrived is kept for the next run to resume.
			return interrupted(ctx, ctx.Err(), downloadStopped(pw.n, want.Size, cmd))
		}
		return &client.ConnError{Node: c.Node(), Err: fmt.Errorf("download interrupted at byte %d (run the command again to resume): %w", pw.n, err)}
	}
	return nil
}

// downloadStopped is what Ctrl-C during a download says: nothing runs on
// the node for it, and what arrived is kept for the next run to resume.
func downloadStopped(at, size int64, cmd string) string {
	return fmt.Sprintf("the download stopped at byte %d of %d (kept in a hidden .part file beside the output); the backup stays on the node, nothing runs there: the same %s command resumes the download",
		at, size, cmd)
}

// copyHashed copies r to w and to side (md5, the slowest hash) in three
// stages on their own goroutines: reading (TLS decryption) fills the next
// 1 MiB buffer while the last one is hashed by side and, at the same time,
// written to w (sha256, the file). Retrieving then runs at the speed of the
// slowest stage, not of all of them in series. Only io.EOF from r ends the
// copy: any other error, io.ErrUnexpectedEOF included (what the HTTP client
// returns for a body cut short), is returned. A failed write stops the
// reading; everything read before a failed read is written first, so the
// partial file is a prefix a later run resumes. It returns the bytes
// written to w.
func copyHashed(w io.Writer, side hash.Hash, r io.Reader) (int64, error) {
	const nbuf, size = 3, 1 << 20
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, size)
	}
	full := make(chan []byte, nbuf)
	var failed atomic.Bool
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for b := range full {
			if res.err == nil {
				hashed := make(chan struct{})
				go func() {
					side.Write(b)
					close(hashed)
				}()
				k, err := w.Write(b)
				res.n += int64(k)
				if err != nil {
					res.err = err
					failed.Store(true)
				}
				<-hashed
			}
			free <- b[:size]
		}
		done <- res
	}()
	var rerr error
	for eof := false; !eof && rerr == nil && !failed.Load(); {
		b := <-free
		k := 0
		for k < len(b) {
			m, err := r.Read(b[k:])
			k += m
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				rerr = err
				break
			}
		}
		if k > 0 {
			full <- b[:k]
		} else {
			free <- b
		}
	}
	close(full)
	res := <-done
	if res.err != nil {
		return res.n, res.err
	}
	return res.n, rerr
}

type progressWriter struct {
	n int64
	f func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	p.f(p.n)
	return len(b), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
