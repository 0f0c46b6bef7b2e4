package remote

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// SecretEnv is the environment variable that may hold the secret access
// key instead of secret_access_key_file.
const SecretEnv = "A0_REMOTE_SECRET_ACCESS_KEY"

// Config is the agent config's "remote" object. The secret access key is
// never in it: it is read from SecretAccessKeyFile or $A0_REMOTE_SECRET_ACCESS_KEY.
type Config struct {
	// Endpoint is "https://host:port" (or "http://" on a trusted network).
	Endpoint            string `json:"endpoint"`
	Bucket              string `json:"bucket"`
	Prefix              string `json:"prefix,omitempty"`
	Region              string `json:"region,omitempty"`
	AccessKeyID         string `json:"access_key_id"`
	SecretAccessKeyFile string `json:"secret_access_key_file,omitempty"`
	// CAFile is a PEM bundle to trust for the endpoint's certificate,
	// instead of the system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// PathStyle addresses the bucket as https://host/bucket (MinIO,
	// versitygw, Ceph, Garage) rather than https://bucket.host (AWS).
	PathStyle bool `json:"path_style,omitempty"`

	// Retention, applied after each copy and by `backups prune` when any
	// is set (package retention): the newest N copies, and the newest of
	// each of the last N days, ISO weeks and months.
	KeepLast    int `json:"keep_last,omitempty"`
	KeepDaily   int `json:"keep_daily,omitempty"`
	KeepWeekly  int `json:"keep_weekly,omitempty"`
	KeepMonthly int `json:"keep_monthly,omitempty"`

	// ObjectLockDays, when > 0, makes every copy immutable for that many
	// days (S3 Object Lock; the bucket must have been created with Object
	// Lock enabled). ObjectLockMode is "GOVERNANCE" (default: users with
	// s3:BypassGovernanceRetention may still delete) or "COMPLIANCE" (nobody
	// may, not even the account's root, until the date).
	ObjectLockDays int    `json:"object_lock_days,omitempty"`
	ObjectLockMode string `json:"object_lock_mode,omitempty"`

	// PartSize of multipart uploads in bytes (0: 16 MiB; at least 5 MiB,
	// the S3 minimum). Not a documented key: tests and benchmarks.
	PartSize int64 `json:"part_size,omitempty"`
}

// Secret is a credential that prints as "<redacted>" in any format, so
// that a %v of a struct holding it cannot leak it.
type Secret string

func (Secret) String() string   { return "<redacted>" }
func (Secret) GoString() string { return "<redacted>" }

// MarshalJSON never writes the secret.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"<redacted>"`), nil }

// Validate checks the config's shape (not the store: Open does not
// connect).
func (c Config) Validate() error {
	if errs := c.Problems(); len(errs) > 0 {
		return fmt.Errorf("remote: %w", errors.Join(errs...))
	}
	return nil
}

// Problems lists every problem of the config's shape, one error each,
// for check-config to print one per line.
func (c Config) Problems() []error {
	var errs []error
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New(`endpoint is required ("https://host:port")`))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil:
		errs = append(errs, fmt.Errorf(`endpoint %q: want "https://host:port" (no path, no user)`, redactURL(c.Endpoint)))
	}
	switch {
	case c.Bucket == "":
		errs = append(errs, errors.New("bucket is required"))
	case !validBucket(c.Bucket):
		// Every S3 store refuses it, on every attempt: say so at start.
		errs = append(errs, fmt.Errorf("bucket %q: an S3 bucket name is 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", c.Bucket))
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "..") {
		errs = append(errs, fmt.Errorf("prefix %q: a relative path without ..", c.Prefix))
	}
	if c.AccessKeyID == "" {
		errs = append(errs, errors.New("access_key_id is required"))
	}
	if c.ObjectLockDays < 0 {
		errs = append(errs, fmt.Errorf("object_lock_days %d: must be >= 0", c.ObjectLockDays))
	}
	if m := strings.ToUpper(c.ObjectLockMode); m != "" && m != "GOVERNANCE" && m != "COMPLIANCE" {
		errs = append(errs, fmt.Errorf("object_lock_mode %q: GOVERNANCE or COMPLIANCE", c.ObjectLockMode))
	}
	if c.PartSize != 0 && c.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("part_size %d: at least %d", c.PartSize, minPartSize))
	}
	for k, v := range map[string]int{"keep_last": c.KeepLast, "keep_daily": c.KeepDaily, "keep_weekly": c.KeepWeekly, "keep_monthly": c.KeepMonthly} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must be >= 0", k, v))
		}
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		}
	}
	return errs
}

// LoadSecret reads the secret access key: the file when configured (its
// first line), else $A0_REMOTE_SECRET_ACCESS_KEY.
func (c Config) LoadSecret(getenv func(string) string) (Secret, error) {
	if c.SecretAccessKeyFile != "" {
		b, err := os.ReadFile(c.SecretAccessKeyFile)
		if err != nil {
			return "", fmt.Errorf("remote: secret_access_key_file: %w", err)
		}
		s, _, _ := strings.Cut(string(b), "\n")
		s = strings.TrimSpace(s)
		if s == "" {
			return "", fmt.Errorf("remote: secret_access_key_file %s is empty", c.SecretAccessKeyFile)
		}
		return Secret(s), nil
	}
	if s := strings.TrimSpace(getenv(SecretEnv)); s != "" {
		return Secret(s), nil
	}
	return "", fmt.Errorf("remote: no secret access key: set secret_access_key_file or $%s", SecretEnv)
}

// redactURL drops a user:password an endpoint should not have had.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "<unparsable endpoint>" // it may hold a user:password
		}
		return s
	}
	if u.User != nil {
		u.User = url.User("<redacted>")
	}
	return u.String()
}

// validBucket is the S3 bucket naming rule every store shares.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, r := range b {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '.' || r == '-') && i > 0 && i < len(b)-1:
		default:
			return false
		}
	}
	return true
}
