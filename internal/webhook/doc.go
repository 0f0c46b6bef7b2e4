// Package webhook posts one JSON line per finished or failed job (and per
// skipped scheduled run) to the HTTPS URL of the agent's config
// ("webhook"), so that unattended backups tell someone when they stop
// working. Posting never blocks the job: events are queued and sent by a
// goroutine of their own; a receiver that is down is logged, never an
// error of the backup. Events carry no password, key or URL credential,
// and the URL (which may hold a token, as chat webhooks do) is never
// logged beyond its scheme and host.
package webhook
