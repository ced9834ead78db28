#!/usr/bin/env bash
# examples/concurrency-sweep.sh -- a concurrency sweep of an OpenAI-style
# endpoint, behind the lease: wrk (Debian package `wrk`) posts chat
# completions through the gateway, with the lease token, at each
# concurrency level in turn, and one CSV row per level is written.
#
#   concurrency-sweep.sh --url http://GATEWAY/v1/chat/completions [options]
#
#   --url URL          the endpoint (required): the gateway in front of the host
#   --token TOKEN      the lease token, sent as X-Fleet-Lease
#                      (default: $FLEETLEASE_TOKEN, which `fleetlease run`
#                      and scheduled runs set)
#   --writer NAME      X-Fleet-Writer (default: $FLEETLEASE_HOLDER, else "sweep")
#   --model NAME       the model to ask for (default: bench-model)
#   --levels "1 2 4"   concurrency levels (default: "1 2 4 8 16")
#   --duration D       seconds per level (default: 10)
#   --warmup D         seconds at concurrency 1 before the first level, not
#                      recorded: loads the model (default: 2; 0 for none)
#   --stream BOOL      "stream" in the body (default: true)
#   --out FILE         the CSV (default: stdout); the header is written when
#                      FILE is new or empty, so runs can be appended
#   --label TEXT       the CSV's "label" column (default: the start time)
#
# CSV columns: label, concurrency, duration_s, requests, rps, p50_ms, p90_ms,
# p99_ms, max_ms, non_2xx, socket_errors.  Latency is to the end of the
# (streamed) response.  A level with non-2xx answers (423: the host is leased
# to someone else, i.e. the token is missing or not the holder's) is kept in
# the CSV, and the script exits 1 at the end.
#
# Example, under a lease:
#   fleetlease run gpu-01 --purpose sweep --wait 10m -- \
#     examples/concurrency-sweep.sh --url http://gpu-01:8080/v1/chat/completions \
#       --model llama-70b --out sweep.csv
set -euo pipefail

die() { printf 'concurrency-sweep: %s\n' "$*" >&2; exit 64; }

url="" token="${FLEETLEASE_TOKEN:-}" writer="${FLEETLEASE_HOLDER:-sweep}" model="bench-model"
levels="1 2 4 8 16" duration=10 warmup=2 stream=true out="" label=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2:?}; shift 2 ;;
    --token) token=${2:?}; shift 2 ;;
    --writer) writer=${2:?}; shift 2 ;;
    --model) model=${2:?}; shift 2 ;;
    --levels) levels=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --stream) stream=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --label) label=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1'; see --help" ;;
  esac
done
[ -n "$url" ] || die "--url is required"
command -v wrk >/dev/null || die "wrk not found: install it (apt-get install wrk)"
case "$duration" in ''|*[!0-9]*) die "--duration: must be whole seconds, got '$duration'" ;; esac
case "$warmup" in ''|*[!0-9]*) die "--warmup: must be whole seconds, got '$warmup'" ;; esac
case "$stream" in true|false) ;; *) die "--stream: must be true or false" ;; esac
for c in $levels; do
  case "$c" in ''|*[!0-9]*|0) die "--levels: must be positive integers, got '$c'" ;; esac
done
[ -n "$label" ] || label=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The values go into a Lua string: keep them to characters that need no escaping.
for v in "$writer" "$model" "$token" "$label"; do
  if [[ $v == *[\"\\\']* || $v == *$'\n'* ]]; then
    die "writer, model, token and label must not contain quotes, backslashes or newlines"
  fi
done
[ -n "$token" ] || printf 'concurrency-sweep: warning: no --token and no FLEETLEASE_TOKEN: requests go without a lease\n' >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# wrk's done() prints one CSV row; latencies are in microseconds.
cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"model":"$model","stream":$stream,"messages":[{"role":"user","content":"benchmark"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Fleet-Writer"] = "$writer"
if "$token" ~= "" then wrk.headers["X-Fleet-Lease"] = "$token" end
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format("CSV:%d,%.3f,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%d,%d\n",
    CONCURRENCY, secs, summary.requests, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

header="label,concurrency,duration_s,requests,rps,p50_ms,p90_ms,p99_ms,max_ms,non_2xx,socket_errors"
if [ -n "$out" ]; then
  [ -s "$out" ] || printf '%s\n' "$header" >"$out"
else
  printf '%s\n' "$header"
fi

cpus=$(nproc 2>/dev/null || echo 2)
if [ "$warmup" -gt 0 ]; then
  sed 's/CONCURRENCY/1/' "$tmp/post.lua" >"$tmp/warm.lua"
  wrk -t1 -c1 -d"${warmup}s" --timeout 60s -s "$tmp/warm.lua" "$url" >/dev/null 2>&1 || true
fi
bad=0
for c in $levels; do
  threads=$(( c < cpus ? c : cpus ))
  sed "s/CONCURRENCY/$c/" "$tmp/post.lua" >"$tmp/level.lua"
  if ! res=$(wrk -t"$threads" -c"$c" -d"${duration}s" --timeout 60s -s "$tmp/level.lua" "$url" 2>&1); then
    printf 'concurrency-sweep: wrk failed at concurrency %s:\n%s\n' "$c" "$res" >&2
    exit 1
  fi
  row=$(printf '%s\n' "$res" | sed -n 's/^CSV://p')
  [ -n "$row" ] || { printf 'concurrency-sweep: no result from wrk:\n%s\n' "$res" >&2; exit 1; }
  case "$row" in *,0,0) ;; *) bad=1 ;; esac
  if [ -n "$out" ]; then printf '%s,%s\n' "$label" "$row" >>"$out"; else printf '%s,%s\n' "$label" "$row"; fi
  printf 'concurrency-sweep: c=%s %s\n' "$c" "$row" >&2
done
if [ $bad -ne 0 ]; then
  printf 'concurrency-sweep: some requests failed or were refused (non_2xx/socket_errors above)\n' >&2
  exit 1
fi
