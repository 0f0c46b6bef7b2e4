package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnownNodesPinning(t *testing.T) {
	k := KnownNodes{Path: filepath.Join(t.TempDir(), "home", KnownNodesFile)}
	certA, certB := []byte("certificate A"), []byte("certificate B")

	pinned, err := k.Check("node1.example:8443", certA)
	if err != nil || !pinned {
		t.Fatalf("first contact: pinned=%v err=%v", pinned, err)
	}
	assertMode(t, k.Path, 0o600)
	data, _ := os.ReadFile(k.Path)
	if string(data) != "node1.example:8443 "+Fingerprint(certA)+"\n" {
		t.Fatalf("known_nodes = %q", data)
	}
	for _, node := range []string{"node1.example:8443", "NODE1.Example:8443"} {
		if pinned, err := k.Check(node, certA); err != nil || pinned {
			t.Fatalf("%s same cert: pinned=%v err=%v", node, pinned, err)
		}
	}
	// Another node, or another port, is pinned on its own.
	for _, node := range []string{"node2.example:8443", "node1.example:9443", "[::1]:8443"} {
		if pinned, err := k.Check(node, certB); err != nil || !pinned {
			t.Fatalf("%s first contact: pinned=%v err=%v", node, pinned, err)
		}
	}

	_, err = k.Check("node1.example:8443", certB)
	var ce *ChangedCertError
	if !errors.As(err, &ce) {
		t.Fatalf("changed cert: %v, want *ChangedCertError", err)
	}
	if ce.Node != "node1.example:8443" || ce.Want != Fingerprint(certA) || ce.Got != Fingerprint(certB) || ce.File != k.Path {
		t.Fatalf("ChangedCertError = %+v", ce)
	}
	for _, s := range []string{"CHANGED", "attack", k.Path, "a0cli forget-node node1.example:8443"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message lacks %q: %s", s, err)
		}
	}
	// A refused certificate must not be pinned as a side effect.
	if _, err := k.Check("node1.example:8443", certB); !errors.As(err, &ce) {
		t.Fatalf("second try with changed cert: %v", err)
	}

	if err := k.Forget("Node1.example:8443"); err != nil {
		t.Fatal(err)
	}
	if err := k.Forget("node1.example:8443"); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("second Forget: %v, want ErrNotPinned", err)
	}
	if pinned, err := k.Check("node1.example:8443", certB); err != nil || !pinned {
		t.Fatalf("after Forget: pinned=%v err=%v", pinned, err)
	}
	if pinned, err := k.Check("node2.example:8443", certB); err != nil || pinned {
		t.Fatalf("Forget disturbed another node: pinned=%v err=%v", pinned, err)
	}
}

func TestKnownNodesHandEditedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), KnownNodesFile)
	cert := []byte("c")
	// A comment, a garbage line and no final newline.
	orig := "# my nodes\ngarbage\nother:1 " + Fingerprint([]byte("o"))
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	k := KnownNodes{Path: path}
	if pinned, err := k.Check("n:1", cert); err != nil || !pinned {
		t.Fatalf("pinned=%v err=%v", pinned, err)
	}
	if pinned, err := k.Check("other:1", []byte("o")); err != nil || pinned {
		t.Fatalf("existing line broken by append: pinned=%v err=%v", pinned, err)
	}
	if err := k.Forget("n:1"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != orig+"\n" {
		t.Fatalf("Forget did not keep the other lines: %q", data)
	}
}

func TestKnownNodesBadAddress(t *testing.T) {
	k := KnownNodes{Path: filepath.Join(t.TempDir(), KnownNodesFile)}
	for _, hp := range []string{"", "nohost", ":8443", "host:", "a b:1", "#x:1"} {
		t.Run(hp, func(t *testing.T) {
			if _, err := k.Check(hp, []byte("c")); err == nil {
				t.Fatal("Check accepted a bad address")
			}
			if err := k.Forget(hp); err == nil || errors.Is(err, ErrNotPinned) {
				t.Fatalf("Forget: %v", err)
			}
		})
	}
	if _, err := k.Check("n:1", nil); err == nil {
		t.Fatal("Check accepted an empty certificate")
	}
}

func TestFingerprintFormat(t *testing.T) {
	// sha256("") in unpadded base64, as ssh prints it.
	if got := Fingerprint(nil); got != "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU" {
		t.Fatalf("Fingerprint = %s", got)
	}
	if KeyFingerprint("not a key") != "" {
		t.Fatal("KeyFingerprint of a non-key must be empty")
	}
}
