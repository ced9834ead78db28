#!/bin/sh
# tests/stress/broken-decide.sh SRC_DIR BUILD_DIR
#
# Proof that the checker can fail (issue 4): configure and build a separate
# tree with -DFL_BROKEN_DECIDE=ON (fl__decide grants over other holders;
# only SQLite decides with it, PostgreSQL decides in PL/pgSQL), run the
# short workload on SQLite, and require the checker to report violations.
# Only the library and flstress are built, in BUILD_DIR/broken-decide.
set -u
src=${1:?usage: broken-decide.sh SRC_DIR BUILD_DIR}
bin=${2:?usage: broken-decide.sh SRC_DIR BUILD_DIR}/broken-decide
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$src" -B "$bin" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFL_BROKEN_DECIDE=ON \
      -DFL_DEBUG_HOOKS=OFF -DFL_SANITIZE=OFF >"$bin.log" 2>&1 &&
    cmake --build "$bin" -j"$jobs" --target flstress >>"$bin.log" 2>&1 || {
    cat "$bin.log" >&2
    echo "broken-decide: FAILED to build the broken tree" >&2
    exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/fl-broken.XXXXXX") || exit 1
out=$dir/out.txt
FL_TEST_DB="sqlite:$dir/leases.db" "$bin/tests/stress/flstress" --duration 15s --print 5 \
    --log-dir "$dir/logs" >"$out" 2>&1
rc=$?
# Prefixed, so that its verdict line (violations expected) is not read as
# a verdict on the real library in the CI log.
sed "s/^/broken build: /" "$out"
line=$(grep -E '^SQLite: [0-9]+ operations checked, [0-9]+ violations$' "$out" | tail -n 1)
rm -rf "$dir"
m=$(printf '%s\n' "$line" | sed -n 's/.*checked, \([0-9]*\) violations$/\1/p')
if [ -z "$m" ]; then
    echo "broken-decide: FAILED: the checker printed no verdict line (exit $rc)" >&2
    exit 1
fi
if [ "$m" -eq 0 ] || [ "$rc" -eq 0 ]; then
    echo "broken-decide: FAILED: the broken decision went unnoticed ($m violations, exit $rc)" >&2
    exit 1
fi
echo "broken-decide: ok: the checker caught the broken decision ($m violations, exit $rc)"
exit 0
