package restore

import "sync/atomic"

// Steps of Run, as Snapshot.Step names them.
const (
	StepData    = "data"
	StepIndexes = "indexes"
	StepOplog   = "oplog"
	StepReport  = "report"
)

// Progress is updated by Run while it works and may be read concurrently
// with Snapshot. A nil *Progress is valid and counts nothing.
type Progress struct {
	collectionsDone  atomic.Int64
	collectionsTotal atomic.Int64
	documents        atomic.Int64
	bytes            atomic.Int64
	oplogApplied     atomic.Int64
	step             atomic.Value // string
}

// Snapshot is a consistent-enough copy of the counters for status output.
type Snapshot struct {
	CollectionsDone  int64 `json:"collections_done"`
	CollectionsTotal int64 `json:"collections_total"`
	Documents        int64 `json:"documents"`
	Bytes            int64 `json:"bytes"`
	OplogApplied     int64 `json:"oplog_applied"`
	// Step is what Run is doing: data, indexes, oplog or report.
	Step string `json:"step,omitempty"`
}

// Snapshot returns the current counters.
func (p *Progress) Snapshot() Snapshot {
	if p == nil {
		return Snapshot{}
	}
	step, _ := p.step.Load().(string)
	return Snapshot{
		CollectionsDone:  p.collectionsDone.Load(),
		CollectionsTotal: p.collectionsTotal.Load(),
		Documents:        p.documents.Load(),
		Bytes:            p.bytes.Load(),
		OplogApplied:     p.oplogApplied.Load(),
		Step:             step,
	}
}

func (p *Progress) addTotal(n int64) {
	if p != nil {
		p.collectionsTotal.Add(n)
	}
}

func (p *Progress) collectionDone() {
	if p != nil {
		p.collectionsDone.Add(1)
	}
}

func (p *Progress) oplogEntry() {
	if p != nil {
		p.oplogApplied.Add(1)
	}
}

func (p *Progress) addDocs(n, b int64) {
	if p != nil {
		p.documents.Add(n)
		p.bytes.Add(b)
	}
}

func (p *Progress) setStep(s string) {
	if p != nil {
		p.step.Store(s)
	}
}
