/*
 * src/http/pool.c -- worker threads that make the store calls.
 *
 * Each worker owns one fl_store handle for its whole life (a handle may
 * be used by one thread at a time; with PostgreSQL it is one connection).
 * Jobs come from one FIFO queue.  The number of workers is
 * --workers + --max-waiters and at most --max-waiters jobs are long polls
 * (the loop refuses more with 503), so at least --workers threads are
 * always free for quick calls: a room full of waiters cannot starve a
 * heartbeat, which would make leases lapse.
 *
 * Hand-back: the worker fills the job's outputs, then event_active() on
 * the job's completion event (libevent is in pthreads mode, so this wakes
 * the loop safely from another thread).  That call is the last touch: the
 * loop may free the job as soon as it runs the event.
 *
 * Long polls use fl_acquire_ex with a cancel callback that reads the job's
 * cancel flag (set by the loop on SIGTERM, or when the client closed its
 * connection): the library asks it at least every 100 ms while waiting, so
 * shutdown is prompt, a departed client does not hold a worker for days,
 * and the pending intent lives as long as the wait, not a slice of it.
 */
#include "serve.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct worker {
    srv_pool *pool;
    fl_store *st;
    pthread_t tid;
    int started;
} worker;

struct srv_pool {
    srv *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job *head, *tail;
    int stop;
    int n;
    worker *w;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define TIMED(j, op, call)                                                 \
    do {                                                                   \
        double t0_ = now_s();                                              \
        (j)->rc = (call);                                                  \
        srv_metrics_observe(&(j)->s->metrics, (op), now_s() - t0_);        \
    } while (0)

static int job_canceled(void *arg)
{
    const srv_job *j = arg;
    return atomic_load(&j->cancel) != SRV_CANCEL_NONE;
}

static void run_acquire(srv_job *j, fl_store *st)
{
    if (!j->long_poll) {
        TIMED(j, SRV_OP_ACQUIRE,
              fl_acquire(st, j->provider, j->holder, j->purpose, j->mode, j->ttl_ms, 0, &j->lease,
                         &j->verdict));
        return;
    }
    fl_acquire_opts o = {.provider = j->provider, .holder = j->holder, .purpose = j->purpose,
                         .mode = j->mode, .ttl_ms = j->ttl_ms, .wait_ms = j->wait_ms,
                         .cancel = job_canceled, .cancel_arg = j};
    memset(&j->verdict, 0, sizeof j->verdict);
    TIMED(j, SRV_OP_ACQUIRE_WAIT, fl_acquire_ex(st, &o, &j->lease, &j->verdict));
    if (j->rc == FL_OK && atomic_load(&j->cancel) == SRV_CANCEL_CLIENT_GONE) {
        /* Nobody will ever learn this token: give the host back now
         * instead of blocking it for a whole ttl. */
        j->abandoned = 1;
        TIMED(j, SRV_OP_RELEASE, j->release_rc = fl_release(st, j->lease.token));
        j->rc = FL_OK;
    }
}

/* The report of the live lease named by the token: the lookup decides
 * 404 (j->rc); whether a gateway reported is j->report_rc. */
static int run_report(srv_job *j, fl_store *st)
{
    int rc = fl_lookup(st, j->token, &j->lease);
    if (rc != FL_OK)
        return rc;
    j->report_rc = fl_report_get(st, j->lease.provider, j->lease.fence, &j->report);
    if (j->report_rc != FL_OK && j->report_rc != FL_ENOTFOUND)
        return j->report_rc;
    return FL_OK;
}

/* /metrics: the reports of the live exclusive leases (at most 64; a
 * failed read just leaves that lease out of this scrape). */
static void read_reports(srv_job *j, fl_store *st)
{
    size_t want = 0;
    for (size_t i = 0; i < j->nleases; i++)
        if (j->leases[i].mode == FL_EXCLUSIVE && j->leases[i].state == FL_LEASE_ACTIVE)
            want++;
    if (want == 0)
        return;
    if (want > 64)
        want = 64;
    j->reports = calloc(want, sizeof *j->reports);
    if (!j->reports)
        return;
    for (size_t i = 0; i < j->nleases && j->nreports < want; i++) {
        const fl_lease *l = &j->leases[i];
        if (l->mode != FL_EXCLUSIVE || l->state != FL_LEASE_ACTIVE)
            continue;
        if (fl_report_get(st, l->provider, l->fence, &j->reports[j->nreports]) == FL_OK)
            j->nreports++;
    }
}

/* Once more when the first call found this handle's connection broken:
 * see run(). */
static int retry_worthwhile(const srv_job *j)
{
    switch (j->op) {
    case SRV_OP_CHECK:
        return j->rc == FL_EUNAVAIL || (j->rc == FL_OK && j->verdict.stale);
    case SRV_OP_HEARTBEAT:
    case SRV_OP_LIST:
    case SRV_OP_HISTORY:
    case SRV_OP_SWEEP:
    case SRV_OP_NOW:
    case SRV_OP_REPORT:
        return j->rc == FL_EUNAVAIL;
    default:
        return 0;
    }
}

static void run_once(srv_job *j, fl_store *st)
{
    const char *prov = j->provider[0] ? j->provider : NULL;
    switch (j->op) {
    case SRV_OP_ACQUIRE:
    case SRV_OP_ACQUIRE_WAIT:
        run_acquire(j, st);
        break;
    case SRV_OP_HEARTBEAT:
        TIMED(j, SRV_OP_HEARTBEAT, fl_heartbeat(st, j->token, &j->lease));
        break;
    case SRV_OP_RELEASE:
        TIMED(j, SRV_OP_RELEASE, fl_release(st, j->token));
        break;
    case SRV_OP_CHECK:
        TIMED(j, SRV_OP_CHECK,
              fl_check(st, j->provider, j->writer[0] ? j->writer : NULL,
                       j->token[0] ? j->token : NULL, &j->verdict));
        break;
    case SRV_OP_LIST:
        TIMED(j, SRV_OP_LIST, fl_list(st, prov, &j->leases, &j->nleases));
        if (j->rc == FL_OK && j->with_reports)
            read_reports(j, st);
        break;
    case SRV_OP_REPORT:
        TIMED(j, SRV_OP_REPORT, run_report(j, st));
        break;
    case SRV_OP_HISTORY:
        TIMED(j, SRV_OP_HISTORY, fl_history(st, prov, j->limit, &j->events, &j->nevents));
        break;
    case SRV_OP_SWEEP:
        TIMED(j, SRV_OP_SWEEP, fl_sweep(st, &j->expired));
        break;
    case SRV_OP_NOW:
        TIMED(j, SRV_OP_NOW, fl_store_now(st, &j->now_ms));
        break;
    default:
        j->rc = FL_EINVAL;
        break;
    }
}

/*
 * A handle notices a lost connection only by failing a call; the next call
 * on it reconnects at once.  With one handle per worker, every worker
 * would answer one request with 503 (or a stale check) after the store
 * came back.  So a call that cannot change anything twice -- reads, the
 * sweep, a renew (which only moves the expiry to now + ttl again) -- is
 * made once more.  Acquire and release are not: the first attempt may
 * have committed before the connection broke.
 */
static void run(srv_job *j, fl_store *st)
{
    run_once(j, st);
    if (retry_worthwhile(j)) {
        memset(&j->verdict, 0, sizeof j->verdict);
        fl_free(j->leases);
        fl_free(j->events);
        free(j->reports);
        j->leases = NULL;
        j->events = NULL;
        j->reports = NULL;
        j->nleases = j->nevents = j->nreports = 0;
        run_once(j, st);
    }
    if (j->rc != FL_OK)
        snprintf(j->err, sizeof j->err, "%s",
                 fl_errmsg(st)[0] ? fl_errmsg(st) : fl_strerror(j->rc));
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    srv_pool *p = w->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        srv_job *j = p->head;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        run(j, w->st);
        event_active(j->done_ev, EV_TIMEOUT, 0); /* last touch of j */
    }
    return NULL;
}

int srv_pool_start(srv *s, int n, srv_pool **out)
{
    *out = NULL;
    srv_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->w = calloc((size_t)n, sizeof *p->w))) {
        free(p);
        return cli_fail(s->ctx, FL_ENOMEM, "out of memory");
    }
    p->s = s;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* Open every handle before any thread starts: a store that cannot be
     * opened stops the daemon at once with the CLI's message and exit
     * code, instead of failing requests later. */
    for (int i = 0; i < n; i++) {
        p->w[i].pool = p;
        int rc = cli_open(s->ctx, &p->w[i].st);
        if (rc != 0) {
            srv_pool_stop(p);
            return rc;
        }
        if (i == 0) {
            snprintf(s->store_kind, sizeof s->store_kind, "%s", fl_store_kind(p->w[0].st));
            snprintf(s->store_display, sizeof s->store_display, "%s",
                     fl_store_display(p->w[0].st));
        }
    }
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i]);
        if (e != 0) {
            srv_pool_stop(p);
            return cli_fail(s->ctx, FL_ESYS, "cannot start worker thread: %s", strerror(e));
        }
        p->w[i].started = 1;
    }
    *out = p;
    return 0;
}

int srv_pool_submit(srv_pool *p, srv_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void srv_pool_stop(srv_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].tid, NULL);
        fl_close(p->w[i].st);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->w);
    free(p);
}

/* ---- jobs (loop thread) ------------------------------------------------ */

static void job_done(evutil_socket_t fd, short what, void *arg)
{
    srv_job *j = arg;
    srv *s = j->s;
    (void)fd;
    (void)what;
    s->inflight--;
    if (j->long_poll)
        s->waiters--;
    if (j->lprev)
        j->lprev->lnext = j->lnext;
    else
        s->jobs = j->lnext;
    if (j->lnext)
        j->lnext->lprev = j->lprev;
    j->done(j);
    srv_job_free(j);
    srv_shutdown_progress(s);
}

srv_job *srv_job_new(srv *s, struct evhttp_request *req, srv_op op, const char *route,
                     srv_done_fn done)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->s = s;
    j->req = req;
    j->op = op;
    j->route = route;
    j->done = done;
    j->mode = FL_EXCLUSIVE;
    j->started_mono_ms = srv_mono_ms();
    atomic_init(&j->cancel, SRV_CANCEL_NONE);
    return j;
}

int srv_job_submit(srv_job *j)
{
    srv *s = j->s;
    j->done_ev = event_new(s->base, -1, 0, job_done, j);
    if (!j->done_ev)
        return -1;
    s->inflight++;
    if (j->long_poll)
        s->waiters++;
    j->lprev = NULL;
    j->lnext = s->jobs;
    if (s->jobs)
        s->jobs->lprev = j;
    s->jobs = j;
    return srv_pool_submit(s->pool, j);
}

void srv_job_free(srv_job *j)
{
    if (!j)
        return;
    if (j->done_ev)
        event_free(j->done_ev);
    fl_free(j->leases);
    fl_free(j->events);
    free(j->reports);
    /* The token is a capability: do not leave it in freed memory. */
    explicit_bzero(j->lease.token, sizeof j->lease.token);
    explicit_bzero(j->token, sizeof j->token);
    free(j);
}

void srv_jobs_cancel_all(srv *s)
{
    for (srv_job *j = s->jobs; j; j = j->lnext)
        if (j->long_poll)
            atomic_store(&j->cancel, SRV_CANCEL_SHUTDOWN);
}

void srv_jobs_check_clients(srv *s)
{
    for (srv_job *j = s->jobs; j; j = j->lnext)
        if (j->long_poll && j->conn && atomic_load(&j->cancel) == SRV_CANCEL_NONE &&
            srv_conn_client_gone(j->conn))
            atomic_store(&j->cancel, SRV_CANCEL_CLIENT_GONE);
}
