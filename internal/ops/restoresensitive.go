package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/statedir"
)

// RestoreSensitive puts a sensitive backup's files back on the node: it
// extracts and checks everything in a private work area first, then, with
// Confirm, writes the files and takes the restored keys into use in place.
// Without Confirm, Run only answers the plan. The identity files need the
// node operator's recovery consent. Run returns the reply: "Sensitive
// restore plan" with *api.SensitivePlan, or "Sensitive configuration
// restored" with *api.SensitiveRestored.
type RestoreSensitive struct {
	State *statedir.Dir
	// Extra are the sensitive_paths of the agent's config.
	Extra   []string
	Source  Source
	Confirm bool
	// LockUpload is as in Restore.
	LockUpload func(path string) (unlock func(), ok bool)
	// ReloadCert and ReloadSecrets take the restored TLS identity and
	// secrets into use; KeysInUse names the keys held after.
	ReloadCert    func() error
	ReloadSecrets func() error
	KeysInUse     func() *api.NodeKeys
	// Key names the client key that asked (for the log).
	Key any
	Log *slog.Logger
}

// Run is the job.
func (r *RestoreSensitive) Run(ctx context.Context) (api.Message, error) {
	defer clear(r.Source.Password)
	src := r.Source
	// Extract into a private work area first: nothing on the node changes
	// until every byte is authenticated and every file matches its manifest.
	work, err := os.MkdirTemp(r.State.UploadsDir(), "sensitive-*")
	if err != nil {
		return api.Message{}, err
	}
	defer os.RemoveAll(work)
	man, err := r.extract(ctx, src, work)
	if err != nil {
		return api.Message{}, err
	}
	// The identity files need the node operator's consent, given on the
	// node (a0agent allow-recovery): a key holder alone may restore the
	// other sensitive files, never who may call the node or who it is.
	consent, expires, noConsent := r.State.RecoveryConsent(time.Now())
	identity := r.State.IdentityPaths()
	var (
		plan       []api.SensitiveFile
		skipped    = []api.SkippedFile{}
		useConsent bool
	)
	for _, f := range man.Files {
		target, err := r.target(f)
		if err != nil {
			return api.Message{}, err
		}
		if st, err := os.Stat(filepath.Dir(target)); err != nil || !st.IsDir() {
			return api.Message{}, errorf(Integrity, "cannot restore %s: its folder does not exist on this node", target)
		}
		e := api.SensitiveFile{Path: f.Path, Target: target, Mode: fmt.Sprintf("%04o", f.Mode)}
		if cur, err := os.ReadFile(target); err == nil {
			e.Exists = true
			sum := sha256.Sum256(cur)
			e.Changes = hex.EncodeToString(sum[:]) != f.SHA256
		} else {
			e.Changes = true
		}
		if slices.Contains(identity, target) {
			if consent {
				useConsent = true
			} else {
				e.Skipped, e.Reason = true, noConsent
				skipped = append(skipped, api.SkippedFile{Path: f.Path, Target: target, Reason: noConsent})
			}
		}
		plan = append(plan, e)
	}
	consentArgs := api.RecoveryConsent{Valid: consent}
	if !expires.IsZero() {
		consentArgs.Expires = expires.Format(time.RFC3339)
	}
	if !r.Confirm {
		return api.Message{Message: "Sensitive restore plan", Arguments: &api.SensitivePlan{Files: plan, Skipped: skipped, RecoveryConsent: consentArgs}}, nil
	}
	if useConsent {
		// Single use: consumed before the first identity file is written,
		// so a failure part way cannot leave it for another restore.
		if err := r.State.ConsumeRecoveryConsent(); err != nil {
			return api.Message{}, err
		}
		consentArgs.Used = true
	}
	var written []string
	for i, f := range man.Files {
		if plan[i].Skipped {
			r.Log.Warn("sensitive restore skipped an identity file: no recovery consent", "file", plan[i].Target)
			continue
		}
		data, err := os.ReadFile(filepath.Join(work, filepath.FromSlash(f.Path)))
		if err == nil {
			// Secrets go back 0600 whatever mode they had: group or world
			// access to a key is never what an operator wants restored.
			err = atomicfile.Write(plan[i].Target, data, 0o600)
		}
		if err != nil {
			return api.Message{}, fmt.Errorf("restore %s failed after writing %d of %d files (%s): %w",
				plan[i].Target, len(written), len(plan), strings.Join(written, ", "), err)
		}
		written = append(written, plan[i].Target)
	}
	// Every restored key is taken into use in place: no restart. The
	// identity (authorized keys, TLS certificate) only when the node's
	// operator consented to restoring it.
	reloaded := []string{}
	var failed []string
	if useConsent {
		reloaded = append(reloaded, "authorized keys (read on every call)")
		if err := r.ReloadCert(); err == nil {
			reloaded = append(reloaded, "TLS certificate")
		} else {
			failed = append(failed, err.Error())
		}
	}
	if err := r.ReloadSecrets(); err == nil {
		reloaded = append(reloaded, "data encryption key", "token signing key")
	} else {
		failed = append(failed, err.Error())
	}
	src.Done()
	r.Log.Info("sensitive configuration restored", "files", len(written), "skipped", len(skipped), "key", r.Key)
	args := &api.SensitiveRestored{Files: plan, Skipped: skipped, RecoveryConsent: consentArgs, Reloaded: reloaded, Keys: r.KeysInUse()}
	if len(failed) > 0 {
		r.Log.Error("a restored key could not be taken into use", "err", strings.Join(failed, "; "))
		args.RestartNeededFor = "not taken into use (" + strings.Join(failed, "; ") + "): fix the file and restart the agent"
	}
	return api.Message{Message: "Sensitive configuration restored", Arguments: args}, nil
}

// target maps an archive path to where it goes on this node. Only the
// node's own sensitive paths (the state directory's secrets and authorized
// keys, and the files the agent's config declares sensitive) are ever
// written: an authenticated archive is still a file its uploader chose, and
// must not become a way to write anywhere the agent can.
func (r *RestoreSensitive) target(f manifest.File) (string, error) {
	clean, err := archive.CleanName(f.Path)
	if err != nil || clean != f.Path {
		return "", errorf(Integrity, "unsafe path in sensitive backup: %q", f.Path)
	}
	allowed, err := r.State.SensitivePaths(r.Extra)
	if err != nil {
		return "", err
	}
	var target string
	if rel, ok := strings.CutPrefix(clean, "state/"); ok {
		target = filepath.Join(r.State.Path, filepath.FromSlash(rel))
	} else if strings.HasPrefix(clean, "extra/") && filepath.IsAbs(f.Origin) {
		target = filepath.Clean(f.Origin)
	} else {
		return "", errorf(Integrity, "unexpected path in sensitive backup: %q", f.Path)
	}
	if !slices.Contains(allowed, target) {
		return "", errorf(Integrity, "sensitive backup names %s, which is not sensitive configuration of this node (declare it in the agent's sensitive_paths to restore it)", target)
	}
	return target, nil
}

func (r *RestoreSensitive) extract(ctx context.Context, src Source, dir string) (*manifest.Manifest, error) {
	unlock, ok := r.LockUpload(src.Path)
	if !ok {
		return nil, errorf(Busy, "a client is uploading this file right now")
	}
	defer unlock()
	file, bf, err := src.Open()
	if err != nil {
		return nil, err
	}
	defer file.Close()
	if _, err := bf.Authenticate(ctx, func(plain io.Reader) error {
		ar, err := archive.NewReader(plain, archive.Limits{MaxEntrySize: sensitiveMaxEntry, MaxEntries: sensitiveMaxEntries, MaxTotal: sensitiveMaxTotal})
		if err != nil {
			return err
		}
		defer ar.Close()
		return archive.Extract(ctx, ar, dir)
	}); err != nil {
		return nil, OpenError(err)
	}
	if err := src.CheckHash(); err != nil {
		return nil, err
	}
	mf, err := os.Open(filepath.Join(dir, manifest.Name))
	if err != nil {
		return nil, errorf(Integrity, "not a sensitive backup: no manifest")
	}
	defer mf.Close()
	man, err := manifest.Decode(mf)
	if err != nil {
		return nil, errorf(Integrity, "not a sensitive backup: %v", err)
	}
	if man.Kind != manifest.KindSensitive {
		return nil, errorf(Invalid, "this is an ordinary backup, not a sensitive one: use restore")
	}
	for _, f := range man.Files {
		if clean, err := archive.CleanName(f.Path); err != nil || clean != f.Path {
			return nil, errorf(Integrity, "unsafe path in sensitive backup: %q", f.Path)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return nil, errorf(Integrity, "sensitive backup lacks %s", f.Path)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, errorf(Integrity, "sensitive backup: %s does not match its manifest", f.Path)
		}
	}
	return man, nil
}
