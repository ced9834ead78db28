#!/usr/bin/env bash
# bench/run.sh -- fleetlease side by side with the floor and with peers (issue 9).
#
#   bench/run.sh [--secs S] [--out FILE] [--quick] [--no-install]
#
# Installs what it needs from Debian (redis-server, etcd-server, wrk, nginx,
# libhiredis-dev, libcurl4-openssl-dev, valgrind), builds flbench and the
# fleetlease command in build-bench/, starts every server on loopback with a
# temporary data directory, measures, stops them, and writes
# docs/benchmarks.md (or --out FILE).  It is not part of the test suite.
#
#   --secs S       time bound of each measured phase (default 1.5; the
#                  operation rows run twice and the report keeps the better)
#   --quick        --secs 0.5 and the smallest scale rows only: a smoke run
#   --no-install   use what is installed; fail if something is missing
#
# Every loop in flbench is bounded in count and time; a full run takes about
# 13 minutes on 2 vCPUs (up to one more waiting for a busy machine to
# settle).  Raw result lines stay in build-bench/bench-results.tsv.
set -euo pipefail

die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=1.5
OUT="$ROOT/docs/benchmarks.md"
QUICK=0
INSTALL=1
COMMAND="bench/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=${2:?--secs needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --quick) QUICK=1; SECS=0.5; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

# ---- packages ---------------------------------------------------------------

need_pkgs=()
for p in redis-server etcd-server etcd-client wrk nginx libhiredis-dev libcurl4-openssl-dev \
         valgrind postgresql-15 libpq-dev libsqlite3-dev libjansson-dev libevent-dev curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$INSTALL" = 1 ] || die "missing packages: ${need_pkgs[*]} (run without --no-install)"
  say "installing ${need_pkgs[*]}"
  # Installing a server package must not start a system-wide service: we
  # start our own on loopback.  policy-rc.d is the Debian switch for that.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_pkgs[@]}" >&2
  [ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

# ---- build -----------------------------------------------------------------

BUILD="$ROOT/build-bench"
say "building flbench and fleetlease in $BUILD"
mkdir -p "$BUILD"
BLOG="$BUILD/bench-build.log"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFL_BUILD_BENCH=ON \
  -DFL_BUILD_TESTS=OFF -DFL_SANITIZE=OFF -DFL_DEBUG_HOOKS=OFF >"$BLOG" 2>&1 ||
  { tail -20 "$BLOG" >&2; die "cmake failed (log: $BLOG)"; }
cmake --build "$BUILD" --target flbench -j2 >>"$BLOG" 2>&1 ||
  { tail -20 "$BLOG" >&2; die "building flbench failed (log: $BLOG)"; }
# The command is needed only for the HTTP rows: a tree whose daemon does
# not build yet still gets every other row.
cmake --build "$BUILD" --target fleetlease_cli -j2 >>"$BLOG" 2>&1 ||
  say "fleetlease did not build: HTTP and gateway rows will be missing (log: $BLOG)"
FLB="$BUILD/bench/flbench"
FLCMD="$BUILD/fleetlease"

HAVE_SERVE=0
HAVE_GATEWAY=0
if [ -x "$FLCMD" ] && "$FLCMD" serve --help >/dev/null 2>&1; then HAVE_SERVE=1; fi
if [ -x "$FLCMD" ] && "$FLCMD" gateway --help >/dev/null 2>&1; then HAVE_GATEWAY=1; fi

# ---- work directory and servers ------------------------------------------------

# Short (the PostgreSQL socket path must fit in 107 bytes) and searchable
# by the postgres user.
WORK=$(mktemp -d /tmp/flb.XXXXXX)
chmod 755 "$WORK"
RES="$BUILD/bench-results.tsv"
: >"$RES"
PIDS=()          # servers started here, stopped by pid at exit
PG_DIR="$WORK/pg"

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    # Bounded: a server that ignores SIGTERM for 10 s gets SIGKILL.
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  "$ROOT/tests/pg-server.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    port_busy "$p" || { printf '%s\n' "$p"; return 0; }
  done
  die "no free port"
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local t=$1; shift
  for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

say "starting PostgreSQL"
PGURL=$("$ROOT/tests/pg-server.sh" start "$PG_DIR") || die "PostgreSQL did not start"

say "starting Redis (no persistence) and Redis (appendfsync always)"
# start_redis DIR ARGS...: prints "PORT PID"; a few ports are tried, since
# another process may take a port between our probe and the bind.
start_redis() {
  local dir=$1 port pid; shift
  mkdir -p "$dir"
  for _ in 1 2 3; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --daemonize no \
      --logfile "$dir/log" "$@" </dev/null >/dev/null 2>&1 &
    pid=$!
    if wait_for 5 redis-cli -p "$port" ping; then printf '%s %s\n' "$port" "$pid"; return 0; fi
    kill "$pid" 2>/dev/null || true
  done
  tail -5 "$dir/log" >&2 || true
  return 1
}
read -r RP REDIS_PID < <(start_redis "$WORK/redis" --appendonly no) || die "redis did not start"
PIDS+=("$REDIS_PID")
read -r RAP REDISAOF_PID < <(start_redis "$WORK/redis-aof" --appendonly yes --appendfsync always) ||
  die "redis (appendfsync always) did not start"
PIDS+=("$REDISAOF_PID")

say "starting etcd"
EP=$(free_port); EPP=$(free_port)
etcd --name flb --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
  --listen-peer-urls "http://127.0.0.1:$EPP" --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
  --initial-cluster "flb=http://127.0.0.1:$EPP" --log-level warn >"$WORK/etcd.log" 2>&1 &
PIDS+=($!); ETCD_PID=$!
wait_for 20 curl -sf "http://127.0.0.1:$EP/version" || die "etcd did not start (log: $WORK/etcd.log)"

SERVE_PID=
if [ "$HAVE_SERVE" = 1 ]; then
  say "starting fleetlease serve"
  SP=$(free_port)
  # The daemon keeps a check cache file per provider under
  # $XDG_CACHE_HOME: keep the benchmark's thousands of them in WORK.
  XDG_CACHE_HOME="$WORK/xdg-cache" "$FLCMD" serve --listen "127.0.0.1:$SP" --db "$PGURL" \
    >"$WORK/serve.log" 2>&1 &
  PIDS+=($!); SERVE_PID=$!
  wait_for 20 curl -sf "http://127.0.0.1:$SP/healthz" ||
    { say "fleetlease serve did not come up (log below): no HTTP rows"; tail -5 "$WORK/serve.log" >&2;
      HAVE_SERVE=0; }
fi

SQ_DIR="$WORK/sqlite"
mkdir -p "$SQ_DIR"

# ---- machine facts ------------------------------------------------------------

NPROC=$(nproc)
info() { printf 'I\t%s\t%s\n' "$1" "$2" >>"$RES"; }
info date "$(date -u '+%Y-%m-%d %H:%M UTC')"
info command "$COMMAND"
info nproc "$NPROC"
info cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
info kernel "$(uname -r)"
info os "$(. /etc/os-release && printf '%s' "$PRETTY_NAME")"
info fs "$(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
info servers "PostgreSQL $(psql -At "$PGURL" -c 'SHOW server_version'), SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo '?'), Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), etcd $(etcd --version | sed -n 's/^etcd Version: //p'), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), wrk $(dpkg-query -W -f='${Version}' wrk)"
info durability "PostgreSQL fsync=$(psql -At "$PGURL" -c 'SHOW fsync'), synchronous_commit=$(psql -At "$PGURL" -c 'SHOW synchronous_commit'), wal_sync_method=$(psql -At "$PGURL" -c 'SHOW wal_sync_method'); SQLite WAL, synchronous=FULL; Redis: one server without persistence, one with appendonly yes + appendfsync always; etcd: default (fsync per raft commit)"
info secs "$SECS"

# Wait (bounded) for a quieter machine: other work shares these 2 vCPUs.
for _ in $(seq $([ "$QUICK" = 1 ] && echo 0 || echo 12)); do
  awk -v n="$NPROC" '{ exit !($1 < n * 0.75) }' /proc/loadavg && break
  say "load $(cut -d' ' -f1-3 /proc/loadavg): waiting up to a minute for it to settle"
  sleep 5
done
info load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- pinning ------------------------------------------------------------------

server_pids() {
  local pm
  pm=$(head -1 "$PG_DIR/data/postmaster.pid")
  printf '%s\n' "$pm"
  pgrep -P "$pm" || true
  printf '%s\n' "$REDIS_PID" "$REDISAOF_PID" "$ETCD_PID" $SERVE_PID
}
# New PostgreSQL backends inherit the postmaster's affinity.
set_affinity() {
  local p
  for p in $(server_pids); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}
PIN=0
flb() {
  if [ "$PIN" = 1 ]; then taskset -c 0 "$FLB" "$@" >>"$RES" || true
  else "$FLB" "$@" >>"$RES" || true
  fi
}

RUN_ID=$(date +%s)

# ---- the operation rows: 1 client pinned, 1 client, 8 clients ---------------------

# Twice, interleaved: a neighbour's burst then spoils one of the two, and
# the report keeps, for every row (floors included), the better one.  Each
# repetition has providers of its own (the run id).
REPS=2
[ "$QUICK" = 0 ] || REPS=1
for rep in $(seq "$REPS"); do
  for tag in 1p 1u 8u; do
    case $tag in
      1p) PIN=1; CL=1; set_affinity 0 ;;
      1u) PIN=0; CL=1; set_affinity "0-$((NPROC - 1))" ;;
      8u) PIN=0; CL=8 ;;
    esac
    say "operations: $tag (repetition $rep of $REPS)"
    common=(--tag "$tag" --clients "$CL" --secs "$SECS" --run-id "$RUN_ID-$rep")
    # Each fleetlease cell right after its floor, so both see the same machine.
    flb pg-floor --url "$PGURL" --key pgfloor "${common[@]}"
    flb fl-ops --url "$PGURL" --key pg "${common[@]}"
    flb sqlite-floor --url "$SQ_DIR/floor.db" --key sqfloor "${common[@]}"
    flb fl-ops --url "$SQ_DIR/fl.db" --key sq "${common[@]}"
    flb advisory --url "$PGURL" --key adv "${common[@]}"
    flb redis --url "127.0.0.1:$RP" --key redis "${common[@]}"
    flb redis --url "127.0.0.1:$RAP" --key redisaof "${common[@]}"
    flb etcd --url "http://127.0.0.1:$EP" --key etcd "${common[@]}"
    if [ "$HAVE_SERVE" = 1 ]; then
      flb http --url "http://127.0.0.1:$SP" --key http "${common[@]}"
    fi
  done
done
PIN=0
set_affinity "0-$((NPROC - 1))"

say "durable acquire+release cycles"
for cl in 1 8; do
  tag=$([ "$cl" = 1 ] && echo 1u || echo 8u)
  common=(--tag "$tag" --clients "$cl" --secs "$SECS" --run-id "$RUN_ID")
  flb fl-pair --url "$PGURL" --key pairpg "${common[@]}"
  flb fl-pair --url "$SQ_DIR/fl.db" --key pairsq "${common[@]}"
  flb etcd-pair --url "http://127.0.0.1:$EP" --key etcdpair "${common[@]}"
done

say "contention"
for r in 1 8 64; do
  flb contention --url "$PGURL" --key cont.pg --tag "r$r" --clients "$r" --secs 3 --n 300 \
    --run-id "$RUN_ID"
  flb contention --url "$SQ_DIR/race.db" --key cont.sq --tag "r$r" --clients "$r" --secs 3 \
    --n 300 --run-id "$RUN_ID"
done

say "wake-up"
flb wakeup --url "$PGURL" --key wake.pg --secs 6 --n 100 --run-id "$RUN_ID"
flb wakeup --url "$SQ_DIR/wake.db" --key wake.sq --secs 6 --n 100 --run-id "$RUN_ID"

say "scale"
scale_ns="10 1000 100000"
[ "$QUICK" = 0 ] || scale_ns="10 1000"
for n in $scale_ns; do
  flb scale --url "$PGURL" --key scale.pg --n "$n" --secs "$SECS" --run-id "$RUN_ID"
  flb scale --url "$SQ_DIR/scale-$n.db" --key scale.sq --n "$n" --secs "$SECS" --run-id "$RUN_ID"
done

say "gateway cached check"
# In-process (no server involved: the cache answers), pinned so the CPU
# does not change under the loop.  SQLite only primes the cache.
PIN=1 flb gwcheck --url "$SQ_DIR/gwcheck.db" --key gwcheck --secs "$SECS" --run-id "$RUN_ID"

# ---- gateway overhead (wrk) ------------------------------------------------------

# wrk's latency distribution in µs: "50%  38.00us" -> R line.
wrk_row() {
  local key=$1; shift
  wrk "$@" --latency 2>&1 | awk -v key="$key" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
                     if (v ~ /s$/) return v * 1000000; return v + 0 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /requests in/ { n = $1 } /^Requests\/sec:/ { rps = $2 }
    END { if (rps > 0) printf "R\t%s\t%.1f\t%.1f\t%.1f\t%d\n", key, rps, p50, p99, n
          else printf "F\t%s\twrk gave no result\n", key }' >>"$RES"
}
wrk_row_ok() { wrk_row "$@" || true; }
start_nginx() { # dir conf-body
  mkdir -p "$1/logs"
  cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1/tmp-body;
  proxy_temp_path $1/tmp-proxy;
  fastcgi_temp_path $1/tmp-fcgi;
  uwsgi_temp_path $1/tmp-uwsgi;
  scgi_temp_path $1/tmp-scgi;
  $2
}
EOF
  nginx -p "$1" -c "$1/nginx.conf" &
  PIDS+=($!)
}
say "gateway overhead (nginx upstream, nginx proxy_pass$([ "$HAVE_GATEWAY" = 1 ] && echo ', gateway'))"
UP=$(free_port); NX=$(free_port)
start_nginx "$WORK/nginx-up" "server { listen 127.0.0.1:$UP; location / { return 200 'ok\n'; } }"
start_nginx "$WORK/nginx-proxy" "upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NX; location / { proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; } }"
if wait_for 10 curl -sf "http://127.0.0.1:$UP/" && wait_for 10 curl -sf "http://127.0.0.1:$NX/"; then
  GW_SECS=3; [ "$QUICK" = 0 ] || GW_SECS=1
  GW_OK=0
  if [ "$HAVE_GATEWAY" = 1 ]; then
    GP=$(free_port)
    XDG_CACHE_HOME="$WORK/xdg-cache" "$FLCMD" gateway "gw-bench-$RUN_ID" --upstream "http://127.0.0.1:$UP" \
      --listen "127.0.0.1:$GP" --db "$PGURL" >"$WORK/gateway.log" 2>&1 &
    PIDS+=($!)
    if wait_for 20 curl -sf -H 'X-Fleet-Writer: bench' "http://127.0.0.1:$GP/"; then
      GW_OK=1
    else
      printf 'F\tgw.gateway\tthe gateway did not answer (log: %s)\n' "$(tail -1 "$WORK/gateway.log")" >>"$RES"
    fi
  fi
  # Three rounds, the paths interleaved in each, so that a burst of other
  # work on the machine does not land on one path only; each row keeps the
  # round with the median throughput (one run of each once measured the
  # gateway at 69% of nginx, and by hand minutes later at 90-108%).
  RES_ALL=$RES; RES=$WORK/gw-rounds.tsv; : >"$RES"
  for round in 1 2 3; do
    wrk_row_ok gw.direct.lat.c1 -t1 -c1 -d"${GW_SECS}s" "http://127.0.0.1:$UP/"
    wrk_row_ok gw.direct.tput.c32 -t2 -c32 -d"${GW_SECS}s" "http://127.0.0.1:$UP/"
    wrk_row_ok gw.nginx.lat.c1 -t1 -c1 -d"${GW_SECS}s" "http://127.0.0.1:$NX/"
    wrk_row_ok gw.nginx.tput.c32 -t2 -c32 -d"${GW_SECS}s" "http://127.0.0.1:$NX/"
    if [ "$GW_OK" = 1 ]; then
      wrk_row_ok gw.gateway.lat.c1 -t1 -c1 -d"${GW_SECS}s" -H 'X-Fleet-Writer: bench' "http://127.0.0.1:$GP/"
      wrk_row_ok gw.gateway.tput.c32 -t2 -c32 -d"${GW_SECS}s" -H 'X-Fleet-Writer: bench' "http://127.0.0.1:$GP/"
    fi
  done
  RES=$RES_ALL
  grep -v '^R' "$WORK/gw-rounds.tsv" | sort -u >>"$RES" || true
  grep '^R' "$WORK/gw-rounds.tsv" | sort -t "$(printf '\t')" -k2,2 -k3,3g |
    awk -F '\t' '{ rows[$2] = rows[$2] ? rows[$2] "\n" $0 : $0; n[$2]++ }
      END { for (k in rows) { m = split(rows[k], a, "\n"); print a[int((m + 1) / 2)] } }' >>"$RES" || true
else
  printf 'F\tgw.direct\tnginx did not start\n' >>"$RES"
fi

# ---- where time goes -------------------------------------------------------------

PROF="$WORK/profile.md"
say "profile: pg_stat_statements (server restarted with it) and callgrind"
{
  printf '## Where time goes\n\n'
  printf 'Measured after the rows above, so that neither the statistics extension nor '
  printf 'valgrind touched them.\n\n'
} >"$PROF"
printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n" \
  >>"$PG_DIR/data/postgresql.conf"
if "$ROOT/tests/pg-server.sh" restart "$PG_DIR" >/dev/null &&
   psql -qAt "$PGURL" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null 2>&1; then
  # pss WHAT FLBENCH-ARGS...: reset, run, then a table of the statements.
  pss() {
    local what=$1 ran; shift
    psql -qAt "$PGURL" -c 'SELECT pg_stat_statements_reset()' >/dev/null
    ran=$("$FLB" "$@" --run-id "$RUN_ID-p" 2>"$WORK/pss.err" | awk '$1 == "R" { printf "%s %s ops/s; ", $2, $3 }' || true)
    {
      printf '### PostgreSQL server, during %s\n\n' "$what"
      printf 'flbench: %s\n\n' "${ran:-no result ($(tail -1 "$WORK/pss.err"))}"
      printf '| calls | mean exec µs | total ms | statement (nested ones are inside fl_acquire) |\n'
      printf '| ---: | ---: | ---: | --- |\n'
      psql -qAt -F $'\t' "$PGURL" -c "
        SELECT calls, round((total_exec_time / calls * 1000)::numeric, 1),
               round(total_exec_time::numeric, 1),
               left(regexp_replace(query, '\s+', ' ', 'g'), 150)
        FROM pg_stat_statements WHERE calls >= 10 AND query NOT LIKE '%pg_stat_statements%'
        ORDER BY total_exec_time DESC LIMIT 14" |
        awk -F'\t' '{ gsub(/\|/, "\\|", $4); printf "| %s | %s | %s | `%s` |\n", $1, $2, $3, $4 }'
      printf '\n'
    } >>"$PROF"
  }
  # mean exec µs of the statement matching a LIKE pattern -> M prof.pg.exec_us.NAME
  pss_mean() {
    local v
    v=$(psql -qAt "$PGURL" -c "SELECT round((sum(total_exec_time) / sum(calls) * 1000)::numeric, 1)
        FROM pg_stat_statements WHERE query LIKE '$2' AND calls > 0")
    [ -z "$v" ] || printf 'M\tprof.pg.exec_us.%s\t%s\n' "$1" "$v" >>"$RES"
  }
  pss_ok() { pss "$@" || true; }
  pss_mean_ok() { pss_mean "$@" || true; }
  pss_ok "granted acquire + release cycles (flbench fl-pair, 1 client)" \
    fl-pair --url "$PGURL" --key profpair --secs "$SECS"
  pss_mean_ok fl_acquire 'SELECT * FROM fl_acquire(%'
  pss_mean_ok release '%DELETE FROM control_host_leases l USING n%token%'
  pss_ok "the floors (flbench pg-floor, 1 client)" pg-floor --url "$PGURL" --key proffloor --secs 1
  pss_mean_ok upsert 'INSERT INTO bench_floor%'
  pss_mean_ok update 'UPDATE bench_floor%'
  pss_mean_ok select1 'SELECT $1'
  pss_ok "every operation (flbench fl-ops, 1 client)" fl-ops --url "$PGURL" --key profops --secs 1
  pss_mean_ok heartbeat '%UPDATE control_host_leases l%SET heartbeat_at%'
  pss_mean_ok check '%LEFT JOIN control_host_leases%'
  pss_mean_ok give_up '%synchronous_commit%'
else
  printf 'pg_stat_statements was not available: no server-side breakdown.\n\n' >>"$PROF"
fi

# callgrind: client-side instructions per call (the library, libpq or SQLite).
cg() { # name url n
  local out="$WORK/cg.$1.out"
  # Only what runs inside the four lease calls is counted: not start-up,
  # not fl_open, not flbench's loop.
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=fl_acquire \
    --toggle-collect=fl_heartbeat --toggle-collect=fl_check --toggle-collect=fl_release \
    "$FLB" profile --url "$2" \
    --key "cg$1" --n "$3" --run-id "$RUN_ID-cg" >/dev/null 2>&1 || return 0
  {
    printf '### Client side, %s: %s cycles of acquire, refused acquire, heartbeat, check, release (callgrind)\n\n' "$1" "$3"
    printf '| function | instructions per call (inclusive) |\n| --- | ---: |\n'
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | tr -d ',' |
      awk -v n="$3" '
        /lib\/lease.c:fl_acquire \[/ { printf "| fl_acquire (granted and refused) | %d |\n", $1 / (2 * n) }
        /lib\/lease.c:fl_heartbeat \[/ { printf "| fl_heartbeat | %d |\n", $1 / n }
        /lib\/lease.c:fl_release \[/ { printf "| fl_release | %d |\n", $1 / n }
        /lib\/check.c:fl_check \[/ { printf "| fl_check | %d |\n", $1 / n }'
    printf '\nTop functions by own instructions, inside the four calls only:\n\n```\n'
    callgrind_annotate "$out" 2>/dev/null |
      awk '/file:function/ { getline; f = 1; next } f && NF { print; if (++k == 15) exit }' |
      sed 's/ *\[\/[^]]*\]//'
    printf '```\n\n'
  } >>"$PROF"
}
cg PostgreSQL "$PGURL" 300 || true
cg SQLite "$SQ_DIR/cg.db" 300 || true

# The check cache at many providers (the scale rows): instructions per check.
cg_scale() {
  local out="$WORK/cg.scale.out" n=5000 rows
  rows=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$FLB" scale --url "$SQ_DIR/cg-scale.db" \
    --key cgscale --n "$n" --secs 2 --run-id "$RUN_ID-cs" 2>/dev/null | awk '$1 == "R" && $2 ~ /check/ { print $6 }')
  [ -n "$rows" ] || return 0
  {
    printf '### Client side, SQLite, fl_check with %s live leases on %s providers (callgrind)\n\n' "$n" "$n"
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | tr -d ',' |
      awk -v c="$((rows + 200))" '
        /lib\/check.c:fl_check \[/ { chk = $1 } /sqlite.c:sq_read_provider \[/ { rd = $1 }
        /:__strcmp_[a-z0-9]* \[/ { sc = $1 }
        END { if (chk) printf "fl_check: %d instructions per call, of which the store read (sq_read_provider) %d and strcmp %d; the rest is the check cache (a hash lookup) and the verdict.\n\n", chk / c, rd / c, sc / c }'
  } >>"$PROF"
}
[ "$QUICK" = 1 ] || cg_scale || true

# ---- the report ------------------------------------------------------------------

info load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$(dirname "$OUT")"
"$FLB" report "$RES" "$PROF" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
say "wrote $OUT ($(grep -c '^R' "$RES") rows, $(grep -c '^F' "$RES" || true) failures)"
