/*
 * lib/grant.c -- the grant lifecycle: a lease plus the threads that keep
 * it, and the local deadline that says when to stop trusting it.
 *
 * Two threads per grant:
 * - the heartbeat thread renews every ttl/3 on the grant's own store
 *   handle (retrying a transient failure every max(ttl/10, 100ms));
 * - the watchdog sleeps until the local deadline and declares the grant
 *   lost if no renew moved it.  It exists because a renew can block (a
 *   PostgreSQL connection stuck in the kernel, SQLite busy): the deadline
 *   must fire on time whatever the heartbeat thread is doing.
 * The deadline only moves forward when a renew *succeeded*, and it is
 * counted from when that renew was *sent*: the store's new expiry is at
 * least ttl after that instant, so the local deadline is always early.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fl_grant {
    fl_store *st;            /* used by the heartbeat thread, then by release */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* CLOCK_MONOTONIC */
    pthread_t hb, wd;
    int threads;             /* 2 once both started */
    int stop;
    int lost;                /* fl_code that lost it, 0 while held */
    int notified;            /* on_lost already called */
    int64_t deadline_mono;
    fl_lease lease;
    fl_lost_fn on_lost;
    void *arg;
    char why[FL_MESSAGE_MAX];
};

static void abs_mono(int64_t mono_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* Called with g->mu held; returns whether the caller must notify. */
static int mark_lost(fl_grant *g, int code, const char *why)
{
    if (g->lost)
        return 0;
    g->lost = code;
    fl__copy(g->why, sizeof g->why, why);
    pthread_cond_broadcast(&g->cv);
    if (g->notified)
        return 0;
    g->notified = 1;
    return g->on_lost != NULL;
}

static void notify(fl_grant *g)
{
    /* Outside the lock: the callback may call fl_grant_lost(). */
    g->on_lost(g, g->lost, g->why, g->arg);
}

static void *heartbeat_main(void *p)
{
    fl_grant *g = p;
    const int64_t ttl = g->lease.ttl_ms;
    int64_t next = fl__mono_ms() + fl__hb_interval(ttl);
    char token[FL_TOKEN_LEN + 1];
    fl__copy(token, sizeof token, g->lease.token);

    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->stop && !g->lost && fl__mono_ms() < next) {
            struct timespec ts;
            abs_mono(next, &ts);
            pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        }
        if (g->stop || g->lost)
            break;
        pthread_mutex_unlock(&g->mu);

        fl_lease l;
        int64_t sent = fl__mono_ms();
        int rc = fl_heartbeat(g->st, token, &l);
        char msg[FL_MESSAGE_MAX];
        fl__copy(msg, sizeof msg, fl_errmsg(g->st));

        pthread_mutex_lock(&g->mu);
        int call = 0;
        if (g->stop) {
            /* Renewed or not, release follows; nothing more to do. */
        } else if (rc == FL_OK) {
            if (!g->lost) {
                g->lease = l;
                g->deadline_mono = sent + ttl - fl__margin(ttl);
                pthread_cond_broadcast(&g->cv);
            }
            next = sent + fl__hb_interval(ttl);
        } else if (rc == FL_EEXPIRED || rc == FL_ENOTFOUND) {
            call = mark_lost(g, rc, msg);
        } else {
            /* Transient (store unreachable, busy, an error it answered
             * with): retry until the watchdog's deadline says otherwise. */
            next = fl__mono_ms() + fl__hb_retry(ttl);
        }
        if (call) {
            pthread_mutex_unlock(&g->mu);
            notify(g);
            pthread_mutex_lock(&g->mu);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void *watchdog_main(void *p)
{
    fl_grant *g = p;
    pthread_mutex_lock(&g->mu);
    while (!g->stop && !g->lost) {
        if (fl__mono_ms() >= g->deadline_mono) {
            if (mark_lost(g, FL_ELOST,
                          "no successful renew before the local deadline "
                          "(the store may be unreachable)")) {
                pthread_mutex_unlock(&g->mu);
                notify(g);
                pthread_mutex_lock(&g->mu);
            }
            break;
        }
        struct timespec ts;
        abs_mono(g->deadline_mono, &ts);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void grant_free(fl_grant *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    fl_close(g->st);
    free(g);
}

int fl_grant_acquire(const fl_grant_opts *o, fl_grant **out, fl_verdict *conflict,
                     char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || !o) {
        fl__fmt(err, errlen, "fl_grant_acquire: opts and out must not be NULL");
        return FL_EINVAL;
    }
    char url[FL_URL_MAX];
    if (fl_resolve_url(o->url, url, sizeof url) != FL_OK) {
        fl__fmt(err, errlen, "store URL: cannot resolve (set --db, FLEETLEASE_DB or HOME)");
        return FL_EINVAL;
    }
    fl_grant *g = calloc(1, sizeof *g);
    if (!g) {
        fl__fmt(err, errlen, "out of memory");
        return FL_ENOMEM;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->on_lost = o->on_lost;
    g->arg = o->arg;

    fl_acquire_opts ao = {.provider = o->provider, .holder = o->holder,
                          .purpose = o->purpose, .mode = o->mode, .ttl_ms = o->ttl_ms,
                          .wait_ms = o->wait_ms};
    int64_t sent = 0;
    int rc = fl_open(url, &g->st);
    if (rc == FL_OK)
        rc = fl__acquire(g->st, &ao, &g->lease, conflict, &sent);
    if (rc != FL_OK) {
        fl__fmt(err, errlen, "%s", g->st ? fl_errmsg(g->st) : fl_strerror(rc));
        grant_free(g);
        return rc;
    }
    g->deadline_mono = sent + g->lease.ttl_ms - fl__margin(g->lease.ttl_ms);
    if (pthread_create(&g->hb, NULL, heartbeat_main, g) != 0) {
        fl_release(g->st, g->lease.token);
        fl__fmt(err, errlen, "cannot start the heartbeat thread");
        grant_free(g);
        return FL_ESYS;
    }
    if (pthread_create(&g->wd, NULL, watchdog_main, g) != 0) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->hb, NULL);
        fl_release(g->st, g->lease.token);
        fl__fmt(err, errlen, "cannot start the watchdog thread");
        grant_free(g);
        return FL_ESYS;
    }
    g->threads = 2;
    *out = g;
    return FL_OK;
}

int fl_grant_lease(const fl_grant *g, fl_lease *out)
{
    if (!g || !out)
        return FL_EINVAL;
    fl_grant *m = (fl_grant *)g;
    pthread_mutex_lock(&m->mu);
    *out = m->lease;
    pthread_mutex_unlock(&m->mu);
    return FL_OK;
}

int fl_grant_lost(const fl_grant *g)
{
    if (!g)
        return FL_EINVAL;
    fl_grant *m = (fl_grant *)g;
    pthread_mutex_lock(&m->mu);
    int lost = m->lost;
    if (!lost && fl__mono_ms() >= m->deadline_mono)
        lost = FL_ELOST;  /* the watchdog may not have woken yet */
    pthread_mutex_unlock(&m->mu);
    return lost;
}

int64_t fl_grant_time_left(const fl_grant *g)
{
    if (!g)
        return 0;
    fl_grant *m = (fl_grant *)g;
    pthread_mutex_lock(&m->mu);
    int64_t left = m->lost ? 0 : m->deadline_mono - fl__mono_ms();
    pthread_mutex_unlock(&m->mu);
    return left;
}

int64_t fl_grant_kill_grace(const fl_grant *g)
{
    return g ? fl__kill_grace(g->lease.ttl_ms) : 0;
}

int fl_grant_release(fl_grant *g)
{
    if (!g)
        return FL_OK;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->threads == 2) {
        pthread_join(g->hb, NULL);
        pthread_join(g->wd, NULL);
    }
    /* Both threads are gone: no renew can follow the release (case C05). */
    int rc = g->lost;
    if (!rc && fl__mono_ms() >= g->deadline_mono)
        rc = FL_ELOST;
    /* Past the local deadline the lease may still be live in the store
     * (it was the store we could not reach): release it anyway so the host
     * frees before its expiry, but report the loss. */
    if (!rc || rc == FL_ELOST) {
        int rr = fl_release(g->st, g->lease.token);
        if (!rc)
            rc = rr;
    }
    grant_free(g);
    return rc;
}
