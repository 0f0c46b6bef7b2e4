package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Server error codes of a server that lacks a feature: NotImplemented
// (FerretDB's answer for timeseries, viewOn, validator, collation...),
// CommandNotFound, CommandNotSupported.
const (
	codeCommandNotSupported = 115
)

// UnsupportedError says the target server cannot hold something the backup
// holds: a time-series collection, a view, a clustered collection, users
// and roles... It is returned before any document is written.
type UnsupportedError struct {
	Namespace string
	// Feature names what the server lacks, as a user knows it.
	Feature string
	Err     error
}

func (e *UnsupportedError) Error() string {
	msg := fmt.Sprintf("the server cannot hold the %s %s", e.Feature, e.Namespace)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + "; nothing was restored (restore the other collections with --ns, or onto a MongoDB server that has the feature)"
}

func (e *UnsupportedError) Unwrap() error { return e.Err }

func isUnsupported(err error) bool {
	return isCode(err, codeNotImplemented) || isCode(err, codeCommandNotFound) || isCode(err, codeCommandNotSupported)
}

// feature names what a collection needs beyond a plain collection, and the
// collection option that says it ("" when nothing special).
func feature(c *PlannedCollection) (name, option string) {
	switch {
	case c.Type == "view":
		return "view", "viewOn"
	case c.Type == "timeseries":
		return "time-series collection", "timeseries"
	case hasOption(c.Options, "clusteredIndex"):
		return "clustered collection", "clusteredIndex"
	case hasOption(c.Options, "validator"):
		return "collection with a validator", "validator"
	case hasOption(c.Options, "collation"):
		return "collection with a default collation", "collation"
	case c.idSpec != nil:
		return "collection with a custom _id index", ""
	}
	return "", ""
}

// Preflight runs, before the first document is written, the steps that
// tell whether the server can hold what the plan restores: for each
// collection that needs a server feature (views, time-series, clustered,
// validators, collations, custom _id indexes) it creates a probe collection
// with the same options under a name of its own, checks that the server
// kept the option (FerretDB accepts some, such as clusteredIndex, and drops
// them silently) and drops the probe; with Options.UsersAndRoles it checks
// that the server manages users. The target collections are not touched.
// A server that lacks a feature gives an *UnsupportedError. Run calls it
// when the caller did not.
func Preflight(ctx context.Context, client *mongo.Client, p *PlanResult, opts Options) error {
	if p.preflighted {
		return nil
	}
	if err := probeNames(ctx, client, p); err != nil {
		return err
	}
	if opts.UsersAndRoles && len(p.authz) > 0 {
		if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Err(); err != nil {
			if isUnsupported(err) {
				return &UnsupportedError{Namespace: fmt.Sprintf("admin.system.users and admin.system.roles (%d users, %d roles)", p.Users, p.Roles),
					Feature: "users and roles of", Err: fmt.Errorf("usersInfo: %w", err)}
			}
			return fmt.Errorf("usersInfo: %w", err)
		}
	}
	for i := range p.Collections {
		c := p.Collections[i]
		name, option := feature(&c)
		if name == "" {
			continue
		}
		probe := c
		probe.Name = fmt.Sprintf("a0.probe.%d.%s", time.Now().UnixNano(), c.Name)
		if len(probe.Name) > 200 {
			probe.Name = probe.Name[:200]
		}
		err := createCollection(ctx, client, &probe, Options{})
		if err == nil {
			err = checkKept(ctx, client, &probe, option)
			client.Database(c.DB).Collection(probe.Name).Drop(context.WithoutCancel(ctx))
		}
		if err != nil {
			if isUnsupported(err) || errors.Is(err, errNotKept) {
				return &UnsupportedError{Namespace: c.Namespace(), Feature: name, Err: err}
			}
			return err
		}
	}
	// The archive's own collections first: their refusal names the
	// feature as the server answered.
	if err := preflightOplog(ctx, client, p, opts); err != nil {
		return err
	}
	p.preflighted = true
	return nil
}

// createCollection drops (with Drop) and creates one collection with its
// options, and its custom _id index as create's idIndex (mongorestore does
// the same; a clustered collection's is its clusteredIndex).
func createCollection(ctx context.Context, client *mongo.Client, c *PlannedCollection, opts Options) error {
	db := client.Database(c.DB)
	if opts.Drop {
		if err := db.Collection(c.Name).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: %w", c.Namespace(), err)
		}
	}
	create := append(bson.D{{Key: "create", Value: c.Name}}, createOptions(c.Options)...)
	if c.idSpec != nil && c.Type != "view" && c.Type != "timeseries" && !hasOption(c.Options, "clusteredIndex") {
		create = append(create, bson.E{Key: "idIndex", Value: c.idSpec})
	}
	if err := db.RunCommand(ctx, create).Err(); err != nil && !isCode(err, codeNamespaceExists) {
		return fmt.Errorf("create %s: %w", c.Namespace(), err)
	}
	return nil
}

// errNotKept: the server accepted a create and dropped an option.
var errNotKept = errors.New("option not kept")

// checkKept reads back a created collection's options (and _id index) and
// fails when the server dropped what the backup holds.
func checkKept(ctx context.Context, client *mongo.Client, c *PlannedCollection, option string) error {
	db := client.Database(c.DB)
	if option != "" {
		specs, err := db.ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: c.Name}})
		if err != nil {
			return fmt.Errorf("list collections: %w", err)
		}
		if len(specs) != 1 {
			return fmt.Errorf("%w: the server accepted create but lists no such collection", errNotKept)
		}
		var o bson.D
		if err := bson.Unmarshal(specs[0].Options, &o); err != nil {
			return fmt.Errorf("options: %w", err)
		}
		if option == "viewOn" && specs[0].Type != "view" || option != "viewOn" && !hasOption(o, option) {
			return fmt.Errorf("%w: the server accepted create but did not keep the %q option", errNotKept, option)
		}
	}
	if c.idSpec != nil && c.Type == "collection" && !hasOption(c.Options, "clusteredIndex") {
		cur, err := db.Collection(c.Name).Indexes().List(ctx)
		if err != nil {
			return fmt.Errorf("list indexes: %w", err)
		}
		var specs []bson.D
		if err := cur.All(ctx, &specs); err != nil {
			return fmt.Errorf("list indexes: %w", err)
		}
		for _, s := range specs {
			if name, _ := indexSpecName(s).(string); name != "_id_" {
				continue
			}
			for _, e := range c.idSpec {
				if e.Key != "v" && e.Key != "key" && e.Key != "name" && !hasOption(s, e.Key) {
					return fmt.Errorf("%w: the server accepted create but its _id index lacks %q", errNotKept, e.Key)
				}
			}
			return nil
		}
		return fmt.Errorf("%w: the server created no _id index", errNotKept)
	}
	return nil
}

// authzTemp are the collections mongorestore loads users and roles into
// before _mergeAuthzCollections moves them into place.
var authzTemp = map[string]string{"system.users": "tempusers", "system.roles": "temproles"}

// loadAuthz inserts the documents of admin.system.users or .roles into
// their temporary collection.
func (rs *runState) loadAuthz(ctx context.Context, c *PlannedCollection, data io.Reader, br *bufio.Reader) error {
	tmp := rs.client.Database("admin").Collection(authzTemp[c.Name])
	if err := tmp.Drop(ctx); err != nil {
		return fmt.Errorf("users and roles: %w", err)
	}
	br.Reset(data)
	cr := &CollectionReport{Namespace: c.Namespace()}
	if _, _, err := rs.insertAll(ctx, tmp, br, insertMode{ns: c.Namespace(), refused: &refusals{cr: cr}}); err != nil {
		return fmt.Errorf("users and roles: %w", err)
	}
	if cr.DocumentsFailed > 0 {
		return fmt.Errorf("users and roles: %d documents of %s refused: %v", cr.DocumentsFailed, c.Namespace(), cr.InsertErrors)
	}
	rs.authzLoaded = true
	return nil
}

// mergeAuthz moves the loaded users and roles into place as mongorestore
// does (_mergeAuthzCollections; with Drop the existing ones are replaced)
// and removes the temporary collections.
func (rs *runState) mergeAuthz(ctx context.Context) error {
	if !rs.authzLoaded {
		return nil
	}
	rs.authzLoaded = false // merged once, before the replay
	admin := rs.client.Database("admin")
	defer func() {
		for _, t := range authzTemp {
			admin.Collection(t).Drop(context.WithoutCancel(ctx))
		}
	}()
	cmd := bson.D{{Key: "_mergeAuthzCollections", Value: 1},
		{Key: "tempUsersCollection", Value: "admin.tempusers"}, {Key: "tempRolesCollection", Value: "admin.temproles"},
		{Key: "drop", Value: rs.opts.Drop}, {Key: "db", Value: ""}}
	if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
		if isUnsupported(err) {
			return &UnsupportedError{Namespace: "admin.system.users and admin.system.roles", Feature: "users and roles of", Err: err}
		}
		return fmt.Errorf("restore users and roles: %w", err)
	}
	return nil
}

// preflightOplog refuses, before any write, an oplog whose replay writes
// views, time-series buckets or users and roles onto a server without
// applyOps (FerretDB): those are server catalog writes that only applyOps
// can replay, and the server could not hold them. The refusal names every
// such namespace.
func preflightOplog(ctx context.Context, client *mongo.Client, p *PlanResult, opts Options) error {
	if opts.NoOplogReplay || p.oplog == nil || len(p.oplog.needs) == 0 || opts.testMode == modeApplyOps {
		return nil
	}
	err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "applyOps", Value: bson.A{}}}).Err()
	if err == nil || !isUnsupported(err) && opts.testMode != modeWrites {
		return nil
	}
	var feats []string
	for f := range p.oplog.needs {
		feats = append(feats, f)
	}
	sort.Strings(feats)
	var names []string
	for _, f := range feats {
		var nss []string
		for ns := range p.oplog.needs[f] {
			nss = append(nss, ns)
		}
		sort.Strings(nss)
		names = append(names, strings.Join(nss, ", "))
	}
	return &UnsupportedError{Namespace: strings.Join(names, "; ") + " (written by the oplog)",
		Feature: strings.Join(feats, " / "), Err: fmt.Errorf("the replay needs applyOps: %w", err)}
}
