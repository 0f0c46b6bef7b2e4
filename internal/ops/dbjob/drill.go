package dbjob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/ops"
)

// drillSpoolReserve is the free space a drill's restore spools leave on
// the device (as a restore's on the state disk).
const drillSpoolReserve = 256 << 20

// RunDrill is the body of a restore drill on the node (ops.Runners.Drill):
// the stored backup authenticated to its last byte first (a damaged file
// fails here, with crypt's error, before anything is restored), then
// package drill restores it into a throwaway embedded server under
// d.Parent, from passes over the same open file with the keys already
// derived (backupfile.Reopen), and compares it with its manifest. The
// production database is never opened.
func RunDrill(ctx context.Context, d *ops.Drill) (*ops.DrillResult, error) {
	f, err := os.Open(d.Path)
	if err != nil {
		return nil, fmt.Errorf("open the stored backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.Parent, 0o700); err != nil {
		return nil, fmt.Errorf("drill directory: %w", err)
	}
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: ops.DrillUnlock(d.Identities)})
	if err != nil {
		return nil, drillOpenError(err)
	}
	if _, err := bf.Authenticate(ctx, nil); err != nil {
		return nil, ops.CancelledError(ctx, drillOpenError(err), "the drill stopped while authenticating the file")
	}
	first := true
	rep, err := drill.Run(ctx, drill.Options{
		Open: func() (io.Reader, error) {
			if first {
				// drill.Run opens the file once its directory and
				// server exist: the tests' point to kill the agent.
				first = false
				d.Hold.At(ctx, ops.HoldDrill)
			}
			return bf.Reopen()
		},
		Parent: d.Parent, InputSize: fi.Size(), SpoolReserve: drillSpoolReserve, Logger: d.Log,
	})
	if err != nil {
		var re *drill.RestoreError
		if errors.As(err, &re) {
			return nil, &ops.Error{Kind: ops.Integrity, Msg: "the backup did not restore in the drill: " + err.Error(), Err: err}
		}
		return nil, err
	}
	res := &ops.DrillResult{Backup: d.Meta.Name, Duration: rep.RestoreTime, Compare: rep.CompareTime, Bytes: fi.Size(),
		Collections: len(rep.Collections), Documents: rep.Documents, NotHeld: rep.NotHeld, DocumentsNotHeld: rep.DocumentsNotHeld}
	// Which backup this is, by its authenticated manifest (as a restore
	// proves it): a file put in the slot's place is not the one drilled.
	if rep.Name != "" && rep.Name != d.Meta.Name {
		return res, &ops.Error{Kind: ops.Integrity, Msg: fmt.Sprintf("the stored file %s holds backup %s by its manifest", d.Meta.Name, rep.Name)}
	}
	var notes []string
	for _, c := range rep.Collections {
		switch c.Status {
		case drill.StatusOK, drill.StatusNotRestored:
		case drill.StatusDiffers:
			res.Differences = append(res.Differences, fmt.Sprintf("%s: %s", c.Namespace, c.Reason))
		}
	}
	if !rep.OK && len(res.Differences) == 0 {
		res.Differences = append(res.Differences, "the drill's comparison failed")
	}
	if rep.NotHeld > 0 {
		// The same words as before, the documents after them.
		note := fmt.Sprintf("%d collection(s) the embedded server cannot hold, not compared", rep.NotHeld)
		var names []string
		for _, c := range rep.Collections {
			if c.Status == drill.StatusNotHeld {
				names = append(names, c.Namespace)
			}
		}
		if rep.DocumentsNotHeld > 0 {
			note += fmt.Sprintf(" (%d documents it refuses: a field name with '.' or a leading '$', a Decimal128...)", rep.DocumentsNotHeld)
		}
		if rep.NotHeldVerified > 0 {
			// Not restored, yet their bytes were checked in the archive.
			note += fmt.Sprintf(", %d of them with their archived bytes verified (the dumped count and content digest)", rep.NotHeldVerified)
		}
		notes = append(notes, note+": "+strings.Join(names, ", "))
	}
	if rep.NoDigest > 0 {
		notes = append(notes, fmt.Sprintf("%d collection(s) without content digests (an older backup): counts and indexes only", rep.NoDigest))
	}
	for i, n := range notes {
		if i > 0 {
			res.Note += "; "
		}
		res.Note += n
	}
	if res.Duration <= 0 {
		res.Duration = time.Since(rep.Started)
	}
	return res, nil
}

// drillOpenError gives a file the drill cannot open its kind. A key that
// does not open it is the drill's own (its "identity"): restore's words
// (a file key sent, a password) would name what a drill never has.
func drillOpenError(err error) error {
	var oe *ops.Error
	fe := ops.OpenError(err)
	if !errors.As(fe, &oe) {
		return err
	}
	if oe.Kind == ops.WrongKey {
		return &ops.Error{Kind: ops.WrongKey, Err: err, Msg: `the drill's key (its "identity") does not open this backup: ` +
			`it was not encrypted to the drill key's public key (a backup made with a password is not encrypted to "recipients")`}
	}
	return fe
}

// CleanDrills removes the directories of drills a killed agent left under
// parent (drill.CleanStale: never a running drill's).
func CleanDrills(parent string) []string {
	removed, _ := drill.CleanStale(parent)
	return removed
}
