#!/usr/bin/env bash
# The whole test suite (the README's test command; CI runs it too).
# Includes short fuzzing of the file-format, archive and API decoders.
# Prints the time of each phase and of the whole run: the suite must stay
# under 15 minutes on a clean 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
phase() { echo "== $1: $(( SECONDS - $2 ))s (total $(( SECONDS - start ))s)"; }
t=$SECONDS
go test -count=1 -timeout 15m ./...
phase "go test ./..." "$t"
for target in "FuzzReader ./internal/crypt" "FuzzHeaderV2 ./internal/crypt" "FuzzReader ./internal/archive" "FuzzReader ./internal/dumparchive" "FuzzDecodeRequest ./internal/api" "FuzzPlan ./internal/restore/planfuzz"; do
  set -- $target
  echo "fuzzing $1 in $2 for 5s"
  t=$SECONDS
  # Go's fuzzer can stop with "context deadline exceeded" when its time
  # runs out while it minimizes a new interesting input (no failure found,
  # no crasher written): such a run is tried again, up to three times; a
  # real failure writes testdata/fuzz/... and stops the suite at once.
  for attempt in 1 2 3; do
    if out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime 5s -fuzzminimizetime 2s "$2" 2>&1); then
      echo "$out"
      break
    fi
    echo "$out"
    if ! grep -q 'context deadline exceeded' <<<"$out" || grep -q 'Failing input written' <<<"$out" || [ "$attempt" = 3 ]; then
      exit 1
    fi
    echo "fuzz $1: deadline hit while minimizing, no failing input: running it again"
  done
  phase "fuzz $1 $2" "$t"
done
echo "== whole suite: $(( SECONDS - start ))s"
