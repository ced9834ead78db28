#!/usr/bin/env bash
# tests/http/hostile.sh DBURL BINARY
#
# Hostile input against a real `fleetlease serve`: every limit answers 4xx
# (or closes the connection, for connections themselves), the daemon keeps
# serving, /healthz stays fast and memory stays bounded.
#   - bodies past --max-body (with Content-Length and chunked): 413
#   - JSON nested 100k deep, invalid UTF-8, \u0000, unknown / mistyped /
#     missing / duplicate fields, not an object, bad values: 400 naming it
#   - request line and headers past --max-headers: 4xx
#   - unknown path 404, wrong method 405 with Allow
#   - more long polls than --max-waiters: 503 with Retry-After
#   - thousands of idle connections against --max-connections: the oldest
#     idle ones are closed, /healthz answers at once, RSS bounded
#   - slow-loris (one header byte per second): cut after --request-timeout
#
# DBURL: "sqlite:tmp" or "env:DATABASE_URL" (skipped with 77 when unset).
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
setup "$@"

P="gpu-01.$SFX"
MAXCONN=256

step "start"
start_daemon --max-body 131072 --max-headers 8192 --max-connections $MAXCONN \
    --request-timeout 2s --max-waiters 1 --sweep-interval 0
RSS0=$(rss_kb)

acq() { req POST /v1/leases -H 'Expect:' "$@"; }
bad() { # bad WANT_CODE WANT_SUBSTRING [curl args]
    local want=$1 sub=$2
    shift 2
    acq "$@"
    expect_code "$want"
    [[ -z $sub || $(jqb .message) == *"$sub"* ]] || fail "message does not mention '$sub': $(jqb .message)"
}

step "body over --max-body: 413"
head -c 200000 /dev/zero | tr '\0' ' ' >"$T/big"
acq --data-binary @"$T/big"
expect_code 413
acq --data-binary @"$T/big" -H 'Transfer-Encoding: chunked'
[[ $CODE == 413 || $CODE == 400 ]] || fail "chunked body over the limit: $CODE"

step "deep JSON (100k nested arrays): 400"
head -c 100000 /dev/zero | tr '\0' '[' >"$T/deep"
bad 400 "depth" --data-binary @"$T/deep"
{ printf '{"provider":'; head -c 60000 /dev/zero | tr '\0' '['; } >"$T/deep2"
bad 400 "depth" --data-binary @"$T/deep2"

step "invalid UTF-8, NUL: 400"
printf '{"provider":"%s","holder":"h\xff\xfe","purpose":"p"}' "$P" >"$T/utf8"
bad 400 "UTF-8" --data-binary @"$T/utf8"
printf '{"provider":"%s","holder":"\xc0\xaf","purpose":"p"}' "$P" >"$T/utf8b"
bad 400 "" --data-binary @"$T/utf8b"
bad 400 "" --data-binary "{\"provider\":\"$P\",\"holder\":\"a\\u0000b\",\"purpose\":\"p\"}"
printf '{"provider":"%s",\0"purpose":"p"}' "$P" >"$T/nul"
bad 400 "" --data-binary @"$T/nul"

step "malformed and unknown input: 400 naming the problem"
bad 400 "unknown field \"color\"" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\",\"color\":\"red\"}"
bad 400 "ttl: must be a string" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\",\"ttl\":30}"
bad 400 "holder: must be a string" -d "{\"provider\":\"$P\",\"holder\":[],\"purpose\":\"p\"}"
bad 400 "purpose: missing" -d "{\"provider\":\"$P\",\"holder\":\"h\"}"
bad 400 "provider: missing" -d '{"holder":"h","purpose":"p"}'
bad 400 "holder: missing" -d "{\"provider\":\"$P\",\"purpose\":\"p\"}"
bad 400 "must be a JSON object" -d '[1,2,3]'
bad 400 "invalid JSON" -d '{"provider":'
bad 400 "invalid JSON" -d "{\"provider\":\"$P\",\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\"}"
bad 400 "body: missing" -d ''
bad 400 "provider" -d '{"provider":"gpu 01","holder":"h","purpose":"p"}'
bad 400 "ttl" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\",\"ttl\":\"25h\"}"
bad 400 "wait" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\",\"wait\":\"8d\"}"
bad 400 "mode" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"p\",\"mode\":\"solo\"}"
LONG=$(head -c 300 /dev/zero | tr '\0' 'x')
bad 400 "holder" -d "{\"provider\":\"$P\",\"holder\":\"$LONG\",\"purpose\":\"p\"}"
bad 400 "purpose" -d "{\"provider\":\"$P\",\"holder\":\"h\",\"purpose\":\"a\\nb\"}"
req POST "/v1/leases/0123456789abcdef0123456789abcdef/heartbeat" -d '{"ttl":"60s"}'
expect_code 400
req GET "/v1/providers/gpu%0001/check"
expect_code 400
req GET "/v1/history?limit=abc"
expect_code 400
req GET "/v1/leases?provider=a&provider=b"
expect_code 400

step "request line and headers past --max-headers: 4xx"
HUGE=$(head -c 20000 /dev/zero | tr '\0' 'a')
req GET /healthz -H "X-Huge: $HUGE"
[[ $CODE =~ ^4[0-9][0-9]$ ]] || fail "huge header: $CODE"
req GET "/healthz?$HUGE"
[[ $CODE =~ ^4[0-9][0-9]$ ]] || fail "huge request line: $CODE"
MANY=()
for i in $(seq 1 1000); do MANY+=(-H "X-H$i: v"); done
req GET /healthz "${MANY[@]}"
[[ $CODE =~ ^4[0-9][0-9]$ ]] || fail "many headers: $CODE"

step "unknown path 404, wrong method 405"
req GET /v2/leases
expect_code 404
[[ $(jqb .error) == not_found ]] || fail "404 body"
req PUT /v1/leases -d '{}'
expect_code 405
[[ $(hdr Allow) == "GET, POST" ]] || fail "Allow: $(hdr Allow)"
req POST /healthz
expect_code 405
(exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'HELLO\r\n\r\n' >&3 && timeout 5 cat <&3 >"$T/junk.out") || true
if [[ -s $T/junk.out ]]; then
    grep -qa '^HTTP/1\.[01] 4' "$T/junk.out" || fail "junk request line: $(head -c 200 "$T/junk.out")"
fi

step "ambiguous framing: conflicting Content-Length, unknown Transfer-Encoding (no smuggling)"
# The answer must be an error that closes the connection, so that nothing
# after the first body is ever read as a request (the request sends no
# more than evhttp reads, so that the close is a FIN, not a reset).
raw() { timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "$2" >&3; cat <&3' _ "$PORT" "$1"; }
OUT=$(raw 'POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}') ||
    fail "conflicting Content-Length: the connection was not closed"
[[ $(grep -c '^HTTP/1.1 ' <<<"$OUT") == 1 && $OUT == "HTTP/1.1 400"* && $OUT == *"Connection: close"* ]] ||
    fail "conflicting Content-Length: want one 400 and a close, got: $OUT"
OUT=$(raw 'POST /v1/leases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n') ||
    fail "unknown Transfer-Encoding: the connection was not closed"
[[ $(grep -c '^HTTP/1.1 ' <<<"$OUT") == 1 && $OUT == "HTTP/1.1 501"* ]] ||
    fail "unknown Transfer-Encoding: want one 501, got: $OUT"

step "more long polls than --max-waiters: 503 with Retry-After"
acq -d "{\"provider\":\"$P\",\"holder\":\"a\",\"purpose\":\"hold\"}"
expect_code 201
HOLD=$(jqb .token)
curl -sS -o "$T/w1.body" -w '%{http_code}' --max-time 20 -X POST "$U/v1/leases" \
    -d "{\"provider\":\"$P\",\"holder\":\"b\",\"purpose\":\"wait\",\"wait\":\"10s\"}" >"$T/w1.code" &
W1=$!
for i in $(seq 1 50); do
    req GET /healthz
    [[ $(jqb .long_polls) == 1 ]] && break
    sleep 0.1
done
acq -d "{\"provider\":\"$P\",\"holder\":\"c\",\"purpose\":\"wait too\",\"wait\":\"10s\"}"
expect_code 503
[[ $(jqb .error) == busy && -n $(hdr Retry-After) ]] || fail "503 body or Retry-After"
req DELETE "/v1/leases/$HOLD"
expect_code 200
wait "$W1" || true
[[ $(cat "$T/w1.code") == 201 ]] || fail "first waiter: $(cat "$T/w1.code")"
req DELETE "/v1/leases/$(jq -r .token "$T/w1.body")"
expect_code 200

step "slow-loris: one header byte per second is cut after --request-timeout"
(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&3
    start=$SECONDS
    for i in $(seq 1 20); do
        sleep 1
        printf 'a' >&3 2>/dev/null || { echo $((SECONDS - start)) >"$T/loris"; exit 0; }
    done
    echo never >"$T/loris"
) &
LORIS=$!
# A slow body is cut the same way.
(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    printf 'POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{' >&3
    start=$SECONDS
    for i in $(seq 1 20); do
        sleep 1
        printf ' ' >&3 2>/dev/null || { echo $((SECONDS - start)) >"$T/slowbody"; exit 0; }
    done
    echo never >"$T/slowbody"
) &
SLOWB=$!

step "idle connection flood against --max-connections $MAXCONN"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
N=2000
LIM=$(ulimit -n)
if ((LIM - 200 < N)); then N=$((LIM - 200)); fi
((N > MAXCONN + 100)) || fail "the open-file limit ($LIM) is too low for this test"
FDS=()
for ((i = 0; i < N; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect $i failed"
    FDS+=("$fd")
done
echo "opened $N idle connections" >&2
t0=$(date +%s%N)
req GET /healthz --max-time 3
t1=$(date +%s%N)
expect_code 200
(((t1 - t0) / 1000000 < 1500)) || fail "/healthz took $(((t1 - t0) / 1000000)) ms under the flood"
OPEN=$(jqb .connections)
((OPEN <= MAXCONN + 130)) || fail "$OPEN connections open, limit $MAXCONN"
# The daemon accepts at its own pace: wait until it has seen the flood.
for i in $(seq 1 50); do
    req GET /metrics
    expect_code 200
    ACCEPTED=$(awk '$1 == "fleetlease_http_connections_accepted_total" {print $2}' "$T/body")
    EVICTED=$(awk '$1 == "fleetlease_http_connections_evicted_total" {print $2}' "$T/body")
    REFUSED=$(awk '$1 == "fleetlease_http_connections_refused_total" {print $2}' "$T/body")
    ((EVICTED + REFUSED >= N - MAXCONN)) && break
    sleep 0.1
done
((EVICTED + REFUSED >= N - MAXCONN)) ||
    fail "$ACCEPTED accepted, only $EVICTED evicted + $REFUSED refused for $N opened"
OPEN=$(awk '$1 == "fleetlease_http_connections" {print $2}' "$T/body")
((OPEN <= MAXCONN + 1)) || fail "$OPEN connections open, limit $MAXCONN"
# The lease API works under the flood.
acq -d "{\"provider\":\"$P\",\"holder\":\"a\",\"purpose\":\"under flood\"}"
expect_code 201
req DELETE "/v1/leases/$(jqb .token)"
expect_code 200
RSS1=$(rss_kb)
for fd in "${FDS[@]}"; do exec {fd}>&-; done
echo "RSS before ${RSS0} kB, under the flood ${RSS1} kB" >&2
((RSS1 - RSS0 < 65536)) || fail "RSS grew by $((RSS1 - RSS0)) kB"

step "slow clients were cut"
wait "$LORIS" || true
wait "$SLOWB" || true
L=$(cat "$T/loris")
B=$(cat "$T/slowbody")
[[ $L != never && $L -le 8 ]] || fail "slow-loris connection lasted: $L s"
[[ $B != never && $B -le 8 ]] || fail "slow body connection lasted: $B s"

step "still serving; connections drained; clean stop"
for i in $(seq 1 30); do
    req GET /healthz
    expect_code 200
    (($(jqb .connections) <= 2)) && break
    sleep 0.2
done
(($(jqb .connections) <= 2)) || fail "connections not reaped: $(jqb .connections)"
RSS2=$(rss_kb)
((RSS2 - RSS0 < 65536)) || fail "RSS grew by $((RSS2 - RSS0)) kB"
stop_daemon
[[ $STOP_RC == 0 ]] || fail "exit status $STOP_RC after SIGTERM"
((STOP_MS < 3000)) || fail "took $STOP_MS ms to stop"
grep -qi 'Sanitizer' "$LOG" && fail "sanitizer report in the log"
grep -q 'connections_leaked' "$LOG" && fail "connection records leaked"

echo "PASS: http hostile input ($DBURL)" >&2
