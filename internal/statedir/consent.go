package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/a0backup/a0/internal/atomicfile"
)

// The node's identity: who may call it (authorized_keys) and who it is (its
// TLS key and certificate). Deciding either is the node operator's, so a
// sensitive restore puts these back only with a consent given on the node
// (`a0agent allow-recovery`): without it, one key holder with a sensitive
// backup could authorize keys, revoke everyone else or swap the node's
// identity.
const recoveryConsentFile = "recovery-consent"

// DefaultRecoveryConsent and MaxRecoveryConsent bound `allow-recovery --for`.
const (
	DefaultRecoveryConsent = time.Hour
	MaxRecoveryConsent     = 24 * time.Hour
)

// IdentityPaths are the files a sensitive restore writes only with a
// recovery consent.
func (d *Dir) IdentityPaths() []string {
	return []string{d.join(authorizedKeyFile), d.join(tlsKeyFile), d.join(tlsCertFile)}
}

// RecoveryConsentPath is the consent `a0agent allow-recovery` writes.
func (d *Dir) RecoveryConsentPath() string { return d.join(recoveryConsentFile) }

type consent struct {
	Expires time.Time `json:"expires"`
}

// AllowRecovery writes a single-use consent, valid for dur from now, for the
// next sensitive restore to put the identity files back. It returns when the
// consent expires.
func (d *Dir) AllowRecovery(now time.Time, dur time.Duration) (time.Time, error) {
	if dur <= 0 || dur > MaxRecoveryConsent {
		return time.Time{}, fmt.Errorf("consent duration %v outside (0, %v]", dur, MaxRecoveryConsent)
	}
	c := consent{Expires: now.Add(dur).UTC().Truncate(time.Second)}
	b, err := json.Marshal(c)
	if err != nil {
		return time.Time{}, err
	}
	if err := atomicfile.Write(d.RecoveryConsentPath(), append(b, '\n'), 0o600); err != nil {
		return time.Time{}, fmt.Errorf("write recovery consent: %w", err)
	}
	return c.Expires, nil
}

// RecoveryConsent reports whether a valid consent exists at now, and until
// when. A consent is valid when it is a regular file that neither group nor
// others can write, parses, and has not expired; anything else is no
// consent, with a reason (never an error that stops the restore: the
// identity files are then skipped and reported).
func (d *Dir) RecoveryConsent(now time.Time) (ok bool, expires time.Time, reason string) {
	p := d.RecoveryConsentPath()
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, time.Time{}, "no recovery consent on the node (run `a0agent allow-recovery` there)"
	}
	if err != nil {
		return false, time.Time{}, "recovery consent unreadable: " + err.Error()
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o022 != 0 {
		return false, time.Time{}, "recovery consent ignored: not a regular file or writable by group or others"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false, time.Time{}, "recovery consent unreadable: " + err.Error()
	}
	var c consent
	if err := json.Unmarshal(b, &c); err != nil || c.Expires.IsZero() {
		return false, time.Time{}, "recovery consent malformed (run `a0agent allow-recovery` again)"
	}
	if !now.Before(c.Expires) {
		return false, c.Expires, fmt.Sprintf("recovery consent expired at %s (run `a0agent allow-recovery` again)", c.Expires.Format(time.RFC3339))
	}
	if c.Expires.After(now.Add(MaxRecoveryConsent + time.Minute)) {
		return false, c.Expires, "recovery consent ignored: it expires further ahead than allow-recovery ever writes"
	}
	return true, c.Expires, ""
}

// ConsumeRecoveryConsent removes the consent: it serves one restore.
func (d *Dir) ConsumeRecoveryConsent() error {
	if err := os.Remove(d.RecoveryConsentPath()); err != nil {
		return fmt.Errorf("consume recovery consent: %w", err)
	}
	return atomicfile.SyncDir(d.Path)
}
