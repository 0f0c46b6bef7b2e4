package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/restore"
)

// restoreTest is verify --restore-test (issue 29): the authenticated file
// bf restored into a throwaway embedded server on this workstation and
// compared with its manifest (package drill). A backup that does not
// restore is an *IntegrityError (exit 6), as a difference is (reported
// by restoreTestFailed once the report is printed); Ctrl-C stops it, its
// temporary directory removed, with exit 130.
func restoreTest(ctx context.Context, env *Env, o *OfflineOptions, bf *backupfile.File, bsonBytes int64) (*drill.Report, error) {
	var size int64
	if st, err := os.Stat(o.File); err == nil {
		size = st.Size()
	}
	// What an a0cli killed during an earlier restore test left (a kill
	// that no Ctrl-C handler sees): no running test's directory is taken.
	if removed, err := drill.CleanStale(o.RestoreTestDir); err == nil && len(removed) > 0 {
		fmt.Fprintf(env.Stderr, "a0cli: restore test: removed %d temporary director(ies) a killed restore test left\n", len(removed))
	}
	// A disk that fills part way fails the restore, which would read as a
	// backup that does not restore (exit 6): too little room is refused
	// before the test starts, exit 4.
	if err := drill.CheckRoom(o.RestoreTestDir, bsonBytes); err != nil {
		var nr *drill.NoRoomError
		if errors.As(err, &nr) {
			return nil, &RefusedError{Msg: "restore test: " + err.Error()}
		}
		return nil, fmt.Errorf("restore test: %w", err)
	}
	if !o.JSON {
		fmt.Fprintln(env.Stderr, "a0cli: restore test: restoring into a throwaway embedded server...")
	}
	prog := &restore.Progress{}
	stop := drawRestoreTest(env, prog, bsonBytes)
	rep, err := drill.Run(ctx, drill.Options{
		Open:      bf.Reopen,
		Parent:    o.RestoreTestDir,
		InputSize: size,
		Progress:  prog,
	})
	stop()
	var re *drill.RestoreError
	switch {
	case err == nil:
		return rep, nil
	case ctx.Err() != nil:
		return nil, interrupted(ctx, err, "the restore test stopped; its temporary directory is removed")
	case errors.As(err, &re):
		return nil, &IntegrityError{Msg: "restore test FAILED: " + err.Error()}
	}
	return nil, fmt.Errorf("restore test: %w", err)
}

// drawRestoreTest draws the restore's progress on a terminal (the BSON
// loaded of the manifest's total, then the step) until the returned
// function is called; elsewhere it draws nothing.
func drawRestoreTest(env *Env, prog *restore.Progress, total int64) func() {
	b := newBar(env, "restore test")
	if !b.on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := prog.Snapshot()
				b.update(s.Bytes, total, fmt.Sprintf("%s, %d documents", s.Step, s.Documents))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		b.finish()
	}
}

// restoreTestFailed is the exit-6 error of a restore test that found a
// difference (nil for none, or no test).
func restoreTestFailed(rep *drill.Report) error {
	if rep == nil || rep.OK {
		return nil
	}
	var names []string
	for _, c := range rep.Collections {
		if c.Status == drill.StatusDiffers {
			names = append(names, c.Namespace)
		}
	}
	return &IntegrityError{Msg: fmt.Sprintf("restore test FAILED: %d collection(s) differ from what the dump wrote: %s", rep.Differs, joinNames(names))}
}

func joinNames(names []string) string {
	const most = 10
	s := ""
	for i, n := range names {
		if i == most {
			return s + fmt.Sprintf(" and %d more", len(names)-most)
		}
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// printRestoreTest prints the restore test's report after verify's.
func printRestoreTest(env *Env, rep *drill.Report) {
	w := env.Stdout
	verdict := "OK"
	if !rep.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "restore test: %s: restored into a throwaway embedded server and compared with the manifest: %d same, %d differ, %d not held by the embedded server, %d without digest, %d not restored\n",
		verdict, rep.Same, rep.Differs, rep.NotHeld, rep.NoDigest, rep.NotRestored)
	fmt.Fprintf(w, "restore time: %s (%d documents, %s of BSON; reading back to compare took %s more)\n",
		rep.RestoreTime.Round(1e6), rep.Documents, human(rep.Bytes), rep.CompareTime.Round(1e6))
	if rep.NotHeld > 0 {
		fmt.Fprintf(w, "not checked:  %d collection(s) the embedded server (FerretDB) cannot hold, %d of their documents refused by it: not restored, not compared (a MongoDB server holds them; listed below)\n",
			rep.NotHeld, rep.DocumentsNotHeld)
		if rep.NotHeldVerified > 0 {
			fmt.Fprintf(w, "bytes verified: %d of them: their documents as the archive holds them have the dumped count and content digest (an alteration fails the test)\n",
				rep.NotHeldVerified)
		}
	}
	if rep.OplogEntries > 0 {
		var skipped int64
		for _, n := range rep.OplogSkipped {
			skipped += n
		}
		fmt.Fprintf(w, "oplog replay: %d entries applied, %d skipped (compared before the replay: the digests are of the data as dumped)\n", rep.OplogApplied, skipped)
	}
	if !rep.Digests {
		fmt.Fprintln(w, "digests:      none in this backup (made before a0 wrote them): collections compared by document count and indexes only")
	}
	for _, c := range rep.Collections {
		line := fmt.Sprintf("  %-40s %-12s %10d docs %3d indexes", c.Namespace, c.Status, c.DocumentsFound, c.IndexesFound)
		if c.DocumentsNotHeld > 0 {
			line += fmt.Sprintf(" (%d of %d documents not held)", c.DocumentsNotHeld, c.DocumentsExpected)
		}
		if c.Status == drill.StatusDiffers || c.Status == drill.StatusNotHeld || c.Status == drill.StatusNotRestored {
			line += ": " + c.Reason
		}
		switch {
		case c.Status == drill.StatusDiffers && c.DigestArchived != "":
			// Not restored: its bytes were compared in the archive.
			if c.DigestExpected != "" && c.DigestArchived != c.DigestExpected {
				line += fmt.Sprintf(" (dumped %s, in the archive %s)", c.DigestExpected, c.DigestArchived)
			}
		case c.Status == drill.StatusDiffers && c.DigestExpected != "" && c.DigestFound != c.DigestExpected:
			line += fmt.Sprintf(" (dumped %s, restored %s)", c.DigestExpected, c.DigestFound)
		}
		fmt.Fprintln(w, line)
	}
}
