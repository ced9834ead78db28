#!/usr/bin/env bash
# tests/pg-server.sh -- a throwaway PostgreSQL server for tests and CI.
#
#   tests/pg-server.sh start DIR    initdb in DIR, start, create database
#                                   "fleetlease"; print its URL on stdout:
#                                   postgresql://USER@127.0.0.1:PORT/fleetlease
#   tests/pg-server.sh url DIR      print the URL again
#   tests/pg-server.sh restart DIR  restart on the same port (also after kill);
#                                   prints the URL
#   tests/pg-server.sh kill DIR     stop it at once, keep DIR ("store down" tests)
#   tests/pg-server.sh stop DIR     stop it (fast) and remove DIR
#
# Trust authentication, for the unix socket (in DIR) and 127.0.0.1 only; it
# listens on 127.0.0.1 and a free port picked at start.  As root, initdb and
# postgres refuse to run, so the server runs as the unprivileged system user
# "postgres" (present wherever the postgresql package is installed) or, if
# missing, "fleetlease-test" (created).  Only the URL goes to stdout; progress
# and errors go to stderr, the server log to DIR/log.
set -euo pipefail

die() { printf 'pg-server.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

find_bindir() {
  local d
  for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)" \
           /usr/lib/postgresql/*/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}
bin=$(find_bindir) || die "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql-15"

# The user that owns DIR and runs the server.
if [ "$(id -u)" -eq 0 ]; then
  if [ -f "$dir/user" ]; then
    user=$(cat "$dir/user")
  elif id -u postgres >/dev/null 2>&1; then
    user=postgres
  else
    user=fleetlease-test
    id -u "$user" >/dev/null 2>&1 ||
      useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$user" ||
      die "cannot create system user $user"
  fi
  as_user() { runuser -u "$user" -- "$@"; }
else
  user=$(id -un)
  as_user() { "$@"; }
fi

url() { printf 'postgresql://%s@127.0.0.1:%s/fleetlease\n' "$user" "$(cat "$dir/port")"; }

# Something accepts connections on 127.0.0.1:$1?
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_start() {
  as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >&2
}

set_port() {
  local conf="$dir/data/postgresql.conf"
  sed -i '/^port = /d' "$conf"
  printf 'port = %s\n' "$1" >>"$conf"
  printf '%s\n' "$1" >"$dir/port"
}

start() {
  [ ! -e "$dir/data" ] || die "$dir/data exists already: use restart, or stop first"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$user" "$dir"
    printf '%s\n' "$user" >"$dir/user"
    as_user test -w "$dir" ||
      die "$user cannot write $dir: every parent directory must be searchable by $user (use mktemp -d under /tmp)"
  fi
  # The socket path must fit in sun_path (107 bytes).
  [ ${#dir} -le 80 ] || die "$dir is too long for a unix socket path: use a directory of at most 80 bytes"
  as_user "$bin/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/data"; }
  cat >"$dir/data/pg_hba.conf" <<'EOF'
# Throwaway test server: trust, local socket and 127.0.0.1 only.
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
EOF
  # A free port: pick at random, skip busy ones, and retry if another
  # process binds it between our probe and the server's bind.
  local try port
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_busy "$port" && continue
    set_port "$port"
    if pg_start; then
      as_user "$bin/psql" -h "$dir" -p "$port" -U "$user" -d postgres -qAt \
        -c 'CREATE DATABASE fleetlease' >&2 || die "cannot create database fleetlease"
      url
      return 0
    fi
    grep -q 'could not bind\|could not create listen socket' "$dir/log" 2>/dev/null ||
      { tail -n 20 "$dir/log" >&2 2>/dev/null || true; die "server did not start (log: $dir/log)"; }
    printf 'pg-server.sh: port %s taken, trying another\n' "$port" >&2
  done
  die "no free port found after $try attempts"
}

need_dir() {
  if [ ! -f "$dir/port" ] || [ ! -d "$dir/data" ]; then
    die "$dir holds no server made by 'start'"
  fi
}

case "$cmd" in
  start) start ;;
  url) need_dir; url ;;
  restart)
    need_dir
    # After `kill` there is no postmaster: pg_ctl restart then just starts.
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t 60 restart >&2 ||
      die "restart failed (log: $dir/log)"
    url ;;
  kill)
    need_dir
    as_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true ;;
  stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_user "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || true
    fi
    rm -rf "$dir" ;;
  *) usage ;;
esac
