/*
 * bench/report.c -- `flbench report RESULTS [FILE...]`: docs/benchmarks.md
 * from the result lines of one run (bench.h), on stdout.  FILEs (markdown
 * written by run.sh: the profile) are appended at the end.
 *
 * Ratios lead: each row is divided by its floor from the same run, since
 * absolute numbers on a shared 2-vCPU machine move with the neighbours.
 * A ratio is op p50 / floor p50 (above 1: slower than the floor); for 8
 * clients the throughput ratio (floor ops/s / op ops/s) is given too.
 */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 4096

typedef struct line {
    char kind;          /* R M F I */
    char key[128];
    double ops, p50, p99;
    long n;
    char text[640];     /* M value, F why, I text */
} line;

static line *lines;
static size_t nlines;

/* A row measured more than once (run.sh repeats the operation rows): the
 * repetition with the lowest p50 stands for it, floors and fleetlease
 * alike, so a neighbour's burst during one of them does not decide a
 * ratio.  Other lines: the last one. */
static const line *find(char kind, const char *key)
{
    const line *best = NULL;
    for (size_t i = nlines; i-- > 0;)
        if (lines[i].kind == kind && strcmp(lines[i].key, key) == 0) {
            if (kind != 'R')
                return &lines[i];
            if (!best || lines[i].p50 < best->p50)
                best = &lines[i];
        }
    return best;
}

static const line *row(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const line *row(const char *fmt, ...)
{
    char key[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    return find('R', key);
}

static double scalar(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static double scalar(const char *fmt, ...)
{
    char key[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    const line *l = find('M', key);
    return l ? strtod(l->text, NULL) : NAN;
}

static const char *info(const char *key)
{
    const line *l = find('I', key);
    return l ? l->text : "?";
}

static int load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    lines = calloc(MAX_LINES, sizeof *lines);
    char buf[1024];
    while (lines && nlines < MAX_LINES && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        char *save = NULL;
        char *kind = strtok_r(buf, "\t", &save), *key = strtok_r(NULL, "\t", &save);
        if (!kind || !key || strlen(kind) != 1 || !strchr("RMFI", kind[0]))
            continue;
        line *l = &lines[nlines];
        l->kind = kind[0];
        snprintf(l->key, sizeof l->key, "%s", key);
        char *rest = strtok_r(NULL, "", &save);
        if (l->kind == 'R') {
            if (!rest || sscanf(rest, "%lf\t%lf\t%lf\t%ld", &l->ops, &l->p50, &l->p99, &l->n) != 4)
                continue;
        } else {
            snprintf(l->text, sizeof l->text, "%s", rest ? rest : "");
        }
        nlines++;
    }
    fclose(f);
    return lines ? 0 : -1;
}

/* ---- formatting --------------------------------------------------------- */

static const char *fnum(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "–");
    else if (v >= 10000)
        snprintf(buf, len, "%.0f", v);
    else if (v >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

static double ratio_p50(const line *op, const line *floor)
{
    return op && floor && floor->p50 > 0 ? op->p50 / floor->p50 : NAN;
}

static double ratio_ops(const line *op, const line *floor)
{
    return op && floor && op->ops > 0 ? floor->ops / op->ops : NAN;
}

static const char *fratio(char *buf, size_t len, double r)
{
    if (isnan(r))
        snprintf(buf, len, "–");
    else
        snprintf(buf, len, "%.2f×", r);
    return buf;
}

static const char *cfg_name(const char *tag)
{
    if (strcmp(tag, "1p") == 0)
        return "1 client, pinned";
    if (strcmp(tag, "1u") == 0)
        return "1 client";
    if (strcmp(tag, "8u") == 0)
        return "8 clients";
    return tag;
}

static const char *const TAGS[] = {"1p", "1u", "8u"};

/* ---- the tables ------------------------------------------------------------ */

typedef struct oprow {
    const char *label;
    const char *key;      /* "<prefix>.<op>" */
    const char *floor;    /* "<prefix>.<op>" of its floor, or NULL */
    const char *durable;  /* what a success costs in durability */
} oprow;

static const oprow OPS[] = {
    {"PostgreSQL floor: SELECT 1", "pgfloor.select1", NULL, "none (read)"},
    {"PostgreSQL floor: single-row upsert commit", "pgfloor.upsert", NULL, "WAL flush"},
    {"PostgreSQL floor: single-row update commit", "pgfloor.update", NULL, "WAL flush"},
    {"PostgreSQL diagnosis: the upsert + pg_notify in one transaction", "pgfloor.upsert_notify", "pgfloor.upsert", "WAL flush"},
    {"PostgreSQL diagnosis: the check's read of one lease row, the clock passed in", "pgfloor.read_row", "pgfloor.select1", "none (read)"},
    {"fleetlease PG: acquire (granted)", "pg.acquire", "pgfloor.upsert", "WAL flush"},
    {"fleetlease PG: acquire (refused)", "pg.refused", "pgfloor.select1", "async commit of the 'refused' history row"},
    {"fleetlease PG: heartbeat", "pg.heartbeat", "pgfloor.update", "WAL flush"},
    {"fleetlease PG: check (round robin over the client's providers)", "pg.check", "pgfloor.select1", "none (read)"},
    {"fleetlease PG: check (one provider, repeated)", "pg.check_one", "pgfloor.select1", "none (read)"},
    {"fleetlease PG: check, handle with a cache dir (as CLI and daemon)", "pg.check_cachedir", "pgfloor.select1", "none (read); a cache file rewritten"},
    {"fleetlease PG: release", "pg.release", "pgfloor.update", "WAL flush"},
    {"SQLite floor: point SELECT", "sqfloor.select", NULL, "none (read)"},
    {"SQLite floor: conditional upsert commit", "sqfloor.upsert", NULL, "WAL fsync"},
    {"SQLite floor: single-row update commit", "sqfloor.update", NULL, "WAL fsync"},
    {"fleetlease SQLite: acquire (granted)", "sq.acquire", "sqfloor.upsert", "WAL fsync"},
    {"fleetlease SQLite: acquire (refused)", "sq.refused", "sqfloor.select", "WAL fsync of the 'refused' history row"},
    {"fleetlease SQLite: heartbeat", "sq.heartbeat", "sqfloor.update", "WAL fsync"},
    {"fleetlease SQLite: check (round robin over the client's providers)", "sq.check", "sqfloor.select", "none (read)"},
    {"fleetlease SQLite: check (one provider, repeated)", "sq.check_one", "sqfloor.select", "none (read)"},
    {"fleetlease SQLite: check, handle with a cache dir (as CLI and daemon)", "sq.check_cachedir", "sqfloor.select", "none (read); a cache file rewritten"},
    {"fleetlease SQLite: release", "sq.release", "sqfloor.update", "WAL fsync"},
    {"fleetlease HTTP (PG): acquire (granted)", "http.acquire", "pgfloor.upsert", "WAL flush"},
    {"fleetlease HTTP (PG): acquire (refused)", "http.refused", "pgfloor.select1", "async commit"},
    {"fleetlease HTTP (PG): heartbeat", "http.heartbeat", "pgfloor.update", "WAL flush"},
    {"fleetlease HTTP (PG): check", "http.check", "pgfloor.select1", "none (read)"},
    {"fleetlease HTTP (PG): release", "http.release", "pgfloor.update", "WAL flush"},
    {"peer: pg_try_advisory_lock", "adv.acquire", "pgfloor.select1", "none (session memory)"},
    {"peer: pg_advisory_unlock", "adv.release", "pgfloor.select1", "none (session memory)"},
    {"peer: Redis SET NX PX (no persistence)", "redis.acquire", "pgfloor.select1", "none"},
    {"peer: Redis Lua compare-and-delete (no persistence)", "redis.release", "pgfloor.select1", "none"},
    {"peer: Redis SET NX PX (appendfsync always)", "redisaof.acquire", "pgfloor.upsert", "AOF fsync"},
    {"peer: Redis compare-and-delete (appendfsync always)", "redisaof.release", "pgfloor.update", "AOF fsync"},
    {"peer: etcd lease grant + put-if-absent txn", "etcd.acquire", "pgfloor.upsert", "2 raft commits (fsync)"},
    {"peer: etcd lease revoke", "etcd.release", "pgfloor.update", "raft commit (fsync)"},
};

static void ops_table(void)
{
    char a[32], b[32], c[32], d[32], e[32];
    printf("| operation | clients | ops/s | p50 µs | p99 µs | vs floor (p50) | vs floor (ops/s) | durability |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
        for (size_t t = 0; t < 3; t++) {
            const line *l = row("%s.%s", OPS[i].key, TAGS[t]);
            if (!l) {
                char k[128];
                snprintf(k, sizeof k, "%s.%s", OPS[i].key, TAGS[t]);
                const line *f = find('F', k);
                if (f)
                    printf("| %s | %s | failed: %s | | | | | |\n", OPS[i].label,
                           cfg_name(TAGS[t]), f->text);
                continue;
            }
            const line *fl = OPS[i].floor ? row("%s.%s", OPS[i].floor, TAGS[t]) : NULL;
            double errs = scalar("%s.%s.errors", OPS[i].key, TAGS[t]);
            char dur[160];
            if (isnan(errs))
                snprintf(dur, sizeof dur, "%s", OPS[i].durable);
            else
                snprintf(dur, sizeof dur, "%s; **%.0f failed busy** (store locked past its timeout)",
                         OPS[i].durable, errs);
            printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", OPS[i].label,
                   cfg_name(TAGS[t]), fnum(a, sizeof a, l->ops), fnum(b, sizeof b, l->p50),
                   fnum(c, sizeof c, l->p99),
                   OPS[i].floor ? fratio(d, sizeof d, ratio_p50(l, fl)) : "floor",
                   OPS[i].floor ? fratio(e, sizeof e, ratio_ops(l, fl)) : "floor", dur);
        }
    }
    printf("\n");
}

/* ---- targets ------------------------------------------------------------------ */

static int nmet, nmissed, nunknown;

static void verdict(const char *what, const char *target, const char *measured, int met,
                    const char *why)
{
    const char *m = met > 0 ? "**met**" : met == 0 ? "**not met**" : "not measured";
    if (met > 0)
        nmet++;
    else if (met == 0)
        nmissed++;
    else
        nunknown++;
    printf("| %s | %s | %s | %s | %s |\n", what, target, measured, m, why);
}

/* Ratio of op to floor p50 in 1p and 1u; met if both are within limit. */
static int pair_ratio(const char *op, const char *floor, double limit, char *out, size_t len,
                      double *worst)
{
    int met = 1, have = 0;
    size_t k = 0;
    *worst = NAN;
    out[0] = '\0';
    for (size_t t = 0; t < 3; t++) {
        const line *o = row("%s.%s", op, TAGS[t]), *f = row("%s.%s", floor, TAGS[t]);
        double r = ratio_p50(o, f);
        if (isnan(r))
            continue;
        if (t < 2) {
            have = 1;
            if (r > limit)
                met = 0;
            if (isnan(*worst) || r > *worst)
                *worst = r;
        }
        k += (size_t)snprintf(out + k, k < len ? len - k : 0, "%s%s %.2f×", k ? "; " : "",
                              TAGS[t], r);
        if (k >= len)
            break;
    }
    return have ? met : -1;
}

static void calls_note(char *buf, size_t len, const char *op, const char *floor)
{
    double a = scalar("%s.1u.store_calls_per_op", op), b = scalar("%s.1u.store_calls_per_op", floor);
    double w = scalar("%s.1u.sq_writes_per_op", op);
    buf[0] = '\0';
    if (!isnan(a) && !isnan(b))
        snprintf(buf, len, "store calls per op %.2f (floor %.2f)", a, b);
    if (!isnan(w)) {
        size_t k = strlen(buf);
        snprintf(buf + k, len - k, "%swrite transactions per op %.2f", k ? ", " : "", w);
    }
}

static void exec_note(char *buf, size_t len, const char *label, const char *op_key,
                      const char *floor_key)
{
    double a = scalar("prof.pg.exec_us.%s", op_key), b = scalar("prof.pg.exec_us.%s", floor_key);
    size_t k = strlen(buf);
    if (!isnan(a) && !isnan(b))
        snprintf(buf + k, len - k,
                 "%sserver execution per call %.1f µs for %s vs %.1f µs for the floor "
                 "statement (pg_stat_statements, below)",
                 k ? "; " : "", a, label, b);
}

static void ratio_target(const char *what, const char *target, const char *op,
                         const char *floor, double limit, const char *exec_label,
                         const char *exec_op, const char *exec_floor)
{
    char measured[256], why[1024];
    double worst;
    int met = pair_ratio(op, floor, limit, measured, sizeof measured, &worst);
    if (met < 0) {
        verdict(what, target, "–", -1, "the rows were not measured (see failures below)");
        return;
    }
    calls_note(why, sizeof why, op, floor);
    if (exec_label)
        exec_note(why, sizeof why, exec_label, exec_op, exec_floor);
    if (met) {
        size_t k = strlen(why);
        snprintf(why + k, sizeof why - k, "%swithin %.1f× pinned and unpinned", k ? "; " : "",
                 limit);
    }
    verdict(what, target, measured, met, why[0] ? why : "–");
}

/* The check rows above are for a handle without a cache directory; the
 * CLI and the daemon open theirs with one. */
static void cache_note(const char *st)
{
    const line *a = row("%s.check.1p", st), *b = row("%s.check_cachedir.1p", st);
    const line *one = row("%s.check_one.1p", st), *f1 = row("%s.1p", strcmp(st, "pg") == 0
                                                                          ? "pgfloor.select1"
                                                                          : "sqfloor.select");
    if (a && one && f1)
        printf("| ↳ the same check of one provider, repeated | – | 1p %.2f× (p50 %.1f µs vs %.1f "
               "µs round robin) | (no target) | the row above cycles over the client's N "
               "providers (N = its grants in the acquire phase), so each check also reads "
               "another provider's rows and index pages than the last (see Scale) |\n",
               ratio_p50(one, f1), one->p50, a->p50);
    const line *rr = row("pgfloor.read_row.1p"), *rs = row("pgfloor.select1.1p");
    if (strcmp(st, "pg") == 0 && rr && rs)
        printf("| ↳ the check's read alone: one lease row by index, the clock passed in | – | "
               "1p %.2f× (p50 %.1f µs vs %.1f µs) | (no target) | a floor for any check that "
               "reads the lease: the index scan and eleven columns already cost this much more "
               "than `SELECT 1`; the check adds the store's clock and the verdict |\n",
               ratio_p50(rr, rs), rr->p50, rs->p50);
    if (a && b)
        printf("| ↳ the same check on a handle with a cache dir (how the CLI and `fleetlease "
               "serve` open the store) | – | 1p p50 %.0f µs vs %.0f µs without: %.1f× | "
               "(no target) | the first check of a provider writes its cache file (write + "
               "rename), later ones only when its rows changed; the round robin visits each "
               "provider only a few times in the phase, so with many providers (SQLite's "
               "faster acquire phase grants more) the first writes dominate |\n",
               b->p50, a->p50, b->p50 / a->p50);
}

static void targets(void)
{
    char m[512], why[1024];
    printf("| what | target | measured (1p = 1 client pinned, 1u = unpinned, 8u = 8 clients; "
           "p50 ratios) | verdict | why |\n");
    printf("| --- | --- | --- | --- | --- |\n");
    ratio_target("PostgreSQL granted acquire", "≤ 1.3× single-row upsert commit", "pg.acquire",
                 "pgfloor.upsert", 1.3, "fl_acquire()", "fl_acquire", "upsert");
    ratio_target("PostgreSQL refused acquire", "≤ 1.3× `SELECT 1`", "pg.refused",
                 "pgfloor.select1", 1.3, "the give-up statement (the 'refused' history row, "
                 "a second round trip)", "give_up", "select1");
    ratio_target("PostgreSQL heartbeat", "≤ 1.2× single-row update commit", "pg.heartbeat",
                 "pgfloor.update", 1.2, "the renew statement", "heartbeat", "update");
    ratio_target("SQLite heartbeat", "≤ 1.2× single-row update commit", "sq.heartbeat",
                 "sqfloor.update", 1.2, NULL, NULL, NULL);
    ratio_target("PostgreSQL check", "≤ 1.2× `SELECT 1`", "pg.check", "pgfloor.select1", 1.2,
                 "the read statement", "check", "select1");
    cache_note("pg");
    ratio_target("SQLite check", "≤ 1.2× a point SELECT", "sq.check", "sqfloor.select", 1.2, NULL,
                 NULL, NULL);
    cache_note("sq");
    ratio_target("SQLite acquire", "≤ 1.3× its bare conditional upsert", "sq.acquire",
                 "sqfloor.upsert", 1.3, NULL, NULL, NULL);

    /* durable acquire+release throughput vs etcd */
    {
        int met = 1, have = 0;
        size_t k = 0;
        m[0] = '\0';
        for (int t = 1; t < 3; t++) {
            const char *tag = TAGS[t];
            const line *e = row("etcdpair.pair.%s", tag);
            for (int s = 0; s < 2; s++) {
                const char *st = s ? "sq" : "pg";
                const line *p = row("pair%s.pair.%s", st, tag);
                if (!p || !e || e->ops <= 0)
                    continue;
                double r = p->ops / e->ops;
                have = 1;
                if (r < 5)
                    met = 0;
                k += (size_t)snprintf(m + k, k < sizeof m ? sizeof m - k : 0,
                                      "%s%s %s: %.0f vs %.0f cycles/s = %.1f×", k ? "; " : "",
                                      s ? "SQLite" : "PostgreSQL", tag,
                                      p->ops, e->ops, r);
            }
        }
        verdict("durable acquire+release throughput", "≥ 5× etcd grant + txn + revoke, 1 and 8 clients",
                have ? m : "–", have ? met : -1,
                have ? (met ? "both stores, 1 and 8 clients"
                            : "etcd does two raft commits per acquire and one per release, "
                              "fleetlease one commit each: the gap is what is left after "
                              "fleetlease's own per-operation cost (rows above)")
                     : "not measured");
    }

    /* 8 vs 1 on PostgreSQL */
    {
        const line *a1 = row("pg.acquire.1u"), *a8 = row("pg.acquire.8u");
        const line *f1 = row("pgfloor.upsert.1u"), *f8 = row("pgfloor.upsert.8u");
        const line *n1 = row("pgfloor.upsert_notify.1u"), *n8 = row("pgfloor.upsert_notify.8u");
        const line *h1 = row("pg.heartbeat.1u"), *h8 = row("pg.heartbeat.8u");
        if (a1 && a8 && a1->ops > 0) {
            double r = a8->ops / a1->ops;
            double fr = f1 && f8 && f1->ops > 0 ? f8->ops / f1->ops : NAN;
            double nr = n1 && n8 && n1->ops > 0 ? n8->ops / n1->ops : NAN;
            double hr = h1 && h8 && h1->ops > 0 ? h8->ops / h1->ops : NAN;
            snprintf(m, sizeof m, "%.0f vs %.0f acquires/s = %.2f× (the upsert floor: %.2f×)",
                     a8->ops, a1->ops, r, fr);
            int notify_bound = !isnan(nr) && !isnan(fr) && nr < fr / 2;
            snprintf(why, sizeof why,
                     "the upsert floor shows what group commit gives on this server (%.2f×); "
                     "the same upsert with a pg_notify in its transaction scales %.2f×, and "
                     "heartbeat (which does not notify) %.2f×%s",
                     fr, nr, hr,
                     notify_bound ? ": PostgreSQL serializes the commits of notifying "
                                    "transactions (a database-wide lock held through the WAL "
                                    "flush), and every grant and release notifies (trigger "
                                    "control_host_leases_notify)"
                                  : "");
            verdict("acquire throughput, 8 clients vs 1 (PostgreSQL)", "≥ 3×", m, r >= 3, why);
        } else {
            verdict("acquire throughput, 8 clients vs 1 (PostgreSQL)", "≥ 3×", "–", -1,
                    "not measured");
        }
    }

    /* gateway */
    {
        double h50 = scalar("gwcheck.holder.1p.p50_ns"), h99 = scalar("gwcheck.holder.1p.p99_ns"),
               f50 = scalar("gwcheck.foreign.1p.p50_ns"),
               m50 = scalar("gwcheck.holder_4k.1p.p50_ns");
        if (!isnan(h50)) {
            char meas[256];
            snprintf(meas, sizeof meas,
                     "holder admitted: p50 %.0f ns (p99 %.0f ns); foreign refused: p50 %.0f ns; "
                     "holder, 4096 providers cached: p50 %.0f ns",
                     h50, h99, f50, m50);
            verdict("gateway cached check", "< 1 µs", meas,
                    h50 < 1000 && (isnan(f50) || f50 < 1000) && (isnan(m50) || m50 < 1000),
                    "fl_check_cached() in a loop, as the gateway admits each request (batches "
                    "of 1000 calls, pinned; judged on the p50 of the batch means, since a batch "
                    "the scheduler preempted shows in the p99): a hash lookup of the provider, "
                    "validation of the token and the verdict rule on the cached rows; no store "
                    "call, no allocation. A refusal also writes the message (`host leased for "
                    "...`). The rest of the gateway's added latency is HTTP proxying: see the "
                    "gateway table");
        } else {
            verdict("gateway cached check", "< 1 µs", "–", -1,
                    "not measured (flbench gwcheck failed: see failures below)");
        }
    }

    /* wake-up */
    {
        const line *p = row("wake.pg.wake.1u"), *s = row("wake.sq.wake.1u");
        if (p || s) {
            int met = (!p || p->p99 < 50000) && (!s || s->p99 < 50000);
            snprintf(m, sizeof m, "PostgreSQL p50 %.1f ms, p99 %.1f ms; SQLite p50 %.1f ms, p99 %.1f ms",
                     p ? p->p50 / 1000 : NAN, p ? p->p99 / 1000 : NAN, s ? s->p50 / 1000 : NAN,
                     s ? s->p99 / 1000 : NAN);
            verdict("wake-up p99", "< 50 ms", m, p && s ? met : -1,
                    "PostgreSQL wakes waiters by LISTEN/NOTIFY; SQLite by polling PRAGMA "
                    "data_version every 10 ms");
        } else {
            verdict("wake-up p99", "< 50 ms", "–", -1, "not measured");
        }
    }

    /* contention */
    {
        double pg64 = scalar("cont.pg.r64.attempts_per_grant"),
               sq64 = scalar("cont.sq.r64.attempts_per_grant");
        double pg1 = scalar("cont.pg.r1.attempts_per_grant"), pg8 = scalar("cont.pg.r8.attempts_per_grant");
        double sq1 = scalar("cont.sq.r1.attempts_per_grant"), sq8 = scalar("cont.sq.r8.attempts_per_grant");
        snprintf(m, sizeof m,
                 "acquire attempts per grant, 1/8/64 racers: PostgreSQL %.1f / %.1f / %.1f; "
                 "SQLite %.1f / %.1f / %.1f",
                 pg1, pg8, pg64, sq1, sq8, sq64);
        int have = !isnan(pg64) && !isnan(sq64);
        int met = have && pg64 <= 4 && sq64 <= 4;
        verdict("contention", "store calls per grant bounded at 64 racers (read here: ≤ 4 "
                "attempts per grant, whatever the number of racers)",
                m, have ? met : -1,
                met ? "attempts per grant do not grow with racers"
                    : "attempts per grant grow with the number of racers: every release wakes "
                      "every waiter (NOTIFY on PostgreSQL, data_version on SQLite), each "
                      "tries once, one wins (a herd, not a queue)");
    }
    /* scale */
    {
        int have = 0, met = 1;
        size_t k = 0;
        m[0] = '\0';
        for (int s = 0; s < 2; s++) {
            const char *st = s ? "sq" : "pg";
            const line *a = row("scale.%s.check.n10", st), *b = row("scale.%s.check.n100000", st);
            if (!a || !b)
                continue;
            have = 1;
            double r = b->p50 / a->p50;
            if (r > 1.5)
                met = 0;
            k += (size_t)snprintf(m + k, k < sizeof m ? sizeof m - k : 0,
                                  "%s%s p50 %.0f µs at 10, %.0f µs at 100k (%.2f×)", k ? "; " : "",
                                  s ? "SQLite" : "PostgreSQL", a->p50, b->p50, r);
        }
        verdict("scale: check latency", "flat from 10 to 100k live leases (read here: ≤ 1.5×)",
                have ? m : "–", have ? met : -1,
                met ? "flat" : "the store's read, not the library: most likely, at 100k leases the table "
                               "and its indexes outgrow SQLite's page cache (2 MB by default), so "
                               "a check's B-tree descent fetches pages from the OS cache; the "
                               "check cache is a hash table and the library's own share of a "
                               "check is about a tenth of its instructions (the callgrind line "
                               "at the end)");
        have = 0;
        met = 1;
        k = 0;
        m[0] = '\0';
        for (int s = 0; s < 2; s++) {
            const char *st = s ? "sq" : "pg";
            double a = scalar("scale.%s.sweep.n1000.us_per_lease", st),
                   b = scalar("scale.%s.sweep.n100000.us_per_lease", st),
                   z = scalar("scale.%s.sweep.n10.us_per_lease", st);
            if (isnan(a) || isnan(b))
                continue;
            have = 1;
            if (b > 1.5 * a)
                met = 0;
            k += (size_t)snprintf(m + k, k < sizeof m ? sizeof m - k : 0,
                                  "%s%s %.0f / %.1f / %.1f µs per expired lease at 10 / 1k / 100k",
                                  k ? "; " : "", s ? "SQLite" : "PostgreSQL", z, a, b);
        }
        verdict("scale: sweep cost per expired lease",
                "flat (read here: 100k within 1.5× of 1k; at 10 the one commit dominates)",
                have ? m : "–", have ? met : -1,
                met ? "one statement pair per sweep, index range on expires_at" : "grows with N");
    }
    printf("\n%d met, %d not met, %d not measured.\n\n", nmet, nmissed, nunknown);
}

static void contention_table(void)
{
    char a[32], b[32], c[32];
    printf("| store | racers | grants | grants/s | time to grant p50 ms | p99 ms | "
           "acquire attempts per grant | store calls per grant | SQLite write txns / data_version polls per grant | "
           "waits that ran out |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n");
    static const char *const st[] = {"pg", "sq"};
    static const int racers[] = {1, 8, 64};
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < 3; r++) {
            const line *l = row("cont.%s.grant.r%d", st[s], racers[r]);
            if (!l) {
                char k[64];
                snprintf(k, sizeof k, "cont.%s.grant.r%d", st[s], racers[r]);
                const line *f = find('F', k);
                printf("| %s | %d | %s | | | | | | | |\n", s ? "SQLite" : "PostgreSQL", racers[r],
                       f ? f->text : "not measured");
                continue;
            }
            char extra[96] = "–";
            if (s)
                snprintf(extra, sizeof extra, "%.2f / %.2f",
                         scalar("cont.sq.r%d.writes_per_grant", racers[r]),
                         scalar("cont.sq.r%d.polls_per_grant", racers[r]));
            printf("| %s | %d | %.0f | %s | %s | %s | %.2f | %.2f | %s | %.0f |\n",
                   s ? "SQLite" : "PostgreSQL", racers[r],
                   scalar("cont.%s.r%d.grants", st[s], racers[r]), fnum(a, sizeof a, l->ops),
                   fnum(b, sizeof b, l->p50 / 1000), fnum(c, sizeof c, l->p99 / 1000),
                   scalar("cont.%s.r%d.attempts_per_grant", st[s], racers[r]),
                   scalar("cont.%s.r%d.calls_per_grant", st[s], racers[r]), extra,
                   scalar("cont.%s.r%d.timeouts", st[s], racers[r]));
        }
    printf("\n");
}

static void scale_table(void)
{
    char a[32], b[32], c[32], d[32], e[32];
    printf("| store | live leases | check p50 µs | check p99 µs | check p50 vs 10 leases | "
           "empty sweep p50 µs | sweep of N lapsed: ms | µs per expired lease |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    static const char *const st[] = {"pg", "sq"};
    static const long ns[] = {10, 1000, 100000};
    for (int s = 0; s < 2; s++) {
        const line *base = row("scale.%s.check.n10", st[s]);
        for (int i = 0; i < 3; i++) {
            const line *l = row("scale.%s.check.n%ld", st[s], ns[i]);
            const line *em = row("scale.%s.sweep_empty.n%ld", st[s], ns[i]);
            if (!l) {
                printf("| %s | %ld | not measured | | | | | |\n", s ? "SQLite" : "PostgreSQL",
                       ns[i]);
                continue;
            }
            printf("| %s | %ld | %s | %s | %s | %s | %s | %.2f |\n", s ? "SQLite" : "PostgreSQL",
                   ns[i], fnum(a, sizeof a, l->p50), fnum(b, sizeof b, l->p99),
                   fratio(c, sizeof c, ratio_p50(l, base)),
                   fnum(d, sizeof d, em ? em->p50 : NAN),
                   fnum(e, sizeof e, scalar("scale.%s.sweep.n%ld.ms", st[s], ns[i])),
                   scalar("scale.%s.sweep.n%ld.us_per_lease", st[s], ns[i]));
        }
    }
    printf("\n");
}

static void gateway_table(void)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    static const char *const who[] = {"direct", "nginx", "gateway"};
    static const char *const label[] = {"direct to the upstream", "nginx proxy_pass",
                                        "fleetlease gateway"};
    printf("| path | 1 connection: req/s | p50 µs | p99 µs | 32 connections: req/s | p50 µs | "
           "added p50 vs direct (1 conn) |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    const line *d1 = row("gw.direct.lat.c1");
    for (int i = 0; i < 3; i++) {
        const line *l1 = row("gw.%s.lat.c1", who[i]), *l32 = row("gw.%s.tput.c32", who[i]);
        if (!l1 && !l32) {
            printf("| %s | %s | | | | | |\n", label[i],
                   i == 2 ? "not yet measured (needs fleetlease gateway)" : "not measured");
            continue;
        }
        printf("| %s | %s | %s | %s | %s | %s | %s |\n", label[i],
               fnum(a, sizeof a, l1 ? l1->ops : NAN), fnum(b, sizeof b, l1 ? l1->p50 : NAN),
               fnum(c, sizeof c, l1 ? l1->p99 : NAN), fnum(d, sizeof d, l32 ? l32->ops : NAN),
               fnum(e, sizeof e, l32 ? l32->p50 : NAN),
               i && l1 && d1 ? fnum(f, sizeof f, l1->p50 - d1->p50) : "–");
    }
    printf("\n");
}

static void pairs_table(void)
{
    char a[32], b[32], c[32];
    printf("| cycle | clients | cycles/s | p50 µs | p99 µs |\n| --- | --- | ---: | ---: | ---: |\n");
    static const char *const k[] = {"pairpg", "pairsq", "etcdpair"};
    static const char *const l[] = {"fleetlease PG: acquire + release",
                                    "fleetlease SQLite: acquire + release",
                                    "etcd: grant + txn + revoke"};
    for (int i = 0; i < 3; i++)
        for (int t = 1; t < 3; t++) {
            const line *r = row("%s.pair.%s", k[i], TAGS[t]);
            if (r)
                printf("| %s | %s | %s | %s | %s |\n", l[i], cfg_name(TAGS[t]),
                       fnum(a, sizeof a, r->ops), fnum(b, sizeof b, r->p50),
                       fnum(c, sizeof c, r->p99));
        }
    printf("\n");
}

static void failures(void)
{
    int any = 0;
    for (size_t i = 0; i < nlines; i++)
        if (lines[i].kind == 'F') {
            if (!any)
                printf("## Failures in this run\n\n");
            any = 1;
            printf("- `%s`: %s\n", lines[i].key, lines[i].text);
        }
    if (any)
        printf("\n");
}

static void append_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
}

int bn_report(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: flbench report RESULTS [FILE...]\n");
        return 64;
    }
    if (load(argv[0]))
        return 1;
    printf("# fleetlease benchmarks\n\n");
    printf("Written by `bench/run.sh` from one run; do not edit by hand, run it again.\n\n");
    printf("- date: %s\n", info("date"));
    printf("- command: `%s`\n", info("command"));
    printf("- machine: %s CPUs (`nproc`), %s, kernel %s, %s; data on %s\n", info("nproc"),
           info("cpu"), info("kernel"), info("os"), info("fs"));
    printf("- load average before / after the run: %s / %s (other work on this machine moves "
           "absolute numbers; ratios to a floor measured minutes apart move less)\n",
           info("load_before"), info("load_after"));
    printf("- servers (loopback, temporary data directories): %s\n", info("servers"));
    printf("- durability: %s\n", info("durability"));
    printf("- per phase: %s s per measurement, every operation timed alone "
           "(CLOCK_MONOTONIC around the call); clients are processes, one connection each; "
           "the operation rows ran twice, interleaved, and each row shows the repetition with "
           "the lower p50 (floors included)\n\n",
           info("secs"));

    printf("## Targets\n\n");
    targets();

    printf("## Every operation, with its ratio to the floor\n\n");
    printf("Pinned: client and server processes (every PostgreSQL backend, Redis, etcd, the "
           "daemon) on CPU 0 with `taskset`, which shows the software's own cost; unpinned "
           "adds the cross-CPU wake-ups of a 2-vCPU VM.  The floor of each row is the "
           "statement that does the same physical work on the same server in the same "
           "configuration: `SELECT 1` for reads, a single-row upsert commit for a grant, a "
           "single-row update commit for a renew or release.  Peers are set against the "
           "PostgreSQL floors for scale only.\n\n");
    ops_table();

    printf("## Durable acquire + release cycles (fleetlease vs etcd)\n\n");
    pairs_table();

    printf("## Contention: racers for one provider\n\n");
    printf("Each racer loops: exclusive acquire with a wait, hold %d ms, release.  Store calls "
           "are counted inside flbench at the library's calls into libpq and SQLite "
           "(bench/contention.c); the library does not expose its internal attempts.\n\n", 2);
    contention_table();

    printf("## Wake-up: release to the waiter's grant\n\n");
    printf("A holder keeps an exclusive lease 30-70 ms while a second process waits in "
           "`fl_acquire` (exclusive, wait 10 s); the time runs from the holder's call to "
           "`fl_release` (so it includes the release's own commit) to the waiter's grant.\n\n");
    {
        printf("| store | p50 ms | p99 ms | samples |\n| --- | ---: | ---: | ---: |\n");
        const line *p = row("wake.pg.wake.1u"), *s = row("wake.sq.wake.1u");
        if (p)
            printf("| PostgreSQL | %.2f | %.2f | %ld |\n", p->p50 / 1000, p->p99 / 1000, p->n);
        if (s)
            printf("| SQLite | %.2f | %.2f | %ld |\n", s->p50 / 1000, s->p99 / 1000, s->n);
        printf("\n");
    }

    printf("## Scale: live leases\n\n");
    printf("N providers each with one live lease (rows written directly in the library's "
           "schema, in one transaction); checks of random providers for the phase time; then "
           "N more lapsed rows and one `fl_sweep`.\n\n");
    scale_table();

    printf("## Gateway overhead (wrk, keep-alive, against a static nginx upstream)\n\n");
    gateway_table();

    failures();
    for (int i = 1; i < argc; i++)
        append_file(argv[i]);
    free(lines);
    return 0;
}
