package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/metrics"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/webhook"
)

// ErrPITRNeedsRecipients: the oplog archive's slices are encrypted to the
// config's recipients only (a node holds no password).
var ErrPITRNeedsRecipients = errors.New(`pitr: needs "recipients" (public keys, such as "ssh-ed25519 AAAA..." or "age1..."): the oplog slices are encrypted to them, never to a password kept on the node`)

// openArchive prepares the continuous oplog archive (config "pitr"); it
// starts with startArchive, once the database is connected.
func (a *Agent) openArchive() error {
	if a.cfg.PITR == nil {
		return nil
	}
	if len(a.recipients) == 0 {
		return ErrPITRNeedsRecipients
	}
	var to []age.Recipient
	for _, r := range a.recipients {
		to = append(to, age.Recipient(r.Recipient))
	}
	node, _ := os.Hostname()
	a.archive = &ops.Archive{SliceLength: a.cfg.PITR.Slice, Recipients: to, Node: node,
		Retry: a.cfg.PITR.Retry, Source: a.oplogSource, Log: a.log,
		OnSlice: a.sliceClosed,
		OnGap:   a.archiveGap}
	return nil
}

// sliceClosed is what follows every durable slice: the metrics, and the
// copy to the remote store.
func (a *Agent) sliceClosed(s pitr.Slice) {
	a.recordPITR(a.ctx, false)
	if a.sliceCopier != nil {
		a.sliceCopier.Closed(s)
	}
}

// archiveGap is what follows a gap: an event to the webhook (every gap
// alerts) and the metrics.
func (a *Agent) archiveGap(g pitr.Gap) {
	a.notify(webhook.Event{Event: "pitr_gap", Kind: "pitr", State: "gap", Started: g.Detected,
		Gap: &webhook.Gap{From: fmt.Sprintf("%d.%d", g.From.T, g.From.I), FromTime: time.Unix(int64(g.From.T), 0).UTC(), Reason: g.Reason}})
	a.recordPITR(a.ctx, false)
}

// recordPITR gives the metrics the archive's state; withLag also asks the
// server for its newest entry (the lag).
func (a *Agent) recordPITR(ctx context.Context, withLag bool) {
	st := a.archive.State()
	if st.Device == "" {
		a.metrics.SetPITR(nil)
		return
	}
	p := &metrics.PITR{Lag: -1, Gaps: st.Gaps, Bytes: st.Bytes}
	if !st.Newest.IsZero() {
		p.Newest = time.Unix(int64(st.Newest.T), 0).UTC()
	}
	if withLag && !st.Newest.IsZero() {
		if n := a.serverNewest(ctx); !n.IsZero() {
			p.Lag = 0
			if n.T > st.Newest.T {
				p.Lag = time.Duration(n.T-st.Newest.T) * time.Second
			}
		}
	} else if prev := a.metrics.PITR(); prev != nil {
		p.Lag = prev.Lag
	}
	a.metrics.SetPITR(p)
}

// pitrMetricsEvery is how often the archive's lag is measured.
const pitrMetricsEvery = 5 * time.Second

// runPITRMetrics measures the lag until the agent stops.
func (a *Agent) runPITRMetrics() {
	defer close(a.pitrMetricsDone)
	t := time.NewTicker(pitrMetricsEvery)
	defer t.Stop()
	for {
		a.recordPITR(a.ctx, true)
		a.prunePendingPITR(a.ctx)
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// oplogSource is the archive's oplog: the embedded server's read by its
// insertion key (pitr.KeySource: FerretDB's tailable cursor loses
// entries), a MongoDB member's with a tailable cursor, an external
// FerretDB's by polls (pitr.MongoSource finds out which).
func (a *Agent) oplogSource(ctx context.Context) (pitr.Source, func(), error) {
	ms := pitr.NewMongoSource(a.client)
	if a.embed == nil {
		return ms, func() {}, nil
	}
	r, err := a.embed.NewOplogReader(ctx, a.client)
	if err != nil {
		return nil, nil, err
	}
	return &pitr.KeySource{MongoSource: ms, Keys: r}, func() { r.Close(context.Background()) }, nil
}

// startArchive starts the archive on the node's device, with the replica
// set's name in every slice.
func (a *Agent) startArchive() error {
	if a.archive == nil {
		return nil
	}
	var hello struct {
		SetName string `bson:"setName"`
	}
	if err := a.client.Database("admin").RunCommand(a.ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err == nil {
		a.archive.ReplSet = hello.SetName
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	if a.cfg.Remote != nil {
		// The slices go under <prefix>/oplog/ of the same store.
		if sub, ok := a.cfg.Remote.(interface{ Sub(string) remote.Store }); ok {
			a.sliceCopier = &ops.SliceCopier{Remote: sub.Sub(ops.OplogDirName), RetryWait: a.cfg.RemoteRetry,
				Dir: func() string { return a.archive.State().Dir }, Log: a.log}
			a.sliceCopier.Start(a.ctx)
		} else {
			a.log.Warn("pitr: the remote store cannot hold a folder: the oplog slices stay on the device")
		}
	}
	a.archiveOn(n)
	a.pitrMetricsDone = make(chan struct{})
	go a.runPITRMetrics()
	return nil
}

// archiveOn runs the archive where the node's role and device say: on
// the device of a backup node, nowhere otherwise. A failure to start is
// logged: the agent serves its jobs without the archive, and pitr-status
// says it is stopped.
func (a *Agent) archiveOn(n statedir.Node) {
	if a.archive == nil {
		return
	}
	device := ""
	if n.HasRole(statedir.RoleBackup) {
		device = n.Device
	}
	if err := a.archive.SetDevice(a.ctx, device); err != nil {
		a.log.Error("pitr: cannot start the oplog archive", "device", device, "err", err)
	}
}

// pitrStatus answers pitr-status: what the archive holds and what a
// restore to a time can be served from.
func (a *Agent) pitrStatus(w http.ResponseWriter, r *http.Request) error {
	if a.archive == nil {
		return writeJSON(w, http.StatusOK, api.Message{Message: api.MessagePITRNotConfigured})
	}
	args, running, err := a.pitrReport(r.Context())
	if err != nil {
		return err
	}
	msg := api.MessagePITRStopped
	if running {
		msg = api.MessagePITRRunning
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: msg, Arguments: args})
}

// pitrReport is pitr-status's arguments and whether the archiver runs.
func (a *Agent) pitrReport(ctx context.Context) (api.PITRStatus, bool, error) {
	st := a.archive.State()
	device := st.Device
	if device == "" {
		if n, err := a.state.LoadNode(); err == nil && n.HasRole(statedir.RoleBackup) {
			device = n.Device
		}
	}
	if device == "" {
		return api.PITRStatus{LagSeconds: -1, Windows: []api.PITRWindow{}, Gaps: []api.PITRGap{}, Error: "no backup device: run set-as-backup"}, false, nil
	}
	wins, newest, err := a.pitrWindows(ctx)
	if err != nil {
		return api.PITRStatus{LagSeconds: -1, Windows: []api.PITRWindow{}, Gaps: []api.PITRGap{}}, st.Running, err
	}
	out, err := ops.PITRStatus(ops.OplogDir(device), st.Status, wins.All(), newest)
	if a.sliceCopier != nil {
		cs := a.sliceCopier.State()
		out.Remote = &api.PITRRemote{Location: cs.Location, Pending: cs.Pending, Error: cs.Error}
	}
	return out, st.Running, err
}

// pitrWindows are the windows a restore to a time accepts, by the rules
// its plan follows (ops.PITRSources), and the server's newest entry.
func (a *Agent) pitrWindows(ctx context.Context) (ops.PITRWindows, bson.Timestamp, error) {
	src, err := a.pitrSources(ctx)
	if err != nil {
		return ops.PITRWindows{}, bson.Timestamp{}, err
	}
	if src.Remote != nil {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		ctx = rctx
	}
	wins, err := src.Windows(ctx)
	if wins.RemoteErr != nil {
		a.log.Warn("pitr: list the remote store's archive and copies", "err", wins.RemoteErr)
	}
	return wins, src.Newest, err
}

// serverNewestEntries is how many of the newest entries serverNewest reads.
const serverNewestEntries = 100

// serverNewest is the ts of the server's newest oplog entry that the
// archive takes (not local.*), zero when unknown: the greatest of the 100
// newest entries in natural order (FerretDB logs its own oplog's trims in
// local). On MongoDB a {$natural: -1} find with a limit reads only those
// (a capped collection scanned backwards); the embedded server's are read
// from its SQLite table by key instead (embedded.Catalog.NewestOplog),
// because FerretDB answers that find by decoding and sorting the whole
// oplog in memory, and keeps doing so after the timeout below: every
// metrics tick during a large restore left one more such read behind
// (issue 29: 24 GB).
func (a *Agent) serverNewest(ctx context.Context) bson.Timestamp {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.embed != nil {
		heads, err := a.embed.Catalog().NewestOplog(ctx, serverNewestEntries)
		if err != nil {
			a.log.Warn("pitr: read the server's newest oplog entry", "err", err)
			return bson.Timestamp{}
		}
		var newest bson.Timestamp
		for _, h := range heads {
			if !strings.HasPrefix(h.NS, "local.") && (h.TS.T > newest.T || h.TS.T == newest.T && h.TS.I > newest.I) {
				newest = h.TS
			}
		}
		return newest
	}
	return newestByFind(ctx, a.client.Database("local"))
}

// newestMaxTime bounds a newest-entry read on the server itself. The
// driver sends no maxTimeMS on a find (a context deadline only ends the
// client's wait), and a FerretDB server answers a {$natural: -1} find by
// decoding its whole oplog and goes on after the client gave up: on an
// external FerretDB, every metrics tick would leave one more such read
// behind, as on the embedded server before (issue 29). With maxTimeMS the
// server stops it.
const newestMaxTime = 8 * time.Second

// newestByFind is serverNewest on a server a0 reaches only by the wire: a
// {$natural: -1} find with a limit (on MongoDB the capped oplog read
// backwards, 100 entries), sent as a command so that it carries maxTimeMS.
func newestByFind(ctx context.Context, local *mongo.Database) bson.Timestamp {
	cur, err := local.RunCommandCursor(ctx, bson.D{
		{Key: "find", Value: "oplog.rs"},
		{Key: "filter", Value: bson.D{}},
		{Key: "sort", Value: bson.D{{Key: "$natural", Value: -1}}},
		{Key: "limit", Value: serverNewestEntries},
		{Key: "batchSize", Value: serverNewestEntries},
		{Key: "projection", Value: bson.D{{Key: "ts", Value: 1}, {Key: "ns", Value: 1}}},
		{Key: "maxTimeMS", Value: newestMaxTime.Milliseconds()},
	})
	if err != nil {
		return bson.Timestamp{}
	}
	defer cur.Close(ctx)
	var newest bson.Timestamp
	for cur.Next(ctx) {
		ns, _ := cur.Current.Lookup("ns").StringValueOK()
		if strings.HasPrefix(ns, "local.") {
			continue
		}
		if t, i, ok := cur.Current.Lookup("ts").TimestampOK(); ok && (t > newest.T || t == newest.T && i > newest.I) {
			newest = bson.Timestamp{T: t, I: i}
		}
	}
	return newest
}

// pitrBases are the backups the archive's windows can start from: the
// device's stored backup and the remote copies.
func (a *Agent) pitrBases(ctx context.Context, device string) (local, remote []ops.Base) {
	if b, ok := ops.LocalBase(device); ok {
		local = append(local, b)
	}
	if a.copier != nil {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		rb, err := a.copier.RemoteBases(rctx)
		cancel()
		if err != nil {
			a.log.Warn("pitr: list the remote copies", "err", err)
		}
		remote = rb
	}
	return local, remote
}

// prunePendingPITR is the prune a new backup calls for, at its end and
// then at each metrics tick until the archive has reached the stored
// backup's consistent_to. A backup usually ends before the slice holding
// its consistent_to closes: the base is in no window yet, and a device
// whose one stored backup was replaced had no base inside the archive at
// all, so nothing was pruned, then or at the next backup (as new again):
// the archive grew without end.
func (a *Agent) prunePendingPITR(ctx context.Context) {
	if !a.prunePending.Load() {
		return
	}
	out, err := a.prunePITR(ctx, false)
	if err != nil {
		a.log.Warn("pitr: prune the device's slices", "err", err)
		return
	}
	st := a.archive.State()
	b, ok := ops.LocalBase(st.Device)
	if out.Before != nil || !ok || st.Device == "" || !st.Newest.IsZero() && (st.Newest.T > b.ConsistentTo.T || st.Newest.T == b.ConsistentTo.T && st.Newest.I >= b.ConsistentTo.I) {
		// Pruned back to the oldest base, or nothing left to wait for:
		// the archive is past the stored backup (served or not, no later
		// prune would find more).
		a.prunePending.Store(false)
	}
}

// prunePITR removes the slices no base needs: on the device, those ending
// before the oldest base (local or remote) inside the archive's windows;
// in the store, those ending before the store's oldest base.
func (a *Agent) prunePITR(ctx context.Context, dryRun bool) (*api.PITRPrune, error) {
	out := &api.PITRPrune{Removed: []string{}, RemovedRemote: []string{}}
	st := a.archive.State()
	dir := st.Dir
	if dir == "" {
		return out, nil
	}
	local, remote := a.pitrBases(ctx, st.Device)
	before, ok, err := ops.OldestBase(dir, append(local, remote...), a.serverNewest(ctx))
	if err != nil {
		return out, err
	}
	if ok {
		out.Before = &api.OplogPos{T: before.T, I: before.I, Wall: time.Unix(int64(before.T), 0).UTC()}
		// A slice the store lacks yet (it was unreachable) stays: the
		// store's archive needs it, and the device is its only copy.
		var keep func(pitr.Slice) bool
		if a.sliceCopier != nil {
			keep = func(s pitr.Slice) bool { return !a.sliceCopier.Holds(s) }
		}
		if out.Removed, err = ops.PruneSlicesKeeping(dir, before, dryRun, keep); err != nil {
			return out, err
		}
		if out.Removed == nil {
			out.Removed = []string{}
		}
	}
	if a.sliceCopier != nil && len(remote) > 0 {
		oldest := remote[0].ConsistentTo
		for _, b := range remote[1:] {
			if b.ConsistentTo.T < oldest.T || b.ConsistentTo.T == oldest.T && b.ConsistentTo.I < oldest.I {
				oldest = b.ConsistentTo
			}
		}
		if out.RemovedRemote, err = a.sliceCopier.Prune(ctx, oldest, dryRun); err != nil {
			return out, err
		}
		if out.RemovedRemote == nil {
			out.RemovedRemote = []string{}
		}
	}
	if n := len(out.Removed) + len(out.RemovedRemote); n > 0 {
		a.log.Info("pitr: pruned slices", "device", len(out.Removed), "remote", len(out.RemovedRemote), "dry_run", dryRun)
	}
	return out, nil
}
