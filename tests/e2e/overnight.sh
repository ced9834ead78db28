#!/usr/bin/env bash
# tests/e2e/overnight.sh -- the overnight smoke of issue 7, compressed.
#
#   overnight.sh [--hours N | --minutes N] BINARY PROVIDERSIM
#
# Runs, against the PostgreSQL of $DATABASE_URL (unset: skipped, exit 77;
# with CI=true unset is a failure):
#   - the provider simulator (tests/e2e/providersim.c: one model at a time,
#     swapped at once, every request and eviction logged);
#   - two `fleetlease serve` daemons sharing the store (both run schedules);
#   - a `fleetlease gateway` in front of the simulator;
#   - writers chat, coder and arena, each with its own model, sending
#     continuous streamed traffic through the gateway.  They take turns at
#     the host (a file lock, one request at a time): the simulator swaps
#     models at once, so writers with different models sending at the same
#     moment would evict each other -- what this test must catch is the
#     benchmark doing it;
#   - a benchmark scheduled every minute (`fleetlease schedule add`) that
#     uses its own model and runs examples/concurrency-sweep.sh (wrk, with
#     the lease token) at concurrency 1, 2 and 4 through the gateway.
# Default (no option): 4 due runs, about 5 minutes; --minutes N: N due
# runs; --hours N: N*60 due runs (a real night).
#
# Asserts:
#   - every due run happened exactly once (and nothing else ran), with
#     outcome ok, across both daemons;
#   - every run's isolation report says concurrent_foreign_requests=0, and
#     the simulator's log agrees: no request without the lease reached the
#     host inside an exclusive window [granted, released] (store clock;
#     same host), and the holder's requests it saw match holder_requests;
#   - no eviction hit a model with requests in flight;
#   - each run was granted within its max-wait of its due time;
#   - during each run every writer was refused with "host leased for", and
#     after each release every writer reached the host again within 2 s;
#   - every sweep level answered only 2xx; no sanitizer report in any log.
# Prints a summary (runs, claims per daemon, wait and window lengths,
# refusals, sweep rates); KEEP_T=1 keeps the sandbox on failure.
set -euo pipefail
export LC_ALL=C

RUNS=4
while [[ $# -gt 0 ]]; do
    case $1 in
    --hours) RUNS=$(( ${2:?--hours N} * 60 )); shift 2 ;;
    --minutes) RUNS=${2:?--minutes N}; shift 2 ;;
    --) shift; break ;;
    -*) echo "usage: overnight.sh [--hours N | --minutes N] BINARY PROVIDERSIM" >&2; exit 64 ;;
    *) break ;;
    esac
done
BIN=${1:?usage: overnight.sh [--hours N | --minutes N] BINARY PROVIDERSIM}
SIM=${2:?usage: overnight.sh [--hours N | --minutes N] BINARY PROVIDERSIM}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "overnight: the number of runs must be positive" >&2; exit 64; }
HERE=$(cd "$(dirname "$0")" && pwd)
SWEEP=$HERE/../../examples/concurrency-sweep.sh

if [[ -z ${DATABASE_URL:-} ]]; then
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: DATABASE_URL is not set and CI=true requires the PostgreSQL smoke" >&2
        exit 1
    fi
    echo "SKIP: DATABASE_URL is not set (the overnight smoke needs PostgreSQL)" >&2
    exit 77
fi
# shellcheck source=own_db.sh
. "$HERE/own_db.sh"
for t in curl jq wrk flock; do
    if ! command -v "$t" >/dev/null; then
        [[ ${CI:-} == true ]] && { echo "FAIL: $t is required" >&2; exit 1; }
        echo "SKIP: $t is required (apt-get install $t)" >&2
        exit 77
    fi
done
[[ -x $BIN && -x $SIM && -x $SWEEP ]] || { echo "FAIL: missing $BIN, $SIM or $SWEEP" >&2; exit 1; }

STEP=""
PIDS=()
T=$(mktemp -d "${TMPDIR:-/tmp}/fl-night.XXXXXX")
NAME="smoke-bench-$$-$RANDOM"
P="gpu.smoke.$$.$RANDOM"
MAX_WAIT_S=40
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
unset FLEETLEASE_DB FLEETLEASE_HOLDER FLEETLEASE_WRITER
# A database of its own (when the server allows): no other daemon may run
# this test's schedule.
own_db "$DATABASE_URL"
mkdir -p "$HOME"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"

fl() { "$BIN" --db "$DBURL" "$@"; }

cleanup() {
    local rc=$? p
    touch "$T/stop"
    # The schedule lives in a shared database: never leave it behind.
    fl schedule rm "$NAME" >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    drop_own_db
    if [[ $rc -ne 0 && -n ${KEEP_T:-} ]]; then
        echo "sandbox kept: $T" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL [$STEP]: $*" >&2
    local f
    for f in "$T"/*.log; do
        [[ -f $f ]] || continue
        echo "--- $(basename "$f") (tail):" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}
step() { STEP=$*; echo "== $(date -u +%H:%M:%S) $*" >&2; }
ms_now() { local t=${EPOCHREALTIME/./}; printf -v "$1" '%s' "$((t / 1000))"; }

# Wait for "event=listening addr=127.0.0.1:PORT" in a log; prints PORT.
port_from_log() {
    local log=$1 pid=$2 i port=""
    for i in $(seq 1 200); do
        port=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n1)
        [[ -n $port ]] && { echo "$port"; return 0; }
        kill -0 "$pid" 2>/dev/null || fail "$(basename "$log" .log) exited at start"
        sleep 0.05
    done
    fail "$(basename "$log" .log) did not log event=listening within 10s"
}

step "start: simulator, two daemons, gateway ($RUNS due runs)"
"$SIM" --listen 127.0.0.1:0 --log "$T/sim.jsonl" --port-file "$T/sim.port" --load-ms 200 \
    --tokens 5 --token-ms 20 --slots 4 >"$T/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s $T/sim.port ]] && break; sleep 0.05; done
[[ -s $T/sim.port ]] || fail "the simulator did not start"
UP=$(cat "$T/sim.port")
for d in 1 2; do
    "$BIN" --db "$DBURL" serve --listen 127.0.0.1:0 2>"$T/serve$d.log" &
    PIDS+=($!)
    port_from_log "$T/serve$d.log" $! >/dev/null
done
"$BIN" --db "$DBURL" gateway "$P" --upstream "http://127.0.0.1:$UP" --listen 127.0.0.1:0 --drain-timeout 20s \
    2>"$T/gateway.log" &
PIDS+=($!)
GW=$(port_from_log "$T/gateway.log" $!)
GWURL="http://127.0.0.1:$GW/v1/chat/completions"

step "writers chat, coder and arena send continuous traffic"
writer() {
    local name=$1 model=$2 fd code t0 t1 msg
    exec {fd}>>"$T/host.lock"
    while [[ ! -e $T/stop ]]; do
        flock -x "$fd"
        ms_now t0
        code=$(curl -sS -o "$T/wb.$name" -w '%{http_code}' --max-time 60 \
            -H "X-Fleet-Writer: $name" -H 'Content-Type: application/json' \
            --data "{\"model\":\"$model\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
            "$GWURL" 2>/dev/null) || code=err
        ms_now t1
        flock -u "$fd"
        msg=""
        [[ $code == 423 ]] && msg=$(jq -r .message "$T/wb.$name" 2>/dev/null || echo '?')
        printf '%s %s %s %s %s\n' "$name" "$t0" "$t1" "$code" "$msg" >>"$T/writers.txt"
        # Let the others take the host; poll faster than Retry-After when
        # refused, to see how soon the host is back.
        sleep 0.05
    done
}
writer chat chat-model &
PIDS+=($!)
writer coder coder-model &
PIDS+=($!)
writer arena arena-model &
PIDS+=($!)
sleep 3
for w in chat coder arena; do
    grep -q "^$w [0-9]* [0-9]* 200 " "$T/writers.txt" || fail "writer $w was not served"
done

step "schedule the benchmark every minute"
cat >"$T/bench.sh" <<EOF
#!/usr/bin/env bash
# A scheduled run: a short concurrency sweep through the gateway, with the
# lease token that \`fleetlease run\` put in FLEETLEASE_TOKEN.
set -u
start=\$(date +%s%3N)
"$SWEEP" --url "$GWURL" --model bench-model --writer bench --levels "1 2 4" --duration 3 \\
    --warmup 1 --out "$T/sweep.csv" --label "\$FLEETLEASE_FENCE" 2>>"$T/bench.err"
rc=\$?
echo "\$FLEETLEASE_FENCE \$start \$(date +%s%3N) \$rc" >>"$T/bench.runs"
exit \$rc
EOF
chmod +x "$T/bench.sh"
fl schedule add "$NAME" --cron "* * * * *" --provider "$P" --purpose "overnight bench" \
    --max-wait "${MAX_WAIT_S}s" --max-run 45s --ttl 10s -- "$T/bench.sh" >"$T/add.out" ||
    fail "schedule add: $(cat "$T/add.out")"
ADDED=$(fl schedule list --json | jq --arg n "$NAME" '.[] | select(.name == $n) | .created_at_ms')
[[ $ADDED =~ ^[0-9]+$ ]] || fail "the schedule is not listed"
# The due instants: the next RUNS whole minutes after the schedule exists.
FIRST=$(( (ADDED / 60000 + 1) * 60000 ))
LAST=$(( FIRST + (RUNS - 1) * 60000 ))
echo "   $NAME on $P: due from $(date -u -d @$((FIRST / 1000)) +%H:%M) to $(date -u -d @$((LAST / 1000)) +%H:%M)" >&2

snapshot_history() {
    fl history "$P" --limit 10000 --json >"$T/hist.$1.json" 2>>"$T/hist.err" || true
}
step "let it run"
n=0
while :; do
    ms_now now
    ((now >= LAST + 5000)) && break
    sleep 5
    n=$((n + 1))
    ((n % 60 == 0)) && snapshot_history "$n"
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || fail "a process (pid $pid) died"
    done
done
# No more due instants from here: remove the schedule, then wait for the
# last run to end (the writers keep going, to see them served again).
fl schedule rm "$NAME" >/dev/null || fail "schedule rm"
ms_now REMOVED
for _ in $(seq 1 120); do
    fl schedule runs "$NAME" --json --limit 10000 >"$T/runs.json"
    [[ $(jq '[.[] | select(.outcome == "running")] | length' "$T/runs.json") == 0 ]] && break
    sleep 1
done
sleep 4
touch "$T/stop"
snapshot_history final
fl schedule runs "$NAME" --json --limit 10000 >"$T/runs.json"
sleep 1

step "every due run happened exactly once, with outcome ok"
jq -e 'length > 0' "$T/runs.json" >/dev/null || fail "no runs recorded"
bad=$(jq --argjson first "$FIRST" --argjson last "$LAST" -r '
    ([range($first; $last + 1; 60000)]) as $due
    | (group_by(.due_at_ms) | map({due: .[0].due_at_ms, n: length})) as $got
    | [ ($due[] | . as $d | select(([$got[] | select(.due == $d)] | length) == 0) | "missing due \(.)"),
        ($got[] | select(.n > 1) | "due \(.due) ran \(.n) times"),
        ($got[] | select(.due < $first or .due > $last) | "unexpected due \(.due)"),
        (.[] | select(.outcome != "ok") | "run \(.id) due \(.due_at_ms): \(.outcome): \(.detail)") ]
    | .[]' "$T/runs.json")
[[ -z $bad ]] || fail "$bad"
[[ $(jq length "$T/runs.json") == "$RUNS" ]] || fail "expected $RUNS runs, got $(jq length "$T/runs.json")"

step "the exclusive windows, from the store's history"
jq -s 'add | unique_by(.id)' "$T"/hist.*.json >"$T/history.json"
# One window per run: the bench's grant and release (store clock).
jq --slurpfile h "$T/history.json" '
    [ .[] | . as $r
      | ($h[0] | map(select(.fence == $r.fence and .mode == "exclusive"))) as $ev
      | { id, due: .due_at_ms, fence, detail, claimed_by,
          granted: ([$ev[] | select(.event == "granted") | .at_ms] | min),
          released: ([$ev[] | select(.event == "released") | .at_ms] | max) } ]' \
    "$T/runs.json" >"$T/windows.json"
bad=$(jq -r '.[] | select(.granted == null or .released == null) | "run \(.id) fence \(.fence): no granted/released event"' "$T/windows.json")
[[ -z $bad ]] || fail "$bad"

step "each run was granted within its max-wait"
bad=$(jq -r --argjson mw $((MAX_WAIT_S * 1000)) '.[] | select(.granted - .due > $mw) | "run \(.id): granted \(.granted - .due) ms after due"' "$T/windows.json")
[[ -z $bad ]] || fail "$bad"

step "isolation: the reports say 0, and the simulator's log agrees"
bad=$(jq -r '.[] | select((.detail | test("concurrent_foreign_requests=0 ")) | not) | "run \(.id): \(.detail)"' "$T/windows.json")
[[ -z $bad ]] || fail "report: $bad"
bad=$(jq -r '.[] | select((.detail | test("gateways=[1-9]")) | not) | "run \(.id): no gateway report: \(.detail)"' "$T/windows.json")
[[ -z $bad ]] || fail "$bad"
jq -s '[.[] | select(.type == "request")]' "$T/sim.jsonl" >"$T/sim.requests.json"
bad=$(jq -r --slurpfile w "$T/windows.json" '
    . as $reqs | $w[0][] | . as $win
    | ($reqs | map(select(.lease == false and .start_ms < $win.released and .end_ms > $win.granted))) as $f
    | select(($f | length) > 0)
    | "run \($win.id) [\($win.granted), \($win.released)]: \($f | length) foreign request(s) at the host, e.g. \($f[0])"' \
    "$T/sim.requests.json")
[[ -z $bad ]] || fail "$bad"
bad=$(jq -r --slurpfile w "$T/windows.json" '
    . as $reqs | $w[0][] | . as $win
    | ($reqs | map(select(.lease == true and .start_ms >= $win.granted and .start_ms <= $win.released)) | length) as $n
    | ($win.detail | capture("holder_requests=(?<h>[0-9]+)").h | tonumber) as $h
    | select($n != $h) | "run \($win.id): the simulator saw \($n) holder requests, the report says \($h)"' \
    "$T/sim.requests.json")
[[ -z $bad ]] || fail "$bad"
bad=$(jq -r '.[] | select(.lease == true and (.writer != "bench")) | "lease header from \(.writer)"' "$T/sim.requests.json" | head -n 3)
[[ -z $bad ]] || fail "$bad"

step "no eviction hit a model with requests in flight"
bad=$(jq -r 'select(.type == "evict" and .in_flight > 0) | "evicted \(.model) with \(.in_flight) in flight (\(.in_flight_writers)) for \(.next) by \(.by_writer)"' "$T/sim.jsonl")
[[ -z $bad ]] || fail "$bad"
EVICTIONS=$(jq -s '[.[] | select(.type == "evict")] | length' "$T/sim.jsonl")
BENCH_EVICTIONS=$(jq -s '[.[] | select(.type == "evict" and .by_lease)] | length' "$T/sim.jsonl")
((BENCH_EVICTIONS >= RUNS)) || fail "the benchmark loaded its model only $BENCH_EVICTIONS times for $RUNS runs"

step "writers were refused during each run and served again within 2 s after it"
jq -R 'split(" ") | {writer: .[0], t0: (.[1] | tonumber), t1: (.[2] | tonumber), code: .[3],
       message: (.[4:] | join(" "))}' "$T/writers.txt" | jq -s . >"$T/writers.json"
bad=$(jq -r --slurpfile wr "$T/writers.json" '
    .[] as $win | ("chat", "coder", "arena") as $w
    | ($wr[0] | map(select(.writer == $w and .code == "423" and .t0 >= $win.granted
                            and .t0 <= $win.released and (.message | startswith("host leased for"))))
              | length) as $n
    | select($n == 0) | "run \($win.id): writer \($w) was never refused with \"host leased for\" in [\($win.granted), \($win.released)]"' \
    "$T/windows.json")
[[ -z $bad ]] || fail "$bad"
bad=$(jq -r --slurpfile reqs "$T/sim.requests.json" '
    .[] as $win | ("chat", "coder", "arena") as $w
    | ([$reqs[0][] | select(.writer == $w and .start_ms >= $win.released) | .start_ms] | min) as $back
    | select($back == null or $back - $win.released > 2000)
    | "run \($win.id): writer \($w) reached the host \(if $back == null then "never" else "\($back - $win.released) ms" end) after the release"' \
    "$T/windows.json")
[[ -z $bad ]] || fail "$bad"
REFUSALS=$(jq '[.[] | select(.code == "423")] | length' "$T/writers.json")
BACK_MAX=$(jq -r --slurpfile reqs "$T/sim.requests.json" '
    [ .[] as $win | ("chat", "coder", "arena") as $w
      | ([$reqs[0][] | select(.writer == $w and .start_ms >= $win.released) | .start_ms] | min) - $win.released ] | max' \
    "$T/windows.json")
bad=$(jq -r '.[] | select(.code != "200" and .code != "423") | "\(.writer) at \(.t0): \(.code) \(.message)"' "$T/writers.json" | head -n 3)
[[ -z $bad ]] || fail "writers got errors: $bad"

step "every sweep level answered only 2xx"
[[ -s $T/sweep.csv ]] || fail "no sweep results"
bad=$(awk -F, 'NR > 1 && ($10 != 0 || $11 != 0) { print "fence " $1 " c=" $2 ": non_2xx=" $10 " socket_errors=" $11 }' "$T/sweep.csv")
[[ -z $bad ]] || fail "$bad"
rows=$(awk -F, 'NR > 1' "$T/sweep.csv" | wc -l)
((rows == RUNS * 3)) || fail "expected $((RUNS * 3)) sweep rows, got $rows"

step "the processes stop cleanly; no sanitizer report"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
for f in "$T"/*.log "$T"/bench.err; do
    [[ -f $f ]] || continue
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
        fail "sanitizer report in $(basename "$f"): $(grep -m3 -E 'Sanitizer|runtime error' "$f")"
    fi
done

echo "== summary" >&2
{
    echo "runs: $RUNS due, $(jq length "$T/runs.json") ran, all ok; claims per daemon: $(jq -r 'group_by(.claimed_by) | map("\(.[0].claimed_by)=\(length)") | join(" ")' "$T/runs.json")"
    echo "granted after due (ms): $(jq -r '[.[] | .granted - .due] | "min \(min) max \(max)"' "$T/windows.json"); exclusive window (ms): $(jq -r '[.[] | .released - .granted] | "min \(min) max \(max)"' "$T/windows.json")"
    echo "writer refusals (423): $REFUSALS; slowest return to the host after a release: $BACK_MAX ms"
    echo "evictions: $EVICTIONS, $BENCH_EVICTIONS by the benchmark, none with requests in flight"
    echo "sweep rps by concurrency (min/max over runs): $(awk -F, 'NR > 1 { k = $2; if (!(k in lo) || $5 < lo[k]) lo[k] = $5; if ($5 > hi[k]) hi[k] = $5 } END { for (k in lo) printf "c=%s %s/%s  ", k, lo[k], hi[k] }' "$T/sweep.csv")"
} >&2
echo "PASS" >&2
