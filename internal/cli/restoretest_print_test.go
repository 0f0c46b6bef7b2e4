package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/drill"
)

// TestPrintRestoreTestNotHeld: a restore test that left out collections
// the embedded server cannot hold passes, and its report says how many
// were not checked and, for each, how many of its documents the server
// refuses (issue 29).
func TestPrintRestoreTestNotHeld(t *testing.T) {
	rep := &drill.Report{OK: true, Same: 1, NotHeld: 1, DocumentsNotHeld: 2, Digests: true, Collections: []drill.Collection{
		{Namespace: "shop.items", Status: drill.StatusOK, DocumentsExpected: 10, DocumentsFound: 10},
		{Namespace: "shop.orders", Status: drill.StatusNotHeld, DocumentsExpected: 5, DocumentsNotHeld: 2,
			Reason: `the embedded server (FerretDB) cannot hold 2 of its 5 documents (the first: field "price": a Decimal128 value): not restored, not compared`},
	}}
	var out bytes.Buffer
	printRestoreTest(&Env{Stdout: &out}, rep)
	for _, want := range []string{
		"restore test: OK:", "1 same, 0 differ, 1 not held by the embedded server",
		"not checked:  1 collection(s) the embedded server (FerretDB) cannot hold, 2 of their documents refused by it",
		"shop.orders", "not-held", "(2 of 5 documents not held)", `field "price": a Decimal128 value`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
	if err := restoreTestFailed(rep); err != nil {
		t.Errorf("a restore test with collections not held failed: %v", err)
	}
}
