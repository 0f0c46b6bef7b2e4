package ops

import (
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/crypt"
)

// Job kinds besides KindBackup, as the job runner records them.
const (
	KindBackupSensitive  = "backup-sensitive"
	KindRestore          = "restore"
	KindRestoreSensitive = "restore-sensitive"
)

// JobKind is the kind of the backup job of a slot ("backup", "sensitive").
func JobKind(slot string) string {
	if slot == api.SlotSensitive {
		return KindBackupSensitive
	}
	return KindBackup
}

// SamePasswordWarning is the warning a backup into slot (on device) starts
// with when its password also opens the other slot's stored backup: one
// leaked password should not open both the data and the keys that protect
// it. "" when it does not, or when there is nothing to open. The check
// reads the other file's header and unlocks it (one KDF run, no plaintext)
// and stores nothing.
func SamePasswordWarning(device, slot string, password []byte) string {
	if len(password) == 0 {
		return ""
	}
	other := api.SlotSensitive
	if slot == api.SlotSensitive {
		other = api.SlotBackup
	}
	f, _, err := Slot(device, other).Open()
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: password}}); err != nil {
		return ""
	}
	return "this password also protects the stored " + JobKind(other) + "; use a different password for the sensitive backup"
}
