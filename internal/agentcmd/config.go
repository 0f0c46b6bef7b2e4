package agentcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/spf13/pflag"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/cmdline"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/webhook"
)

// Unattended is the config of backups made without an operator: the
// schedule, its "replace", and the job-end webhook.
type Unattended struct {
	Schedule      *schedule.Schedule
	Replace       bool
	Webhook       string
	WebhookCAFile string
}

// decodeConfig reads a config file's JSON, refusing unknown keys (a typo
// in "schedule" must not silently turn the schedule off), and refuses a
// config file or S3 secret file others could read or change (the agent's
// start: fileModeProblems).
func decodeConfig(path string, b []byte) (Config, error) {
	c, err := parseConfig(path, b)
	if err != nil {
		return c, err
	}
	if p := c.fileModeProblems(path); len(p) > 0 {
		return c, fmt.Errorf("config %s: %w", path, p[0])
	}
	return c, nil
}

func parseConfig(path string, b []byte) (Config, error) {
	c, problems := parseConfigAll(b)
	if len(problems) > 0 {
		return c, fmt.Errorf("config %s: %w", path, problems[0])
	}
	return c, nil
}

// parseConfigAll decodes a config leniently and names every decoding
// problem: check-config goes on to check every key that decoded.
func parseConfigAll(b []byte) (Config, []error) {
	var c Config
	// Syntax and trailing data first: then the file is one object.
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var whole json.RawMessage
	if err := dec.Decode(&whole); err != nil {
		return c, []error{err}
	}
	if dec.More() {
		return c, []error{errors.New("data after the top-level object")}
	}
	return c, decodeKeys("", whole, &c)
}

// holdsSecret tells whether the config itself holds a secret: a webhook
// URL (its path or query may be a token) or a MongoDB URI with a password.
func (c Config) holdsSecret() bool {
	return c.Webhook != "" || uriHasCredentials(c.MongoDBURI)
}

// uriHasCredentials tells whether a MongoDB URI carries a user part (and
// so, as a rule, a password).
func uriHasCredentials(uri string) bool {
	if i := strings.Index(uri, "://"); i >= 0 {
		host, _, _ := strings.Cut(uri[i+3:], "/")
		return strings.Contains(host, "@")
	}
	return false
}

// uriFileModeProblem applies the config file's rule to --mongodb-uri-file
// (issue 25.10): whoever can write it chooses the database the node backs
// up and restores into, and whoever can read it learns the password it
// holds. Unlike the config, a group-readable one is fine: docs/operations.md
// has the unit read a root-owned 0640 file through the agent's group. Nil when the mode is fine or the file cannot be stat'ed (reading
// it reports that).
func uriFileModeProblem(path, uri string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	switch m := fi.Mode().Perm(); {
	case m&0o022 != 0:
		return fmt.Errorf("mongodb uri file %s is writable by group or others (mode %#o): run `chmod 600 %s`", path, m, path)
	case m&0o004 != 0 && uriHasCredentials(uri):
		return fmt.Errorf("mongodb uri file %s holds a password and is readable by others (mode %#o): run `chmod 600 %s` (or 640, group the agent's)", path, m, path)
	}
	return nil
}

// fileModeProblems (issue 25.10): the config file must not be writable by
// group or others (whoever can change it chooses what backups are
// encrypted to and where they go), nor readable by them when it holds a
// secret; the S3 secret file must be neither (as ssh refuses a readable
// key). Each problem names the chmod to run. Checked where file modes mean
// something, for the files that exist (a missing one is another problem).
func (c Config) fileModeProblems(path string) []error {
	var out []error
	if fi, err := os.Stat(path); err == nil {
		m := fi.Mode().Perm()
		switch {
		case m&0o022 != 0:
			out = append(out, fmt.Errorf("config file %s is writable by group or others (mode %#o): run `chmod 600 %s`", path, m, path))
		case m&0o044 != 0 && c.holdsSecret():
			out = append(out, fmt.Errorf("config file %s holds a secret (webhook URL or MongoDB password) and is readable by group or others (mode %#o): run `chmod 600 %s`", path, m, path))
		}
	}
	// As for authorized_keys (issue 25.8): in a directory others can
	// write (without the sticky bit), another user could rename a config
	// of theirs over this one.
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
		out = append(out, fmt.Errorf("config file %s is in a directory group or others can write (%s, mode %#o): another user could put a config of theirs in its place; run `chmod go-w %s`", path, dir, fi.Mode().Perm(), dir))
	}
	if c.Remote != nil && c.Remote.SecretAccessKeyFile != "" {
		p := c.Remote.SecretAccessKeyFile
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o066 != 0 {
			out = append(out, fmt.Errorf("remote: secret_access_key_file %s is accessible by group or others (mode %#o): run `chmod 600 %s`", p, fi.Mode().Perm(), p))
		}
	}
	return out
}

// unattended checks and parses the unattended part of the config; the
// first problem is the error (the agent refuses to start with it).
func (c Config) unattended() (Unattended, error) {
	u, problems := c.unattendedProblems()
	if len(problems) > 0 {
		return u, problems[0]
	}
	return u, nil
}

func (c Config) unattendedProblems() (Unattended, []error) {
	var u Unattended
	var problems []error
	if len(c.Schedule) > 0 && string(c.Schedule) != "null" {
		s, err := schedule.ParseJSON(c.Schedule)
		if err != nil {
			problems = append(problems, err)
		} else {
			u.Schedule = s
			if len(c.Recipients) == 0 {
				problems = append(problems, errors.New(`schedule: needs "recipients" (public keys, such as "ssh-ed25519 AAAA..." or "age1..."): scheduled backups are encrypted to them, never to a password kept on the node`))
			}
		}
	}
	if c.Replace && len(c.Schedule) == 0 {
		problems = append(problems, errors.New(`replace: applies to scheduled backups only: set "schedule" too, or remove "replace"`))
	}
	u.Replace = c.Replace
	if c.Webhook != "" {
		if err := webhook.Check(c.Webhook, c.WebhookCAFile); err != nil {
			problems = append(problems, err)
		}
	} else if c.WebhookCAFile != "" {
		problems = append(problems, errors.New(`webhook_ca_file: set without "webhook"`))
	}
	u.Webhook, u.WebhookCAFile = c.Webhook, c.WebhookCAFile
	return u, problems
}

// checkAddr checks a HOST:PORT listen address.
func checkAddr(key, addr, example string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want HOST:PORT, such as %s", key, addr, example)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s %q: port %q is not a number from 0 to 65535", key, addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%s %q: %q is not a host name or IP address", key, addr, host)
	}
	return nil
}

// problems lists everything wrong with the config, paths included, as
// check-config reports it. The paths are checked for the user running it:
// run check-config as the agent's user.
func (c Config) problems(path string) []error {
	var out []error
	add := func(err error) { out = append(out, err) }
	if c.StateDir == "" {
		add(errors.New("state_dir: not set (the agent would need --state-dir)"))
	} else {
		add(checkDir("state_dir", c.StateDir))
	}
	if c.Listen != "" {
		add(checkAddr("listen", c.Listen, ":10121"))
	}
	if c.MetricsListen != "" {
		add(checkAddr("metrics_listen", c.MetricsListen, "127.0.0.1:10122"))
		if c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add(fmt.Errorf("metrics_listen %q: the same address as listen", c.MetricsListen))
		}
	}
	if c.MongoDBURI != "" && !strings.HasPrefix(c.MongoDBURI, "mongodb://") && !strings.HasPrefix(c.MongoDBURI, "mongodb+srv://") {
		// The URI may hold a password: never quoted.
		add(errors.New(`mongodb_uri: want a URI that starts with "mongodb://" or "mongodb+srv://" (prefer the agent's --mongodb-uri-file or $A0_MONGODB_URI: a password in this file is readable by whoever reads the config)`))
	}
	for i, l := range c.Recipients {
		if _, err := keys.ParseRecipient(l); err != nil {
			add(fmt.Errorf("recipients[%d]: %w", i, err))
		}
	}
	for i, p := range c.SensitivePaths {
		if st, err := os.Stat(p); err != nil {
			add(fmt.Errorf("sensitive_paths[%d]: %w", i, err))
		} else if st.IsDir() {
			add(fmt.Errorf("sensitive_paths[%d]: %s is a directory: list files", i, p))
		}
	}
	if c.Remote != nil {
		// The remote's own checks (package remote), and its secret must load (never printed).
		for _, err := range c.Remote.Problems() {
			add(fmt.Errorf("remote: %w", err))
		}
		if _, err := c.Remote.LoadSecret(os.Getenv); err != nil {
			add(err) // already "remote: ..."
		}
	}
	_, up := c.unattendedProblems()
	out = append(out, up...)
	_, pp := c.pitrProblems()
	out = append(out, pp...)
	_, dp := c.drillProblems()
	out = append(out, dp...)
	var kept []error
	for _, e := range out {
		if e != nil {
			kept = append(kept, e)
		}
	}
	return kept
}

// checkDir says whether the agent can use dir: it exists, is a directory
// and is writable (under systemd's ProtectSystem=strict a missing state
// dir cannot be created, and the unit's ReadWritePaths must exist).
func checkDir(key, dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w (create it, owned by the agent's user, mode 0700)", key, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a directory", key, dir)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fmt.Errorf("%s: %s is not writable by this user (run check-config as the agent's user)", key, dir)
	}
	return nil
}

// ConfigError is an invalid config: every problem found, one per line.
type ConfigError struct {
	Path     string
	Problems []error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problem(s):", e.Path, len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  - %v", p)
	}
	return b.String()
}

// CheckConfigOptions are the options of check-config.
type CheckConfigOptions struct {
	Config string
}

func checkConfigFlags(fs *pflag.FlagSet) runFunc {
	var o CheckConfigOptions
	fs.StringVar(&o.Config, "config", "", "the JSON config `FILE` to check")
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		return runCheckConfigCmd(o, pos, stdout)
	}
}

func runCheckConfigCmd(o CheckConfigOptions, pos []string, stdout io.Writer) error {
	if o.Config == "" || len(pos) != 0 {
		return &usageError{"usage: a0agent check-config --config FILE"}
	}
	return RunCheckConfig(o, time.Now(), stdout)
}

// RunCheckConfig validates a config file and prints what it sets up; an
// invalid one is a *ConfigError naming every problem.
func RunCheckConfig(o CheckConfigOptions, now time.Time, stdout io.Writer) error {
	b, err := os.ReadFile(o.Config)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	c, decodeProblems := parseConfigAll(b)
	if p := append(append(decodeProblems, c.fileModeProblems(o.Config)...), c.problems(o.Config)...); len(p) > 0 {
		return &ConfigError{Path: o.Config, Problems: p}
	}
	u, _ := c.unattended()
	fmt.Fprintf(stdout, "config %s: ok\n", o.Config)
	fmt.Fprintf(stdout, "  state dir:   %s\n", c.StateDir)
	fmt.Fprintf(stdout, "  listen:      %s\n", first(c.Listen, ":10121"))
	if c.MongoDBURI != "" {
		fmt.Fprintln(stdout, "  database:    mongodb_uri (not shown)")
	}
	fmt.Fprintf(stdout, "  recipients:  %d\n", len(c.Recipients))
	if u.Schedule != nil {
		repl := "no (a run with a backup stored is skipped)"
		if u.Replace {
			repl = "yes (after the new backup is verified)"
		}
		fmt.Fprintf(stdout, "  schedule:    %s (first run from now: %s), replace: %s\n", u.Schedule, u.Schedule.Next(now).UTC().Format(time.RFC3339), repl)
	} else {
		fmt.Fprintln(stdout, "  schedule:    none (backups only when an operator starts one)")
	}
	if p, _ := c.pitr(); p != nil {
		fmt.Fprintf(stdout, "  pitr:        slices of %s under <device>/backup/oplog, encrypted to the recipients\n", p.Slice)
	}
	if d, _ := c.drill(); d != nil {
		// The identity's path, never its content.
		fmt.Fprintf(stdout, "  drill:       %s (first from now: %s), restored under <device>/backup/.drill, opened with %s\n",
			d.Schedule, d.Schedule.Next(now).UTC().Format(time.RFC3339), d.Identity)
	}
	if c.MetricsListen != "" {
		fmt.Fprintf(stdout, "  metrics:     http://%s/metrics\n", c.MetricsListen)
	}
	if c.Webhook != "" {
		fmt.Fprintf(stdout, "  webhook:     %s\n", webhookWhere(c.Webhook))
	}
	return nil
}

// webhookWhere is the webhook's scheme and host: its path may be a token.
func webhookWhere(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "(set)"
	}
	rest := raw[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	return raw[:i+3] + rest + "/..."
}

// PITRConfig is the config's "pitr": {"slice": "10s"} turns the continuous
// oplog archive on (issue 26).
type PITRConfig struct {
	// Slice is a slice's length, 1s to 10m ("": 10s).
	Slice string `json:"slice,omitempty"`
}

// pitr checks and parses "pitr"; the first problem is the error.
func (c Config) pitr() (*agent.PITR, error) {
	p, problems := c.pitrProblems()
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return p, nil
}

func (c Config) pitrProblems() (*agent.PITR, []error) {
	if c.PITR == nil {
		return nil, nil
	}
	var problems []error
	p := &agent.PITR{Slice: pitr.DefaultSliceLength}
	if c.PITR.Slice != "" {
		d, err := time.ParseDuration(c.PITR.Slice)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf(`pitr: slice %q: want a duration such as "10s" or "1m"`, c.PITR.Slice))
		case d < pitr.MinSliceLength || d > pitr.MaxSliceLength:
			problems = append(problems, fmt.Errorf("pitr: slice %s: must be from %s to %s", d, pitr.MinSliceLength, pitr.MaxSliceLength))
		default:
			p.Slice = d
		}
	}
	if len(c.Recipients) == 0 {
		problems = append(problems, errors.New(`pitr: needs "recipients" (public keys, such as "ssh-ed25519 AAAA..." or "age1..."): the oplog slices are encrypted to them, never to a password kept on the node`))
	}
	return p, problems
}

// decodeKeys decodes a JSON object into the struct v points to key by key,
// so that one run names every problem (issue 28.13): each unknown key
// (with the names near it), each value of the wrong type, and, for a
// nested object (remote), its own keys the same way. A key is matched to a
// field as encoding/json does (its json tag, exact or else ignoring case).
// Every key that decodes is set, so what is right is still checked.
func decodeKeys(prefix string, raw []byte, v any) []error {
	where := "json: "
	if prefix != "" {
		where = strings.TrimSuffix(prefix, ".") + ": "
	}
	keys, m, err := objectKeys(raw)
	if err != nil {
		return []error{fmt.Errorf("%s%w", where, err)}
	}
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	var names []string
	for i := 0; i < rt.NumField(); i++ {
		if n := jsonName(rt.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	var out []error
	for _, k := range keys {
		i := fieldIndex(rt, k)
		if i < 0 {
			out = append(out, fmt.Errorf("%sunknown field %q%s", where, k, cmdline.DidYouMean(quoteAll(cmdline.Near(k, names)))))
			continue
		}
		f := rv.Field(i)
		name := prefix + jsonName(rt.Field(i))
		val := m[k]
		target := f.Type()
		if target.Kind() == reflect.Pointer && target.Elem().Kind() == reflect.Struct && string(val) != "null" {
			p := reflect.New(target.Elem())
			if errs := decodeKeys(name+".", val, p.Interface()); len(errs) > 0 {
				out = append(out, errs...)
				if isObject(val) {
					f.Set(p) // what decoded is still checked
				}
				continue
			}
			f.Set(p)
			continue
		}
		p := reflect.New(target)
		if err := json.Unmarshal(val, p.Interface()); err != nil {
			out = append(out, fmt.Errorf("%s: %w", name, err))
			continue
		}
		f.Set(p.Elem())
	}
	return out
}

// objectKeys are an object's keys in the file's order and their values
// (a key given twice counts once, its last value wins, as encoding/json).
func objectKeys(raw []byte) ([]string, map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil {
		return nil, nil, err
	} else if t != json.Delim('{') {
		return nil, nil, fmt.Errorf("want an object {...}, not %s", bytes.TrimSpace(raw))
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if _, dup := m[k]; !dup {
			keys = append(keys, k)
		}
		m[k] = v
	}
	return keys, m, nil
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}

// jsonName is a field's key in JSON ("" for an unexported or "-" field).
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch tag {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return tag
}

// fieldIndex is the field key names, as encoding/json matches it: exactly,
// or else ignoring case; -1 for none.
func fieldIndex(t reflect.Type, key string) int {
	fold := -1
	for i := 0; i < t.NumField(); i++ {
		n := jsonName(t.Field(i))
		if n == key {
			return i
		}
		if fold < 0 && n != "" && strings.EqualFold(n, key) {
			fold = i
		}
	}
	return fold
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

// DrillConfig is the config's "drill": {"every": "168h"} or {"cron":
// "0 3 * * 0"} runs restore drills of the stored backup (issue 29), and
// "identity" is the key file they open backups encrypted to public keys
// with: the node's own key, one of the "recipients", mode 0600.
type DrillConfig struct {
	Every    string `json:"every,omitempty"`
	Cron     string `json:"cron,omitempty"`
	Identity string `json:"identity,omitempty"`
}

// drill checks and parses "drill"; the first problem is the error.
func (c Config) drill() (*agent.Drill, error) {
	d, problems := c.drillProblems()
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return d, nil
}

func (c Config) drillProblems() (*agent.Drill, []error) {
	if c.Drill == nil {
		return nil, nil
	}
	var problems []error
	d := &agent.Drill{Identity: c.Drill.Identity}
	s, err := schedule.Parse(schedule.Spec{Every: c.Drill.Every, Cron: c.Drill.Cron})
	if err != nil {
		problems = append(problems, fmt.Errorf("drill: %w", err))
	}
	d.Schedule = s
	switch {
	case c.Drill.Identity == "":
		problems = append(problems, errors.New(`drill: needs "identity": the path of a key file (mode 0600) that opens the backups, its public key among "recipients" (make one with `+"`a0cli create-key`"+` on the node under its own A0CLI_HOME, or age-keygen)`))
	default:
		ids, err := keys.LoadIdentities(c.Drill.Identity)
		var pe *keys.PermissionError
		switch {
		case errors.As(err, &pe):
			problems = append(problems, fmt.Errorf("drill: identity %s is accessible by group or others (mode %#o): run `chmod 600 %s`", c.Drill.Identity, pe.Mode, c.Drill.Identity))
		case err != nil:
			problems = append(problems, fmt.Errorf("drill: identity: %w", err))
		case len(c.Recipients) > 0 && !identityAmong(ids, c.Recipients):
			problems = append(problems, fmt.Errorf(`drill: identity %s: its public key is not among "recipients": the drills could not open the scheduled backups (add its public key to "recipients")`, c.Drill.Identity))
		}
	}
	if len(c.Recipients) == 0 {
		problems = append(problems, errors.New(`drill: needs "recipients", the identity's public key among them: the node holds no password, so it drills backups encrypted to public keys`))
	}
	return d, problems
}

// identityAmong tells whether ids open what is encrypted to one of the
// recipients: a message sealed to each recipient alone, opened with ids
// (works for every key type age and its ssh plugin-free forms know).
func identityAmong(ids []age.Identity, recipients []string) bool {
	for _, line := range recipients {
		r, err := keys.ParseRecipient(line)
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r.Recipient)
		if err != nil {
			continue
		}
		w.Write([]byte("drill"))
		if w.Close() != nil {
			continue
		}
		if _, err := age.Decrypt(&buf, ids...); err == nil {
			return true
		}
	}
	return false
}
