package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/pitr"
)

// OplogFindOptions are the options of oplog-find.
type OplogFindOptions struct {
	IdentityOptions
	Since, Until string
	NS           string
	Ops          string
	JSON         bool
}

func oplogFindFlags(fs *pflag.FlagSet) runFunc {
	var o OplogFindOptions
	o.identityFlags(fs)
	fs.StringVar(&o.Since, "since", "", "only operations at or after `T` (RFC 3339)")
	fs.StringVar(&o.Until, "until", "", "only operations at or before `T` (RFC 3339)")
	fs.StringVar(&o.NS, "ns", "", "only namespaces matching `PATTERN` (DB.COLL, '*' wildcards; a database for dropDatabase)")
	fs.StringVar(&o.Ops, "op", "", "only these operations: `LIST` of drop, dropDatabase, rename, delete (comma-separated; default all)")
	fs.BoolVar(&o.JSON, "json", false, "print JSON for scripts")
	return func(ctx context.Context, env *Env, pos []string) error {
		if len(pos) != 0 {
			return usagef("usage: oplog-find [--since T] [--until T] [--ns PATTERN] [--op drop,dropDatabase,rename,delete] [--identity FILE] [--json]")
		}
		return RunOplogFind(ctx, env, o)
	}
}

// RunOplogFind lists the destructive operations of the node's oplog
// archive and of its live oplog's tail. The node cannot decrypt its
// slices: it sends their crypt headers, this workstation unwraps each
// slice's file key with its identity and sends the keys back (each opens
// one slice of the node's own oplog; no identity leaves here).
func RunOplogFind(ctx context.Context, env *Env, o OplogFindOptions) error {
	for _, b := range []struct{ flag, v string }{{"--since", o.Since}, {"--until", o.Until}} {
		if b.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, b.v); err != nil {
			return usagef("%s %q: want RFC 3339, e.g. 2026-12-06T10:15:00Z", b.flag, b.v)
		}
	}
	if o.Since != "" && o.Until != "" {
		since, _ := time.Parse(time.RFC3339Nano, o.Since)
		until, _ := time.Parse(time.RFC3339Nano, o.Until)
		if since.After(until) {
			// Nothing lies between: "no destructive operation found"
			// would read as an all-clear for a typo.
			return usagef("--since %s is after --until %s: nothing lies between them", o.Since, o.Until)
		}
	}
	var ops []string
	for _, op := range strings.Split(o.Ops, ",") {
		switch op = strings.TrimSpace(op); op {
		case "":
		case pitr.OpDrop, pitr.OpDropDatabase, pitr.OpRename, pitr.OpDelete:
			ops = append(ops, op)
		default:
			return usagef("--op %q: want a comma-separated list of %s, %s, %s, %s", op, pitr.OpDrop, pitr.OpDropDatabase, pitr.OpRename, pitr.OpDelete)
		}
	}
	c, err := env.client(ctx)
	if err != nil {
		return err
	}
	var sl api.PITRSlices
	if err := c.JSON(ctx, http.MethodPost, api.PathPITRSlices, api.PITRSlicesRequest{Since: o.Since, Until: o.Until}, &sl); err != nil {
		return err
	}
	keys := map[string][]byte{}
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	if len(sl.Slices) > 0 {
		ids, err := o.load(env)
		if err != nil {
			return err
		}
		if err := checkKeysFit(len(sl.Slices)); err != nil {
			return fmt.Errorf("%w (narrow oplog-find with --since and --until)", err)
		}
		if keys, err = sliceKeys(sl.Slices, ids); err != nil {
			return err
		}
	}
	var out api.OplogFindReply
	req := api.OplogFindRequest{Since: o.Since, Until: o.Until, NS: o.NS, Ops: ops, SliceKeys: keys}
	if err := c.JSON(ctx, http.MethodPost, api.PathOplogFind, req, &out); err != nil {
		return err
	}
	if o.JSON {
		return printCompact(env, out)
	}
	w := env.Stdout
	fmt.Fprintf(w, "read %d archived entries (%d slices) and %d newer entries of the live oplog\n", out.Entries, out.Slices, out.Live)
	if len(out.Findings) == 0 {
		fmt.Fprintln(w, "no destructive operation found")
		return nil
	}
	for _, f := range out.Findings {
		what := f.Op
		switch {
		case f.Op == "delete" && f.Count > 1:
			what = fmt.Sprintf("delete x%d", f.Count)
		case f.Op == "rename":
			what = "rename to " + f.To
		}
		when := f.Time
		if t, err := time.Parse(time.RFC3339Nano, f.Time); err == nil {
			when = t.UTC().Format("2006-01-02 15:04:05.000 UTC")
		}
		fmt.Fprintf(w, "%s  %-28s %-30s ts %d,%d  restore to just before: --to-ts %d,%d\n",
			when, what, f.NS, f.TS.T, f.TS.I, f.ToTS.T, f.ToTS.I)
	}
	return nil
}
