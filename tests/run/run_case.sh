#!/usr/bin/env bash
# tests/run/run_case.sh CASE DBURL [FLEETLEASE_BINARY]
#
# One scenario of `fleetlease run`, against one store.  CASE names a
# function below; the case ids (C09, C10, ...) are those of
# ../shared/cases/.  DBURL is "sqlite:tmp" (a fresh SQLite file),
# "env:DATABASE_URL" (skipped with 77 when unset) or a URL.
set -euo pipefail

CASE=${1:?usage: run_case.sh CASE DBURL [FLEETLEASE_BINARY]}
# shellcheck disable=SC2034  # read by lib.sh
DBURL=${2:?usage: run_case.sh CASE DBURL [FLEETLEASE_BINARY]}
BIN=${3:-fleetlease}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# ---- normal exit, child status ------------------------------------------

case_normal_exit() {
    step "run -- true exits 0, granted then released, provider free"
    set +e
    fl run "$P" --purpose "unit run" --holder runner -- true 2>"$T/a.err"
    RC=$?
    set -e
    [[ $RC == 0 ]] || fail "exit $RC, want 0"
    local f
    f=$(fence_of "$T/a.err")
    [[ -n $f ]] || fail "no 'granted ... fence N' line on stderr"
    assert_released "$f"
    assert_free
    grep -q "granted $P (exclusive, fence $f) until " "$T/a.err" || fail "grant line format"

    step "stdout belongs to CMD"
    local out
    out=$(fl run "$P" --purpose "unit run" -- echo hello 2>/dev/null)
    [[ $out == hello ]] || fail "stdout is '$out', want 'hello'"

    step "shared mode and options after PROVIDER, CMD without --"
    fl run "$P" --mode shared --ttl 5s --purpose p true 2>"$T/b.err" || fail "shared run failed"
    f=$(fence_of "$T/b.err")
    grep -q "(shared, fence $f)" "$T/b.err" || fail "not a shared grant"
    assert_released "$f"

    step "without --, options after CMD are CMD's (the lease is made in our store, not CMD's)"
    fl run "$P" --purpose p sh -c 'printf "%s|" "$@" >"$0"' "$T/args" --db /nonexistent/x.db \
        --ttl 2s 2>"$T/c.err" || fail "run with CMD options failed: $(cat "$T/c.err")"
    [[ $(cat "$T/args") == "--db|/nonexistent/x.db|--ttl|2s|" ]] ||
        fail "CMD got [$(cat "$T/args")], want its own --db and --ttl"
    grep -q "until" "$T/c.err" || fail "no grant reported"
    assert_released "$(fence_of "$T/c.err")"
}

case_child_status() {
    step "child exit code is passed through"
    set +e
    fl run "$P" --purpose t -- sh -c 'exit 7' 2>"$T/a.err"
    RC=$?
    set -e
    [[ $RC == 7 ]] || fail "exit $RC, want 7"
    assert_released "$(fence_of "$T/a.err")"

    step "child killed by SIGKILL: 128+9"
    set +e
    fl run "$P" --purpose t -- sh -c 'kill -9 $$' 2>"$T/b.err"
    RC=$?
    set -e
    [[ $RC == 137 ]] || fail "exit $RC, want 137"
    assert_released "$(fence_of "$T/b.err")"
    assert_free
}

case_exec_failure() {
    step "CMD not found: 127, lease released"
    set +e
    fl run "$P" --purpose t -- /nonexistent/fleetlease-test-cmd 2>"$T/a.err"
    RC=$?
    set -e
    [[ $RC == 127 ]] || fail "exit $RC, want 127"
    grep -q "cannot execute /nonexistent/fleetlease-test-cmd" "$T/a.err" || fail "no exec message"
    assert_released "$(fence_of "$T/a.err")"

    step "CMD not executable: 126"
    printf 'echo hi\n' >"$T/noexec"
    chmod 644 "$T/noexec"
    set +e
    fl run "$P" --purpose t -- "$T/noexec" 2>"$T/b.err"
    RC=$?
    set -e
    [[ $RC == 126 ]] || fail "exit $RC, want 126"
    assert_released "$(fence_of "$T/b.err")"
    assert_free

    step "a CMD name with terminal escapes is echoed escaped"
    set +e
    fl run "$P" --purpose t -- $'/nonexistent/x\e]0;title\a\e[31m' 2>"$T/c.err"
    RC=$?
    set -e
    [[ $RC == 127 ]] || fail "exit $RC, want 127"
    ! grep -q $'\e' "$T/c.err" || fail "a raw ESC reached stderr"
    grep -qF 'cannot execute /nonexistent/x\x1b]0;title\x07\x1b[31m' "$T/c.err" ||
        fail "escaped name not shown: $(cat -v "$T/c.err")"
    assert_released "$(fence_of "$T/c.err")"

    step "usage errors: 64, nothing granted"
    local args
    for args in "$P -- true" "$P --purpose t" "--purpose t -- true" \
        "$P --purpose t --ttl 0s -- true" "$P --purpose t --mode both -- true" \
        "bad!id --purpose t -- true"; do
        set +e
        # shellcheck disable=SC2086
        fl run $args >/dev/null 2>"$T/u.err"
        RC=$?
        set -e
        [[ $RC == 64 ]] || fail "run $args: exit $RC, want 64"
    done
    [[ $(fl history "$P" --json | jq '[.[] | select(.event == "granted")] | length') == 3 ]] ||
        fail "a usage error granted a lease"
}

case_env() {
    step "CMD sees FLEETLEASE_PROVIDER/TOKEN/FENCE, and the token is the live lease's"
    # shellcheck disable=SC2016
    FLEETLEASE_TOKEN=stale fl run "$P" --purpose t -- sh -c '
        printf "%s %s %s\n" "$FLEETLEASE_PROVIDER" "$FLEETLEASE_TOKEN" "$FLEETLEASE_FENCE" >"$0/env"
        "$1" --db "$2" renew "$FLEETLEASE_PROVIDER" --token "$FLEETLEASE_TOKEN" >"$0/renew.out"
    ' "$T" "$BIN" "$URL" 2>"$T/a.err" || fail "run exited $?"
    local prov tok fence f
    read -r prov tok fence <"$T/env"
    f=$(fence_of "$T/a.err")
    [[ $prov == "$P" ]] || fail "FLEETLEASE_PROVIDER=$prov"
    [[ $tok =~ ^[0-9a-f]{32}$ ]] || fail "FLEETLEASE_TOKEN=$tok"
    [[ $fence == "$f" ]] || fail "FLEETLEASE_FENCE=$fence, granted fence $f"
    # The renew from inside the job is in the history of this very grant.
    [[ $(events "$f") =~ ^granted,renewed(,renewed)*,released$ ]] ||
        fail "history of fence $f: $(events "$f")"
    step "after the run the token is dead"
    set +e
    fl renew "$P" --token "$tok" >/dev/null 2>&1
    RC=$?
    set -e
    [[ $RC == 76 ]] || fail "renew after the run: exit $RC, want 76"
}

# ---- signals to the wrapper (C09a) ------------------------------------

case_C09a_forward_signals() {
    local sig num pg
    for sig in TERM HUP INT QUIT; do
        step "SIG$sig to the wrapper stops the job's group, then releases"
        rm -f "$T/pg"
        # shellcheck disable=SC2016
        start_run "$sig" "$P" --purpose "sig $sig" -- sh -c 'echo $$ >"$0/pg"; exec sleep 1000' "$T"
        wait_granted "$sig"
        wait_file "$T/pg" 10
        pg=$(cat "$T/pg")
        KILL_ON_EXIT+=("-$pg")
        alive "$pg" || fail "job not running"
        kill "-$sig" "$RUN_PID"
        wait_exit "$RUN_PID" 20
        num=$(kill -l "$sig")
        [[ $RC == $((128 + num)) ]] || fail "exit $RC, want $((128 + num))"
        ! group_alive "$pg" || fail "a process of group $pg outlived the wrapper"
        assert_released "$FENCE"
    done
    assert_free

    step "the release comes after the last process of the job died"
    # The job records when each of its processes handles SIGTERM, i.e. its
    # last moment; the store records the release.  Same machine, same
    # clock for SQLite and a local PostgreSQL.
    # shellcheck disable=SC2016
    start_run late "$P" --purpose late -- sh -c '
        trap "date +%s%3N >>$0/dead; exit 0" TERM
        sh -c "trap \"sleep 0.3; date +%s%3N >>$0/dead; exit 0\" TERM; sleep 1000 & wait" &
        echo $$ >"$0/pg"; sleep 1000 & wait' "$T"
    wait_granted late
    wait_file "$T/pg" 10
    sleep 0.3
    kill -TERM "$RUN_PID"
    wait_exit "$RUN_PID" 20
    local rel last
    rel=$(event_at "$FENCE" released)
    [[ $rel =~ ^[0-9]+$ ]] || fail "no release of fence $FENCE"
    last=$(sort -n "$T/dead" | tail -n1)
    [[ -n $last ]] || fail "the job recorded no death"
    ((last <= rel)) || fail "a job process was alive at ${last}ms, after the release at ${rel}ms"
}

# ---- daemonized grandchildren (C09c) ------------------------------------

case_C09c_daemon_grandchild() {
    local pg d1 d2
    step "kill the wrapper: setsid and double-fork daemons of the job die too"
    # shellcheck disable=SC2016
    start_run a "$P" --purpose daemon -- sh -c '
        setsid sleep 1000 & echo $! >"$0/d1"
        (setsid sh -c "sleep 1000 & echo \$! >$0/d2.tmp; mv $0/d2.tmp $0/d2" &)
        echo $$ >"$0/pg"; sleep 1000' "$T"
    wait_granted a
    wait_file "$T/pg" 10
    wait_file "$T/d1" 10
    wait_file "$T/d2" 10
    pg=$(cat "$T/pg") d1=$(cat "$T/d1") d2=$(cat "$T/d2")
    KILL_ON_EXIT+=("-$pg" "$d1" "$d2")
    { alive "$d1" && alive "$d2"; } || fail "daemons not running"
    kill -TERM "$RUN_PID"
    wait_exit "$RUN_PID" 30
    ! alive "$d1" || fail "setsid grandchild $d1 survived"
    ! alive "$d2" || fail "double-forked daemon $d2 survived"
    ! group_alive "$pg" || fail "group $pg survived"
    assert_released "$FENCE"

    step "CMD exits 0 leaving a daemon: the daemon is stopped, then the lease released"
    rm -f "$T/d1"
    # shellcheck disable=SC2016
    start_run b "$P" --purpose daemon2 -- sh -c '
        setsid sh -c "trap \"date +%s%3N >$0/dead; exit 0\" TERM; sleep 1000 & wait" &
        echo $! >"$0/d1"; sleep 0.3; exit 0' "$T"
    wait_exit "$RUN_PID" 30
    [[ $RC == 0 ]] || fail "exit $RC, want 0"
    d1=$(cat "$T/d1")
    ! alive "$d1" || fail "daemon $d1 survived the run"
    local rel dead
    FENCE=$(fence_of "$T/b.err")
    assert_released "$FENCE"
    rel=$(event_at "$FENCE" released)
    dead=$(cat "$T/dead")
    ((dead <= rel)) || fail "daemon alive at ${dead}ms, after the release at ${rel}ms"

    step "a daemon that ignores SIGTERM is SIGKILLed after the grace period"
    # shellcheck disable=SC2016
    start_run c "$P" --purpose stubborn --ttl 2s -- sh -c '
        setsid sh -c "trap \"\" TERM; echo \$\$ >$0/d3; exec sleep 1000" &
        sleep 0.5; exit 3' "$T"
    wait_exit "$RUN_PID" 30
    [[ $RC == 3 ]] || fail "exit $RC, want 3"
    ! alive "$(cat "$T/d3")" || fail "TERM-ignoring daemon survived"
    assert_released "$(fence_of "$T/c.err")"
    assert_free
}

# ---- C10: the work ends, the heartbeat must stop ------------------------

case_C10_release_promptly() {
    # ttl 3s: heartbeat interval ~1s.  Release must come well within it.
    local f g r
    step "child exits 0 at once: released within one heartbeat interval, no renew"
    fl run "$P" --purpose t --ttl 3s -- true 2>"$T/a.err" || fail "exit $?"
    f=$(fence_of "$T/a.err")
    [[ $(events "$f") == granted,released ]] || fail "history: $(events "$f")"
    g=$(event_at "$f" granted) r=$(event_at "$f" released)
    ((r - g < 1000)) || fail "released $((r - g))ms after the grant"

    step "child SIGKILLed: 137, released at once"
    # shellcheck disable=SC2016
    start_run b "$P" --purpose t --ttl 3s -- sh -c 'echo $$ >"$0/pg"; exec sleep 1000' "$T"
    wait_granted b
    wait_file "$T/pg" 10
    sleep 0.2
    local killed_at
    killed_at=$(now_ms)
    kill -KILL "$(cat "$T/pg")"
    wait_exit "$RUN_PID" 10
    [[ $RC == 137 ]] || fail "exit $RC, want 137"
    r=$(event_at "$FENCE" released)
    ((r - killed_at < 1000)) || fail "released $((r - killed_at))ms after the kill"
    assert_released "$FENCE"
    assert_free
}

# ---- C01/C10: the wrapper itself is stopped (the paused holder) ----------

case_C01_C10_wrapper_sigstop() {
    local pg other
    step "SIGSTOP the wrapper past its ttl: another holder gets the host"
    # shellcheck disable=SC2016
    start_run a "$P" --purpose paused --holder A --ttl 2s -- sh -c 'echo $$ >"$0/pg"; exec sleep 1000' "$T"
    wait_granted a
    wait_file "$T/pg" 10
    pg=$(cat "$T/pg")
    KILL_ON_EXIT+=("-$pg")
    kill -STOP "$RUN_PID"
    sleep 3
    fl acquire "$P" --holder B --purpose other --ttl 30s --json >"$T/b.json" 2>"$T/b.err" ||
        fail "B was not granted after A's ttl"
    other=$(jq -r .fence "$T/b.json")
    ((other > FENCE)) || fail "B's fence $other is not above A's $FENCE"

    step "SIGCONT: the wrapper sees the loss, stops its job, exits 76"
    kill -CONT "$RUN_PID"
    wait_exit "$RUN_PID" 10
    [[ $RC == 76 ]] || fail "exit $RC, want 76"
    grep -q "lease on $P lost" "$T/a.err" || fail "no 'lease ... lost' message"
    ! group_alive "$pg" || fail "A's job survived"

    step "A's exit did not touch B's lease"
    [[ $(fl list "$P" --json | jq -r '.[0].holder') == B ]] || fail "B's lease is gone"
    set +e
    fl check "$P" --writer A >"$T/c.out" 2>&1
    RC=$?
    set -e
    [[ $RC == 75 ]] || fail "check for A: exit $RC, want 75"
    grep -q "by B" "$T/c.out" || fail "check does not name B"
    [[ $(events "$FENCE") != *released* ]] || fail "A's grant recorded as released after it lapsed"
    fl release "$P" --token "$(jq -r .token "$T/b.json")" >/dev/null
}

# ---- the lease is taken away (stolen) -----------------------------------

case_stolen_release() {
    step "released behind the wrapper's back: job killed, exit 76 within ~ttl"
    # shellcheck disable=SC2016
    start_run a "$P" --purpose t --ttl 2s -- sh -c 'echo $FLEETLEASE_TOKEN >"$0/tok"; echo $$ >"$0/pg"; exec sleep 100' "$T"
    wait_granted a
    wait_file "$T/tok" 10
    local pg t0
    pg=$(cat "$T/pg")
    KILL_ON_EXIT+=("-$pg")
    t0=$(now_ms)
    fl release "$P" --token "$(cat "$T/tok")" >/dev/null || fail "release with the job's token"
    wait_exit "$RUN_PID" 10
    [[ $RC == 76 ]] || fail "exit $RC, want 76"
    (($(now_ms) - t0 < 3000)) || fail "took $(($(now_ms) - t0))ms to notice"
    ! group_alive "$pg" || fail "job survived"
    grep -q "lease on $P lost" "$T/a.err" || fail "no 'lease ... lost' message"
}

case_stolen_delete() {
    step "row deleted behind the wrapper's back: job killed, exit 76 within ~ttl"
    # shellcheck disable=SC2016
    start_run a "$P" --purpose t --ttl 2s -- sh -c 'echo $$ >"$0/pg"; exec sleep 100' "$T"
    wait_granted a
    wait_file "$T/pg" 10
    local pg t0
    pg=$(cat "$T/pg")
    KILL_ON_EXIT+=("-$pg")
    t0=$(now_ms)
    sql "DELETE FROM control_host_leases WHERE provider_id = '$P'" >/dev/null
    wait_exit "$RUN_PID" 10
    [[ $RC == 76 ]] || fail "exit $RC, want 76"
    (($(now_ms) - t0 < 3000)) || fail "took $(($(now_ms) - t0))ms to notice"
    ! group_alive "$pg" || fail "job survived"
}

# ---- the store is blocked (C09b, C11) -----------------------------------

case_C09b_store_blocked() {
    step "store blocked past the ttl: the job dies before the lease's expiry in the store"
    # shellcheck disable=SC2016
    start_run a "$P" --purpose t --ttl 3s -- sh -c 'echo $FLEETLEASE_TOKEN >"$0/tok"; echo $$ >"$0/pg"; exec sleep 1000' "$T"
    wait_granted a
    wait_file "$T/pg" 10
    local pg exp died=""
    pg=$(cat "$T/pg")
    KILL_ON_EXIT+=("-$pg")
    sleep 1.2  # let a renew or two happen first
    block_store 6
    # With the lock held no renew can commit: this expiry is final.
    exp=$(sql "SELECT expires_at FROM control_host_leases WHERE provider_id = '$P'")
    [[ $exp =~ ^[0-9]+$ ]] || fail "no live lease row while blocked ($exp)"
    local t0
    t0=$(now_ms)
    while (($(now_ms) - t0 < 8000)); do
        if ! alive "$pg"; then
            died=$(now_ms)
            break
        fi
        sleep 0.01
    done
    [[ -n $died ]] || fail "job still alive 8s after the store was blocked"
    ((died < exp)) || fail "job died at ${died}ms, not before the store's expiry at ${exp}ms"
    echo "job stopped $((exp - died))ms before the store's expiry" >&2
    wait_exit "$RUN_PID" 20
    [[ $RC == 76 ]] || fail "exit $RC, want 76"
    grep -q "lease on $P lost: .*stopping the job" "$T/a.err" || fail "no loss message"
    ! group_alive "$pg" || fail "job survived"
    wait_exit "$BLOCK_PID" 20

    step "C11: once the store answers again, a renew with the lost token is refused"
    set +e
    fl renew "$P" --token "$(cat "$T/tok")" >/dev/null 2>"$T/renew.err"
    RC=$?
    set -e
    [[ $RC == 76 ]] || fail "renew of the lost lease: exit $RC, want 76"
    [[ $(fl list "$P" --json | jq 'length') == 0 ]] || fail "a lease is still live on $P"
}

case_C11_transient_heartbeat() {
    if [[ ${FL_DEBUG_HOOKS:-OFF} != ON ]]; then
        echo "SKIP: needs a build with -DFL_DEBUG_HOOKS=ON" >&2
        exit 77
    fi
    step "the first heartbeat fails transiently: the run goes on with the same fence"
    FLEETLEASE_DEBUG_FAULTS="heartbeat=1" fl run "$P" --purpose t --ttl 3s -- sleep 2.5 \
        2>"$T/a.err" || fail "exit $?"
    local f
    f=$(fence_of "$T/a.err")
    [[ $(events "$f") =~ ^granted(,renewed)+,released$ ]] || fail "history: $(events "$f")"
    ! grep -q lost "$T/a.err" || fail "a transient failure was taken for a loss"
    assert_free
}

# ---- C14: not granted within --wait -------------------------------------

case_C14_wait_conflict() {
    step "A holds the host for 60s; run --wait 3s gives up after ~3s, CMD never runs"
    fl acquire "$P" --holder alice --purpose "nightly bench" --ttl 60s --json >"$T/a.json" ||
        fail "A's acquire"
    local t0 ms
    t0=$(now_ms)
    set +e
    fl run "$P" --purpose t --wait 3s -- touch "$T/marker" 2>"$T/b.err"
    RC=$?
    set -e
    ms=$(($(now_ms) - t0))
    [[ $RC == 75 ]] || fail "exit $RC, want 75"
    ((ms >= 2800 && ms < 8000)) || fail "gave up after ${ms}ms, want ~3000"
    [[ ! -e $T/marker ]] || fail "CMD ran although the lease was not granted"
    { grep -q "alice" "$T/b.err" && grep -q "nightly bench" "$T/b.err"; } ||
        fail "message does not name holder and purpose"
    [[ $(fl history "$P" --json | jq -r '.[0].event') == refused ]] || fail "no refused event"

    step "without --wait it fails at once"
    t0=$(now_ms)
    set +e
    fl run "$P" --purpose t -- touch "$T/marker" 2>"$T/c.err"
    RC=$?
    set -e
    [[ $RC == 75 ]] || fail "exit $RC, want 75"
    (($(now_ms) - t0 < 2000)) || fail "took $(($(now_ms) - t0))ms without --wait"
    [[ ! -e $T/marker ]] || fail "CMD ran"
    fl release "$P" --token "$(jq -r .token "$T/a.json")" >/dev/null
}

case_store_unavailable() {
    step "store unreachable: exit 69, CMD never runs"
    local url
    if [[ $KIND == sqlite ]]; then
        # Busy past the store's timeout counts as unavailable.
        fl list >/dev/null
        block_store 30
        url=$URL
    else
        url="postgresql://fleetlease@127.0.0.1:1/none?connect_timeout=2"
    fi
    set +e
    "$BIN" --db "$url" run "$P" --purpose t -- touch "$T/marker" 2>"$T/a.err"
    RC=$?
    set -e
    [[ $RC == 69 ]] || fail "exit $RC, want 69"
    [[ ! -e $T/marker ]] || fail "CMD ran without a lease"
}

fn="case_$CASE"
declare -F "$fn" >/dev/null || { echo "unknown case $CASE" >&2; exit 2; }
"$fn"
echo "PASS run/$CASE ($KIND)" >&2
