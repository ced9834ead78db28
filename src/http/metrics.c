/*
 * src/http/metrics.c -- GET /metrics in the Prometheus text format (0.0.4).
 *
 * Counters count what THIS daemon did (grants it made, refusals it
 * answered, leases its sweep expired); other writers of the same store are
 * not seen, so sum over all daemons of a fleet.  The lease gauge, on the
 * other hand, is the store's truth: it comes from fl_list at scrape time.
 *
 * Counters are bumped on the loop thread only.  The latency histogram is
 * observed on the worker threads, right around each store call, so it has
 * its own lock; the loop holds it only while copying the numbers out.
 */
#include "serve.h"

#include <string.h>

/* Seconds.  A local SQLite call takes well under a millisecond; a
 * PostgreSQL round trip a few; a long poll up to its whole wait: the
 * buckets span all three. */
static const double lat_bounds[SRV_LAT_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const op_names[SRV_OP_COUNT] = {
    [SRV_OP_ACQUIRE] = "acquire",     [SRV_OP_ACQUIRE_WAIT] = "acquire_wait",
    [SRV_OP_HEARTBEAT] = "heartbeat", [SRV_OP_RELEASE] = "release",
    [SRV_OP_CHECK] = "check",         [SRV_OP_LIST] = "list",
    [SRV_OP_HISTORY] = "history",     [SRV_OP_SWEEP] = "sweep",
    [SRV_OP_NOW] = "now",             [SRV_OP_REPORT] = "report",
};

void srv_metrics_init(srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lat_lock, NULL);
}

void srv_metrics_destroy(srv_metrics *m)
{
    pthread_mutex_destroy(&m->lat_lock);
}

void srv_metrics_observe(srv_metrics *m, srv_op op, double seconds)
{
    if ((int)op < 0 || op >= SRV_OP_COUNT)
        return;
    size_t b = 0;
    while (b < SRV_LAT_BUCKETS && seconds > lat_bounds[b])
        b++;
    pthread_mutex_lock(&m->lat_lock);
    m->lat_count[op][b]++; /* non-cumulative here; summed when rendered */
    m->lat_total[op]++;
    m->lat_sum[op] += seconds;
    pthread_mutex_unlock(&m->lat_lock);
}

static void help(struct evbuffer *o, const char *name, const char *type, const char *text)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void counter(struct evbuffer *o, const char *name, const char *text, uint64_t v)
{
    help(o, name, "counter", text);
    evbuffer_add_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct evbuffer *o, const char *name, const char *text, long long v)
{
    help(o, name, "gauge", text);
    evbuffer_add_printf(o, "%s %lld\n", name, v);
}

static void leases_gauge(struct evbuffer *o, const fl_lease *l, size_t n)
{
    /* Every combination is emitted, zeros included, so that a series does
     * not vanish (and alerts on it go stale) when the fleet is idle. */
    long long c[3][3] = {{0}};
    for (size_t i = 0; i < n; i++) {
        int m = l[i].mode == FL_SHARED ? 1 : l[i].mode == FL_EXCLUSIVE ? 2 : 0;
        int s = l[i].state == FL_LEASE_ACTIVE ? 1 : l[i].state == FL_LEASE_PENDING ? 2 : 0;
        if (m && s)
            c[m][s]++;
    }
    help(o, "fleetlease_active_leases", "gauge",
         "Live leases in the store by mode and state (pending: an exclusive intent "
         "waiting for shared holders to drain), read at scrape time.");
    for (int m = 1; m <= 2; m++)
        for (int s = 1; s <= 2; s++)
            evbuffer_add_printf(o, "fleetlease_active_leases{mode=\"%s\",state=\"%s\"} %lld\n",
                                fl_mode_name((fl_mode)m),
                                cli_lease_state_name((fl_lease_state)s), c[m][s]);
}

static void histogram(struct evbuffer *o, srv_metrics *m)
{
    uint64_t cnt[SRV_OP_COUNT][SRV_LAT_BUCKETS + 1];
    uint64_t total[SRV_OP_COUNT];
    double sum[SRV_OP_COUNT];
    pthread_mutex_lock(&m->lat_lock);
    memcpy(cnt, m->lat_count, sizeof cnt);
    memcpy(total, m->lat_total, sizeof total);
    memcpy(sum, m->lat_sum, sizeof sum);
    pthread_mutex_unlock(&m->lat_lock);

    help(o, "fleetlease_store_call_duration_seconds", "histogram",
         "Time of each store call made by this daemon, by operation (acquire_wait: a "
         "long poll, waiting included).");
    for (int op = 0; op < SRV_OP_COUNT; op++) {
        uint64_t acc = 0;
        for (int b = 0; b < SRV_LAT_BUCKETS; b++) {
            acc += cnt[op][b];
            evbuffer_add_printf(o,
                                "fleetlease_store_call_duration_seconds_bucket{op=\"%s\",le=\"%g\"} "
                                "%llu\n",
                                op_names[op], lat_bounds[b], (unsigned long long)acc);
        }
        evbuffer_add_printf(o,
                            "fleetlease_store_call_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} "
                            "%llu\n",
                            op_names[op], (unsigned long long)total[op]);
        evbuffer_add_printf(o, "fleetlease_store_call_duration_seconds_sum{op=\"%s\"} %.6f\n",
                            op_names[op], sum[op]);
        evbuffer_add_printf(o, "fleetlease_store_call_duration_seconds_count{op=\"%s\"} %llu\n",
                            op_names[op], (unsigned long long)total[op]);
    }
}

void srv_metrics_render(srv *s, struct evbuffer *o, const fl_lease *leases, size_t n,
                        int store_ok)
{
    srv_metrics *m = &s->metrics;

    gauge(o, "fleetlease_store_up", "1 if the store answered this scrape's list call.", store_ok);
    if (store_ok)
        leases_gauge(o, leases, n);

    help(o, "fleetlease_grants_total", "counter", "Leases granted through this daemon, by mode.");
    help(o, "fleetlease_refusals_total", "counter",
         "Acquires this daemon answered with 423 (held, or not granted within wait), by mode.");
    for (int i = 1; i <= 2; i++)
        evbuffer_add_printf(o, "fleetlease_grants_total{mode=\"%s\"} %llu\n",
                            fl_mode_name((fl_mode)i), (unsigned long long)m->grants[i]);
    for (int i = 1; i <= 2; i++)
        evbuffer_add_printf(o, "fleetlease_refusals_total{mode=\"%s\"} %llu\n",
                            fl_mode_name((fl_mode)i), (unsigned long long)m->refusals[i]);
    counter(o, "fleetlease_heartbeats_total", "Successful heartbeats (renewals) through this daemon.",
            m->heartbeats);
    counter(o, "fleetlease_releases_total", "Successful releases through this daemon.",
            m->releases);
    counter(o, "fleetlease_expiries_total", "Lapsed leases deleted by this daemon's sweep.",
            m->expiries);
    counter(o, "fleetlease_sweep_runs_total", "Sweeps run by the sweep timer.", m->sweep_runs);
    counter(o, "fleetlease_sweep_errors_total", "Sweeps that failed (store unreachable or error).",
            m->sweep_errors);
    help(o, "fleetlease_checks_total", "counter",
         "Honor-protocol checks answered (HTTP check and /v1/auth), by result.");
    evbuffer_add_printf(o, "fleetlease_checks_total{result=\"allowed\"} %llu\n",
                        (unsigned long long)m->checks_allowed);
    evbuffer_add_printf(o, "fleetlease_checks_total{result=\"refused\"} %llu\n",
                        (unsigned long long)m->checks_refused);
    counter(o, "fleetlease_auth_failures_total",
            "Requests refused with 401 (missing or unknown bearer token).", m->auth_failures);

    help(o, "fleetlease_http_responses_total", "counter", "HTTP responses sent, by status class.");
    for (int c = 1; c <= 5; c++)
        evbuffer_add_printf(o, "fleetlease_http_responses_total{class=\"%dxx\"} %llu\n", c,
                            (unsigned long long)m->responses[c]);
    gauge(o, "fleetlease_http_connections", "Open client connections.",
          (long long)srv_conns_open(s));
    gauge(o, "fleetlease_http_connections_max", "The open-connection limit (--max-connections).",
          s->lim.max_conns);
    counter(o, "fleetlease_http_connections_accepted_total", "Client connections accepted.",
            m->conns_accepted);
    counter(o, "fleetlease_http_connections_evicted_total",
            "Idle or slow connections closed to make room past the limit, or for exceeding "
            "--request-timeout.",
            m->conns_evicted);
    counter(o, "fleetlease_http_connections_refused_total",
            "Connections closed at once because the limit was reached and none was idle.",
            m->conns_refused);
    gauge(o, "fleetlease_long_polls", "Acquires waiting (long polls) in progress.", s->waiters);
    gauge(o, "fleetlease_long_polls_max", "The long-poll limit (--max-waiters).",
          s->lim.max_waiters);
    counter(o, "fleetlease_long_polls_refused_total",
            "Long polls answered 503 because --max-waiters were already waiting.",
            m->waiters_refused);
    counter(o, "fleetlease_long_polls_abandoned_total",
            "Long polls granted after their client had gone; the lease was released at once.",
            m->abandoned);
    histogram(o, m);
}

void srv_metrics_reports(struct evbuffer *o, const fl_report *r, size_t n)
{
    /* Provider ids are [A-Za-z0-9._:/-]: safe in a label value as is. */
    help(o, "fleetlease_isolation", "gauge",
         "Isolation report of each live exclusive lease, summed over the gateways in front "
         "of its provider (docs/gateway.md); concurrent_foreign_requests must stay 0.");
    for (size_t i = 0; i < n; i++) {
        const fl_report *p = &r[i];
        const struct {
            const char *k;
            int64_t v;
        } f[] = {
            {"concurrent_foreign_requests", p->concurrent_foreign_requests},
            {"foreign_in_flight_at_grant", p->foreign_in_flight_at_grant},
            {"foreign_refused", p->foreign_refused},
            {"foreign_cut_off", p->foreign_cut_off},
            {"holder_requests", p->holder_requests},
            {"gateways", p->gateways},
        };
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            evbuffer_add_printf(o,
                                "fleetlease_isolation{provider=\"%s\",fence=\"%lld\",counter=\"%s\"} "
                                "%lld\n",
                                p->provider, (long long)p->fence, f[k].k, (long long)f[k].v);
    }
}
