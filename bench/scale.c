/*
 * bench/scale.c -- does a check stay as cheap with 100k live leases as
 * with 10, and does the sweep cost the same per expired lease?
 *
 * Population: N providers, each with one live exclusive lease, written by
 * direct INSERTs of rows in the library's schema (docs/design.md section
 * 2), in one transaction: granting 100k leases one durable commit at a
 * time would take minutes and measure nothing new.  On PostgreSQL the
 * populating session skips triggers (session_replication_role = replica),
 * so no NOTIFY is queued for rows no waiter asked about.  Then:
 *   check:       fl_check on uniformly random providers, timed;
 *   sweep_empty: fl_sweep with nothing lapsed (what the daemon's timer
 *                pays every second);
 *   sweep:       N more rows, already lapsed, then one fl_sweep, timed:
 *                its time per expired lease.
 */
#include "bench.h"

#include "fleetlease.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCALE_TTL_MS 600000

static int is_pg(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

static int pg_cmd(PGconn *db, const char *sql, int n, const char *const *params, char *err,
                  size_t errlen)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%.80s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* n rows for providers "<prefix><i>"; live ones expire in SCALE_TTL_MS,
 * lapsed ones expired a second ago. */
static int pg_populate(const char *url, const char *prefix, long n, int lapsed, char *err,
                       size_t errlen)
{
    PGconn *db = PQconnectdb(url);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        snprintf(err, errlen, "connect: %s", db ? PQerrorMessage(db) : "out of memory");
        PQfinish(db);
        return -1;
    }
    char cnt[24], ttl[24];
    snprintf(cnt, sizeof cnt, "%ld", n);
    snprintf(ttl, sizeof ttl, "%d", lapsed ? -1000 : SCALE_TTL_MS);
    const char *p[3] = {prefix, cnt, ttl};
    int rc = pg_cmd(db, "SET session_replication_role = replica", 0, NULL, err, errlen) ||
             pg_cmd(db, "BEGIN", 0, NULL, err, errlen) ||
             pg_cmd(db,
                    "INSERT INTO control_host_leases (token, provider_id, holder, purpose, mode,"
                    " state, fence, ttl_ms, acquired_at, heartbeat_at, expires_at)"
                    " SELECT md5($1::text || g::text), $1::text || g::text, 'scale', 'scale',"
                    " 'exclusive', 'active', t.now + g, 600000, t.now - 600000, t.now - 600000,"
                    " t.now + $3::bigint"
                    " FROM generate_series(0, $2::bigint - 1) g, (SELECT fl_now_ms() AS now) t",
                    3, p, err, errlen) ||
             pg_cmd(db,
                    "INSERT INTO fl_providers (provider_id, fence)"
                    " SELECT $1::text || g::text, fl_now_ms() + g"
                    " FROM generate_series(0, $2::bigint - 1) g ON CONFLICT DO NOTHING",
                    2, p, err, errlen) ||
             pg_cmd(db, "COMMIT", 0, NULL, err, errlen) ||
             pg_cmd(db, "ANALYZE control_host_leases", 0, NULL, err, errlen);
    PQfinish(db);
    return rc ? -1 : 0;
}

static int pg_clear(const char *url, char *err, size_t errlen)
{
    PGconn *db = PQconnectdb(url);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        snprintf(err, errlen, "connect: %s", db ? PQerrorMessage(db) : "out of memory");
        PQfinish(db);
        return -1;
    }
    /* Nothing else runs during the scale cells; earlier cells released
     * everything they were granted. */
    int rc = pg_cmd(db, "SET session_replication_role = replica", 0, NULL, err, errlen) ||
             pg_cmd(db, "DELETE FROM control_host_leases", 0, NULL, err, errlen) ||
             pg_cmd(db, "DELETE FROM fl_providers WHERE provider_id LIKE 'sc%'", 0, NULL, err,
                    errlen) ||
             pg_cmd(db, "VACUUM ANALYZE control_host_leases", 0, NULL, err, errlen);
    PQfinish(db);
    return rc ? -1 : 0;
}

static int sq_populate(const char *path, const char *prefix, long n, int lapsed, char *err,
                       size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *prov = NULL, *now = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; BEGIN IMMEDIATE", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0)"
                                " AS INTEGER)", -1, &now, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO control_host_leases (token, provider_id, holder,"
                                " purpose, mode, state, fence, ttl_ms, acquired_at, heartbeat_at,"
                                " expires_at) VALUES (?1, ?2, 'scale', 'scale', 'exclusive',"
                                " 'active', ?3, 600000, ?4, ?4, ?5)", -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT OR IGNORE INTO fl_providers (provider_id, fence)"
                                " VALUES (?1, ?2)", -1, &prov, NULL);
    int64_t t = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(now)) == SQLITE_ROW) {
        t = sqlite3_column_int64(now, 0);
        rc = SQLITE_OK;
    }
    for (long i = 0; rc == SQLITE_OK && i < n; i++) {
        char pid[FL_PROVIDER_MAX + 1], tok[40];
        snprintf(pid, sizeof pid, "%s%ld", prefix, i);
        snprintf(tok, sizeof tok, "%08lx%024lx", (unsigned long)(lapsed ? 1 : 2), (unsigned long)i);
        sqlite3_bind_text(ins, 1, tok, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, pid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 3, t + i);
        sqlite3_bind_int64(ins, 4, t - SCALE_TTL_MS);
        sqlite3_bind_int64(ins, 5, lapsed ? t - 1000 : t + SCALE_TTL_MS);
        rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc == SQLITE_DONE) {
            sqlite3_bind_text(prov, 1, pid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(prov, 2, t + i);
            rc = sqlite3_step(prov);
            sqlite3_reset(prov);
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "populate %s: %s", path, db ? sqlite3_errmsg(db) : "open failed");
    sqlite3_finalize(ins);
    sqlite3_finalize(prov);
    sqlite3_finalize(now);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

int bn_cell_scale(const bn_opts *o)
{
    long n = o->max_ops;
    char err[600], key[160], live[64], gone[64];
    snprintf(live, sizeof live, "sc-%s-%ld-", o->run_id, n);
    snprintf(gone, sizeof gone, "scx-%s-%ld-", o->run_id, n);
    int pg = is_pg(o->url);
    fl_store *st = NULL;
    int rc = fl_open(o->url, &st);
    if (rc != FL_OK) {
        bn_failed(o->key, "fl_open: %s", st ? fl_errmsg(st) : fl_strerror(rc));
        fl_close(st);
        return 1;
    }
    int64_t t0 = bn_now_ns();
    if ((pg && (pg_clear(o->url, err, sizeof err) ||
                pg_populate(o->url, live, n, 0, err, sizeof err))) ||
        (!pg && sq_populate(o->url, live, n, 0, err, sizeof err))) {
        bn_failed(o->key, "%s", err);
        fl_close(st);
        return 1;
    }
    snprintf(key, sizeof key, "%s.n%ld.populate_s", o->key, n);
    bn_scalar(key, "%.2f", (double)(bn_now_ns() - t0) / 1e9);

    /* check: random providers among the N, after a short warm-up. */
    size_t cap = 1 << 20, k = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    unsigned long long x = 88172645463325252ULL;
    fl_verdict v;
    if (!lat) {
        bn_failed(o->key, "out of memory");
        fl_close(st);
        return 1;
    }
    int bad = 0;
    for (int w = 0; w < 200 && !bad; w++) {
        char p[FL_PROVIDER_MAX + 1];
        snprintf(p, sizeof p, "%s%d", live, w % (int)(n < 200 ? n : 200));
        bad = fl_check(st, p, NULL, NULL, &v) != FL_OK || v.allowed;
    }
    int64_t start = bn_now_ns(), end = start + (int64_t)(o->secs * 1e9);
    while (!bad && k < cap && bn_now_ns() < end) {
        char p[FL_PROVIDER_MAX + 1];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        snprintf(p, sizeof p, "%s%llu", live, x % (unsigned long long)n);
        int64_t a = bn_now_ns();
        rc = fl_check(st, p, NULL, NULL, &v);
        int64_t b = bn_now_ns();
        if (rc != FL_OK || v.allowed || v.stale) {
            bad = 1;
            break;
        }
        lat[k++] = b - a;
    }
    int64_t span = bn_now_ns() - start;
    snprintf(key, sizeof key, "%s.check.n%ld", o->key, n);
    if (bad) {
        bn_failed(key, "check: expected a fresh refusal: %s (allowed=%d)", fl_errmsg(st),
                  v.allowed);
    } else {
        bn_sort(lat, k);
        bn_row(key, (double)k / ((double)span / 1e9), bn_pct_us(lat, k, 50),
               bn_pct_us(lat, k, 99), (long)k);
    }

    /* sweep with nothing lapsed */
    k = 0;
    for (int i = 0; i < 50 && !bad; i++) {
        size_t e = 0;
        int64_t a = bn_now_ns();
        rc = fl_sweep(st, &e);
        lat[k++] = bn_now_ns() - a;
        if (rc != FL_OK || e != 0) {
            bad = 1;
            bn_failed(o->key, "empty sweep: %s (expired %zu)", fl_errmsg(st), e);
        }
    }
    if (!bad) {
        snprintf(key, sizeof key, "%s.sweep_empty.n%ld", o->key, n);
        double tot = 0;
        for (size_t i = 0; i < k; i++)
            tot += (double)lat[i];
        bn_sort(lat, k);
        bn_row(key, (double)k / (tot / 1e9), bn_pct_us(lat, k, 50), bn_pct_us(lat, k, 99),
               (long)k);
    }

    /* sweep of N lapsed leases, among the N live ones */
    if (!bad && ((pg && pg_populate(o->url, gone, n, 1, err, sizeof err)) ||
                 (!pg && sq_populate(o->url, gone, n, 1, err, sizeof err)))) {
        bn_failed(o->key, "%s", err);
        bad = 1;
    }
    if (!bad) {
        size_t e = 0;
        int64_t a = bn_now_ns();
        rc = fl_sweep(st, &e);
        int64_t d = bn_now_ns() - a;
        if (rc != FL_OK || (long)e != n) {
            bn_failed(o->key, "sweep: %s (expired %zu, expected %ld)", fl_errmsg(st), e, n);
            bad = 1;
        } else {
            snprintf(key, sizeof key, "%s.sweep.n%ld.ms", o->key, n);
            bn_scalar(key, "%.3f", (double)d / 1e6);
            snprintf(key, sizeof key, "%s.sweep.n%ld.us_per_lease", o->key, n);
            bn_scalar(key, "%.3f", (double)d / 1e3 / (double)n);
        }
    }
    free(lat);
    fl_close(st);
    if (pg && pg_clear(o->url, err, sizeof err))
        bn_failed(o->key, "cleanup: %s", err);
    return bad;
}
