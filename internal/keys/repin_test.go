package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepinReplacesOnlyThatNode: after Repin the node's new certificate is
// accepted, its old one refused, and other nodes' lines and comments kept.
func TestRepinReplacesOnlyThatNode(t *testing.T) {
	k := KnownNodes{Path: filepath.Join(t.TempDir(), "home", KnownNodesFile)}
	oldCert, newCert, other := []byte("fresh node"), []byte("restored node"), []byte("other node")
	if _, err := k.Check("node1:10121", oldCert); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Check("node2:10121", other); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(k.Path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# kept\n")
	f.Close()
	if err := k.Repin("NODE1:10121", Fingerprint(newCert)); err != nil {
		t.Fatal(err)
	}
	if pinned, err := k.Check("node1:10121", newCert); err != nil || pinned {
		t.Fatalf("restored cert after Repin: pinned=%v err=%v", pinned, err)
	}
	var ce *ChangedCertError
	if _, err := k.Check("node1:10121", oldCert); !errors.As(err, &ce) {
		t.Fatalf("old cert after Repin: %v, want *ChangedCertError", err)
	}
	if pinned, err := k.Check("node2:10121", other); err != nil || pinned {
		t.Fatalf("other node after Repin: pinned=%v err=%v", pinned, err)
	}
	data, _ := os.ReadFile(k.Path)
	if !strings.Contains(string(data), "# kept\n") || strings.Count(string(data), "node1:10121") != 1 {
		t.Fatalf("known_nodes after Repin:\n%s", data)
	}
	if err := k.Repin("node1:10121", "MD5:xx"); err == nil {
		t.Fatal("Repin accepted a fingerprint that is not SHA256")
	}
}
