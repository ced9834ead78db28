#!/usr/bin/env bash
# The main job on one machine, on SQLite: a benchmark runs under an
# exclusive lease, another writer is refused with the reason, and the lease
# is released when the benchmark ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFL_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
FL="$PWD/build/release/fleetlease"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLEETLEASE_DB="$work/leases.db"
export XDG_CACHE_HOME="$work/cache"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "chat service checks gpu-01 before dispatching: free"
"$FL" check gpu-01 --writer chat

step "a benchmark takes gpu-01 exclusively for 3 seconds of work"
"$FL" run gpu-01 --holder bench-1 --purpose "nightly bench" --ttl 6s -- sh -c '
  echo "bench: measuring on $FLEETLEASE_PROVIDER with fence $FLEETLEASE_FENCE"
  echo "bench: meanwhile the chat service asks:"
  if "$0" check gpu-01 --writer chat; then echo "UNEXPECTED: chat was allowed"; exit 1; fi
  echo "bench: and the coding agent tries to take the host:"
  "$0" acquire gpu-01 --holder coder --purpose "code review" --mode shared || true
  sleep 3
  echo "bench: done"' "$FL"

step "after the benchmark: released, chat may dispatch again"
"$FL" check gpu-01 --writer chat
"$FL" list

step "the audit trail"
"$FL" history gpu-01
