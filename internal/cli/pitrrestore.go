package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
)

// parseToTS reads --to-ts "T,I" or --to-time (RFC 3339): a time is the
// last position of its second, so that every entry of that second is
// replayed (an oplog ts counts seconds).
func parseToTS(toTime, toTS string) (api.OplogTS, error) {
	switch {
	case toTime != "" && toTS != "":
		return api.OplogTS{}, usagef("give --to-time or --to-ts, not both")
	case toTS != "":
		return parseTS("--to-ts", toTS)
	}
	t, err := time.Parse(time.RFC3339, toTime)
	if err != nil {
		return api.OplogTS{}, usagef("--to-time %q: want RFC 3339, e.g. 2026-12-06T10:15:00Z", toTime)
	}
	if t.Unix() < 1 || t.Unix() > math.MaxUint32 {
		return api.OplogTS{}, usagef("--to-time %q: out of the oplog's range", toTime)
	}
	return api.OplogTS{T: uint32(t.Unix()), I: math.MaxUint32}, nil
}

// parseTS reads "T,I" (seconds, increment), as oplog-find prints them.
func parseTS(flag, s string) (api.OplogTS, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), ",")
	t, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	i, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil || t == 0 {
		return api.OplogTS{}, usagef("%s %q: want T,I (seconds,increment), e.g. 1796551200,3", flag, s)
	}
	return api.OplogTS{T: uint32(t), I: uint32(i)}, nil
}

func tsText(ts api.OplogTS) string {
	return fmt.Sprintf("%s (ts %d,%d)", time.Unix(int64(ts.T), 0).UTC().Format("2006-01-02 15:04:05 UTC"), ts.T, ts.I)
}

// runPITRRestore restores to a point in time: the node plans (base and
// slices, with their crypt headers), this workstation unwraps every file
// key with its identity, and the node restores the base and replays the
// archive with those keys. No identity leaves the workstation.
func runPITRRestore(ctx context.Context, env *Env, o RestoreOptions) error {
	if o.File != "" || o.Plain || o.Remote != "" && o.Remote != remoteAny {
		return usagef("restore --to-time/--to-ts starts from the node's stored backup, or with --remote (no NAME) from the remote store's copies: no FILE, copy NAME or --plain")
	}
	to, err := parseToTS(o.ToTime, o.ToTS)
	if err != nil {
		return err
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var plan api.PITRPlan
	if err := c.JSON(ctx, http.MethodPost, api.PathPITRPlan, api.PITRPlanRequest{ToTS: to, Remote: o.Remote == remoteAny}, &plan); err != nil {
		return err
	}
	ids, err := o.load(env)
	if err != nil {
		return err
	}
	var fileKey []byte
	keys := map[string][]byte{}
	defer func() {
		clear(fileKey)
		for _, k := range keys {
			clear(k)
		}
	}()
	if crypt.Version(plan.BaseHeader) == 2 {
		if fileKey, err = unwrapFileKey(env, plan.BaseHeader, ids, &o.PasswordOptions); err != nil {
			return err
		}
	}
	var pw string
	if fileKey == nil {
		if pw, err = o.resolve(env, false); err != nil {
			return err
		}
	}
	if err := checkKeysFit(len(plan.Slices)); err != nil {
		return err
	}
	if keys, err = sliceKeys(plan.Slices, ids); err != nil {
		return err
	}
	if plan.Note != "" {
		fmt.Fprintf(env.Stderr, "a0cli: %s\n", plan.Note)
	}
	if plan.ToTS.T == to.T && plan.ToTS.I < to.I {
		// --to-time S where the archive ends inside S: the node planned
		// to its last entry of S (ops.chooseAsOf); the restore goes to
		// that very point, even if the archive grows meanwhile.
		to = plan.ToTS
	}
	where := ""
	if plan.Remote {
		where = "remote copy "
	}
	fmt.Fprintf(env.Stderr, "a0cli: restoring to %s: base %s%s (consistent to %s), then %d oplog slices\n",
		tsText(plan.ToTS), where, plan.Base, tsText(plan.ConsistentTo), len(plan.Slices))
	req := api.RestoreRequest{Password: pw, FileKey: fileKey, Drop: o.Drop, NS: o.NS, NSFrom: o.NSFrom, NSTo: o.NSTo, DryRun: o.DryRun,
		StopOnError: o.StopOnError, UsersAndRoles: o.UsersAndRoles, ToTS: &to, Base: plan.Base, SliceKeys: keys}
	if plan.Remote {
		// The copy the plan chose; the node downloads it and the slices.
		req.Remote = plan.Base
	}
	return startRestore(ctx, env, c, o, req)
}

// sliceKeyBytes is what one slice's key takes in a request: its name, its
// key in base64 and the JSON around them.
const sliceKeyBytes = 40 + 44 + 8

// checkKeysFit refuses, before anything is sent, a range whose keys a
// request body (api.MaxBody) cannot carry: about 10,000 slices, 29 hours
// of 10 s slices after the base.
func checkKeysFit(n int) error {
	if n*sliceKeyBytes > api.MaxBody-64<<10 {
		return &RefusedError{Msg: fmt.Sprintf("the restore needs %d oplog slices after the base, more than one request carries (%d): make a newer backup to start from, or restore to an earlier point",
			n, (api.MaxBody-64<<10)/sliceKeyBytes)}
	}
	return nil
}

// sliceKeys unwraps each slice's file key with the identities. Slices
// have no password: they are encrypted to the agent config's recipients.
func sliceKeys(slices []api.PITRSlice, ids []age.Identity) (map[string][]byte, error) {
	keys := make(map[string][]byte, len(slices))
	for _, s := range slices {
		k, err := crypt.UnwrapFileKey(bytes.NewReader(s.Header), crypt.Unlock{Identities: ids})
		switch {
		case errors.Is(err, crypt.ErrWrongKey) && len(ids) == 0:
			return keys, fmt.Errorf("oplog slice %s: %w: it is encrypted to public keys and there is no CLI key here; give --identity FILE", s.Name, err)
		case errors.Is(err, crypt.ErrWrongKey):
			return keys, fmt.Errorf("oplog slice %s: %w: it is encrypted to other keys than the identities given (the agent config's \"recipients\")", s.Name, err)
		case err != nil:
			return keys, &IntegrityError{Msg: fmt.Sprintf("oplog slice %s refused: %v", s.Name, err)}
		}
		keys[s.Name] = k
	}
	return keys, nil
}
