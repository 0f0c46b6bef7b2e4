package keys

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrNotPinned: Forget found no pin for the node.
var ErrNotPinned = errors.New("node is not in known_nodes")

// KnownNodes pins each node's TLS certificate on first contact, like ssh's
// known_hosts with StrictHostKeyChecking=accept-new. The file holds one line
// per node: "host:port SHA256:<fingerprint of the leaf certificate DER>".
// Host names are compared case-insensitively. Edits are serialised across
// processes by a lock on the sibling file known_nodes.lock.
type KnownNodes struct {
	Path string // usually <home>/known_nodes
}

// ChangedCertError: the node presented a certificate other than the pinned one.
type ChangedCertError struct {
	Node string // host:port
	Want string // pinned fingerprint
	Got  string // presented fingerprint
	File string // the known_nodes file
}

func (e *ChangedCertError) Error() string {
	// Lines of their own, the last one ending the message: printed after a
	// progress bar or another message it must not run into either.
	return fmt.Sprintf("the TLS certificate of node %s has CHANGED (pinned %s, presented %s).\n"+
		"This may be an attack (someone intercepting the connection), or the node was reinstalled.\n"+
		"If you trust the change, remove the line for %s from %s or run `a0cli forget-node %s`\n",
		e.Node, e.Want, e.Got, e.Node, e.File, e.Node)
}

// knownMu serialises this process's read-modify-write of known_nodes files;
// a file lock does the same across processes.
var knownMu sync.Mutex

// Check compares the node's leaf certificate with its pin. On first contact it
// records the pin and returns pinnedNow=true; with the pinned certificate it
// returns false, nil; with another certificate it returns *ChangedCertError.
// Call it from tls.Config.VerifyPeerCertificate with rawCerts[0].
func (k KnownNodes) Check(hostport string, leafDER []byte) (pinnedNow bool, err error) {
	return k.check(hostport, leafDER, true)
}

// Verify is Check without recording a pin: unknown is true on first
// contact. A TLS client calls it during the handshake, and Check only once
// the handshake has completed (the node then proved it holds the key of the
// certificate), so that a node that cannot prove it is never pinned.
func (k KnownNodes) Verify(hostport string, leafDER []byte) (unknown bool, err error) {
	return k.check(hostport, leafDER, false)
}

func (k KnownNodes) check(hostport string, leafDER []byte, write bool) (bool, error) {
	if k.Path == "" {
		return false, errors.New("known nodes file not set")
	}
	node, err := normalizeNode(hostport)
	if err != nil {
		return false, err
	}
	if len(leafDER) == 0 {
		return false, errors.New("node presented no certificate")
	}
	got := Fingerprint(leafDER)

	knownMu.Lock()
	defer knownMu.Unlock()
	if err := mkdirPrivate(filepath.Dir(k.Path)); err != nil {
		return false, err
	}
	unlock, err := lockFile(k.Path + ".lock")
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", k.Path, err)
	}
	defer unlock()

	data, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read known nodes: %w", err)
	}
	want := ""
	for _, e := range parseKnown(data) {
		if e.node != node {
			continue
		}
		if e.fp == got {
			return false, nil
		}
		want = e.fp
	}
	if want != "" {
		return false, &ChangedCertError{Node: node, Want: want, Got: got, File: k.Path}
	}
	if !write {
		return true, nil
	}

	f, err := os.OpenFile(k.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("pin node: %w", err)
	}
	line := node + " " + got + "\n"
	if len(data) > 0 && data[len(data)-1] != '\n' {
		line = "\n" + line // a hand-edited file may lack the final newline
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return false, fmt.Errorf("pin node: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("pin node: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("pin node: %w", err)
	}
	return true, nil
}

// Forget removes the pin of hostport, so the next contact pins afresh;
// ErrNotPinned if there was none. Other lines, comments included, are kept.
func (k KnownNodes) Forget(hostport string) error {
	node, err := normalizeNode(hostport)
	if err != nil {
		return err
	}
	knownMu.Lock()
	defer knownMu.Unlock()
	unlock, err := lockFile(k.Path + ".lock")
	if err != nil {
		return fmt.Errorf("lock %s: %w", k.Path, err)
	}
	defer unlock()

	data, err := os.ReadFile(k.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", node, ErrNotPinned)
	}
	if err != nil {
		return fmt.Errorf("read known nodes: %w", err)
	}
	var out bytes.Buffer
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if e, ok := parseKnownLine(sc.Text()); ok && e.node == node {
			found = true
			continue
		}
		out.WriteString(sc.Text())
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read known nodes: %w", err)
	}
	if !found {
		return fmt.Errorf("%s: %w", node, ErrNotPinned)
	}
	if err := atomicfile.Write(k.Path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("rewrite known nodes: %w", err)
	}
	return nil
}

type knownEntry struct{ node, fp string }

func parseKnown(data []byte) []knownEntry {
	var es []knownEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if e, ok := parseKnownLine(sc.Text()); ok {
			es = append(es, e)
		}
	}
	return es
}

// parseKnownLine ignores blank lines, comments and lines it cannot read, as
// ssh does; an unreadable line therefore never pins anything.
func parseKnownLine(line string) (knownEntry, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return knownEntry{}, false
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		return knownEntry{}, false
	}
	node, err := normalizeNode(f[0])
	if err != nil {
		return knownEntry{}, false
	}
	return knownEntry{node: node, fp: f[1]}, true
}

// normalizeNode makes "Node.Example:443" and "node.example:443" one pin.
func normalizeNode(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" || strings.ContainsAny(hostport, " \t\r\n#") {
		return "", fmt.Errorf("node address %q: want host:port", hostport)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// Repin makes fp (a "SHA256:..." fingerprint) the pin of hostport,
// replacing any other pin of it. It is for a certificate whose fingerprint
// the caller knows from an authenticated source (a sensitive backup it has
// just restored), never for one a node merely presents.
func (k KnownNodes) Repin(hostport, fp string) error {
	node, err := normalizeNode(hostport)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(fp, "SHA256:") || strings.ContainsAny(fp, " \t\r\n") {
		return fmt.Errorf("fingerprint %q: want SHA256:<base64>", fp)
	}
	knownMu.Lock()
	defer knownMu.Unlock()
	if err := mkdirPrivate(filepath.Dir(k.Path)); err != nil {
		return err
	}
	unlock, err := lockFile(k.Path + ".lock")
	if err != nil {
		return fmt.Errorf("lock %s: %w", k.Path, err)
	}
	defer unlock()
	data, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read known nodes: %w", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if e, ok := parseKnownLine(sc.Text()); ok && e.node == node {
			continue
		}
		out.WriteString(sc.Text())
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read known nodes: %w", err)
	}
	out.WriteString(node + " " + fp + "\n")
	if err := atomicfile.Write(k.Path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("rewrite known nodes: %w", err)
	}
	return nil
}
