package sampledata

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrAlreadySeeded is returned by Seed when auth0.users already holds
// documents: Seed never mixes two data sets, and never deletes.
var ErrAlreadySeeded = errors.New("sample data already present")

// Options sizes the sample data. Equal options give equal documents,
// _ids included, whatever the batch size or parallelism.
type Options struct {
	// Users is the number of auth0.users; the other collections scale with it.
	Users int
	// Seed picks the data set; zero means 1.
	Seed int64
	// Batch is documents per InsertMany; zero means 5000.
	Batch int
}

// Stats says what Seed wrote.
type Stats struct {
	// Docs maps "db.collection" to its number of documents.
	Docs map[string]int64
	// TotalDocs is the sum of Docs.
	TotalDocs int64
	// Bytes is the BSON size of all documents (not the on-disk size).
	Bytes int64
	// Duration covers the inserts and the index builds.
	Duration time.Duration
}

// seedEpoch anchors every time value so that data does not depend on when
// it is generated.
var seedEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// seedColl is one collection of the sample data: its size, its document
// generator (document i only depends on the seed and i) and its indexes.
type seedColl struct {
	db, name string
	count    int
	gen      func(r *rand.Rand, i int) bson.D
	indexes  []mongo.IndexModel
}

// Seed writes the sample data set, then builds its indexes (after the
// inserts, which is faster on FerretDB). It fails with ErrAlreadySeeded,
// writing nothing, when auth0.users is not empty. Inserts are unordered and
// run in parallel; a failure cancels the rest and leaves partial data.
func Seed(ctx context.Context, client *mongo.Client, opts Options) (Stats, error) {
	start := time.Now()
	if opts.Users < 0 {
		return Stats{}, fmt.Errorf("sampledata: seed: %d users", opts.Users)
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	n, err := client.Database("auth0").Collection("users").CountDocuments(ctx, bson.D{}, options.Count().SetLimit(1))
	if err != nil {
		return Stats{}, fmt.Errorf("sampledata: seed: %w", err)
	}
	if n > 0 {
		return Stats{}, fmt.Errorf("sampledata: seed: auth0.users: %w", ErrAlreadySeeded)
	}

	colls := sampleCollections(opts.Users)
	// SQLite takes one writer per database file and FerretDB keeps one file
	// per database: writers of the same database only wait on each other
	// (and sleep in SQLite's busy handler). So each database gets its own
	// lane, and lanes run in parallel; a lane builds a collection's indexes
	// right after its inserts, overlapping the other lanes' inserts.
	lanes := map[string][]*seedColl{}
	var dbs []string
	for i := range colls {
		if lanes[colls[i].db] == nil {
			dbs = append(dbs, colls[i].db)
		}
		lanes[colls[i].db] = append(lanes[colls[i].db], &colls[i])
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		bytes int64
		wg    sync.WaitGroup
	)
	for _, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range lanes[db] {
				n, err := seedCollection(ctx, client, c, opts)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				bytes += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return Stats{}, err
	}

	stats := Stats{Docs: make(map[string]int64, len(colls)), Bytes: bytes}
	for _, c := range colls {
		stats.Docs[c.db+"."+c.name] = int64(c.count)
		stats.TotalDocs += int64(c.count)
	}
	stats.Duration = time.Since(start)
	return stats, nil
}

// seedCollection inserts c's documents and then builds its indexes. Batches
// are marshaled one ahead of the insert, so the driver side overlaps the
// server side. It returns the BSON bytes written.
func seedCollection(ctx context.Context, client *mongo.Client, c *seedColl, opts Options) (int64, error) {
	coll := client.Database(c.db).Collection(c.name)
	type batch struct {
		docs []any
		size int64
	}
	batches := make(chan batch, 1)
	go func() {
		defer close(batches)
		for s := 0; s < c.count; s += opts.Batch {
			b := batch{docs: make([]any, 0, min(opts.Batch, c.count-s))}
			for i := s; i < min(s+opts.Batch, c.count); i++ {
				raw, err := bson.Marshal(c.gen(docRand(opts.Seed, c.name, i), i))
				if err != nil {
					// Generators build plain bson.D values: a failure is a bug.
					panic(fmt.Sprintf("sampledata: marshal %s.%s #%d: %v", c.db, c.name, i, err))
				}
				b.size += int64(len(raw))
				b.docs = append(b.docs, bson.Raw(raw))
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	var total int64
	for b := range batches {
		if _, err := coll.InsertMany(ctx, b.docs, options.InsertMany().SetOrdered(false)); err != nil {
			return 0, fmt.Errorf("sampledata: seed %s.%s: %w", c.db, c.name, err)
		}
		total += b.size
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sampledata: seed %s.%s: %w", c.db, c.name, err)
	}
	if len(c.indexes) > 0 {
		if _, err := coll.Indexes().CreateMany(ctx, c.indexes); err != nil {
			return 0, fmt.Errorf("sampledata: seed: indexes of %s.%s: %w", c.db, c.name, err)
		}
	}
	return total, nil
}

// docRand gives document i of a collection its own generator, so that the
// data does not depend on which worker builds which batch.
func docRand(seed int64, coll string, i int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(coll))
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()^uint64(i)*0x9e3779b97f4a7c15))
}

// objectID makes a deterministic ObjectID: the timestamp part is t, the
// rest comes from r.
func objectID(r *rand.Rand, t time.Time) bson.ObjectID {
	var id bson.ObjectID
	binary.BigEndian.PutUint32(id[0:4], uint32(t.Unix()))
	binary.BigEndian.PutUint64(id[4:12], r.Uint64())
	return id
}

// at returns a time within days after seedEpoch, at millisecond precision
// (what BSON keeps), in UTC.
func at(r *rand.Rand, days int) time.Time {
	return seedEpoch.Add(time.Duration(r.Int64N(int64(days) * int64(24*time.Hour)))).Truncate(time.Millisecond)
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

var (
	firstNames  = []string{"Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "Tim", "Sophie", "Donald", "Hedy", "John"}
	lastNames   = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Wilson", "Knuth", "Lamarr", "McCarthy"}
	domains     = []string{"example.com", "example.org", "mail.test", "corp.example", "users.test"}
	plans       = []string{"free", "starter", "pro", "enterprise"}
	roles       = []string{"admin", "editor", "viewer", "billing", "support", "developer"}
	locales     = []string{"en", "fr", "de", "es", "ja", "pt-BR"}
	regions     = []string{"us-1", "eu-1", "au-1", "jp-1"}
	logTypes    = []string{"s", "s", "s", "f", "fp", "seacft", "sepft", "slo", "ss", "fu"}
	connections = []struct {
		name, strategy string
		social         bool
	}{
		{"Username-Password-Authentication", "auth0", false},
		{"google-oauth2", "google-oauth2", true},
		{"github", "github", true},
	}
	appTypes = []string{"spa", "regular_web", "native", "non_interactive"}
	agents   = []string{"Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0", "Mozilla/5.0 (Macintosh) Safari/605.1.15", "okhttp/4.12.0", "curl/8.5.0"}
)

const (
	clientsPerTenant  = 5
	settingsPerTenant = 4
)

func tenantID(i int) string { return fmt.Sprintf("tenant-%05d", i) }
func clientID(i int) string { return fmt.Sprintf("client-%07d", i) }
func userID(i int) string   { return fmt.Sprintf("auth0|%024x", uint64(i)*0x9e3779b97f4a7c15) }
func ipv4(r *rand.Rand) string {
	return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(254)+1)
}

// sampleCollections describes the data set for users users. Cross-document
// references (user of a log, client of a session) are computed from
// indexes, so any document can be generated alone.
func sampleCollections(users int) []seedColl {
	tenants := max(1, users/1000)
	tenantOf := func(i int) string { return tenantID(i % tenants) }
	idx := func(unique bool, keys ...any) mongo.IndexModel {
		var d bson.D
		for k := 0; k < len(keys); k += 2 {
			d = append(d, bson.E{Key: keys[k].(string), Value: keys[k+1]})
		}
		m := mongo.IndexModel{Keys: d}
		if unique {
			m.Options = options.Index().SetUnique(true)
		}
		return m
	}
	return []seedColl{
		{db: "auth0", name: "tenants", count: tenants, gen: func(r *rand.Rand, i int) bson.D {
			return bson.D{
				{Key: "_id", Value: tenantID(i)},
				{Key: "name", Value: fmt.Sprintf("acme-%d", i)},
				{Key: "region", Value: pick(r, regions)},
				{Key: "plan", Value: pick(r, plans)},
				{Key: "created_at", Value: at(r, 30)},
				{Key: "flags", Value: bson.D{
					{Key: "enable_sso", Value: r.IntN(2) == 0},
					{Key: "mfa_required", Value: r.IntN(4) == 0},
				}},
			}
		}, indexes: []mongo.IndexModel{idx(true, "name", 1)}},

		{db: "auth0", name: "clients", count: tenants * clientsPerTenant, gen: func(r *rand.Rand, i int) bson.D {
			return bson.D{
				{Key: "_id", Value: clientID(i)},
				{Key: "__tenant", Value: tenantID(i / clientsPerTenant)},
				{Key: "name", Value: fmt.Sprintf("App %d", i)},
				{Key: "app_type", Value: pick(r, appTypes)},
				{Key: "client_secret", Value: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())},
				{Key: "callbacks", Value: bson.A{fmt.Sprintf("https://app%d.example.com/callback", i), "http://localhost:3000/callback"}},
				{Key: "grant_types", Value: bson.A{"authorization_code", "refresh_token"}},
				{Key: "jwt_configuration", Value: bson.D{{Key: "alg", Value: "RS256"}, {Key: "lifetime_in_seconds", Value: int32(36000)}}},
				{Key: "created_at", Value: at(r, 60)},
			}
		}, indexes: []mongo.IndexModel{idx(false, "__tenant", 1, "name", 1)}},

		{db: "auth0", name: "connections", count: tenants * len(connections), gen: func(r *rand.Rand, i int) bson.D {
			c := connections[i%len(connections)]
			t := i / len(connections)
			return bson.D{
				{Key: "_id", Value: fmt.Sprintf("con_%06d", i)},
				{Key: "__tenant", Value: tenantID(t)},
				{Key: "name", Value: c.name},
				{Key: "strategy", Value: c.strategy},
				{Key: "is_social", Value: c.social},
				{Key: "enabled_clients", Value: bson.A{clientID(t * clientsPerTenant), clientID(t*clientsPerTenant + 1)}},
				{Key: "options", Value: bson.D{
					{Key: "brute_force_protection", Value: true},
					{Key: "password_policy", Value: pick(r, []string{"fair", "good", "excellent"})},
					{Key: "mfa", Value: bson.D{{Key: "active", Value: r.IntN(2) == 0}, {Key: "return_enroll_settings", Value: true}}},
				}},
			}
		}, indexes: []mongo.IndexModel{idx(true, "__tenant", 1, "name", 1)}},

		{db: "auth0", name: "users", count: users, gen: func(r *rand.Rand, i int) bson.D {
			first, last := pick(r, firstNames), pick(r, lastNames)
			created := at(r, 120)
			updated := created.Add(time.Duration(r.Int64N(int64(90 * 24 * time.Hour)))).Truncate(time.Millisecond)
			conn := connections[r.IntN(len(connections))]
			ident := bson.A{bson.D{
				{Key: "provider", Value: conn.strategy},
				{Key: "user_id", Value: fmt.Sprintf("%d", 100000+i)},
				{Key: "connection", Value: conn.name},
				{Key: "isSocial", Value: conn.social},
			}}
			if r.IntN(5) == 0 {
				ident = append(ident, bson.D{{Key: "provider", Value: "sms"}, {Key: "user_id", Value: fmt.Sprintf("sms|%d", i)}, {Key: "connection", Value: "sms"}, {Key: "isSocial", Value: false}})
			}
			nRoles := 1 + r.IntN(3)
			userRoles := make(bson.A, 0, nRoles)
			for k := range nRoles {
				userRoles = append(userRoles, roles[(r.IntN(len(roles))+k)%len(roles)])
			}
			d := bson.D{
				{Key: "_id", Value: objectID(r, created)},
				{Key: "user_id", Value: userID(i)},
				{Key: "__tenant", Value: tenantOf(i)},
				// The index in the address keeps {__tenant, email} unique.
				{Key: "email", Value: fmt.Sprintf("%s.%s.%d@%s", first, last, i, pick(r, domains))},
				{Key: "email_verified", Value: r.IntN(3) != 0},
				{Key: "name", Value: first + " " + last},
				{Key: "given_name", Value: first},
				{Key: "family_name", Value: last},
				{Key: "nickname", Value: fmt.Sprintf("%s%d", first, i)},
				{Key: "created_at", Value: created},
				{Key: "updated_at", Value: updated},
				{Key: "lastLogin", Value: updated},
				{Key: "logins_count", Value: int32(r.IntN(500))},
				{Key: "blocked", Value: r.IntN(50) == 0},
				{Key: "app_metadata", Value: bson.D{
					{Key: "plan", Value: pick(r, plans)},
					{Key: "roles", Value: userRoles},
					{Key: "billing", Value: bson.D{
						{Key: "customer_id", Value: fmt.Sprintf("cus_%012x", r.Uint64()>>16)},
						{Key: "since", Value: created},
						{Key: "seats", Value: int32(1 + r.IntN(20))},
					}},
				}},
				{Key: "user_metadata", Value: bson.D{{Key: "locale", Value: pick(r, locales)}, {Key: "theme", Value: pick(r, []string{"light", "dark"})}}},
				{Key: "identities", Value: ident},
			}
			// Some users have no phone: that is what the sparse index is for.
			if r.IntN(3) != 0 {
				d = append(d, bson.E{Key: "phone_number", Value: fmt.Sprintf("+1555%07d", i%10_000_000)}, bson.E{Key: "phone_verified", Value: r.IntN(2) == 0})
			} else {
				d = append(d, bson.E{Key: "phone_verified", Value: false})
			}
			return d
		}, indexes: []mongo.IndexModel{
			idx(true, "__tenant", 1, "email", 1),
			idx(true, "user_id", 1),
			idx(false, "__tenant", 1, "app_metadata.plan", 1, "lastLogin", -1),
			// FerretDB accepts sparse and silently drops it.
			{Keys: bson.D{{Key: "phone_number", Value: 1}}, Options: options.Index().SetSparse(true)},
		}},

		{db: "auth0", name: "sessions", count: users / 4, gen: func(r *rand.Rand, i int) bson.D {
			u := r.IntN(max(1, users))
			created := at(r, 180)
			return bson.D{
				{Key: "_id", Value: objectID(r, created)},
				{Key: "__tenant", Value: tenantOf(u)},
				{Key: "user_id", Value: userID(u)},
				{Key: "client_id", Value: clientID((u%tenants)*clientsPerTenant + r.IntN(clientsPerTenant))},
				{Key: "created_at", Value: created},
				{Key: "last_interacted_at", Value: created.Add(time.Duration(r.IntN(3600)) * time.Second)},
				{Key: "expires_at", Value: created.Add(72 * time.Hour)},
				{Key: "device", Value: bson.D{{Key: "ip", Value: ipv4(r)}, {Key: "user_agent", Value: pick(r, agents)}}},
				{Key: "authenticated_by", Value: bson.A{bson.D{{Key: "method", Value: "pwd"}, {Key: "timestamp", Value: created}}}},
			}
		}, indexes: []mongo.IndexModel{idx(false, "user_id", 1), idx(false, "__tenant", 1, "expires_at", 1)}},

		{db: "auth0", name: "refresh_tokens", count: users / 10, gen: func(r *rand.Rand, i int) bson.D {
			u := r.IntN(max(1, users))
			created := at(r, 180)
			return bson.D{
				{Key: "_id", Value: objectID(r, created)},
				{Key: "__tenant", Value: tenantOf(u)},
				{Key: "user_id", Value: userID(u)},
				{Key: "token_hash", Value: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())},
				{Key: "scopes", Value: bson.A{"openid", "profile", "offline_access"}},
				{Key: "created_at", Value: created},
				{Key: "rotating", Value: r.IntN(2) == 0},
			}
		}, indexes: []mongo.IndexModel{idx(false, "__tenant", 1, "user_id", 1)}},

		{db: "logs", name: "logs", count: users / 2, gen: func(r *rand.Rand, i int) bson.D {
			u := r.IntN(max(1, users))
			date := at(r, 180)
			return bson.D{
				{Key: "_id", Value: objectID(r, date)},
				{Key: "date", Value: date},
				{Key: "type", Value: pick(r, logTypes)},
				{Key: "__tenant", Value: tenantOf(u)},
				{Key: "user_id", Value: userID(u)},
				{Key: "ip", Value: ipv4(r)},
			}
		}, indexes: []mongo.IndexModel{idx(false, "__tenant", 1, "date", -1), idx(false, "user_id", 1)}},

		{db: "config_store", name: "settings", count: tenants * settingsPerTenant, gen: func(r *rand.Rand, i int) bson.D {
			keys := []string{"branding", "session_lifetime", "mfa_policy", "email_provider"}
			return bson.D{
				{Key: "_id", Value: fmt.Sprintf("%s/%s", tenantID(i/settingsPerTenant), keys[i%settingsPerTenant])},
				{Key: "__tenant", Value: tenantID(i / settingsPerTenant)},
				{Key: "key", Value: keys[i%settingsPerTenant]},
				{Key: "value", Value: bson.D{
					{Key: "enabled", Value: r.IntN(2) == 0},
					{Key: "ttl_hours", Value: int32(1 + r.IntN(720))},
					{Key: "colors", Value: bson.D{{Key: "primary", Value: fmt.Sprintf("#%06x", r.IntN(1<<24))}}},
				}},
				{Key: "version", Value: int64(1 + r.IntN(10))},
				{Key: "updated_at", Value: at(r, 90)},
			}
		}, indexes: []mongo.IndexModel{idx(false, "__tenant", 1)}},
	}
}
