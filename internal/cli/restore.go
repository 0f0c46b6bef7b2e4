package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
)

// remoteAny is --remote given without a NAME (restore --to-time T
// --remote): the node chooses the copy.
const remoteAny = "*"

// RestoreOptions are the options of restore.
type RestoreOptions struct {
	PasswordOptions
	IdentityOptions
	File string
	Drop bool
	NS   stringList
	// NSFrom and NSTo rename what NS selects (mongorestore's
	// --nsFrom/--nsTo pairs).
	NSFrom, NSTo stringList
	DryRun       bool
	Plain        bool
	Detach       bool
	JSON         bool
	// StopOnError and UsersAndRoles are mongorestore's --stopOnError and
	// --restoreDbUsersAndRoles.
	StopOnError   bool
	UsersAndRoles bool
	// Remote names a copy in the node's remote store (remote.go).
	Remote string
	// ToTime and ToTS restore to a point in time (pitrrestore.go).
	ToTime string
	ToTS   string
}

func restoreFlags(fs *pflag.FlagSet) runFunc {
	var o RestoreOptions
	o.flags(fs)
	o.identityFlags(fs)
	fs.BoolVar(&o.Drop, "drop", false, "drop target collections that hold documents before restoring them")
	fs.Var(&o.NS, "ns", "restore only `DB.COLL` ('*' wildcards; repeat for more)")
	fs.Var(&o.NSFrom, "ns-from", "restore the namespaces matching `PATTERN` under the name the next --ns-to gives them ('*' or $var$ captures, as mongorestore's --nsFrom; repeat in pairs); the old names are not touched")
	fs.Var(&o.NSTo, "ns-to", "the new name `PATTERN` of the --ns-from before it (as mongorestore's --nsTo)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan, write nothing")
	fs.BoolVar(&o.Plain, "plain", false, "FILE is a plain mongodump directory packed as .tar.gz (not encrypted)")
	fs.BoolVar(&o.Detach, "detach", false, "start the restore and return; follow it with restore-status")
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	fs.BoolVar(&o.StopOnError, "stop-on-error", false, "stop at the first document the server refuses (default: count and report them, exit 6)")
	fs.BoolVar(&o.UsersAndRoles, "users-and-roles", false, "also restore the dump's users and roles (admin.system.users, admin.system.roles)")
	fs.StringVar(&o.Remote, "remote", "", "restore the copy `NAME` from the node's remote store (the node downloads and authenticates it first); with --to-time/--to-ts and no NAME: from the remote store alone (its newest fitting copy and its oplog slices)")
	// --remote alone (restore --to-time T --remote) chooses the copy:
	// pflag then leaves "--remote NAME" 's NAME as the positional word,
	// which runRestoreCmd gives back to --remote.
	fs.Lookup("remote").NoOptDefVal = remoteAny
	fs.StringVar(&o.ToTime, "to-time", "", "restore to the point in time `T` (RFC 3339, e.g. 2026-12-06T10:15:00Z): the stored backup, then the oplog archive up to every entry of that second")
	fs.StringVar(&o.ToTS, "to-ts", "", "restore to the exact oplog position `T,I` (inclusive), as oplog-find prints it")
	return func(ctx context.Context, env *Env, pos []string) error { return runRestoreCmd(ctx, env, o, pos) }
}

func runRestoreCmd(ctx context.Context, env *Env, o RestoreOptions, pos []string) error {
	if len(pos) > 1 {
		return usagef("usage: restore [FILE] [password options | --identity FILE] [--drop] [--ns DB.COLL]... [--ns-from PATTERN --ns-to PATTERN]... [--dry-run] [--plain] [--detach] [--stop-on-error] [--users-and-roles]")
	}
	if o.Remote == remoteAny && o.ToTime == "" && o.ToTS == "" {
		// restore --remote NAME, as before the flag's value was optional.
		if len(pos) != 1 {
			return usagef("restore --remote NAME: give the copy's name (as `a0cli backups` lists it), or --to-time/--to-ts to choose one")
		}
		o.Remote, pos = pos[0], nil
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
	// A renaming that cannot parse is refused before anything is sent.
	if _, err := restore.NewRenamer(o.NSFrom, o.NSTo); err != nil {
		return usagef("%v", err)
	}
	if len(o.NSFrom) > 0 && o.UsersAndRoles {
		return usagef("--users-and-roles cannot go with --ns-from: users and roles live in admin, which a renaming cannot write")
	}
	if o.ToTime != "" || o.ToTS != "" {
		return runPITRRestore(ctx, env, o)
	}
	if o.Remote != "" && (o.File != "" || o.Plain) {
		return usagef("restore --remote NAME takes no FILE and no --plain")
	}
	if o.Plain && o.File == "" {
		return usagef("restore --plain needs a FILE (a mongodump directory packed as .tar.gz, or a mongodump --archive file)")
	}
	var (
		pw      string
		fileKey []byte
		c       *client.Client
		err     error
	)
	defer func() { clear(fileKey) }()
	if !o.Plain {
		// A backup encrypted to public keys (format v2) is opened here: the
		// identity unwraps the file key locally and only that key is sent.
		var hdr []byte
		switch {
		case o.File != "":
			hdr, err = readLocalHeader(o.File)
		case o.Remote != "":
			if c, err = env.client(ctx); err == nil {
				hdr, err = readRemoteHeader(ctx, c, o.Remote)
			}
		case len(o.Identities) > 0 || !o.passwordGiven(env):
			if c, err = env.client(ctx); err == nil {
				hdr, err = readStoredHeader(ctx, c)
			}
		}
		if err != nil {
			return err
		}
		if crypt.Version(hdr) == 2 {
			ids, err := o.load(env)
			if err != nil {
				return err
			}
			if fileKey, err = unwrapFileKey(env, hdr, ids, &o.PasswordOptions); err != nil {
				return err
			}
		} else if pw, err = o.resolve(env, false); err != nil {
			return err
		} else if len(hdr) > 0 {
			// A version 1 file: its header checks the password (issue 28.3).
			// Checked here, before a file is uploaded or a copy downloaded
			// to be refused at the end; a wrong one costs one derivation.
			if err := checkPasswordLocally(hdr, pw); err != nil {
				return err
			}
		}
	}
	if c == nil {
		if c, err = env.client(ctx); err != nil {
			return err
		}
	}
	req := api.RestoreRequest{Password: pw, FileKey: fileKey, Plain: o.Plain, Drop: o.Drop, NS: o.NS, NSFrom: o.NSFrom, NSTo: o.NSTo, DryRun: o.DryRun,
		StopOnError: o.StopOnError, UsersAndRoles: o.UsersAndRoles, Remote: o.Remote}
	if o.File != "" {
		id, sum, err := uploadFile(ctx, env, c, o.File)
		if err != nil {
			return interrupted(ctx, err, "the upload stopped before the restore started: nothing runs on the node and the database is unchanged; the same restore command resumes the upload")
		}
		req.UploadID, req.UploadSHA256 = id, sum
	}
	return startRestore(ctx, env, c, o, req)
}

// startRestore asks the node for the restore req and follows it (restore,
// restore --to-ts): one way to start, announce and follow a restore.
func startRestore(ctx context.Context, env *Env, c *client.Client, o RestoreOptions, req api.RestoreRequest) error {
	var out api.Message
	if err := c.JSON(ctx, http.MethodPost, api.PathRestore, req, &out); err != nil {
		return interrupted(ctx, err, fmt.Sprintf("the restore may have started on the node: see `a0cli %s restore-status`, and stop it with `a0cli %s cancel`", env.targetArgs(), env.targetArgs()))
	}
	// With --json stdout holds one JSON document, nothing else.
	switch {
	case o.JSON && o.Detach:
		b, _ := json.Marshal(out)
		env.Stdout.Write(append(b, '\n'))
	case o.JSON:
	case o.Detach && o.DryRun:
		fmt.Fprintln(env.Stdout, "Dry run in progress: nothing will be written.")
	case o.Detach:
		fmt.Fprintln(env.Stdout, out.Message)
	}
	if o.Detach {
		fmt.Fprintln(env.Stderr, "a0cli: follow it with restore-status")
		return nil
	}
	// The node's "Restore in progress." is printed once the node writes
	// (issue 28.7): a dry run never writes, and a refusal (wrong
	// password, damaged file, non-empty targets) comes before the first
	// write, after the whole file is authenticated.
	return followRestoreAnnounced(ctx, env, c, o.JSON, !o.JSON)
}

// restoreGoesOn is what an interrupted follower of a restore says.
func restoreGoesOn(env *Env) string {
	return jobGoesOn(env, "restore", "restore-status", " (a restore cancelled after its first write leaves the database partly restored, and says what it wrote)")
}

// checkPasswordLocally opens a version 1 header with pw on the workstation:
// a wrong password is refused as the node would refuse it (exit 6), with
// nothing sent.
func checkPasswordLocally(hdr []byte, pw string) error {
	_, err := crypt.NewReader(bytes.NewReader(hdr), []byte(pw))
	if errors.Is(err, crypt.ErrWrongPassword) {
		return fmt.Errorf("wrong password for this backup (checked on this workstation against the file's header; nothing was sent to the node): %w", err)
	}
	return err
}

// upload sends a file to the node, resuming what the node already holds.
// The upload is named after the file's sha256, so a rerun finds it.
func upload(ctx context.Context, env *Env, c *client.Client, path string) (string, error) {
	id, _, err := uploadFile(ctx, env, c, path)
	return id, err
}

// uploadFile is upload that also returns the file's sha256, for the
// request to name (api.RestoreRequest.UploadSHA256): the node then refuses
// an upload whose bytes are not this file's.
func uploadFile(ctx context.Context, env *Env, c *client.Client, path string) (string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", &NotFoundError{Msg: fmt.Sprintf("no such file: %s", path)}
		}
		return "", "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	id := sum[:32]
	info, err := c.UploadInfo(ctx, id)
	if err != nil {
		return "", "", err
	}
	have := info.Size
	if have > 0 && have <= st.Size() {
		// What the node holds must be this file's first bytes: another
		// key holder may have uploaded other content under this id.
		ph := sha256.New()
		if _, err := io.Copy(ph, io.NewSectionReader(f, 0, have)); err != nil {
			return "", "", err
		}
		if hex.EncodeToString(ph.Sum(nil)) != info.SHA256 {
			fmt.Fprintf(env.Stderr, "a0cli: the node's upload %s is not this file's content: uploading it again\n", id)
			have = st.Size() + 1 // start over
		}
	}
	if have > st.Size() {
		if err := c.JSON(ctx, http.MethodDelete, api.PathUploads+id, nil, nil); err != nil {
			return "", "", err
		}
		have = 0
	}
	if have == st.Size() && have > 0 {
		return id, sum, nil
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
			return "", "", fmt.Errorf("upload interrupted at byte %d (run the command again to resume): %w", have, err)
		}
		have = size
	}
	return id, sum, nil
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

// restoreStatus is the decoded restore-status answer: its arguments are
// api.JobRunning[api.RestoreProgress] or api.RestoreFailed (a finished
// restore's without code and error), by its message.
type restoreStatus = api.Reply[json.RawMessage]

// showRestore draws one poll of a running restore, in its phase, each
// with its own figures: downloading (from the remote store),
// authenticating (the file's bytes, before the first write), data (bytes
// and documents of the plan), indexes (collections whose indexes are
// built), oplog (entries replayed, of the backup's), checking (the counts
// read back).
func showRestore(ph *phases, p api.RestoreProgress) {
	switch {
	case p.Phase == "downloading":
		ph.enter("downloading", "").status("the backup from the remote store")
	case p.Phase == "authenticating" && p.FileBytesTotal > 0 && p.FileBytes < p.FileBytesTotal:
		ph.enter("authenticating", "").update(p.FileBytes, p.FileBytesTotal, "every byte before the first write")
	case p.Phase == "authenticating":
		// Every byte read: the plan and the target's check.
		b := ph.enter("authenticating", "")
		if p.FileBytesTotal > 0 {
			b.update(p.FileBytesTotal, p.FileBytesTotal, "every byte before the first write")
		} else {
			b.status("every byte before the first write")
		}
	case p.Step == restore.StepIndexes:
		ph.enter("indexes", "collections").update(p.CollectionsDone, p.CollectionsTotal, "")
	case p.Step == restore.StepOplog && p.OplogEntriesTotal > 0:
		ph.enter("oplog", "entries").update(p.OplogApplied, p.OplogEntriesTotal, "replayed")
	case p.Step == restore.StepOplog:
		ph.enter("oplog", "").status(fmt.Sprintf("%d entries replayed", p.OplogApplied))
	case p.Step == restore.StepReport:
		ph.enter("checking", "").status("the counts read back")
	default:
		b := ph.enter("data", "")
		b.setItems(p.Documents, p.DocumentsTotal)
		b.doneExtra = fmt.Sprintf("%d/%d docs", p.DocumentsTotal, p.DocumentsTotal)
		b.update(p.Bytes, p.BytesTotal, fmt.Sprintf("%d/%d docs", p.Documents, p.DocumentsTotal))
	}
}

func followRestore(ctx context.Context, env *Env, c *client.Client, asJSON bool) error {
	return followRestoreAnnounced(ctx, env, c, asJSON, false)
}

func followRestoreAnnounced(ctx context.Context, env *Env, c *client.Client, asJSON, announce bool) error {
	return interrupted(ctx, followRestoreLoop(ctx, env, c, asJSON, announce), restoreGoesOn(env))
}

// writingPhases are the result phases of a restore that wrote to the
// database (api.RestoreResult.Phase).
var writingPhases = map[string]bool{"done": true, "failed": true}

// followRestoreAnnounced is followRestore that, with announce, prints
// "Restore in progress." once the node starts writing to the database
// (before the report when the restore ended between two polls).
func followRestoreLoop(ctx context.Context, env *Env, c *client.Client, asJSON, announce bool) error {
	ph := newPhases(env, "restore")
	defer ph.finish()
	announced := !announce
	say := func() {
		if !announced {
			announced = true
			fmt.Fprintln(env.Stdout, "Restore in progress.")
		}
	}
	for {
		var raw json.RawMessage
		if err := c.JSON(ctx, http.MethodGet, api.PathRestoreStatus, nil, &raw); err != nil {
			return err
		}
		var st restoreStatus
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		var ended api.RestoreFailed
		if st.Message == "Restore in progress" {
			var running api.JobRunning[api.RestoreProgress]
			json.Unmarshal(st.Arguments, &running)
			if running.Progress.Phase == "restoring" {
				say()
			}
			showRestore(ph, running.Progress)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
			continue
		}
		json.Unmarshal(st.Arguments, &ended)
		if st.Message == "Restore finished" {
			ph.done()
		}
		ph.finish()
		var res api.RestoreResult
		if json.Unmarshal(ended.Result, &res) == nil && writingPhases[res.Phase] {
			say()
		}
		if asJSON {
			env.Stdout.Write(append(compact(raw), '\n'))
		} else {
			printRestoreResult(env, ended.Result)
		}
		if st.Message == "Restore failed" {
			return codeForJobError(ended.Code, "restore failed: "+ended.Error)
		}
		if st.Message == "No restore found" {
			return &NotFoundError{Msg: "no restore has run on this node"}
		}
		if !asJSON {
			msg := st.Message
			if res.Phase == "dry-run" {
				msg = "Dry run finished: nothing was written"
			}
			fmt.Fprintln(env.Stdout, msg)
		}
		return nil
	}
}

func printRestoreResult(env *Env, raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	var res api.RestoreResult
	if json.Unmarshal(raw, &res) != nil {
		return
	}
	w := env.Stdout
	if p := res.Plan; p != nil {
		what := "plain dump (no manifest)"
		if p.Created != "" {
			what = fmt.Sprintf("backup of %s (%s)", p.Created, p.Consistency)
		}
		fmt.Fprintf(w, "%s: %d collections, %d documents, %d oplog entries\n", what, len(p.Collections), p.Documents, p.OplogEntries)
		if res.Phase == "dry-run" || res.Phase == "planned" {
			fmt.Fprintf(w, "would restore: %s\n", strings.Join(p.Collections, ", "))
		}
		if len(p.Renamed) > 0 {
			// The mapping, old name first, in the old names' order.
			from := make([]string, 0, len(p.Renamed))
			for ns := range p.Renamed {
				from = append(from, ns)
			}
			sort.Strings(from)
			fmt.Fprintln(w, "renamed (the old names are not touched):")
			for _, ns := range from {
				fmt.Fprintf(w, "  %s -> %s\n", ns, p.Renamed[ns])
			}
		}
		// What else the restore writes, and what it leaves out: an
		// operator deciding on --drop must see every target.
		if len(p.NonEmpty) > 0 {
			if res.Phase == "dry-run" {
				fmt.Fprintf(w, "already hold documents (--drop drops and replaces them; without it the restore refuses them): %s\n", strings.Join(p.NonEmpty, ", "))
			}
		}
		if res.Phase == "cancelled" {
			written := "none"
			if len(res.Written) > 0 {
				written = strings.Join(res.Written, ", ")
			}
			fmt.Fprintf(w, "cancelled part way, the database is partly restored; collections holding documents: %s\n", written)
		}
		if len(p.OplogOnly) > 0 {
			fmt.Fprintf(w, "also written by the oplog (created during the dump; dropped first with --drop): %s\n", strings.Join(p.OplogOnly, ", "))
		}
		if len(p.Skipped) > 0 && len(p.Renamed) > 0 {
			fmt.Fprintf(w, "not restored (system collections, local, config, outside --ns, not renamed by --ns-from): %s\n", strings.Join(p.Skipped, ", "))
		} else if len(p.Skipped) > 0 {
			fmt.Fprintf(w, "not restored (system collections, local, config, users and roles without --users-and-roles, outside --ns): %s\n", strings.Join(p.Skipped, ", "))
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
			if c.DocumentsFailed > 0 {
				mark += fmt.Sprintf(" (%d documents refused: %d duplicate keys, %d validation failures)", c.DocumentsFailed, c.DuplicateKeys, c.ValidationFailures)
			}
			if r.ServerRetries > 0 && !c.CountCompared && r.OplogReplay == "writes" {
				// A replayed write sent again: the failed send may
				// have written part of it (restore.Report).
				mark += " (count not compared: a write was sent again)"
			}
			fmt.Fprintf(w, "%-40s %12d %12d %8d %8d  %s\n", c.Namespace, c.DocumentsExpected, c.DocumentsFound, c.IndexesExpected, c.IndexesFound, mark)
			// Say which index the server refused and why: the count
			// alone does not tell an operator what is missing.
			for _, e := range c.IndexErrors {
				fmt.Fprintf(w, "  index not restored: %s\n", e)
			}
		}
		if r.OplogReplay != "" {
			// Each skipped entry by namespace, then the totals line.
			for _, reason := range sortedKeys(r.OplogSkippedNS) {
				fmt.Fprintf(w, "oplog not replayed, %s: %s\n", reason, skippedText(r.OplogSkippedNS[reason]))
			}
			line := fmt.Sprintf("oplog: %d entries replayed (%s)", r.OplogApplied, r.OplogReplay)
			if skipped := skippedText(r.OplogSkipped); skipped != "" {
				line += "; not replayed: " + skipped
			}
			fmt.Fprintln(w, line)
		}
		if r.ServerRetries > 0 {
			fmt.Fprintf(w, "server busy: %d commands sent again (transient SQLITE_BUSY)\n", r.ServerRetries)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func restoreStatusFlags(fs *pflag.FlagSet) runFunc {
	wait := fs.Bool("wait", false, "follow the running restore with a progress bar to its report")
	// Arguments are ignored, as they always were.
	return func(ctx context.Context, env *Env, _ []string) error { return runRestoreStatus(ctx, env, *wait) }
}

func runRestoreStatus(ctx context.Context, env *Env, wait bool) error {
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	if wait {
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

func restoreSensitiveFlags(fs *pflag.FlagSet) runFunc {
	var o RestoreSensitiveOptions
	o.flags(fs)
	fs.BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	return func(ctx context.Context, env *Env, pos []string) error {
		return runRestoreSensitiveCmd(ctx, env, o, pos)
	}
}

func runRestoreSensitiveCmd(ctx context.Context, env *Env, o RestoreSensitiveOptions, pos []string) error {
	if len(pos) != 1 {
		return usagef("usage: restore-sensitive FILE [password options] [--yes]")
	}
	o.File = pos[0]
	o.EnvVars = []string{"A0_BACKUP_SENSITIVE_PASSWORD", "A0_BACKUP_PASSWORD"}
	return RunRestoreSensitive(ctx, env, o)
}

// RunRestoreSensitive uploads a sensitive backup, shows what it would
// replace, asks for confirmation (unless Yes) and restores it. When the node
// then presents the certificate restored from the file, that certificate
// becomes the node's pin: its fingerprint comes from the file, which the CLI
// authenticates itself first, so the next command is not refused.
func RunRestoreSensitive(ctx context.Context, env *Env, o RestoreSensitiveOptions) error {
	pw, err := o.resolve(env, false)
	if err != nil {
		return err
	}
	capture := map[string][]byte{certEntry: nil}
	oo := OfflineOptions{PasswordOptions: PasswordOptions{Password: pw}, File: o.File}
	res, err := verifyFile(ctx, env, &oo, capture)
	if err != nil {
		return err
	}
	if res.Manifest.Kind != manifest.KindSensitive {
		return &api.Error{Code: api.CodeBadRequest, Message: "this is an ordinary backup, not a sensitive one: use restore"}
	}
	cert, err := certDER(capture[certEntry])
	if err != nil {
		return &IntegrityError{Msg: fmt.Sprintf("%s: %s: %v", o.File, certEntry, err)}
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	id, sum, err := uploadFile(ctx, env, c, o.File)
	if err != nil {
		return err
	}
	var plan sensitiveAnswer
	req := api.RestoreSensitiveRequest{UploadID: id, Password: pw, UploadSHA256: sum}
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &plan); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "restore-sensitive will write:")
	printSensitivePlan(env, plan)
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
	var done sensitiveAnswer
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &done); err != nil {
		return err
	}
	printSensitiveDone(env, done)
	if cert != nil {
		if _, err := repinRestored(ctx, env, cert); err != nil {
			return fmt.Errorf("restored, but could not check the node's certificate: %w", err)
		}
	}
	return nil
}

// skippedText lists the oplog entries a restore did not replay, by reason.
func skippedText(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
