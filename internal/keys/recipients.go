package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// Recipients and identities of backups encrypted to public keys (format v2,
// internal/crypt). A recipient is an OpenSSH public key the node knows (an
// authorized key, or a line of the agent config's "recipients") or an age
// X25519 recipient ("age1..."); an identity is the matching private key, and
// it stays on the workstation.

var (
	// ErrInvalidRecipient: a recipient is neither an ssh-ed25519 / ssh-rsa
	// public key line nor an age1... X25519 recipient.
	ErrInvalidRecipient = errors.New("invalid recipient (want `ssh-ed25519 AAAA...`, `ssh-rsa AAAA...` or `age1...`)")
	// ErrInvalidIdentity: an identity file holds no usable private key.
	ErrInvalidIdentity = errors.New("invalid identity file (want an unencrypted OpenSSH ed25519/rsa private key, or AGE-SECRET-KEY-1... lines)")
)

// Recipient is a public key a backup is encrypted to, with a name people
// recognise (the authorized key's name, or the key's fingerprint).
type Recipient struct {
	age.Recipient
	// Name is the authorized key's name, or "" for a configured recipient.
	Name string
	// ID is "ssh-ed25519 SHA256:..." or the age1... string.
	ID string
}

// ParseRecipient reads one recipient: an authorized_keys style line
// (ssh-ed25519, or ssh-rsa of at least 2048 bits, as Add accepts) or an age
// X25519 recipient "age1...". The error never repeats the line: a private
// key pasted by mistake must not end up in a log.
func ParseRecipient(line string) (Recipient, error) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "age1") {
		if strings.HasPrefix(line, "age1pq1") || strings.ContainsAny(line, " \t") {
			return Recipient{}, fmt.Errorf("%w: only X25519 age1... recipients are supported", ErrInvalidRecipient)
		}
		r, err := age.ParseX25519Recipient(line)
		if err != nil {
			return Recipient{}, fmt.Errorf("%w: malformed age1... recipient", ErrInvalidRecipient)
		}
		return Recipient{Recipient: r, ID: r.String()}, nil
	}
	key, _, err := parseKeyLine(line)
	if err != nil {
		if errors.Is(err, ErrKeyType) {
			return Recipient{}, fmt.Errorf("%w: %v", ErrInvalidRecipient, err)
		}
		return Recipient{}, ErrInvalidRecipient
	}
	return sshRecipient(key, "")
}

func sshRecipient(key ssh.PublicKey, name string) (Recipient, error) {
	var r age.Recipient
	var err error
	switch key.Type() {
	case ssh.KeyAlgoED25519:
		r, err = agessh.NewEd25519Recipient(key)
	case ssh.KeyAlgoRSA:
		r, err = agessh.NewRSARecipient(key)
	default:
		return Recipient{}, fmt.Errorf("%w: %s", ErrInvalidRecipient, key.Type())
	}
	if err != nil {
		return Recipient{}, fmt.Errorf("%w: %v", ErrInvalidRecipient, err)
	}
	return Recipient{Recipient: r, Name: name, ID: key.Type() + " " + ssh.FingerprintSHA256(key)}, nil
}

// Recipients returns the authorized keys called names (every authorized key
// with all) as recipients, in file order. An unknown name is an error
// (ErrUnknownName): a backup must not silently leave out an operator.
func (a *Authorized) Recipients(names []string, all bool) ([]Recipient, error) {
	data, err := os.ReadFile(a.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read authorized keys: %w", err)
	}
	es, err := parseAuthorized(data, true)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []Recipient
	for _, e := range es {
		if !all && !want[e.name] {
			continue
		}
		delete(want, e.name)
		r, err := sshRecipient(e.key, e.name)
		if err != nil {
			return nil, fmt.Errorf("authorized key %s: %w", e.name, err)
		}
		out = append(out, r)
	}
	for _, n := range names {
		switch {
		case !want[n]:
		case IsPrivateKey(n):
			// Never echo key material (issue 25.16).
			return nil, fmt.Errorf("a private key (not quoted; give the key's name, as a0agent keys lists it), not a key name: %w", ErrUnknownName)
		case !nameRE.MatchString(n):
			// Not a key name: it may be a line of one; not quoted.
			return nil, fmt.Errorf("a name that is not a key name (not quoted; %v): %w", ErrInvalidName, ErrUnknownName)
		case looksLikeKeyLine(n):
			// A line of base64 without '+' or '/' (about one line in
			// eight of a key file) also matches nameRE: no authorized
			// key has such a name, and it is not quoted either.
			return nil, fmt.Errorf("a name that looks like a line of key material (not quoted), not a key name: %w", ErrUnknownName)
		default:
			return nil, fmt.Errorf("%q: %w", n, ErrUnknownName)
		}
	}
	if all && len(out) == 0 {
		return nil, fmt.Errorf("no authorized keys to encrypt to: %w", ErrUnknownName)
	}
	return out, nil
}

// LoadIdentities reads an identity file: an unencrypted OpenSSH private key
// (ed25519, or rsa of at least 2048 bits; the CLI key's format) or an age
// identity file (AGE-SECRET-KEY-1... lines, # comments). Like the CLI key, it
// must not be readable by group or others (*PermissionError). Errors never
// contain key material.
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("identity file %s: %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("open identity file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat identity file: %w", err)
	}
	if checkPrivateMode && fi.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: path, Mode: fi.Mode().Perm()}
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("identity file %s: %w", path, ErrInvalidIdentity)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	defer clear(buf.Bytes())
	if bytes.Contains(buf.Bytes(), []byte("-----BEGIN")) {
		raw, err := ssh.ParseRawPrivateKey(buf.Bytes())
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				return nil, fmt.Errorf("identity file %s is passphrase-protected: %w", path, ErrInvalidIdentity)
			}
			return nil, fmt.Errorf("identity file %s: %w", path, ErrInvalidIdentity)
		}
		id, err := signerIdentity(raw)
		if err != nil {
			return nil, fmt.Errorf("identity file %s: %w", path, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(buf.Bytes()))
	if err != nil {
		// age's messages name line numbers, never key material.
		return nil, fmt.Errorf("identity file %s: %w (%v)", path, ErrInvalidIdentity, err)
	}
	return ids, nil
}

// CLIIdentity is the CLI key in home ($A0CLI_HOME) as an identity: the
// default of verify, decrypt and restore --identity.
func CLIIdentity(home string) (age.Identity, error) {
	signer, err := Load(home)
	if err != nil {
		return nil, err
	}
	return signerIdentity(signer)
}

func signerIdentity(k any) (age.Identity, error) {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return agessh.NewEd25519Identity(k)
	case *ed25519.PrivateKey:
		return agessh.NewEd25519Identity(*k)
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("rsa key of %d bits: %w", k.N.BitLen(), ErrInvalidIdentity)
		}
		return agessh.NewRSAIdentity(k)
	}
	return nil, fmt.Errorf("%T: %w", k, ErrInvalidIdentity)
}

// looksLikeKeyLine says whether n, a string nameRE accepts, is long and
// made only of letters and digits of both cases, as a base64 line of a
// key file can be; names people give keys are short or have separators.
func looksLikeKeyLine(n string) bool {
	if len(n) < 40 {
		return false
	}
	var upper, lower, digit bool
	for _, c := range n {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			return false
		}
	}
	return upper && lower && digit
}
