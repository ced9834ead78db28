# tests/writers/common.sh -- sourced by the writer-path tests (b)-(d).
#
# Builds on tests/http/lib.sh (setup, start_daemon, req, fail, ...).  The
# lease is always taken with the CLI on the test's store, so each test also
# shows that a lease taken by one path is honored by another.
#
#   fl ARGS...   the fleetlease command on the store; sets RC, OUT, ERR
#   hold         exclusive lease on $PROV for $HOLDER; sets TOKEN, EXPIRES and
#                WANT (the exact refusal message every path must give)
#   unhold       release it (CLI)
#   tokens_file  write $T/tokens (router-3, bench-1) and set TOK_ROUTER,
#                TOK_BENCH (bearer tokens for `serve --tokens`)
source "$(dirname "${BASH_SOURCE[0]}")/../http/lib.sh"

HOLDER=bench-1
PURPOSE="nightly bench"

fl() {
    set +e
    "$BIN" "$@" --db "$DBURL" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    OUT=$(<"$T/out")
    ERR=$(<"$T/err")
    LAST_REQ="fleetlease $*"
    CODE="exit $RC"
    BODY="$OUT${ERR:+
stderr: $ERR}"
}

hold() {
    fl acquire "$PROV" --holder "$HOLDER" --purpose "$PURPOSE" --ttl 30s --json
    [[ $RC == 0 ]] || fail "acquire: exit $RC"
    TOKEN=$(jq -r .token <<<"$OUT")
    EXPIRES=$(jq -r .expires_at <<<"$OUT")
    [[ $TOKEN =~ ^[0-9a-f]{32}$ && $EXPIRES =~ $RFC3339 ]] || fail "acquire: bad token or expires_at"
    WANT="host leased for $PURPOSE by $HOLDER until $EXPIRES"
}

unhold() {
    fl release "$PROV" --token "$TOKEN"
    [[ $RC == 0 ]] || fail "release: exit $RC"
}

tokens_file() {
    TOK_ROUTER=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    TOK_BENCH=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    {
        printf 'router-3 %s\n' "$(printf %s "$TOK_ROUTER" | sha256sum | cut -d' ' -f1)"
        printf '%s %s\n' "$HOLDER" "$(printf %s "$TOK_BENCH" | sha256sum | cut -d' ' -f1)"
    } >"$T/tokens"
    chmod 600 "$T/tokens"
}
