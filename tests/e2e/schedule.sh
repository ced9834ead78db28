#!/usr/bin/env bash
# tests/e2e/schedule.sh DBURL BINARY -- `fleetlease schedule` and the
# daemon's scheduler, end to end (issue 7).
#
# DBURL: "sqlite:tmp" (a fresh SQLite file) or "env:VAR" (exit 77 when
# $VAR is unset).  Checks the CLI (add/list/rm/runs, --json, refusals with
# the position of a cron error, named zones refused), then starts two
# daemons on the store and waits for one minute boundary, at which five
# schedules fall due:
#   ok       runs, sees FLEETLEASE_PROVIDER/TOKEN/FENCE, exits 0
#   held     its only host is held by someone else: skipped after max-wait
#   multi    first host held, second free: runs on the second
#   overrun  killed at max-run: failed, exit 124
#   fails    exits 3: failed, with its last output line
# and each ran exactly once across the two daemons.  Then (SQLite only,
# on two more store files, at the next minute) a daemon is stopped while a
# job runs (the run is recorded as failed, stopped; the lease released),
# and a SIGKILLed daemon's run is marked lost by the next daemon.
set -euo pipefail
export LC_ALL=C
DBURL=${1:?usage: schedule.sh DBURL BINARY}
BIN=${2:?usage: schedule.sh DBURL BINARY}
case $DBURL in
env:*)
    var=${DBURL#env:}
    DBURL=${!var:-}
    [[ -n $DBURL ]] || { echo "SKIP: \$$var is not set" >&2; exit 77; }
    ;;
esac
command -v jq >/dev/null || { echo "FAIL: jq is required" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=own_db.sh
. "$HERE/own_db.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/fl-sched.XXXXXX")
PIDS=()
SFX="$$.$RANDOM"
if [[ $DBURL == sqlite:tmp ]]; then
    DBURL=$T/leases.db
else
    own_db "$DBURL"
fi
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
unset FLEETLEASE_DB DATABASE_URL FLEETLEASE_HOLDER FLEETLEASE_WRITER
mkdir -p "$HOME"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
STEP=""
NAMES=()

fl() { "$BIN" --db "$DBURL" "$@"; }
cleanup() {
    local rc=$? p n
    for n in "${NAMES[@]}"; do fl schedule rm "$n" >/dev/null 2>&1 || true; done
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    drop_own_db
    [[ $rc -ne 0 && -n ${KEEP_T:-} ]] && echo "sandbox kept: $T" >&2 || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() {
    echo "FAIL [$STEP]: $*" >&2
    local f
    for f in "$T"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    exit 1
}
step() { STEP=$*; echo "== $*" >&2; }
# expect CODE CMD...: run, and fail unless it exits CODE; output in $OUT, $ERR.
expect() {
    local want=$1 rc=0
    shift
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
    [[ $rc -eq $want ]] || fail "'$*' exited $rc, want $want: $ERR"
}

step "schedule add refuses bad input, naming the field (and the column)"
expect 64 fl schedule add x --cron "0 25 * * *" --provider g --purpose p -- true
[[ $ERR == *"cron: field 2 (hour) at column 3: 25 is out of range 0-23"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "0 2 * * mon-funday" --provider g --purpose p -- true
[[ $ERR == *"field 5 (day-of-week) at column 13: unknown name"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@reboot" --provider g --purpose p -- true
[[ $ERR == *"unknown macro"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --tz Europe/Berlin --provider g --purpose p -- true
[[ $ERR == *"named zones are not supported"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --provider g -- true
[[ $ERR == *"missing --purpose"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --provider g --purpose p
[[ $ERR == *"missing CMD"* ]] || fail "$ERR"
expect 64 fl schedule add "bad name" --cron "@daily" --provider g --purpose p -- true
[[ $ERR == *"name: must be"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --provider "g,bad id" --purpose p -- true
[[ $ERR == *"provider: must be"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --provider g --purpose p --max-run 0 -- true
[[ $ERR == *"max-run: must be a duration between 1s"* ]] || fail "$ERR"
expect 64 fl schedule add x --cron "@daily" --provider g --purpose p --limit 3 -- true
expect 64 fl schedule frob
expect 64 fl schedule add x --cron "0 25 * * *" --provider g --purpose p --json -- true
[[ $(jq -r .error <<<"$OUT") == usage ]] || fail "--json error: $OUT"

step "add, list, runs, rm (text and --json)"
expect 0 fl schedule add "nightly-$SFX" --cron "0 2 * * *" --tz +05:30 --provider a,b \
    --purpose "nightly bench" --max-wait 2h --max-run 4h -- ./bench.sh --full "two words"
NAMES+=("nightly-$SFX")
[[ $OUT == *"scheduled nightly-$SFX"*"next run: "*"T20:30:00.000Z"* ]] || fail "$OUT"
expect 0 fl schedule list --json
j=$(jq --arg n "nightly-$SFX" '.[] | select(.name == $n)' <<<"$OUT")
[[ $(jq -c .command <<<"$j") == '["./bench.sh","--full","two words"]' ]] || fail "$j"
[[ $(jq -c .providers <<<"$j") == '["a","b"]' ]] || fail "$j"
[[ $(jq -r '.holder, .max_wait_ms, .max_run_ms, .ttl_ms, .tz' <<<"$j" | tr '\n' ' ') == \
   "schedule:nightly-$SFX 7200000 14400000 30000 +05:30 " ]] || fail "$j"
[[ $(jq -r .next_due_at <<<"$j") == *T20:30:00.000Z ]] || fail "$j"
expect 0 fl schedule list
[[ $OUT == *"nightly-$SFX"*"0 2 * * *"*"+05:30"*"a,b"*"./bench.sh --full 'two words'"* ]] || fail "$OUT"
expect 0 fl schedule runs "nightly-$SFX" --json
[[ $OUT == "[]" ]] || fail "$OUT"
expect 0 fl schedule rm "nightly-$SFX"
expect 76 fl schedule rm "nightly-$SFX"
[[ $ERR == *"no schedule named"* ]] || fail "$ERR"

step "five schedules due at the next minute, two daemons"
P="gpu.s.$SFX"
fl acquire "$P-held" --purpose "held by a human" --holder alice --ttl 5m >/dev/null
add() {
    local name=$1
    shift
    expect 0 fl schedule add "$name-$SFX" --cron "* * * * *" "$@"
    NAMES+=("$name-$SFX")
}
add ok --provider "$P-ok" --purpose "ok run" --max-wait 10s -- \
    sh -c 'echo "env $FLEETLEASE_PROVIDER ${#FLEETLEASE_TOKEN} $FLEETLEASE_FENCE" >"$0"' "$T/ok.env"
add held --provider "$P-held" --purpose held --max-wait 3s -- true
add multi --provider "$P-held,$P-free" --purpose multi --max-wait 20s -- true
add overrun --provider "$P-over" --purpose overrun --max-run 2s --ttl 4s -- sleep 60
add fails --provider "$P-fail" --purpose fails -- sh -c 'echo "it broke" >&2; exit 3'
for d in 1 2; do
    "$BIN" --db "$DBURL" serve --listen 127.0.0.1:0 2>"$T/serve$d.log" &
    PIDS+=($!)
done
# Wait for the first due minute to pass and its runs to end.
sleep $(( 62 - 10#$(date +%S) ))
for _ in $(seq 1 40); do
    fl schedule runs --json --limit 100 >"$T/runs.json"
    n=$(jq --arg s "$SFX" '[.[] | select((.name | endswith($s)) and .outcome != "running")] | length' "$T/runs.json")
    ((n >= 5)) && break
    sleep 1
done
# The first due instant of each: its runs only (later minutes may have begun).
due=$(jq --arg s "$SFX" '[.[] | select(.name | endswith($s)) | .due_at_ms] | min' "$T/runs.json")
run() { jq --arg n "$1-$SFX" --argjson d "$due" '[.[] | select(.name == $n and .due_at_ms == $d)]' "$T/runs.json"; }
for n in ok held multi overrun fails; do
    [[ $(run $n | jq length) == 1 ]] || fail "$n: expected exactly one run at $due: $(run $n)"
done
[[ $(run ok | jq -r '.[0].outcome') == ok ]] || fail "ok: $(run ok)"
[[ $(run ok | jq -r '.[0].exit_status') == 0 ]] || fail "ok: $(run ok)"
[[ $(run ok | jq -r '.[0].provider') == "$P-ok" ]] || fail "ok: $(run ok)"
fence=$(run ok | jq -r '.[0].fence')
[[ $(cat "$T/ok.env") == "env $P-ok 32 $fence" ]] || fail "ok env: $(cat "$T/ok.env") (fence $fence)"
[[ $(run held | jq -r '.[0].outcome') == skipped ]] || fail "held: $(run held)"
[[ $(run held | jq -r '.[0].detail') == *"not granted within max-wait 3s"*"host leased for held by a human by alice"* ]] ||
    fail "held: $(run held)"
[[ $(run multi | jq -r '.[0].outcome + " " + .[0].provider') == "ok $P-free" ]] || fail "multi: $(run multi)"
[[ $(run overrun | jq -r '.[0].outcome + " " + (.[0].exit_status | tostring)') == "failed 124" ]] ||
    fail "overrun: $(run overrun)"
[[ $(run overrun | jq -r '.[0].detail') == *"stopped at max-run (2s)"* ]] || fail "overrun: $(run overrun)"
[[ $(run fails | jq -r '.[0].outcome + " " + (.[0].exit_status | tostring)') == "failed 3" ]] ||
    fail "fails: $(run fails)"
[[ $(run fails | jq -r '.[0].detail') == *"last output: it broke"* ]] || fail "fails: $(run fails)"
expect 0 fl schedule runs "ok-$SFX"
[[ $OUT == *"ok-$SFX"*"$P-ok"*" ok "* ]] || fail "$OUT"
for n in "${NAMES[@]}"; do fl schedule rm "$n" >/dev/null 2>&1 || true; done
NAMES=()

for p in "${PIDS[@]}"; do kill -TERM "$p"; wait "$p" || fail "serve did not exit 0"; done
PIDS=()
if [[ $DBURL != "$T/leases.db" ]]; then
    echo "   (the daemon lifecycle steps run on SQLite only)" >&2
else
step "a daemon stopped during a run; a SIGKILLed daemon's run marked lost"
# Two more stores, so that each daemon surely claims its own run at the
# same minute boundary.
DB2=$T/stop.db DB3=$T/kill.db
"$BIN" --db "$DB2" schedule add long --cron "* * * * *" --provider "$P-long" --purpose long \
    -- sleep 300 >/dev/null
"$BIN" --db "$DB3" schedule add long --cron "* * * * *" --provider "$P-long" --purpose long \
    -- sleep 300 >/dev/null
"$BIN" --db "$DB2" serve --listen 127.0.0.1:0 2>"$T/serve-stop.log" &
stop_pid=$!
"$BIN" --db "$DB3" serve --listen 127.0.0.1:0 2>"$T/serve-kill.log" &
kill_pid=$!
PIDS+=("$stop_pid" "$kill_pid")
for _ in $(seq 1 75); do
    grep -q 'event=job_started schedule=long' "$T/serve-stop.log" &&
        grep -q 'event=job_started schedule=long' "$T/serve-kill.log" && break
    sleep 1
done
grep -q 'event=job_started schedule=long' "$T/serve-stop.log" || fail "the long job did not start (stop)"
grep -q 'event=job_started schedule=long' "$T/serve-kill.log" || fail "the long job did not start (kill)"
kill -TERM "$stop_pid"
wait "$stop_pid" || fail "serve did not exit 0 after SIGTERM"
"$BIN" --db "$DB2" schedule runs long --json >"$T/out" || fail "runs"
[[ $(jq -r '.[0].outcome' "$T/out") == failed ]] || fail "$(cat "$T/out")"
[[ $(jq -r '.[0].detail' "$T/out") == *"stopped: the daemon shut down"* ]] || fail "$(cat "$T/out")"
[[ $("$BIN" --db "$DB2" list "$P-long") == *"no live leases"* ]] || fail "the lease was not released"

# The killed daemon's child: the job's `fleetlease run` wrapper, which
# outlives it and is stopped here by its pid.
wrapper=$(pgrep -P "$kill_pid" | head -n1 || true)
[[ -n $wrapper ]] || fail "no wrapper process under the daemon"
kill -KILL "$kill_pid"
wait "$kill_pid" 2>/dev/null || true
PIDS=()
"$BIN" --db "$DB3" schedule rm long >/dev/null
kill -TERM "$wrapper"
"$BIN" --db "$DB3" serve --listen 127.0.0.1:0 2>"$T/serve-after.log" &
PIDS+=($!)
for _ in $(seq 1 50); do
    grep -q 'event=run_lost' "$T/serve-after.log" && break
    sleep 0.1
done
"$BIN" --db "$DB3" schedule runs long --json >"$T/out" || fail "runs"
[[ $(jq -r '.[0].outcome' "$T/out") == lost ]] || fail "$(cat "$T/out")"
[[ $(jq -r '.[0].detail' "$T/out") == *"is gone"* ]] || fail "$(cat "$T/out")"
fi

step "no sanitizer report"
for f in "$T"/*.log; do
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
        fail "sanitizer report in $(basename "$f"): $(grep -m3 -E 'Sanitizer|runtime error' "$f")"
    fi
done
echo "PASS" >&2
