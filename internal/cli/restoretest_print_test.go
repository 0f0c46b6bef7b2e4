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

// TestPrintRestoreTestNotHeldBytes: a not-held collection whose archived
// documents were checked says so; one whose archived bytes differ fails
// the test, named, with both digests.
func TestPrintRestoreTestNotHeldBytes(t *testing.T) {
	verified := &drill.Report{OK: true, NotHeld: 1, NotHeldVerified: 1, DocumentsNotHeld: 1, Digests: true, Collections: []drill.Collection{
		{Namespace: "shop.orders", Status: drill.StatusNotHeld, DocumentsExpected: 5, DocumentsNotHeld: 1, DocumentsArchived: 5,
			DigestExpected: "sha256-sum:aa", DigestArchived: "sha256-sum:aa", BytesVerified: true,
			Reason: "the embedded server (FerretDB) cannot hold 1 of its 5 documents (...): not restored; bytes verified: ..."},
	}}
	var out bytes.Buffer
	printRestoreTest(&Env{Stdout: &out}, verified)
	if !strings.Contains(out.String(), "bytes verified: 1 of them") {
		t.Errorf("lacks the bytes verified line:\n%s", out.String())
	}
	differs := &drill.Report{Differs: 1, Digests: true, Collections: []drill.Collection{
		{Namespace: "shop.orders", Status: drill.StatusDiffers, DocumentsExpected: 5, DocumentsNotHeld: 1, DocumentsArchived: 5,
			DigestExpected: "sha256-sum:aa", DigestArchived: "sha256-sum:bb",
			Reason: "its archived documents differ from what the dump wrote: content digest of its archived documents differs (not restored: ...)"},
	}}
	out.Reset()
	printRestoreTest(&Env{Stdout: &out}, differs)
	if !strings.Contains(out.String(), "(dumped sha256-sum:aa, in the archive sha256-sum:bb)") {
		t.Errorf("lacks the digests:\n%s", out.String())
	}
	if err := restoreTestFailed(differs); err == nil || !strings.Contains(err.Error(), "shop.orders") {
		t.Errorf("restoreTestFailed: %v", err)
	}
}
