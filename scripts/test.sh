#!/usr/bin/env bash
# The whole test suite (the README's test command; CI runs it too).
# Includes short fuzzing of the file-format, archive and API decoders.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -timeout 15m ./...
for target in "FuzzReader ./internal/crypt" "FuzzReader ./internal/archive" "FuzzReader ./internal/dumparchive" "FuzzDecodeRequest ./internal/agent"; do
  set -- $target
  echo "fuzzing $1 in $2 for 5s"
  go test -run '^$' -fuzz "^$1\$" -fuzztime 5s -fuzzminimizetime 2s "$2"
done
