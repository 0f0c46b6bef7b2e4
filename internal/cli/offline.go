package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/oplog"
	"github.com/a0backup/a0/internal/restore"
)

// OfflineOptions are the options of verify and decrypt.
type OfflineOptions struct {
	PasswordOptions
	IdentityOptions
	File   string
	Output string
	Legacy bool
	JSON   bool
	// ExpectName (verify --expect-name) is the backup the file must be,
	// by its authenticated manifest (issue 25 point 1).
	ExpectName string
	// Oplog is verify --oplog DIR: downloaded oplog slices (oplogverify.go).
	Oplog string
	// RestoreTest (verify --restore-test) restores the file into a
	// throwaway embedded server in a temporary directory under
	// RestoreTestDir (os.TempDir() when empty) and compares it with its
	// manifest (restoretest.go).
	RestoreTest    bool
	RestoreTestDir string
	warned         bool
	// fileKey is a version 2 file's key once unwrapped, so a second pass
	// over the file does not ask again. RunVerify and RunDecrypt clear it.
	fileKey []byte
}

func offlineFlags(fs *pflag.FlagSet, o *OfflineOptions, withOutput bool) {
	o.flags(fs)
	o.identityFlags(fs)
	fs.BoolVar(&o.Legacy, "legacy", false, "the file is in the original appliance's format (openssl enc -aes-256-ctr -md md5 -nosalt): no MAC, not authenticated")
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	if withOutput {
		fs.StringVarP(&o.Output, "output", "o", "", "write to `FILE`")
	}
}

// offlineArgs takes verify's and decrypt's one FILE.
func offlineArgs(name string, o *OfflineOptions, pos []string) error {
	if len(pos) != 1 {
		return usagef("usage: %s FILE [password options]", name)
	}
	o.File = pos[0]
	o.EnvVars = []string{"A0_BACKUP_PASSWORD"}
	return nil
}

// openEncrypted opens FILE and returns its plaintext stream: authenticated
// chunk by chunk (a0 format, with bf to read it again), or unauthenticated
// (--legacy, bf nil).
func openEncrypted(env *Env, o *OfflineOptions) (stream io.Reader, bf *backupfile.File, closer io.Closer, err error) {
	f, err := os.Open(o.File)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil, &NotFoundError{Msg: fmt.Sprintf("no such file: %s", o.File)}
		}
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if !o.Legacy {
		if bf, err = openA0(env, o, f); err != nil {
			return nil, nil, nil, err
		}
		return bf.First(), bf, f, nil
	}
	pw, err := o.resolve(env, false)
	if err != nil {
		return nil, nil, nil, err
	}
	// Later passes over the same file must not ask again.
	o.PasswordOptions = PasswordOptions{Password: pw, EnvVars: o.EnvVars}
	br := bufio.NewReaderSize(f, 1<<20)
	if prefix, _ := br.Peek(8); crypt.IsA0(prefix) {
		return nil, nil, nil, usagef("%s is an a0 file, not a legacy one: drop --legacy", o.File)
	}
	if !o.warned {
		fmt.Fprintln(env.Stderr, "a0cli: warning: a legacy file (original appliance format) has no MAC: it cannot be authenticated, only decrypted")
		o.warned = true
	}
	return crypt.NewLegacyReader(br, []byte(pw)), nil, f, nil
}

// openA0 opens an a0 file (backupfile.Open): a version 2 file with the
// file key that the identities (or the password) given unwrap, once, kept
// in o for later passes; a version 1 file with the password, or, when none
// was given explicitly, the sensitive backup's (as for recover,
// A0_BACKUP_SENSITIVE_PASSWORD is tried next).
func openA0(env *Env, o *OfflineOptions, f *os.File) (*backupfile.File, error) {
	hdr, err := crypt.ReadHeader(f)
	if err != nil && !errors.Is(err, crypt.ErrNotA0) {
		return nil, err
	}
	if err == nil && crypt.Version(hdr) == 2 {
		if o.fileKey == nil {
			ids, err := o.load(env)
			if err != nil {
				return nil, err
			}
			if o.fileKey, err = unwrapFileKey(env, hdr, ids, &o.PasswordOptions); err != nil {
				return nil, err
			}
		}
		return backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{FileKey: o.fileKey}})
	}
	explicit := o.Password != "" || o.PasswordFile != "" || o.Positional != ""
	pw, err := o.resolve(env, false)
	if err != nil {
		return nil, err
	}
	// Later passes over the same file must not ask again.
	o.PasswordOptions = PasswordOptions{Password: pw, EnvVars: o.EnvVars}
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: []byte(pw)}})
	if errors.Is(err, crypt.ErrNotA0) {
		return nil, fmt.Errorf("%s: %w (a file of the original appliance? try --legacy)", o.File, crypt.ErrNotA0)
	}
	if alt := env.Getenv("A0_BACKUP_SENSITIVE_PASSWORD"); errors.Is(err, crypt.ErrWrongPassword) && !explicit && alt != "" && alt != pw {
		if bf, err = backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: []byte(alt)}}); err == nil {
			o.PasswordOptions = PasswordOptions{Password: alt, EnvVars: o.EnvVars}
		}
	}
	return bf, err
}

func verifyFlags(fs *pflag.FlagSet) runFunc {
	var o OfflineOptions
	offlineFlags(fs, &o, false)
	fs.StringVar(&o.ExpectName, "expect-name", "", "refuse (exit 6) unless the file's authenticated manifest proves it is backup `NAME` (a name as `a0cli backups` lists it)")
	fs.StringVar(&o.Oplog, "oplog", "", "verify the oplog slices in `DIR` (downloaded from <device>/backup/oplog or <prefix>/oplog): every slice authentic, the chain unbroken, the windows it proves; with FILE, also the base backup and what it restores to")
	fs.BoolVar(&o.RestoreTest, "restore-test", false, "also restore the backup into a throwaway embedded server (a temporary directory, removed afterwards) and compare every collection with what the dump wrote: document count, content digest, indexes; prints the restore time; exit 6 on any difference")
	fs.StringVar(&o.RestoreTestDir, "restore-test-dir", "", "make the restore test's temporary directory in `DIR` (default: the system's temporary directory); it needs five times the backup's BSON size free")
	return func(ctx context.Context, env *Env, pos []string) error {
		if o.RestoreTest && (o.Oplog != "" || o.Legacy) {
			return usagef("verify --restore-test takes an a0 backup file: not with --oplog or --legacy")
		}
		if o.RestoreTestDir != "" && !o.RestoreTest {
			return usagef("--restore-test-dir goes with --restore-test")
		}
		if o.Oplog != "" {
			if len(pos) > 1 {
				return usagef("usage: verify --oplog DIR [FILE] [--identity FILE]")
			}
			if len(pos) == 1 {
				o.File = pos[0]
			}
			o.EnvVars = []string{"A0_BACKUP_PASSWORD"}
			return RunVerifyOplog(ctx, env, o)
		}
		if err := offlineArgs("verify", &o, pos); err != nil {
			return err
		}
		return RunVerify(ctx, env, o)
	}
}

// VerifyResult is what verify prints with --json.
type VerifyResult struct {
	File       string   `json:"file"`
	Authentic  bool     `json:"authentic"`
	Legacy     bool     `json:"legacy,omitempty"`
	Format     string   `json:"format,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	// RecipientKeys are Recipients in the fingerprint form other commands
	// use (see RecipientKey); listed also when no key given opens the file.
	RecipientKeys []RecipientKey `json:"recipient_keys,omitempty"`
	// Error is why the file could not be opened, when verify --json lists
	// the recipients of a file none of the keys given opens.
	Error       string               `json:"error,omitempty"`
	Manifest    *manifest.Manifest   `json:"manifest,omitempty"`
	Entries     int                  `json:"entries"`
	PlainBytes  int64                `json:"plaintext_bytes"`
	Collections []VerifiedCollection `json:"collections,omitempty"`
	Files       []manifest.File      `json:"files,omitempty"`
	// Users and Roles count admin.system.users and admin.system.roles:
	// restored only with restore --users-and-roles.
	Users int64 `json:"users,omitempty"`
	Roles int64 `json:"roles,omitempty"`
	// OplogKinds counts oplog.bson's operations by entry kind, as the
	// restore's decision table names them (docs/consistency.md).
	OplogKinds map[string]int64 `json:"oplog_kinds,omitempty"`
	// RestoreTest is verify --restore-test's result (package drill).
	RestoreTest *drill.Report `json:"restore_test,omitempty"`
}

// VerifiedCollection is a collection as found in the archive.
type VerifiedCollection struct {
	Namespace string `json:"namespace"`
	Documents int64  `json:"documents"`
	Bytes     int64  `json:"bytes"`
}

// RunVerify authenticates every byte of a backup file, checks its archive
// against its manifest and prints what it holds.
func RunVerify(ctx context.Context, env *Env, o OfflineOptions) error {
	res, err := verifyFile(ctx, env, &o, nil)
	if err != nil {
		if len(res.RecipientKeys) > 0 {
			printUnopened(env, o, res, err)
		}
		return err
	}
	if o.ExpectName != "" {
		// Only the authenticated manifest proves which backup a file is:
		// its file name, and the record of a remote copy, do not.
		if res.Manifest == nil || !res.Authentic {
			return &IntegrityError{Msg: fmt.Sprintf("%s has no authenticated manifest to prove it is backup %s", o.File, o.ExpectName)}
		}
		if err := res.Manifest.CheckName(o.ExpectName); err != nil {
			return &IntegrityError{Msg: err.Error()}
		}
	}
	if o.JSON {
		if err := printCompact(env, res); err != nil {
			return err
		}
		return restoreTestFailed(res.RestoreTest)
	}
	if res.Manifest == nil {
		printLegacy(env, res)
		return nil
	}
	printVerify(env, res)
	if res.RestoreTest != nil {
		printRestoreTest(env, res.RestoreTest)
	}
	return restoreTestFailed(res.RestoreTest)
}

// printUnopened lists whom a file that none of the keys given opens is
// encrypted to (from its header, not authenticated), so the operator can
// find the key among `a0agent keys` or `a0cli show-key`; the error itself
// follows on stderr, with the exit code of a wrong key.
func printUnopened(env *Env, o OfflineOptions, res VerifyResult, err error) {
	if o.JSON {
		res.Error = err.Error()
		printCompact(env, res)
		return
	}
	w := env.Stdout
	fmt.Fprintf(w, "NOT OPENED: none of the keys given opens %s\n", res.File)
	fmt.Fprintf(w, "format:       %s\n", res.Format)
	for _, rk := range res.RecipientKeys {
		fmt.Fprintf(w, "  opens with: %s\n", rk)
	}
}

// describeHeader fills res's format and recipients from a version 2
// file's header alone, for a file none of the keys given opens.
func describeHeader(env *Env, o *OfflineOptions, res *VerifyResult) {
	hdr, err := readLocalHeader(o.File)
	if err != nil || hdr == nil {
		return
	}
	descs, err := crypt.HeaderStanzas(hdr)
	if err != nil || len(descs) == 0 {
		return
	}
	res.Recipients, res.RecipientKeys = descs, recipientKeys(env, descs)
	res.Format = fmt.Sprintf("a0enc v%d, file key for %d recipient(s)", crypt.Version(hdr), len(descs))
}

func printLegacy(env *Env, res VerifyResult) {
	fmt.Fprintf(env.Stdout, "DECRYPTED (legacy, not authenticated): %s: %d entries, %s of archive\n", res.File, res.Entries, human(res.PlainBytes))
	for _, c := range res.Collections {
		fmt.Fprintf(env.Stdout, "  %-40s %10d docs %12s\n", c.Namespace, c.Documents, human(c.Bytes))
	}
}

// verifyFile authenticates every byte of a backup file and checks its
// archive against its manifest. capture, when not nil, names small entries
// whose contents to keep (a sensitive backup's certificate): they are filled
// in only when the whole file is authentic.
func verifyFile(ctx context.Context, env *Env, o *OfflineOptions, capture map[string][]byte) (VerifyResult, error) {
	res, err := verifyStream(ctx, env, o, capture)
	if err != nil {
		for k := range capture {
			capture[k] = nil
		}
	}
	return res, err
}

func verifyStream(ctx context.Context, env *Env, o *OfflineOptions, capture map[string][]byte) (VerifyResult, error) {
	stream, bf, closer, err := openEncrypted(env, o)
	if err != nil {
		res := VerifyResult{File: o.File}
		if !o.Legacy && unopenedErr(err) {
			describeHeader(env, o, &res)
		}
		return res, err
	}
	defer closer.Close()
	res := VerifyResult{File: o.File, Legacy: o.Legacy}
	defer clear(o.fileKey)
	if bf != nil {
		res.Format, res.Recipients, res.RecipientKeys = fileFormat(env, bf)
	}
	counter := &countingReader{r: stream}
	found, files, man, n, err := walkArchive(ctx, counter, capture)
	if err == nil {
		_, err = io.Copy(io.Discard, counter) // authenticate to the last byte
	}
	if bf != nil && bf.Err() != nil {
		// The file is damaged or cut: say so, with crypt's chunk and
		// offset, not what the archive parser made of the authentic
		// plaintext ending there ("truncated document").
		err = bf.Err()
	}
	if err != nil && o.Legacy && ctx.Err() == nil {
		// No MAC to say so first: a wrong password shows as a stream that
		// is not a tar.gz.
		return res, &IntegrityError{Msg: fmt.Sprintf("%s does not decrypt to a tar.gz archive (wrong password, or not a file of the original appliance): %v", o.File, err)}
	}
	if err != nil {
		return res, err
	}
	res.Entries, res.PlainBytes, res.Manifest = n, counter.n, man
	if man == nil && o.Legacy {
		// The original appliance wrote plain mongodump directories: list
		// what decrypts, which is all that can be said of such a file.
		for name, c := range found {
			res.Collections = append(res.Collections, VerifiedCollection{Namespace: name, Documents: c.Documents, Bytes: c.Bytes})
		}
		sort.Slice(res.Collections, func(i, j int) bool { return res.Collections[i].Namespace < res.Collections[j].Namespace })
		return res, nil
	}
	if man == nil {
		return res, &IntegrityError{Msg: "the archive has no manifest.json: not an a0 backup (a plain mongodump archive restores with restore --plain)"}
	}
	switch man.Kind {
	case manifest.KindBackup:
		if !o.Legacy {
			plan, err := planFile(ctx, bf)
			if err != nil {
				return res, err
			}
			res.OplogKinds = plan.OplogKinds
		}
		for _, c := range man.Collections {
			got := found[c.BSONFile]
			if c.BSONFile != "" && (got.Documents != c.Documents || got.Bytes != c.Bytes) {
				return res, &IntegrityError{Msg: fmt.Sprintf("%s: manifest says %d documents / %d bytes, archive holds %d / %d", c.Namespace(), c.Documents, c.Bytes, got.Documents, got.Bytes)}
			}
			res.Collections = append(res.Collections, VerifiedCollection{Namespace: c.Namespace(), Documents: got.Documents, Bytes: got.Bytes})
			switch c.Namespace() {
			case "admin.system.users":
				res.Users = got.Documents
			case "admin.system.roles":
				res.Roles = got.Documents
			}
		}
	case manifest.KindSensitive:
		// Exactly the listed files: nothing more, nothing from a database.
		if len(found) > 0 || len(files) != len(man.Files) {
			return res, &IntegrityError{Msg: fmt.Sprintf("a sensitive backup whose manifest lists %d files holds %d files and %d collections", len(man.Files), len(files), len(found))}
		}
		for _, f := range man.Files {
			if files[f.Path] != f.SHA256 {
				return res, &IntegrityError{Msg: fmt.Sprintf("%s does not match its manifest", f.Path)}
			}
		}
		res.Files = man.Files
	}
	if o.RestoreTest {
		if man.Kind != manifest.KindBackup {
			return res, usagef("verify --restore-test: %s is a %s backup, which holds no database to restore", o.File, man.Kind)
		}
		rt, err := restoreTest(ctx, env, o, bf, man.TotalBytes())
		if err != nil {
			return res, err
		}
		res.RestoreTest = rt
	}
	res.Authentic = !o.Legacy
	return res, nil
}

// planFile runs the node's own pre-restore validation (restore.Plan: the
// mongodump layout, every metadata.json, every BSON document, the manifest's
// position and counts) over the file, so that verify accepts exactly what a
// restore would. It is the second pass over the open file, with the keys of
// the first: one key derivation per verify, as in a restore.
func planFile(ctx context.Context, bf *backupfile.File) (*restore.PlanResult, error) {
	stream, err := bf.Reopen()
	if err != nil {
		return nil, err
	}
	plan, err := restore.Plan(ctx, stream, restore.Options{})
	if ce := (*crypt.CorruptError)(nil); errors.As(err, &ce) {
		// The file changed since the first pass authenticated it.
		return nil, ce
	}
	if err != nil {
		return nil, &IntegrityError{Msg: "the archive would be refused by restore: " + err.Error()}
	}
	return plan, nil
}

// fileFormat is what verify and decrypt say of an open a0 file's format
// and, for version 2, its recipients.
func fileFormat(env *Env, bf *backupfile.File) (format string, recipients []string, rks []RecipientKey) {
	h := bf.Header()
	if h.Version < 2 {
		return fmt.Sprintf("a0enc v%d, %s, %d KiB chunks", h.Version, kdfText(h), h.ChunkSize>>10), nil, nil
	}
	recipients = bf.Stanzas()
	format = fmt.Sprintf("a0enc v%d, file key for %d recipient(s), %d KiB chunks", h.Version, len(recipients), h.ChunkSize>>10)
	return format, recipients, recipientKeys(env, recipients)
}

func kdfText(h crypt.HeaderInfo) string {
	if h.KDF == crypt.KDFArgon2id {
		return fmt.Sprintf("argon2id (t=%d, m=%d MiB, p=%d)", h.Argon2Time, h.Argon2MemoryKiB>>10, h.Argon2Threads)
	}
	return fmt.Sprintf("%s (%d iterations)", h.KDF, h.PBKDF2Iterations)
}

func printVerify(env *Env, r VerifyResult) {
	w := env.Stdout
	m := r.Manifest
	if r.Authentic {
		fmt.Fprintf(w, "OK: every byte of %s is authentic (%s of archive)\n", r.File, human(r.PlainBytes))
		fmt.Fprintf(w, "format:       %s\n", r.Format)
		for _, rk := range r.RecipientKeys {
			fmt.Fprintf(w, "  opens with: %s\n", rk)
		}
	} else {
		fmt.Fprintf(w, "DECRYPTED (legacy, not authenticated): %s\n", r.File)
	}
	fmt.Fprintf(w, "kind:         %s (manifest v%d, %s)\n", m.Kind, m.FormatVersion, m.ToolVersion)
	if m.Name != "" {
		fmt.Fprintf(w, "name:         %s\n", m.Name)
	} else {
		fmt.Fprintf(w, "name:         not recorded (a backup made before a0 recorded names); its creation gives %s\n", m.BackupName())
	}
	fmt.Fprintf(w, "created:      %s, took %s\n", m.Started.Format("2006-01-02 15:04:05 UTC"), m.Finished.Sub(m.Started).Round(1e6))
	src := m.Source.Node
	if m.Source.ServerVersion != "" {
		src += ", server " + m.Source.ServerVersion
	}
	fmt.Fprintf(w, "source:       %s\n", src)
	if m.Kind == manifest.KindSensitive {
		fmt.Fprintf(w, "files:        %d\n", len(r.Files))
		for _, f := range r.Files {
			fmt.Fprintf(w, "  %-40s %04o %8d B  from %s\n", f.Path, f.Mode, f.Size, f.Origin)
		}
		return
	}
	cons := m.Consistency
	if m.ConsistentTo != nil {
		cons += fmt.Sprintf(" to %s (ts %d,%d; %d oplog entries)", m.ConsistentTo.Wall.Format("2006-01-02 15:04:05.000 UTC"), m.ConsistentTo.T, m.ConsistentTo.I, m.OplogEntries)
	}
	fmt.Fprintf(w, "consistency:  %s\n", cons)
	if len(r.OplogKinds) > 0 {
		fmt.Fprintf(w, "oplog:        %s\n", oplogKindsText(r.OplogKinds))
	}
	fmt.Fprintf(w, "collections:  %d\n", len(r.Collections))
	var docs, bytes int64
	for _, c := range r.Collections {
		fmt.Fprintf(w, "  %-40s %10d docs %12s\n", c.Namespace, c.Documents, human(c.Bytes))
		docs += c.Documents
		bytes += c.Bytes
	}
	fmt.Fprintf(w, "total:        %d documents, %s of BSON\n", docs, human(bytes))
	if r.Users > 0 || r.Roles > 0 {
		fmt.Fprintf(w, "users, roles: %d users, %d roles (restored only with restore --users-and-roles)\n", r.Users, r.Roles)
	}
	printChanges(w, m.ChangedDuringDump)
}

// printChanges lists the collections dropped, renamed or recreated while
// the dump ran (they are not, or not under their old name, in the backup).
func printChanges(w io.Writer, changes []manifest.Change) {
	if len(changes) == 0 {
		return
	}
	fmt.Fprintf(w, "changed during the dump: %d\n", len(changes))
	for _, c := range changes {
		what := c.Change
		switch c.Change {
		case manifest.ChangeRenamed:
			what = "renamed to " + c.DB + "." + c.NewName + " (in the backup under that name)"
		case manifest.ChangeDropped:
			what = "dropped (not in the backup)"
		case manifest.ChangeRecreated:
			what = "dropped and created again (the new one is in the backup)"
		}
		fmt.Fprintf(w, "  %-40s %s\n", c.DB+"."+c.Name, what)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// walkArchive reads every entry of a tar.gz: it counts the documents of
// .bson entries, hashes other entries, and decodes the manifest.
func walkArchive(ctx context.Context, r io.Reader, capture map[string][]byte) (map[string]VerifiedCollection, map[string]string, *manifest.Manifest, int, error) {
	ar, err := archive.NewReader(r, archive.Limits{})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	defer ar.Close()
	found := map[string]VerifiedCollection{}
	files := map[string]string{}
	var man *manifest.Manifest
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, n, err
		}
		e, err := ar.Next()
		if err == io.EOF {
			return found, files, man, n, nil
		}
		if err != nil {
			return nil, nil, nil, n, err
		}
		n++
		switch {
		case e.Name == manifest.Name:
			if man, err = manifest.Decode(ar); err != nil {
				return nil, nil, nil, n, &IntegrityError{Msg: err.Error()}
			}
		case strings.HasSuffix(e.Name, ".bson"):
			docs, err := countBSON(ar)
			if err != nil {
				return nil, nil, nil, n, &IntegrityError{Msg: fmt.Sprintf("%s: %v", e.Name, err)}
			}
			found[e.Name] = VerifiedCollection{Namespace: e.Name, Documents: docs, Bytes: e.Size}
		default:
			h := sha256.New()
			var w io.Writer = h
			var kept bytes.Buffer
			if _, ok := capture[e.Name]; ok && e.Size <= 1<<20 {
				w = io.MultiWriter(h, &kept)
			}
			if _, err := io.Copy(w, ar); err != nil {
				return nil, nil, nil, n, err
			}
			if kept.Len() > 0 {
				capture[e.Name] = kept.Bytes()
			}
			files[e.Name] = hex.EncodeToString(h.Sum(nil))
		}
	}
}

// countBSON counts length-prefixed documents without decoding them.
func countBSON(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var n int64
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("truncated document %d: %w", n, err)
		}
		size := int64(binary.LittleEndian.Uint32(hdr[:]))
		if size < 5 || size > 48<<20 {
			return n, fmt.Errorf("document %d has an impossible length %d", n, size)
		}
		if _, err := br.Discard(int(size - 4)); err != nil {
			return n, fmt.Errorf("truncated document %d: %w", n, err)
		}
		n++
	}
}

func decryptFlags(fs *pflag.FlagSet) runFunc {
	var o OfflineOptions
	offlineFlags(fs, &o, true)
	return func(ctx context.Context, env *Env, pos []string) error {
		if err := offlineArgs("decrypt", &o, pos); err != nil {
			return err
		}
		return RunDecrypt(ctx, env, o)
	}
}

// DecryptResult is what decrypt prints with --json: verify --json's names
// for what both say (file, authentic, legacy, format, recipients,
// recipient_keys, plaintext_bytes) and where the plaintext went.
type DecryptResult struct {
	File          string         `json:"file"`
	Output        string         `json:"output"`
	Authentic     bool           `json:"authentic"`
	Legacy        bool           `json:"legacy,omitempty"`
	Format        string         `json:"format,omitempty"`
	Recipients    []string       `json:"recipients,omitempty"`
	RecipientKeys []RecipientKey `json:"recipient_keys,omitempty"`
	PlainBytes    int64          `json:"plaintext_bytes"`
}

// RunDecrypt writes the plain .tar.gz of an encrypted backup. The output
// gets its name only once every byte is authenticated; "-" streams to stdout.
func RunDecrypt(ctx context.Context, env *Env, o OfflineOptions) error {
	if o.Output == "" {
		o.Output = strings.TrimSuffix(o.File, ".enc")
		if o.Output == o.File {
			o.Output = o.File + ".tar.gz"
		}
	}
	stream, bf, closer, err := openEncrypted(env, &o)
	defer clear(o.fileKey)
	if err != nil {
		return err
	}
	defer closer.Close()
	if o.Legacy {
		// No MAC: the one check there is, that the plaintext starts as a
		// gzip stream does (what the original appliance wrote), catches a
		// wrong password before anything is written.
		br := bufio.NewReader(stream)
		if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
			return &IntegrityError{Msg: fmt.Sprintf("%s does not decrypt to a gzip stream (wrong password, or not a file of the original appliance)", o.File)}
		}
		stream = br
	}
	res := DecryptResult{File: o.File, Output: o.Output, Authentic: !o.Legacy, Legacy: o.Legacy}
	if bf != nil {
		res.Format, res.Recipients, res.RecipientKeys = fileFormat(env, bf)
	}
	if o.Output == "-" {
		n, err := io.CopyBuffer(env.Stdout, stream, make([]byte, 1<<20))
		if err != nil || !o.JSON {
			return err
		}
		// stdout carries the archive: the result goes to stderr.
		res.PlainBytes = n
		return printCompact(&Env{Stdout: env.Stderr}, res)
	}
	if _, err := os.Stat(o.Output); err == nil {
		return &RefusedError{Msg: fmt.Sprintf("%s exists: choose another -o", o.Output)}
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.Output), "."+filepath.Base(o.Output)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.CopyBuffer(tmp, stream, make([]byte, 1<<20))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.Output); err != nil {
		return err
	}
	if o.JSON {
		res.PlainBytes = n
		return printCompact(env, res)
	}
	what := "authenticated"
	if o.Legacy {
		what = "NOT authenticated (legacy format)"
	}
	fmt.Fprintf(env.Stdout, "Decrypted %s into %s (%s, %s)\n", o.File, o.Output, human(n), what)
	return nil
}

// oplogKindsText lists oplog operations by kind, marking those a restore
// skips (counted, never silently).
func oplogKindsText(kinds map[string]int64) string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		p := fmt.Sprintf("%s %d", k, kinds[k])
		if oplog.Skips(oplog.Kind(k)) {
			p += " (skipped)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
