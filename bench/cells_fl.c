/*
 * bench/cells_fl.c -- fleetlease through its public API (fl_acquire,
 * fl_heartbeat, fl_release, fl_check), on whichever store the URL names.
 *
 * fl-ops: each client grants itself exclusive leases on providers of its
 * own (so the rows measure the cost of an operation, not contention; the
 * contention cell measures that), then, in separate phases, is refused on
 * them, renews them, checks them (round robin over all of them, then one
 * of them over and over, then with a cache directory set) and releases
 * them.  Every phase is
 * preceded by a warm-up of each operation, so statement preparation and
 * connection set-up are never timed.
 */
#include "bench.h"

#include "fleetlease.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TTL_MS 120000

typedef struct held {
    char provider[FL_PROVIDER_MAX + 1];
    char token[FL_TOKEN_LEN + 1];
} held;

static int open_store(bn_client *c, fl_store **st)
{
    int rc = fl_open(bn_opts_of(c)->url, st);
    if (rc != FL_OK) {
        bn_fail(c, "fl_open: %s", *st ? fl_errmsg(*st) : fl_strerror(rc));
        fl_close(*st);
        *st = NULL;
        return 1;
    }
    return 0;
}

/* One of each operation outside the clock: prepares every statement the
 * phases use and warms the connection. */
static int warm_up(bn_client *c, fl_store *st, const char *holder)
{
    const bn_opts *o = bn_opts_of(c);
    char p[FL_PROVIDER_MAX + 1];
    fl_lease l;
    fl_verdict v;
    snprintf(p, sizeof p, "w-%s-%s-%s-c%d", o->run_id, o->key, o->tag, bn_id(c));
    int rc = fl_acquire(st, p, holder, "warm-up", FL_EXCLUSIVE, TTL_MS, 0, &l, NULL);
    fl_lease scratch;
    if (rc == FL_OK)
        rc = fl_acquire(st, p, holder, "warm-up", FL_EXCLUSIVE, TTL_MS, 0, &scratch, &v) ==
                     FL_ECONFLICT ? FL_OK : FL_ESTORE;
    if (rc == FL_OK)
        rc = fl_heartbeat(st, l.token, &l);
    if (rc == FL_OK)
        rc = fl_check(st, p, NULL, NULL, &v);
    if (rc == FL_OK)
        rc = fl_release(st, l.token);
    if (rc != FL_OK)
        return bn_fail(c, "warm-up on %s: %s", p, fl_errmsg(st));
    return 0;
}

enum { PH_ACQUIRE, PH_REFUSED, PH_HEARTBEAT, PH_CHECK, PH_CHECK_ONE, PH_CHECK_CACHE, PH_RELEASE,
       PH_N };
static const char *const ops_phases[PH_N] = {"acquire", "refused", "heartbeat", "check",
                                             "check_one", "check_cachedir", "release"};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int ops_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    fl_store *st = NULL;
    char holder[64];
    snprintf(holder, sizeof holder, "bench-%d", bn_id(c));
    if (open_store(c, &st))
        return 1;
    held *h = calloc((size_t)o->max_ops, sizeof *h);
    if (!h) {
        fl_close(st);
        return bn_fail(c, "out of memory");
    }
    int bad = warm_up(c, st, holder);
    long n = 0;
    fl_lease l;
    fl_verdict v;

    bn_phase_begin(c, PH_ACQUIRE, o->max_ops, 1);
    while (!bad && bn_more(c)) {
        snprintf(h[n].provider, sizeof h[n].provider, "b-%s-%s-%s-c%d-%ld", o->run_id, o->key,
                 o->tag, bn_id(c), n);
        int64_t t0 = bn_now_ns();
        int rc = fl_acquire(st, h[n].provider, holder, "bench", FL_EXCLUSIVE, TTL_MS, 0, &l, NULL);
        int64_t t1 = bn_now_ns();
        if (rc == FL_EUNAVAIL) {
            bn_error(c);
            continue;
        }
        if (rc != FL_OK) {
            bad = bn_fail(c, "acquire %s: %s", h[n].provider, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
        memcpy(h[n].token, l.token, sizeof h[n].token);
        n++;
    }
    bn_phase_end(c);

    bn_phase_begin(c, PH_REFUSED, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        int64_t t0 = bn_now_ns();
        int rc = fl_acquire(st, h[i].provider, holder, "bench", FL_EXCLUSIVE, TTL_MS, 0, &l, &v);
        int64_t t1 = bn_now_ns();
        if (rc == FL_EUNAVAIL) {
            bn_error(c);
            continue;
        }
        if (rc != FL_ECONFLICT) {
            bad = bn_fail(c, "refused acquire %s: expected a conflict, got %s: %s", h[i].provider,
                          fl_strerror(rc), fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);

    bn_phase_begin(c, PH_HEARTBEAT, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        int64_t t0 = bn_now_ns();
        int rc = fl_heartbeat(st, h[i].token, &l);
        int64_t t1 = bn_now_ns();
        if (rc == FL_EUNAVAIL) {
            bn_error(c);
            continue;
        }
        if (rc != FL_OK) {
            bad = bn_fail(c, "heartbeat %s: %s", h[i].provider, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);

    bn_phase_begin(c, PH_CHECK, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        int64_t t0 = bn_now_ns();
        int rc = fl_check(st, h[i].provider, NULL, NULL, &v);
        int64_t t1 = bn_now_ns();
        if (rc != FL_OK || v.allowed || v.stale) {
            bad = bn_fail(c, "check %s: expected a fresh refusal, got %s allowed=%d stale=%d: %s",
                          h[i].provider, fl_strerror(rc), v.allowed, v.stale, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);

    /* One provider over and over: the check without the cost of the
     * handle's per-provider state growing with the providers it saw. */
    bn_phase_begin(c, PH_CHECK_ONE, 0, 1);
    while (!bad && n > 0 && bn_more(c)) {
        int64_t t0 = bn_now_ns();
        int rc = fl_check(st, h[0].provider, NULL, NULL, &v);
        int64_t t1 = bn_now_ns();
        if (rc != FL_OK || v.allowed || v.stale) {
            bad = bn_fail(c, "check %s: %s", h[0].provider, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);

    /* The same check on a handle with a cache directory, as the CLI and
     * the daemon open theirs (fl_set_cache_dir): each check also writes
     * the provider's state to a file. */
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/flbench-cache.%d.XXXXXX", bn_id(c));
    if (!bad && (!mkdtemp(dir) || fl_set_cache_dir(st, dir) != FL_OK))
        bad = bn_fail(c, "cache dir %s: %s", dir, fl_errmsg(st));
    if (!bad && fl_check(st, h[0].provider, NULL, NULL, &v) != FL_OK)
        bad = bn_fail(c, "check with a cache dir: %s", fl_errmsg(st));
    bn_phase_begin(c, PH_CHECK_CACHE, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        int64_t t0 = bn_now_ns();
        int rc = fl_check(st, h[i].provider, NULL, NULL, &v);
        int64_t t1 = bn_now_ns();
        if (rc != FL_OK || v.allowed || v.stale) {
            bad = bn_fail(c, "check %s (cache dir): %s", h[i].provider, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);
    fl_set_cache_dir(st, NULL);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);

    /* Count-bound: every lease granted above is released. */
    bn_phase_begin(c, PH_RELEASE, n > 0 ? n : 1, 0);
    for (long i = 0; !bad && i < n && bn_more(c); i++) {
        int64_t t0 = bn_now_ns();
        int rc = fl_release(st, h[i].token);
        int64_t t1 = bn_now_ns();
        if (rc == FL_EUNAVAIL) {
            bn_error(c);
            continue;  /* the lease lapses on its own (TTL_MS) */
        }
        if (rc != FL_OK) {
            bad = bn_fail(c, "release %s: %s", h[i].provider, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);
    free(h);
    fl_close(st);
    return bad;
}

int bn_cell_fl(const bn_opts *o)
{
    return bn_run(o, ops_phases, PH_N, ops_body, NULL);
}

/* Durable acquire+release cycles on one provider per client. */
static int pair_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    fl_store *st = NULL;
    char holder[64], p[FL_PROVIDER_MAX + 1];
    snprintf(holder, sizeof holder, "bench-%d", bn_id(c));
    snprintf(p, sizeof p, "pair-%s-%s-%s-c%d", o->run_id, o->key, o->tag, bn_id(c));
    if (open_store(c, &st))
        return 1;
    int bad = warm_up(c, st, holder);
    fl_lease l;
    bn_phase_begin(c, 0, 0, 1);
    while (!bad && bn_more(c)) {
        int64_t t0 = bn_now_ns();
        int rc = fl_acquire(st, p, holder, "bench", FL_EXCLUSIVE, TTL_MS, 0, &l, NULL);
        if (rc == FL_OK)
            rc = fl_release(st, l.token);
        int64_t t1 = bn_now_ns();
        if (rc == FL_EUNAVAIL) {
            /* Busy past the store's timeout.  A lease whose release was
             * the busy part would block the next cycles: change provider. */
            bn_error(c);
            snprintf(p, sizeof p, "pair-%s-%s-%s-c%d-%ld", o->run_id, o->key, o->tag, bn_id(c),
                     bn_done(c) + 1000000);
            continue;
        }
        if (rc != FL_OK) {
            bad = bn_fail(c, "acquire+release %s: %s", p, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
    }
    bn_phase_end(c);
    fl_close(st);
    return bad;
}

int bn_cell_fl_pair(const bn_opts *o)
{
    static const char *const phases[] = {"pair"};
    return bn_run(o, phases, 1, pair_body, NULL);
}

/*
 * A fixed number of cycles in this process, no fork, no clock: what
 * `valgrind --tool=callgrind flbench profile` looks at.  Each cycle is a
 * granted acquire, a refused one, a heartbeat, a check and a release.
 */
int bn_cell_profile(const bn_opts *o)
{
    fl_store *st = NULL;
    int rc = fl_open(o->url, &st);
    if (rc != FL_OK) {
        bn_failed("profile", "fl_open: %s", st ? fl_errmsg(st) : fl_strerror(rc));
        fl_close(st);
        return 1;
    }
    fl_lease l, scratch;
    fl_verdict v;
    for (long i = 0; i < o->max_ops; i++) {
        char p[FL_PROVIDER_MAX + 1];
        snprintf(p, sizeof p, "prof-%s-%s-%ld", o->run_id, o->key, i % 16);
        rc = fl_acquire(st, p, "prof", "profile", FL_EXCLUSIVE, TTL_MS, 0, &l, NULL);
        if (rc == FL_OK &&
            fl_acquire(st, p, "prof", "profile", FL_EXCLUSIVE, TTL_MS, 0, &scratch, &v) !=
                FL_ECONFLICT)
            rc = FL_ESTORE;
        if (rc == FL_OK)
            rc = fl_heartbeat(st, l.token, &l);
        if (rc == FL_OK)
            rc = fl_check(st, p, NULL, NULL, &v);
        if (rc == FL_OK)
            rc = fl_release(st, l.token);
        if (rc != FL_OK) {
            bn_failed("profile", "cycle %ld on %s: %s", i, p, fl_errmsg(st));
            fl_close(st);
            return 1;
        }
    }
    fl_close(st);
    bn_scalar("profile.cycles", "%ld", o->max_ops);
    return 0;
}
