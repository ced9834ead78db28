/*
 * src/http/serve.c -- `fleetlease serve`: the HTTP daemon.
 *
 * Runs in the foreground, logs one logfmt line per event on stderr, and
 * stops cleanly on SIGTERM or SIGINT.  The signals are libevent signal
 * events: libevent's own handler only writes to a socketpair, and our
 * callback runs in the loop like any other event.
 *
 * Stopping: stop accepting, cancel the long polls (each ends within
 * ~100 ms and answers 503), answer new requests on open connections
 * with 503 and Connection: close, and leave the loop once nothing is in
 * flight.  Then the workers are joined, their store handles closed, and
 * every libevent object freed.
 *
 * Binding: a non-loopback address without --tokens would hand lease
 * tokens and the right to take hosts to anyone on the network, so it
 * needs --insecure-no-auth, spelled out.
 */
#include "serve.h"
#include "sched.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

const char cmd_serve_usage[] =
    "usage: fleetlease serve [--listen HOST:PORT] [--db URL] [--tokens FILE] [options]\n"
    "\n"
    "Serve the lease API over HTTP (JSON, see docs/api.md), in the foreground.\n"
    "Logs one logfmt line per event on stderr; SIGTERM or SIGINT stops it\n"
    "cleanly (exit 0).  Runs the expiry sweep on a timer.\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT     address to listen on (default 127.0.0.1:7878;\n"
    "                         [::1]:7878 for IPv6; port 0 picks a free port,\n"
    "                         logged as event=listening)\n"
    "  --tokens FILE          require \"Authorization: Bearer TOKEN\" on /v1 and\n"
    "                         /metrics; FILE has lines `name sha256hex` (the\n"
    "                         SHA-256 of each token); name is the caller's holder\n"
    "                         and writer\n"
    "  --insecure-no-auth     allow a non-loopback --listen without --tokens\n"
    "  --public-metrics       serve /metrics without a token\n"
    "  --sweep-interval D     expiry sweep period (default 1s; 0 turns it off)\n"
    "  --workers N            threads for quick store calls (default 4)\n"
    "  --max-waiters N        acquires waiting at once (long polls; default 16);\n"
    "                         more get 503\n"
    "  --max-connections N    open client connections (default 1024); past it\n"
    "                         the longest-idle connection is closed\n"
    "  --max-body BYTES       request body limit (default 16384); larger gets 413\n"
    "  --max-headers BYTES    request line and header limit (default 8192)\n"
    "  --request-timeout D    time to send one whole request, and to keep an idle\n"
    "                         connection (default 10s)\n"
    "  --access-log           also log one line per request\n"
    "  --no-scheduler         do not run scheduled jobs (`fleetlease schedule`);\n"
    "                         by default every daemon runs them, each due run\n"
    "                         exactly once across the daemons sharing the store\n"
    "  --db URL, -h/--help    as for fleetlease\n"
    "\n"
    "Exit: 0 after SIGTERM/SIGINT; 64 bad usage (also: non-loopback without\n"
    "--tokens or --insecure-no-auth, bad tokens file); 69 store unreachable at\n"
    "start; 70 store error or cannot listen.\n"
    "\n"
    "Example:\n"
    "  fleetlease serve --listen 0.0.0.0:7878 --tokens /etc/fleetlease/tokens \\\n"
    "      --db postgresql://lease@db.internal/fleet\n";

enum {
    OPT_LISTEN = CLI_OPT_PRIVATE,
    OPT_TOKENS,
    OPT_INSECURE,
    OPT_PUBLIC_METRICS,
    OPT_SWEEP,
    OPT_WORKERS,
    OPT_MAX_WAITERS,
    OPT_MAX_CONNS,
    OPT_MAX_BODY,
    OPT_MAX_HEADERS,
    OPT_REQ_TIMEOUT,
    OPT_ACCESS_LOG,
    OPT_NO_SCHED,
};

typedef struct serve_opts {
    const char *listen, *tokens, *sweep, *workers, *max_waiters, *max_conns, *max_body,
        *max_headers, *req_timeout;
    int insecure, public_metrics, access_log, no_sched;
} serve_opts;

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    serve_opts *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_LISTEN: o->listen = arg; break;
    case OPT_TOKENS: o->tokens = arg; break;
    case OPT_INSECURE: o->insecure = 1; break;
    case OPT_PUBLIC_METRICS: o->public_metrics = 1; break;
    case OPT_SWEEP: o->sweep = arg; break;
    case OPT_WORKERS: o->workers = arg; break;
    case OPT_MAX_WAITERS: o->max_waiters = arg; break;
    case OPT_MAX_CONNS: o->max_conns = arg; break;
    case OPT_MAX_BODY: o->max_body = arg; break;
    case OPT_MAX_HEADERS: o->max_headers = arg; break;
    case OPT_REQ_TIMEOUT: o->req_timeout = arg; break;
    case OPT_ACCESS_LOG: o->access_log = 1; break;
    case OPT_NO_SCHED: o->no_sched = 1; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

/* 1 if every address `host` resolves to is a loopback address. */
static int all_loopback(const char *host, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0) {
        snprintf(err, errlen, "listen: cannot resolve \"%s\": %s", host, gai_strerror(e));
        return -1;
    }
    int all = 1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a->ai_addr;
            if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
                all = 0;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)a->ai_addr;
            const uint8_t *b = in6->sin6_addr.s6_addr;
            int v4loop = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127;
            if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) && !v4loop)
                all = 0;
        } else {
            all = 0;
        }
    }
    freeaddrinfo(res);
    return all;
}

/* Room for --max-connections sockets plus the workers' store connections,
 * the listen backlog's overshoot and libevent's own descriptors. */
static int fit_fd_limit(srv *s, int pool)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = want;
    }
    long long reserve = 2LL * pool + 160;
    if ((long long)rl.rlim_cur >= s->lim.max_conns + reserve)
        return 0;
    long long fit = (long long)rl.rlim_cur - reserve;
    if (fit < 16) {
        fprintf(stderr, "fleetlease serve: the open-file limit (%llu) is too low for %d workers\n",
                (unsigned long long)rl.rlim_cur, pool);
        return -1;
    }
    char a[32], b[32], c[32];
    srv_log("warn", "limit_lowered", "max_connections", srv_num(a, sizeof a, fit), "asked",
            srv_num(b, sizeof b, s->lim.max_conns), "nofile",
            srv_num(c, sizeof c, (long long)rl.rlim_cur), NULL);
    s->lim.max_conns = (int)fit;
    return 0;
}

/*
 * The listening socket, made here rather than by evhttp_bind_socket for
 * its backlog: evhttp listens with 128, so a burst of connections (a
 * flood of idle ones, say) fills the accept queue and the kernel drops
 * the SYNs of real clients, who then wait a second or more to retry.
 * SOMAXCONN (clamped by net.core.somaxconn) lets the loop accept, and
 * evict, at its own pace.  The first address `host` resolves to is used.
 */
void srv_shutdown_progress(srv *s)
{
    if (!s->stopping || s->inflight > 0)
        return;
    /* A short grace lets the last replies (503s to late requests) leave
     * their buffers before evhttp_free closes the sockets. */
    static const struct timeval grace = {0, 100000};
    event_base_loopexit(s->base, &grace);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    srv *s = arg;
    char n[32], w[32];
    (void)what;
    const char *name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
    if (s->stopping) {
        srv_log("info", "stopping", "signal", name, "note", "already stopping", NULL);
        return;
    }
    s->stopping = 1;
    cli_sd_notify("STOPPING=1");
    srv_log("info", "stopping", "signal", name, "in_flight",
            srv_num(n, sizeof n, s->inflight), "long_polls", srv_num(w, sizeof w, s->waiters),
            NULL);
    if (s->bound) {
        evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
    }
    if (s->ev_sweep)
        event_del(s->ev_sweep);
    srv_jobs_cancel_all(s);
    srv_shutdown_progress(s);
}

static void sweep_done(srv_job *j)
{
    srv *s = j->s;
    s->sweep_busy = 0;
    if (j->rc == FL_OK) {
        s->metrics.sweep_runs++;
        s->metrics.expiries += j->expired;
        if (j->expired > 0) {
            char n[32];
            srv_log("info", "expired", "count", srv_num(n, sizeof n, (long long)j->expired), NULL);
        }
        if (s->sweep_failing)
            srv_log("info", "sweep_recovered", NULL);
        s->sweep_failing = 0;
    } else {
        s->metrics.sweep_runs++;
        s->metrics.sweep_errors++;
        /* Once per outage, not once per tick. */
        if (!s->sweep_failing)
            srv_log("warn", "sweep_failed", "error", j->err, NULL);
        s->sweep_failing = 1;
    }
}

static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    srv *s = arg;
    (void)fd;
    (void)what;
    /* A slow store must not pile sweeps up behind each other. */
    if (s->stopping || s->sweep_busy)
        return;
    srv_job *j = srv_job_new(s, NULL, SRV_OP_SWEEP, "sweep", sweep_done);
    if (!j)
        return;
    if (srv_job_submit(j) != 0) {
        srv_job_free(j);
        return;
    }
    s->sweep_busy = 1;
}

static void on_wait_check(evutil_socket_t fd, short what, void *arg)
{
    srv *s = arg;
    (void)fd;
    (void)what;
    if (s->waiters > 0)
        srv_jobs_check_clients(s);
}

static void log_listening(srv *s)
{
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?", addr[INET6_ADDRSTRLEN + 16];
    int port = 0, v6 = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
            port = ntohs(in6->sin6_port);
            v6 = 1;
        }
    }
    snprintf(addr, sizeof addr, v6 ? "[%s]:%d" : "%s:%d", ip, port);
    char t[32], w[32], c[32];
    srv_log("info", "listening", "addr", addr, "store", s->store_kind, "db", s->store_display,
            "auth", s->auth ? "tokens" : "none", "tokens",
            srv_num(t, sizeof t, (long long)srv_auth_count(s->auth)), "workers",
            srv_num(w, sizeof w, s->lim.workers + s->lim.max_waiters), "max_connections",
            srv_num(c, sizeof c, s->lim.max_conns), "version", FL_VERSION_STRING, NULL);
}

static int setup_limits(cli_ctx *ctx, const serve_opts *o, srv_limits *lim)
{
    long long v;
    int rc;
    lim->workers = 4;
    lim->max_waiters = 16;
    lim->max_conns = 1024;
    lim->max_body = 16384;
    lim->max_headers = 8192;
    lim->request_timeout_ms = 10000;
    lim->sweep_interval_ms = 1000;
    if (o->workers) {
        if ((rc = srv_opt_int(ctx, "workers", o->workers, 1, 256, &v)) != 0)
            return rc;
        lim->workers = (int)v;
    }
    if (o->max_waiters) {
        if ((rc = srv_opt_int(ctx, "max-waiters", o->max_waiters, 0, 1024, &v)) != 0)
            return rc;
        lim->max_waiters = (int)v;
    }
    if (o->max_conns) {
        if ((rc = srv_opt_int(ctx, "max-connections", o->max_conns, 16, 1000000, &v)) != 0)
            return rc;
        lim->max_conns = (int)v;
    }
    if (o->max_body) {
        if ((rc = srv_opt_int(ctx, "max-body", o->max_body, 1024, 16 << 20, &v)) != 0)
            return rc;
        lim->max_body = v;
    }
    if (o->max_headers) {
        if ((rc = srv_opt_int(ctx, "max-headers", o->max_headers, 1024, 1 << 20, &v)) != 0)
            return rc;
        lim->max_headers = v;
    }
    if (o->req_timeout &&
        (rc = srv_opt_dur(ctx, "request-timeout", o->req_timeout, 1000, 600000, 0,
                        &lim->request_timeout_ms)) != 0)
        return rc;
    if (o->sweep &&
        (rc = srv_opt_dur(ctx, "sweep-interval", o->sweep, 100, 3600000, 1,
                        &lim->sweep_interval_ms)) != 0)
        return rc;
    return 0;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Everything after option parsing; `s` is zeroed and holds the limits. */
static int run(srv *s, const char *host, long long port, int scheduler)
{
    int rc = 0;
    srv_sched *sched = NULL;
    int pool_n = s->lim.workers + s->lim.max_waiters;
    if (fit_fd_limit(s, pool_n) != 0)
        return FL_EXIT_INTERNAL;
    if (evthread_use_pthreads() != 0)
        return cli_fail(s->ctx, FL_ESYS, "libevent: cannot enable threads");
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (!s->http) {
        rc = cli_fail(s->ctx, FL_ENOMEM, "libevent: cannot create the event loop");
        goto out;
    }
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->lim.max_headers);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->lim.max_body);
    struct timeval rt = tv_of(s->lim.request_timeout_ms);
    evhttp_set_timeout_tv(s->http, &rt);
    /* Every method reaches the router, which answers 405 with Allow. */
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, srv_api_handle, s);
    if (srv_conns_init(s) != 0) {
        rc = cli_fail(s->ctx, FL_ENOMEM, "out of memory");
        goto out;
    }

    if ((rc = srv_pool_start(s, pool_n, &s->pool)) != 0)
        goto out;

    char why[256];
    evutil_socket_t lfd = srv_listen_socket(host, port, why, sizeof why);
    if (lfd < 0) {
        rc = cli_fail(s->ctx, FL_ESYS, "cannot listen on %s port %lld: %s", host, port, why);
        goto out;
    }
    s->bound = evhttp_accept_socket_with_handle(s->http, lfd); /* owns lfd */
    if (!s->bound) {
        evutil_closesocket(lfd);
        rc = cli_fail(s->ctx, FL_ESYS, "libevent: cannot accept on %s port %lld", host, port);
        goto out;
    }
    s->ev_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->ev_int = evsignal_new(s->base, SIGINT, on_signal, s);
    s->ev_wait_check = event_new(s->base, -1, EV_PERSIST, on_wait_check, s);
    if (!s->ev_term || !s->ev_int || !s->ev_wait_check || event_add(s->ev_term, NULL) != 0 ||
        event_add(s->ev_int, NULL) != 0) {
        rc = cli_fail(s->ctx, FL_ESYS, "libevent: cannot set up signal handling");
        goto out;
    }
    /* How soon a long poll notices its client left: the library asks the
     * cancel callback every 100 ms, so look as often (one recv(MSG_PEEK)
     * per waiting request, only while some wait). */
    struct timeval tick = {0, 100 * 1000};
    event_add(s->ev_wait_check, &tick);
    if (s->lim.sweep_interval_ms > 0) {
        s->ev_sweep = event_new(s->base, -1, EV_PERSIST, on_sweep_timer, s);
        struct timeval sw = tv_of(s->lim.sweep_interval_ms);
        if (!s->ev_sweep || event_add(s->ev_sweep, &sw) != 0) {
            rc = cli_fail(s->ctx, FL_ESYS, "libevent: cannot start the sweep timer");
            goto out;
        }
    }
    if (scheduler && (rc = srv_sched_start(s->ctx, &sched)) != 0)
        goto out;
    log_listening(s);
    /* Ready means the store answered (the pool opened it) and the socket
     * listens: a unit ordered after fleetlease.service can connect. */
    if (cli_sd_notify("READY=1") != 0)
        srv_log("warn", "sd_notify_failed", "error", strerror(errno), NULL);
    if (event_base_dispatch(s->base) < 0)
        rc = cli_fail(s->ctx, FL_ESYS, "libevent: the event loop failed");
    else
        srv_log("info", "stopped", NULL);

out:
    /* Running jobs are stopped and recorded before the store handles go. */
    srv_sched_stop(sched);
    /* Order: nothing may complete into a freed loop, so the workers go
     * first (they are idle: the loop ended with nothing in flight, or
     * never started serving). */
    srv_pool_stop(s->pool);
    s->pool = NULL;
    if (s->http)
        evhttp_free(s->http); /* closes the connections; their records go
                                 with the bufferevents' finalizers */
    if (s->base)
        event_base_loop(s->base, EVLOOP_NONBLOCK);
    if (s->ev_sweep)
        event_free(s->ev_sweep);
    if (s->ev_wait_check)
        event_free(s->ev_wait_check);
    if (s->ev_term)
        event_free(s->ev_term);
    if (s->ev_int)
        event_free(s->ev_int);
    if (s->base)
        event_base_free(s->base);
    srv_conns_free(s);
    libevent_global_shutdown();
    return rc;
}

int cmd_serve(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"insecure-no-auth", no_argument, NULL, OPT_INSECURE},
        {"public-metrics", no_argument, NULL, OPT_PUBLIC_METRICS},
        {"sweep-interval", required_argument, NULL, OPT_SWEEP},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"max-waiters", required_argument, NULL, OPT_MAX_WAITERS},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"max-headers", required_argument, NULL, OPT_MAX_HEADERS},
        {"request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT},
        {"access-log", no_argument, NULL, OPT_ACCESS_LOG},
        {"no-scheduler", no_argument, NULL, OPT_NO_SCHED},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    serve_opts o = {0};
    int npos = 0;
    const char *pos[1];
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &o, pos, 0, &npos);
    if (rc != CLI_CONTINUE)
        return rc;

    srv *s = calloc(1, sizeof *s);
    if (!s)
        return cli_fail(ctx, FL_ENOMEM, "out of memory");
    s->ctx = ctx;
    s->public_metrics = o.public_metrics;
    s->access_log = o.access_log;
    char host[256];
    long long port = 7878;
    snprintf(host, sizeof host, "127.0.0.1");
    if ((rc = setup_limits(ctx, &o, &s->lim)) != 0 ||
        (o.listen && (rc = srv_opt_hostport(ctx, "listen", o.listen, host, sizeof host, &port, 0)) != 0)) {
        free(s);
        return rc;
    }
    char err[FL_MESSAGE_MAX + 256];
    int loop = all_loopback(host, err, sizeof err);
    if (loop < 0) {
        free(s);
        return cli_usage_error(ctx, "%s", err);
    }
    if (o.tokens && o.insecure) {
        free(s);
        return cli_usage_error(ctx, "--insecure-no-auth contradicts --tokens: give one of them");
    }
    if (!loop && !o.tokens && !o.insecure) {
        free(s);
        return cli_usage_error(ctx,
                               "listen: %s is not a loopback address; give --tokens FILE, or "
                               "--insecure-no-auth to let anyone who reaches it take hosts",
                               host);
    }
    if (o.tokens && srv_auth_load(o.tokens, &s->auth, err, sizeof err) != 0) {
        free(s);
        return cli_usage_error(ctx, "%s", err);
    }
    if (!loop && !o.tokens)
        srv_log("warn", "insecure", "note", "listening beyond loopback without --tokens", NULL);

    /* A client that closes early must not kill the daemon on write. */
    signal(SIGPIPE, SIG_IGN);
    srv_metrics_init(&s->metrics);
    rc = run(s, host, port, !o.no_sched);
    srv_metrics_destroy(&s->metrics);
    srv_auth_free(s->auth);
    free(s);
    return rc;
}
