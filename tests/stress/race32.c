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
 * The checker (history.c, shared with flstress) rebuilds every grant's
 * validity interval from the history, matched by (provider, fence), and
 * counts as violations:
 *   - an exclusive interval overlapping any other interval of its provider;
 *   - a fence that does not rise strictly in grant order (or is reused);
 *   - a release or renew recorded after the lease had lapsed;
 *   - an event for a grant that the history never recorded;
 *   - a different number of grants in the history than the racers got.
 * Tokens never appear in history, so stale-token checks live in the
 * conformance suite (C01, C04-C06) and in flstress, whose workers log them.
 */
#include "history.h"
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

typedef struct tally {
    long grants, exclusive;
    hs_tally v; /* overlaps and every other violation, from history.c */
} tally;

static void check_provider(fl_store *st, const opts *o, const char *p, tally *t)
{
    size_t n = 0;
    fl_event *ev = ts_history(st, p, &n);
    if (n >= HISTORY_LIMIT) {
        hs_violation(&t->v, HS_HISTORY, "%s: history has %zu events, more than can be checked", p,
                     n);
        fl_free(ev);
        return;
    }
    hs_set s;
    hs_build(ev, n, p, &t->v, &s);
    long excl = hs_overlaps(&s, p, &t->v);
    if (o->providers > 1)
        printf("%s: %s: %zu grants (%ld exclusive), %zu events\n", o->name, p, s.n, excl, n);
    t->grants += (long)s.n;
    t->exclusive += excl;
    hs_set_free(&s);
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
        hs_violation(&t.v, HS_UNKNOWN, "history records %ld grants, racers got %ld", t.grants,
                     grants);

    long overlaps = t.v.count[HS_OVERLAP], other = hs_total(&t.v) - overlaps;
    printf("%s: %ld grants, %ld overlaps\n", o.name, t.grants, overlaps);
    if (other > 0)
        printf("%s: %ld other violations\n", o.name, other);
    int ok = overlaps == 0 && other == 0 && failed == 0;
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
