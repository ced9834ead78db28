#!/usr/bin/env bash
# tests/e2e/pg_outage.sh BIN -- the PostgreSQL store through a restart and an
# outage, against the throwaway server of scripts/test.sh (FL_PG_DIR names its
# directory, DATABASE_URL its URL; skipped with 77 when either is unset).
#   1. restart while a lease is held: the lease survives (same fence) and the
#      holder's heartbeat reconnects (heartbeat_at moves after the restart);
#   2. stop the server past the TTL: `fleetlease run` kills its job before the
#      lease's expires_at in the store (same machine, so same clock), exits 76;
#      `check` answers from the last state read, stale, while that state
#      holds, then fails open, loudly.
# It restarts the shared server: ctest runs it alone (RUN_SERIAL).
set -euo pipefail
BIN=$1
if [[ -z ${DATABASE_URL:-} || -z ${FL_PG_DIR:-} ]]; then
    echo "SKIP: needs DATABASE_URL and FL_PG_DIR (the server of scripts/test.sh)" >&2
    exit 77
fi
HERE=$(cd "$(dirname "$0")/.." && pwd)
PGS="$HERE/pg-server.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/fl-pgout.XXXXXX")
export HOME=$T XDG_CACHE_HOME=$T/cache FLEETLEASE_DB=$DATABASE_URL
unset FLEETLEASE_DEBUG_FAULTS FLEETLEASE_WRITER
P="gpu-outage.$$"
RUN_PID=""
cleanup() {
    [[ -n $RUN_PID ]] && kill -KILL "$RUN_PID" 2>/dev/null || true
    [[ -f $T/pgid ]] && kill -KILL -- "-$(cat "$T/pgid")" 2>/dev/null || true
    "$PGS" restart "$FL_PG_DIR" >/dev/null 2>&1 || true  # leave the server up
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.err; do [[ -e $f ]] && { echo "--- $f"; cat "$f"; }; done >&2; exit 1; }
now_ms() { date +%s%3N; }
lease() { "$BIN" list "$P" --json | jq -r ".[0].$1 // empty"; }

"$BIN" run "$P" --holder bench-1 --purpose "outage test" --ttl 4s -- \
    sh -c 'echo $$ > "$0/pgid"; exec sleep 1000' "$T" 2>"$T/run.err" &
RUN_PID=$!
for _ in $(seq 100); do [[ -s $T/pgid ]] && break; sleep 0.05; done
[[ -s $T/pgid ]] || fail "run did not start its job"
fence=$(lease fence)
[[ $fence =~ ^[0-9]+$ ]] || fail "no lease listed"
"$BIN" check "$P" --writer chat >/dev/null && fail "check allowed a foreign writer"

echo "== 1. restart while held" >&2
hb0=$(lease heartbeat_at_ms)
"$PGS" restart "$FL_PG_DIR" >/dev/null 2>"$T/pg.err" || fail "restart failed"
t_restart=$(now_ms)
sleep 3.5   # > one heartbeat interval (ttl/3) plus the reconnect back-off
kill -0 "$RUN_PID" 2>/dev/null || fail "run died across a server restart"
[[ $(lease fence) == "$fence" ]] || fail "fence changed across the restart"
hb1=$(lease heartbeat_at_ms)
((hb1 > t_restart && hb1 > hb0)) || fail "no heartbeat after the restart (hb $hb0 -> $hb1, restart at $t_restart)"
echo "lease survived (fence $fence), heartbeat reconnected" >&2

echo "== 2. server down past the ttl" >&2
out=$("$BIN" check "$P" --writer chat --json) && fail "check allowed a foreign writer"
exp=$(lease expires_at_ms)
"$PGS" kill "$FL_PG_DIR" >/dev/null 2>>"$T/pg.err"
# No renew can land now: $exp (read just before) bounds the store's expiry
# from above; one may have landed between the read and the kill, which only
# makes the true expiry later, never earlier.
pgid=$(cat "$T/pgid")
died=""
t0=$(now_ms)
while (($(now_ms) - t0 < 10000)); do
    if ! kill -0 -- "-$pgid" 2>/dev/null; then died=$(now_ms); break; fi
    sleep 0.01
done
[[ -n $died ]] || fail "job alive 10s after the store went down"
((died < exp)) || fail "job died at $died, not before the lease's expiry $exp"
echo "job stopped $((exp - died)) ms before the store's expiry" >&2
rc=0; wait "$RUN_PID" || rc=$?; RUN_PID=""
((rc == 76)) || fail "run exit $rc, want 76 (lease lost)"
grep -q "lost" "$T/run.err" || fail "run did not say why it stopped"

# The store is still down.  Before the cached lease's expiry: refused, stale.
if (($(now_ms) < exp - 300)); then
    rc=0; out=$("$BIN" check "$P" --writer chat --json 2>"$T/check.err") || rc=$?
    ((rc == 75)) || fail "stale check before expiry: exit $rc, want 75: $out"
    [[ $(jq -r .stale <<<"$out") == true ]] || fail "stale check not marked stale: $out"
    grep -qi "unreachable" "$T/check.err" || fail "no warning for a stale answer"
fi
while (($(now_ms) <= exp + 50)); do sleep 0.05; done
rc=0; out=$("$BIN" check "$P" --writer chat --json 2>"$T/check2.err") || rc=$?
((rc == 0)) || fail "check after the cached state expired: exit $rc, want 0 (fail open): $out"
[[ $(jq -r .stale <<<"$out") == true && $(jq -r .fail_open <<<"$out") == true ]] ||
    fail "fail-open answer not marked: $out"
grep -qi "open" "$T/check2.err" || fail "failing open without a loud warning"

"$PGS" restart "$FL_PG_DIR" >/dev/null 2>>"$T/pg.err" || fail "server did not come back"
rc=0; "$BIN" acquire "$P" --holder b --purpose after --ttl 5s >/dev/null 2>"$T/acq.err" || rc=$?
((rc == 0)) || fail "acquire after the outage: exit $rc"
echo "PASS pg_outage" >&2
