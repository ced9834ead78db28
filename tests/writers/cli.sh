#!/usr/bin/env bash
# tests/writers/cli.sh -- writer path (b): `fleetlease check`.
#
# A shell writer runs `fleetlease check PROVIDER --writer NAME` before each
# dispatch and dispatches only on exit 0.  Under an exclusive lease it is
# refused (exit 75) with the message, the holder is allowed (by name, and
# by token), and dispatch resumes after release.
#
# usage: cli.sh sqlite:tmp|env:DATABASE_URL BINARY   (77: skipped)
source "$(dirname "$0")/common.sh"
setup "$@"
PROV=writer-cli.$SFX
DISPATCHED=0

# The writer's pattern: check, then dispatch only if allowed.
dispatch() {
    fl check "$PROV" "$@"
    if [[ $RC == 0 ]]; then
        DISPATCHED=$((DISPATCHED + 1))
    fi
}

step "free host: router-3 dispatches"
dispatch --writer router-3
[[ $RC == 0 ]] || fail "check on a free host: exit $RC, want 0"

step "exclusive lease: router-3 is refused with the message (exit 75)"
hold
n=$DISPATCHED
dispatch --writer router-3
[[ $RC == 75 ]] || fail "exit $RC, want 75"
[[ "$OUT$ERR" == *"$WANT"* ]] || fail "message missing; want: $WANT"
[[ $DISPATCHED == "$n" ]] || fail "router-3 dispatched under an exclusive lease"

step "refused: --json carries the verdict"
dispatch --writer router-3 --json
[[ $RC == 75 ]] || fail "exit $RC, want 75"
BODY=$OUT
[[ $(jqb .allowed) == false && $(jqb .state) == exclusive && $(jqb .message) == "$WANT" ]] ||
    fail "json verdict"
[[ $(jqb .holder) == "$HOLDER" && $(jqb .purpose) == "$PURPOSE" ]] || fail "json blocker"

step "refused: the writer from \$FLEETLEASE_WRITER, and an anonymous writer"
FLEETLEASE_WRITER=router-3 dispatch
[[ $RC == 75 && "$OUT$ERR" == *"$WANT"* ]] || fail "FLEETLEASE_WRITER=router-3: exit $RC"
dispatch
[[ $RC == 75 && "$OUT$ERR" == *"$WANT"* ]] || fail "anonymous: exit $RC"

step "refused: a token that is not the lease's"
dispatch --writer router-3 --token 0123456789abcdef0123456789abcdef
[[ $RC == 75 && "$OUT$ERR" == *"$WANT"* ]] || fail "wrong token: exit $RC"
[[ $DISPATCHED == "$n" ]] || fail "a refused writer dispatched"

step "the holder is allowed: by name, and by its token"
dispatch --writer "$HOLDER"
[[ $RC == 0 ]] || fail "holder by name: exit $RC"
[[ "$OUT$ERR" != *"host leased for"* ]] || fail "the holder was told it is refused"
dispatch --writer bench-1-worker --token "$TOKEN"
[[ $RC == 0 ]] || fail "holder's token: exit $RC"

step "release: dispatch resumes"
unhold
dispatch --writer router-3
[[ $RC == 0 ]] || fail "after release: exit $RC, want 0"
dispatch
[[ $RC == 0 ]] || fail "after release, anonymous: exit $RC, want 0"

[[ $DISPATCHED == 5 ]] || fail "dispatched $DISPATCHED times, want 5 (free, holder x2, after release x2)"
echo "ok: CLI writer path honors the exclusive lease" >&2
