// Package metrics owns the agent's Prometheus metrics (a0_*): what the last
// successful and failed backups were (persisted, so an agent restart does
// not make a healthy node look as if it never backed up), and, read at
// scrape time from the agent, the running job and its progress, the stored
// backup and the backup device's space. The agent serves them only when its
// config sets "metrics_listen". docs/operations.md lists the metrics and
// example alert rules.
package metrics
