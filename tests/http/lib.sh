# tests/http/lib.sh -- sourced by the tests of `fleetlease serve`.
#
#   setup DBURL BINARY   resolve the store ("sqlite:tmp": a fresh SQLite file;
#                        "env:VAR": $VAR, exit 77 = skipped when unset), make
#                        the sandbox $T, check the tools
#   start_daemon ARGS... start `fleetlease serve` on a free loopback port
#                        (port 0, read back from the log) and wait for /healthz;
#                        sets PID, PORT, U (base URL), LOG
#   stop_daemon          SIGTERM, wait; sets STOP_RC and STOP_MS
#   req METHOD PATH [CURL ARGS...]
#                        one request; sets CODE, BODY, and $T/hdr (headers)
#   hdr NAME             a response header of the last req (value, no CR)
#   expect_code WANT     fail unless CODE is WANT
#   jqb FILTER           jq -r FILTER on BODY
#   rss_kb               VmRSS of the daemon
#
# Every provider id carries a per-run suffix ($SFX), so tests can share a
# PostgreSQL database with other tests and earlier runs.
set -euo pipefail

STEP=""
PID=""

fail() {
    echo "FAIL [$STEP]: $*" >&2
    echo "--- last request: ${LAST_REQ:-}" >&2
    echo "--- status: ${CODE:-}" >&2
    echo "--- body:" >&2
    printf '%s\n' "${BODY:-}" >&2
    if [[ -n ${LOG:-} && -f ${LOG:-} ]]; then
        echo "--- daemon log (tail):" >&2
        tail -n 30 "$LOG" >&2
    fi
    exit 1
}

step() { STEP=$*; echo "== $*" >&2; }

setup() {
    DBURL=${1:?usage: SCRIPT DBURL BINARY}
    BIN=${2:-fleetlease}
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
    T=$(mktemp -d "${TMPDIR:-/tmp}/fl-http.XXXXXX")
    trap cleanup EXIT
    if [[ $DBURL == sqlite:tmp ]]; then
        DBURL=$T/leases.db
    fi
    export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
    unset FLEETLEASE_DB DATABASE_URL FLEETLEASE_HOLDER FLEETLEASE_WRITER
    mkdir -p "$HOME"
    # A sanitizer build keeps freed memory in quarantine (256 MB by default),
    # which would read as growth in the memory checks.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8:detect_leaks=1"
    SFX="http.$$.$RANDOM"
}

cleanup() {
    local rc=$?
    if [[ -n ${PID:-} ]] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    # Background helpers of the test (curl long polls, slow clients).
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
    exit "$rc"
}

start_daemon() {
    LOG=$T/serve.$RANDOM.log
    "$BIN" serve --db "$DBURL" --listen 127.0.0.1:0 "$@" 2>"$LOG" &
    PID=$!
    local i
    PORT=""
    for i in $(seq 1 200); do
        PORT=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -n1)
        [[ -n $PORT ]] && break
        kill -0 "$PID" 2>/dev/null || fail "daemon exited at start: $(cat "$LOG")"
        sleep 0.05
    done
    [[ -n $PORT ]] || fail "daemon did not log event=listening within 10s"
    U=http://127.0.0.1:$PORT
    for i in $(seq 1 100); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$U/healthz") == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    fail "/healthz did not answer 200 within 10s"
}

stop_daemon() {
    local t0 t1
    t0=$(date +%s%N)
    kill -TERM "$PID"
    set +e
    wait "$PID"
    STOP_RC=$?
    set -e
    t1=$(date +%s%N)
    STOP_MS=$(((t1 - t0) / 1000000))
    PID=""
}

req() {
    local m=$1 p=$2
    shift 2
    LAST_REQ="$m $p ${*:0:300}"
    set +e
    CODE=$(curl -sS -o "$T/body" -D "$T/hdr" -w '%{http_code}' --max-time 20 -X "$m" "$@" "$U$p")
    local rc=$?
    set -e
    BODY=$(cat "$T/body" 2>/dev/null || true)
    if [[ $rc -ne 0 ]]; then
        CODE="curl-exit-$rc"
    fi
}

hdr() {
    sed -n "s/^$1: //Ip" "$T/hdr" | tr -d '\r' | tail -n1
}

expect_code() {
    [[ $CODE == "$1" ]] || fail "expected HTTP $1, got $CODE"
}

jqb() {
    jq -r "$1" <<<"$BODY"
}

rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"
}

RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
