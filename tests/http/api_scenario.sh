#!/usr/bin/env bash
# tests/http/api_scenario.sh DBURL BINARY
#
# The API scenario of issue 5 against a real `fleetlease serve`:
#   - exclusive acquire; a second writer gets 423 with the message and
#     Retry-After; heartbeat and release by token; a wrong token gets 404
#     and changes nothing; after release the check allows again;
#   - the HTTP check and /v1/auth (nginx auth_request) refuse and allow
#     exactly as fl_check does;
#   - a long poll (wait) gets the host after the holder releases it;
#   - draining: an exclusive waiter blocks new shared leases;
#   - list, history, /metrics series, the sweep expiring a lapsed lease;
#   - --tokens: no token / wrong token 401, right token works, the token's
#     name is the holder, another name is 403;
#   - a non-loopback --listen needs --tokens or --insecure-no-auth (64);
#   - SIGTERM: exit 0 promptly, also with a long poll in flight (503).
#
# DBURL: "sqlite:tmp" (fresh temporary file) or "env:DATABASE_URL"
# (skipped with 77 when unset).
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
setup "$@"

P="gpu-01.$SFX"

step "start"
start_daemon --sweep-interval 200ms

step "exclusive acquire"
req POST /v1/leases -d "{\"provider\":\"$P\",\"holder\":\"bench-1\",\"purpose\":\"nightly bench\",\"ttl\":\"30s\"}"
expect_code 201
TOKEN=$(jqb .token)
[[ $TOKEN =~ ^[0-9a-f]{32}$ ]] || fail "token is not 32 hex digits: $TOKEN"
[[ $(jqb .fence) =~ ^[0-9]+$ ]] || fail "no fence"
EXP=$(jqb .expires_at)
[[ $EXP =~ $RFC3339 ]] || fail "expires_at is not RFC 3339: $EXP"
[[ $(jqb .mode) == exclusive && $(jqb .holder) == bench-1 && $(jqb .state) == active ]] ||
    fail "lease fields"
MSG="host leased for nightly bench by bench-1 until $EXP"

step "second writer gets 423 with the message and Retry-After"
req POST /v1/leases -d "{\"provider\":\"$P\",\"holder\":\"router-3\",\"purpose\":\"serve traffic\"}"
expect_code 423
[[ $(jqb .message) == "$MSG" ]] || fail "message: $(jqb .message), want: $MSG"
[[ $(jqb .error) == conflict && $(jqb .holder) == bench-1 && $(jqb .purpose) == "nightly bench" &&
   $(jqb .mode) == exclusive && $(jqb .state) == exclusive && $(jqb .expires_at) == "$EXP" ]] ||
    fail "423 body fields"
RA=$(hdr Retry-After)
[[ $RA =~ ^[0-9]+$ && $RA -ge 1 && $RA -le 30 ]] || fail "Retry-After: '$RA'"

step "HTTP check: refused for others, allowed for the holder (by name and by token)"
req GET "/v1/providers/$P/check?writer=router-3"
expect_code 423
[[ $(jqb .message) == "$MSG" && $(jqb .allowed) == false && $(jqb .stale) == false &&
   $(jqb .fail_open) == false ]] || fail "check body"
[[ -n $(hdr Retry-After) ]] || fail "check: no Retry-After"
req GET "/v1/providers/$P/check"
expect_code 423
req GET "/v1/providers/$P/check?writer=bench-1"
expect_code 200
[[ $(jqb .allowed) == true ]] || fail "holder not allowed"
req GET "/v1/providers/$P/check?writer=router-3&token=$TOKEN"
expect_code 200

step "/v1/auth for nginx: 403 with X-Fleet-Message, 204 for the holder"
req GET "/v1/auth?provider=$P" -H "X-Fleet-Writer: router-3"
expect_code 403
[[ $(hdr X-Fleet-Message) == "$MSG" ]] || fail "X-Fleet-Message: '$(hdr X-Fleet-Message)'"
[[ $(hdr X-Fleet-State) == exclusive ]] || fail "X-Fleet-State"
req GET "/v1/auth?provider=$P" -H "X-Fleet-Writer: bench-1"
expect_code 204
req GET "/v1/auth?provider=$P" -H "X-Fleet-Lease: $TOKEN"
expect_code 204
req POST "/v1/auth?provider=$P&writer=router-3"
expect_code 403
req GET "/v1/auth"
expect_code 400
# An identity given twice, or two ways that disagree, is refused, not guessed.
req GET "/v1/auth?provider=$P" -H "X-Fleet-Writer: router-3" -H "X-Fleet-Writer: bench-1"
expect_code 400
req GET "/v1/auth?provider=$P&writer=bench-1" -H "X-Fleet-Writer: router-3"
expect_code 400
req GET "/v1/auth?provider=$P&token=$TOKEN" -H "X-Fleet-Lease: 0123456789abcdef0123456789abcdef"
expect_code 400
req GET "/v1/auth?provider=$P&writer=bench-1" -H "X-Fleet-Writer: bench-1"
expect_code 204

step "heartbeat by token"
req POST "/v1/leases/$TOKEN/heartbeat"
expect_code 200
[[ $(jqb .expires_at) > "$EXP" || $(jqb .expires_at) == "$EXP" ]] || fail "expiry went back"
[[ $(jqb '.token // empty') == "" ]] || fail "heartbeat echoes the token"
[[ $(jqb .holder) == bench-1 ]] || fail "heartbeat lease"
EXP=$(jqb .expires_at)
MSG="host leased for nightly bench by bench-1 until $EXP"

step "a wrong token gets 404 and changes nothing"
WRONG=0123456789abcdef0123456789abcdef
[[ $WRONG != "$TOKEN" ]] || WRONG=fedcba9876543210fedcba9876543210
req POST "/v1/leases/$WRONG/heartbeat"
expect_code 404
[[ $(jqb .error) == not_found ]] || fail "error id"
req DELETE "/v1/leases/$WRONG"
expect_code 404
req DELETE "/v1/leases/not-a-token"
expect_code 400
[[ $(jqb .message) == *token* ]] || fail "malformed token message"
req DELETE "/v1/leases/$TOKEN?x=1"
expect_code 400
[[ $(jqb .message) == *x* ]] || fail "unknown parameter on a token route not named"
req POST "/v1/leases/$TOKEN/heartbeat?token=0123&&&junk"
expect_code 400
req GET "/v1/providers/$P/check?writer=router-3"
expect_code 423
[[ $(jqb .message) == "$MSG" ]] || fail "the wrong token changed the lease: $(jqb .message)"

step "list and history"
req GET "/v1/leases?provider=$P"
expect_code 200
[[ $(jqb 'length') == 1 && $(jqb '.[0].holder') == bench-1 && $(jqb '.[0] | has("token")') == false ]] ||
    fail "list"
[[ $(jqb '.[0].provider_state') == exclusive ]] || fail "list: provider_state $(jqb '.[0].provider_state')"
req GET "/v1/leases"
expect_code 200
req GET "/v1/history?provider=$P&limit=10"
expect_code 200
[[ $(jqb '[.[].event] | index("granted") != null and index("refused") != null and index("renewed") != null') == true ]] ||
    fail "history events: $(jqb '[.[].event]')"
req GET "/v1/history?provider=$P&limit=0"
expect_code 400
req GET "/v1/leases?provder=$P"
expect_code 400
[[ $(jqb .message) == *provder* ]] || fail "unknown parameter not named"

step "metrics while held"
req GET /metrics
expect_code 200
grep -q '^fleetlease_active_leases{mode="exclusive",state="active"} [1-9]' "$T/body" ||
    fail "no active exclusive lease in metrics"

step "release by token; then the check allows and a repeat release is 404"
req DELETE "/v1/leases/$TOKEN"
expect_code 200
[[ $(jqb .released) == true ]] || fail "released"
req DELETE "/v1/leases/$TOKEN"
expect_code 404
req GET "/v1/providers/$P/check?writer=router-3"
expect_code 200
[[ $(jqb .state) == free ]] || fail "state after release"
req GET "/v1/auth?provider=$P&writer=router-3"
expect_code 204

step "long poll: a waiting acquire gets the host after release"
req POST /v1/leases -d "{\"provider\":\"$P\",\"holder\":\"bench-1\",\"purpose\":\"nightly bench\",\"ttl\":\"30s\"}"
expect_code 201
TOKEN=$(jqb .token)
t0=$(date +%s%N)
curl -sS -o "$T/lp.body" -w '%{http_code}' --max-time 30 -X POST "$U/v1/leases" \
    -d "{\"provider\":\"$P\",\"holder\":\"bench-2\",\"purpose\":\"second run\",\"wait\":\"20s\"}" \
    >"$T/lp.code" &
LP=$!
sleep 1
kill -0 "$LP" 2>/dev/null || fail "the long poll returned before the release: $(cat "$T/lp.code")"
req DELETE "/v1/leases/$TOKEN"
expect_code 200
wait "$LP" || fail "long poll curl failed"
t1=$(date +%s%N)
[[ $(cat "$T/lp.code") == 201 ]] || fail "long poll: $(cat "$T/lp.code") $(cat "$T/lp.body")"
[[ $(jq -r .holder "$T/lp.body") == bench-2 ]] || fail "long poll holder"
(((t1 - t0) / 1000000 < 10000)) || fail "long poll took $(((t1 - t0) / 1000000)) ms"
TOKEN2=$(jq -r .token "$T/lp.body")
req DELETE "/v1/leases/$TOKEN2"
expect_code 200

step "long poll whose client left just before the host freed: never left holding it"
# The close lands 0-60 ms before the release, inside one tick of the
# daemon's client check: the grant that follows must be given back.
for gap in 0 0.02 0.06; do
    req POST /v1/leases -d "{\"provider\":\"$P\",\"holder\":\"bench-1\",\"purpose\":\"held\",\"ttl\":\"30s\"}"
    expect_code 201
    TOKEN=$(jqb .token)
    curl -sS -o /dev/null --max-time 0.5 -X POST "$U/v1/leases" \
        -d "{\"provider\":\"$P\",\"holder\":\"gone-1\",\"purpose\":\"left\",\"wait\":\"20s\",\"ttl\":\"1h\"}" \
        2>/dev/null || true
    sleep "$gap"
    req DELETE "/v1/leases/$TOKEN"
    expect_code 200
    sleep 0.5
    req GET "/v1/leases?provider=$P"
    expect_code 200
    [[ $(jqb 'length') == 0 ]] || fail "gap ${gap}s: a lease is left for a client that is gone: $BODY"
done
grep -q 'event=abandoned\|event=wait_abandoned' "$LOG" || fail "no abandoned wait in the log"
! grep -q 'event=store_error.*cancelled' "$LOG" || fail "a client leaving was logged as a store error"

step "draining: an exclusive waiter blocks new shared leases"
Q="gpu-02.$SFX"
req POST /v1/leases -d "{\"provider\":\"$Q\",\"holder\":\"eval-1\",\"purpose\":\"eval\",\"mode\":\"shared\"}"
expect_code 201
S1=$(jqb .token)
curl -sS -o "$T/dr.body" -w '%{http_code}' --max-time 30 -X POST "$U/v1/leases" \
    -d "{\"provider\":\"$Q\",\"holder\":\"bench-1\",\"purpose\":\"bench\",\"wait\":\"20s\"}" \
    >"$T/dr.code" &
DR=$!
seen=""
for i in $(seq 1 50); do
    req GET "/v1/providers/$Q/check?writer=router-3"
    if [[ $CODE == 423 && $(jqb .state) == draining ]]; then seen=1; break; fi
    sleep 0.1
done
[[ -n $seen ]] || fail "never saw the provider draining"
[[ $(jqb .message) == *"(draining: exclusive pending)" ]] || fail "draining message: $(jqb .message)"
req DELETE "/v1/leases/$S1"
expect_code 200
wait "$DR" || fail "draining waiter curl failed"
[[ $(cat "$T/dr.code") == 201 ]] || fail "draining waiter: $(cat "$T/dr.code") $(cat "$T/dr.body")"
req DELETE "/v1/leases/$(jq -r .token "$T/dr.body")"
expect_code 200

step "sweep expires a lapsed lease (history, metrics)"
R="gpu-03.$SFX"
req POST /v1/leases -d "{\"provider\":\"$R\",\"holder\":\"short\",\"purpose\":\"short\",\"ttl\":\"1s\"}"
expect_code 201
seen=""
for i in $(seq 1 40); do
    sleep 0.1
    req GET "/v1/history?provider=$R&limit=5"
    if [[ $(jqb '.[0].event') == expired ]]; then seen=1; break; fi
done
[[ -n $seen ]] || fail "no expired event within 4s"

step "metrics series"
req GET /metrics
expect_code 200
for series in 'fleetlease_active_leases{mode="exclusive",state="active"} ' \
    'fleetlease_active_leases{mode="shared",state="pending"} ' \
    'fleetlease_grants_total{mode="exclusive"} ' 'fleetlease_grants_total{mode="shared"} ' \
    'fleetlease_refusals_total{mode="exclusive"} ' 'fleetlease_heartbeats_total ' \
    'fleetlease_releases_total ' 'fleetlease_expiries_total ' 'fleetlease_sweep_runs_total ' \
    'fleetlease_checks_total{result="refused"} ' 'fleetlease_store_up 1' \
    'fleetlease_store_call_duration_seconds_bucket{op="acquire",le="+Inf"} ' \
    'fleetlease_store_call_duration_seconds_bucket{op="acquire",le="0.005"} ' \
    'fleetlease_store_call_duration_seconds_sum{op="check"} ' \
    'fleetlease_store_call_duration_seconds_count{op="sweep"} ' \
    'fleetlease_http_connections ' '# TYPE fleetlease_store_call_duration_seconds histogram'; do
    grep -qF -- "$series" "$T/body" || fail "metrics: no line starting '$series'"
done
v() { awk -v k="$1" 'index($0, k" ") == 1 {print $NF}' "$T/body"; }
[[ $(v 'fleetlease_grants_total{mode="exclusive"}') -ge 3 ]] || fail "grants counter"
[[ $(v 'fleetlease_refusals_total{mode="exclusive"}') -ge 1 ]] || fail "refusals counter"
[[ $(v fleetlease_heartbeats_total) -ge 1 ]] || fail "heartbeats counter"
[[ $(v fleetlease_releases_total) -ge 4 ]] || fail "releases counter"
[[ $(v fleetlease_expiries_total) -ge 1 ]] || fail "expiries counter"
[[ $(v fleetlease_sweep_runs_total) -ge 2 ]] || fail "sweep runs counter"
# Every line is a comment or `name{labels} number`.
grep -vE '^(# (HELP|TYPE) .*|[a-z_]+(\{[^}]*\})? -?[0-9.e+]+)$' "$T/body" &&
    fail "metrics lines not in the text format"

step "SIGTERM with a long poll in flight: 503 to the waiter, exit 0 promptly"
req POST /v1/leases -d "{\"provider\":\"$P\",\"holder\":\"bench-1\",\"purpose\":\"hold\",\"ttl\":\"30s\"}"
expect_code 201
HOLD=$(jqb .token)
curl -sS -o "$T/sd.body" -w '%{http_code}' --max-time 30 -X POST "$U/v1/leases" \
    -d "{\"provider\":\"$P\",\"holder\":\"bench-2\",\"purpose\":\"wait\",\"wait\":\"60s\"}" \
    >"$T/sd.code" &
SD=$!
sleep 0.5
stop_daemon
[[ $STOP_RC == 0 ]] || fail "exit status $STOP_RC after SIGTERM"
((STOP_MS < 5000)) || fail "took $STOP_MS ms to stop"
wait "$SD" || true
[[ $(cat "$T/sd.code") == 503 ]] || fail "waiter at shutdown: $(cat "$T/sd.code") $(cat "$T/sd.body")"
grep -q 'event=stopped' "$LOG" || fail "no event=stopped in the log"
grep -qi 'Sanitizer' "$LOG" && fail "sanitizer report in the log"
grep -q "$HOLD" "$LOG" && fail "a lease token appears in the log"
# The held lease is left to expire; clean it for a shared PostgreSQL.
"$BIN" --db "$DBURL" release "$P" --token "$HOLD" >/dev/null 2>&1 || true

step "--tokens: 401 without or with a wrong token; the token's name is the identity"
TOK_A=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOK_B=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
    echo "# name sha256(token)"
    echo "router-3 $(printf %s "$TOK_A" | sha256sum | cut -d' ' -f1)"
    echo ""
    echo "bench-1 $(printf %s "$TOK_B" | sha256sum | cut -d' ' -f1)"
} >"$T/tokens"
start_daemon --tokens "$T/tokens"
A=(-H "Authorization: Bearer $TOK_A")
B=(-H "Authorization: Bearer $TOK_B")
req GET "/v1/leases"
expect_code 401
[[ $(hdr WWW-Authenticate) == Bearer* ]] || fail "WWW-Authenticate"
req GET "/v1/leases" -H "Authorization: Bearer wrong-$TOK_A"
expect_code 401
req GET "/v1/leases" -H "Authorization: Basic $TOK_A"
expect_code 401
req GET /metrics
expect_code 401
req GET /healthz
expect_code 200
req GET "/v1/leases" "${A[@]}"
expect_code 200
req POST /v1/leases "${B[@]}" -d "{\"provider\":\"$P\",\"purpose\":\"authed\"}"
expect_code 201
[[ $(jqb .holder) == bench-1 ]] || fail "holder is not the token's name"
TB=$(jqb .token)
req POST /v1/leases "${A[@]}" -d "{\"provider\":\"$P\",\"holder\":\"bench-1\",\"purpose\":\"impostor\"}"
expect_code 403
[[ $(jqb .error) == forbidden ]] || fail "impostor error id"
req GET "/v1/providers/$P/check" "${A[@]}"
expect_code 423
req GET "/v1/providers/$P/check?writer=bench-1" "${A[@]}"
expect_code 403
[[ $(hdr X-Fleet-Message) == writer:*router-3* ]] || fail "403 without the reason in X-Fleet-Message: '$(hdr X-Fleet-Message)'"
req GET "/v1/providers/$P/check" "${B[@]}"
expect_code 200
req GET "/v1/auth?provider=$P" "${A[@]}"
expect_code 403
req GET "/v1/auth?provider=$P"
expect_code 401
[[ -n $(hdr X-Fleet-Message) ]] || fail "401 of /v1/auth without X-Fleet-Message (nginx shows only headers)"
req DELETE "/v1/leases/$TB" "${A[@]}"
expect_code 200
req GET /metrics "${A[@]}"
expect_code 200
grep -q "$TOK_A\|$TOK_B\|$TB" "$LOG" && fail "a token appears in the log"
kill -INT "$PID"
set +e
wait "$PID"
STOP_RC=$?
set -e
PID=""
[[ $STOP_RC == 0 ]] || fail "exit status $STOP_RC after SIGINT"
grep -qi 'Sanitizer' "$LOG" && fail "sanitizer report in the log"

step "startup refusals: non-loopback without --tokens, bad tokens file"
set +e
"$BIN" serve --db "$DBURL" --listen 0.0.0.0:0 >"$T/out" 2>"$T/err"
rc=$?
set -e
[[ $rc == 64 ]] || fail "non-loopback without --tokens: exit $rc"
grep -q 'insecure-no-auth' "$T/err" || fail "message does not name --insecure-no-auth: $(cat "$T/err")"
echo "x 1234" >"$T/bad-tokens"
set +e
"$BIN" serve --db "$DBURL" --tokens "$T/bad-tokens" >"$T/out" 2>"$T/err"
rc=$?
set -e
[[ $rc == 64 ]] || fail "bad tokens file: exit $rc"
grep -q 'line 1' "$T/err" || fail "bad tokens message: $(cat "$T/err")"
set +e
"$BIN" serve --db "$DBURL" --listen 127.0.0.1:0 --max-body 12 >"$T/out" 2>"$T/err"
rc=$?
set -e
[[ $rc == 64 ]] || fail "bad --max-body: exit $rc"

echo "PASS: http api scenario ($DBURL)" >&2
