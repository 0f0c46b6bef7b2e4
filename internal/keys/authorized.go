package keys

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"
)

var (
	// ErrDuplicate: Add was given a name or a key that is already authorized.
	ErrDuplicate = errors.New("already authorized")
	// ErrUnknownName: Remove was given a name that is not authorized.
	ErrUnknownName = errors.New("no authorized key with that name")
	// ErrInvalidName: a key name outside [A-Za-z0-9._@-]{1,64}.
	ErrInvalidName = errors.New("invalid key name (use 1-64 of A-Z a-z 0-9 . _ @ -)")
	// ErrInvalidKey: the public key line cannot be parsed.
	ErrInvalidKey = errors.New("invalid public key line (want `ssh-ed25519 AAAA... comment`)")
	// ErrPrivateKey: a private key was given where a public key line was
	// wanted (`"$(cat id_a0)"` for `"$(cat id_a0.pub)"`). It matches
	// ErrInvalidKey too, and like every error here it quotes nothing of
	// what it was given.
	ErrPrivateKey = fmt.Errorf("%w: this is a private key; give the .pub line (the public key, such as the content of ~/.a0cli/id_a0.pub)", ErrInvalidKey)
)

// IsPrivateKey tells whether s holds a private key: a PEM block of one
// (OpenSSH, PKCS#1, PKCS#8, SEC 1, encrypted or not) or an age identity.
// It looks only for the markers, so a damaged key is found as well.
func IsPrivateKey(s string) bool {
	if strings.Contains(s, "-----BEGIN") && strings.Contains(s, "PRIVATE KEY") {
		return true
	}
	return strings.Contains(strings.ToUpper(s), "AGE-SECRET-KEY-")
}

// RefusePrivateKeyArgs returns ErrPrivateKey if any of a command's
// arguments holds a private key, so that a command can refuse it before
// its flag parser quotes it ("bad flag syntax: -----BEGIN ...").
func RefusePrivateKeyArgs(args []string) error {
	for _, a := range args {
		if IsPrivateKey(a) {
			return ErrPrivateKey
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// Entry is one authorized CLI key as listed to the operator.
type Entry struct {
	Name        string
	Type        string // ssh key type, e.g. "ssh-ed25519"
	Fingerprint string // as ssh-keygen -l prints it
	Comment     string
}

// Authorized is the node's authorized CLI keys file: lines
// "NAME ssh-ed25519 AAAA... comment", mode 0600; edits are serialised across
// processes by a lock on the sibling file authorized_keys.lock. Changes made through any
// Authorized (in this or another process) are seen by Lookup without a
// restart. Safe for concurrent use.
type Authorized struct {
	path string

	mu       sync.Mutex
	stamp    fileStamp
	raw      []byte
	entries  []authEntry
	loadedAt time.Time
}

type authEntry struct {
	name    string
	key     ssh.PublicKey
	comment string
}

type fileStamp struct {
	exists bool
	ino    uint64
	size   int64
	mtime  time.Time
	mode   fs.FileMode
	uid    int // owner, -1 where not known
}

// UntrustedError reports an authorized keys file that someone other than
// the agent's user (or root) could have written: it is owned by another
// user, or its directory is writable by group or others (anyone could
// rename another file over it). Such a file authorizes nobody, as sshd's
// StrictModes refuses such an authorized_keys.
type UntrustedError struct {
	Path string
	Why  string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("%s authorizes nobody: %s", e.Path, e.Why)
}

// trusted refuses a file that group or others may write, that another user
// owns, or whose directory group or others may write (issue 25.8).
func trusted(path string, st fileStamp) error {
	if !checkPrivateMode || !st.exists {
		return nil // a missing file authorizes nobody anyway
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	} else if m := fi.Mode().Perm(); m&0o022 != 0 {
		return &UntrustedError{Path: path, Why: fmt.Sprintf("its directory %s is writable by group or others (mode %#o); run `chmod 700 %s`", dir, m, dir)}
	} else if uid := owner(fi); uid >= 0 && uid != os.Geteuid() && uid != 0 {
		return &UntrustedError{Path: path, Why: fmt.Sprintf("its directory %s is owned by uid %d, not by the agent's user (uid %d) or root", dir, uid, os.Geteuid())}
	}
	if st.mode&0o022 != 0 {
		return &PermissionError{Path: path, Mode: st.mode}
	}
	if st.uid >= 0 && st.uid != os.Geteuid() && st.uid != 0 {
		return &UntrustedError{Path: path, Why: fmt.Sprintf("owned by uid %d, not by the agent's user (uid %d) or root; run `chown %d %s`", st.uid, os.Geteuid(), os.Geteuid(), path)}
	}
	return nil
}

// OpenAuthorized returns the authorized keys at path. The file need not
// exist yet; a missing file authorizes nobody.
func OpenAuthorized(path string) *Authorized {
	return &Authorized{path: path}
}

// Add authorizes the key in line (an authorized_keys line as a0cli create-key
// prints it; ed25519, or rsa of at least 2048 bits) under name.
func (a *Authorized) Add(name, line string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	key, comment, err := parseKeyLine(line)
	if err != nil {
		return err
	}
	return a.edit(func(es []authEntry) ([]authEntry, error) {
		for _, e := range es {
			if e.name == name {
				return nil, fmt.Errorf("name %s: %w", name, ErrDuplicate)
			}
			if bytes.Equal(e.key.Marshal(), key.Marshal()) {
				return nil, fmt.Errorf("key %s is authorized as %s: %w", ssh.FingerprintSHA256(key), e.name, ErrDuplicate)
			}
		}
		return append(es, authEntry{name: name, key: key, comment: comment}), nil
	})
}

// Remove revokes the key called name; ErrUnknownName if there is none.
func (a *Authorized) Remove(name string) error {
	return a.edit(func(es []authEntry) ([]authEntry, error) {
		for i, e := range es {
			if e.name == name {
				return append(es[:i:i], es[i+1:]...), nil
			}
		}
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownName)
	})
}

// List returns the authorized keys in file order. A line that cannot be
// parsed makes List fail (so the operator learns of it); Lookup skips it.
func (a *Authorized) List() ([]Entry, error) {
	st, err := statFile(a.path)
	if err != nil {
		return nil, fmt.Errorf("stat authorized keys: %w", err)
	}
	if err := trusted(a.path, st); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read authorized keys: %w", err)
	}
	es, err := parseAuthorized(data, true)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(es))
	for _, e := range es {
		out = append(out, Entry{Name: e.name, Type: e.key.Type(), Fingerprint: ssh.FingerprintSHA256(e.key), Comment: e.comment})
	}
	return out, nil
}

// Lookup reports the name under which pub (the public key of the client's
// TLS certificate) is authorized. It re-reads the file whenever it changed,
// so authorize and revoke take effect on the next request. Any error reading
// the file denies access, and so does a file that group or others may write
// (anyone who can write it can authorize himself; List reports why).
func (a *Authorized) Lookup(pub crypto.PublicKey) (name string, ok bool) {
	want, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.refreshLocked(); err != nil {
		return "", false
	}
	wb := want.Marshal()
	for _, e := range a.entries {
		if bytes.Equal(e.key.Marshal(), wb) {
			return e.name, true
		}
	}
	return "", false
}

// racyWindow: file timestamps are only as fine as the kernel's clock tick,
// and a rewrite may reuse a freed inode, so a file changed this close to our
// last read can look unchanged by stat. Within the window the content is
// compared too (the "racy git" rule).
const racyWindow = 2 * time.Second

func (a *Authorized) refreshLocked() error {
	st, err := statFile(a.path)
	if err != nil {
		a.entries, a.raw, a.stamp = nil, nil, fileStamp{}
		return err
	}
	if !st.exists {
		a.entries, a.raw, a.stamp = nil, nil, st
		return nil
	}
	if err := trusted(a.path, st); err != nil {
		a.entries, a.raw, a.stamp = nil, nil, fileStamp{}
		return err
	}
	racy := st.mtime.After(a.loadedAt.Add(-racyWindow))
	if st.same(a.stamp) && !a.loadedAt.IsZero() && !racy {
		return nil
	}
	loadedAt := time.Now()
	data, err := os.ReadFile(a.path)
	if err != nil {
		a.entries, a.raw, a.stamp = nil, nil, fileStamp{}
		return err
	}
	if a.raw == nil || !bytes.Equal(data, a.raw) {
		es, _ := parseAuthorized(data, false)
		a.entries, a.raw = es, data
	}
	a.stamp, a.loadedAt = st, loadedAt
	return nil
}

// edit applies change to the current file content under an exclusive lock
// and rewrites the file atomically.
func (a *Authorized) edit(change func([]authEntry) ([]authEntry, error)) error {
	if err := mkdirPrivate(filepath.Dir(a.path)); err != nil {
		return err
	}
	unlock, err := lockFile(a.path + ".lock")
	if err != nil {
		return fmt.Errorf("lock authorized keys: %w", err)
	}
	defer unlock()
	data, err := os.ReadFile(a.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read authorized keys: %w", err)
	}
	// Strict: rewriting would silently drop a line we could not parse.
	es, err := parseAuthorized(data, true)
	if err != nil {
		return err
	}
	es, err = change(es)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, e := range es {
		buf.WriteString(e.name + " " + authorizedLine(e.key, e.comment) + "\n")
	}
	if err := atomicfile.Write(a.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write authorized keys: %w", err)
	}
	return nil
}

func parseAuthorized(data []byte, strict bool) ([]authEntry, error) {
	var es []authEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if !nameRE.MatchString(name) {
			if strict {
				return nil, fmt.Errorf("authorized keys line %d: %w", n, ErrInvalidName)
			}
			continue
		}
		key, comment, err := parseKeyLine(rest)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("authorized keys line %d (%s): %w", n, name, err)
			}
			continue
		}
		es = append(es, authEntry{name: name, key: key, comment: comment})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read authorized keys: %w", err)
	}
	return es, nil
}

// parseKeyLine accepts exactly one plain authorized_keys line: no options
// (they would mean nothing here and could mislead the reader of the file).
func parseKeyLine(line string) (ssh.PublicKey, string, error) {
	if IsPrivateKey(line) {
		return nil, "", ErrPrivateKey
	}
	line = strings.TrimSpace(line)
	if line == "" || strings.ContainsAny(line, "\r\n") {
		return nil, "", ErrInvalidKey
	}
	key, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(options) > 0 {
		return nil, "", ErrInvalidKey
	}
	switch key.Type() {
	case ssh.KeyAlgoED25519:
	case ssh.KeyAlgoRSA:
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return nil, "", ErrInvalidKey
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("rsa key shorter than 2048 bits: %w", ErrKeyType)
		}
	default:
		return nil, "", fmt.Errorf("%s (want ssh-ed25519 or ssh-rsa): %w", key.Type(), ErrKeyType)
	}
	return key, cleanComment(comment), nil
}

// cleanComment keeps a comment printable on one line: List output goes to
// terminals, where control characters could forge or hide text.
func cleanComment(c string) string {
	c = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, c)
	return strings.Join(strings.Fields(c), " ")
}

func (s fileStamp) same(o fileStamp) bool {
	return s.exists == o.exists && s.ino == o.ino && s.size == o.size && s.mtime.Equal(o.mtime) && s.mode == o.mode && s.uid == o.uid
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, ino: inode(fi), size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode().Perm(), uid: owner(fi)}, nil
}
