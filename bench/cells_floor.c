/*
 * bench/cells_floor.c -- the floors, and the PostgreSQL advisory-lock peer.
 *
 * A floor is the cheapest statement that does the same physical work as a
 * lease operation, on the same server or file, with the same durability,
 * in the same run: a round trip (SELECT 1), a single-row upsert commit
 * (what a grant must at least do), a single-row update commit (what a
 * renew must at least do).  Each client has its own row, as each fl-ops
 * client has its own providers, so neither side measures row contention.
 *
 * Statements are prepared once before the clock starts; PostgreSQL
 * commits with the server's default synchronous_commit (on), SQLite runs
 * WAL with synchronous=FULL: exactly what the fleetlease stores use.
 */
#include "bench.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- PostgreSQL -------------------------------------------------------- */

static PGconn *pg_connect(const char *url, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(url);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "connect: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Run sql (no parameters); 0 if it succeeded. */
static int pg_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%.60s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int pg_prepare(PGconn *c, const char *name, const char *sql, int n, char *err,
                      size_t errlen)
{
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "prepare %s: %s", name, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/*
 * One prepared statement, one round trip.  want: the first column of the
 * first row must equal it (NULL: no check); one_row: exactly one row must
 * have been written.
 */
static int pg_step(PGconn *c, const char *name, int n, const char *const *params,
                   const char *want, int one_row, char *err, size_t errlen)
{
    PGresult *r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "%s: %s", name, PQresultErrorMessage(r));
    } else if (want && (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), want) != 0)) {
        ok = 0;
        snprintf(err, errlen, "%s: expected %s, got %s", name, want,
                 PQntuples(r) ? PQgetvalue(r, 0, 0) : "no row");
    } else if (one_row && strcmp(PQcmdTuples(r), "1") != 0) {
        ok = 0;
        snprintf(err, errlen, "%s: expected 1 row, got %s", name, PQcmdTuples(r));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Each client has rows of its own: id for the upsert, 100 + id for the
 * update. */
#define FLOOR_UPSERT "INSERT INTO bench_floor (id, v) VALUES (%s, %s) ON CONFLICT (id)" \
                     " DO UPDATE SET v = excluded.v WHERE bench_floor.v < excluded.v"
#define FLOOR_UPDATE "UPDATE bench_floor SET v = v + 1 WHERE id = %s"

/* Larger than any value an earlier run wrote: the upsert's WHERE always
 * holds, so every upsert writes (like every grant). */
static long long fresh_base(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum { FL_SELECT, FL_UPSERT, FL_UPDATE, FL_NPH, FL_UPSERT_NOTIFY = FL_NPH, FL_READ_ROW, FL_PG_NPH };

static int pgfloor_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600], id[16], val[32];
    PGconn *db = pg_connect(o->url, err, sizeof err);
    if (!db)
        return bn_fail(c, "%s", err);
    /* The update has a row of its own: its v + 1 must not catch up with
     * the upsert's rising values. */
    char id2[16], prov[32], tok[32];
    snprintf(id, sizeof id, "%d", bn_id(c));
    snprintf(prov, sizeof prov, "floor-%d", bn_id(c));
    snprintf(tok, sizeof tok, "tok-%d", bn_id(c));
    const char *pr[2] = {prov, "0"};
    snprintf(id2, sizeof id2, "%d", 100 + bn_id(c));
    long long v = fresh_base();
    const char *p2[2] = {id, val}, *p1[1] = {id2};
    char up[256], upd[128];
    snprintf(up, sizeof up, FLOOR_UPSERT, "$1::int", "$2::bigint");
    snprintf(upd, sizeof upd, FLOOR_UPDATE, "$1::int");
    /* Not a floor but a diagnosis: the same upsert with a NOTIFY in its
     * transaction, as every fleetlease grant and release has (the
     * store's trigger).  PostgreSQL serializes the commits of notifying
     * transactions (a database-wide lock from pre-commit to the end of
     * the commit), so this row shows what that costs with many clients. */
    int bad = pg_prepare(db, "s1", "SELECT 1", 0, err, sizeof err) ||
              pg_prepare(db, "up", up, 2, err, sizeof err) ||
              pg_prepare(db, "upd", upd, 1, err, sizeof err) ||
              pg_prepare(db, "upn",
                         "INSERT INTO bench_floor (id, v) SELECT $1::int, $2::bigint"
                         " FROM (SELECT pg_notify('flbench', $1::text)) n ON CONFLICT (id)"
                         " DO UPDATE SET v = excluded.v WHERE bench_floor.v < excluded.v",
                         2, err, sizeof err) ||
              /* Also a diagnosis: the check's read (one lease row through the
               * (provider_id, expires_at) index, the same columns and order)
               * with the clock passed in instead of read by the statement. */
              pg_prepare(db, "rd",
                         "SELECT token, provider_id, holder, purpose, mode, state, fence, ttl_ms,"
                         " acquired_at, heartbeat_at, expires_at FROM bench_floor_lease"
                         " WHERE provider_id = $1::text AND expires_at > $2::bigint"
                         " ORDER BY acquired_at, token",
                         2, err, sizeof err);
    snprintf(val, sizeof val, "%lld", v++);
    if (!bad)
        bad = pg_step(db, "s1", 0, NULL, "1", 0, err, sizeof err) ||
              pg_step(db, "up", 2, p2, NULL, 1, err, sizeof err) ||
              pg_step(db, "upd", 1, p1, NULL, 1, err, sizeof err);
    if (bad)
        bad = bn_fail(c, "%s", err);

    bn_phase_begin(c, FL_SELECT, 0, 1);
    while (!bad && bn_more(c)) {
        int64_t t0 = bn_now_ns();
        bad = pg_step(db, "s1", 0, NULL, "1", 0, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, FL_UPSERT, 0, 1);
    while (!bad && bn_more(c)) {
        snprintf(val, sizeof val, "%lld", v++);
        int64_t t0 = bn_now_ns();
        bad = pg_step(db, "up", 2, p2, NULL, 1, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, FL_UPDATE, 0, 1);
    while (!bad && bn_more(c)) {
        int64_t t0 = bn_now_ns();
        bad = pg_step(db, "upd", 1, p1, NULL, 1, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, FL_UPSERT_NOTIFY, 0, 1);
    while (!bad && bn_more(c)) {
        snprintf(val, sizeof val, "%lld", v++);
        int64_t t0 = bn_now_ns();
        bad = pg_step(db, "upn", 2, p2, NULL, 1, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, FL_READ_ROW, 0, 1);
    while (!bad && bn_more(c)) {
        int64_t t0 = bn_now_ns();
        bad = pg_step(db, "rd", 2, pr, tok, 0, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    PQfinish(db);
    return bad ? 1 : 0;
}

int bn_cell_pgfloor(const bn_opts *o)
{
    char err[600];
    PGconn *db = pg_connect(o->url, err, sizeof err);
    if (!db || pg_exec(db, "SET client_min_messages = warning;"
                           "CREATE TABLE IF NOT EXISTS bench_floor ("
                           " id integer PRIMARY KEY, v bigint NOT NULL);"
                           "INSERT INTO bench_floor (id, v) SELECT g, 0"
                           " FROM generate_series(0, 199) g ON CONFLICT DO NOTHING;"
                           /* The shape of control_host_leases, one row per client. */
                           "CREATE TABLE IF NOT EXISTS bench_floor_lease ("
                           " token TEXT PRIMARY KEY, provider_id TEXT NOT NULL,"
                           " holder TEXT NOT NULL, purpose TEXT NOT NULL, mode TEXT NOT NULL,"
                           " state TEXT NOT NULL, fence BIGINT NOT NULL, ttl_ms BIGINT NOT NULL,"
                           " acquired_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL,"
                           " expires_at BIGINT NOT NULL);"
                           "CREATE INDEX IF NOT EXISTS bench_floor_lease_provider"
                           " ON bench_floor_lease (provider_id, expires_at);"
                           "INSERT INTO bench_floor_lease SELECT 'tok-' || g, 'floor-' || g,"
                           " 'bench-holder', 'a benchmark purpose', 'exclusive', 'active', g,"
                           " 30000, 1, 1, 9000000000000000000 FROM generate_series(0, 199) g"
                           " ON CONFLICT DO NOTHING",
                       err, sizeof err)) {
        bn_failed(o->key, "setup: %s", err);
        PQfinish(db);
        return 1;
    }
    PQfinish(db);
    static const char *const phases[FL_PG_NPH] = {"select1", "upsert", "update",
                                                  "upsert_notify", "read_row"};
    return bn_run(o, phases, FL_PG_NPH, pgfloor_body, NULL);
}

/* ---- PostgreSQL advisory locks (a peer) ------------------------------- */

/* Session-level advisory locks live in the shared lock table (about
 * max_locks_per_transaction x max_connections slots), so a client takes at
 * most this many before it unlocks them again. */
#define ADV_BATCH 500

static int advisory_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600], key[32];
    const char *p1[1] = {key};
    PGconn *db = pg_connect(o->url, err, sizeof err);
    if (!db)
        return bn_fail(c, "%s", err);
    long long base = (long long)(bn_id(c) + 1) * 1000000LL;
    int bad = pg_prepare(db, "lk", "SELECT pg_try_advisory_lock($1::bigint)", 1, err,
                         sizeof err) ||
              pg_prepare(db, "un", "SELECT pg_advisory_unlock($1::bigint)", 1, err, sizeof err);
    snprintf(key, sizeof key, "%lld", base - 1);
    if (!bad)
        bad = pg_step(db, "lk", 1, p1, "t", 0, err, sizeof err) ||
              pg_step(db, "un", 1, p1, "t", 0, err, sizeof err);
    if (bad)
        bad = bn_fail(c, "%s", err);
    while (bn_round(c, 1000)) {
        long n = 0;
        bn_phase_begin(c, 0, ADV_BATCH, 0);
        while (!bad && bn_more(c)) {
            snprintf(key, sizeof key, "%lld", base + n);
            int64_t t0 = bn_now_ns();
            bad = pg_step(db, "lk", 1, p1, "t", 0, err, sizeof err);
            bn_record(c, bn_now_ns() - t0);
            n++;
        }
        bn_phase_end(c);
        bn_phase_begin(c, 1, n > 0 ? n : 1, 0);
        for (long i = 0; !bad && i < n && bn_more(c); i++) {
            snprintf(key, sizeof key, "%lld", base + i);
            int64_t t0 = bn_now_ns();
            bad = pg_step(db, "un", 1, p1, "t", 0, err, sizeof err);
            bn_record(c, bn_now_ns() - t0);
        }
        bn_phase_end(c);
    }
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    PQfinish(db);
    return bad ? 1 : 0;
}

int bn_cell_advisory(const bn_opts *o)
{
    static const char *const phases[] = {"acquire", "release"};
    return bn_run(o, phases, 2, advisory_body, NULL);
}

/* ---- SQLite ------------------------------------------------------------- */

static int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%.60s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* The fleetlease SQLite store's connection settings (lib/store/sqlite.c). */
static sqlite3 *sq_connect(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 2000);
    if (sq_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", err, errlen)) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* 0, -1 with err set, or -2: busy past the timeout (counted, as the
 * library's FL_EUNAVAIL is in cells_fl.c). */
static int sq_step(sqlite3_stmt *s, int want_row, int one_change, char *err, size_t errlen)
{
    int rc = sqlite3_step(s);
    if ((rc & 0xff) == SQLITE_BUSY) {
        sqlite3_reset(s);
        return -2;
    }
    int ok = want_row ? rc == SQLITE_ROW : rc == SQLITE_DONE;
    if (ok && one_change && sqlite3_changes(sqlite3_db_handle(s)) != 1)
        ok = 0;
    if (!ok)
        snprintf(err, errlen, "%.50s: %s", sqlite3_sql(s), sqlite3_errmsg(sqlite3_db_handle(s)));
    sqlite3_reset(s);
    return ok ? 0 : -1;
}

static int sqfloor_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600], up[256], upd[128];
    sqlite3 *db = sq_connect(o->url, err, sizeof err);
    if (!db)
        return bn_fail(c, "%s", err);
    sqlite3_stmt *sel = NULL, *ups = NULL, *updt = NULL;
    snprintf(up, sizeof up, FLOOR_UPSERT, "?1", "?2");
    snprintf(upd, sizeof upd, FLOOR_UPDATE, "?1");
    int bad = 0;
    if (sqlite3_prepare_v3(db, "SELECT v FROM bench_floor WHERE id = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db, up, -1, SQLITE_PREPARE_PERSISTENT, &ups, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db, upd, -1, SQLITE_PREPARE_PERSISTENT, &updt, NULL) != SQLITE_OK)
        bad = bn_fail(c, "prepare: %s", sqlite3_errmsg(db));
    long long v = fresh_base();
    if (!bad) {
        sqlite3_bind_int(sel, 1, bn_id(c));
        sqlite3_bind_int(ups, 1, bn_id(c));
        sqlite3_bind_int(updt, 1, 100 + bn_id(c)); /* a row of its own, as above */
        sqlite3_bind_int64(ups, 2, v++);
        bad = sq_step(sel, 1, 0, err, sizeof err) || sq_step(ups, 0, 1, err, sizeof err) ||
              sq_step(updt, 0, 1, err, sizeof err);
        if (bad)
            bad = bn_fail(c, "warm-up: %s", err);
    }
    sqlite3_stmt *const by_phase[FL_NPH] = {sel, ups, updt};
    for (int ph = 0; ph < FL_NPH; ph++) {
        bn_phase_begin(c, ph, 0, 1);
        while (!bad && bn_more(c)) {
            if (ph == FL_UPSERT)
                sqlite3_bind_int64(ups, 2, v++);
            int64_t t0 = bn_now_ns();
            int rc = sq_step(by_phase[ph], ph == FL_SELECT, ph != FL_SELECT, err, sizeof err);
            int64_t t1 = bn_now_ns();
            if (rc == -2) {
                bn_error(c);
                continue;
            }
            if (rc) {
                bad = rc;
                break;
            }
            bn_record(c, t1 - t0);
        }
        bn_phase_end(c);
    }
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    sqlite3_finalize(sel);
    sqlite3_finalize(ups);
    sqlite3_finalize(updt);
    sqlite3_close(db);
    return bad ? 1 : 0;
}

int bn_cell_sqfloor(const bn_opts *o)
{
    char err[600];
    sqlite3 *db = sq_connect(o->url, err, sizeof err);
    if (!db || sq_exec(db, "CREATE TABLE IF NOT EXISTS bench_floor ("
                           " id INTEGER PRIMARY KEY, v INTEGER NOT NULL);"
                           "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g"
                           " WHERE i < 199) INSERT OR IGNORE INTO bench_floor (id, v)"
                           " SELECT i, 0 FROM g",
                       err, sizeof err)) {
        bn_failed(o->key, "setup: %s", err);
        sqlite3_close(db);
        return 1;
    }
    sqlite3_close(db);
    static const char *const phases[FL_NPH] = {"select", "upsert", "update"};
    return bn_run(o, phases, FL_NPH, sqfloor_body, NULL);
}
