#!/usr/bin/env bash
# tests/gateway/proxy.sh DBURL BINARY STUB
#
# The gateway as a proxy, and its edges:
#   - headers: hop-by-hop ones (and those named in Connection) are not
#     forwarded, either way; the body and its length are; Host is kept;
#     a client-sent X-Fleet-Fence is dropped; Content-Length answers pass
#     as such; HEAD; HTTP/1.0 clients; one upstream connection for many
#     requests (queued, kept alive);
#   - 400 for a malformed X-Fleet-Lease or X-Fleet-Writer, 405 for TRACE,
#     the /_fleet/ endpoints;
#   - upstream failures: 502 when it hangs up or refuses connections,
#     504 when it is silent past --upstream-timeout, a cut connection when
#     it dies mid-body;
#   - a client that hangs up (mid-stream, or while the upstream is still
#     silent): the upstream request is cancelled, nothing stays in flight;
#   - --drain-timeout: a foreign request longer than the timeout is cut
#     off: the exclusive lease is granted anyway, the report says
#     foreign_in_flight_at_grant=1 and foreign_cut_off=1, and the request
#     itself still completes.
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
export LC_ALL=C
setup "$@"

step "start"
start_stub
start_gateway a --upstream-connections 1 --upstream-timeout 1s --drain-timeout 1s
GA=${GW_PORT[a]}
U=http://127.0.0.1:$GA

step "headers: hop-by-hop dropped both ways, body and Host forwarded"
printf 'hello, upstream' >"$T/body"
curl -sS -D "$T/h1" -o "$T/b1" -X POST --data-binary @"$T/body" \
    -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: 1' -H 'Keep-Alive: timeout=5' \
    -H 'X-Fleet-Fence: 999' -H 'X-Fleet-Writer: chat' -H 'X-Custom: kept' -H 'Host: model.example' \
    -H 'X_Fleet_Fence: 4242' -H 'X_Custom: dropped' "$U/echo?echo=1"
grep -q '^body-bytes: 15$' "$T/b1" || fail "body not forwarded: $(cat "$T/b1")"
grep -q '^Content-Length: 15$' "$T/b1" || fail "Content-Length not set: $(cat "$T/b1")"
grep -q '^X-Custom: kept$' "$T/b1" || fail "end-to-end header lost"
grep -q '^Host: model.example$' "$T/b1" || fail "Host not kept: $(cat "$T/b1")"
grep -q '^X-Fleet-Writer: chat$' "$T/b1" || fail "X-Fleet-Writer not forwarded"
if grep -qiE '^(X-Secret|Keep-Alive|X-Fleet-Fence|X_Fleet_Fence|X_Custom):' "$T/b1"; then
    fail "hop-by-hop or spoofed header forwarded: $(cat "$T/b1")"
fi
grep -qi '^X-Hop:' "$T/h1" && fail "response header named in Connection passed: $(cat "$T/h1")"
grep -qi '^Content-Length: ' "$T/h1" || fail "Content-Length answer not passed as such"

step "Content-Length bodies, HEAD, HTTP/1.0, and one kept-alive upstream connection"
curl -sS -D "$T/h2" -o "$T/b2" "$U/len?chunks=3&length=1"
grep -qi '^Content-Length: 192' "$T/h2" || fail "Content-Length: $(cat "$T/h2")"
[[ $(wc -c <"$T/b2") -eq 192 ]] || fail "body length $(wc -c <"$T/b2")"
code=$(curl -sS -I -o /dev/null -w '%{http_code}' "$U/head?chunks=1")
[[ $code == 200 ]] || fail "HEAD: $code"
curl -sS -0 -o "$T/b3" "$U/old?chunks=3&delay_ms=20"
[[ $(grep -c '^chunk ' "$T/b3") -eq 3 ]] || fail "HTTP/1.0 client: $(cat "$T/b3")"
# Three at once over --upstream-connections 1: queued, all served.
QP=()
for i in 1 2 3; do
    curl -sS -o "$T/q$i" -w '%{http_code}\n' "$U/queue?chunks=2&delay_ms=100" >"$T/q$i.code" &
    QP+=($!)
done
wait "${QP[@]}"
for i in 1 2 3; do
    [[ $(cat "$T/q$i.code") == 200 ]] || fail "queued request $i: $(cat "$T/q$i.code")"
done
grep -q 'fleetlease_gateway_upstream_connections{use="idle"} 1' <(curl -s "$U/_fleet/metrics") ||
    fail "upstream connections: $(curl -s "$U/_fleet/metrics" | grep upstream_conn)"

step "chunked request bodies, Expect: 100-continue, pipelining, a slow reader of a big body"
seq 1 2000 >"$T/big"
curl -sS -o "$T/b11" -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "$U/echo?echo=1"
grep -q "^body-bytes: $(wc -c <"$T/big")$" "$T/b11" || fail "chunked body: $(cat "$T/b11")"
curl -sS -o "$T/b12" -X PUT -H 'Expect: 100-continue' --data-binary @"$T/big" "$U/echo?echo=1"
grep -q "^body-bytes: $(wc -c <"$T/big")$" "$T/b12" || fail "100-continue body: $(cat "$T/b12")"
# Two requests in one write; both answers come back, in order.
exec 3<>"/dev/tcp/127.0.0.1/$GA"
printf 'GET /p1?chunks=2&delay_ms=50 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2?chunks=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 5 cat <&3 >"$T/pipe" || true
exec 3<&-
[[ $(grep -c '^HTTP/1.1 200' "$T/pipe") -eq 2 ]] || fail "pipelined answers: $(cat "$T/pipe")"
grep -n 'chunk 1/1' "$T/pipe" | grep -q . || fail "second pipelined answer missing"
# 40000 pieces of 64 bytes (2.5 MB) read at 1 MB/s: backpressure, nothing lost.
curl -sS -o "$T/b13" --limit-rate 1M "$U/big?chunks=40000"
[[ $(wc -c <"$T/b13") -eq 2560000 ]] || fail "big body through a slow reader: $(wc -c <"$T/b13") bytes"

step "malformed requests: 400, 431, 505, and no smuggling"
raw() { # send $1 raw, print the status line
    exec 3<>"/dev/tcp/127.0.0.1/$GA"
    printf '%b' "$1" >&3
    timeout 5 head -n1 <&3 | tr -d '\r'
    exec 3<&-
}
[[ $(raw 'GARBAGE\r\n\r\n') == 'HTTP/1.1 400 Bad Request' ]] || fail "garbage request line"
[[ $(raw 'GET / HTTP/2.0\r\nHost: x\r\n\r\n') == 'HTTP/1.1 505 HTTP Version Not Supported' ]] ||
    fail "HTTP/2.0 request line"
[[ $(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n') == 'HTTP/1.1 400 Bad Request' ]] ||
    fail "Content-Length with Transfer-Encoding was accepted"
[[ $(raw 'GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n') == 'HTTP/1.1 400 Bad Request' ]] || fail "obs-fold"
[[ $(raw 'GET / HTTP/1.1\r\n\r\n') == 'HTTP/1.1 400 Bad Request' ]] || fail "HTTP/1.1 without Host"
big_hdr=$(head -c 70000 /dev/zero | tr '\0' a)
[[ $(raw "GET / HTTP/1.1\r\nHost: x\r\nX-Big: $big_hdr\r\n\r\n") == 'HTTP/1.1 431 Request Header Fields Too Large' ]] ||
    fail "a 70 KB header"

step "400 for malformed X-Fleet headers, 405 for TRACE, the local endpoints"
code=$(curl -sS -o "$T/b4" -w '%{http_code}' -H 'X-Fleet-Lease: nope' "$U/x")
[[ $code == 400 ]] && jq -e '.error == "invalid" and (.message | startswith("X-Fleet-Lease: token: must be 32 lowercase hex digits"))' "$T/b4" >/dev/null ||
    fail "bad token: $code $(cat "$T/b4")"
long=$(printf 'w%.0s' $(seq 1 300))
code=$(curl -sS -o "$T/b5" -w '%{http_code}' -H "X-Fleet-Writer: $long" "$U/x")
[[ $code == 400 ]] && jq -e '.message | startswith("X-Fleet-Writer: ")' "$T/b5" >/dev/null ||
    fail "long writer: $code $(cat "$T/b5")"
code=$(curl -sS -o "$T/b6" -w '%{http_code}' -X TRACE "$U/x")
[[ $code == 405 ]] || fail "TRACE: $code $(cat "$T/b6")"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$U/_fleet/nope") == 404 ]] || fail "/_fleet/nope"
curl -s "$U/_fleet/status" | jq -e --arg p "$P" '.provider == $p and .store_up == true' >/dev/null ||
    fail "/_fleet/status: $(curl -s "$U/_fleet/status")"

step "upstream failures: 502 on hang-up, 504 on silence, a cut connection mid-body"
code=$(curl -sS -o "$T/b7" -w '%{http_code}' "$U/x?close=1")
[[ $code == 502 ]] && jq -e '.error == "bad_gateway" and (.message | contains("closed the connection"))' "$T/b7" >/dev/null ||
    fail "hang-up: $code $(cat "$T/b7")"
t0=$(now_us)
code=$(curl -sS -o "$T/b8" -w '%{http_code}' "$U/x?sleep_ms=3000")
t1=$(now_us)
[[ $code == 504 ]] && jq -e '.error == "upstream_timeout"' "$T/b8" >/dev/null ||
    fail "silence: $code $(cat "$T/b8")"
((t1 - t0 < 2500000)) || fail "504 took $(((t1 - t0) / 1000)) ms"
set +e
curl -sS -N -o "$T/b9" "$U/x?chunks=5&delay_ms=100&close_after=2" 2>"$T/b9.err"
rc=$?
set -e
((rc != 0)) || fail "a body cut mid-way looked complete to the client"
# The stub hangs up right after its second piece, which may not leave its
# buffer: one or two pieces reach the client, then the cut.
grep -q '^chunk 1/5' "$T/b9" || fail "pieces before the cut: $(cat "$T/b9")"
# A gateway whose upstream refuses connections.
GW_UPSTREAM_PORT=1 start_gateway dead
code=$(curl -sS -o "$T/b10" -w '%{http_code}' "http://127.0.0.1:${GW_PORT[dead]}/x")
[[ $code == 502 ]] && jq -e '.message | contains("cannot connect")' "$T/b10" >/dev/null ||
    fail "refused: $code $(cat "$T/b10")"
stop_gateway dead

step "a client that hangs up: the upstream request is cancelled"
set +e
curl -sS -N -o /dev/null --max-time 0.5 "$U/x?chunks=20&delay_ms=200" 2>/dev/null
curl -sS -o /dev/null --max-time 0.5 "$U/x?sleep_ms=900" 2>/dev/null
set -e
sleep 1.5
st=$(curl -s "$U/_fleet/status")
jq -e '.foreign_in_flight == 0 and .requests_open == 0' <<<"$st" >/dev/null ||
    fail "still in flight after the clients left: $st"
aborts=$(curl -s "$U/_fleet/metrics" | awk '$1 == "fleetlease_gateway_client_aborts_total" { print $2 }')
((aborts >= 2)) || fail "client aborts counted: $aborts, want at least 2"

step "--drain-timeout: a long foreign request is cut off, the exclusive granted anyway"
curl -sS -N -o "$T/long" -H 'X-Fleet-Writer: slow' "$U/x?chunks=6&delay_ms=500" &
LONG=$!
sleep 0.5
set +e
"$BIN" --db "$DBURL" run "$P" --purpose "cut test" --holder bench --wait 10s --require-isolation \
    -- sleep 0.3 2>"$T/run.err"
rc=$?
set -e
cat "$T/run.err" >&2
# The cut-off request was still running at the host during the lease: the
# run is not isolated, and --require-isolation says so.
[[ $rc -eq 78 ]] || fail "run exited $rc, want 78 (a foreign request in flight at the grant)"
grep -q "isolation violated: 0 foreign request(s) reached .* 1 were still in flight there" "$T/run.err" ||
    fail "no isolation verdict: $(cat "$T/run.err")"
grep -q "1 gateway, final): concurrent_foreign_requests=0 foreign_in_flight_at_grant=1 foreign_refused=0 foreign_cut_off=1 " "$T/run.err" ||
    fail "report after a drain timeout: $(grep isolation "$T/run.err")"
wait "$LONG" || fail "the cut-off request did not complete"
[[ $(grep -c '^chunk ' "$T/long") -eq 6 ]] || fail "cut-off request body: $(cat "$T/long")"
grep -q 'event=drain_timeout .*cut_off=1' "${GW_LOG[a]}" || fail "no drain_timeout logged"

step "stop"
stop_gateway a
no_sanitizer_reports "$T"/gw.*.log "$T/run.err"
echo "PASS" >&2
