package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/statedir"
)

// RecoverOptions are the options of recover.
type RecoverOptions struct {
	// Data is the ordinary backup's password sources; Sensitive the
	// sensitive backup's.
	Data, Sensitive PasswordOptions
	SensitiveFile   string
	BackupFile      string
	Yes             bool
	// MaxAgeGap is how much older than the data backup the sensitive one
	// may be without asking.
	MaxAgeGap      time.Duration
	AllowOtherNode bool
	Drop           bool
}

// DefaultMaxAgeGap is recover's --max-age-gap.
const DefaultMaxAgeGap = 7 * 24 * time.Hour

// certEntry is where a sensitive backup holds the node's certificate.
const certEntry = "state/secrets/tls.crt"

// recoverPauseEnv names a step after which recover waits for a line on
// stdin: tests stop the agent there, between two steps, without timing.
const recoverPauseEnv = "A0CLI_TEST_PAUSE_AFTER"

func recoverFlags(fs *pflag.FlagSet) runFunc {
	var o RecoverOptions
	o.Data.flags(fs)
	fs.StringVar(&o.Sensitive.Password, "sensitive-password", "", "the sensitive backup's `PASSWORD` (prefer --sensitive-password-file or the environment)")
	fs.StringVar(&o.Sensitive.PasswordFile, "sensitive-password-file", "", "read the sensitive backup's password from `FILE`")
	fs.StringVar(&o.SensitiveFile, "sensitive", "", "the sensitive backup `FILE` (from backup-sensitive-retrieve)")
	fs.StringVar(&o.BackupFile, "backup", "", "the data backup `FILE` (from backup-retrieve)")
	fs.BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	fs.DurationVar(&o.MaxAgeGap, "max-age-gap", DefaultMaxAgeGap, "the most by which the sensitive backup may be older than the data backup without asking (a `DURATION` such as 720h)")
	fs.BoolVar(&o.AllowOtherNode, "allow-other-node", false, "accept backups made on two different nodes")
	fs.BoolVar(&o.Drop, "drop", false, "replace collections that already hold documents")
	return func(ctx context.Context, env *Env, pos []string) error { return runRecoverCmd(ctx, env, o, pos) }
}

func runRecoverCmd(ctx context.Context, env *Env, o RecoverOptions, pos []string) error {
	if len(pos) > 0 || o.SensitiveFile == "" || o.BackupFile == "" {
		return usagef("usage: recover --sensitive FILE --backup FILE [password options] [--yes] [--max-age-gap DURATION]")
	}
	o.Data.EnvVars = []string{"A0_BACKUP_PASSWORD"}
	o.Data.Prompt = "Password of the backup: "
	o.Sensitive.EnvVars = []string{"A0_BACKUP_SENSITIVE_PASSWORD", "A0_BACKUP_PASSWORD"}
	o.Sensitive.Prompt = "Password of the sensitive backup: "
	return RunRecover(ctx, env, o)
}

// recoverState is what $A0CLI_HOME/recover/<key>.json records of one
// recovery: which steps are done, so that a rerun goes on from the first
// that is not. The key is made of the node and both files' sha256, so
// another node or other files start afresh.
type recoverState struct {
	Node            string               `json:"node"`
	SensitiveFile   string               `json:"sensitive_file"`
	SensitiveSHA256 string               `json:"sensitive_sha256"`
	BackupFile      string               `json:"backup_file"`
	BackupSHA256    string               `json:"backup_sha256"`
	Done            map[string]time.Time `json:"done"`
	// DataStarted: a data restore was started, so the database may hold
	// part of it and the next attempt replaces it (--drop).
	DataStarted bool `json:"data_started,omitempty"`
	path        string
}

func (s *recoverState) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(b, '\n'), 0o600)
}

func (s *recoverState) mark(step string) error {
	s.Done[step] = time.Now().UTC()
	return s.save()
}

func loadRecoverState(home, node, sensPath, sensSHA, dataPath, dataSHA string) (*recoverState, error) {
	sum := sha256.Sum256([]byte(strings.ToLower(node) + "\n" + sensSHA + "\n" + dataSHA))
	p := filepath.Join(home, "recover", hex.EncodeToString(sum[:16])+".json")
	s := &recoverState{Node: node, SensitiveFile: sensPath, SensitiveSHA256: sensSHA, BackupFile: dataPath, BackupSHA256: dataSHA,
		Done: map[string]time.Time{}, path: p}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("recover state %s is unreadable (remove it to start over): %w", p, err)
	}
	if s.Done == nil {
		s.Done = map[string]time.Time{}
	}
	s.path = p
	return s, nil
}

// recoverRun is one run of recover: what the offline check learnt.
type recoverRun struct {
	env            *Env
	o              RecoverOptions
	node           string
	state          *recoverState
	sens           VerifyResult
	data           *VerifyResult // nil when the check was done by an earlier run
	cert           []byte        // DER of the certificate the sensitive backup holds
	dataPW, sensPW string
}

// recoverSteps run in this order; each is recorded once done. node-status
// follows them on every run.
var recoverSteps = []struct {
	name string
	what string
	run  func(r *recoverRun, ctx context.Context) error
}{
	{"check", "check both files offline", (*recoverRun).check},
	{"sensitive", "restore the sensitive configuration", (*recoverRun).restoreSensitive},
	{"data", "restore the data", (*recoverRun).restoreData},
	{"roles", "restore the node's roles and backup device", (*recoverRun).restoreRoles},
}

// RunRecover recovers a node from its two backups, step by step, resuming
// from the first step an earlier run did not finish.
func RunRecover(ctx context.Context, env *Env, o RecoverOptions) error {
	node, err := env.node()
	if err != nil {
		return err
	}
	sensSHA, err := fileSHA256(o.SensitiveFile)
	if err != nil {
		return missingFile(o.SensitiveFile, err)
	}
	dataSHA, err := fileSHA256(o.BackupFile)
	if err != nil {
		return missingFile(o.BackupFile, err)
	}
	st, err := loadRecoverState(env.Home, node, o.SensitiveFile, sensSHA, o.BackupFile, dataSHA)
	if err != nil {
		return err
	}
	r := &recoverRun{env: env, o: o, node: node, state: st}
	if r.sensPW, err = o.Sensitive.resolve(env, false); err != nil {
		return err
	}
	if st.Done["roles"].IsZero() && st.Done["data"].IsZero() {
		if r.dataPW, err = o.Data.resolve(env, false); err != nil {
			return err
		}
	}
	if len(st.Done) > 0 {
		var done []string
		for _, s := range recoverSteps {
			if !st.Done[s.name].IsZero() {
				done = append(done, s.name)
			}
		}
		fmt.Fprintf(env.Stdout, "recover of %s: continuing (done: %s; state in %s)\n", node, strings.Join(done, ", "), st.path)
	}
	// The sensitive backup is read on every run: it is small, and its
	// certificate and role configuration are needed by the later steps.
	if err := r.checkSensitive(ctx); err != nil {
		return recoverFailed("check", st, err)
	}
	if !st.Done["check"].IsZero() {
		// A run stopped between restoring the certificate and pinning
		// it: the node presents the restored certificate now.
		if err := r.repin(ctx); err != nil {
			return recoverFailed("sensitive", st, err)
		}
	}
	for _, s := range recoverSteps {
		if !st.Done[s.name].IsZero() {
			continue
		}
		fmt.Fprintf(env.Stdout, "== %s: %s\n", s.name, s.what)
		if err := s.run(r, ctx); err != nil {
			return recoverFailed(s.name, st, err)
		}
		if err := st.mark(s.name); err != nil {
			return err
		}
		if env.Getenv != nil && env.Getenv(recoverPauseEnv) == s.name {
			fmt.Fprintf(env.Stderr, "a0cli: paused after step %s (%s): press Enter to go on\n", s.name, recoverPauseEnv)
			var line string
			fmt.Fscanln(env.Stdin, &line)
		}
	}
	fmt.Fprintln(env.Stdout, "== node-status")
	if err := runNodeStatus(ctx, env, NodeStatusOptions{}); err != nil {
		return fmt.Errorf("recovered, but node-status failed: %w", err)
	}
	// Done: a later recover of this node from the same files starts afresh.
	if err := os.Remove(st.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fmt.Fprintf(env.Stdout, "Node %s recovered\n", node)
	return nil
}

func missingFile(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &NotFoundError{Msg: fmt.Sprintf("no such file: %s", path)}
	}
	return err
}

// recoverFailed says which step failed and how to go on; the error's kind
// (and so the exit code) is kept.
func recoverFailed(step string, st *recoverState, err error) error {
	hint := "fix the cause and run the same recover command again: it continues with this step"
	if step == "check" {
		hint = "nothing was changed on the node"
	}
	return &recoverError{step: step, hint: hint, err: err}
}

type recoverError struct {
	step, hint string
	err        error
}

func (e *recoverError) Error() string {
	return fmt.Sprintf("recover step %q failed: %v\n%s", e.step, e.err, e.hint)
}

func (e *recoverError) Unwrap() error { return e.err }

// checkSensitive authenticates the sensitive backup and keeps its manifest
// and certificate.
func (r *recoverRun) checkSensitive(ctx context.Context) error {
	capture := map[string][]byte{certEntry: nil}
	oo := OfflineOptions{PasswordOptions: PasswordOptions{Password: r.sensPW}, File: r.o.SensitiveFile}
	res, err := verifyFile(ctx, r.env, &oo, capture)
	if err != nil {
		return fmt.Errorf("sensitive backup %s: %w", r.o.SensitiveFile, err)
	}
	if res.Manifest.Kind != manifest.KindSensitive {
		return usagef("%s is an ordinary backup, not a sensitive one: give it as --backup", r.o.SensitiveFile)
	}
	r.sens = res
	if r.cert, err = certDER(capture[certEntry]); err != nil {
		return &IntegrityError{Msg: fmt.Sprintf("sensitive backup %s: %s: %v", r.o.SensitiveFile, certEntry, err)}
	}
	return nil
}

func certDER(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, nil // a backup without the certificate: nothing to pin
	}
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return b.Bytes, nil
}

// check is the offline step: both files authentic, from the same node, the
// sensitive one not much older than the data one.
func (r *recoverRun) check(ctx context.Context) error {
	oo := OfflineOptions{PasswordOptions: PasswordOptions{Password: r.dataPW}, File: r.o.BackupFile}
	data, err := verifyFile(ctx, r.env, &oo, nil)
	if err != nil {
		return fmt.Errorf("backup %s: %w", r.o.BackupFile, err)
	}
	if data.Manifest.Kind != manifest.KindBackup {
		return usagef("%s is a sensitive backup, not an ordinary one: give it as --sensitive", r.o.BackupFile)
	}
	r.data = &data
	sm, dm := r.sens.Manifest, data.Manifest
	w := r.env.Stdout
	fmt.Fprintf(w, "OK: %s is authentic: sensitive backup of %s made %s, %d files\n", r.o.SensitiveFile, sm.Source.Node, sm.Started.Format(time.RFC3339), len(sm.Files))
	fmt.Fprintf(w, "OK: %s is authentic: backup of %s made %s, %d collections\n", r.o.BackupFile, dm.Source.Node, dm.Started.Format(time.RFC3339), len(data.Collections))
	if sm.Source.Node != dm.Source.Node && !r.o.AllowOtherNode {
		return &RefusedError{Msg: fmt.Sprintf("the backups come from different nodes (sensitive: %q, data: %q); pass --allow-other-node if that is what you mean", sm.Source.Node, dm.Source.Node)}
	}
	if gap := dm.Started.Sub(sm.Started); gap > r.o.MaxAgeGap {
		msg := fmt.Sprintf("the sensitive backup is %s older than the data backup (more than --max-age-gap %s): keys made or changed in between are not in it", gap.Round(time.Minute), r.o.MaxAgeGap)
		if !r.env.Interactive {
			return &RefusedError{Msg: msg + "; confirm on a terminal or raise --max-age-gap"}
		}
		if !r.ask(msg + ". Go on anyway? [y/N] ") {
			return &RefusedError{Msg: "not confirmed: nothing changed"}
		}
	}
	return nil
}

func (r *recoverRun) ask(q string) bool {
	fmt.Fprint(r.env.Stderr, q)
	var answer string
	fmt.Fscanln(r.env.Stdin, &answer)
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}

// repin pins the certificate of the sensitive backup when the node presents
// it: its fingerprint comes from the authenticated file, and the TLS
// handshake proves the node holds its key.
func (r *recoverRun) repin(ctx context.Context) error {
	if r.cert == nil {
		return nil
	}
	_, err := repinRestored(ctx, r.env, r.cert)
	return err
}

// repinRestored makes der the node's pin if the node presents it now; it
// reports whether the pin changed.
func repinRestored(ctx context.Context, env *Env, der []byte) (bool, error) {
	node, err := env.node()
	if err != nil {
		return false, err
	}
	got, err := client.Presented(ctx, node)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(got, der) {
		return false, nil
	}
	path := filepath.Join(env.Home, "known_nodes")
	known := keys.KnownNodes{Path: path}
	var changed *keys.ChangedCertError
	pinnedNow, err := known.Check(node, der)
	switch {
	case err == nil && !pinnedNow:
		return false, nil
	case err != nil && !errors.As(err, &changed):
		return false, err
	case err != nil:
		if err := known.Repin(node, keys.Fingerprint(der)); err != nil {
			return false, err
		}
	}
	env.say(fmt.Sprintf("a0cli: %s now presents the certificate restored from the sensitive backup: pinned %s in %s", node, keys.Fingerprint(der), path))
	return true, nil
}

// sensitiveAnswer is restore-sensitive's answer, plan or result (a plan
// decodes as a result without keys, reloaded or restart_needed_for).
type sensitiveAnswer = api.Reply[api.SensitiveRestored]

func printSensitivePlan(env *Env, plan sensitiveAnswer) {
	for _, f := range plan.Arguments.Files {
		state := "new"
		if f.Exists && f.Changes {
			state = "REPLACES a different file"
		} else if f.Exists {
			state = "identical"
		}
		if f.Skipped {
			state = "SKIPPED: " + f.Reason
		}
		fmt.Fprintf(env.Stdout, "  %-50s %s (%s)\n", f.Target, f.Mode, state)
	}
}

func printSensitiveDone(env *Env, done sensitiveAnswer) {
	fmt.Fprintf(env.Stdout, "%s: %d files; reloaded: %s\n", done.Message, len(done.Arguments.Files)-len(done.Arguments.Skipped), strings.Join(done.Arguments.Reloaded, ", "))
	// The identity files need a consent given on the node itself: say
	// which were left as they are, never silently.
	for _, f := range done.Arguments.Skipped {
		fmt.Fprintf(env.Stdout, "skipped: %s (%s)\n", f.Target, f.Reason)
	}
	if done.Arguments.RestartNeededFor != "" {
		fmt.Fprintf(env.Stdout, "note: %s\n", done.Arguments.RestartNeededFor)
	}
}

// restoreSensitive shows everything recover will replace, asks, and
// restores the sensitive configuration; the agent takes the keys into use
// in place, and the restored certificate becomes the pin.
func (r *recoverRun) restoreSensitive(ctx context.Context) error {
	c, err := r.env.client(ctx)
	if err != nil {
		return err
	}
	id, sum, err := uploadFile(ctx, r.env, c, r.o.SensitiveFile)
	if err != nil {
		return err
	}
	req := api.RestoreSensitiveRequest{UploadID: id, Password: r.sensPW, UploadSHA256: sum}
	var plan sensitiveAnswer
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &plan); err != nil {
		return err
	}
	w := r.env.Stdout
	fmt.Fprintf(w, "recover will, on %s:\n", r.node)
	fmt.Fprintln(w, "1. write the sensitive configuration:")
	printSensitivePlan(r.env, plan)
	if r.data != nil {
		var docs int64
		for _, col := range r.data.Collections {
			docs += col.Documents
		}
		fmt.Fprintf(w, "2. restore the data: %d collections, %d documents (backup made %s)\n", len(r.data.Collections), docs, r.data.Manifest.Started.Format(time.RFC3339))
	}
	if dev := r.sens.Manifest.Source.Device; dev != "" {
		fmt.Fprintf(w, "3. give the node the roles %v with the backup device %s (if it exists on the node)\n", r.sens.Manifest.Source.Roles, dev)
	}
	if !r.o.Yes {
		if !r.env.Interactive {
			return usagef("recover replaces the node's keys and data: confirm on a terminal or pass --yes")
		}
		if !r.ask("Recover the node? [y/N] ") {
			return &RefusedError{Msg: "not confirmed: nothing changed"}
		}
	}
	req.Confirm = true
	var done sensitiveAnswer
	if err := c.JSON(ctx, http.MethodPost, api.PathRestoreSens, req, &done); err != nil {
		return err
	}
	printSensitiveDone(r.env, done)
	if len(done.Arguments.Skipped) > 0 {
		fmt.Fprintf(r.env.Stdout, "note: the node kept its own identity (%d files skipped): to restore it too, on the node run\n  a0agent allow-recovery --state-dir DIR\nthen\n  a0cli -t %s restore-sensitive %s\n", len(done.Arguments.Skipped), r.env.Target, r.o.SensitiveFile)
	}
	if done.Arguments.RestartNeededFor != "" {
		return errors.New("the agent could not take every restored key into use: " + done.Arguments.RestartNeededFor)
	}
	return r.repin(ctx)
}

// restoreData restores the data backup with the usual report. A restore
// still running from an interrupted run is followed, not started again.
func (r *recoverRun) restoreData(ctx context.Context) error {
	c, err := r.env.client(ctx)
	if err != nil {
		return err
	}
	var rs restoreStatus
	if err := c.JSON(ctx, http.MethodGet, api.PathRestoreStatus, nil, &rs); err != nil {
		return err
	}
	if rs.Message == "Restore in progress" && r.state.DataStarted {
		fmt.Fprintln(r.env.Stdout, "a restore started by an earlier run is in progress: following it")
		return followRestore(ctx, r.env, c, false)
	}
	drop := r.o.Drop || r.state.DataStarted
	r.state.DataStarted = true
	if err := r.state.save(); err != nil {
		return err
	}
	return RunRestore(ctx, r.env, RestoreOptions{PasswordOptions: PasswordOptions{Password: r.dataPW}, File: r.o.BackupFile, Drop: drop})
}

// restoreRoles gives the node back the backup role and device recorded in
// the sensitive backup, when that device exists on the node.
func (r *recoverRun) restoreRoles(ctx context.Context) error {
	src := r.sens.Manifest.Source
	hasBackup := false
	for _, role := range src.Roles {
		hasBackup = hasBackup || role == statedir.RoleBackup
	}
	if !hasBackup || src.Device == "" {
		fmt.Fprintln(r.env.Stdout, "the sensitive backup records no backup role: nothing to restore (run set-as-backup DEVICE to give one)")
		return nil
	}
	c, err := r.env.client(ctx)
	if err != nil {
		return err
	}
	var out api.Message
	err = c.JSON(ctx, http.MethodPost, api.PathSetAsBackup, api.SetAsBackupRequest{Device: src.Device, Force: true}, &out)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeDeviceInvalid {
		fmt.Fprintf(r.env.Stdout, "backup device %s is not usable on the node (%s): once it is mounted run\n  a0cli -t %s set-as-backup %s force\n", src.Device, ae.Message, r.env.Target, src.Device)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(r.env.Stdout, "roles %v and backup device %s restored\n", src.Roles, src.Device)
	return nil
}
