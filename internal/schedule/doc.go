// Package schedule owns when the agent's scheduled backups run: it parses
// the config's "schedule" ({"every": "24h"} or {"cron": "30 2 * * *"}),
// computes the next run, and decides what a start after downtime does (the
// missed-run rule: runs missed while the agent was down run once, at the
// next start). It also keeps the last run in a small file of the state
// directory, written durably, so that the rule survives a crash.
//
// It knows nothing of backups: the agent runs the job and tells it how the
// run ended.
package schedule
