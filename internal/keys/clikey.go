package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// File names inside the CLI home.
const (
	PrivateKeyFile = "id_a0"
	PublicKeyFile  = "id_a0.pub"
	KnownNodesFile = "known_nodes"
)

// KeyType selects the algorithm of a new CLI key.
type KeyType string

const (
	Ed25519 KeyType = "ed25519" // default
	RSA     KeyType = "rsa"     // RSA 3072, for sites that require RSA
)

const rsaBits = 3072

var (
	// ErrKeyExists: Create found a key and force was not given.
	ErrKeyExists = errors.New("a CLI key already exists (use --force to replace it)")
	// ErrNoKey: there is no CLI key in the home directory.
	ErrNoKey = errors.New("no CLI key: run `a0cli create-key`")
	// ErrKeyType: the key algorithm (or RSA size) is not supported.
	ErrKeyType = errors.New("unsupported key type")
)

// PermissionError reports a key file that group or others may access: anyone
// who can read a private key has its owner's rights, and anyone who can write
// an authorized keys file can authorize himself.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s is accessible by group or others (mode %#o); run `chmod 600 %s`",
		e.Path, e.Mode.Perm(), e.Path)
}

// DefaultHome returns $A0CLI_HOME if set, else ~/.a0cli. It does not create it.
func DefaultHome() (string, error) {
	if h := os.Getenv("A0CLI_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory (set A0CLI_HOME): %w", err)
	}
	return filepath.Join(home, ".a0cli"), nil
}

// Create makes a new key pair in home (created 0700 if missing) and returns
// the public key as an authorized_keys line ("ssh-ed25519 AAAA... a0cli@host").
// An existing key is replaced only if force is set; the replacement is atomic.
// An empty typ means Ed25519.
func Create(home string, typ KeyType, force bool) (pub string, err error) {
	var priv crypto.Signer
	switch typ {
	case "", Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", fmt.Errorf("generate ed25519 key: %w", err)
		}
		priv = k
	case RSA:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return "", fmt.Errorf("generate rsa key: %w", err)
		}
		priv = k
	default:
		return "", fmt.Errorf("key type %q (want ed25519 or rsa): %w", typ, ErrKeyType)
	}
	if err := mkdirPrivate(home); err != nil {
		return "", err
	}
	privPath := filepath.Join(home, PrivateKeyFile)
	if !force {
		for _, p := range []string{privPath, filepath.Join(home, PublicKeyFile)} {
			if _, err := os.Lstat(p); err == nil {
				return "", fmt.Errorf("%s: %w", p, ErrKeyExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("check for existing key: %w", err)
			}
		}
	}
	comment := "a0cli@" + hostname()
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", fmt.Errorf("encode private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	line := authorizedLine(sshPub, comment)
	if err := atomicfile.Write(privPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("write private key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(home, PublicKeyFile), []byte(line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write public key: %w", err)
	}
	return line, nil
}

// Load reads the private key from home. It refuses a key file that group or
// others can read or write (*PermissionError) and returns an error matching
// ErrNoKey when there is none. Passphrase-protected keys are not supported.
func Load(home string) (crypto.Signer, error) {
	path := filepath.Join(home, PrivateKeyFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("open private key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat private key: %w", err)
	}
	if checkPrivateMode && fi.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: path, Mode: fi.Mode().Perm()}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(buf.Bytes())
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("private key %s is passphrase-protected: %w", path, ErrKeyType)
		}
		// The parser's message never contains key bytes.
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	}
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("rsa key of %d bits: %w", k.N.BitLen(), ErrKeyType)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("private key %s is %T: %w", path, raw, ErrKeyType)
	}
}

// PublicLine returns the authorized_keys line of the key in home, as
// `a0cli show-key` prints it. The key is derived from the private key, so the
// line always matches what the CLI will present; the comment comes from
// id_a0.pub when that file holds the same key.
func PublicLine(home string) (string, error) {
	signer, err := Load(home)
	if err != nil {
		return "", err
	}
	sshPub, err := ssh.NewPublicKey(signer.Public())
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	comment := ""
	if data, err := os.ReadFile(filepath.Join(home, PublicKeyFile)); err == nil {
		if p, c, _, _, err := ssh.ParseAuthorizedKey(data); err == nil &&
			bytes.Equal(p.Marshal(), sshPub.Marshal()) {
			comment = c
		}
	}
	return authorizedLine(sshPub, comment), nil
}

// Delete removes the key pair from home; ErrNoKey if there was none.
func Delete(home string) error {
	removed := false
	for _, name := range []string{PrivateKeyFile, PublicKeyFile} {
		err := os.Remove(filepath.Join(home, name))
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("delete key: %w", err)
		}
	}
	if !removed {
		return fmt.Errorf("%s: %w", filepath.Join(home, PrivateKeyFile), ErrNoKey)
	}
	atomicfile.SyncDir(home) // durability only: a failure weakens nothing else
	return nil
}

func authorizedLine(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}
