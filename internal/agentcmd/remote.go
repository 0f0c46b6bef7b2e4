package agentcmd

import (
	"os"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/retention"
)

// remoteConfig opens the config's remote store for the agent: the secret
// is read here, from secret_access_key_file or $A0_REMOTE_SECRET_ACCESS_KEY,
// and lives only inside the store's client.
func remoteConfig(cfg *agent.Config, rc *remote.Config) error {
	if rc == nil {
		return nil
	}
	secret, err := rc.LoadSecret(os.Getenv)
	if err != nil {
		return err
	}
	st, err := remote.OpenS3(*rc, secret)
	if err != nil {
		return err
	}
	cfg.Remote = st
	cfg.Retention = retention.Policy{Last: rc.KeepLast, Daily: rc.KeepDaily, Weekly: rc.KeepWeekly, Monthly: rc.KeepMonthly}
	return nil
}
