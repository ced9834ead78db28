#!/usr/bin/env bash
# Build and run the whole test suite, on SQLite and on a throwaway
# PostgreSQL 15 (initdb in a temp dir, loopback only, stopped at exit).
# Two builds: the normal one, and ASan+UBSan.  Both with the debug hooks
# (fault points) the tests need; release builds do not have them.
# With CI=true a PostgreSQL that cannot be started fails the run;
# otherwise its tests are reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
# Most tests wait (for minute boundaries, timeouts, servers) rather than
# compute: the suite uses about a sixth of two cores.  One test more than
# cores keeps the long waiters (the overnight smoke, the schedules) from
# holding every slot; tests that time races still run alone (RUN_SERIAL).
tjobs=$(( jobs + 1 ))

pgdir=""
cleanup() { [ -n "$pgdir" ] && tests/pg-server.sh stop "$pgdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ]; then
  pgdir=$(mktemp -d /tmp/fleetlease-pg.XXXXXX)
  if url=$(tests/pg-server.sh start "$pgdir"); then
    export DATABASE_URL="$url"
    export FL_PG_DIR="$pgdir"
    echo "test: PostgreSQL at $DATABASE_URL"
  else
    if [ "${CI:-}" = "true" ]; then
      echo "test: FAILED to start PostgreSQL, and CI=true requires it" >&2
      exit 1
    fi
    echo "test: PostgreSQL could not be started; its tests will be SKIPPED" >&2
    pgdir=""
  fi
fi

status=0
for variant in normal asan; do
  dir=build/test-$variant
  extra=()
  [ $variant = asan ] && extra=(-DFL_SANITIZE=ON)
  cmake -S . -B $dir -DCMAKE_BUILD_TYPE=Debug -DFL_DEBUG_HOOKS=ON "${extra[@]}" >/dev/null
  cmake --build $dir -j"$jobs" >/dev/null
  echo "test: running the suite ($variant build)"
  # Tests that load both cores or time races run alone (RUN_SERIAL); the
  # rest $tjobs at a time.  The sanitizer build repeats what exercises the
  # code paths (unit, conformance, CLI, run, HTTP, writers, gateway), not
  # the long races, the browser, the install or the overnight smoke.
  label=()
  [ $variant = asan ] && label=(-LE "slow|chromium|race|install|smoke")
  (cd $dir && ctest -j"$tjobs" --output-on-failure "${label[@]}") || status=1
done
# ctest hides the output of passing tests: show the checkers' verdicts.
grep -h 'operations checked\|grants, .* overlaps\|broken-decide: ' build/test-normal/Testing/Temporary/LastTest.log || true
tests/fuzz/run.sh 5 || [ $? -eq 77 ] || status=1
exit $status
