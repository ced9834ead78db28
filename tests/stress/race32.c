/*
 * tests/stress/race32.c -- many real processes race for leases on one store
 * ($FL_TEST_DB); then the history table, not the processes' own claims,
 * must show that no exclusive grant ever overlapped another grant.
 *
 *   race32                         32 processes, one provider, exclusive only
 *   race32 --name race64 --procs 64 --providers 2 --shared 70
 *                                  the mixed variant: shared and exclusive
 *
 * Each racer loops for --seconds: acquire with a short wait and ttl 1 s,
 * hold a few ms, release.  The first grant of a few racers (--expirers) is
 * never released, so it lapses on the store's clock and the next grant must
 * wait for its expiry.
 *
 * The checker rebuilds every grant's validity interval from the history,
 * matched by (provider, fence):
 *     [granted.at, end)   end = released.at, else the lapsed expires_at
 *                         (the "expired" event, or the last granted/renewed
 *                         expiry when nothing cleared the row yet)
 * and counts as violations:
 *   - an exclusive interval overlapping any other interval of its provider;
 *   - a fence that does not rise strictly in grant order (or is reused);
 *   - a release or renew recorded after the lease had lapsed;
 *   - an event for a grant that the history never recorded;
 *   - a different number of grants in the history than the racers got.
 * Tokens never appear in history, so stale-token checks live in the
 * conformance suite (C01, C04-C06).
 */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 256
#define MAX_PROVIDERS 8
#define HISTORY_LIMIT 10000
/* A racer's calls are capped so that a provider's history stays below
 * HISTORY_LIMIT (at most ~3 events per call: pending, granted, released). */
#define MAX_CALLS 80

typedef struct opts {
    const char *name;
    int procs;
    int providers;
    int shared_pct;
    int seconds;
    int expirers;
    long min_grants;
} opts;

typedef struct grant {
    int64_t id;     /* history id of the "granted" event: grant order */
    int64_t fence;
    int64_t start;  /* granted.at */
    int64_t exp;    /* latest expiry (granted/renewed) */
    int64_t end;    /* -1 until released/expired */
    fl_mode mode;
    char holder[40];
} grant;

static void usage(void)
{
    fprintf(stderr, "usage: race32 [--name NAME] [--procs N] [--providers K] [--shared PCT]\n"
                    "              [--seconds S] [--expirers N] [--min-grants N]\n");
    exit(2);
}

static long num_arg(int argc, char **argv, int *i, long lo, long hi)
{
    if (*i + 1 >= argc)
        usage();
    char *end;
    errno = 0;
    long v = strtol(argv[++*i], &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "race32: %s: must be an integer %ld..%ld, got \"%s\"\n", argv[*i - 1], lo,
                hi, argv[*i]);
        exit(2);
    }
    return v;
}

/* ---- the racers ------------------------------------------------------ */

static uint32_t next_rand(uint64_t *s)
{
    /* xorshift64*: per-process, seeded from pid and time; quality is not the point */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 2685821657736338717ULL) >> 32);
}

static int racer(int idx, const opts *o, char provs[][FL_PROVIDER_MAX + 1], int start_fd,
                 int out_fd)
{
    fl_store *st = NULL;
    int rc = fl_open(ts_url(), &st);
    if (rc != FL_OK) {
        fprintf(stderr, "racer %d: open: %s: %s\n", idx, fl_strerror(rc),
                st != NULL ? fl_errmsg(st) : "");
        fl_close(st);
        return 3;
    }
    char c;
    while (read(start_fd, &c, 1) < 0 && errno == EINTR) {
    } /* EOF when the parent has started everyone */
    close(start_fd);

    char holder[32];
    snprintf(holder, sizeof holder, "racer-%d", idx);
    uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)ts_mono_ms() ^ 0x9e3779b97f4a7c15ULL;
    int expire_left = idx < o->expirers;
    long grants = 0, conflicts = 0, errors = 0, bad_release = 0;
    int64_t deadline = ts_mono_ms() + (int64_t)o->seconds * 1000;
    for (int call = 0; call < MAX_CALLS && ts_mono_ms() < deadline; call++) {
        const char *p = provs[next_rand(&seed) % (uint32_t)o->providers];
        fl_mode mode = (int)(next_rand(&seed) % 100) < o->shared_pct ? FL_SHARED : FL_EXCLUSIVE;
        int64_t wait = 100 + next_rand(&seed) % 200;
        fl_lease l;
        rc = fl_acquire(st, p, holder, "race", mode, 1000, wait, &l, NULL);
        if (rc == FL_OK) {
            grants++;
            ts_sleep_ms(1 + next_rand(&seed) % 4); /* "dispatching" under the lease */
            if (expire_left) {
                expire_left = 0; /* let this one lapse on the store's clock */
                continue;
            }
            rc = fl_release(st, l.token);
            if (rc != FL_OK) {
                /* Possible only if this process stalled past the TTL; the
                 * history check decides whether anything overlapped. */
                fprintf(stderr, "racer %d: release fence %lld: %s: %s\n", idx,
                        (long long)l.fence, fl_strerror(rc), fl_errmsg(st));
                bad_release++;
            }
        } else if (rc == FL_ECONFLICT) {
            conflicts++;
        } else {
            fprintf(stderr, "racer %d: acquire: %s: %s\n", idx, fl_strerror(rc), fl_errmsg(st));
            errors++;
            ts_sleep_ms(10);
        }
        ts_sleep_ms(next_rand(&seed) % 3);
    }
    fl_close(st);
    char line[128];
    int len = snprintf(line, sizeof line, "%ld %ld %ld %ld\n", grants, conflicts, errors,
                       bad_release);
    /* one write below PIPE_BUF: lines of different racers never interleave */
    return ts_write_all(out_fd, line, (size_t)len) == 0 ? 0 : 4;
}

/* ---- the checker ----------------------------------------------------- */

static int cmp_fence(const void *a, const void *b)
{
    const grant *x = *(const grant *const *)a, *y = *(const grant *const *)b;
    return x->fence < y->fence ? -1 : x->fence > y->fence;
}

static grant *by_fence(grant **index, size_t n, int64_t fence)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (index[mid]->fence < fence)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && index[lo]->fence == fence ? index[lo] : NULL;
}

typedef struct tally {
    long grants, exclusive, overlaps, other;
} tally;

#define VIOLATION(t, kind, ...)                                                              \
    do {                                                                                     \
        if ((t)->overlaps + (t)->other < 20)                                                 \
            fprintf(stderr, "VIOLATION " __VA_ARGS__);                                       \
        (t)->kind++;                                                                         \
    } while (0)

static void check_provider(fl_store *st, const opts *o, const char *p, tally *t)
{
    size_t n = 0;
    fl_event *ev = ts_history(st, p, &n);
    if (n >= HISTORY_LIMIT) {
        VIOLATION(t, other, "%s: history has %zu events, more than can be checked\n", p, n);
        fl_free(ev);
        return;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        ng += strcmp(ev[i].event, "granted") == 0;
    grant *g = calloc(ng + 1, sizeof *g);
    grant **index = calloc(ng + 1, sizeof *index);
    if (g == NULL || index == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }

    /* Grants in history order (ids rise), fences must rise with them. */
    size_t k = 0;
    int64_t last_fence = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].event, "granted") != 0)
            continue;
        if (ev[i].fence <= last_fence)
            VIOLATION(t, other, "%s: grant #%lld has fence %lld after fence %lld\n", p,
                      (long long)ev[i].id, (long long)ev[i].fence, (long long)last_fence);
        if (ev[i].fence > last_fence)
            last_fence = ev[i].fence;
        g[k] = (grant){.id = ev[i].id, .fence = ev[i].fence, .start = ev[i].at_ms,
                       .exp = ev[i].expires_at_ms, .end = -1, .mode = ev[i].mode};
        snprintf(g[k].holder, sizeof g[k].holder, "%s", ev[i].holder);
        index[k] = &g[k];
        k++;
    }
    qsort(index, ng, sizeof *index, cmp_fence);
    for (size_t i = 1; i < ng; i++)
        if (index[i]->fence == index[i - 1]->fence)
            VIOLATION(t, other, "%s: fence %lld granted twice\n", p, (long long)index[i]->fence);

    /* Walk the other transitions in order, matched by fence. */
    for (size_t i = 0; i < n; i++) {
        const fl_event *e = &ev[i];
        if (strcmp(e->event, "granted") == 0 || strcmp(e->event, "refused") == 0 ||
            strcmp(e->event, "pending") == 0)
            continue;
        grant *x = by_fence(index, ng, e->fence);
        if (x == NULL || e->id < x->id) {
            VIOLATION(t, other, "%s: %s event #%lld for fence %lld that was never granted\n", p,
                      e->event, (long long)e->id, (long long)e->fence);
            continue;
        }
        if (x->end >= 0) {
            VIOLATION(t, other, "%s: %s event for fence %lld after it had ended\n", p, e->event,
                      (long long)e->fence);
            continue;
        }
        if (strcmp(e->event, "renewed") == 0) {
            if (e->at_ms >= x->exp)
                VIOLATION(t, other, "%s: fence %lld renewed at %lld, lapsed at %lld\n", p,
                          (long long)x->fence, (long long)e->at_ms, (long long)x->exp);
            x->exp = e->expires_at_ms;
        } else if (strcmp(e->event, "released") == 0) {
            if (e->at_ms >= x->exp)
                VIOLATION(t, other, "%s: fence %lld released at %lld, lapsed at %lld\n", p,
                          (long long)x->fence, (long long)e->at_ms, (long long)x->exp);
            x->end = e->at_ms < x->exp ? e->at_ms : x->exp;
        } else if (strcmp(e->event, "expired") == 0) {
            if (e->expires_at_ms != x->exp)
                VIOLATION(t, other, "%s: fence %lld expired at %lld, but its expiry was %lld\n",
                          p, (long long)x->fence, (long long)e->expires_at_ms, (long long)x->exp);
            x->end = x->exp;
        } else {
            VIOLATION(t, other, "%s: unknown event \"%s\"\n", p, e->event);
        }
    }
    for (size_t i = 0; i < ng; i++)
        if (g[i].end < 0)
            g[i].end = g[i].exp; /* lapsed (or still live) and not yet cleared */

    /* No exclusive interval meets any other: [s1,e1) and [s2,e2) overlap iff
     * s1 < e2 && s2 < e1.  Sorted by start, an interval can only meet later
     * ones that start before it ends. */
    grant **by_start = calloc(ng + 1, sizeof *by_start);
    if (by_start == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < ng; i++)
        by_start[i] = &g[i];
    for (size_t i = 1; i < ng; i++) { /* insertion sort: nearly sorted already */
        grant *x = by_start[i];
        size_t j = i;
        while (j > 0 && by_start[j - 1]->start > x->start) {
            by_start[j] = by_start[j - 1];
            j--;
        }
        by_start[j] = x;
    }
    long excl = 0;
    for (size_t i = 0; i < ng; i++) {
        const grant *a = by_start[i];
        excl += a->mode == FL_EXCLUSIVE;
        for (size_t j = i + 1; j < ng && by_start[j]->start < a->end; j++) {
            const grant *b = by_start[j];
            if (a->mode != FL_EXCLUSIVE && b->mode != FL_EXCLUSIVE)
                continue;
            if (b->start < a->end && a->start < b->end)
                VIOLATION(t, overlaps,
                          "%s: %s fence %lld by %s [%lld,%lld) overlaps %s fence %lld by %s "
                          "[%lld,%lld)\n",
                          p, fl_mode_name(a->mode), (long long)a->fence, a->holder,
                          (long long)a->start, (long long)a->end, fl_mode_name(b->mode),
                          (long long)b->fence, b->holder, (long long)b->start,
                          (long long)b->end);
        }
    }
    if (o->providers > 1)
        printf("%s: %s: %zu grants (%ld exclusive), %zu events\n", o->name, p, ng, excl, n);
    t->grants += (long)ng;
    t->exclusive += excl;
    free(by_start);
    free(index);
    free(g);
    fl_free(ev);
}

int main(int argc, char **argv)
{
    opts o = {.name = "race32", .procs = 32, .providers = 1, .shared_pct = 0, .seconds = 8,
              .expirers = 2, .min_grants = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            o.name = argv[++i];
        else if (strcmp(argv[i], "--procs") == 0)
            o.procs = (int)num_arg(argc, argv, &i, 2, MAX_PROCS);
        else if (strcmp(argv[i], "--providers") == 0)
            o.providers = (int)num_arg(argc, argv, &i, 1, MAX_PROVIDERS);
        else if (strcmp(argv[i], "--shared") == 0)
            o.shared_pct = (int)num_arg(argc, argv, &i, 0, 100);
        else if (strcmp(argv[i], "--seconds") == 0)
            o.seconds = (int)num_arg(argc, argv, &i, 1, 3600);
        else if (strcmp(argv[i], "--expirers") == 0)
            o.expirers = (int)num_arg(argc, argv, &i, 0, MAX_PROCS);
        else if (strcmp(argv[i], "--min-grants") == 0)
            o.min_grants = num_arg(argc, argv, &i, 0, 1000000);
        else
            usage();
    }
    if (o.min_grants < 0)
        o.min_grants = o.procs; /* at least one grant per racer on average */
    (void)ts_url(); /* exits 77 when no store is configured */

    static char provs[MAX_PROVIDERS][FL_PROVIDER_MAX + 1];
    for (int k = 0; k < o.providers; k++)
        ts_provider(provs[k], sizeof provs[k], o.name);

    int start[2], out[2];
    if (pipe(start) != 0 || pipe(out) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pids[MAX_PROCS];
    fflush(NULL);
    for (int i = 0; i < o.procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            for (int j = 0; j < i; j++)
                kill(pids[j], SIGKILL);
            return 1;
        }
        if (pids[i] == 0) {
            close(start[1]);
            close(out[0]);
            int rc = racer(i, &o, provs, start[0], out[1]);
            close(out[1]);
            _exit(rc);
        }
    }
    close(start[0]);
    close(out[1]);
    int64_t t0 = ts_mono_ms();
    close(start[1]); /* every racer has forked: start them together */

    long grants = 0, conflicts = 0, errors = 0, bad_release = 0, failed = 0;
    char text[MAX_PROCS * 128];
    ts_read_text(out[0], text, sizeof text);
    close(out[0]);
    for (int i = 0; i < o.procs; i++) {
        int st = ts_wait(pids[i]);
        if (st != 0) {
            fprintf(stderr, "%s: racer %d exited %d\n", o.name, i, st);
            failed++;
        }
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        long g, c, e, b;
        if (sscanf(line, "%ld %ld %ld %ld", &g, &c, &e, &b) == 4) {
            grants += g;
            conflicts += c;
            errors += e;
            bad_release += b;
        }
    }
    printf("%s: %d processes, %d provider(s), %d%% shared, %lld ms: racers report %ld grants, "
           "%ld conflicts, %ld errors, %ld failed releases\n",
           o.name, o.procs, o.providers, o.shared_pct, (long long)(ts_mono_ms() - t0), grants,
           conflicts, errors, bad_release);

    fl_store *st = ts_open();
    tally t = {0};
    for (int k = 0; k < o.providers; k++)
        check_provider(st, &o, provs[k], &t);
    fl_close(st);
    if (t.grants != grants)
        VIOLATION(&t, other, "history records %ld grants, racers got %ld\n", t.grants, grants);

    printf("%s: %ld grants, %ld overlaps\n", o.name, t.grants, t.overlaps);
    if (t.other > 0)
        printf("%s: %ld other violations\n", o.name, t.other);
    int ok = t.overlaps == 0 && t.other == 0 && failed == 0;
    if (t.grants < o.min_grants) {
        printf("%s: too few grants to prove anything (%ld < %ld)\n", o.name, t.grants,
               o.min_grants);
        ok = 0;
    }
    if (errors > 0) {
        /* not a safety violation, but a store that fails under load is broken */
        printf("%s: %ld acquire errors (see stderr)\n", o.name, errors);
        ok = 0;
    }
    return ok ? 0 : 1;
}
