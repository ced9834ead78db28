/*
 * src/http/gateway.c -- `fleetlease gateway`: a lease-aware reverse proxy
 * in front of one provider (issue 6; docs/gateway.md).
 *
 * Writers send their requests to the gateway instead of the host.  Each
 * request is admitted by the check helper over the lease state kept in
 * memory (gw_lease.c), then forwarded and its answer streamed back
 * (gw_proxy.c).  While an exclusive lease is pending or active, requests
 * without its token get 423 with the check's message; the gateway drains
 * the foreign requests in flight before an exclusive lease becomes active,
 * and counts, per exclusive grant, what crossed it.
 *
 * This file: options, setup, the local endpoints under /_fleet/, the
 * tick, and stopping on SIGTERM/SIGINT (finish the requests in flight for
 * up to GW_STOP_GRACE_MS, store the reports, give the shared lease back).
 */
#include "gw.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define GW_TICK_MS 200
#define GW_STOP_GRACE_MS 10000

const char cmd_gateway_usage[] =
    "usage: fleetlease gateway PROVIDER --upstream http://HOST:PORT --listen HOST:PORT\n"
    "           [--db URL] [--drain-timeout DURATION] [options]\n"
    "\n"
    "A reverse proxy in front of the inference host PROVIDER that enforces its\n"
    "lease (docs/gateway.md).  Writers send their requests here with\n"
    "  X-Fleet-Writer: NAME    who is asking (a label for the refusal counts)\n"
    "  X-Fleet-Lease: TOKEN    the lease's token, for the exclusive holder\n"
    "Host free or shared: requests are forwarded.  Exclusive pending or active:\n"
    "requests without the active lease's token get 423 with the check's JSON\n"
    "and message and Retry-After; the holder's are forwarded.  While foreign\n"
    "requests are in flight the gateway holds a shared lease on PROVIDER, so\n"
    "an exclusive request waits (draining) until they are done.  Responses are\n"
    "streamed as they arrive; upstream failures answer 502, timeouts 504.\n"
    "Per exclusive grant it reports what crossed it (fleetlease run prints it).\n"
    "\n"
    "Options:\n"
    "  --upstream URL          the host: http://HOST:PORT (required; no TLS)\n"
    "  --listen HOST:PORT      where writers connect (required; [::1]:PORT for\n"
    "                          IPv6; port 0 picks one, logged as event=listening)\n"
    "  --drain-timeout D       longest wait for foreign requests in flight once an\n"
    "                          exclusive lease is pending (default 10m); then the\n"
    "                          shared lease is released anyway and they are\n"
    "                          counted as cut off\n"
    "  --name TEXT             this gateway in reports and as the shared lease's\n"
    "                          holder (default gateway@LISTEN)\n"
    "  --lease-ttl D           ttl of the shared lease (default 10s)\n"
    "  --idle-release D        keep the shared lease this long after the last\n"
    "                          foreign request (default 2s)\n"
    "  --upstream-timeout D    longest silence from the upstream, connecting\n"
    "                          included, before 504 (default 5m)\n"
    "  --upstream-connections N  connections to the upstream, kept alive\n"
    "                          (default 256); more requests wait for one\n"
    "  --client-timeout D      time to send a whole request; idle keep-alive\n"
    "                          (default 60s)\n"
    "  --max-body BYTES        request body limit (default 16777216); larger 413\n"
    "  --access-log            log one line per request\n"
    "  --db URL, -h/--help     as for fleetlease\n"
    "\n"
    "Local endpoints (not forwarded): GET /_fleet/status (JSON), /_fleet/metrics\n"
    "(Prometheus), /_fleet/healthz.\n"
    "\n"
    "Exit: 0 after SIGTERM/SIGINT; 64 usage; 69 store unreachable at start;\n"
    "70 store error, or cannot listen.\n"
    "\n"
    "Example:\n"
    "  fleetlease gateway gpu-01 --upstream http://127.0.0.1:8000 \\\n"
    "      --listen 0.0.0.0:8080 --db postgresql://lease@db.internal/fleet\n";

enum {
    OPT_UPSTREAM = CLI_OPT_PRIVATE,
    OPT_LISTEN,
    OPT_DRAIN,
    OPT_NAME,
    OPT_LEASE_TTL,
    OPT_IDLE,
    OPT_UP_TIMEOUT,
    OPT_UP_CONNS,
    OPT_CLIENT_TIMEOUT,
    OPT_MAX_BODY,
    OPT_ACCESS_LOG,
};

typedef struct gw_raw {
    const char *upstream, *listen, *drain, *name, *lease_ttl, *idle, *up_timeout, *up_conns,
        *client_timeout, *max_body;
    int access_log;
} gw_raw;

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    gw_raw *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_UPSTREAM: o->upstream = arg; break;
    case OPT_LISTEN: o->listen = arg; break;
    case OPT_DRAIN: o->drain = arg; break;
    case OPT_NAME: o->name = arg; break;
    case OPT_LEASE_TTL: o->lease_ttl = arg; break;
    case OPT_IDLE: o->idle = arg; break;
    case OPT_UP_TIMEOUT: o->up_timeout = arg; break;
    case OPT_UP_CONNS: o->up_conns = arg; break;
    case OPT_CLIENT_TIMEOUT: o->client_timeout = arg; break;
    case OPT_MAX_BODY: o->max_body = arg; break;
    case OPT_ACCESS_LOG: o->access_log = 1; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

/* ---- option values -------------------------------------------------------- */

/* http://HOST[:PORT][/]: resolved once, to a numeric address, here. */
static int parse_upstream(const cli_ctx *ctx, const char *v, gw_opts *o)
{
    char q[160], host[256];
    long long port = 80;
    if (strncmp(v, "http://", 7) != 0)
        return cli_usage_error(ctx,
                               "upstream: must be http://HOST:PORT (https is not supported: "
                               "terminate TLS in front of the gateway), got \"%s\"",
                               cli_quote(q, sizeof q, v, 64));
    char hp[512];
    const char *rest = v + 7;
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || n >= sizeof hp)
        return cli_usage_error(ctx, "upstream: host must be 1-%zu bytes, got %zu", sizeof hp - 1,
                               n);
    if (rest[n] && strcmp(rest + n, "/") != 0)
        return cli_usage_error(ctx,
                               "upstream: must not have a path, query or fragment (requests keep "
                               "their own path), got \"%s\"",
                               cli_quote(q, sizeof q, v, 64));
    memcpy(hp, rest, n);
    hp[n] = '\0';
    int rc = srv_opt_hostport(ctx, "upstream", hp, host, sizeof host, &port, 1);
    if (rc)
        return rc;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0)
        return cli_usage_error(ctx, "upstream: cannot resolve \"%s\": %s",
                               cli_quote(q, sizeof q, host, 64), gai_strerror(e));
    e = getnameinfo(res->ai_addr, res->ai_addrlen, o->up_host, sizeof o->up_host, NULL, 0,
                    NI_NUMERICHOST);
    freeaddrinfo(res);
    if (e != 0)
        return cli_usage_error(ctx, "upstream: cannot resolve \"%s\": %s",
                               cli_quote(q, sizeof q, host, 64), gai_strerror(e));
    o->up_port = (int)port;
    snprintf(o->up_display, sizeof o->up_display, "http://%s", hp);
    return 0;
}

static int setup_opts(cli_ctx *ctx, const gw_raw *raw, const char *provider, gw_opts *o)
{
    char err[FL_MESSAGE_MAX];
    long long v;
    int rc;
    if (fl_validate_provider(provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    snprintf(o->provider, sizeof o->provider, "%s", provider);
    if (!raw->upstream)
        return cli_usage_error(ctx, "missing --upstream http://HOST:PORT: the host to front");
    if (!raw->listen)
        return cli_usage_error(ctx, "missing --listen HOST:PORT: where writers connect");
    if ((rc = parse_upstream(ctx, raw->upstream, o)) != 0)
        return rc;
    if ((rc = srv_opt_hostport(ctx, "listen", raw->listen, o->listen_host, sizeof o->listen_host,
                             &o->listen_port, 0)) != 0)
        return rc;
    if (raw->name) {
        if (fl_validate_text("name", raw->name, err, sizeof err) != FL_OK)
            return cli_bad_value(ctx, err);
        snprintf(o->name, sizeof o->name, "%s", raw->name);
        o->name_given = 1;
    }
    o->drain_timeout_ms = 600000;
    o->lease_ttl_ms = 10000;
    o->idle_release_ms = 2000;
    o->upstream_timeout_ms = 300000;
    o->client_timeout_ms = 60000;
    o->max_body = 16 << 20;
    o->upstream_conns = 256;
    o->access_log = raw->access_log;
    if (raw->drain &&
        (rc = srv_opt_dur(ctx, "drain-timeout", raw->drain, 0, FL_TTL_MAX_MS, 0,
                          &o->drain_timeout_ms)))
        return rc;
    if (raw->lease_ttl && (rc = srv_opt_dur(ctx, "lease-ttl", raw->lease_ttl, 3000, 3600000, 0,
                                            &o->lease_ttl_ms)))
        return rc;
    if (raw->idle &&
        (rc = srv_opt_dur(ctx, "idle-release", raw->idle, 0, 3600000, 0, &o->idle_release_ms)))
        return rc;
    if (raw->up_timeout && (rc = srv_opt_dur(ctx, "upstream-timeout", raw->up_timeout, 1000,
                                             FL_TTL_MAX_MS, 0, &o->upstream_timeout_ms)))
        return rc;
    if (raw->client_timeout && (rc = srv_opt_dur(ctx, "client-timeout", raw->client_timeout,
                                                 1000, 3600000, 0, &o->client_timeout_ms)))
        return rc;
    if (raw->up_conns) {
        if ((rc = srv_opt_int(ctx, "upstream-connections", raw->up_conns, 1, 65536, &v)) != 0)
            return rc;
        o->upstream_conns = (int)v;
    }
    if (raw->max_body) {
        if ((rc = srv_opt_int(ctx, "max-body", raw->max_body, 1024, 1LL << 30, &v)) != 0)
            return rc;
        o->max_body = v;
    }
    return 0;
}

/* ---- listening ------------------------------------------------------------- */

/* A deep backlog: a burst of writers connecting at once must not see
 * dropped SYNs (1 s retries). */
static void bound_addr(gw *g, char *addr, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0, v6 = 0;
    if (getsockname(g->lfd, (struct sockaddr *)&ss, &sl) == 0) {
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
    snprintf(addr, len, v6 ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Room for many writers: the soft open-file limit up to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- local endpoints --------------------------------------------------------- */

static void json_into(struct evbuffer *b, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text) {
        evbuffer_add(b, text, strlen(text));
        evbuffer_add(b, "\n", 1);
        free(text);
    }
}

static json_t *error_json(const char *id, const char *msg)
{
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "error", json_string(id));
        json_object_set_new(o, "message", json_string(msg));
    }
    return o;
}

static void metrics(gw *g, struct evbuffer *o)
{
    const gw_counters *m = &g->m;
    size_t idle = 0, queued = 0;
    gw_pool_stats(g, &idle, &queued);
    evbuffer_add_printf(
        o,
        "# HELP fleetlease_gateway_upstream_errors_total Requests answered 502 (upstream "
        "failed) or 504 (upstream silent), or cut mid-body.\n"
        "# TYPE fleetlease_gateway_upstream_errors_total counter\n"
        "fleetlease_gateway_upstream_errors_total{status=\"502\"} %llu\n"
        "fleetlease_gateway_upstream_errors_total{status=\"504\"} %llu\n"
        "# HELP fleetlease_gateway_upstream_retries_total Requests sent again on a fresh "
        "connection after a kept-alive one had been closed by the upstream.\n"
        "# TYPE fleetlease_gateway_upstream_retries_total counter\n"
        "fleetlease_gateway_upstream_retries_total %llu\n"
        "# HELP fleetlease_gateway_upstream_connects_total Connections opened to the upstream.\n"
        "# TYPE fleetlease_gateway_upstream_connects_total counter\n"
        "fleetlease_gateway_upstream_connects_total %llu\n"
        "# HELP fleetlease_gateway_upstream_connections Upstream connections, by use.\n"
        "# TYPE fleetlease_gateway_upstream_connections gauge\n"
        "fleetlease_gateway_upstream_connections{use=\"idle\"} %zu\n"
        "fleetlease_gateway_upstream_connections{use=\"busy\"} %zu\n"
        "# HELP fleetlease_gateway_upstream_queue Requests waiting for an upstream connection.\n"
        "# TYPE fleetlease_gateway_upstream_queue gauge\n"
        "fleetlease_gateway_upstream_queue %zu\n"
        "# HELP fleetlease_gateway_client_connections Open client connections.\n"
        "# TYPE fleetlease_gateway_client_connections gauge\n"
        "fleetlease_gateway_client_connections %zu\n"
        "# HELP fleetlease_gateway_client_connections_accepted_total Client connections "
        "accepted.\n"
        "# TYPE fleetlease_gateway_client_connections_accepted_total counter\n"
        "fleetlease_gateway_client_connections_accepted_total %llu\n"
        "# HELP fleetlease_gateway_client_aborts_total Requests whose client went away "
        "before the answer was complete.\n"
        "# TYPE fleetlease_gateway_client_aborts_total counter\n"
        "fleetlease_gateway_client_aborts_total %llu\n"
        "# HELP fleetlease_gateway_bad_requests_total Requests refused as malformed "
        "(400, 405, 413, 431, 505).\n"
        "# TYPE fleetlease_gateway_bad_requests_total counter\n"
        "fleetlease_gateway_bad_requests_total %llu\n"
        "# HELP fleetlease_gateway_response_bytes_total Response bytes streamed from the "
        "upstream to clients.\n"
        "# TYPE fleetlease_gateway_response_bytes_total counter\n"
        "fleetlease_gateway_response_bytes_total %llu\n",
        (unsigned long long)m->upstream_502, (unsigned long long)m->upstream_504,
        (unsigned long long)m->upstream_retries, (unsigned long long)m->upstream_connects, idle,
        (size_t)g->up_total - idle, queued, g->nconns, (unsigned long long)m->conns_accepted,
        (unsigned long long)m->client_aborts, (unsigned long long)m->bad_requests,
        (unsigned long long)m->bytes_out);
    gw_lease_metrics(g, o);
}

void gw_local(gw *g, const char *method, const char *path, int *code, const char **ctype,
              struct evbuffer *body)
{
    *ctype = "application/json";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *code = 405;
        json_into(body, error_json("method_not_allowed", "/_fleet/: allowed methods: GET"));
        return;
    }
    if (strcmp(path, "/_fleet/metrics") == 0) {
        *code = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        metrics(g, body);
        return;
    }
    if (strcmp(path, "/_fleet/status") == 0) {
        json_t *o = gw_lease_status(g);
        if (o) {
            json_object_set_new(o, "upstream", cli_jstr(g->o.up_display));
            json_object_set_new(o, "requests_open", json_integer((json_int_t)g->nreqs));
            json_object_set_new(o, "client_connections", json_integer((json_int_t)g->nconns));
            json_object_set_new(o, "stopping", json_boolean(g->stopping));
        }
        *code = 200;
        json_into(body, o);
        return;
    }
    if (strcmp(path, "/_fleet/healthz") == 0) {
        int ok;
        int64_t age;
        uint64_t n;
        gw_store_health(g, &ok, &age, &n, NULL, 0);
        json_t *o = json_object();
        if (o) {
            json_object_set_new(o, "status", json_string(g->stopping ? "stopping" : "ok"));
            json_object_set_new(o, "store_up", json_boolean(ok));
            json_object_set_new(o, "state_age_ms", json_integer(age));
        }
        *code = g->stopping ? 503 : 200;
        json_into(body, o);
        return;
    }
    *code = 404;
    json_into(body, error_json("not_found", "no such gateway endpoint: /_fleet/status, "
                                            "/_fleet/metrics, /_fleet/healthz"));
}

/* ---- the tick and stopping ------------------------------------------------------ */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    gw *g = arg;
    (void)fd;
    (void)what;
    gw_lease_tick(g);
    if (!g->stopping)
        return;
    int64_t now = srv_mono_ms();
    if (g->reqs && now >= g->stop_deadline_mono) {
        char n[32];
        srv_log("warn", "stop_grace_over", "aborting", srv_num(n, sizeof n, (long long)g->nreqs),
                NULL);
        gw_proxy_abort_all(g);
        g->stop_deadline_mono = now + 2000;
    }
    if (!g->reqs) {
        gw_lease_shutdown(g);
        if (gw_lease_idle(g) || now >= g->stop_deadline_mono + 5000)
            event_base_loopexit(g->base, NULL);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    gw *g = arg;
    (void)what;
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (g->stopping) {
        srv_log("info", "stopping", "signal", name, "note", "already stopping", NULL);
        return;
    }
    g->stopping = 1;
    g->stop_deadline_mono = srv_mono_ms() + GW_STOP_GRACE_MS;
    char n[32];
    srv_log("info", "stopping", "signal", name, "requests_open",
            srv_num(n, sizeof n, (long long)g->nreqs), NULL);
    gw_proxy_stop_accepting(g);
    event_active(g->ev_tick, EV_TIMEOUT, 0);
}

/* ---- setup ------------------------------------------------------------------------ */

static int run(gw *g)
{
    int rc = 0;
    g->lfd = -1;
    raise_fd_limit();
    if (evthread_use_pthreads() != 0)
        return cli_fail(g->ctx, FL_ESYS, "libevent: cannot enable threads");
    g->base = event_base_new();
    if (!g->base)
        return cli_fail(g->ctx, FL_ENOMEM, "libevent: cannot create the event loop");
    gw_lease_events(g, &g->ev_refreshed, &g->ev_results);
    g->ev_kick = event_new(g->base, -1, 0, gw_on_kick, g);
    g->ev_tick = event_new(g->base, -1, EV_PERSIST, on_tick, g);
    g->ev_term = evsignal_new(g->base, SIGTERM, on_signal, g);
    g->ev_int = evsignal_new(g->base, SIGINT, on_signal, g);
    if (!g->ev_refreshed || !g->ev_results || !g->ev_kick || !g->ev_tick || !g->ev_term ||
        !g->ev_int || event_add(g->ev_term, NULL) != 0 || event_add(g->ev_int, NULL) != 0) {
        rc = cli_fail(g->ctx, FL_ENOMEM, "libevent: cannot create events");
        goto out;
    }
    if ((rc = gw_store_start(g)) != 0)
        goto out;

    char why[256];
    g->lfd = srv_listen_socket(g->o.listen_host, g->o.listen_port, why, sizeof why);
    if (g->lfd < 0) {
        rc = cli_fail(g->ctx, FL_ESYS, "cannot listen on %s port %lld: %s", g->o.listen_host,
                      g->o.listen_port, why);
        goto out;
    }
    g->ev_accept = event_new(g->base, g->lfd, EV_READ | EV_PERSIST, gw_on_accept, g);
    if (!g->ev_accept || event_add(g->ev_accept, NULL) != 0) {
        rc = cli_fail(g->ctx, FL_ENOMEM, "libevent: cannot accept on %s", g->o.listen_host);
        goto out;
    }
    char addr[INET6_ADDRSTRLEN + 16];
    bound_addr(g, addr, sizeof addr);
    if (!g->o.name_given)
        snprintf(g->o.name, sizeof g->o.name, "gateway@%s", addr);
    struct timeval tick = {0, GW_TICK_MS * 1000};
    event_add(g->ev_tick, &tick);
    gw_lease_tick(g);
    char d[32], c[32];
    srv_log("info", "listening", "addr", addr, "provider", g->o.provider, "upstream",
            g->o.up_display, "name", g->o.name, "state", fl_pstate_name(g->view.state),
            "drain_timeout_s", srv_num(d, sizeof d, (long long)(g->o.drain_timeout_ms / 1000)),
            "upstream_connections", srv_num(c, sizeof c, g->o.upstream_conns), "version",
            FL_VERSION_STRING, NULL);
    if (event_base_dispatch(g->base) < 0)
        rc = cli_fail(g->ctx, FL_ESYS, "libevent: the event loop failed");
    else
        srv_log("info", "stopped", NULL);

out:
    /* Connections and requests first (a request that ends may still ask
     * the store worker for a release), then the threads: the worker
     * finishes its queue (final reports, the release) on the way. */
    gw_proxy_free(g);
    if (g->lfd >= 0)
        close(g->lfd);
    gw_store_stop(g);
    struct event *evs[] = {g->ev_refreshed, g->ev_results, g->ev_kick, g->ev_tick,
                           g->ev_term,      g->ev_int,     g->ev_accept};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    gw_lease_free(g);
    if (g->base)
        event_base_free(g->base);
    libevent_global_shutdown();
    return rc;
}

int cmd_gateway(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"upstream", required_argument, NULL, OPT_UPSTREAM},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"name", required_argument, NULL, OPT_NAME},
        {"lease-ttl", required_argument, NULL, OPT_LEASE_TTL},
        {"idle-release", required_argument, NULL, OPT_IDLE},
        {"upstream-timeout", required_argument, NULL, OPT_UP_TIMEOUT},
        {"upstream-connections", required_argument, NULL, OPT_UP_CONNS},
        {"client-timeout", required_argument, NULL, OPT_CLIENT_TIMEOUT},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"access-log", no_argument, NULL, OPT_ACCESS_LOG},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    gw_raw raw = {0};
    const char *pos[1] = {NULL};
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &raw, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos < 1)
        return cli_usage_error(ctx, "missing PROVIDER: the host this gateway fronts");
    gw *g = calloc(1, sizeof *g);
    if (!g)
        return cli_fail(ctx, FL_ENOMEM, "out of memory");
    g->ctx = ctx;
    if ((rc = setup_opts(ctx, &raw, pos[0], &g->o)) == 0) {
        /* A writer that hangs up must not kill the gateway on write. */
        signal(SIGPIPE, SIG_IGN);
        rc = run(g);
    }
    free(g);
    return rc;
}
