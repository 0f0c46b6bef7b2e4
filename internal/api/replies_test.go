package api

import (
	"encoding/json"
	"testing"
	"time"
)

// The reply types replaced maps the node wrote: the bytes on the wire are
// the ones the map gave (scripts parse a0cli --json).
func TestRepliesAsTheMapsTheyReplaced(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := json.RawMessage(`{"phase":"done"}`)
	keys := &NodeKeys{DataEncryptionKey: "d", TokenSigningKey: "t", TLSCertificate: "c"}
	files := []SensitiveFile{{Path: "state/x", Target: "/s/x", Mode: "0600", Exists: true}}
	skipped := []SkippedFile{{Path: "state/y", Target: "/s/y", Reason: "no consent"}}
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"set-as-backup", SetAsBackupReply{Device: "/d", Folder: "/d/f", Roles: []string{"backup"}},
			map[string]any{"device": "/d", "folder": "/d/f", "roles": []string{"backup"}}},
		{"backup started", BackupStarted{Recipients: []BackupRecipient{{Name: "n", Key: "k"}}, Warning: "w"},
			map[string]any{"warning": "w", "recipients": []BackupRecipient{{Name: "n", Key: "k"}}}},
		{"backup started, warning only", BackupStarted{Warning: "w"}, map[string]any{"warning": "w"}},
		{"job running", JobRunning[any]{Progress: SensitiveProgress{FilesDone: 1, FilesTotal: 2}, Started: now},
			map[string]any{"started": now, "progress": map[string]int64{"files_total": 2, "files_done": 1}}},
		{"backup deleted", BackupDeleted{Name: "n", MD5: "m"}, map[string]any{"name": "n", "md5": "m"}},
		{"copy started", CopyStarted{Name: "n", Location: "s3://b"}, map[string]any{"name": "n", "location": "s3://b"}},
		{"copy already running", CopyStarted{Name: "n", Location: "s3://b", AlreadyRunning: true},
			map[string]any{"name": "n", "location": "s3://b", "already_running": true}},
		{"restore finished", RestoreEnded{Started: now, Finished: &now, Result: res},
			map[string]any{"started": now, "finished": &now, "result": res}},
		{"restore finished, no result", RestoreEnded{Started: now},
			map[string]any{"started": now, "finished": (*time.Time)(nil), "result": json.RawMessage(nil)}},
		{"restore failed", RestoreFailed{Started: now, Finished: &now, Result: res, Error: "e", Code: ""},
			map[string]any{"started": now, "finished": &now, "result": res, "error": "e", "code": ""}},
		{"consent", RecoveryConsent{Valid: true, Expires: "x", Used: true}, map[string]any{"valid": true, "expires": "x", "used": true}},
		{"consent, none", RecoveryConsent{}, map[string]any{"valid": false}},
		{"sensitive plan", SensitivePlan{Files: files, Skipped: skipped, RecoveryConsent: RecoveryConsent{Valid: true}},
			map[string]any{"files": files, "skipped": skipped, "recovery_consent": map[string]any{"valid": true}}},
		{"sensitive restored", SensitiveRestored{Files: nil, Skipped: []SkippedFile{}, RecoveryConsent: RecoveryConsent{}, Reloaded: []string{}, Keys: keys},
			map[string]any{"files": []SensitiveFile(nil), "skipped": []SkippedFile{}, "recovery_consent": map[string]any{"valid": false}, "reloaded": []string{}, "keys": keys}},
		{"sensitive restored, restart", SensitiveRestored{Reloaded: []string{"a"}, Keys: keys, RestartNeededFor: "r"},
			map[string]any{"files": []SensitiveFile(nil), "skipped": []SkippedFile(nil), "recovery_consent": map[string]any{"valid": false}, "reloaded": []string{"a"}, "keys": keys, "restart_needed_for": "r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.got)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}
