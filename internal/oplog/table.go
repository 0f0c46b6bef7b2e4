package oplog

import (
	"fmt"
	"strings"
)

// Kind names an entry kind. The names are stable: reports count skipped
// entries by them.
type Kind string

// Entry kinds, as MongoDB 5.0-8.0 (and FerretDB) write them.
const (
	KindInsert   Kind = "insert"
	KindUpdate   Kind = "update"
	KindDelete   Kind = "delete"
	KindNoop     Kind = "noop"
	KindRecordID Kind = "record-id" // ci, cd, cu, km: replicated record id bookkeeping

	KindCreate             Kind = "create"
	KindDrop               Kind = "drop"
	KindDropDatabase       Kind = "dropDatabase"
	KindCreateIndexes      Kind = "createIndexes"
	KindStartIndexBuild    Kind = "startIndexBuild"
	KindCommitIndexBuild   Kind = "commitIndexBuild"
	KindAbortIndexBuild    Kind = "abortIndexBuild"
	KindDropIndexes        Kind = "dropIndexes"
	KindCollMod            Kind = "collMod"
	KindConvertToCapped    Kind = "convertToCapped"
	KindEmptyCapped        Kind = "emptycapped"
	KindDBCheck            Kind = "dbCheck"
	KindDropIdent          Kind = "dropIdent"
	KindSetMultikey        Kind = "setMultikeyMetadata"
	KindRename             Kind = "renameCollection"
	KindImportCollection   Kind = "importCollection"
	KindTimeseriesConvert  Kind = "upgradeDowngradeViewlessTimeseries"
	KindApplyOps           Kind = "applyOps"            // not a transaction
	KindTxn                Kind = "transaction"         // applyOps ending an unprepared transaction (or a pre-8.0 vectored insert)
	KindTxnPartial         Kind = "transaction-partial" // applyOps with partialTxn: more entries follow
	KindTxnPrepare         Kind = "transaction-prepare" // applyOps with prepare: waits for commitTransaction
	KindCommitTransaction  Kind = "commitTransaction"
	KindAbortTransaction   Kind = "abortTransaction"
	KindUnknownCommand     Kind = "unknown-command"
	KindUnknownOp          Kind = "unknown-op"
	KindSystemVersionWrite Kind = "admin.system.version-write"
)

// Action is what a replay does with an entry.
type Action int

const (
	// Apply writes the entry (applyOps on MongoDB, an idempotent write on
	// servers without applyOps).
	Apply Action = iota
	// ApplyEach is an applyOps that is not a transaction: each operation
	// in it is decided and applied on its own, in order.
	ApplyEach
	// TxnBuffer keeps a transaction's operations until its commit.
	TxnBuffer
	// TxnCommit ends a transaction: its buffered operations and this
	// entry's own are applied, in order.
	TxnCommit
	// TxnAbort ends a transaction: its buffered operations are dropped.
	TxnAbort
	// IndexCatalog changes the index list that the restore builds after
	// the replay (createIndexes, commitIndexBuild, dropIndexes): indexes
	// are built once, over the data at consistent_to, as mongorestore does.
	IndexCatalog
	// Skip does not replay the entry; the replay counts it by kind.
	Skip
	// Refuse stops the restore before it writes anything.
	Refuse
)

var actionNames = [...]string{"apply", "apply-each", "buffer", "commit", "abort", "index-catalog", "skip", "refuse"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Decision is the table's verdict on one entry.
type Decision struct {
	Kind   Kind
	Action Action
	// RefuseAtDump makes a backup fail when it captures the entry: its
	// effect cannot be replayed consistently (mongodump refuses the same).
	RefuseAtDump bool
	// Why explains a Skip or a Refuse, for reports and errors.
	Why string
}

// rule is one row of the table for "c" entries, keyed by command name.
var commandRules = map[string]Decision{
	"create":              {Kind: KindCreate, Action: Apply},
	"drop":                {Kind: KindDrop, Action: Apply},
	"dropDatabase":        {Kind: KindDropDatabase, Action: Apply, Why: "replayed as a drop of each restored collection of that database"},
	"createIndexes":       {Kind: KindCreateIndexes, Action: IndexCatalog},
	"commitIndexBuild":    {Kind: KindCommitIndexBuild, Action: IndexCatalog},
	"dropIndexes":         {Kind: KindDropIndexes, Action: IndexCatalog},
	"deleteIndexes":       {Kind: KindDropIndexes, Action: IndexCatalog},
	"dropIndex":           {Kind: KindDropIndexes, Action: IndexCatalog},
	"deleteIndex":         {Kind: KindDropIndexes, Action: IndexCatalog},
	"collMod":             {Kind: KindCollMod, Action: Apply},
	"convertToCapped":     {Kind: KindConvertToCapped, Action: Apply},
	"emptycapped":         {Kind: KindEmptyCapped, Action: Apply},
	"startIndexBuild":     {Kind: KindStartIndexBuild, Action: Skip, Why: "the index is built from commitIndexBuild"},
	"abortIndexBuild":     {Kind: KindAbortIndexBuild, Action: Skip, Why: "the build it ends was never committed"},
	"setMultikeyMetadata": {Kind: KindSetMultikey, Action: Skip, Why: "index bookkeeping the server redoes itself"},
	"dbCheck":             {Kind: KindDBCheck, Action: Skip, Why: "a consistency check, no data"},
	"dropIdent":           {Kind: KindDropIdent, Action: Skip, Why: "storage bookkeeping (a table dropped after its collection or index), redone by the server"},
	// A rename is replayed by the collection's UUID: a collection the dump
	// read under its new name already holds it (the replay moves the
	// entries of the old name there), one read under its old name is
	// renamed (PBM replays renames too; mongodump refuses them).
	"renameCollection": {Kind: KindRename, Action: Apply},
	"importCollection": {Kind: KindImportCollection, Action: Refuse, RefuseAtDump: true,
		Why: "an imported collection's data is not in the oplog (mongodump refuses it too)"},
	"upgradeDowngradeViewlessTimeseries": {Kind: KindTimeseriesConvert, Action: Refuse, RefuseAtDump: true,
		Why: "a time-series format conversion cannot be replayed (mongodump refuses it too)"},
}

// opRules is the table for entries other than "c".
var opRules = map[string]Decision{
	"i":  {Kind: KindInsert, Action: Apply},
	"u":  {Kind: KindUpdate, Action: Apply},
	"d":  {Kind: KindDelete, Action: Apply},
	"n":  {Kind: KindNoop, Action: Skip, Why: "a no-op entry writes nothing"},
	"ci": {Kind: KindRecordID, Action: Skip, Why: "replicated record id bookkeeping, redone by the server"},
	"cd": {Kind: KindRecordID, Action: Skip, Why: "replicated record id bookkeeping, redone by the server"},
	"cu": {Kind: KindRecordID, Action: Skip, Why: "replicated record id bookkeeping, redone by the server"},
	"km": {Kind: KindRecordID, Action: Skip, Why: "replicated record id bookkeeping, redone by the server"},
}

// Decide is the decision table: what a replay does with e. It looks at the
// entry alone; the namespace restriction (Targets) and the position limit
// are the replay's.
func Decide(e Entry) Decision {
	if e.Op != "c" {
		if d, ok := opRules[e.Op]; ok {
			return d
		}
		return Decision{Kind: KindUnknownOp, Action: Refuse, Why: fmt.Sprintf("unknown oplog op %q", e.Op)}
	}
	// multiOpType 1 (kApplyOpsAppliedSeparately, 8.0+ retryable vectored
	// inserts): a session's applyOps whose operations apply one by one,
	// linked by prevOpTime to the session's earlier retryable writes, not
	// to a transaction's entries.
	if e.LSID != nil && e.HasTxnNum && !e.inner && e.MultiOpType != 1 {
		// As mongo-tools' txn.NewMeta: only these commands make a
		// session's entry a transaction.
		switch e.Cmd {
		case "applyOps":
			switch {
			case truthy(e.O, "prepare"):
				return Decision{Kind: KindTxnPrepare, Action: TxnBuffer}
			case truthy(e.O, "partialTxn"):
				return Decision{Kind: KindTxnPartial, Action: TxnBuffer}
			}
			return Decision{Kind: KindTxn, Action: TxnCommit}
		case "commitTransaction":
			return Decision{Kind: KindCommitTransaction, Action: TxnCommit}
		case "abortTransaction":
			return Decision{Kind: KindAbortTransaction, Action: TxnAbort}
		}
	}
	if e.Cmd == "applyOps" {
		return Decision{Kind: KindApplyOps, Action: ApplyEach}
	}
	if d, ok := commandRules[e.Cmd]; ok {
		return d
	}
	return Decision{Kind: KindUnknownCommand, Action: Refuse, Why: fmt.Sprintf("unknown oplog command %q", e.Cmd)}
}

func truthy(d []byte, key string) bool {
	v, err := rawLookup(d, key)
	if err != nil {
		return false
	}
	if b, ok := v.BooleanOK(); ok {
		return b
	}
	n, ok := intValue(v)
	return ok && n != 0
}

// Targets are the collections an entry writes to.
type Targets struct {
	// Namespaces are "db.coll", every collection the entry names
	// (renameCollection: both the source and the target).
	Namespaces []string
	// Database is set for dropDatabase: every collection of it.
	Database string
}

// TargetsOf returns what e writes. applyOps and transaction entries name
// nothing themselves: their operations are judged one by one.
func TargetsOf(e Entry) (Targets, error) {
	if e.Op != "c" {
		return Targets{Namespaces: []string{e.NS}}, nil
	}
	db := e.DB()
	switch e.Cmd {
	case "applyOps", "commitTransaction", "abortTransaction", "dropIdent":
		// dropIdent names a storage table, not a collection.
		return Targets{}, nil
	case "dropDatabase":
		return Targets{Database: db}, nil
	case "renameCollection":
		from, ok1 := e.CmdString("renameCollection")
		to, ok2 := e.CmdString("to")
		if !ok1 || !ok2 {
			return Targets{}, fmt.Errorf("%w: renameCollection without its names", ErrMalformed)
		}
		return Targets{Namespaces: []string{from, to}}, nil
	case "importCollection":
		ns, ok := e.CmdString("importCollection")
		if !ok {
			return Targets{}, fmt.Errorf("%w: importCollection without its name", ErrMalformed)
		}
		return Targets{Namespaces: []string{ns}}, nil
	}
	coll, ok := e.CmdString(e.Cmd)
	if !ok || coll == "" {
		return Targets{}, fmt.Errorf("%w: %s without a collection name", ErrMalformed, e.Cmd)
	}
	return Targets{Namespaces: []string{db + "." + coll}}, nil
}

// CaptureError is a dump's refusal of an oplog entry it captured.
type CaptureError struct {
	TS   Timestamp
	Kind Kind
	NS   string
	Why  string
}

func (e *CaptureError) Error() string {
	return fmt.Sprintf("dump: the oplog holds a %s of %s at %s during the dump: %s; run the backup again when no such operation runs",
		e.Kind, e.NS, e.TS, e.Why)
}

// CheckCapture is the dump's side of the table: it returns a *CaptureError
// for an entry whose effect a restore cannot replay consistently, looking
// into applyOps operations too.
func CheckCapture(e Entry) error {
	if e.NS == "admin.system.version" {
		return &CaptureError{TS: e.TS, Kind: KindSystemVersionWrite, NS: e.NS,
			Why: "the server's authorization schema changed (mongodump refuses it too)"}
	}
	d := Decide(e)
	if d.RefuseAtDump {
		ns := e.NS
		if t, err := TargetsOf(e); err == nil && len(t.Namespaces) > 0 {
			ns = strings.Join(t.Namespaces, " to ")
		}
		return &CaptureError{TS: e.TS, Kind: d.Kind, NS: ns, Why: d.Why}
	}
	if e.Op == "c" && e.Cmd == "applyOps" {
		inner, err := e.Inner()
		if err != nil {
			return err
		}
		for _, in := range inner {
			if err := CheckCapture(in); err != nil {
				return err
			}
		}
	}
	return nil
}

// Skips reports whether the table skips entries of kind k (a replay
// counts them instead of applying them).
func Skips(k Kind) bool {
	for _, d := range opRules {
		if d.Kind == k {
			return d.Action == Skip
		}
	}
	for _, d := range commandRules {
		if d.Kind == k {
			return d.Action == Skip
		}
	}
	return false
}
