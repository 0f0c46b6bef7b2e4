package sampledata

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
)

// startClient runs an embedded server in a fresh directory and connects to it.
func startClient(t *testing.T) *mongo.Client {
	t.Helper()
	return embeddedtest.Client(t, embedded.Config{})
}

func TestSeedCountsAndIndexes(t *testing.T) {
	ctx := context.Background()
	c := startClient(t)
	const users = 2500
	stats, err := Seed(ctx, c, Options{Users: users, Batch: 700})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d docs, %d bytes in %v", stats.TotalDocs, stats.Bytes, stats.Duration)
	want := map[string]int64{
		"auth0.tenants": 2, "auth0.clients": 10, "auth0.connections": 6, "auth0.users": users,
		"auth0.sessions": users / 4, "auth0.refresh_tokens": users / 10, "logs.logs": users / 2,
		"config_store.settings": 8,
	}
	var total int64
	for ns, n := range want {
		total += n
		t.Run(ns, func(t *testing.T) {
			if stats.Docs[ns] != n {
				t.Errorf("stats = %d, want %d", stats.Docs[ns], n)
			}
			db, coll, _ := cut(ns)
			got, err := c.Database(db).Collection(coll).CountDocuments(ctx, bson.D{})
			if err != nil || got != n {
				t.Errorf("count = %d, %v; want %d", got, err, n)
			}
		})
	}
	if stats.TotalDocs != total || len(stats.Docs) != len(want) || stats.Bytes < total*50 {
		t.Errorf("stats = %+v; want %d docs", stats, total)
	}

	t.Run("users indexes", func(t *testing.T) {
		specs, err := c.Database("auth0").Collection("users").Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range specs {
			got[s.Name] = s.Unique != nil && *s.Unique
		}
		for name, unique := range map[string]bool{
			"_id_": false, "__tenant_1_email_1": true, "user_id_1": true,
			"__tenant_1_app_metadata.plan_1_lastLogin_-1": false, "phone_number_1": false,
		} {
			if u, ok := got[name]; !ok || u != unique {
				t.Errorf("index %s: present %v unique %v; want unique %v (all: %v)", name, ok, u, unique, got)
			}
		}
	})
	t.Run("unique email enforced", func(t *testing.T) {
		var u bson.M
		users := c.Database("auth0").Collection("users")
		if err := users.FindOne(ctx, bson.D{}).Decode(&u); err != nil {
			t.Fatal(err)
		}
		_, err := users.InsertOne(ctx, bson.D{{Key: "__tenant", Value: u["__tenant"]}, {Key: "email", Value: u["email"]}})
		if err == nil {
			t.Fatal("duplicate {__tenant, email} accepted")
		}
	})
	t.Run("user shape", func(t *testing.T) {
		var u bson.Raw
		if err := c.Database("auth0").Collection("users").FindOne(ctx, bson.D{}).Decode(&u); err != nil {
			t.Fatal(err)
		}
		for _, path := range [][]string{
			{"user_id"}, {"email"}, {"email_verified"}, {"phone_verified"}, {"name"}, {"lastLogin"},
			{"updated_at"}, {"__tenant"}, {"app_metadata", "plan"}, {"app_metadata", "roles"},
			{"app_metadata", "billing", "since"}, {"identities"},
		} {
			if _, err := u.LookupErr(path...); err != nil {
				t.Errorf("%v: %v", path, err)
			}
		}
		if u.Lookup("lastLogin").Type != bson.TypeDateTime {
			t.Errorf("lastLogin is %v", u.Lookup("lastLogin").Type)
		}
	})
	t.Run("already seeded", func(t *testing.T) {
		if _, err := Seed(ctx, c, Options{Users: 10}); !errors.Is(err, ErrAlreadySeeded) {
			t.Fatalf("second seed: %v; want ErrAlreadySeeded", err)
		}
	})
}

func cut(ns string) (string, string, bool) {
	for i := range ns {
		if ns[i] == '.' {
			return ns[:i], ns[i+1:], true
		}
	}
	return ns, "", false
}

// TestSeedDeterministic seeds two servers with different batch sizes and
// compares every document of a sample, _id included.
func TestSeedDeterministic(t *testing.T) {
	ctx := context.Background()
	a, b, other := startClient(t), startClient(t), startClient(t)
	if _, err := Seed(ctx, a, Options{Users: 1200, Seed: 7, Batch: 5000}); err != nil {
		t.Fatal(err)
	}
	if _, err := Seed(ctx, b, Options{Users: 1200, Seed: 7, Batch: 333}); err != nil {
		t.Fatal(err)
	}
	if _, err := Seed(ctx, other, Options{Users: 1200, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"auth0.users", "auth0.sessions", "logs.logs", "config_store.settings", "auth0.clients"} {
		t.Run(ns, func(t *testing.T) {
			db, coll, _ := cut(ns)
			fetch := func(cl *mongo.Client) []bson.Raw {
				cur, err := cl.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(300))
				if err != nil {
					t.Fatal(err)
				}
				var out []bson.Raw
				if err := cur.All(ctx, &out); err != nil {
					t.Fatal(err)
				}
				return out
			}
			da, db2, do := fetch(a), fetch(b), fetch(other)
			if len(da) == 0 || len(da) != len(db2) {
				t.Fatalf("%d vs %d documents", len(da), len(db2))
			}
			same := 0
			for i := range da {
				if !slices.Equal(da[i], db2[i]) {
					t.Fatalf("document %d differs:\n%s\n%s", i, da[i], db2[i])
				}
				if i < len(do) && slices.Equal(da[i], do[i]) {
					same++
				}
			}
			// Settings _ids are names, so only their values change with the seed.
			if same == len(da) {
				t.Errorf("seed 8 gave the same documents as seed 7")
			}
		})
	}
}

// BenchmarkSeedLarge measures the 100k-user seed (A0_USERS for another
// size) into a fresh embedded server: docs/s and MB/s of BSON, the figures
// TestSeedLarge used to hold against a one-minute bound that only an idle
// machine met. A timing belongs in a benchmark, not in a test's verdict:
//
//	go test -run XXX -bench BenchmarkSeedLarge -benchtime 1x ./internal/sampledata
func BenchmarkSeedLarge(b *testing.B) {
	ctx := context.Background()
	c := embeddedtest.Client(b, embedded.Config{})
	users := seedLargeUsers()
	var docs, bytes int64
	var took time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stats, err := Seed(ctx, c, Options{Users: users})
		if err != nil {
			b.Fatal(err)
		}
		docs, bytes, took = docs+stats.TotalDocs, bytes+stats.Bytes, took+stats.Duration
		// Each run seeds an empty server: drop what this one wrote.
		b.StopTimer()
		for ns := range stats.Docs {
			db, _, _ := cut(ns)
			if err := c.Database(db).Drop(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(docs)/took.Seconds(), "docs/s")
	b.ReportMetric(float64(bytes)/1e6/took.Seconds(), "MB/s")
	b.ReportMetric(float64(bytes)/1e6/float64(b.N), "MB/op")
}

// seedLargeUsers is 100k, or A0_USERS to measure another size.
func seedLargeUsers() int {
	if n, err := strconv.Atoi(os.Getenv("A0_USERS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}
