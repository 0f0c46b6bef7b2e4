package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PathLogs serves the agent's recent log (GET, LogsRequest as its query).
const PathLogs = "/v1/logs"

// LogLevels are the levels a LogsRequest may ask for, lowest first.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogsRequest selects records of the agent's recent log.
type LogsRequest struct {
	// Since: records logged at or after it (zero: all kept).
	Since time.Time
	// Level: records at or above it ("debug", "info", "warn", "error";
	// "": all kept).
	Level string
	// Job: records logged while a job ran: "KIND@STARTED" as the records
	// show it, or a kind ("backup") for every job of that kind.
	Job string
	// After: records newer than this LogsReply.Next (following).
	After uint64
	// Tail: at most the last Tail matching records (0: all).
	Tail int
}

// Query is the request as a URL query.
func (r LogsRequest) Query() url.Values {
	q := url.Values{}
	if !r.Since.IsZero() {
		q.Set("since", r.Since.UTC().Format(time.RFC3339Nano))
	}
	if r.Level != "" {
		q.Set("level", r.Level)
	}
	if r.Job != "" {
		q.Set("job", r.Job)
	}
	if r.After > 0 {
		q.Set("after", strconv.FormatUint(r.After, 10))
	}
	if r.Tail > 0 {
		q.Set("tail", strconv.Itoa(r.Tail))
	}
	return q
}

// ParseLogsRequest reads a request from its URL query.
func ParseLogsRequest(q url.Values) (LogsRequest, error) {
	var r LogsRequest
	var err error
	if s := q.Get("since"); s != "" {
		if r.Since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return r, Errorf(CodeBadRequest, "since: not an RFC 3339 time: %q", s)
		}
	}
	if r.Level = strings.ToLower(q.Get("level")); r.Level != "" {
		if _, err := ParseLogLevel(r.Level); err != nil {
			return r, err
		}
	}
	r.Job = q.Get("job")
	if s := q.Get("after"); s != "" {
		if r.After, err = strconv.ParseUint(s, 10, 64); err != nil {
			return r, Errorf(CodeBadRequest, "after: not a record number: %q", s)
		}
	}
	if s := q.Get("tail"); s != "" {
		if r.Tail, err = strconv.Atoi(s); err != nil || r.Tail < 0 {
			return r, Errorf(CodeBadRequest, "tail: not a count: %q", s)
		}
	}
	return r, nil
}

// ParseLogLevel checks a level name and returns its rank in LogLevels.
func ParseLogLevel(s string) (int, error) {
	for i, l := range LogLevels {
		if strings.EqualFold(s, l) {
			return i, nil
		}
	}
	return 0, Errorf(CodeBadRequest, "unknown log level %q: want one of %s", s, strings.Join(LogLevels, ", "))
}

// LogAttr is one key/value of a log record.
type LogAttr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// LogRecord is one record of the agent's log.
type LogRecord struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	// Job is the job that ran when it was logged: "KIND@STARTED".
	Job   string    `json:"job,omitempty"`
	Attrs []LogAttr `json:"attrs,omitempty"`
}

// LogsReply is the body of GET /v1/logs.
type LogsReply struct {
	Records []LogRecord `json:"records"`
	// LeftOff counts the matching records Tail left off.
	LeftOff int `json:"left_off,omitempty"`
	// Next is the number to follow from (LogsRequest.After).
	Next uint64 `json:"next"`
}
