package bench

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Collection is one collection of a generated data set.
type Collection struct {
	DB        string `json:"db"`
	Name      string `json:"name"`
	Documents int64  `json:"documents"`
	Bytes     int64  `json:"bytes"`
	// Indexes counts the index specs in metadata.json, _id included, as the
	// manifest does.
	Indexes int `json:"indexes"`
}

// BSONPath is the collection's .bson file under a dump directory.
func (c Collection) BSONPath(dumpDir string) string {
	return filepath.Join(dumpDir, c.DB, c.Name+".bson")
}

// MetadataPath is the collection's .metadata.json file under a dump directory.
func (c Collection) MetadataPath(dumpDir string) string {
	return filepath.Join(dumpDir, c.DB, c.Name+".metadata.json")
}

// Dataset is a generated mongodump directory and what it holds.
type Dataset struct {
	// Root holds dataset.json and the dump directory; DumpDir is what the
	// tar baselines archive, so it holds nothing but the mongodump layout.
	Root        string       `json:"-"`
	Seed        uint64       `json:"seed"`
	Collections []Collection `json:"collections"`
}

// DumpDir is <root>/dump.
func (d *Dataset) DumpDir() string { return filepath.Join(d.Root, "dump") }

// Bytes is the total BSON size: the denominator of every MB/s figure.
func (d *Dataset) Bytes() int64 {
	var n int64
	for _, c := range d.Collections {
		n += c.Bytes
	}
	return n
}

// Documents is the total number of documents.
func (d *Dataset) Documents() int64 {
	var n int64
	for _, c := range d.Collections {
		n += c.Documents
	}
	return n
}

const datasetFile = "dataset.json"

// LoadDataset reads what Generate recorded under root.
func LoadDataset(root string) (*Dataset, error) {
	b, err := os.ReadFile(filepath.Join(root, datasetFile))
	if err != nil {
		return nil, fmt.Errorf("load data set: %w", err)
	}
	var d Dataset
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("load data set: %w", err)
	}
	d.Root = root
	return &d, nil
}

// genColl describes one generated collection: its share of the bytes, its
// document generator and its secondary indexes (as metadata.json keys).
type genColl struct {
	db, name string
	share    float64
	indexes  []bson.D
	gen      func(g *docGen, i int64, dst []byte) []byte
}

// Generate writes a deterministic mongodump-style directory of about size
// bytes of BSON under root (root/dump/<db>/<coll>.{bson,metadata.json})
// and records it in root/dataset.json. The same size and seed give the same
// bytes. The shares and shapes follow an Auth0 appliance: users dominate,
// then logs and sessions.
func Generate(root string, size int64, seed uint64) (*Dataset, error) {
	if size <= 0 {
		return nil, errors.New("generate: size must be positive")
	}
	if seed == 0 {
		seed = 1
	}
	d := &Dataset{Root: root, Seed: seed}
	// Tenants scale with the data so that small sets stay realistic too.
	for k, c := range collections() {
		target := int64(float64(size) * c.share)
		if target < 1 {
			target = 1
		}
		g := newDocGen(seed, uint64(k), size)
		col, err := writeCollection(d.DumpDir(), c, g, target)
		if err != nil {
			return nil, err
		}
		d.Collections = append(d.Collections, col)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, datasetFile), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return d, nil
}

func writeCollection(dumpDir string, c genColl, g *docGen, target int64) (Collection, error) {
	col := Collection{DB: c.db, Name: c.name, Indexes: 1 + len(c.indexes)}
	if err := os.MkdirAll(filepath.Join(dumpDir, c.db), 0o700); err != nil {
		return col, fmt.Errorf("generate: %w", err)
	}
	meta, err := metadataJSON(c)
	if err != nil {
		return col, err
	}
	if err := os.WriteFile(col.MetadataPath(dumpDir), meta, 0o600); err != nil {
		return col, fmt.Errorf("generate: %w", err)
	}
	f, err := os.OpenFile(col.BSONPath(dumpDir), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return col, fmt.Errorf("generate: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var doc []byte
	for col.Bytes < target {
		doc = c.gen(g, col.Documents, doc[:0])
		if _, err := bw.Write(doc); err != nil {
			f.Close()
			return col, fmt.Errorf("generate: %w", err)
		}
		col.Documents++
		col.Bytes += int64(len(doc))
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return col, fmt.Errorf("generate: %w", err)
	}
	if err := f.Close(); err != nil {
		return col, fmt.Errorf("generate: %w", err)
	}
	return col, nil
}

// metadataJSON is <coll>.metadata.json as mongodump writes it (canonical
// extended JSON, _id index first).
func metadataJSON(c genColl) ([]byte, error) {
	idx := []bson.D{{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "_id", Value: int32(1)}}}, {Key: "name", Value: "_id_"}}}
	for _, keys := range c.indexes {
		name := ""
		for i, k := range keys {
			if i > 0 {
				name += "_"
			}
			name += k.Key + "_" + fmt.Sprint(k.Value)
		}
		idx = append(idx, bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: keys}, {Key: "name", Value: name}})
	}
	md := bson.D{
		{Key: "indexes", Value: idx},
		{Key: "uuid", Value: fmt.Sprintf("%032x", hashName(c.db+"."+c.name))},
		{Key: "collectionName", Value: c.name},
		{Key: "type", Value: "collection"},
	}
	md = append(bson.D{{Key: "options", Value: bson.D{}}}, md...)
	b, err := bson.MarshalExtJSON(md, true, false)
	if err != nil {
		return nil, fmt.Errorf("generate: metadata of %s.%s: %w", c.db, c.name, err)
	}
	return b, nil
}

func hashName(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// ReadDocs calls fn for each document of a .bson file; it is how tests check
// that generated files are well-formed.
func ReadDocs(r io.Reader, fn func(doc bsoncore.Document) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var buf []byte
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if n < 5 {
			return fmt.Errorf("bad document length %d", n)
		}
		buf = append(buf[:0], hdr[:]...)
		buf = append(buf, make([]byte, n-4)...)
		if _, err := io.ReadFull(br, buf[4:]); err != nil {
			return err
		}
		if err := fn(bsoncore.Document(buf)); err != nil {
			return err
		}
	}
}

// docGen holds one collection's random stream and the population the
// documents refer to (tenants, users, clients).
type docGen struct {
	r       *rand.Rand
	tenants int64
	users   int64
	clients int64
	epoch   time.Time
	scratch []byte
}

func newDocGen(seed, coll uint64, size int64) *docGen {
	// About 1.3 KB of BSON per user across all collections.
	users := max(1000, size/1300)
	tenants := max(1, users/2000)
	return &docGen{
		r:       rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15^coll)),
		tenants: tenants,
		users:   users,
		clients: tenants * 5,
		epoch:   time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (g *docGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// date is a millisecond time in the five years after the epoch.
func (g *docGen) date() int64 {
	return g.epoch.UnixMilli() + g.r.Int64N(5*365*24*3600*1000)
}

// objectID is a real-looking ObjectID: time, then a per-process constant
// (as from one mongod), then a counter-like random tail.
func (g *docGen) objectID(ms int64) [12]byte {
	var id [12]byte
	binary.BigEndian.PutUint32(id[0:4], uint32(ms/1000))
	copy(id[4:9], []byte{0x5f, 0x1a, 0x7c, 0x33, 0x02})
	v := g.r.Uint32()
	id[9], id[10], id[11] = byte(v>>16), byte(v>>8), byte(v)
	return id
}

const b64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const hexDigits = "0123456789abcdef"

// randStr appends n random characters of alphabet: the incompressible part
// of real data (hashes, tokens, secrets).
func (g *docGen) randStr(dst []byte, alphabet string, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, alphabet[g.r.IntN(len(alphabet))])
	}
	return dst
}

func (g *docGen) str(f func(b []byte) []byte) string {
	g.scratch = f(g.scratch[:0])
	return string(g.scratch)
}

func tenantID(i int64) string { return "tenant-" + strconv.FormatInt(10000+i, 10) }
func clientID(i int64) string {
	return "client-" + strconv.FormatUint(hashName(strconv.FormatInt(i, 10))&0xffffffffffff, 36)
}
func userID(i int64) string {
	return "auth0|" + strconv.FormatUint(hashName("u"+strconv.FormatInt(i, 10)), 16)
}

func (g *docGen) ip() string {
	return strconv.Itoa(1+g.r.IntN(223)) + "." + strconv.Itoa(g.r.IntN(256)) + "." + strconv.Itoa(g.r.IntN(256)) + "." + strconv.Itoa(1+g.r.IntN(254))
}

var (
	firstNames = []string{"Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "Tim", "Sophie", "Donald", "Hedy", "John",
		"Maria", "Wei", "Aisha", "Carlos", "Yuki", "Olga", "Pierre", "Fatima", "Liam", "Noah", "Emma", "Mia", "Lucas", "Chen", "Priya", "Omar"}
	lastNames = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Wilson", "Knuth", "Lamarr", "McCarthy",
		"Garcia", "Nakamura", "Schmidt", "Rossi", "Kowalski", "Silva", "Novak", "Haddad", "Okafor", "Larsen", "Dubois", "Singh"}
	domains   = []string{"gmail.com", "outlook.com", "yahoo.com", "example.com", "corp.example.org", "mail.test", "icloud.com", "proton.me"}
	plans     = []string{"free", "starter", "pro", "enterprise"}
	roles     = []string{"admin", "editor", "viewer", "billing", "support", "developer"}
	locales   = []string{"en", "fr", "de", "es", "ja", "pt-BR"}
	logTypes  = []string{"s", "s", "s", "s", "f", "fp", "seacft", "sepft", "slo", "ss", "fu", "sapi", "mgmt_api_read"}
	logDescr  = map[string]string{"s": "Successful login", "f": "Failed login", "fp": "Wrong email or password.", "seacft": "Successful exchange of Authorization Code for Access Token", "sepft": "Successful exchange of Password for Access Token", "slo": "Successful logout", "ss": "Successful signup", "fu": "Invalid username or password", "sapi": "Update a user", "mgmt_api_read": "Get users"}
	conns     = []string{"Username-Password-Authentication", "google-oauth2", "github", "samlp-corp", "windowslive"}
	agents    = []string{"Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36", "okhttp/4.12.0", "curl/8.5.0", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"}
	appTypes  = []string{"spa", "regular_web", "native", "non_interactive"}
	paths     = []string{"/authorize", "/oauth/token", "/u/login", "/v2/logout", "/api/v2/users", "/dbconnections/signup", "/co/authenticate"}
	hostnames = []string{"login.example.com", "auth.corp.example.org", "id.example.net"}
)

// collections lists the data set: shares of bytes, shapes, indexes.
func collections() []genColl {
	k := func(kv ...any) bson.D {
		var d bson.D
		for i := 0; i < len(kv); i += 2 {
			d = append(d, bson.E{Key: kv[i].(string), Value: int32(kv[i+1].(int))})
		}
		return d
	}
	return []genColl{
		{db: "auth0", name: "tenants", share: 0.002, gen: genTenant, indexes: []bson.D{k("name", 1)}},
		{db: "auth0", name: "clients", share: 0.01, gen: genClient, indexes: []bson.D{k("__tenant", 1, "name", 1)}},
		{db: "auth0", name: "users", share: 0.46, gen: genUser, indexes: []bson.D{k("__tenant", 1, "email", 1), k("user_id", 1), k("__tenant", 1, "app_metadata.plan", 1, "last_login", -1)}},
		{db: "auth0", name: "sessions", share: 0.14, gen: genSession, indexes: []bson.D{k("user_id", 1), k("__tenant", 1, "expires_at", 1)}},
		{db: "auth0", name: "refresh_tokens", share: 0.05, gen: genRefreshToken, indexes: []bson.D{k("__tenant", 1, "user_id", 1)}},
		{db: "logs", name: "logs", share: 0.33, gen: genLog, indexes: []bson.D{k("__tenant", 1, "date", -1), k("user_id", 1)}},
		{db: "config_store", name: "settings", share: 0.008, gen: genSetting, indexes: []bson.D{k("__tenant", 1)}},
	}
}

func genTenant(g *docGen, i int64, dst []byte) []byte {
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendStringElement(dst, "_id", tenantID(i))
	dst = bsoncore.AppendStringElement(dst, "name", "acme-"+strconv.FormatInt(i, 10))
	dst = bsoncore.AppendStringElement(dst, "friendly_name", g.pick(lastNames)+" Industries")
	dst = bsoncore.AppendStringElement(dst, "region", g.pick([]string{"us-1", "eu-1", "au-1", "jp-1"}))
	dst = bsoncore.AppendStringElement(dst, "plan", g.pick(plans))
	dst = bsoncore.AppendDateTimeElement(dst, "created_at", g.date())
	fi, dst := bsoncore.AppendDocumentElementStart(dst, "flags")
	dst = bsoncore.AppendBooleanElement(dst, "enable_sso", g.r.IntN(2) == 0)
	dst = bsoncore.AppendBooleanElement(dst, "mfa_required", g.r.IntN(4) == 0)
	dst = bsoncore.AppendBooleanElement(dst, "enable_public_signup_user_exists_error", g.r.IntN(3) == 0)
	dst, _ = bsoncore.AppendDocumentEnd(dst, fi)
	dst = bsoncore.AppendStringElement(dst, "support_email", "support@acme-"+strconv.FormatInt(i, 10)+".example.com")
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genClient(g *docGen, i int64, dst []byte) []byte {
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendStringElement(dst, "_id", clientID(i))
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID(i%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "name", "App "+strconv.FormatInt(i, 10))
	dst = bsoncore.AppendStringElement(dst, "app_type", g.pick(appTypes))
	dst = bsoncore.AppendStringElement(dst, "client_secret", g.str(func(b []byte) []byte { return g.randStr(b, b64[2:], 64) }))
	ai, dst := bsoncore.AppendArrayElementStart(dst, "callbacks")
	dst = bsoncore.AppendStringElement(dst, "0", "https://app"+strconv.FormatInt(i, 10)+".example.com/callback")
	dst = bsoncore.AppendStringElement(dst, "1", "http://localhost:3000/callback")
	dst, _ = bsoncore.AppendArrayEnd(dst, ai)
	gi, dst := bsoncore.AppendArrayElementStart(dst, "grant_types")
	dst = bsoncore.AppendStringElement(dst, "0", "authorization_code")
	dst = bsoncore.AppendStringElement(dst, "1", "implicit")
	dst = bsoncore.AppendStringElement(dst, "2", "refresh_token")
	dst, _ = bsoncore.AppendArrayEnd(dst, gi)
	ji, dst := bsoncore.AppendDocumentElementStart(dst, "jwt_configuration")
	dst = bsoncore.AppendStringElement(dst, "alg", "RS256")
	dst = bsoncore.AppendInt32Element(dst, "lifetime_in_seconds", 36000)
	dst = bsoncore.AppendBooleanElement(dst, "secret_encoded", false)
	dst, _ = bsoncore.AppendDocumentEnd(dst, ji)
	dst = bsoncore.AppendDateTimeElement(dst, "created_at", g.date())
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genUser(g *docGen, i int64, dst []byte) []byte {
	first, last := g.pick(firstNames), g.pick(lastNames)
	created := g.date()
	updated := created + g.r.Int64N(90*24*3600*1000)
	// Most appliance users sign up with a password (a bcrypt hash: the
	// incompressible part of a user), the rest through a social connection.
	conn := conns[0]
	if g.r.IntN(5) < 2 {
		conn = g.pick(conns[1:])
	}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendObjectIDElement(dst, "_id", g.objectID(created))
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID(i%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "user_id", userID(i))
	dst = bsoncore.AppendStringElement(dst, "email", first+"."+last+strconv.FormatInt(i, 10)+"@"+g.pick(domains))
	dst = bsoncore.AppendBooleanElement(dst, "email_verified", g.r.IntN(3) != 0)
	dst = bsoncore.AppendStringElement(dst, "name", first+" "+last)
	dst = bsoncore.AppendStringElement(dst, "given_name", first)
	dst = bsoncore.AppendStringElement(dst, "family_name", last)
	dst = bsoncore.AppendStringElement(dst, "nickname", first)
	dst = bsoncore.AppendStringElement(dst, "picture", "https://s.gravatar.com/avatar/"+g.str(func(b []byte) []byte { return g.randStr(b, hexDigits, 32) })+"?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F"+string([]byte{first[0] | 0x20, last[0] | 0x20})+".png")
	if conn == "Username-Password-Authentication" {
		dst = bsoncore.AppendStringElement(dst, "password", g.str(func(b []byte) []byte { return g.randStr(append(b, "$2b$10$"...), b64, 53) }))
	}
	dst = bsoncore.AppendDateTimeElement(dst, "created_at", created)
	dst = bsoncore.AppendDateTimeElement(dst, "updated_at", updated)
	dst = bsoncore.AppendDateTimeElement(dst, "last_login", updated)
	dst = bsoncore.AppendStringElement(dst, "last_ip", g.ip())
	dst = bsoncore.AppendInt32Element(dst, "logins_count", int32(g.r.IntN(500)))
	dst = bsoncore.AppendDateTimeElement(dst, "last_password_reset", created+g.r.Int64N(400*24*3600*1000))
	dst = bsoncore.AppendBooleanElement(dst, "blocked", g.r.IntN(50) == 0)
	ii, dst := bsoncore.AppendArrayElementStart(dst, "identities")
	ei, dst := bsoncore.AppendDocumentElementStart(dst, "0")
	dst = bsoncore.AppendStringElement(dst, "connection", conn)
	provider := conn
	if conn == "Username-Password-Authentication" {
		provider = "auth0"
	}
	dst = bsoncore.AppendStringElement(dst, "provider", provider)
	dst = bsoncore.AppendStringElement(dst, "user_id", strconv.FormatUint(hashName("u"+strconv.FormatInt(i, 10)), 16))
	dst = bsoncore.AppendBooleanElement(dst, "isSocial", conn == "google-oauth2" || conn == "github" || conn == "windowslive")
	dst, _ = bsoncore.AppendDocumentEnd(dst, ei)
	dst, _ = bsoncore.AppendArrayEnd(dst, ii)
	mi, dst := bsoncore.AppendDocumentElementStart(dst, "app_metadata")
	dst = bsoncore.AppendStringElement(dst, "plan", g.pick(plans))
	ri, dst := bsoncore.AppendArrayElementStart(dst, "roles")
	for k := range 1 + g.r.IntN(3) {
		dst = bsoncore.AppendStringElement(dst, strconv.Itoa(k), g.pick(roles))
	}
	dst, _ = bsoncore.AppendArrayEnd(dst, ri)
	bi, dst := bsoncore.AppendDocumentElementStart(dst, "billing")
	dst = bsoncore.AppendStringElement(dst, "customer_id", g.str(func(b []byte) []byte { return g.randStr(append(b, "cus_"...), b64[2:], 14) }))
	dst = bsoncore.AppendInt32Element(dst, "seats", int32(1+g.r.IntN(20)))
	dst, _ = bsoncore.AppendDocumentEnd(dst, bi)
	dst, _ = bsoncore.AppendDocumentEnd(dst, mi)
	ui, dst := bsoncore.AppendDocumentElementStart(dst, "user_metadata")
	dst = bsoncore.AppendStringElement(dst, "locale", g.pick(locales))
	dst = bsoncore.AppendStringElement(dst, "theme", g.pick([]string{"light", "dark", "system"}))
	dst = bsoncore.AppendBooleanElement(dst, "newsletter", g.r.IntN(2) == 0)
	dst, _ = bsoncore.AppendDocumentEnd(dst, ui)
	if g.r.IntN(3) != 0 {
		dst = bsoncore.AppendStringElement(dst, "phone_number", "+1"+strconv.Itoa(200+g.r.IntN(800))+strconv.Itoa(1000000+g.r.IntN(9000000)))
		dst = bsoncore.AppendBooleanElement(dst, "phone_verified", g.r.IntN(2) == 0)
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genSession(g *docGen, i int64, dst []byte) []byte {
	u := g.r.Int64N(g.users)
	created := g.date()
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendStringElement(dst, "_id", g.str(func(b []byte) []byte { return g.randStr(b, b64[2:], 32) }))
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID(u%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "user_id", userID(u))
	dst = bsoncore.AppendStringElement(dst, "client_id", clientID(g.r.Int64N(g.clients)))
	dst = bsoncore.AppendDateTimeElement(dst, "created_at", created)
	dst = bsoncore.AppendDateTimeElement(dst, "last_interacted_at", created+g.r.Int64N(3600_000))
	dst = bsoncore.AppendDateTimeElement(dst, "expires_at", created+72*3600_000)
	di, dst := bsoncore.AppendDocumentElementStart(dst, "device")
	dst = bsoncore.AppendStringElement(dst, "initial_ip", g.ip())
	dst = bsoncore.AppendStringElement(dst, "last_ip", g.ip())
	dst = bsoncore.AppendStringElement(dst, "initial_user_agent", g.pick(agents))
	dst, _ = bsoncore.AppendDocumentEnd(dst, di)
	ai, dst := bsoncore.AppendArrayElementStart(dst, "authentication_methods")
	mi, dst := bsoncore.AppendDocumentElementStart(dst, "0")
	dst = bsoncore.AppendStringElement(dst, "name", g.pick([]string{"pwd", "federated", "passkey", "mfa"}))
	dst = bsoncore.AppendDateTimeElement(dst, "timestamp", created)
	dst, _ = bsoncore.AppendDocumentEnd(dst, mi)
	dst, _ = bsoncore.AppendArrayEnd(dst, ai)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genRefreshToken(g *docGen, i int64, dst []byte) []byte {
	u := g.r.Int64N(g.users)
	created := g.date()
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendObjectIDElement(dst, "_id", g.objectID(created))
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID(u%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "user_id", userID(u))
	dst = bsoncore.AppendStringElement(dst, "client_id", clientID(g.r.Int64N(g.clients)))
	dst = bsoncore.AppendStringElement(dst, "token_hash", g.str(func(b []byte) []byte { return g.randStr(b, hexDigits, 64) }))
	si, dst := bsoncore.AppendArrayElementStart(dst, "scopes")
	dst = bsoncore.AppendStringElement(dst, "0", "openid")
	dst = bsoncore.AppendStringElement(dst, "1", "profile")
	dst = bsoncore.AppendStringElement(dst, "2", "email")
	dst = bsoncore.AppendStringElement(dst, "3", "offline_access")
	dst, _ = bsoncore.AppendArrayEnd(dst, si)
	dst = bsoncore.AppendDateTimeElement(dst, "created_at", created)
	dst = bsoncore.AppendDateTimeElement(dst, "expires_at", created+30*24*3600_000)
	dst = bsoncore.AppendBooleanElement(dst, "rotating", g.r.IntN(2) == 0)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genLog(g *docGen, i int64, dst []byte) []byte {
	u := g.r.Int64N(g.users)
	date := g.date()
	typ := g.pick(logTypes)
	c := g.r.Int64N(g.clients)
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendObjectIDElement(dst, "_id", g.objectID(date))
	dst = bsoncore.AppendDateTimeElement(dst, "date", date)
	dst = bsoncore.AppendStringElement(dst, "type", typ)
	dst = bsoncore.AppendStringElement(dst, "description", logDescr[typ])
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID(u%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "connection", g.pick(conns))
	dst = bsoncore.AppendStringElement(dst, "client_id", clientID(c))
	dst = bsoncore.AppendStringElement(dst, "client_name", "App "+strconv.FormatInt(c, 10))
	dst = bsoncore.AppendStringElement(dst, "ip", g.ip())
	dst = bsoncore.AppendStringElement(dst, "user_agent", g.pick(agents))
	dst = bsoncore.AppendStringElement(dst, "hostname", g.pick(hostnames))
	dst = bsoncore.AppendStringElement(dst, "user_id", userID(u))
	dst = bsoncore.AppendStringElement(dst, "log_id", g.str(func(b []byte) []byte { return g.randStr(b, "0123456789", 56) }))
	di, dst := bsoncore.AppendDocumentElementStart(dst, "details")
	ri, dst := bsoncore.AppendDocumentElementStart(dst, "request")
	dst = bsoncore.AppendStringElement(dst, "method", g.pick([]string{"GET", "POST", "POST", "PATCH"}))
	dst = bsoncore.AppendStringElement(dst, "path", g.pick(paths))
	dst = bsoncore.AppendInt32Element(dst, "status", int32(g.pick([]string{"200", "200", "302", "401"})[0]-'0')*100)
	dst = bsoncore.AppendInt32Element(dst, "elapsed_ms", int32(g.r.IntN(900)))
	dst, _ = bsoncore.AppendDocumentEnd(dst, ri)
	dst = bsoncore.AppendStringElement(dst, "session_id", g.str(func(b []byte) []byte { return g.randStr(b, b64[2:], 32) }))
	dst, _ = bsoncore.AppendDocumentEnd(dst, di)
	dst = bsoncore.AppendBooleanElement(dst, "isMobile", g.r.IntN(4) == 0)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func genSetting(g *docGen, i int64, dst []byte) []byte {
	keys := []string{"branding", "session_lifetime", "mfa_policy", "email_provider"}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendStringElement(dst, "_id", tenantID(i/4)+"/"+keys[i%4]+"/"+strconv.FormatInt(i, 10))
	dst = bsoncore.AppendStringElement(dst, "__tenant", tenantID((i/4)%g.tenants))
	dst = bsoncore.AppendStringElement(dst, "key", keys[i%4])
	vi, dst := bsoncore.AppendDocumentElementStart(dst, "value")
	dst = bsoncore.AppendBooleanElement(dst, "enabled", g.r.IntN(2) == 0)
	dst = bsoncore.AppendInt32Element(dst, "ttl_hours", int32(1+g.r.IntN(720)))
	dst = bsoncore.AppendStringElement(dst, "primary_color", "#"+g.str(func(b []byte) []byte { return g.randStr(b, hexDigits, 6) }))
	dst = bsoncore.AppendStringElement(dst, "logo_url", "https://cdn.example.com/logos/"+tenantID((i/4)%g.tenants)+".png")
	dst, _ = bsoncore.AppendDocumentEnd(dst, vi)
	dst = bsoncore.AppendInt64Element(dst, "version", int64(1+g.r.IntN(10)))
	dst = bsoncore.AppendDateTimeElement(dst, "updated_at", g.date())
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}
