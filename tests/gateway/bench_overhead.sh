#!/usr/bin/env bash
# tests/gateway/bench_overhead.sh FLEETLEASE STUB [SECONDS]
#
# The gateway's overhead, measured with wrk against the same upstream
# (the stub's fast path: a 66-byte JSON answer, at once):
#   direct   wrk -> stub
#   gateway  wrk -> fleetlease gateway -> stub   (admission, shared lease held)
#   nginx    wrk -> nginx proxy_pass -> stub     (keepalive upstream, no buffering)
# Latency: one connection (-c1), p50/p99.  Throughput: 64 connections.
# Each cell is the median of ROUNDS (default 3) runs of SECONDS (default
# 5), the three targets interleaved.
# Both proxies get one worker (the gateway's loop is one thread).
# Prints a Markdown table (docs/gateway.md has the results and the setup).
# Use a release build: sanitizers cost more than the proxy.
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).  Stops
# only the processes it started.
set -euo pipefail
BIN=${1:?usage: bench_overhead.sh FLEETLEASE STUB [SECONDS]}
STUB=${2:?usage: bench_overhead.sh FLEETLEASE STUB [SECONDS]}
SECS=${3:-5}
for t in wrk nginx curl; do
    command -v "$t" >/dev/null || { echo "bench: $t is required (apt-get install wrk nginx-light curl)" >&2; exit 2; }
done
NGINX=$(command -v nginx)
T=$(mktemp -d "${TMPDIR:-/tmp}/fl-gwbench.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
export HOME=$T XDG_CACHE_HOME=$T/cache XDG_STATE_HOME=$T/state LC_ALL=C

# A port for nginx (it cannot report one it picked): random, unused.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

"$STUB" --port-file "$T/up.port" 2>"$T/stub.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s $T/up.port ]] && break; sleep 0.05; done
UP=$(cat "$T/up.port")

"$BIN" gateway bench-host --db "$T/leases.db" --upstream "http://127.0.0.1:$UP" \
    --listen 127.0.0.1:0 --idle-release 60s 2>"$T/gw.log" &
GW_PID=$!
PIDS+=($GW_PID)
GP=""
for _ in $(seq 1 100); do
    GP=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/gw.log" | head -n1)
    [[ -n $GP ]] && break
    sleep 0.05
done
[[ -n $GP ]] || { echo "bench: the gateway did not start: $(cat "$T/gw.log")" >&2; exit 1; }

NP=$(free_port)
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/nginx;
    proxy_temp_path $T/nginx;
    fastcgi_temp_path $T/nginx;
    uwsgi_temp_path $T/nginx;
    scgi_temp_path $T/nginx;
    upstream stub { server 127.0.0.1:$UP; keepalive 256; }
    server {
        listen 127.0.0.1:$NP reuseport backlog=4096;
        location / {
            proxy_pass http://stub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" 2>"$T/nginx.err" &
NGINX_PID=$!
PIDS+=($NGINX_PID)
for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NP/") == 200 ]] && break
    sleep 0.05
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GP/" -H 'X-Fleet-Writer: wrk') == 200 ]] ||
    { echo "bench: the gateway does not answer" >&2; exit 1; }

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk's output to "p50_ms p99_ms rps"; latencies may be printed in us, ms or s.
parse() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%.3f %.3f %.0f %s\n", p50, p99, rps, bad ? bad : 0 }' "$1"
}

url_of() {
    case $1 in
    direct) echo "http://127.0.0.1:$UP/" ;;
    gateway) echo "http://127.0.0.1:$GP/" ;;
    nginx) echo "http://127.0.0.1:$NP/" ;;
    esac
}

# Prints "p50 p99 rps non2xx cpu_us_per_request"; the last is the proxy's
# own CPU time per request (user + system), which a busy machine disturbs
# far less than latency or throughput.
run() { # name url conns
    local name=$1 url=$2 c=$3 pid="" c0=0 c1=0
    case $name in gateway) pid=$GW_PID ;; nginx) pid=$NGINX_PID ;; esac
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    wrk -t1 -c"$c" -d"${SECS}s" --latency -H 'X-Fleet-Writer: wrk' "$url" >"$T/$name.$c.out" 2>&1
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    local n
    n=$(awk '/requests in/ { print $1 }' "$T/$name.$c.out")
    echo "$(parse "$T/$name.$c.out") $(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
        'BEGIN { if (n > 0 && t > 0) printf "%.1f", t / hz * 1e6 / n; else printf "-" }')"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# Rounds, the targets interleaved in each, and the median of each number:
# on a small shared machine one run of a few seconds is noise.
ROUNDS=${ROUNDS:-3}
for target in direct gateway nginx; do
    run "$target" "$(url_of "$target")" 4 >/dev/null # warm-up: connections, shared lease
done
for round in $(seq 1 "$ROUNDS"); do
    for target in direct nginx gateway; do
        run "$target" "$(url_of "$target")" 1 >>"$T/$target.lat"
        run "$target" "$(url_of "$target")" 64 >>"$T/$target.thr"
    done
done
# The median of column $2 of file $1.
median() { awk -v k="$2" '{ print $k }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "| target | p50 (c=1) | p99 (c=1) | added p50 | req/s (c=64) | vs nginx | proxy CPU/request (c=64) | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
d50=$(median "$T/direct.lat" 1)
n_rps=$(median "$T/nginx.thr" 3)
for target in direct nginx gateway; do
    p50=$(median "$T/$target.lat" 1) p99=$(median "$T/$target.lat" 2) rps=$(median "$T/$target.thr" 3)
    bad=$(awk '{ s += $4 } END { print s + 0 }' "$T/$target.lat" "$T/$target.thr")
    cpu=$(median "$T/$target.thr" 5)
    [[ $cpu == - ]] || cpu="$cpu µs"
    added=$(awk -v a="$p50" -v b="$d50" 'BEGIN { printf "%+.3f ms", a - b }')
    rel=$(awk -v a="$rps" -v b="$n_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
    echo "| $target | $p50 ms | $p99 ms | $added | $rps | $rel | $cpu | $bad |"
done
echo
echo "median of $ROUNDS rounds of ${SECS}s per cell, targets interleaved"
echo "load average before: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
grep -q 'fleetlease_gateway_shared_lease_held 1' <(curl -s "http://127.0.0.1:$GP/_fleet/metrics") &&
    echo "gateway held its shared lease throughout (steady state: admission from memory)"
