#!/usr/bin/env bash
# tests/install/env_test.sh FLEETLEASE SRC
# Configuration from the environment (issue 8): FLEETLEASE_<FLAG> for every
# option, flag > environment > default, errors naming the variable, the
# names that are never read, and secrets kept out of messages.
set -euo pipefail
BIN=${1:?usage: env_test.sh FLEETLEASE SRC}
FL_SRC=${2:?missing SRC}
. "$FL_SRC/tests/install/lib.sh"
need jq jq

# A clean slate: none of the variables under test may leak in.
for v in $(env | sed -n 's/^\(FLEETLEASE_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset DATABASE_URL
export FLEETLEASE_DB=$T/leases.db XDG_STATE_HOME=$T/state XDG_CACHE_HOME=$T/cache

# fl ARGS...: run the command, RC/OUT/ERR set, never exits the script.
fl() { set +e; OUT=$("$BIN" "$@" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err"); set -e; }
want_rc() { [ "$RC" = "$1" ] || fail "$2: exit $RC, want $1; stderr: $ERR"; }

step "default, environment, flag: --ttl"
fl acquire p1 --purpose t --json;                         want_rc 0 default
[ "$(jq .ttl_ms <<<"$OUT")" = 30000 ] || fail "default ttl: $OUT"
FLEETLEASE_TTL=5m fl acquire p2 --purpose t --json;       want_rc 0 env
[ "$(jq .ttl_ms <<<"$OUT")" = 300000 ] || fail "FLEETLEASE_TTL=5m: $OUT"
FLEETLEASE_TTL=5m fl acquire p3 --purpose t --ttl 10s --json; want_rc 0 flag
[ "$(jq .ttl_ms <<<"$OUT")" = 10000 ] || fail "--ttl 10s over FLEETLEASE_TTL=5m: $OUT"
FLEETLEASE_TTL= fl acquire p4 --purpose t --json;         want_rc 0 empty
[ "$(jq .ttl_ms <<<"$OUT")" = 30000 ] || fail "FLEETLEASE_TTL= (empty) is not unset: $OUT"

step "a required option from the environment; a multi-word value"
FLEETLEASE_PURPOSE="nightly bench" FLEETLEASE_MODE=shared fl acquire p5 --json; want_rc 0 purpose
[ "$(jq -r '.purpose + "/" + .mode' <<<"$OUT")" = "nightly bench/shared" ] || fail "purpose/mode from env: $OUT"
FLEETLEASE_HOLDER=env-holder fl acquire p6 --purpose t --holder flag-holder --json; want_rc 0 holder
[ "$(jq -r .holder <<<"$OUT")" = flag-holder ] || fail "--holder over FLEETLEASE_HOLDER: $OUT"

step "flags without a value: FLEETLEASE_JSON"
FLEETLEASE_JSON=1 fl list;    want_rc 0 json1
jq -e 'type == "array"' <<<"$OUT" >/dev/null || fail "FLEETLEASE_JSON=1 list is not a JSON array: $OUT"
FLEETLEASE_JSON=yes fl list;  want_rc 0 jsonyes
jq -e 'type == "array"' <<<"$OUT" >/dev/null || fail "FLEETLEASE_JSON=yes"
FLEETLEASE_JSON=0 fl list;    want_rc 0 json0
[[ $OUT == PROVIDER* ]] || fail "FLEETLEASE_JSON=0 is not text: $OUT"
FLEETLEASE_JSON=maybe fl list; want_rc 64 jsonbad
[[ $ERR == *"FLEETLEASE_JSON: must be 1 or 0"*'"maybe"'* ]] || fail "FLEETLEASE_JSON=maybe: $ERR"

step "an invalid value says which variable it came from"
FLEETLEASE_TTL=25h fl acquire p7 --purpose t; want_rc 64 ttl25h
[[ $ERR == *"ttl: must be"*"(from FLEETLEASE_TTL)"* ]] || fail "FLEETLEASE_TTL=25h: $ERR"
fl acquire p7 --purpose t --ttl 25h; want_rc 64 flag25h
[[ $ERR != *"(from "* ]] || fail "--ttl 25h blamed the environment: $ERR"
FLEETLEASE_TTL=25h FLEETLEASE_JSON=1 fl acquire p7 --purpose t; want_rc 64 ttl25hjson
jq -e '.error == "usage" and (.message | endswith("(from FLEETLEASE_TTL)"))' <<<"$OUT" >/dev/null \
    || fail "JSON error for FLEETLEASE_TTL=25h: $OUT"
FLEETLEASE_LIMIT=0 fl history; want_rc 64 limit
[[ $ERR == *"(from FLEETLEASE_LIMIT)"* ]] || fail "FLEETLEASE_LIMIT=0: $ERR"
FLEETLEASE_SWEEP_INTERVAL=soon fl serve --listen 127.0.0.1:0; want_rc 64 sweep
[[ $ERR == *"sweep-interval:"*"(from FLEETLEASE_SWEEP_INTERVAL)"* ]] || fail "FLEETLEASE_SWEEP_INTERVAL=soon: $ERR"
FLEETLEASE_ACCESS_LOG=sometimes fl serve --listen 127.0.0.1:0; want_rc 64 accesslog
[[ $ERR == *FLEETLEASE_ACCESS_LOG* ]] || fail "FLEETLEASE_ACCESS_LOG=sometimes: $ERR"

step "FLEETLEASE_TOKEN (what run gives its job) is never --token"
fl acquire p8 --purpose keep --json; want_rc 0 acquire8
tok=$(jq -r .token <<<"$OUT")
FLEETLEASE_TOKEN=$tok fl release p8; want_rc 64 release-env-token
[[ $ERR == *"--token"* ]] || fail "release without --token: $ERR"
fl list p8; [[ $OUT == *keep* ]] || fail "FLEETLEASE_TOKEN released the lease"
fl release p8 --token "$tok"; want_rc 0 release-flag-token

step "the store: --db > FLEETLEASE_DB > DATABASE_URL"
DATABASE_URL=$T/other.db fl list p1 --json; want_rc 0 dburl
[ "$(jq length <<<"$OUT")" = 1 ] || fail "DATABASE_URL won over FLEETLEASE_DB: $OUT"
fl --db "$T/third.db" list p1 --json; want_rc 0 db-flag
[ "$(jq length <<<"$OUT")" = 0 ] || fail "--db did not win over FLEETLEASE_DB: $OUT"
(unset FLEETLEASE_DB; DATABASE_URL=$T/leases.db fl list p1 --json; want_rc 0 dburl-only
 [ "$(jq length <<<"$OUT")" = 1 ] || fail "DATABASE_URL alone was not used: $OUT")

step "a password in the store URL never reaches a message"
pw=s3cretPW$$
fl --db "postgresql://lease:$pw@127.0.0.1:1/fleet" list; want_rc 69 pg-down
[[ $ERR == *"lease:***@127.0.0.1:1"* && $ERR != *"$pw"* ]] || fail "password not masked: $ERR"
FLEETLEASE_DB="postgresql://lease@127.0.0.1:1/fleet?password=$pw" fl serve --listen 127.0.0.1:0; want_rc 69 serve-pg-down
[[ $ERR != *"$pw"* ]] || fail "serve showed the password: $ERR"
FLEETLEASE_DB="postgresql://lease:$pw@127.0.0.1:1/fleet" FLEETLEASE_JSON=1 fl list; want_rc 69 json-pg-down
[[ $OUT != *"$pw"* && $ERR != *"$pw"* ]] || fail "--json error showed the password: $OUT"
echo PASS
