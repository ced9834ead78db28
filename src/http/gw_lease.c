/*
 * src/http/gw_lease.c -- the lease side of the gateway: what the store
 * says about the provider, who may pass, the drain, and the accounting.
 *
 * Reading the state without a round trip per request
 * --------------------------------------------------
 * Every admission is fl_check_cached() -- the library's one check rule --
 * over the provider's rows kept in a handle's memory, at the store time
 * estimated from the read plus CLOCK_MONOTONIC.  A handle is used by one
 * thread at a time, and filling its memory takes a read on that same
 * handle, so the loop cannot refresh its own handle without blocking on
 * the store.  Hence two read handles, double-buffered:
 *   - the loop decides on h[front], holding front_mu for the microseconds
 *     of fl_check_cached (max_age so large that it never reads);
 *   - a re-read goes to h[!front] (the back), under back_mu, on another
 *     thread; if it reached the store, the two are swapped under front_mu.
 * The loop never waits for the store; the back is never touched by the
 * loop, the front never by a reader.  Re-reads come from the refresher
 * thread, which blocks in fl_wait_change (PostgreSQL LISTEN/NOTIFY,
 * SQLite data_version) for at most ~1 s and then reads -- so the state is
 * at most about a second old, and a few milliseconds after a change --
 * and from the worker thread when the loop asks for one (a request with a
 * token the view does not know yet).  A read that could not reach the
 * store is not swapped in: the loop goes on deciding from the last state
 * at the estimated time, which is what fl_check itself does when the
 * store is down (stale, then open once the blocking lease has lapsed by
 * the estimate).
 *
 * Admission
 * ---------
 * The check is called with writer = NULL: X-Fleet-Writer is a label the
 * gateway cannot authenticate, so only the lease's token (X-Fleet-Lease)
 * lets a request through an exclusive lease.  The name is kept for the
 * refusal counts.
 *
 * The drain guard
 * ---------------
 * A foreign request is forwarded only while this gateway holds a shared
 * lease on the provider (taken on demand, renewed every ttl/3, given back
 * --idle-release after the last foreign request).  So an exclusive request
 * cannot be granted while a foreign request is in flight here: it finds
 * the shared lease and registers a pending intent (draining).  When the
 * view shows draining, the check refuses foreign requests; once those in
 * flight are done the shared lease is released and the exclusive becomes
 * active.  --drain-timeout bounds the wait: then the lease is released
 * anyway and the requests still in flight are counted as cut off.  With
 * the store unreachable the shared lease cannot be taken; foreign
 * requests the check allows are then forwarded without it (counted as
 * unguarded): nobody can be granted an exclusive lease meanwhile either.
 *
 * Accounting
 * ----------
 * Per exclusive grant (provider + fence) seen in the view: foreign
 * requests in flight at the grant, foreign requests admitted at or after
 * it (concurrent_foreign_requests, which the guard keeps at 0), refusals
 * by writer while it was pending or active, the holder's requests, and
 * the requests a drain timeout cut off.  "At the grant" compares each
 * request's admission and end, on the store clock as estimated from the
 * last read, with the grant's acquired_at; finished requests are kept in
 * a ring of GW_RING for grants that show up after they ended.  Reports go
 * to the store with fl_report_put every GW_PUT_EVERY_MS while they change,
 * and once more with final = 1 when the grant leaves the view.
 */
#include "gw.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define GW_MAX_AGE_MS (INT64_C(1) << 50) /* the loop's fl_check_cached never reads */
#define GW_WAIT_MS 900                   /* refresher: wait for a change at most this long */
#define GW_PUT_EVERY_MS 2000             /* report puts while the counters change */
#define GW_REFRESH_TRIES 2               /* re-reads a request with an unknown token waits for */
#define GW_PARK_MAX_MS 2000              /* longest a request waits parked */
#define GW_LEASE_TRIES 3                 /* shared-lease attempts one request waits for */
#define GW_PURPOSE "drain guard: foreign requests in flight through the gateway"

typedef enum gw_op { CMD_ACQUIRE, CMD_RENEW, CMD_RELEASE, CMD_PUT, CMD_REFRESH } gw_op;

typedef struct gw_cmd {
    struct gw_cmd *next;
    gw_op op;
    int rc;
    char err[FL_MESSAGE_MAX];
    char token[FL_TOKEN_LEN + 1];
    fl_lease lease;
    fl_verdict conflict;
    fl_report rep;
    gw_acct *acct;     /* PUT: the loop's record; the worker only carries the pointer */
    int64_t sent_mono; /* ACQUIRE/RENEW: when the call was sent */
    const char *why;   /* RELEASE: for the log */
} gw_cmd;

struct gw_store {
    gw *g;
    fl_store *h[2];           /* read handles; h[front] is the loop's */
    int front;                /* under front_mu */
    pthread_mutex_t front_mu; /* the loop's use of h[front]; the swap; the fields below */
    pthread_mutex_t back_mu;  /* one re-read at a time */
    uint64_t started_seq;     /* re-reads started; the k-th started is the k-th done */
    uint64_t done_seq;
    int store_ok;             /* the last re-read reached the store */
    int64_t ok_mono;          /* when the front was last read */
    uint64_t refreshes, refresh_errors;
    char err[FL_MESSAGE_MAX];
    fl_store *w;              /* refresher: fl_wait_change */
    fl_store *l;              /* worker: writes */
    pthread_t t_refresh, t_work;
    int refresh_started, work_started;
    atomic_int stop;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    gw_cmd *q_head, *q_tail;  /* to the worker */
    gw_cmd *r_head, *r_tail;  /* results back to the loop */
    int cmds_out;             /* loop: submitted, result not yet handled */
};

/* ---- threads ------------------------------------------------------------ */

static void refresh(gw_store *s)
{
    pthread_mutex_lock(&s->back_mu);
    pthread_mutex_lock(&s->front_mu);
    int b = 1 - s->front;
    s->started_seq++;
    pthread_mutex_unlock(&s->front_mu);

    fl_verdict v;
    int rc = fl_check(s->h[b], s->g->o.provider, NULL, NULL, &v);
    int ok = rc == FL_OK && !v.stale;
    int64_t now = srv_mono_ms();

    pthread_mutex_lock(&s->front_mu);
    if (ok) {
        s->front = b;
        s->store_ok = 1;
        s->ok_mono = now;
        s->refreshes++;
    } else {
        s->store_ok = 0;
        s->refresh_errors++;
        snprintf(s->err, sizeof s->err, "%s",
                 fl_errmsg(s->h[b])[0] ? fl_errmsg(s->h[b]) : fl_strerror(rc));
    }
    s->done_seq++;
    pthread_mutex_unlock(&s->front_mu);
    pthread_mutex_unlock(&s->back_mu);
    event_active(s->g->ev_refreshed, EV_TIMEOUT, 0);
}

static void *refresher_main(void *arg)
{
    gw_store *s = arg;
    while (!atomic_load(&s->stop)) {
        fl_wait_change(s->w, s->g->o.provider, GW_WAIT_MS);
        if (atomic_load(&s->stop))
            break;
        refresh(s);
    }
    return NULL;
}

static void run_cmd(gw_store *s, gw_cmd *c)
{
    const gw_opts *o = &s->g->o;
    c->rc = FL_OK;
    switch (c->op) {
    case CMD_ACQUIRE:
        c->sent_mono = srv_mono_ms();
        memset(&c->conflict, 0, sizeof c->conflict);
        c->rc = fl_acquire(s->l, o->provider, o->name, GW_PURPOSE, FL_SHARED, o->lease_ttl_ms, 0,
                           &c->lease, &c->conflict);
        break;
    case CMD_RENEW:
        c->sent_mono = srv_mono_ms();
        c->rc = fl_heartbeat(s->l, c->token, &c->lease);
        /* A renew only moves the expiry to now + ttl again, so once more
         * is harmless when the first found this handle's connection
         * broken (the next call on it reconnects). */
        if (c->rc == FL_EUNAVAIL) {
            c->sent_mono = srv_mono_ms();
            c->rc = fl_heartbeat(s->l, c->token, &c->lease);
        }
        break;
    case CMD_RELEASE:
        c->rc = fl_release(s->l, c->token);
        break;
    case CMD_PUT:
        c->rc = fl_report_put(s->l, o->name, &c->rep);
        break;
    case CMD_REFRESH:
        refresh(s);
        break;
    }
    if (c->rc != FL_OK)
        snprintf(c->err, sizeof c->err, "%s",
                 fl_errmsg(s->l)[0] ? fl_errmsg(s->l) : fl_strerror(c->rc));
}

static void *worker_main(void *arg)
{
    gw_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->q_mu);
        while (!s->q_head && !atomic_load(&s->stop))
            pthread_cond_wait(&s->q_cv, &s->q_mu);
        gw_cmd *c = s->q_head;
        if (!c) {
            pthread_mutex_unlock(&s->q_mu);
            break; /* stopping, and the queue (final puts, release) is done */
        }
        s->q_head = c->next;
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->q_mu);

        run_cmd(s, c);

        pthread_mutex_lock(&s->q_mu);
        c->next = NULL;
        if (s->r_tail)
            s->r_tail->next = c;
        else
            s->r_head = c;
        s->r_tail = c;
        pthread_mutex_unlock(&s->q_mu);
        event_active(s->g->ev_results, EV_TIMEOUT, 0);
    }
    return NULL;
}

static gw_cmd *cmd_new(gw_op op)
{
    gw_cmd *c = calloc(1, sizeof *c);
    if (c)
        c->op = op;
    else
        srv_log("error", "out_of_memory", "what", "store command", NULL);
    return c;
}

static void submit(gw *g, gw_cmd *c)
{
    gw_store *s = g->store;
    pthread_mutex_lock(&s->q_mu);
    c->next = NULL;
    if (s->q_tail)
        s->q_tail->next = c;
    else
        s->q_head = c;
    s->q_tail = c;
    s->cmds_out++;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

/* ---- start and stop -------------------------------------------------------- */

static int open_one(gw *g, fl_store **out)
{
    int rc = cli_open(g->ctx, out);
    if (rc == 0)
        fl_set_cache_dir(*out, NULL); /* memory only: no state file per re-read */
    return rc;
}

int gw_store_start(gw *g)
{
    gw_store *s = calloc(1, sizeof *s);
    if (!s)
        return cli_fail(g->ctx, FL_ENOMEM, "out of memory");
    s->g = g;
    g->store = s;
    pthread_mutex_init(&s->front_mu, NULL);
    pthread_mutex_init(&s->back_mu, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    atomic_init(&s->stop, 0);
    int rc;
    if ((rc = open_one(g, &s->h[0])) != 0 || (rc = open_one(g, &s->h[1])) != 0 ||
        (rc = open_one(g, &s->w)) != 0 || (rc = open_one(g, &s->l)) != 0)
        return rc;
    /* Both read handles hold the state before the first request: the loop
     * must never find its handle empty (fl_check_cached would then read,
     * on the loop).  A gateway that cannot read the state does not start. */
    for (int i = 0; i < 2; i++) {
        fl_verdict v;
        rc = fl_check(s->h[i], g->o.provider, NULL, NULL, &v);
        if (rc == FL_OK && v.stale)
            rc = FL_EUNAVAIL;
        if (rc != FL_OK)
            return cli_fail(g->ctx, rc, "cannot read the state of %s from %s: %s", g->o.provider,
                            fl_store_display(s->h[i]),
                            fl_errmsg(s->h[i])[0] ? fl_errmsg(s->h[i]) : fl_strerror(rc));
    }
    s->store_ok = 1;
    s->ok_mono = srv_mono_ms();
    int e = pthread_create(&s->t_refresh, NULL, refresher_main, s);
    if (e == 0) {
        s->refresh_started = 1;
        e = pthread_create(&s->t_work, NULL, worker_main, s);
        if (e == 0)
            s->work_started = 1;
    }
    if (e != 0)
        return cli_fail(g->ctx, FL_ESYS, "cannot start a store thread: %s", strerror(e));
    return 0;
}

static void cmd_free(gw_cmd *c)
{
    if (!c)
        return;
    explicit_bzero(c->token, sizeof c->token);
    explicit_bzero(c->lease.token, sizeof c->lease.token);
    free(c);
}

void gw_store_stop(gw *g)
{
    gw_store *s = g->store;
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_mutex_lock(&s->q_mu);
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    if (s->refresh_started)
        pthread_join(s->t_refresh, NULL);
    if (s->work_started)
        pthread_join(s->t_work, NULL);
    for (gw_cmd *c = s->q_head, *n; c; c = n) {
        n = c->next;
        cmd_free(c);
    }
    for (gw_cmd *c = s->r_head, *n; c; c = n) {
        n = c->next;
        cmd_free(c);
    }
    fl_close(s->h[0]);
    fl_close(s->h[1]);
    fl_close(s->w);
    fl_close(s->l);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->q_mu);
    pthread_mutex_destroy(&s->back_mu);
    pthread_mutex_destroy(&s->front_mu);
    free(s);
    g->store = NULL;
}

void gw_store_health(gw *g, int *store_ok, int64_t *age_ms, uint64_t *refreshes, char *err,
                     size_t errlen)
{
    gw_store *s = g->store;
    pthread_mutex_lock(&s->front_mu);
    *store_ok = s->store_ok;
    *age_ms = srv_mono_ms() - s->ok_mono;
    *refreshes = s->refreshes;
    if (err && errlen)
        snprintf(err, errlen, "%s", s->store_ok ? "" : s->err);
    pthread_mutex_unlock(&s->front_mu);
}

/* ---- the decision ---------------------------------------------------------- */

/* THE check, over the front handle's memory. */
static int decide(gw *g, const char *token, fl_verdict *v, char *err, size_t errlen)
{
    gw_store *s = g->store;
    pthread_mutex_lock(&s->front_mu);
    fl_store *h = s->h[s->front];
    int rc = fl_check_cached(h, g->o.provider, NULL, token && token[0] ? token : NULL,
                             GW_MAX_AGE_MS, v);
    if (rc != FL_OK)
        snprintf(err, errlen, "%s", fl_errmsg(h)[0] ? fl_errmsg(h) : fl_strerror(rc));
    pthread_mutex_unlock(&s->front_mu);
    return rc;
}

static uint64_t next_refresh_seq(gw *g)
{
    gw_store *s = g->store;
    pthread_mutex_lock(&s->front_mu);
    uint64_t n = s->started_seq + 1;
    pthread_mutex_unlock(&s->front_mu);
    return n;
}

static uint64_t done_refresh_seq(gw *g)
{
    gw_store *s = g->store;
    pthread_mutex_lock(&s->front_mu);
    uint64_t n = s->done_seq;
    pthread_mutex_unlock(&s->front_mu);
    return n;
}

static void request_refresh(gw *g)
{
    if (g->refresh_wanted)
        return;
    gw_cmd *c = cmd_new(CMD_REFRESH);
    if (!c)
        return;
    g->refresh_wanted = 1;
    submit(g, c);
}

/* ---- reports ------------------------------------------------------------ */

/* Count n refusals of `writer`.  The table keeps FL_REPORT_WRITERS - 1
 * names; more writers than that share "(other)". */
static void rep_refuse(fl_report *rep, const char *writer, int64_t n)
{
    rep->foreign_refused += n;
    for (size_t i = 0; i < rep->n_writers; i++)
        if (strcmp(rep->writers[i].writer, writer) == 0) {
            rep->writers[i].refused += n;
            return;
        }
    const char *name = writer;
    if (rep->n_writers >= FL_REPORT_WRITERS - 1) {
        name = "(other)";
        for (size_t i = 0; i < rep->n_writers; i++)
            if (strcmp(rep->writers[i].writer, name) == 0) {
                rep->writers[i].refused += n;
                return;
            }
    }
    if (rep->n_writers >= FL_REPORT_WRITERS)
        return;
    fl_report_writer *w = &rep->writers[rep->n_writers++];
    snprintf(w->writer, sizeof w->writer, "%s", name);
    w->refused = n;
}

static void acct_put(gw *g, gw_acct *a)
{
    if (a->put_inflight)
        return; /* the result handler puts again if it changed meanwhile */
    gw_cmd *c = cmd_new(CMD_PUT);
    if (!c)
        return;
    c->rep = a->rep;
    c->acct = a;
    a->dirty = 0;
    a->put_inflight = 1;
    a->last_put_mono = srv_mono_ms();
    submit(g, c);
}

static void log_report(const char *event, const gw_acct *a)
{
    char f[32], c[32], i[32], r[32], h[32], x[32];
    const fl_report *p = &a->rep;
    srv_log("info", event, "fence", srv_num(f, sizeof f, (long long)p->fence), "holder",
            a->holder, "concurrent_foreign_requests",
            srv_num(c, sizeof c, (long long)p->concurrent_foreign_requests),
            "foreign_in_flight_at_grant",
            srv_num(i, sizeof i, (long long)p->foreign_in_flight_at_grant), "foreign_refused",
            srv_num(r, sizeof r, (long long)p->foreign_refused), "foreign_cut_off",
            srv_num(x, sizeof x, (long long)p->foreign_cut_off), "holder_requests",
            srv_num(h, sizeof h, (long long)p->holder_requests), NULL);
}

/* The grant left the view: its report becomes final. */
static void acct_close(gw *g)
{
    gw_acct *a = g->acct;
    g->acct = NULL;
    a->rep.final = 1;
    a->dirty = 1;
    log_report("grant_ended", a);
    if (g->nclosed >= GW_CLOSED_MAX) {
        /* The store has been unreachable for many grants: give up the
         * oldest final report not being written (its last non-final one
         * stays in the store). */
        gw_acct **pp = &g->closed;
        while (*pp && (*pp)->put_inflight)
            pp = &(*pp)->next;
        if (*pp) {
            gw_acct *old = *pp;
            char f[32];
            srv_log("warn", "report_dropped", "fence",
                    srv_num(f, sizeof f, (long long)old->rep.fence), "reason",
                    "too many final reports waiting for the store", NULL);
            *pp = old->next;
            free(old);
            g->nclosed--;
        }
    }
    gw_acct **tail = &g->closed;
    while (*tail)
        tail = &(*tail)->next;
    a->next = NULL;
    *tail = a;
    g->nclosed++;
    acct_put(g, a);
}

static void drain_reset(gw *g)
{
    memset(&g->drain, 0, sizeof g->drain);
}

/* A grant showed up in the view. */
static void acct_open(gw *g, const gw_view *v)
{
    gw_acct *a = calloc(1, sizeof *a);
    if (!a) {
        srv_log("error", "out_of_memory", "what", "isolation report", NULL);
        return;
    }
    snprintf(a->rep.provider, sizeof a->rep.provider, "%s", g->o.provider);
    a->rep.fence = v->fence;
    a->granted_at_ms = v->granted_at_ms;
    snprintf(a->holder, sizeof a->holder, "%s", v->holder);
    /* Refusals while this grant was pending belong to it. */
    if (g->drain.active && strcmp(g->drain.holder, v->holder) == 0) {
        a->rep.foreign_cut_off = g->drain.rep.foreign_cut_off;
        for (size_t i = 0; i < g->drain.rep.n_writers; i++)
            rep_refuse(&a->rep, g->drain.rep.writers[i].writer, g->drain.rep.writers[i].refused);
    }
    drain_reset(g);

    /* What was in flight at the grant, or even admitted after it (the
     * view lags the store by up to a re-read). */
    const int64_t G = a->granted_at_ms;
    for (gw_req *r = g->reqs; r; r = r->next) {
        if (!r->admitted || !r->foreign)
            continue;
        if (r->admit_est_ms < G)
            a->rep.foreign_in_flight_at_grant++;
        else
            a->rep.concurrent_foreign_requests++;
    }
    for (size_t i = 0; i < g->ring_n; i++) {
        const gw_done_rec *d = &g->ring[i];
        if (d->end_est_ms <= G)
            continue;
        if (d->admit_est_ms < G)
            a->rep.foreign_in_flight_at_grant++;
        else
            a->rep.concurrent_foreign_requests++;
    }
    g->m.grants_seen++;
    g->m.concurrent_foreign_total += (uint64_t)a->rep.concurrent_foreign_requests;
    g->m.in_flight_at_grant_total += (uint64_t)a->rep.foreign_in_flight_at_grant;
    g->acct = a;
    a->dirty = 1;
    log_report("grant_seen", a);
    acct_put(g, a);
}

/* ---- the view ---------------------------------------------------------------- */

static void shared_maybe_release(gw *g);
static void shared_release(gw *g, const char *why);

static void apply_view(gw *g, const fl_verdict *v)
{
    gw_view nv;
    memset(&nv, 0, sizeof nv);
    nv.state = v->state;
    nv.shared_count = v->shared_count;
    if (v->state == FL_PSTATE_EXCLUSIVE && !v->allowed) {
        nv.fence = v->blocker.fence;
        nv.granted_at_ms = v->blocker.acquired_at_ms;
    }
    if (!v->allowed) {
        snprintf(nv.holder, sizeof nv.holder, "%s", v->blocker.holder);
        snprintf(nv.purpose, sizeof nv.purpose, "%s", v->blocker.purpose);
    }
    gw_view old = g->view;
    g->view = nv;
    g->view_mono = srv_mono_ms();

    if (g->acct && (nv.state != FL_PSTATE_EXCLUSIVE || nv.fence != g->acct->rep.fence))
        acct_close(g);
    if (nv.state == FL_PSTATE_DRAINING &&
        (!g->drain.active || strcmp(g->drain.holder, nv.holder) != 0)) {
        if (g->drain.active)
            srv_log("info", "drain_abandoned", "holder", g->drain.holder, NULL);
        drain_reset(g);
        g->drain.active = 1;
        g->drain.since_mono = srv_mono_ms();
        snprintf(g->drain.holder, sizeof g->drain.holder, "%s", nv.holder);
        g->m.drains++;
        char n[32];
        srv_log("info", "draining", "for", nv.holder, "purpose", nv.purpose, "foreign_in_flight",
                srv_num(n, sizeof n, g->foreign_inflight), NULL);
    } else if (g->drain.active && nv.state != FL_PSTATE_DRAINING &&
               nv.state != FL_PSTATE_EXCLUSIVE) {
        /* The waiter gave up (or its intent lapsed) before it was granted. */
        srv_log("info", "drain_abandoned", "holder", g->drain.holder, NULL);
        drain_reset(g);
    }
    if (nv.state == FL_PSTATE_EXCLUSIVE && !g->acct)
        acct_open(g, &nv);
    if (old.state != nv.state) {
        char f[32];
        srv_log("info", "state", "state", fl_pstate_name(nv.state), "was",
                fl_pstate_name(old.state), "fence", srv_num(f, sizeof f, (long long)nv.fence),
                "holder", nv.holder, NULL);
    }
}

static void view_sync(gw *g)
{
    fl_verdict v;
    char err[FL_MESSAGE_MAX];
    if (decide(g, NULL, &v, err, sizeof err) == FL_OK)
        apply_view(g, &v);
}

/* ---- admission ------------------------------------------------------------ */

static void admit(gw *g, gw_req *r, const fl_verdict *v)
{
    r->admitted = 1;
    r->admit_mono_ms = srv_mono_ms();
    r->admit_est_ms = v->now_ms;
    if (r->foreign) {
        g->foreign_inflight++;
        g->last_foreign_mono = r->admit_mono_ms;
    } else {
        g->holder_inflight++;
    }
    g->m.requests[r->foreign ? 0 : 1][0]++;
}

static void refuse(gw *g, gw_req *r, const fl_verdict *v)
{
    if (v->state == FL_PSTATE_EXCLUSIVE && g->acct) {
        rep_refuse(&g->acct->rep, r->writer, 1);
        g->acct->dirty = 1;
    } else if (v->state == FL_PSTATE_DRAINING && g->drain.active) {
        rep_refuse(&g->drain.rep, r->writer, 1);
    }
    g->m.requests[0][1]++;
    gw_reply_json(r, 423, cli_verdict_json(g->o.provider, v), v->retry_after_ms,
                  fl_pstate_name(v->state));
}

static void shared_want(gw *g)
{
    if (g->sh.state != SH_NONE || srv_mono_ms() < g->sh.retry_after_mono || g->stopping)
        return;
    gw_cmd *c = cmd_new(CMD_ACQUIRE);
    if (!c)
        return;
    g->sh.state = SH_ACQUIRING;
    submit(g, c);
}

int gw_refuses_foreign(gw *g)
{
    fl_verdict v;
    char err[FL_MESSAGE_MAX];
    return decide(g, NULL, &v, err, sizeof err) == FL_OK && !v.allowed;
}

void gw_admit(gw_req *r)
{
    gw *g = r->g;
    fl_verdict v;
    char err[FL_MESSAGE_MAX];
    int rc = decide(g, r->token, &v, err, sizeof err);
    if (rc != FL_OK) {
        g->m.bad_requests++;
        gw_reply_error(r, rc == FL_EINVAL ? 400 : 500, rc == FL_EINVAL ? "invalid" : "internal",
                       "%s", err);
        return;
    }
    /* The anonymous view (state, the active grant's fence); the token's
     * verdict alone hides the blocker once it allows. */
    if (r->token[0])
        view_sync(g);
    else
        apply_view(g, &v);

    if (v.allowed && v.state == FL_PSTATE_EXCLUSIVE) {
        /* Only the token passes an exclusive lease (writer is not given). */
        r->foreign = 0;
        r->fence = g->view.fence;
        if (g->acct && g->acct->rep.fence == r->fence) {
            g->acct->rep.holder_requests++;
            g->acct->dirty = 1;
        }
        admit(g, r, &v);
        gw_forward(r);
        return;
    }
    if (v.allowed) {
        r->foreign = 1;
        if (g->sh.state == SH_HELD || g->sh.unguarded) {
            if (g->sh.state != SH_HELD)
                g->m.unguarded++;
            admit(g, r, &v);
            gw_forward(r);
            if (g->sh.unguarded && g->sh.state == SH_NONE)
                shared_want(g); /* keep trying: the store may be back */
            return;
        }
        if (r->state != GWR_PARKED_LEASE) {
            r->state = GWR_PARKED_LEASE;
            g->m.parked_lease++;
        }
        shared_want(g);
        return;
    }
    /* Refused.  A token the view does not know may belong to a grant made
     * since the last re-read (a benchmark starting right after it was
     * granted): look again before answering 423. */
    if (r->token[0] && r->refresh_tries < GW_REFRESH_TRIES &&
        (v.state == FL_PSTATE_DRAINING || v.state == FL_PSTATE_EXCLUSIVE)) {
        if (r->state != GWR_PARKED_REFRESH)
            g->m.parked_refresh++;
        r->state = GWR_PARKED_REFRESH;
        r->want_seq = next_refresh_seq(g);
        r->refresh_tries++;
        request_refresh(g);
        return;
    }
    refuse(g, r, &v);
}

void gw_request_ended(gw_req *r)
{
    gw *g = r->g;
    if (!r->admitted)
        return;
    r->admitted = 0;
    int64_t now = srv_mono_ms();
    if (!r->foreign) {
        g->holder_inflight--;
        return;
    }
    g->foreign_inflight--;
    g->last_foreign_mono = now;
    gw_done_rec *d = &g->ring[g->ring_next];
    d->admit_est_ms = r->admit_est_ms;
    d->end_est_ms = r->admit_est_ms + (now - r->admit_mono_ms);
    g->ring_next = (g->ring_next + 1) % GW_RING;
    if (g->ring_n < GW_RING)
        g->ring_n++;
    shared_maybe_release(g);
}

/* Re-decide the parked requests that `pred` selects.  gw_admit may free
 * the request it is given, never another one. */
static void readmit(gw *g, gw_rstate which, int all)
{
    uint64_t done = which == GWR_PARKED_REFRESH ? done_refresh_seq(g) : 0;
    int64_t now = srv_mono_ms();
    for (gw_req *r = g->reqs, *next; r; r = next) {
        next = r->next;
        if (r->state != which)
            continue;
        if (which == GWR_PARKED_REFRESH && !all && done < r->want_seq &&
            now - r->arrive_mono_ms < GW_PARK_MAX_MS)
            continue;
        gw_admit(r);
    }
}

/* ---- the shared lease ----------------------------------------------------------- */

static int foreign_uncut(const gw *g)
{
    int n = 0;
    for (const gw_req *r = g->reqs; r; r = r->next)
        if (r->admitted && r->foreign && !r->cut_off)
            n++;
    return n;
}

static void shared_release(gw *g, const char *why)
{
    if (g->sh.state != SH_HELD || g->sh.hb_inflight)
        return;
    gw_cmd *c = cmd_new(CMD_RELEASE);
    if (!c)
        return;
    memcpy(c->token, g->sh.token, sizeof c->token);
    c->why = why;
    g->sh.state = SH_RELEASING;
    submit(g, c);
}

static void shared_maybe_release(gw *g)
{
    if (g->sh.state != SH_HELD || g->sh.hb_inflight)
        return;
    int64_t now = srv_mono_ms();
    int blocked = g->view.state == FL_PSTATE_DRAINING || g->view.state == FL_PSTATE_EXCLUSIVE;
    if (blocked) {
        if (foreign_uncut(g) == 0) {
            shared_release(g, "drained");
            return;
        }
        if (g->drain.active && now - g->drain.since_mono >= g->o.drain_timeout_ms) {
            int n = 0;
            for (gw_req *r = g->reqs; r; r = r->next)
                if (r->admitted && r->foreign && !r->cut_off) {
                    r->cut_off = 1;
                    n++;
                }
            g->drain.rep.foreign_cut_off += n;
            g->drain.timed_out = 1;
            g->m.drain_timeouts++;
            g->m.foreign_cut_off += (uint64_t)n;
            char c[32];
            srv_log("warn", "drain_timeout", "for", g->drain.holder, "cut_off",
                    srv_num(c, sizeof c, n), NULL);
            shared_release(g, "drain timeout");
        }
        return;
    }
    if (g->foreign_inflight > 0 ||
        (!g->stopping && now - g->last_foreign_mono < g->o.idle_release_ms))
        return;
    for (const gw_req *r = g->reqs; r; r = r->next)
        if (r->state == GWR_PARKED_LEASE)
            return;
    shared_release(g, g->stopping ? "stopping" : "idle");
}

static void on_acquired(gw *g, gw_cmd *c)
{
    gw_shared *sh = &g->sh;
    if (c->rc == FL_OK) {
        sh->state = SH_HELD;
        memcpy(sh->token, c->lease.token, sizeof sh->token);
        sh->fence = c->lease.fence;
        sh->renewed_mono = c->sent_mono;
        if (sh->unguarded)
            srv_log("info", "guarded_again", NULL);
        sh->unguarded = 0;
        g->m.shared_acquired++;
        char f[32];
        srv_log("info", "shared_acquired", "fence", srv_num(f, sizeof f, (long long)sh->fence),
                NULL);
        readmit(g, GWR_PARKED_LEASE, 1);
        shared_maybe_release(g);
        return;
    }
    sh->state = SH_NONE;
    if (c->rc == FL_ECONFLICT) {
        /* Draining or exclusive since the view was read: look again, then
         * the parked requests get the check's answer. */
        g->m.shared_refused++;
        sh->retry_after_mono = srv_mono_ms() + 50;
        srv_log("info", "shared_refused", "message", c->conflict.message, NULL);
        uint64_t want = next_refresh_seq(g);
        for (gw_req *r = g->reqs, *next; r; r = next) {
            next = r->next;
            if (r->state != GWR_PARKED_LEASE)
                continue;
            if (++r->refresh_tries > GW_LEASE_TRIES) {
                g->m.requests[0][2]++;
                gw_reply_error(r, 503, "unavailable",
                               "the host keeps changing hands; the gateway could not take its "
                               "drain-guard lease (%s)",
                               c->conflict.message);
                continue;
            }
            r->state = GWR_PARKED_REFRESH;
            r->want_seq = want;
        }
        request_refresh(g);
        return;
    }
    /* The store cannot be reached (or refused the write): forward what the
     * check allows without the guard, as the check itself fails open. */
    sh->retry_after_mono = srv_mono_ms() + 1000;
    if (!sh->unguarded)
        srv_log("warn", "unguarded", "error", c->err, "note",
                "cannot take the drain-guard lease; forwarding what the check allows without it",
                NULL);
    sh->unguarded = 1;
    readmit(g, GWR_PARKED_LEASE, 1);
}

static void on_renewed(gw *g, gw_cmd *c)
{
    gw_shared *sh = &g->sh;
    sh->hb_inflight = 0;
    if (sh->state != SH_HELD)
        return;
    if (c->rc == FL_OK) {
        sh->renewed_mono = c->sent_mono;
    } else if (c->rc == FL_EEXPIRED || c->rc == FL_ENOTFOUND) {
        sh->state = SH_NONE;
        g->m.shared_lost++;
        char n[32];
        srv_log("warn", "shared_lost", "error", c->err, "foreign_in_flight",
                srv_num(n, sizeof n, g->foreign_inflight), NULL);
        if (g->foreign_inflight > 0)
            shared_want(g);
        return;
    }
    shared_maybe_release(g);
}

static void on_released(gw *g, gw_cmd *c)
{
    g->sh.state = SH_NONE;
    explicit_bzero(g->sh.token, sizeof g->sh.token);
    g->m.shared_released++;
    char n[32];
    srv_log("info", "shared_released", "reason", c->why ? c->why : "", "result",
            c->rc == FL_OK ? "ok" : c->err, "foreign_in_flight",
            srv_num(n, sizeof n, g->foreign_inflight), NULL);
    for (gw_req *r = g->reqs; r; r = r->next)
        if (r->state == GWR_PARKED_LEASE) {
            shared_want(g);
            break;
        }
}

static void on_put(gw *g, gw_cmd *c)
{
    gw_acct *a = c->acct;
    a->put_inflight = 0;
    if (c->rc != FL_OK) {
        if (g->m.report_errors++ % 10 == 0)
            srv_log("warn", "report_failed", "error", c->err, NULL);
        a->dirty = 1;
        return;
    }
    g->m.reports_put++;
    if (a == g->acct || a->dirty || !c->rep.final)
        return;
    /* A closed grant whose final report is stored is done with. */
    for (gw_acct **pp = &g->closed; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            g->nclosed--;
            free(a);
            return;
        }
}

/* ev_results: what the worker finished. */
static void on_results(evutil_socket_t fd, short what, void *arg)
{
    gw *g = arg;
    gw_store *s = g->store;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&s->q_mu);
    gw_cmd *c = s->r_head;
    s->r_head = s->r_tail = NULL;
    pthread_mutex_unlock(&s->q_mu);
    while (c) {
        gw_cmd *next = c->next;
        s->cmds_out--;
        switch (c->op) {
        case CMD_ACQUIRE: on_acquired(g, c); break;
        case CMD_RENEW: on_renewed(g, c); break;
        case CMD_RELEASE: on_released(g, c); break;
        case CMD_PUT: on_put(g, c); break;
        case CMD_REFRESH: g->refresh_wanted = 0; break;
        }
        cmd_free(c);
        c = next;
    }
}

/* ev_refreshed: a re-read finished. */
static void on_refreshed(evutil_socket_t fd, short what, void *arg)
{
    gw *g = arg;
    (void)fd;
    (void)what;
    view_sync(g);
    readmit(g, GWR_PARKED_REFRESH, 0);
    shared_maybe_release(g);
}

void gw_lease_events(gw *g, struct event **refreshed, struct event **results)
{
    *refreshed = event_new(g->base, -1, 0, on_refreshed, g);
    *results = event_new(g->base, -1, 0, on_results, g);
}

/* ---- periodic work ---------------------------------------------------------- */

void gw_lease_tick(gw *g)
{
    int64_t now = srv_mono_ms();
    gw_shared *sh = &g->sh;
    view_sync(g);
    readmit(g, GWR_PARKED_REFRESH, 0);

    if (sh->state == SH_HELD && !sh->hb_inflight) {
        int64_t margin = g->o.lease_ttl_ms / 4 < 30000 ? g->o.lease_ttl_ms / 4 : 30000;
        if (now - sh->renewed_mono >= g->o.lease_ttl_ms - margin) {
            /* Past our own deadline without a renew: the store may have
             * dropped the lease; do not count on it. */
            sh->state = SH_NONE;
            sh->unguarded = 1;
            g->m.shared_lost++;
            srv_log("warn", "shared_lost", "error", "no successful renew before the deadline",
                    NULL);
        } else if (now - sh->renewed_mono >= g->o.lease_ttl_ms / 3) {
            gw_cmd *c = cmd_new(CMD_RENEW);
            if (c) {
                memcpy(c->token, sh->token, sizeof c->token);
                sh->hb_inflight = 1;
                submit(g, c);
            }
        }
    }
    if (sh->state == SH_NONE && (g->foreign_inflight > 0 || sh->unguarded) &&
        g->view.state != FL_PSTATE_DRAINING && g->view.state != FL_PSTATE_EXCLUSIVE) {
        for (gw_req *r = g->reqs; r; r = r->next)
            if ((r->admitted && r->foreign && !r->cut_off) || r->state == GWR_PARKED_LEASE) {
                shared_want(g);
                break;
            }
    }
    shared_maybe_release(g);

    if (g->acct && g->acct->dirty && now - g->acct->last_put_mono >= GW_PUT_EVERY_MS)
        acct_put(g, g->acct);
    for (gw_acct *a = g->closed; a; a = a->next)
        if (a->dirty && now - a->last_put_mono >= 500)
            acct_put(g, a);
}

void gw_lease_shutdown(gw *g)
{
    /* The gateway did not see this grant end: its last report stays
     * non-final, which is what `run` is told. */
    if (g->acct && g->acct->dirty)
        acct_put(g, g->acct);
    shared_maybe_release(g);
}

int gw_lease_idle(gw *g)
{
    if (g->store->cmds_out > 0 || g->sh.state == SH_ACQUIRING || g->sh.state == SH_RELEASING)
        return 0;
    if (g->sh.state == SH_HELD)
        return 0;
    for (gw_acct *a = g->closed; a; a = a->next)
        if (a->dirty || a->put_inflight)
            return 0;
    return !(g->acct && (g->acct->dirty || g->acct->put_inflight));
}

void gw_lease_free(gw *g)
{
    while (g->closed) {
        gw_acct *a = g->closed;
        g->closed = a->next;
        free(a);
    }
    g->nclosed = 0;
    free(g->acct);
    g->acct = NULL;
}

/* ---- metrics and status --------------------------------------------------- */

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

void gw_lease_metrics(gw *g, struct evbuffer *o)
{
    const gw_counters *m = &g->m;
    int ok;
    int64_t age;
    uint64_t refreshes;
    gw_store_health(g, &ok, &age, &refreshes, NULL, 0);

    help(o, "fleetlease_gateway_state", "gauge",
         "The provider's state as the gateway sees it: 1 for the current state.");
    for (int st = FL_PSTATE_FREE; st <= FL_PSTATE_EXCLUSIVE; st++)
        evbuffer_add_printf(o, "fleetlease_gateway_state{state=\"%s\"} %d\n",
                            fl_pstate_name((fl_pstate)st), g->view.state == (fl_pstate)st);
    gauge(o, "fleetlease_gateway_store_up", "1 if the last re-read of the state reached the store.",
          ok);
    help(o, "fleetlease_gateway_state_age_seconds", "gauge",
         "Time since the state was last read from the store.");
    evbuffer_add_printf(o, "fleetlease_gateway_state_age_seconds %.3f\n", (double)age / 1000.0);
    counter(o, "fleetlease_gateway_state_reads_total", "Re-reads of the state that reached the store.",
            refreshes);
    gauge(o, "fleetlease_gateway_shared_lease_held",
          "1 while the gateway holds its drain-guard shared lease.", g->sh.state == SH_HELD);
    gauge(o, "fleetlease_gateway_unguarded",
          "1 while the store is unreachable and foreign requests pass without the shared lease.",
          g->sh.unguarded);
    help(o, "fleetlease_gateway_in_flight", "gauge", "Requests in flight at the upstream, by kind.");
    evbuffer_add_printf(o, "fleetlease_gateway_in_flight{kind=\"foreign\"} %d\n",
                        g->foreign_inflight);
    evbuffer_add_printf(o, "fleetlease_gateway_in_flight{kind=\"holder\"} %d\n",
                        g->holder_inflight);
    help(o, "fleetlease_gateway_requests_total", "counter",
         "Requests by kind (holder: carried the exclusive lease's token) and result (forwarded, "
         "refused with 423, error).");
    static const char *const kinds[2] = {"foreign", "holder"};
    static const char *const results[3] = {"forwarded", "refused", "error"};
    for (int k = 0; k < 2; k++)
        for (int r = 0; r < 3; r++)
            evbuffer_add_printf(o, "fleetlease_gateway_requests_total{kind=\"%s\",result=\"%s\"} %llu\n",
                                kinds[k], results[r], (unsigned long long)m->requests[k][r]);
    counter(o, "fleetlease_gateway_unguarded_requests_total",
            "Foreign requests forwarded without the shared lease (store unreachable).", m->unguarded);
    counter(o, "fleetlease_gateway_shared_acquired_total", "Drain-guard shared leases taken.",
            m->shared_acquired);
    counter(o, "fleetlease_gateway_shared_released_total", "Drain-guard shared leases given back.",
            m->shared_released);
    counter(o, "fleetlease_gateway_shared_lost_total",
            "Drain-guard shared leases lost (renew refused or deadline passed).", m->shared_lost);
    counter(o, "fleetlease_gateway_drains_total", "Exclusive requests seen pending (draining).",
            m->drains);
    counter(o, "fleetlease_gateway_drain_timeouts_total",
            "Drains that hit --drain-timeout with foreign requests in flight.", m->drain_timeouts);
    counter(o, "fleetlease_gateway_foreign_cut_off_total",
            "Foreign requests in flight when a drain timed out.", m->foreign_cut_off);
    counter(o, "fleetlease_gateway_grants_seen_total", "Exclusive grants seen in the state.",
            m->grants_seen);
    counter(o, "fleetlease_gateway_concurrent_foreign_requests_total",
            "Foreign requests admitted at or after an exclusive grant, summed over grants: "
            "must stay 0.",
            m->concurrent_foreign_total);
    counter(o, "fleetlease_gateway_foreign_in_flight_at_grant_total",
            "Foreign requests in flight when an exclusive lease was granted, summed over grants.",
            m->in_flight_at_grant_total);
    counter(o, "fleetlease_gateway_reports_put_total", "Isolation reports written to the store.",
            m->reports_put);
    counter(o, "fleetlease_gateway_report_errors_total", "Isolation report writes that failed.",
            m->report_errors);

    /* The open grant's report, labelled with its fence. */
    const gw_acct *a = g->acct;
    help(o, "fleetlease_gateway_isolation", "gauge",
         "This gateway's counters for the exclusive grant now active (fence label).");
    if (a) {
        const fl_report *p = &a->rep;
        const struct {
            const char *k;
            int64_t v;
        } f[] = {
            {"concurrent_foreign_requests", p->concurrent_foreign_requests},
            {"foreign_in_flight_at_grant", p->foreign_in_flight_at_grant},
            {"foreign_refused", p->foreign_refused},
            {"foreign_cut_off", p->foreign_cut_off},
            {"holder_requests", p->holder_requests},
        };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            evbuffer_add_printf(o, "fleetlease_gateway_isolation{fence=\"%lld\",counter=\"%s\"} %lld\n",
                                (long long)p->fence, f[i].k, (long long)f[i].v);
    }
}

json_t *gw_lease_status(gw *g)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int ok;
    int64_t age;
    uint64_t refreshes;
    char err[FL_MESSAGE_MAX];
    gw_store_health(g, &ok, &age, &refreshes, err, sizeof err);
    json_object_set_new(o, "provider", cli_jstr(g->o.provider));
    json_object_set_new(o, "name", cli_jstr(g->o.name));
    json_object_set_new(o, "state", json_string(fl_pstate_name(g->view.state)));
    if (g->view.state == FL_PSTATE_EXCLUSIVE || g->view.state == FL_PSTATE_DRAINING) {
        json_object_set_new(o, "holder", cli_jstr(g->view.holder));
        json_object_set_new(o, "purpose", cli_jstr(g->view.purpose));
    }
    if (g->view.state == FL_PSTATE_EXCLUSIVE)
        json_object_set_new(o, "fence", json_integer(g->view.fence));
    json_object_set_new(o, "store_up", json_boolean(ok));
    json_object_set_new(o, "state_age_ms", json_integer(age));
    if (!ok)
        json_object_set_new(o, "store_error", cli_jstr(err));
    static const char *const shn[] = {"none", "acquiring", "held", "releasing"};
    json_object_set_new(o, "shared_lease", json_string(shn[g->sh.state]));
    json_object_set_new(o, "unguarded", json_boolean(g->sh.unguarded));
    json_object_set_new(o, "foreign_in_flight", json_integer(g->foreign_inflight));
    json_object_set_new(o, "holder_in_flight", json_integer(g->holder_inflight));
    json_object_set_new(o, "report", g->acct ? srv_report_json(&g->acct->rep) : json_null());
    return o;
}
