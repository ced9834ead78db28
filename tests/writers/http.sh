#!/usr/bin/env bash
# tests/writers/http.sh -- writer path (c): GET /v1/providers/{id}/check.
#
# A writer in any language asks the daemon before each dispatch and
# dispatches only on 200.  Under an exclusive lease (taken with the CLI on
# the same store) it gets 423 with the message and Retry-After; the holder
# is allowed (by name, and by ?token=); dispatch resumes after release.
# Then the same with --tokens, where the writer is the bearer token's name
# and cannot claim to be the holder.
#
# usage: http.sh sqlite:tmp|env:DATABASE_URL BINARY   (77: skipped)
source "$(dirname "$0")/common.sh"
setup "$@"
PROV=writer-http.$SFX
DISPATCHED=0

# The writer's pattern: check, then dispatch only on 200.
dispatch() {
    req GET "/v1/providers/$PROV/check$1" "${@:2}"
    if [[ $CODE == 200 ]]; then
        DISPATCHED=$((DISPATCHED + 1))
    fi
}

expect_refused() {
    local n=$DISPATCHED
    dispatch "$@"
    expect_code 423
    [[ $(jqb .allowed) == false && $(jqb .state) == exclusive ]] || fail "verdict"
    [[ $(jqb .message) == "$WANT" ]] || fail "message: want \"$WANT\""
    [[ $(jqb .holder) == "$HOLDER" && $(jqb .purpose) == "$PURPOSE" ]] || fail "blocker"
    local ra
    ra=$(hdr Retry-After)
    [[ $ra =~ ^[0-9]+$ && $ra -ge 1 && $ra -le 30 ]] || fail "Retry-After \"$ra\", want 1..30"
    [[ $DISPATCHED == "$n" ]] || fail "dispatched under an exclusive lease"
}

start_daemon

step "free host: router-3 dispatches"
dispatch "?writer=router-3"
expect_code 200
[[ $(jqb .allowed) == true && $(jqb .state) == free ]] || fail "free verdict"

step "exclusive lease: 423 with the message and Retry-After"
hold
expect_refused "?writer=router-3"
expect_refused ""
expect_refused "?writer=router-3&token=0123456789abcdef0123456789abcdef"

step "the holder is allowed: by name, and by its token"
dispatch "?writer=$HOLDER"
expect_code 200
[[ $(jqb .allowed) == true && $(jqb .message) != *"host leased for"* ]] || fail "holder verdict"
dispatch "?writer=bench-1-worker&token=$TOKEN"
expect_code 200

step "release (DELETE /v1/leases/{token}): dispatch resumes"
req DELETE "/v1/leases/$TOKEN"
expect_code 200
dispatch "?writer=router-3"
expect_code 200
[[ $(jqb .state) == free ]] || fail "state after release: $(jqb .state)"
[[ $DISPATCHED == 4 ]] || fail "dispatched $DISPATCHED times, want 4"
stop_daemon
[[ $STOP_RC == 0 ]] || fail "daemon exit $STOP_RC after SIGTERM"

step "--tokens: the writer is the bearer token's name"
tokens_file
start_daemon --tokens "$T/tokens"
DISPATCHED=0
hold
dispatch "" -H "Authorization: Bearer $TOK_ROUTER"
expect_code 423
[[ $(jqb .message) == "$WANT" ]] || fail "message: want \"$WANT\""
dispatch "" -H "Authorization: Bearer $TOK_BENCH"
expect_code 200
step "--tokens: no token is 401; claiming another name is 403"
dispatch ""
expect_code 401
dispatch "?writer=$HOLDER" -H "Authorization: Bearer $TOK_ROUTER"
expect_code 403
[[ $DISPATCHED == 1 ]] || fail "dispatched $DISPATCHED times, want 1 (the holder)"
step "--tokens: release, dispatch resumes"
unhold
dispatch "" -H "Authorization: Bearer $TOK_ROUTER"
expect_code 200
stop_daemon
[[ $STOP_RC == 0 ]] || fail "daemon exit $STOP_RC after SIGTERM"
echo "ok: HTTP check writer path honors the exclusive lease" >&2
