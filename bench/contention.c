/*
 * bench/contention.c -- racers on one provider, the wake-up of a waiter,
 * and the counters of store calls behind both.
 *
 * The library does not expose how many store attempts an fl_acquire made
 * (its retry loop is internal).  flbench counts them from outside, by
 * defining the two store entry points the library calls and forwarding to
 * the real ones (dlsym RTLD_NEXT).  flbench links the static library, so
 * its calls bind to these definitions at link time:
 *   PostgreSQL: PQsendQueryPrepared, by statement name (one call is one
 *               round trip: "fl_acquire" is one acquire attempt), and
 *               PQsendQuery (LISTEN, the schema check);
 *   SQLite:     sqlite3_step, counted once per execution (the first step
 *               after a reset) and sorted by statement: an attempt is the
 *               autocommit read of a provider's rows (acquire's phase 1),
 *               a write is BEGIN IMMEDIATE, a poll is PRAGMA data_version.
 * Counting costs an increment and, for SQLite, a few string compares;
 * the rows of the other cells do not depend on it.
 */
#include "bench.h"

#include "fleetlease.h"

#include <dlfcn.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* ---- store call counters (process state: one set per process) --------- */

static bn_calls counted;

void bn_calls_get(bn_calls *out)
{
    *out = counted;
}

/* The next definition of a symbol after ours (libpq's, SQLite's).
 * Going through memcpy keeps ISO C's object/function pointer rule. */
static void next_symbol(const char *name, void *fnptr, size_t size)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "flbench: dlsym(%s): %s\n", name, dlerror());
        abort();
    }
    memcpy(fnptr, &p, size);
}

typedef int (*send_prepared_fn)(PGconn *, const char *, int, const char *const *, const int *,
                                const int *, int);
typedef int (*send_query_fn)(PGconn *, const char *);
typedef int (*step_fn)(sqlite3_stmt *);

int PQsendQueryPrepared(PGconn *conn, const char *stmtName, int nParams,
                        const char *const *paramValues, const int *paramLengths,
                        const int *paramFormats, int resultFormat)
{
    static send_prepared_fn real;
    if (!real)
        next_symbol("PQsendQueryPrepared", &real, sizeof real);
    if (!stmtName)
        counted.pg_other++;
    else if (strcmp(stmtName, "fl_acquire") == 0)
        counted.pg_acquire++;
    else if (strcmp(stmtName, "fl_give_up") == 0)
        counted.pg_give_up++;
    else if (strcmp(stmtName, "fl_release") == 0)
        counted.pg_release++;
    else
        counted.pg_other++;
    return real(conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat);
}

int PQsendQuery(PGconn *conn, const char *query)
{
    static send_query_fn real;
    if (!real)
        next_symbol("PQsendQuery", &real, sizeof real);
    counted.pg_simple++;
    return real(conn, query);
}

int sqlite3_step(sqlite3_stmt *s)
{
    static step_fn real;
    if (!real)
        next_symbol("sqlite3_step", &real, sizeof real);
    if (s && !sqlite3_stmt_busy(s)) {
        const char *sql = sqlite3_sql(s);
        if (!sql)
            counted.sq_other++;
        else if (strncmp(sql, "BEGIN IMMEDIATE", 15) == 0)
            counted.sq_writes++;
        else if (strncmp(sql, "PRAGMA data_version", 19) == 0)
            counted.sq_polls++;
        else if (strncmp(sql, "SELECT token, provider_id", 25) == 0 &&
                 strstr(sql, "WHERE provider_id = ?1 AND expires_at > ?2") &&
                 sqlite3_get_autocommit(sqlite3_db_handle(s)))
            counted.sq_attempts++;
        else
            counted.sq_reads++;
    }
    return real(s);
}

static long pg_total(const bn_calls *c)
{
    return c->pg_acquire + c->pg_give_up + c->pg_release + c->pg_other + c->pg_simple;
}

static long sq_total(const bn_calls *c)
{
    return c->sq_attempts + c->sq_reads + c->sq_writes + c->sq_polls + c->sq_other;
}

static void calls_sub(bn_calls *a, const bn_calls *b)
{
    a->pg_acquire -= b->pg_acquire;
    a->pg_give_up -= b->pg_give_up;
    a->pg_release -= b->pg_release;
    a->pg_other -= b->pg_other;
    a->pg_simple -= b->pg_simple;
    a->sq_reads -= b->sq_reads;
    a->sq_attempts -= b->sq_attempts;
    a->sq_writes -= b->sq_writes;
    a->sq_polls -= b->sq_polls;
    a->sq_other -= b->sq_other;
}

/* ---- contention ------------------------------------------------------- */

#define RACE_TTL_MS 10000
#define RACE_HOLD_MS 2

typedef struct race {
    long grants;      /* all racers; atomic */
    long timeouts;    /* acquire calls that gave up at the time bound */
    bn_calls calls[BN_MAX_CLIENTS];
} race;

static int race_body(bn_client *c, void *arg)
{
    race *r = arg;
    const bn_opts *o = bn_opts_of(c);
    fl_store *st = NULL;
    char holder[64], p[FL_PROVIDER_MAX + 1], mine[FL_PROVIDER_MAX + 1];
    snprintf(holder, sizeof holder, "racer-%d", bn_id(c));
    snprintf(p, sizeof p, "race-%s-%s-%s", o->run_id, o->key, o->tag);
    snprintf(mine, sizeof mine, "race-w-%s-%s-%s-c%d", o->run_id, o->key, o->tag, bn_id(c));
    int rc = fl_open(o->url, &st);
    fl_lease l;
    int bad = 0;
    if (rc != FL_OK)
        bad = bn_fail(c, "fl_open: %s", st ? fl_errmsg(st) : fl_strerror(rc));
    /* Warm-up on a provider of its own: prepares the statements. */
    if (!bad && (fl_acquire(st, mine, holder, "warm-up", FL_EXCLUSIVE, RACE_TTL_MS, 0, &l,
                            NULL) != FL_OK ||
                 fl_release(st, l.token) != FL_OK))
        bad = bn_fail(c, "warm-up: %s", fl_errmsg(st));
    bn_calls before, after;
    bn_calls_get(&before);
    bn_phase_begin(c, 0, 0, 1);
    int64_t end = bn_now_ns() + (int64_t)(o->secs * 1e9);
    while (!bad && bn_more(c) && __atomic_load_n(&r->grants, __ATOMIC_SEQ_CST) < o->max_ops) {
        int64_t wait = (end - bn_now_ns()) / 1000000;
        if (wait < 100)
            wait = 100;
        int64_t t0 = bn_now_ns();
        rc = fl_acquire(st, p, holder, "race", FL_EXCLUSIVE, RACE_TTL_MS, wait, &l, NULL);
        int64_t t1 = bn_now_ns();
        if (rc == FL_ECONFLICT) {
            __atomic_add_fetch(&r->timeouts, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (rc != FL_OK) {
            bad = bn_fail(c, "acquire %s: %s", p, fl_errmsg(st));
            break;
        }
        bn_record(c, t1 - t0);
        bn_sleep_ms(RACE_HOLD_MS);
        __atomic_add_fetch(&r->grants, 1, __ATOMIC_SEQ_CST);
        if (fl_release(st, l.token) != FL_OK) {
            bad = bn_fail(c, "release %s: %s", p, fl_errmsg(st));
            break;
        }
    }
    bn_phase_end(c);
    bn_calls_get(&after);
    calls_sub(&after, &before);
    r->calls[bn_id(c)] = after;
    fl_close(st);
    return bad;
}

int bn_cell_contention(const bn_opts *o)
{
    race *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        bn_failed(o->key, "mmap failed");
        return 1;
    }
    memset(r, 0, sizeof *r);
    static const char *const phases[] = {"grant"};
    int rc = bn_run(o, phases, 1, race_body, r);
    if (rc == 0) {
        bn_calls t = {0};
        for (int i = 0; i < o->clients; i++) {
            const bn_calls *x = &r->calls[i];
            t.pg_acquire += x->pg_acquire;
            t.pg_give_up += x->pg_give_up;
            t.pg_release += x->pg_release;
            t.pg_other += x->pg_other;
            t.pg_simple += x->pg_simple;
            t.sq_attempts += x->sq_attempts;
            t.sq_reads += x->sq_reads;
            t.sq_writes += x->sq_writes;
            t.sq_polls += x->sq_polls;
            t.sq_other += x->sq_other;
        }
        double g = r->grants > 0 ? (double)r->grants : 1;
        char k[160];
        int pg = pg_total(&t) > 0;
#define SC(name, fmt, val)                                                 \
    do {                                                                   \
        snprintf(k, sizeof k, "%s.%s.%s", o->key, o->tag, name);           \
        bn_scalar(k, fmt, val);                                            \
    } while (0)
        SC("grants", "%ld", r->grants);
        SC("timeouts", "%ld", r->timeouts);
        if (pg) {
            SC("attempts_per_grant", "%.2f", (double)t.pg_acquire / g);
            SC("calls_per_grant", "%.2f", (double)pg_total(&t) / g);
            SC("give_ups", "%ld", t.pg_give_up);
        } else {
            SC("attempts_per_grant", "%.2f", (double)t.sq_attempts / g);
            SC("calls_per_grant", "%.2f", (double)sq_total(&t) / g);
            SC("writes_per_grant", "%.2f", (double)t.sq_writes / g);
            SC("polls_per_grant", "%.2f", (double)t.sq_polls / g);
        }
#undef SC
    }
    munmap(r, sizeof *r);
    return rc;
}

/* ---- wake-up ------------------------------------------------------------ */

typedef struct wake {
    long held;            /* iteration the holder holds the lease for; -1 stop */
    long done;            /* iteration the waiter finished */
    int64_t rel_ns;       /* the holder called fl_release */
    int64_t rel_ret_ns;   /* ... and it returned */
    int64_t grant_ns;     /* the waiter's fl_acquire returned granted */
    char why[256];        /* the waiter's failure */
} wake;

static long load(const long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/* Poll a flag written by the other process; the 200 µs naps are outside
 * every measured interval. */
static int wait_for(const long *p, long want, const long *stop_flag, int64_t limit_ns)
{
    while (load(p) != want) {
        if (stop_flag && load(stop_flag) == -1)
            return -1;
        if (bn_now_ns() > limit_ns)
            return -1;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int wake_body(bn_client *c, void *arg)
{
    wake *w = arg;
    const bn_opts *o = bn_opts_of(c);
    fl_store *st = NULL;
    char p[FL_PROVIDER_MAX + 1];
    snprintf(p, sizeof p, "wake-%s-%s", o->run_id, o->key);
    int rc = fl_open(o->url, &st);
    int bad = 0;
    if (rc != FL_OK)
        bad = bn_fail(c, "fl_open: %s", st ? fl_errmsg(st) : fl_strerror(rc));
    fl_lease l;
    unsigned seed = 12345;
    bn_phase_begin(c, 0, o->max_ops, 1);
    int64_t limit = bn_now_ns() + (int64_t)(o->secs * 1e9) + 30000000000LL;
    if (bn_id(c) == 0) {
        /* The holder: hold, let the waiter block, release, measure. */
        for (long i = 0; !bad && bn_more(c); i++) {
            if (fl_acquire(st, p, "holder", "wake", FL_EXCLUSIVE, 30000, 2000, &l, NULL) !=
                FL_OK) {
                bad = bn_fail(c, "holder acquire: %s", fl_errmsg(st));
                break;
            }
            store(&w->held, i);
            seed = seed * 1103515245u + 12345u;
            bn_sleep_ms(30 + (seed >> 16) % 40);
            w->rel_ns = bn_now_ns();
            rc = fl_release(st, l.token);
            w->rel_ret_ns = bn_now_ns();
            if (rc != FL_OK) {
                bad = bn_fail(c, "holder release: %s", fl_errmsg(st));
                break;
            }
            if (wait_for(&w->done, i, NULL, limit)) {
                bad = bn_fail(c, "waiter did not finish iteration %ld: %s", i, w->why);
                break;
            }
            bn_record(c, w->grant_ns - w->rel_ns);
        }
        store(&w->held, -1);
    } else {
        for (long i = 0; !bad; i++) {
            if (wait_for(&w->held, i, &w->held, limit))
                break;
            rc = fl_acquire(st, p, "waiter", "wake", FL_EXCLUSIVE, 30000, 10000, &l, NULL);
            w->grant_ns = bn_now_ns();
            if (rc != FL_OK || fl_release(st, l.token) != FL_OK) {
                snprintf(w->why, sizeof w->why, "%s", fl_errmsg(st));
                bad = bn_fail(c, "waiter: %s", fl_errmsg(st));
                break;
            }
            store(&w->done, i);
        }
    }
    bn_phase_end(c);
    fl_close(st);
    return bad;
}

int bn_cell_wakeup(const bn_opts *o)
{
    wake *w = mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) {
        bn_failed(o->key, "mmap failed");
        return 1;
    }
    memset(w, 0, sizeof *w);
    w->held = -2;
    w->done = -2;
    bn_opts two = *o;
    two.clients = 2;
    static const char *const phases[] = {"wake"};
    int rc = bn_run(&two, phases, 1, wake_body, w);
    munmap(w, sizeof *w);
    return rc;
}
