package agent

import (
	"context"
	"errors"
	"os"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/statedir"
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
		Retry: a.cfg.PITR.Retry, Source: a.oplogSource, Log: a.log}
	return nil
}

// oplogSource is the archive's oplog: the embedded server's read by its
// insertion key (pitr.KeySource: FerretDB's tailable cursor loses
// entries), a MongoDB member's with a tailable cursor.
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
	a.archiveOn(n)
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
