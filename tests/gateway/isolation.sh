#!/usr/bin/env bash
# tests/gateway/isolation.sh DBURL BINARY STUB
#
# The "done when" of issue 6, end to end:
#   - a stub upstream that streams its replies and logs every request
#     (writer, lease header, fence, start and end in microseconds);
#   - two gateways in front of it (several gateways per provider);
#   - three writers (chat, coder via gateway a; arena via gateway b)
#     sending continuous streamed traffic;
#   - a benchmark under `fleetlease run --require-isolation` sending its
#     own traffic through both gateways with its token.
# Asserts:
#   - run exits 0 and prints a final report from 2 gateways with
#     concurrent_foreign_requests=0; the history holds the "isolation"
#     events; the daemon's GET /v1/leases/{token}/report answered during
#     the run; foreign_in_flight_at_grant=0 (the drain worked);
#   - the upstream's own log shows no foreign request overlapping the
#     exclusive window [granted, released], and every holder request in it
#     carries the token and the fence;
#   - every writer got 423 with the check's message during the window, and
#     was served again after the release;
#   - a streamed response (plain chunks and SSE) arrives in more than one
#     piece, the first before the upstream finished.
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
export LC_ALL=C
setup "$@"

PURPOSE="isolation bench"

step "start: stub upstream, two gateways, daemon"
start_stub
start_gateway a --drain-timeout 20s
start_gateway b --drain-timeout 20s --name "gateway-b"
start_daemon
GA=${GW_PORT[a]}
GB=${GW_PORT[b]}

step "a streamed response arrives in pieces, the first before the upstream finished"
curl -sSN -D "$T/stream.hdr" -H 'X-Fleet-Writer: probe' \
    "http://127.0.0.1:$GA/stream-check?chunks=4&delay_ms=250" |
    while IFS= read -r line; do echo "$(now_us) $line"; done >"$T/stream.out"
[[ $(wc -l <"$T/stream.out") -eq 4 ]] || fail "expected 4 lines, got: $(cat "$T/stream.out")"
grep -qi '^Transfer-Encoding: chunked' "$T/stream.hdr" || fail "not chunked: $(cat "$T/stream.hdr")"
first=$(head -n1 "$T/stream.out" | cut -d' ' -f1)
last=$(tail -n1 "$T/stream.out" | cut -d' ' -f1)
up_end=$(sed -n 's/.* end_us=\([0-9]*\) .*path=\/stream-check .*/\1/p' "$STUB_LOG" | head -n1)
[[ -n $up_end ]] || fail "the stub did not log /stream-check"
((last - first >= 500000)) || fail "pieces arrived together: first $first, last $last"
((first < up_end)) || fail "first piece ($first) not before the upstream finished ($up_end)"
echo "   first piece $(((up_end - first) / 1000)) ms before the upstream finished" >&2
# The same through the other gateway as server-sent events.
curl -sSN -D "$T/sse.hdr" -H 'X-Fleet-Writer: probe' \
    "http://127.0.0.1:$GB/sse-check?chunks=3&delay_ms=200&sse=1" |
    while IFS= read -r line; do if [[ -n $line ]]; then echo "$(now_us) $line"; fi; done >"$T/sse.out"
grep -qi '^Content-Type: text/event-stream' "$T/sse.hdr" || fail "SSE content type lost"
[[ $(grep -c '^[0-9]* data: ' "$T/sse.out") -eq 3 ]] || fail "SSE events: $(cat "$T/sse.out")"
sfirst=$(head -n1 "$T/sse.out" | cut -d' ' -f1)
slast=$(tail -n1 "$T/sse.out" | cut -d' ' -f1)
((slast - sfirst >= 300000)) || fail "SSE events arrived together"

step "three writers send continuous traffic"
writer() {
    local name=$1 port=$2 out=$T/w.$1 code t0 t1 msg
    while :; do
        t0=$(now_us)
        code=$(curl -sS -o "$T/wb.$name" -w '%{http_code}' --max-time 20 \
            -H "X-Fleet-Writer: $name" \
            "http://127.0.0.1:$port/v1/generate?chunks=3&delay_ms=40&w=$name" 2>/dev/null) || code=err
        t1=$(now_us)
        msg=""
        [[ $code == 423 ]] && msg=$(jq -r .message "$T/wb.$name" 2>/dev/null || echo "?")
        echo "$t0 $t1 $code $msg" >>"$out"
        [[ $code == 423 ]] && sleep 0.05
    done
}
writer chat "$GA" &
WPIDS=($!)
writer coder "$GA" &
WPIDS+=($!)
writer arena "$GB" &
WPIDS+=($!)
PIDS+=("${WPIDS[@]}")
sleep 1.5
for w in chat coder arena; do
    grep -q ' 200 ' "$T/w.$w" || fail "writer $w was not served before the benchmark"
done

step "benchmark under fleetlease run --require-isolation"
cat >"$T/bench.sh" <<'EOF'
#!/usr/bin/env bash
# Runs under `fleetlease run`: its own traffic, with its token, through both
# gateways; the daemon's report endpoint read while the lease is held.
set -u
bad=0
for i in $(seq 1 10); do
    for port in "$GA" "$GB"; do
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
            -H "X-Fleet-Lease: $FLEETLEASE_TOKEN" -H 'X-Fleet-Writer: bench' \
            "http://127.0.0.1:$port/v1/generate?chunks=2&delay_ms=30&w=bench")
        echo "$code" >>"$T/bench.codes"
        [[ $code == 200 ]] || bad=1
    done
done
# Expect: 100-continue during the lease: a foreign request gets no 100 (it
# is not invited to upload a body only to be refused); the holder's does.
expect_probe() {
    exec 3<>"/dev/tcp/127.0.0.1/$1" || { echo none; return; }
    printf 'POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n' >&3
    [[ -n $2 ]] && printf 'X-Fleet-Lease: %s\r\n' "$2" >&3
    printf '\r\n' >&3
    local line
    if IFS= read -r -t 0.6 line <&3; then echo "${line%$'\r'}"; else echo none; fi
    exec 3>&-
}
expect_probe "$GA" "" >"$T/expect.foreign"
expect_probe "$GA" "$FLEETLEASE_TOKEN" >"$T/expect.holder"
curl -sS -o "$T/report_mid.json" -w '%{http_code}\n' \
    "http://127.0.0.1:$SP/v1/leases/$FLEETLEASE_TOKEN/report" >"$T/report_mid.code"
echo "$FLEETLEASE_FENCE" >"$T/bench.fence"
exit $bad
EOF
chmod +x "$T/bench.sh"
export T GA GB SP
set +e
"$BIN" --db "$DBURL" run "$P" --purpose "$PURPOSE" --holder bench --wait 30s --ttl 10s \
    --require-isolation -- "$T/bench.sh" 2>"$T/run.err"
RUN_RC=$?
set -e
cat "$T/run.err" >&2
[[ $RUN_RC -eq 0 ]] || fail "run exited $RUN_RC: $(cat "$T/run.err")"
FENCE=$(cat "$T/bench.fence")
[[ $(cat "$T/expect.foreign") == none ]] ||
    fail "a foreign Expect: 100-continue was invited during the lease: $(cat "$T/expect.foreign")"
[[ $(cat "$T/expect.holder") == "HTTP/1.1 100 Continue" ]] ||
    fail "the holder's Expect: 100-continue got: $(cat "$T/expect.holder")"

step "writers are served again after the release"
sleep 1.5
kill "${WPIDS[@]}" 2>/dev/null || true
wait "${WPIDS[@]}" 2>/dev/null || true

step "the report: final, 2 gateways, concurrent_foreign_requests=0, drained"
grep -q "isolation on $P (fence $FENCE, 2 gateways, final): concurrent_foreign_requests=0 foreign_in_flight_at_grant=0 " \
    "$T/run.err" || fail "run's report line: $(grep isolation "$T/run.err")"
grep -q "refused by writer: .*chat=" "$T/run.err" || fail "no refusals of chat reported"
[[ $(cat "$T/report_mid.code") == 200 ]] || fail "GET /v1/leases/{token}/report: $(cat "$T/report_mid.code") $(cat "$T/report_mid.json")"
jq -e --argjson f "$FENCE" --arg p "$P" \
    '.provider == $p and .fence == $f and .gateways == 2 and .concurrent_foreign_requests == 0' \
    "$T/report_mid.json" >/dev/null || fail "daemon report mid-run: $(cat "$T/report_mid.json")"
[[ $(grep -c '^200$' "$T/bench.codes") -eq 20 ]] || fail "bench codes: $(sort "$T/bench.codes" | uniq -c)"
"$BIN" --db "$DBURL" history "$P" --limit 500 --json >"$T/history.json"
jq -e --argjson f "$FENCE" \
    '[.[] | select(.event == "isolation" and .fence == $f)] | length == 2 and
     all(.detail | test("concurrent_foreign_requests=0 foreign_in_flight_at_grant=0 "))' \
    "$T/history.json" >/dev/null ||
    fail "isolation events in history: $(jq -c --argjson f "$FENCE" '[.[] | select(.event == "isolation")]' "$T/history.json")"
HOLDER_SUM=$(jq --argjson f "$FENCE" '[.[] | select(.event == "isolation" and .fence == $f) |
    .detail | capture("holder_requests=(?<n>[0-9]+)").n | tonumber] | add' "$T/history.json")
[[ $HOLDER_SUM -eq 20 ]] || fail "holder_requests summed over gateways: $HOLDER_SUM, want 20"
G_MS=$(jq --argjson f "$FENCE" '[.[] | select(.event == "granted" and .fence == $f)][0].at_ms' "$T/history.json")
R_MS=$(jq --argjson f "$FENCE" '[.[] | select(.event == "released" and .fence == $f)][0].at_ms' "$T/history.json")
[[ $G_MS =~ ^[0-9]+$ && $R_MS =~ ^[0-9]+$ ]] || fail "no granted/released events for fence $FENCE"
G_US=$((G_MS * 1000))
R_US=$((R_MS * 1000))
echo "   exclusive window: $(((R_US - G_US) / 1000)) ms" >&2

step "the upstream's log: no foreign request overlaps the exclusive window"
TOKEN_SEEN=$(awk -v f="$FENCE" '/writer=bench/ { for (i = 1; i <= NF; i++) if ($i ~ /^lease=/) l = substr($i, 7); } END { print l }' "$STUB_LOG")
awk -v g="$G_US" -v r="$R_US" -v f="$FENCE" '
    { delete kv; for (i = 1; i <= NF; i++) { split($i, a, "="); kv[a[1]] = substr($i, length(a[1]) + 2) } }
    kv["path"] != "/v1/generate" { next }
    kv["lease"] == "-" {
        n_foreign++
        if (kv["start_us"] + 0 < r && kv["end_us"] + 0 > g) {
            print "foreign request overlaps the window: " $0; bad = 1
        }
        next
    }
    {
        n_holder++
        if (kv["fence"] != f) { print "holder request without the fence: " $0; bad = 1 }
        if (kv["start_us"] + 0 < g || kv["end_us"] + 0 > r) { print "holder request outside the window: " $0; bad = 1 }
    }
    END {
        if (n_holder != 20) { print "holder requests at the upstream: " n_holder ", want 20"; bad = 1 }
        if (n_foreign < 30) { print "too little foreign traffic: " n_foreign; bad = 1 }
        printf "   upstream saw %d foreign and %d holder requests\n", n_foreign, n_holder > "/dev/stderr"
        exit bad
    }' "$STUB_LOG" >"$T/overlap.out" || fail "$(cat "$T/overlap.out")"
[[ ${#TOKEN_SEEN} -eq 32 ]] || fail "the holder's token did not reach the upstream"

step "writers got 423 with the message during the window, and 200 after the release"
for w in chat coder arena; do
    awk -v g="$G_US" -v r="$R_US" -v p="$PURPOSE" -v w="$w" '
        $3 == 423 && $1 >= g && $1 < r {
            in_window++
            if (index($0, "host leased for " p " by bench until ") == 0) { print w ": 423 without the message: " $0; bad = 1 }
        }
        $3 == 200 && $1 > r { after++ }
        $3 == 200 && $1 >= g && $2 <= r { print w ": served inside the window: " $0; bad = 1 }
        $3 != 200 && $3 != 423 { print w ": unexpected status: " $0; bad = 1 }
        END {
            if (!in_window) { print w ": no 423 inside the window"; bad = 1 }
            if (!after) { print w ": not served after the release"; bad = 1 }
            printf "   %s: %d refusals in the window, %d answers after it\n", w, in_window, after > "/dev/stderr"
            exit bad
        }' "$T/w.$w" >"$T/writer.out" || fail "$(cat "$T/writer.out")"
done

step "gateways stop cleanly; the metrics agree"
curl -s "http://127.0.0.1:$GA/_fleet/metrics" >"$T/metrics.a"
grep -q '^fleetlease_gateway_concurrent_foreign_requests_total 0$' "$T/metrics.a" ||
    fail "gateway a metrics: $(grep concurrent "$T/metrics.a")"
grep -q '^fleetlease_gateway_drains_total [1-9]' "$T/metrics.a" || fail "gateway a saw no drain"
stop_gateway a
stop_gateway b
no_sanitizer_reports "$T"/gw.*.log "$T/serve.log" "$T/run.err"
echo "PASS" >&2
