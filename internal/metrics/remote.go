package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RemoteStates are the states a0_remote_copy_state reports (0 or 1 each).
var RemoteStates = []string{"copying", "copied", "failed"}

type remoteState struct {
	state    string
	copiedAt time.Time
}

var (
	descRemoteState  = prometheus.NewDesc("a0_remote_copy_state", "1 for the state of the stored backup's copy to the remote store (copying, copied, failed); absent without a remote store.", []string{"state"}, nil)
	descRemoteCopied = prometheus.NewDesc("a0_remote_last_copy_timestamp_seconds", "When the last copy to the remote store completed (Unix time).", nil, nil)
)

// SetRemote records the remote copy's state ("" : no remote store, or no
// copy yet) and when the last copy completed.
func (r *Recorder) SetRemote(state string, copiedAt *time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remote.state = state
	if copiedAt != nil {
		r.remote.copiedAt = *copiedAt
	}
}

func (c *collector) collectRemote(gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	c.rec.mu.Lock()
	rs := c.rec.remote
	c.rec.mu.Unlock()
	if rs.state == "" {
		return
	}
	for _, s := range RemoteStates {
		v := 0.0
		if s == rs.state {
			v = 1
		}
		gauge(descRemoteState, v, s)
	}
	if !rs.copiedAt.IsZero() {
		gauge(descRemoteCopied, float64(rs.copiedAt.UnixNano())/1e9)
	}
}
