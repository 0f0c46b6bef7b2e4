#!/usr/bin/env bash
# The main job end to end against the embedded local appliance: start a node
# with sample data, register a CLI key, take a backup, check its status,
# retrieve it, check its md5, verify it offline, then restore it into a
# second, empty node and compare. Everything lives under ./demo (removed
# first). Environment: A0_DEMO_USERS (default 2000), A0_DEMO_PORT (10121).
set -euo pipefail
cd "$(dirname "$0")/.."
users=${A0_DEMO_USERS:-2000}
port=${A0_DEMO_PORT:-10121}
port2=$((port + 1))

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build"
go build -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

rm -rf demo && mkdir -p demo/device demo/workstation
export A0CLI_HOME="$PWD/demo/cli"
# A password from the environment never shows in the process listing.
export A0_BACKUP_PASSWORD="demo-Passw0rd-$(date +%s)"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

say "seed the node's embedded database with $users users"
a0agent seed --state-dir demo/node1 --users "$users"

say "start the node agent (HTTPS on 127.0.0.1:$port)"
a0agent --state-dir demo/node1 --listen "127.0.0.1:$port" 2>demo/node1.log &
pids+=($!)
for _ in $(seq 100); do grep -q "a0agent listening" demo/node1.log 2>/dev/null && break; sleep 0.1; done

say "create this workstation's key and register it on the node"
a0cli create-key
a0agent authorize --state-dir demo/node1 demo-operator "$(a0cli show-key)"
a0cli -t 127.0.0.1 -p "$port" ping

say "give the node the backup role"
a0cli -t 127.0.0.1 -p "$port" set-as-backup "$PWD/demo/device"
a0cli -t 127.0.0.1 -p "$port" node-status

say "back up"
a0cli -t 127.0.0.1 -p "$port" backup
a0cli -t 127.0.0.1 -p "$port" backup-status
while a0cli -t 127.0.0.1 -p "$port" backup-status | grep -q '"Backup in progress"'; do sleep 0.5; done
status=$(a0cli -t 127.0.0.1 -p "$port" backup-status)
echo "$status"
echo "$status" | grep -q '"Backup found"' || { echo "backup did not complete"; exit 1; }

say "retrieve it and check its md5"
(cd demo/workstation && a0cli -t 127.0.0.1 -p "$port" backup-retrieve)
want=$(echo "$status" | sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p')
got=$(md5sum demo/workstation/backup-retrieve.tar.gz.enc | cut -d' ' -f1)
echo "md5 from backup-status: $want"
echo "md5 of the file:        $got"
[ "$want" = "$got" ] || { echo "md5 mismatch"; exit 1; }

say "verify it offline (every MAC, the manifest)"
a0cli verify demo/workstation/backup-retrieve.tar.gz.enc

say "restore it into a second, empty node"
a0agent --state-dir demo/node2 --listen "127.0.0.1:$port2" 2>demo/node2.log &
pids+=($!)
for _ in $(seq 100); do grep -q "a0agent listening" demo/node2.log 2>/dev/null && break; sleep 0.1; done
a0agent authorize --state-dir demo/node2 demo-operator "$(a0cli show-key)"
a0cli -t 127.0.0.1 -p "$port2" restore demo/workstation/backup-retrieve.tar.gz.enc

say "done: backup cycle and restore completed"
