#!/usr/bin/env bash
# tests/writers/nginx.sh -- writer path (d): nginx auth_request to /v1/auth.
#
# A real nginx (Debian's) runs examples/nginx/fleetlease-auth.conf, as
# shipped, in front of a stub upstream (a second server block of the same
# nginx that answers 200 and logs each hit).  Under an exclusive lease
# (taken with the CLI) a writer is refused with 403, the message in
# X-Fleet-Message and the body, and Retry-After -- and the upstream sees
# nothing; the holder gets through (by X-Fleet-Writer, and by the lease
# token in X-Fleet-Lease); after release everyone does.  Then the same with
# `serve --tokens`, the writer named by the bearer token nginx forwards.
#
# nginx runs in the foreground with master_process off: one process, this
# script's child, killed at exit; its prefix, temp paths, pid and logs are
# all in the test's temp directory, on loopback ports.  As root it never
# switches user (that needs a master), so it touches nothing outside.
#
# usage: nginx.sh sqlite:tmp|env:DATABASE_URL BINARY [NGINX]
# Exit 77 (skipped) without nginx or its auth_request module, unless
# CI=true: then that is a failure.
source "$(dirname "$0")/common.sh"
SNIPPET=$(cd "$(dirname "$0")/../../examples/nginx" && pwd)/fleetlease-auth.conf
NGINX=${3:-${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}}
missing=""
if [[ ! -x $NGINX ]]; then
    missing="nginx not found (apt-get install nginx)"
elif ! "$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module; then
    missing="$NGINX lacks the auth_request module"
fi
if [[ -n $missing ]]; then
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: $missing, and CI=true requires this test" >&2
        exit 1
    fi
    echo "SKIP: $missing" >&2
    exit 77
fi
setup "$1" "$2"
PROV=writer-nginx.$SFX
N=$T/nginx
mkdir -p "$N/tmp"
NPID=""

nginx_stop() {
    if [[ -n $NPID ]] && kill -0 "$NPID" 2>/dev/null; then
        kill -TERM "$NPID" 2>/dev/null || true
        wait "$NPID" 2>/dev/null || true
    fi
    NPID=""
}
trap 'rc=$?; nginx_stop; (exit $rc); cleanup' EXIT

# A loopback port nobody listens on (nginx cannot bind port 0 and say
# which it got; a lost race is retried by nginx_start).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

write_conf() {
    cat >"$N/nginx.conf" <<CONF
master_process off;
daemon off;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 64; }
http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    server_tokens off;
    log_format hit '\$request_method \$uri';

    upstream fleetlease { server 127.0.0.1:$PORT; keepalive 4; }

    # The stub inference host.
    server {
        listen 127.0.0.1:$UP;
        access_log $N/upstream.log hit;
        default_type text/plain;
        location / { return 200 "upstream ok\n"; }
    }

    server {
        listen 127.0.0.1:$FRONT;
        set \$fleet_provider $PROV;
        include $SNIPPET;
        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
    }
}
CONF
}

nginx_start() {
    local try i code
    for try in 1 2 3 4 5; do
        FRONT=$(free_port)
        UP=$(free_port)
        [[ $FRONT != "$UP" ]] || continue
        write_conf
        "$NGINX" -t -q -p "$N" -c "$N/nginx.conf" -e "$N/error.log" 2>"$N/t.err" ||
            { BODY=$(cat "$N/t.err"); fail "nginx -t rejects the config"; }
        "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/error.log" 2>>"$N/error.log" &
        NPID=$!
        for i in $(seq 1 100); do
            kill -0 "$NPID" 2>/dev/null || break
            code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$UP/" || true)
            if [[ $code == 200 ]]; then
                NU=http://127.0.0.1:$FRONT
                return 0
            fi
            sleep 0.05
        done
        nginx_stop
        grep -q "Address already in use" "$N/error.log" 2>/dev/null || break
    done
    BODY=$(tail -n 20 "$N/error.log" 2>/dev/null || true)
    fail "nginx did not start"
}

# One request through nginx: sets CODE, BODY, $T/hdr (as req does).
through() {
    local saved=$U
    U=$NU
    req "$@"
    U=$saved
}

hits() { wc -l <"$N/upstream.log"; }

expect_refused() {
    local h
    h=$(hits)
    through "$@"
    expect_code 403
    [[ $(hdr X-Fleet-Message) == "$WANT" ]] || fail "X-Fleet-Message \"$(hdr X-Fleet-Message)\", want \"$WANT\""
    [[ $(hdr X-Fleet-State) == exclusive ]] || fail "X-Fleet-State \"$(hdr X-Fleet-State)\""
    [[ $BODY == "$WANT" ]] || fail "body: want the message"
    local ra
    ra=$(hdr Retry-After)
    [[ $ra =~ ^[0-9]+$ && $ra -ge 1 && $ra -le 30 ]] || fail "Retry-After \"$ra\", want 1..30"
    [[ $(hits) == "$h" ]] || fail "a refused request reached the upstream"
}

expect_through() {
    local h
    h=$(hits)
    through "$@"
    expect_code 200
    [[ $BODY == "upstream ok" ]] || fail "body: want the upstream's"
    [[ $(hits) == $((h + 1)) ]] || fail "the upstream did not see the request"
}

start_daemon
nginx_start
step "free host: router-3 gets through nginx"
: >"$N/upstream.log"
expect_through GET /v1/models -H "X-Fleet-Writer: router-3"

step "exclusive lease: 403, X-Fleet-Message, Retry-After; the upstream sees nothing"
hold
expect_refused GET /v1/models -H "X-Fleet-Writer: router-3"
expect_refused POST /v1/completions -H "X-Fleet-Writer: router-3" -H "Content-Type: application/json" \
    --data '{"prompt":"hi"}'
expect_refused GET /v1/models
expect_refused GET /v1/models -H "X-Fleet-Writer: router-3" -H "X-Fleet-Lease: 0123456789abcdef0123456789abcdef"

step "the holder gets through: by X-Fleet-Writer, and by X-Fleet-Lease"
expect_through GET /v1/models -H "X-Fleet-Writer: $HOLDER"
expect_through POST /v1/completions -H "X-Fleet-Writer: bench-1-worker" -H "X-Fleet-Lease: $TOKEN" \
    --data '{"prompt":"hi"}'

step "release: dispatch resumes"
unhold
expect_through GET /v1/models -H "X-Fleet-Writer: router-3"
expect_through GET /v1/models

step "--tokens: the writer is the bearer token's name, forwarded by nginx"
nginx_stop
stop_daemon
tokens_file
start_daemon --tokens "$T/tokens"
nginx_start
hold
expect_refused GET /v1/models -H "Authorization: Bearer $TOK_ROUTER"
expect_through GET /v1/models -H "Authorization: Bearer $TOK_BENCH"
h=$(hits)
through GET /v1/models
expect_code 401
through GET /v1/models -H "Authorization: Bearer $TOK_ROUTER" -H "X-Fleet-Writer: $HOLDER"
expect_code 403
[[ $(hits) == "$h" ]] || fail "an unauthenticated or spoofing request reached the upstream"
unhold
expect_through GET /v1/models -H "Authorization: Bearer $TOK_ROUTER"

nginx_stop
stop_daemon
[[ $STOP_RC == 0 ]] || fail "daemon exit $STOP_RC after SIGTERM"
echo "ok: nginx auth_request writer path honors the exclusive lease" >&2
