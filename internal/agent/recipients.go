package agent

import (
	"errors"
	"fmt"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/keys"
)

// parseRecipients reads the config's "recipients"; a bad one stops the
// agent at start rather than at the first backup.
func parseRecipients(lines []string) ([]keys.Recipient, error) {
	var out []keys.Recipient
	for i, l := range lines {
		r, err := keys.ParseRecipient(l)
		if err != nil {
			return nil, fmt.Errorf("config recipients[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// backupSeal says whom a backup is encrypted to: the password if given, the
// authorized keys the request names (--to, --to-all), and, when there is no
// password, the config's recipients. The node holds none of the matching
// private keys, so it can write such a backup but not read it.
func (a *Agent) backupSeal(req api.BackupRequest, password []byte, slotKind string) (crypt.Seal, []api.BackupRecipient, error) {
	seal := crypt.Seal{}
	if len(password) > 0 {
		// The same bytes as the request's: the job clears them when it ends.
		seal.Password = password
	}
	if slotKind == api.SlotSensitive {
		if len(req.To) > 0 || req.ToAll {
			return seal, nil, api.Errorf(api.CodeBadRequest, "a sensitive backup is encrypted with a password only (--to and --to-all apply to backup)")
		}
		return seal, nil, nil
	}
	var rs []keys.Recipient
	if len(req.To) > 0 || req.ToAll {
		named, err := a.auth.Recipients(req.To, req.ToAll)
		if errors.Is(err, keys.ErrUnknownName) {
			return seal, nil, api.Errorf(api.CodeBadRequest, "cannot encrypt to %v: list the names with `a0agent keys`", err)
		}
		if err != nil {
			return seal, nil, err
		}
		rs = append(rs, named...)
	}
	if len(password) == 0 {
		rs = append(rs, a.recipients...)
	}
	var to []api.BackupRecipient
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.ID] {
			continue // a key both named and configured gets one stanza
		}
		seen[r.ID] = true
		seal.Recipients = append(seal.Recipients, age.Recipient(r.Recipient))
		to = append(to, api.BackupRecipient{Name: r.Name, Key: r.ID})
	}
	return seal, to, nil
}
