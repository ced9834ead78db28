# tests/gateway/lib.sh -- sourced by the tests of `fleetlease gateway`.
#
#   setup DBURL BINARY STUB  resolve the store ("sqlite:tmp": a fresh SQLite
#                            file; "env:VAR": $VAR, exit 77 = skipped when
#                            unset), make the sandbox $T, check the tools;
#                            sets P (a provider id unique to this run)
#   start_stub               the stub upstream; sets UP (port), STUB_LOG
#   start_gateway NAME ARGS  a gateway for $P in front of the stub on a free
#                            port; sets GW_PORT[NAME], GW_PID[NAME], GW_LOG[NAME]
#   start_daemon             `fleetlease serve` on a free port; sets SP
#   stop_gateway NAME        SIGTERM; fails unless it exits 0 within 15 s
#   no_sanitizer_reports     fail if a log shows an ASan/UBSan/LSan report
#
# Processes are stopped by their pids only.
set -euo pipefail

STEP=""
PIDS=()
declare -A GW_PORT GW_PID GW_LOG

fail() {
    echo "FAIL [$STEP]: $*" >&2
    local f
    for f in "$T"/*.log; do
        [[ -f $f ]] || continue
        echo "--- $(basename "$f") (tail):" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

step() { STEP=$*; echo "== $*" >&2; }

setup() {
    DBURL=${1:?usage: SCRIPT DBURL BINARY STUB}
    BIN=${2:-fleetlease}
    STUB=${3:?usage: SCRIPT DBURL BINARY STUB}
    case $DBURL in
    env:*)
        local var=${DBURL#env:}
        DBURL=${!var:-}
        if [[ -z $DBURL ]]; then
            echo "SKIP: \$$var is not set" >&2
            exit 77
        fi
        ;;
    esac
    local t
    for t in curl jq; do
        command -v "$t" >/dev/null || { echo "FAIL: $t is required (apt-get install $t)" >&2; exit 1; }
    done
    [[ -x $BIN ]] || BIN=$(command -v "$BIN") || { echo "FAIL: no fleetlease binary" >&2; exit 1; }
    [[ -x $STUB ]] || { echo "FAIL: no stub upstream at $STUB" >&2; exit 1; }
    T=$(mktemp -d "${TMPDIR:-/tmp}/fl-gw.XXXXXX")
    trap cleanup EXIT
    if [[ $DBURL == sqlite:tmp ]]; then
        DBURL=$T/leases.db
    fi
    export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
    unset FLEETLEASE_DB DATABASE_URL FLEETLEASE_HOLDER FLEETLEASE_WRITER
    mkdir -p "$HOME"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
    SFX="gw.$$.$RANDOM"
    P="gpu.$SFX"
}

cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ $rc -ne 0 && -n ${KEEP_T:-} ]]; then
        echo "sandbox kept: $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}

# Wait for a file to hold a line, at most 10 s.
wait_file() {
    local i
    for i in $(seq 1 200); do
        [[ -s $1 ]] && return 0
        sleep 0.05
    done
    return 1
}

start_stub() {
    STUB_LOG=$T/upstream.requests
    "$STUB" --port-file "$T/up.port" --log "$STUB_LOG" 2>"$T/stub.log" &
    PIDS+=($!)
    wait_file "$T/up.port" || fail "the stub upstream did not start"
    UP=$(cat "$T/up.port")
}

start_gateway() {
    local name=$1
    shift
    local log=$T/gw.$name.log
    "$BIN" gateway "$P" --db "$DBURL" --upstream "http://127.0.0.1:${GW_UPSTREAM_PORT:-$UP}" \
        --listen 127.0.0.1:0 "$@" 2>"$log" &
    local pid=$!
    PIDS+=($pid)
    local i port=""
    for i in $(seq 1 200); do
        port=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || fail "gateway $name exited at start: $(cat "$log")"
        sleep 0.05
    done
    [[ -n $port ]] || fail "gateway $name did not log event=listening within 10s"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/_fleet/healthz") == 200 ]] ||
        fail "gateway $name: /_fleet/healthz is not 200"
    GW_PORT[$name]=$port
    GW_PID[$name]=$pid
    GW_LOG[$name]=$log
}

start_daemon() {
    local log=$T/serve.log
    "$BIN" serve --db "$DBURL" --listen 127.0.0.1:0 2>"$log" &
    PIDS+=($!)
    local i
    SP=""
    for i in $(seq 1 200); do
        SP=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [[ -n $SP ]] && return 0
        sleep 0.05
    done
    fail "fleetlease serve did not start"
}

stop_gateway() {
    local name=$1 pid=${GW_PID[$1]} i rc
    kill -TERM "$pid"
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "gateway $name still running 15 s after SIGTERM"
    set +e
    wait "$pid"
    rc=$?
    set -e
    [[ $rc -eq 0 ]] || fail "gateway $name exited $rc after SIGTERM"
}

no_sanitizer_reports() {
    local f
    for f in "$@"; do
        if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
            fail "sanitizer report in $(basename "$f"): $(grep -m3 -E 'Sanitizer|runtime error' "$f")"
        fi
    done
}

# Microseconds since the epoch from bash's $EPOCHREALTIME ("s.micros").
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
