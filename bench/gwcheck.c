/*
 * bench/gwcheck.c -- the gateway's per-request check, timed.
 *
 * `fleetlease gateway` admits every request with fl_check_cached() on a
 * handle whose cache a background loop keeps fresh (src/http/gw_lease.c:
 * max_age so large that the request path never reads the store).  That
 * call is the whole per-request cost of enforcement, so this cell times
 * exactly it, through the public API, in one process:
 *
 *   holder:   the lease holder's request (token given): admitted;
 *   foreign:  a request without the token: refused, the message formatted;
 *   holder_4k: the holder's request on a handle caching 4096 providers
 *             (a daemon's handle, not a gateway's): the lookup must not
 *             grow with them.
 *
 * A single call is ~100 ns, the size of two clock reads, so calls are
 * timed in batches of BATCH and each sample is a batch's mean.  Rows:
 * R gwcheck.<phase>.1p <calls/s> <p50 µs> <p99 µs> <batches>, and the
 * same percentiles in ns as M gwcheck.<phase>.1p.p50_ns / .p99_ns.
 */
#include "bench.h"

#include "fleetlease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1000
#define MAX_BATCHES 100000
#define MANY 4096
#define FOREVER_MS (INT64_C(1) << 50)

static int time_phase(const char *key, fl_store *st, const char *provider, const char *token,
                      int want_allowed, double secs)
{
    int64_t *v = malloc(MAX_BATCHES * sizeof *v);
    if (!v) {
        bn_failed(key, "out of memory");
        return 1;
    }
    fl_verdict verdict;
    size_t n = 0;
    int64_t start = bn_now_ns(), busy = 0;
    while (n < MAX_BATCHES && bn_now_ns() - start < (int64_t)(secs * 1e9)) {
        int64_t t0 = bn_now_ns();
        int bad = 0;
        for (int i = 0; i < BATCH; i++)
            bad |= fl_check_cached(st, provider, NULL, token, FOREVER_MS, &verdict) != FL_OK ||
                   verdict.allowed != want_allowed || verdict.stale;
        int64_t t1 = bn_now_ns();
        if (bad) {
            bn_failed(key, "expected allowed=%d from the cache, got allowed=%d stale=%d: %s",
                      want_allowed, verdict.allowed, verdict.stale, verdict.message);
            free(v);
            return 1;
        }
        v[n++] = (t1 - t0) / BATCH;
        busy += t1 - t0;
    }
    bn_sort(v, n);
    bn_row(key, (double)n * BATCH / ((double)busy / 1e9), bn_pct_us(v, n, 50),
           bn_pct_us(v, n, 99), (long)n);
    /* R lines round to 0.1 µs: the nanoseconds, for the report. */
    char k[160];
    snprintf(k, sizeof k, "%s.p50_ns", key);
    bn_scalar(k, "%.1f", bn_pct_us(v, n, 50) * 1000);
    snprintf(k, sizeof k, "%s.p99_ns", key);
    bn_scalar(k, "%.1f", bn_pct_us(v, n, 99) * 1000);
    free(v);
    return 0;
}

int bn_cell_gwcheck(const bn_opts *o)
{
    const char *key = o->key ? o->key : "gwcheck";
    char k[128], provider[FL_PROVIDER_MAX + 1], other[FL_PROVIDER_MAX + 1];
    fl_store *st = NULL;
    if (fl_open(o->url, &st) != FL_OK) {
        bn_failed(key, "open %s: %s", o->url, fl_errmsg(st));
        fl_close(st);
        return 1;
    }
    snprintf(provider, sizeof provider, "gwc-%s", o->run_id);
    fl_lease l;
    fl_verdict v;
    int rc = 1;
    memset(&l, 0, sizeof l);
    if (fl_acquire(st, provider, "bench", "bench", FL_EXCLUSIVE, 600000, 0, &l, NULL) != FL_OK ||
        fl_check(st, provider, NULL, NULL, &v) != FL_OK) {
        bn_failed(key, "acquire/check %s: %s", provider, fl_errmsg(st));
        goto out;
    }
    snprintf(k, sizeof k, "%s.holder.1p", key);
    if (time_phase(k, st, provider, l.token, 1, o->secs))
        goto out;
    snprintf(k, sizeof k, "%s.foreign.1p", key);
    if (time_phase(k, st, provider, NULL, 0, o->secs))
        goto out;
    for (int i = 0; i < MANY - 1; i++) {
        snprintf(other, sizeof other, "gwc-%s-%d", o->run_id, i);
        if (fl_check(st, other, NULL, NULL, &v) != FL_OK) {
            bn_failed(key, "check %s: %s", other, fl_errmsg(st));
            goto out;
        }
    }
    snprintf(k, sizeof k, "%s.holder_4k.1p", key);
    if (time_phase(k, st, provider, l.token, 1, o->secs))
        goto out;
    rc = 0;
out:
    if (l.token[0])
        fl_release(st, l.token);
    fl_close(st);
    return rc;
}
