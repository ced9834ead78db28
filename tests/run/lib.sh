# shellcheck shell=bash
# shellcheck disable=SC2034  # RC, FENCE, RUN_PID, ... are outputs for the cases
# tests/run/lib.sh -- helpers for the `fleetlease run` tests (sourced).
#
# Set before sourcing: DBURL ("sqlite:tmp", "env:VAR" or a URL) and BIN.
# Provides: $T (sandbox), $URL (the store), $KIND (sqlite|postgresql), $P
# (a provider id unique to this run, so PostgreSQL runs can share a
# database), fl, start_run, wait_exit, history/lease queries, asserts.
# Every outcome is read back from the store (history, list, check) or from
# /proc, never taken from the wrapper's own claims.

case $DBURL in
env:*)
    _var=${DBURL#env:}
    DBURL=${!_var:-}
    if [[ -z $DBURL ]]; then
        echo "SKIP: \$$_var is not set" >&2
        exit 77
    fi
    ;;
esac

command -v jq >/dev/null || { echo "FAIL: jq is required (apt-get install jq)" >&2; exit 1; }
[[ -x $BIN ]] || BIN=$(command -v "$BIN") || { echo "FAIL: no fleetlease binary" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/fl-run.XXXXXX")
if [[ $DBURL == sqlite:tmp ]]; then
    URL=$T/leases.db
    KIND=sqlite
else
    URL=$DBURL
    case $URL in
    postgres://* | postgresql://*) KIND=postgresql ;;
    *) KIND=sqlite ;;
    esac
fi
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
unset FLEETLEASE_DB DATABASE_URL FLEETLEASE_HOLDER FLEETLEASE_WRITER POSIXLY_CORRECT \
    FLEETLEASE_DEBUG_FAULTS FLEETLEASE_PROVIDER FLEETLEASE_TOKEN FLEETLEASE_FENCE
mkdir -p "$HOME"
P="gpu-01.run.$$.$RANDOM"
STEP=""
KILL_ON_EXIT=()  # pids (and -pgids) to SIGKILL if the test stops early

_cleanup() {
    local p
    for p in "${KILL_ON_EXIT[@]}"; do
        kill -KILL -- "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap _cleanup EXIT

fail() {
    echo "FAIL [$STEP]: $*" >&2
    local f
    for f in "$T"/*.err; do
        [[ -e $f ]] || continue
        echo "--- $(basename "$f"):" >&2
        cat "$f" >&2
    done
    exit 1
}

step() { STEP=$*; echo "== $STEP" >&2; }

now_ms() { date +%s%3N; }

# fl ARGS...: the fleetlease command on this store.
fl() { "$BIN" --db "$URL" "$@"; }

# start_run NAME ARGS...: `fleetlease run ARGS...` in the background;
# stderr in $T/NAME.err, pid in RUN_PID.
start_run() {
    local name=$1
    shift
    # Create the file first: the background shell opens it only after the
    # fork, and wait_granted may look before that.
    : >"$T/$name.err"
    "$BIN" --db "$URL" run "$@" 2>>"$T/$name.err" &
    RUN_PID=$!
    KILL_ON_EXIT+=("$RUN_PID")
}

# wait_exit PID SECONDS: wait for a background process; its status in RC.
# Fails the test when it outlives SECONDS.
wait_exit() {
    local pid=$1 limit_ms=$(($2 * 1000)) t0
    t0=$(now_ms)
    while kill -0 "$pid" 2>/dev/null && ! zombie "$pid"; do
        if (($(now_ms) - t0 > limit_ms)); then
            fail "process $pid still running after $2s"
        fi
        sleep 0.02
    done
    set +e
    wait "$pid"
    RC=$?
    set -e
}

# zombie PID: the process has exited but is not reaped yet.
zombie() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [[ ${st:0:1} == Z ]]
}

# alive PID: a running (not zombie) process.
alive() { [[ -e /proc/$1 ]] && ! zombie "$1"; }

# group_alive PGID: some running process is in the process group.
group_alive() {
    local f st pg
    for f in /proc/[0-9]*/stat; do
        st=$(cat "$f" 2>/dev/null) || continue
        st=${st##*) }
        read -r s _ pg _ <<<"$st"
        [[ $pg == "$1" && $s != Z ]] && return 0
    done
    return 1
}

# wait_file FILE SECONDS: wait until FILE exists and is not empty.
wait_file() {
    local i
    for ((i = 0; i < $2 * 50; i++)); do
        [[ -s $1 ]] && return 0
        sleep 0.02
    done
    fail "$1 did not appear within $2s"
}

# fence_of ERRFILE: the fence from the wrapper's "granted ... fence N" line.
fence_of() {
    sed -n 's/.*granted .*fence \([0-9][0-9]*\)).*/\1/p' "$1" | head -n1
}

# wait_granted NAME: wait for the wrapper's grant line; sets FENCE.
wait_granted() {
    local i
    for ((i = 0; i < 500; i++)); do
        FENCE=$(fence_of "$T/$1.err")
        [[ -n $FENCE ]] && return 0
        kill -0 "$RUN_PID" 2>/dev/null || break
        sleep 0.02
    done
    fail "wrapper $1 was not granted"
}

# events FENCE: the events of one grant of $P, oldest first, comma-separated.
events() {
    fl history "$P" --limit 1000 --json |
        jq -r --argjson f "$1" '[.[] | select(.fence == $f) | .event] | reverse | join(",")'
}

# event_at FENCE EVENT: store time (ms) of that grant's EVENT.
event_at() {
    fl history "$P" --limit 1000 --json |
        jq -r --argjson f "$1" --arg e "$2" '[.[] | select(.fence == $f and .event == $e)] | last | .at_ms'
}

# assert_released FENCE: the grant's history is granted, renewed*, released.
assert_released() {
    local ev
    ev=$(events "$1")
    [[ $ev =~ ^granted(,renewed)*,released$ ]] || fail "history of fence $1 is '$ev', want granted[,renewed...],released"
}

# assert_free: nothing live on $P, and check allows an anonymous writer.
assert_free() {
    local n
    n=$(fl list "$P" --json | jq 'length')
    [[ $n == 0 ]] || fail "$n live lease(s) left on $P"
    fl check "$P" >/dev/null 2>&1 || fail "check $P refuses after the run"
}

# sql STATEMENT: run SQL directly on the store (test-only ground truth and
# sabotage: deleting a lease behind the wrapper's back).
sql() {
    if [[ $KIND == sqlite ]]; then
        command -v sqlite3 >/dev/null || fail "sqlite3 CLI is required (apt-get install sqlite3)"
        sqlite3 -cmd '.timeout 5000' "$URL" "$1"
    else
        command -v psql >/dev/null || fail "psql is required (apt-get install postgresql-client)"
        psql -X -q -A -t -v ON_ERROR_STOP=1 "$URL" -c "$1"
    fi
}

# block_store SECONDS: hold the store's write lock from another process
# for SECONDS (SQLite: BEGIN EXCLUSIVE; PostgreSQL: LOCK TABLE in a
# transaction).  Returns once the lock is held.  The holder runs in its own
# session, BLOCK_PID, so that cleanup can kill all of it.
block_store() {
    local secs=$1 out=$T/block.out
    : >"$out"
    # shellcheck disable=SC2016  # $1, $2 expand in the inner bash
    if [[ $KIND == sqlite ]]; then
        command -v sqlite3 >/dev/null || fail "sqlite3 CLI is required (apt-get install sqlite3)"
        setsid bash -c '{ echo ".timeout 5000"; echo "BEGIN EXCLUSIVE;"; echo "SELECT '"'locked'"';";
                          sleep "$1"; echo "COMMIT;"; } | sqlite3 "$2"' \
            block "$secs" "$URL" >"$out" 2>"$T/block.log" </dev/null &
    else
        command -v psql >/dev/null || fail "psql is required (apt-get install postgresql-client)"
        setsid bash -c '{ echo "BEGIN;"; echo "LOCK TABLE control_host_leases IN EXCLUSIVE MODE;";
                          echo "SELECT '"'locked'"';"; sleep "$1"; echo "COMMIT;"; } |
                        psql -X -q -A -t -v ON_ERROR_STOP=1 "$2"' \
            block "$secs" "$URL" >"$out" 2>"$T/block.log" </dev/null &
    fi
    BLOCK_PID=$!
    KILL_ON_EXIT+=("-$BLOCK_PID")
    local i
    for ((i = 0; i < 500; i++)); do
        grep -q locked "$out" 2>/dev/null && return 0
        sleep 0.02
    done
    fail "could not lock the store: $(cat "$T/block.log")"
}
