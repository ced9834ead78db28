#!/usr/bin/env bash
# tests/install/notify_test.sh FLEETLEASE NOTIFY_LISTEN SRC
# `fleetlease serve` under Type=notify: READY=1 arrives only once the store
# is open and the socket accepts connections, STOPPING=1 on SIGTERM, and
# the daemon still exits 0.  Both socket kinds systemd uses: a path and an
# abstract name.
set -euo pipefail
BIN=${1:?usage: notify_test.sh FLEETLEASE NOTIFY_LISTEN SRC}
LISTEN=${2:?missing NOTIFY_LISTEN}
FL_SRC=${3:?missing SRC}
. "$FL_SRC/tests/install/lib.sh"

for sock in "$T/notify.sock" "@fleetlease-notify-test-$$"; do
    step "NOTIFY_SOCKET=$sock"
    "$LISTEN" "$sock" 2 20 >"$T/notes" &
    lpid=$!
    for _ in $(seq 100); do grep -q LISTENING "$T/notes" 2>/dev/null && break; sleep 0.05; done
    NOTIFY_SOCKET=$sock FLEETLEASE_DB=$T/leases.db "$BIN" serve --listen 127.0.0.1:0 2>"$T/log" &
    spid=$!
    for _ in $(seq 200); do grep -q READY=1 "$T/notes" && break; sleep 0.05; done
    grep -q READY=1 "$T/notes" || { cat "$T/log"; kill "$spid" 2>/dev/null; fail "no READY=1 from serve"; }
    # Ready means listening: the port logged is accepting now.
    port=$(sed -n 's/.*event=listening.*addr=127\.0\.0\.1:\([0-9]*\).*/\1/p;T;q' "$T/log")
    [ -n "$port" ] || { cat "$T/log"; fail "no event=listening line before READY=1"; }
    exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "READY=1 sent, but port $port refuses connections"
    printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
    status=$(head -1 <&3)
    [[ $status == *" 200 "* ]] || fail "GET /healthz after READY=1 answered: $status"
    exec 3<&-
    kill -TERM "$spid"
    wait "$spid" || fail "serve exited $? after SIGTERM"
    wait "$lpid" || { cat "$T/notes"; fail "the listener did not get READY=1 and STOPPING=1"; }
    # LISTENING (the listener's own line), then READY=1, then STOPPING=1.
    [ "$(grep -v LISTENING "$T/notes" | tr '\n' ' ')" = "READY=1 STOPPING=1 " ] \
        || { cat "$T/notes"; fail "want READY=1 then STOPPING=1"; }
done

step "without NOTIFY_SOCKET nothing is sent and nothing complains"
FLEETLEASE_DB=$T/leases.db "$BIN" serve --listen 127.0.0.1:0 2>"$T/log" &
spid=$!
for _ in $(seq 200); do grep -q event=listening "$T/log" && break; sleep 0.05; done
kill -TERM "$spid"
wait "$spid" || fail "serve exited $? after SIGTERM"
! grep -q sd_notify "$T/log" || fail "serve complained about sd_notify without NOTIFY_SOCKET"
echo PASS
