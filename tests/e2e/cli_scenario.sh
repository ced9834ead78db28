#!/usr/bin/env bash
# tests/e2e/cli_scenario.sh DBURL [FLEETLEASE_BINARY]
#
# The CLI scenario of issue 2 as a black-box test of the fleetlease command:
# exit codes, stdout/stderr separation, JSON fields, the refusal message,
# wrong-token release, fence growth, usage errors and hostile input.
#
#   DBURL       a store URL or path; "sqlite:tmp" uses a fresh temporary
#               SQLite file; "env:VAR" reads the URL from $VAR at run time
#               and exits 77 (skipped) when it is unset or empty.
#   BINARY      the fleetlease executable (default: fleetlease in PATH).
#
# Every provider id carries a per-run suffix, so the scenario can share a
# PostgreSQL database with other tests and earlier runs.
set -euo pipefail

DBURL=${1:?usage: cli_scenario.sh DBURL [FLEETLEASE_BINARY]}
BIN=${2:-fleetlease}

case $DBURL in
env:*)
    var=${DBURL#env:}
    DBURL=${!var:-}
    if [[ -z $DBURL ]]; then
        echo "SKIP: \$$var is not set" >&2
        exit 77
    fi
    ;;
esac

command -v jq >/dev/null || { echo "FAIL: jq is required (apt-get install jq)" >&2; exit 1; }
[[ -x $BIN ]] || BIN=$(command -v "$BIN") || { echo "FAIL: no fleetlease binary" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/fl-e2e-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
if [[ $DBURL == sqlite:tmp ]]; then
    DBURL=$T/leases.db
fi
# Keep the check cache and any default store inside the sandbox, and make
# the defaults under test come only from what this script sets.
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state
unset FLEETLEASE_DB DATABASE_URL FLEETLEASE_HOLDER FLEETLEASE_WRITER POSIXLY_CORRECT
mkdir -p "$HOME"

SUFFIX="e2e.$$.$RANDOM"
P="gpu-01.$SUFFIX"
STEP=""

fail() {
    echo "FAIL [$STEP]: $*" >&2
    echo "--- command: ${LAST_CMD:-}" >&2
    echo "--- exit: ${RC:-}" >&2
    echo "--- stdout:" >&2
    cat "$T/out" >&2 2>/dev/null || true
    echo "--- stderr:" >&2
    cat "$T/err" >&2 2>/dev/null || true
    exit 1
}

# run ARGS...: run fleetlease against the store; RC, OUT, ERR.
run() {
    LAST_CMD="fleetlease --db <store> $*"
    set +e
    "$BIN" --db "$DBURL" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}

# raw ARGS...: like run, without the --db in front.
raw() {
    LAST_CMD="fleetlease $*"
    set +e
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}

expect_rc() { [[ $RC -eq $1 ]] || fail "expected exit $1, got $RC"; }
expect_out() { [[ $OUT == *"$1"* ]] || fail "stdout lacks: $1"; }
expect_err() { [[ $ERR == *"$1"* ]] || fail "stderr lacks: $1"; }
expect_no_out() { [[ -z $OUT ]] || fail "stdout should be empty"; }
expect_no_err() { [[ -z $ERR ]] || fail "stderr should be empty"; }
# jqt FILTER: the filter must be true of stdout, which must be one JSON document.
jqt() {
    [[ $(jq -s 'length' <"$T/out" 2>/dev/null) == 1 ]] || fail "stdout is not exactly one JSON document"
    jq -e "$1" <"$T/out" >/dev/null || fail "JSON check failed: $1"
}
step() { STEP=$1; echo "--- $1"; }

snapshot() { # the provider's history and live leases, to prove nothing was written
    "$BIN" --db "$DBURL" --json history "$P" --limit 10000 >"$T/hist" 2>/dev/null || true
    "$BIN" --db "$DBURL" --json list "$P" >"$T/list" 2>/dev/null || true
    cat "$T/hist" "$T/list"
}

RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'

# ---------------------------------------------------------------------------
step "exclusive acquire, the exact form of the issue"
run acquire "$P" --holder bench-1 --purpose "nightly bench" --mode exclusive --ttl 30s --json
expect_rc 0
jqt 'type == "object"'
jqt '.token | test("^[0-9a-f]{32}$")'
jqt '.fence | type == "number" and . > 0'
jq -e --arg p "$P" '.provider == $p' <"$T/out" >/dev/null || fail "provider is not $P"
jqt '.holder == "bench-1"'
jqt '.purpose == "nightly bench"'
jqt '.mode == "exclusive"'
jqt '.state == "active"'
jqt '.ttl_ms == 30000'
jqt ".acquired_at | test(\"$RFC3339\")"
jqt ".expires_at | test(\"$RFC3339\")"
jqt '.expires_at_ms - .acquired_at_ms == 30000'
jqt '(.acquired_at_ms | type) == "number"'
TOKEN=$(jq -r .token <"$T/out")
FENCE1=$(jq -r .fence <"$T/out")
EXPIRES=$(jq -r .expires_at <"$T/out")

step "check from another writer is refused with the message"
run check "$P"
expect_rc 75
expect_out "host leased for nightly bench by bench-1 until "
expect_out "$EXPIRES"
run check "$P" --writer router-3 --json
expect_rc 75
jqt '.allowed == false and .state == "exclusive" and .stale == false and .fail_open == false'
jqt '.message | startswith("host leased for nightly bench by bench-1 until ")'
jqt '.holder == "bench-1" and .purpose == "nightly bench" and .mode == "exclusive"'
jqt ".expires_at == \"$EXPIRES\""
FLEETLEASE_WRITER=router-4 run check "$P"
expect_rc 75

step "check by the holder, by name and by token"
run check "$P" --writer bench-1
expect_rc 0
run check "$P" --token "$TOKEN" --json
expect_rc 0
jqt '.allowed == true'
FLEETLEASE_WRITER=bench-1 run check "$P"
expect_rc 0
# --db and --json after the subcommand, as users type them
raw check "$P" --writer bench-1 --db "$DBURL" --json
expect_rc 0
jqt '.allowed == true'

step "a second acquire is refused: 75, message on stderr, JSON on stdout"
run acquire "$P" --holder other --purpose "other work" --json
expect_rc 75
expect_err "host leased for nightly bench by bench-1 until "
jqt '.error == "conflict"'
jqt '.message | startswith("host leased for nightly bench by bench-1 until ")'
jqt '.state == "exclusive" and .holder == "bench-1" and .purpose == "nightly bench"'
jqt ".expires_at == \"$EXPIRES\""
jqt '.retry_after_ms >= 1000'
run acquire "$P" --holder other --purpose "other work"
expect_rc 75
expect_no_out

step "--wait gives up after about the wait"
start=$(date +%s%N)
run acquire "$P" --holder other --purpose "other work" --wait 1s
expect_rc 75
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
(( elapsed_ms >= 900 )) || fail "gave up after ${elapsed_ms}ms, before the 1s wait"
(( elapsed_ms < 10000 )) || fail "waited ${elapsed_ms}ms for a 1s wait"

step "list and history"
run list --json
expect_rc 0
jqt 'type == "array"'
jq -e --arg p "$P" 'map(select(.provider == $p)) | length == 1 and .[0].holder == "bench-1" and (.[0] | has("token") | not)' \
    <"$T/out" >/dev/null || fail "list lacks the lease, or shows its token"
run list "$P"
expect_rc 0
expect_out "bench-1"
expect_out "nightly bench"
expect_out "EXPIRES IN"
[[ $OUT != *"$TOKEN"* ]] || fail "list shows the token"
run history "$P" --json
expect_rc 0
jqt 'type == "array" and length >= 2'
jqt 'any(.[]; .event == "granted" and .holder == "bench-1")'
jqt 'any(.[]; .event == "refused")'
[[ $OUT != *"$TOKEN"* ]] || fail "history shows the token"
run history "$P" --limit 1 --json
expect_rc 0
jqt 'length == 1'

step "release with a wrong token fails and changes nothing"
before=$(snapshot)
run release "$P" --token 0123456789abcdef0123456789abcdef
expect_rc 76
expect_err "lease not found: released, expired or never granted"
expect_no_out
run release "$P" --token 0123456789abcdef0123456789abcdef --json
expect_rc 76
jqt '.error == "not_found"'
run release "$P" --token not-a-token
expect_rc 64
expect_err "token"
# The right token under the wrong provider: a usage error, nothing released.
run release "$P-other" --token "$TOKEN"
expect_rc 64
expect_err "the token's lease is on $P, not $P-other; nothing done"
run renew "$P-other" --token "$TOKEN"
expect_rc 64
[[ $(snapshot) == "$before" ]] || fail "a failed release changed the store"
run check "$P"
expect_rc 75
expect_out "host leased for nightly bench by bench-1 until "

step "renew"
run renew "$P" --token "$TOKEN"
expect_rc 0
expect_out "until "
run renew "$P" --token "$TOKEN" --json
expect_rc 0
jqt ".expires_at | test(\"$RFC3339\")"
jqt 'has("token") | not'
jqt ".fence == $FENCE1"

step "release with the right token"
run release "$P" --token "$TOKEN"
expect_rc 0
run check "$P"
expect_rc 0
run check "$P" --json
expect_rc 0
jqt '.allowed == true and .state == "free"'
run release "$P" --token "$TOKEN"
expect_rc 76
expect_err "lease not found"
run renew "$P" --token "$TOKEN"
expect_rc 76
run check "$P"
expect_rc 0

step "the next grant's fence is larger"
run acquire "$P" --holder bench-2 --purpose "second run" --json
expect_rc 0
FENCE2=$(jq -r .fence <"$T/out")
TOKEN2=$(jq -r .token <"$T/out")
(( FENCE2 > FENCE1 )) || fail "fence $FENCE2 is not larger than $FENCE1"
[[ $TOKEN2 != "$TOKEN" ]] || fail "token reused"
run release "$P" --token "$TOKEN2" --json
expect_rc 0
jqt '.released == true'

step "shared leases"
run acquire "$P" --holder s1 --purpose "serve" --mode shared --json
expect_rc 0
S1=$(jq -r .token <"$T/out")
run acquire "$P" --holder s2 --purpose "serve" --mode shared --json
expect_rc 0
S2=$(jq -r .token <"$T/out")
run check "$P" --json
expect_rc 0
jqt '.state == "shared" and .shared_count == 2'
run acquire "$P" --holder bench-3 --purpose "bench" --mode exclusive
expect_rc 75
run release "$P" --token "$S1"
expect_rc 0
run release "$P" --token "$S2"
expect_rc 0

step "defaults from the environment"
FLEETLEASE_HOLDER=env-holder run acquire "$P" --purpose "env default" --ttl 5s --json
expect_rc 0
jqt '.holder == "env-holder" and .mode == "exclusive" and .ttl_ms == 5000'
E1=$(jq -r .token <"$T/out")
FLEETLEASE_DB=$DBURL raw check "$P" --writer env-holder
expect_rc 0
run release "$P" --token "$E1"
expect_rc 0
run acquire "$P" --purpose "user at host default" --json
expect_rc 0
jqt '.holder | length > 0'
E2=$(jq -r .token <"$T/out")
run release "$P" --token "$E2"
expect_rc 0

step "an expired lease cannot be renewed and does not block"
run acquire "$P" --holder short --purpose "short" --ttl 1s --json
expect_rc 0
SHORT=$(jq -r .token <"$T/out")
sleep 1.3
run check "$P"
expect_rc 0
run renew "$P" --token "$SHORT"
expect_rc 76
run sweep --json
expect_rc 0
jqt '.expired | type == "number" and . >= 0'
run sweep
expect_rc 0
expect_out "swept "

step "usage errors exit 64, naming the field"
run acquire "$P" --holder bench-1 --purpose "nightly bench" --ttl 25h
expect_rc 64
expect_err "ttl"
expect_no_out
run acquire "$P" --holder bench-1 --purpose "nightly bench" --ttl 500ms
expect_rc 64
expect_err "ttl"
run acquire "gpu 01" --holder bench-1 --purpose "nightly bench"
expect_rc 64
expect_err "provider"
run acquire "$P" --holder bench-1
expect_rc 64
expect_err "purpose"
run acquire "$P" --holder bench-1 --purpose "x" --mode sometimes
expect_rc 64
expect_err "mode"
run acquire "$P" --holder bench-1 --purpose "x" --wait forever
expect_rc 64
expect_err "wait"
run acquire "$P" --holder bench-1 --purpose "x" --bogus
expect_rc 64
expect_err "unknown"
expect_err "--bogus"
run acquire
expect_rc 64
expect_err "PROVIDER"
run acquire "$P" extra --purpose x
expect_rc 64
expect_err "unexpected argument"
run acquire "$P" --purpose
expect_rc 64
expect_err "requires a value"
run check "$P" --writer ""
expect_rc 64
expect_err "writer"
run history --limit 0
expect_rc 64
expect_err "limit"
run history --limit 10001
expect_rc 64
run history --limit 5x
expect_rc 64
run release "$P"
expect_rc 64
expect_err "token"
run frobnicate
expect_rc 64
[[ $ERR == "fleetlease: unknown command 'frobnicate'; see 'fleetlease --help'" ]] \
    || fail "unknown command message: $ERR"
expect_no_out
raw --frobnicate list
expect_rc 64
expect_err "unknown option"
raw
expect_rc 64
run acquire "$P" --ttl 25h --purpose x --json
expect_rc 64
jqt '.error == "usage" and (.message | contains("ttl"))'
FLEETLEASE_HOLDER="$(printf 'a%.0s' {1..300})" run acquire "$P" --purpose x
expect_rc 64
expect_err "FLEETLEASE_HOLDER"

step "--help goes to stdout with exit 0"
raw --help
expect_rc 0
expect_no_err
for word in acquire renew release check list history sweep run FLEETLEASE_DB DATABASE_URL \
            FLEETLEASE_HOLDER FLEETLEASE_WRITER 64 69 70 75 76; do
    expect_out "$word"
done
raw -h
expect_rc 0
raw --version
expect_rc 0
expect_out "fleetlease "
for c in acquire renew release check list history sweep; do
    raw "$c" --help
    expect_rc 0
    expect_no_err
    expect_out "usage: fleetlease $c"
done
raw help check
expect_rc 0
expect_out "usage: fleetlease check"

step "hostile input is refused and writes nothing"
before=$(snapshot)
if [[ $DBURL != *://* ]]; then
    all_before=$("$BIN" --db "$DBURL" --json history --limit 10000)
fi
big=$(head -c 10240 /dev/zero | tr '\0' a)
run acquire "$big" --holder bench-1 --purpose "nightly bench"
expect_rc 64
expect_err "provider"
(( ${#ERR} < 2048 )) || fail "the error echoes the whole 10 KB input"
run check "$big"
expect_rc 64
run acquire "$P" --holder $'bench-\xff\xfe' --purpose "nightly bench"
expect_rc 64
expect_err "holder"
run acquire "$P" --holder bench-1 --purpose $'nightly\x01bench\x1b[31m'
expect_rc 64
expect_err "purpose"
run acquire "$P" --holder bench-1 --purpose "$(head -c 257 /dev/zero | tr '\0' p)"
expect_rc 64
expect_err "purpose"
run acquire "$P" --holder "$big" --purpose "nightly bench"
expect_rc 64
expect_err "holder"
run check "$P" --writer $'w\x07'
expect_rc 64
run acquire "$P" --holder bench-1 --purpose "nightly bench" --ttl "$big"
expect_rc 64
run acquire $'gpu-01\n' --holder bench-1 --purpose "nightly bench"
expect_rc 64
[[ $(snapshot) == "$before" ]] || fail "hostile input changed the store"
if [[ $DBURL != *://* ]]; then
    [[ $("$BIN" --db "$DBURL" --json history --limit 10000) == "$all_before" ]] \
        || fail "hostile input wrote history"
fi
# Refused input never even creates a store.
raw --db "$T/never.db" acquire "gpu 01" --holder x --purpose y
expect_rc 64
[[ ! -e $T/never.db ]] || fail "a refused acquire created the store file"

step "store errors"
raw --db "" list
expect_rc 64
raw --db "mysql://nowhere/x" list
[[ $RC -ne 0 ]] || fail "an unknown URL scheme was accepted"
# A mistyped path must not become a new, empty store that allows everything.
raw --db "sqlite:$T/no-such-dir/sub/leases.db" check gpu-01
expect_rc 64
[[ ! -e $T/no-such-dir ]] || fail "a --db path's missing directory was created"

echo "PASS: cli scenario on $( [[ $DBURL == *://* ]] && echo postgresql || echo sqlite )"
