package statedir

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Dir is an agent's state directory.
type Dir struct {
	Path string
}

// Paths inside the state directory.
const (
	secretsDir        = "secrets"
	dataKeyFile       = "secrets/data-encryption.key"
	signingKeyFile    = "secrets/token-signing.pem"
	tlsKeyFile        = "secrets/tls.key"
	tlsCertFile       = "secrets/tls.crt"
	authorizedKeyFile = "authorized_keys"
	nodeFile          = "node.json"
)

// Open makes sure the directory exists (0700) and holds the node's secrets,
// creating the ones that are missing. The TLS key and certificate are made
// by the agent (keys.LoadOrCreateNodeCert) at TLSKeyPath/TLSCertPath.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory not set (--state-dir)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	d := &Dir{Path: abs}
	for _, sub := range []string{"", secretsDir, "jobs", "uploads", "spool"} {
		if err := os.MkdirAll(d.join(sub), 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
	}
	if err := d.ensureSecrets(); err != nil {
		return nil, err
	}
	return d, nil
}

// ErrNotStateDir is matched by OpenExisting's refusal of a directory that
// an agent never opened.
var ErrNotStateDir = errors.New("not an a0agent state directory")

// OpenExisting opens a state directory that Open made before, creating
// and changing nothing: the commands that only read it (keys, fingerprint,
// revoke) would otherwise turn a mistyped --state-dir into a new state
// directory with fresh secrets. A directory without the node's data
// encryption key is refused (ErrNotStateDir).
func OpenExisting(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory not set (--state-dir)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	d := &Dir{Path: abs}
	if fi, err := os.Stat(d.join(dataKeyFile)); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s has no %s (check --state-dir; the agent or `a0agent authorize` makes it)", ErrNotStateDir, abs, dataKeyFile)
	}
	return d, nil
}

func (d *Dir) join(rel string) string { return filepath.Join(d.Path, filepath.FromSlash(rel)) }

// DBDir is where the embedded database keeps its SQLite files.
func (d *Dir) DBDir() string { return d.join("db") }

// JobsDir holds the job records.
func (d *Dir) JobsDir() string { return d.join("jobs") }

// SpoolDir holds a running job's encrypted spool files (restore's oplog).
func (d *Dir) SpoolDir() string { return d.join("spool") }

// UploadsDir holds files uploaded for a restore.
func (d *Dir) UploadsDir() string { return d.join("uploads") }

// AuthorizedKeysPath is the file of CLI keys allowed to call the agent.
func (d *Dir) AuthorizedKeysPath() string { return d.join(authorizedKeyFile) }

// TLSKeyPath and TLSCertPath hold the node's HTTPS identity.
func (d *Dir) TLSKeyPath() string  { return d.join(tlsKeyFile) }
func (d *Dir) TLSCertPath() string { return d.join(tlsCertFile) }

// EmbeddedURIPath is where a running agent publishes the URI of its embedded
// database, so that `a0agent seed` can reach it instead of opening the same
// SQLite files from a second process.
func (d *Dir) EmbeddedURIPath() string { return d.join("embedded.uri") }

// EmbeddedSocketDir holds the embedded database's Unix socket (0700): only
// the agent's user (and root) can connect to it (issue 25.4).
func (d *Dir) EmbeddedSocketDir() string { return d.join("run") }

// SensitiveFiles lists the node's sensitive configuration, plus extra paths
// the operator declared in the agent's config. Only files that exist are
// returned, sorted.
func (d *Dir) SensitiveFiles(extra []string) ([]string, error) {
	out, err := d.SensitivePaths(extra)
	if err != nil {
		return nil, err
	}
	var existing []string
	for _, p := range out {
		if _, err := os.Stat(p); err == nil {
			existing = append(existing, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sensitive file: %w", err)
		}
	}
	sort.Strings(existing)
	return existing, nil
}

// SensitivePaths lists every path that is sensitive configuration, whether
// it exists or not: the only paths a sensitive restore may write.
func (d *Dir) SensitivePaths(extra []string) ([]string, error) {
	var out []string
	for _, rel := range []string{dataKeyFile, signingKeyFile, tlsKeyFile, tlsCertFile, authorizedKeyFile} {
		out = append(out, d.join(rel))
	}
	for _, p := range extra {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("sensitive path %q: %w", p, err)
		}
		out = append(out, abs)
	}
	return out, nil
}

func (d *Dir) ensureSecrets() error {
	if err := createIfMissing(d.join(dataKeyFile), func() ([]byte, error) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k) + "\n"), nil
	}); err != nil {
		return fmt.Errorf("data encryption key: %w", err)
	}
	if err := createIfMissing(d.join(signingKeyFile), func() ([]byte, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}); err != nil {
		return fmt.Errorf("token signing key: %w", err)
	}
	return nil
}

func createIfMissing(path string, gen func() ([]byte, error)) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	data, err := gen()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// Node is the node's persistent role configuration.
type Node struct {
	Roles  []string `json:"roles"`
	Device string   `json:"device,omitempty"`
}

// RoleBackup is the role that may take backups.
const RoleBackup = "backup"

// HasRole reports whether the node has the role.
func (n Node) HasRole(role string) bool {
	for _, r := range n.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// LoadNode reads the role configuration; a node never configured has none.
func (d *Dir) LoadNode() (Node, error) {
	var n Node
	b, err := os.ReadFile(d.join(nodeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("read node config: %w", err)
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("read node config: %w", err)
	}
	return n, nil
}

// SaveNode persists the role configuration atomically.
func (d *Dir) SaveNode(n Node) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(d.join(nodeFile), append(b, '\n'), 0o600)
}

// Secrets are the node's data encryption key and token signing key as the
// agent holds them in memory. Loading them validates them, so a restored
// file that is not a key is refused before the agent takes it into use.
type Secrets struct {
	DataKey    []byte
	SigningKey ed25519.PrivateKey
}

// LoadSecrets reads and validates the data encryption and token signing keys.
func (d *Dir) LoadSecrets() (Secrets, error) {
	var s Secrets
	b, err := os.ReadFile(d.join(dataKeyFile))
	if err != nil {
		return s, fmt.Errorf("data encryption key: %w", err)
	}
	k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(k) != 32 {
		return s, fmt.Errorf("data encryption key %s: not 32 bytes of hex", d.join(dataKeyFile))
	}
	s.DataKey = k
	b, err = os.ReadFile(d.join(signingKeyFile))
	if err != nil {
		return s, fmt.Errorf("token signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return s, fmt.Errorf("token signing key %s: no PEM block", d.join(signingKeyFile))
	}
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return s, fmt.Errorf("token signing key %s: %w", d.join(signingKeyFile), err)
	}
	ed, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return s, fmt.Errorf("token signing key %s: not an ed25519 key", d.join(signingKeyFile))
	}
	s.SigningKey = ed
	return s, nil
}

// Fingerprints identify the keys without revealing them: SHA256 of the data
// key and of the signing key's public half, as "SHA256:<base64>".
func (s Secrets) Fingerprints() (dataKey, signingKey string) {
	fp := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	}
	return fp(s.DataKey), fp(s.SigningKey.Public().(ed25519.PublicKey))
}
