/*
 * lib/store/sqlite.c -- the embedded store: one SQLite file shared by every
 * process on one machine.
 *
 * Serialization: every deciding write runs inside BEGIN IMMEDIATE, which
 * takes the database's single write lock at its start, so no other writer
 * can commit between our read of a provider's rows and our write (design.md
 * section 3).  Reads that may refuse run in autocommit and write nothing, so
 * many pollers of a held host cost no fsync and do not queue on the lock.
 *
 * Clock: "now" is SQLite's julianday('now') in whole milliseconds, read by
 * one SELECT at the start of each transaction (after BEGIN IMMEDIATE has
 * waited for the lock, so a grant is never counted from before the wait:
 * C02) and bound to every statement of that transaction.  On SQLite the
 * store's clock is the machine's clock, which all processes share.
 *
 * Durability: WAL with synchronous=FULL.  A grant lost in a power cut
 * would let the next grant overlap a holder that still believes in it.
 */
#include "store/store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* How long one statement waits for another process's write lock before we
 * report FL_EUNAVAIL.  Writers hold it for one short transaction (plus an
 * fsync), so 2 s means something is wrong, not merely busy. */
#define SQ_BUSY_MS 2000
/* Opening may also race on the switch to WAL and the first DDL, which
 * SQLite reports as busy without always waiting; retry that long. */
#define SQ_OPEN_WAIT_MS 10000
/* Version 2 added the isolation report tables, 3 the schedules.  Every
 * version's DDL is additive and idempotent, so moving up runs the whole
 * script again. */
#define SQ_SCHEMA_VERSION 3
#define SQ_STR_(x) #x
#define SQ_STR(x) SQ_STR_(x)

#define SQ_NOW "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
#define SQ_COLS "token, provider_id, holder, purpose, mode, state, fence, ttl_ms, " \
                "acquired_at, heartbeat_at, expires_at"
#define SQ_HCOLS "at, event, provider_id, holder, purpose, mode, fence, expires_at, detail"

/* The id column is AUTOINCREMENT so that event ids keep rising even if old
 * history is ever pruned.  CHECKs keep a hand-edited row from being read
 * back as a lease of mode 0. */
static const char sq_ddl[] =
    "CREATE TABLE IF NOT EXISTS fl_schema_version ("
    " version INTEGER NOT NULL, applied_at BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fl_providers ("
    " provider_id TEXT PRIMARY KEY, fence BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS control_host_leases ("
    " token TEXT PRIMARY KEY,"
    " provider_id TEXT NOT NULL,"
    " holder TEXT NOT NULL,"
    " purpose TEXT NOT NULL,"
    " mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),"
    " state TEXT NOT NULL CHECK (state IN ('active', 'pending')),"
    " fence BIGINT NOT NULL DEFAULT 0,"
    " ttl_ms BIGINT NOT NULL,"
    " acquired_at BIGINT NOT NULL,"
    " heartbeat_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS control_host_leases_provider"
    " ON control_host_leases (provider_id, expires_at);"
    "CREATE INDEX IF NOT EXISTS control_host_leases_expiry"
    " ON control_host_leases (expires_at);"
    "CREATE TABLE IF NOT EXISTS control_host_lease_history ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at BIGINT NOT NULL,"
    " event TEXT NOT NULL,"
    " provider_id TEXT NOT NULL,"
    " holder TEXT NOT NULL,"
    " purpose TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " fence BIGINT NOT NULL DEFAULT 0,"
    " expires_at BIGINT NOT NULL DEFAULT 0,"
    " detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS control_host_lease_history_provider"
    " ON control_host_lease_history (provider_id, id);"
    "CREATE TABLE IF NOT EXISTS control_host_lease_reports ("
    " provider_id TEXT NOT NULL, fence BIGINT NOT NULL, gateway TEXT NOT NULL,"
    " foreign_in_flight_at_grant BIGINT NOT NULL DEFAULT 0,"
    " concurrent_foreign BIGINT NOT NULL DEFAULT 0,"
    " foreign_refused BIGINT NOT NULL DEFAULT 0,"
    " foreign_cut_off BIGINT NOT NULL DEFAULT 0,"
    " holder_requests BIGINT NOT NULL DEFAULT 0,"
    " final INTEGER NOT NULL DEFAULT 0,"
    " updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (provider_id, fence, gateway));"
    "CREATE TABLE IF NOT EXISTS control_host_lease_report_refusals ("
    " provider_id TEXT NOT NULL, fence BIGINT NOT NULL, gateway TEXT NOT NULL,"
    " writer TEXT NOT NULL, refused BIGINT NOT NULL,"
    " PRIMARY KEY (provider_id, fence, gateway, writer));"
    "CREATE TABLE IF NOT EXISTS fl_schedules ("
    " name TEXT PRIMARY KEY, cron TEXT NOT NULL, tz TEXT NOT NULL, providers TEXT NOT NULL,"
    " holder TEXT NOT NULL, purpose TEXT NOT NULL, max_wait_ms BIGINT NOT NULL,"
    " max_run_ms BIGINT NOT NULL, ttl_ms BIGINT NOT NULL, command TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fl_schedule_runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, due_at BIGINT NOT NULL,"
    " claimed_by TEXT NOT NULL, outcome TEXT NOT NULL, started_at BIGINT NOT NULL,"
    " ended_at BIGINT NOT NULL DEFAULT 0, provider_id TEXT NOT NULL DEFAULT '',"
    " fence BIGINT NOT NULL DEFAULT 0, exit_status INTEGER NOT NULL DEFAULT -1,"
    " detail TEXT NOT NULL DEFAULT '', UNIQUE (name, due_at));";

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_NOW,
    Q_ROWS,         /* live rows of provider ?1 at ?2 (acquire, check, list) */
    Q_LIVE_ALL,     /* live rows of every provider at ?1 (list) */
    Q_EXPIRE_HIST,  /* 'expired' history for lapsed rows of provider ?1 at ?2 */
    Q_EXPIRE_DEL,
    Q_FENCE_GET,
    Q_FENCE_PUT,
    Q_INSERT,
    Q_PROMOTE,
    Q_REFRESH,
    Q_HIST,
    Q_DEL_PENDING,
    Q_BY_TOKEN,
    Q_RENEW,
    Q_DELETE,
    Q_HIST_ALL,
    Q_HIST_P,
    Q_SWEEP_HIST,
    Q_SWEEP_DEL,
    Q_ANY_LAPSED,
    Q_DATA_VERSION,
    Q_REPORT_PUT,
    Q_REPORT_WRITER,
    Q_REPORT_SUM,
    Q_REPORT_WRITERS,
    Q_SCHED_PUT,
    Q_SCHED_RM,
    Q_SCHED_LIST,
    Q_SCHED_CLAIM,
    Q_SCHED_FINISH,
    Q_RUNS_ALL,
    Q_RUNS_ONE,
    Q_COUNT
};

static const char *const sq_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_NOW] = "SELECT " SQ_NOW,
    [Q_ROWS] = "SELECT " SQ_COLS " FROM control_host_leases"
               " WHERE provider_id = ?1 AND expires_at > ?2 ORDER BY acquired_at, token",
    [Q_LIVE_ALL] = "SELECT " SQ_COLS " FROM control_host_leases"
                   " WHERE expires_at > ?1 ORDER BY provider_id, acquired_at, token",
    [Q_EXPIRE_HIST] = "INSERT INTO control_host_lease_history (" SQ_HCOLS ")"
                      " SELECT ?2, 'expired', provider_id, holder, purpose, mode, fence,"
                      " expires_at, '' FROM control_host_leases"
                      " WHERE provider_id = ?1 AND expires_at <= ?2 ORDER BY expires_at, token",
    [Q_EXPIRE_DEL] = "DELETE FROM control_host_leases WHERE provider_id = ?1 AND expires_at <= ?2",
    [Q_FENCE_GET] = "SELECT fence FROM fl_providers WHERE provider_id = ?1",
    [Q_FENCE_PUT] = "INSERT INTO fl_providers (provider_id, fence) VALUES (?1, ?2)"
                    " ON CONFLICT (provider_id) DO UPDATE SET fence = excluded.fence"
                    " WHERE excluded.fence > fl_providers.fence",
    [Q_INSERT] = "INSERT INTO control_host_leases (" SQ_COLS ")"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [Q_PROMOTE] = "UPDATE control_host_leases SET state = 'active', holder = ?2, purpose = ?3,"
                  " fence = ?4, ttl_ms = ?5, acquired_at = ?6, heartbeat_at = ?6, expires_at = ?7"
                  " WHERE token = ?1 AND state = 'pending' AND expires_at > ?6",
    [Q_REFRESH] = "UPDATE control_host_leases SET expires_at = ?2"
                  " WHERE token = ?1 AND state = 'pending'",
    [Q_HIST] = "INSERT INTO control_host_lease_history (" SQ_HCOLS ")"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_DEL_PENDING] = "DELETE FROM control_host_leases WHERE token = ?1 AND state = 'pending'",
    [Q_BY_TOKEN] = "SELECT " SQ_COLS " FROM control_host_leases WHERE token = ?1",
    /* The expiry test is part of the UPDATE/DELETE itself: a lapsed row is
     * never renewed or released even if no sweep ran (C04, C05, C06). */
    [Q_RENEW] = "UPDATE control_host_leases SET heartbeat_at = ?2, expires_at = ?2 + ttl_ms"
                " WHERE token = ?1 AND state = 'active' AND expires_at > ?2 RETURNING " SQ_COLS,
    [Q_DELETE] = "DELETE FROM control_host_leases"
                 " WHERE token = ?1 AND state = 'active' AND expires_at > ?2 RETURNING " SQ_COLS,
    [Q_HIST_ALL] = "SELECT id, " SQ_HCOLS " FROM control_host_lease_history"
                   " ORDER BY id DESC LIMIT ?1",
    [Q_HIST_P] = "SELECT id, " SQ_HCOLS " FROM control_host_lease_history"
                 " WHERE provider_id = ?1 ORDER BY id DESC LIMIT ?2",
    /* Sweep: both statements use the same bound now inside one write
     * transaction, so the rows recorded are exactly the rows deleted, and a
     * renew cannot land between them (C07). */
    [Q_SWEEP_HIST] = "INSERT INTO control_host_lease_history (" SQ_HCOLS ")"
                     " SELECT ?1, 'expired', provider_id, holder, purpose, mode, fence,"
                     " expires_at, '' FROM control_host_leases"
                     " WHERE expires_at <= ?1 ORDER BY provider_id, expires_at, token",
    [Q_SWEEP_DEL] = "DELETE FROM control_host_leases WHERE expires_at <= ?1",
    /* The sweep looks before it takes the write lock: a sweep timer firing
     * every second must not queue behind (or ahead of) every renew. */
    [Q_ANY_LAPSED] = "SELECT 1 FROM control_host_leases WHERE expires_at <= ?1 LIMIT 1",
    /* Changes when another connection commits: SQLite's poor man's NOTIFY. */
    [Q_DATA_VERSION] = "PRAGMA data_version",
    [Q_REPORT_PUT] = "INSERT INTO control_host_lease_reports (provider_id, fence, gateway,"
                     " foreign_in_flight_at_grant, concurrent_foreign, foreign_refused,"
                     " foreign_cut_off, holder_requests, final, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                     " ON CONFLICT (provider_id, fence, gateway) DO UPDATE SET"
                     " foreign_in_flight_at_grant = excluded.foreign_in_flight_at_grant,"
                     " concurrent_foreign = excluded.concurrent_foreign,"
                     " foreign_refused = excluded.foreign_refused,"
                     " foreign_cut_off = excluded.foreign_cut_off,"
                     " holder_requests = excluded.holder_requests,"
                     " final = excluded.final, updated_at = excluded.updated_at",
    [Q_REPORT_WRITER] = "INSERT INTO control_host_lease_report_refusals"
                        " (provider_id, fence, gateway, writer, refused) VALUES (?1, ?2, ?3, ?4, ?5)"
                        " ON CONFLICT (provider_id, fence, gateway, writer)"
                        " DO UPDATE SET refused = excluded.refused",
    [Q_REPORT_SUM] = "SELECT count(*), min(final), sum(foreign_in_flight_at_grant),"
                     " sum(concurrent_foreign), sum(foreign_refused), sum(foreign_cut_off),"
                     " sum(holder_requests), max(updated_at)"
                     " FROM control_host_lease_reports WHERE provider_id = ?1 AND fence = ?2",
    [Q_REPORT_WRITERS] = "SELECT writer, sum(refused) FROM control_host_lease_report_refusals"
                         " WHERE provider_id = ?1 AND fence = ?2"
                         " GROUP BY writer ORDER BY 2 DESC, 1 LIMIT " SQ_STR(FL_REPORT_WRITERS),
    [Q_SCHED_PUT] = "INSERT INTO fl_schedules (" FL__SCHED_COLS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, " SQ_NOW ")"
                    " ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,"
                    " providers = excluded.providers, holder = excluded.holder,"
                    " purpose = excluded.purpose, max_wait_ms = excluded.max_wait_ms,"
                    " max_run_ms = excluded.max_run_ms, ttl_ms = excluded.ttl_ms,"
                    " command = excluded.command",
    [Q_SCHED_RM] = "DELETE FROM fl_schedules WHERE name = ?1",
    [Q_SCHED_LIST] = "SELECT " FL__SCHED_COLS " FROM fl_schedules ORDER BY name",
    /* Exactly once per (name, due_at): the UNIQUE constraint decides. */
    [Q_SCHED_CLAIM] = "INSERT INTO fl_schedule_runs (name, due_at, claimed_by, outcome, started_at)"
                      " VALUES (?1, ?2, ?3, 'running', " SQ_NOW ")"
                      " ON CONFLICT (name, due_at) DO NOTHING RETURNING id",
    [Q_SCHED_FINISH] = "UPDATE fl_schedule_runs SET outcome = ?2, ended_at = " SQ_NOW ","
                       " provider_id = ?3, fence = ?4, exit_status = ?5, detail = ?6 WHERE id = ?1",
    [Q_RUNS_ALL] = "SELECT " FL__RUN_COLS " FROM fl_schedule_runs ORDER BY id DESC LIMIT ?1",
    [Q_RUNS_ONE] = "SELECT " FL__RUN_COLS " FROM fl_schedule_runs WHERE name = ?1"
                   " ORDER BY id DESC LIMIT ?2",
};

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    fl_lease *rows;  /* acquire's scratch rows, kept to save a malloc per poll */
    size_t cap;
    char path[FL_URL_MAX];
} sq;

/* ---- errors --------------------------------------------------------- */

/* Every failure inside a transaction ends it: a connection left inside
 * BEGIN IMMEDIATE would hold the write lock of every process. */
static void sq_rollback(sq *h)
{
    if (h->db != NULL && !sqlite3_get_autocommit(h->db))
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Map an SQLite result to an fl_code and message, and roll back whatever
 * transaction the failure left open (the message is taken first, since
 * the ROLLBACK replaces sqlite3_errmsg). */
static int sq_fail(fl_store *st, sq *h, const char *what, int rc)
{
    int prim = rc & 0xff;
    int code = FL_ESTORE;
    int sys = 0;
    char errbuf[128] = "";
    char detail[256];
    const char *msg = (h->db != NULL) ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc);

    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
        fl__fmt(detail, sizeof detail, "database is locked (busy for %d ms)", SQ_BUSY_MS);
        msg = detail;
        code = FL_EUNAVAIL;
    } else if (prim == SQLITE_NOMEM) {
        code = FL_ENOMEM;
    } else if (prim == SQLITE_IOERR || prim == SQLITE_CANTOPEN || prim == SQLITE_PROTOCOL) {
        code = FL_EUNAVAIL;
        sys = (h->db != NULL) ? sqlite3_system_errno(h->db) : 0;
    }
    if (sys != 0)
        fl__fmt(errbuf, sizeof errbuf, " (%s)", strerror_r(sys, detail, sizeof detail));
    code = fl__store_err(st, code, "sqlite %s: %s: %s%s", h->path, what, msg, errbuf);
    sq_rollback(h);
    return code;
}

/* A failure that is ours, not SQLite's (malformed row, impossible state). */
static int sq_bad(fl_store *st, sq *h, const char *what, const char *why)
{
    int code = fl__store_err(st, FL_ESTORE, "sqlite %s: %s: %s", h->path, what, why);
    sq_rollback(h);
    return code;
}

static int sq_oom(fl_store *st, sq *h, const char *what)
{
    int code = fl__store_err(st, FL_ENOMEM, "sqlite %s: %s: out of memory", h->path, what);
    sq_rollback(h);
    return code;
}

static int sq_injected(fl_store *st, sq *h, const char *point)
{
    return fl__store_err(st, FL_EUNAVAIL, "sqlite %s: %s: injected fault (FLEETLEASE_DEBUG_FAULTS)",
                         h->path, point);
}

/* ---- statement helpers ---------------------------------------------- */

/* Every statement is reset and unbound as soon as it is used: a statement
 * left mid-step would hold a read snapshot (and block checkpoints), and
 * SQLITE_STATIC bindings point into the caller's strings. */
static void sq_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void sq_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_STATIC);
}

/* Step a statement that returns no rows we need; returns an SQLite code. */
static int sq_run(sqlite3_stmt *s)
{
    int rc;
    do {
        rc = sqlite3_step(s);
    } while (rc == SQLITE_ROW);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sq_col_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    if (t == NULL)
        return -1;
    return fl__copy(dst, cap, (const char *)t) == FL_OK ? 0 : -1;
}

/* One row in SQ_COLS order.  -1 if a column does not fit or names no mode
 * or state: a row this library did not write. */
static int sq_lease(sqlite3_stmt *s, fl_lease *l)
{
    memset(l, 0, sizeof *l);
    if (sq_col_text(s, 0, l->token, sizeof l->token) != 0 ||
        sq_col_text(s, 1, l->provider, sizeof l->provider) != 0 ||
        sq_col_text(s, 2, l->holder, sizeof l->holder) != 0 ||
        sq_col_text(s, 3, l->purpose, sizeof l->purpose) != 0)
        return -1;
    l->mode = fl__mode_from((const char *)sqlite3_column_text(s, 4));
    l->state = fl__state_from((const char *)sqlite3_column_text(s, 5));
    if (l->mode == 0 || l->state == 0)
        return -1;
    l->fence = sqlite3_column_int64(s, 6);
    l->ttl_ms = sqlite3_column_int64(s, 7);
    l->acquired_at_ms = sqlite3_column_int64(s, 8);
    l->heartbeat_at_ms = sqlite3_column_int64(s, 9);
    l->expires_at_ms = sqlite3_column_int64(s, 10);
    return 0;
}

#define SQ_MALFORMED "malformed row in control_host_leases (a field too long, or a bad mode or state)"

/* Step a bound lease-row statement to the end, appending to *rows (grown
 * as needed; *cap is its capacity).  Resets the statement. */
static int sq_fetch(fl_store *st, sq *h, sqlite3_stmt *s, const char *what,
                    fl_lease **rows, size_t *cap, size_t *n)
{
    int rc;

    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == *cap) {
            size_t ncap = (*cap != 0) ? *cap * 2 : 8;
            fl_lease *nr = realloc(*rows, ncap * sizeof *nr);
            if (nr == NULL) {
                sq_done(s);
                return sq_oom(st, h, what);
            }
            *rows = nr;
            *cap = ncap;
        }
        if (sq_lease(s, &(*rows)[*n]) != 0) {
            sq_done(s);
            return sq_bad(st, h, what, SQ_MALFORMED);
        }
        (*n)++;
    }
    if (rc != SQLITE_DONE) {
        rc = sq_fail(st, h, what, rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    return FL_OK;
}

static int sq_now(fl_store *st, sq *h, const char *what, int64_t *now)
{
    sqlite3_stmt *s = h->q[Q_NOW];
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = sq_fail(st, h, what, rc);
        sq_done(s);
        return rc;
    }
    *now = sqlite3_column_int64(s, 0);
    sq_done(s);
    return FL_OK;
}

/* BEGIN IMMEDIATE, then the store's clock read after the lock was won. */
static int sq_begin(fl_store *st, sq *h, const char *what, int64_t *now)
{
    int rc = sq_run(h->q[Q_BEGIN]);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, what, rc);
    return sq_now(st, h, what, now);
}

static int sq_commit(fl_store *st, sq *h, const char *what)
{
    int rc = sq_run(h->q[Q_COMMIT]);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, what, rc);
    return FL_OK;
}

/* Live rows of one provider at now into acquire's scratch buffer. */
static int sq_rows(fl_store *st, sq *h, const char *provider, int64_t now, const char *what,
                   size_t *n)
{
    sqlite3_stmt *s = h->q[Q_ROWS];
    sq_text(s, 1, provider);
    sqlite3_bind_int64(s, 2, now);
    return sq_fetch(st, h, s, what, &h->rows, &h->cap, n);
}

static int sq_history(fl_store *st, sq *h, const char *what, int64_t at, const char *event,
                      const char *provider, const char *holder, const char *purpose,
                      fl_mode mode, int64_t fence, int64_t expires_at, const char *detail)
{
    sqlite3_stmt *s = h->q[Q_HIST];
    int rc;

    sqlite3_bind_int64(s, 1, at);
    sq_text(s, 2, event);
    sq_text(s, 3, provider);
    sq_text(s, 4, holder);
    sq_text(s, 5, purpose);
    sq_text(s, 6, fl_mode_name(mode));
    sqlite3_bind_int64(s, 7, fence);
    sqlite3_bind_int64(s, 8, expires_at);
    sq_text(s, 9, detail);
    rc = sq_run(s);
    return rc == SQLITE_OK ? FL_OK : sq_fail(st, h, what, rc);
}

/* ---- open / close --------------------------------------------------- */

static void sq_close(void *impl)
{
    sq *h = impl;
    if (h == NULL)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(h->q[i]);
    sqlite3_close(h->db);
    free(h->rows);
    free(h);
}

/* SQLite codes that mean "another process is in the middle of something":
 * worth another try while opening. */
static int sq_transient(int rc)
{
    int prim = rc & 0xff;
    return prim == SQLITE_BUSY || prim == SQLITE_LOCKED;
}

/* Read MAX(version) from fl_schema_version.  *version = 0 when the table
 * is missing or empty. */
static int sq_version(sq *h, int *version)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(h->db, "SELECT MAX(version) FROM fl_schema_version", -1, &s, NULL);

    *version = 0;
    if (rc != SQLITE_OK) {
        /* "no such table" is SQLITE_ERROR: a fresh file. */
        return (rc & 0xff) == SQLITE_ERROR ? SQLITE_OK : rc;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/*
 * One try at WAL + schema.  Returns an SQLite code; *newer is set when the
 * file was written by a newer fleetlease (a logical error, not SQLite's).
 * Safe when many processes open a fresh file at once: the DDL is
 * idempotent and runs under the write lock, and the version row is
 * inserted in the same transaction, so a version implies every table.
 */
static int sq_setup_once(sq *h, int *newer, char *mode, size_t modelen)
{
    sqlite3_stmt *s = NULL;
    int version = 0;
    int rc;

    *newer = 0;
    rc = sqlite3_prepare_v2(h->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(s, 0);
        fl__fmt(mode, modelen, "%s", m != NULL ? m : "?");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        return rc;
    if (strcmp(mode, "wal") != 0)
        return SQLITE_BUSY; /* SQLite keeps the old mode when it cannot switch now */
    rc = sqlite3_exec(h->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;

    /* Fast path: an initialized file needs no write lock to open, so many
     * short-lived CLI processes do not queue behind each other. */
    rc = sq_version(h, &version);
    if (rc != SQLITE_OK)
        return rc;
    if (version == SQ_SCHEMA_VERSION)
        return SQLITE_OK;
    if (version > SQ_SCHEMA_VERSION) {
        *newer = version;
        return SQLITE_OK;
    }

    rc = sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_exec(h->db, sq_ddl, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sq_version(h, &version);
    if (rc == SQLITE_OK && version > SQ_SCHEMA_VERSION)
        *newer = version;
    if (rc == SQLITE_OK && version < SQ_SCHEMA_VERSION)
        rc = sqlite3_exec(h->db,
                          "INSERT INTO fl_schema_version (version, applied_at)"
                          " VALUES (" SQ_STR(SQ_SCHEMA_VERSION) ", " SQ_NOW ")",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && *newer == 0)
        rc = sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

static int sq_open(fl_store *st, const char *path)
{
    sq *h = calloc(1, sizeof *h);
    int64_t deadline;
    char mode[32] = "";
    int newer = 0;
    int rc;
    int code;

    if (h == NULL)
        return fl__store_err(st, FL_ENOMEM, "sqlite %s: open: out of memory", path);
    if (fl__copy(h->path, sizeof h->path, path) != FL_OK) {
        free(h);
        return fl__store_err(st, FL_EINVAL, "sqlite path: must be at most %d bytes, got %zu",
                             FL_URL_MAX - 1, strlen(path));
    }
    rc = sqlite3_open_v2(path, &h->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        code = sq_fail(st, h, "open", rc);
        sq_close(h);
        return code;
    }
    sqlite3_extended_result_codes(h->db, 1);
    sqlite3_busy_timeout(h->db, SQ_BUSY_MS);

    deadline = fl__mono_ms() + SQ_OPEN_WAIT_MS;
    for (unsigned attempt = 0;; attempt++) {
        rc = sq_setup_once(h, &newer, mode, sizeof mode);
        if (rc == SQLITE_OK || !sq_transient(rc) || fl__mono_ms() >= deadline)
            break;
        sq_rollback(h);
        fl__sleep_ms(10 + 10 * (attempt % 5));
    }
    if (rc != SQLITE_OK) {
        if (sq_transient(rc) && strcmp(mode, "wal") != 0 && mode[0] != '\0')
            code = sq_bad(st, h, "open", "cannot switch to WAL journal mode");
        else
            code = sq_fail(st, h, "open", rc);
        sq_close(h);
        return code;
    }
    if (newer != 0) {
        sq_rollback(h);
        code = fl__store_err(st, FL_ESTORE,
                             "sqlite %s: open: schema version %d is newer than this fleetlease "
                             "(knows %d); upgrade fleetlease",
                             h->path, newer, SQ_SCHEMA_VERSION);
        sq_close(h);
        return code;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(h->db, sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->q[i], NULL);
        if (rc != SQLITE_OK) {
            code = sq_fail(st, h, "open", rc);
            sq_close(h);
            return code;
        }
    }
    st->impl = h;
    return FL_OK;
}

/* ---- acquire -------------------------------------------------------- */

static void sq_refused(fl__acq_result *res, const fl__decision *d, int64_t now, int pending)
{
    res->granted = 0;
    res->pending = pending;
    memset(&res->refusal, 0, sizeof res->refusal);
    fl__refusal(d->blocker, d->state, d->shared_count, now, &res->refusal);
}

/* Insert my pending intent, or push its expiry out. */
static int sq_pend(fl_store *st, sq *h, const fl__acq *req, const fl__decision *d, int64_t now)
{
    int64_t exp = now + req->pending_ttl_ms;
    sqlite3_stmt *s;
    int rc;

    if (d->mine != NULL) {
        s = h->q[Q_REFRESH];
        sq_text(s, 1, req->token);
        sqlite3_bind_int64(s, 2, exp);
        rc = sq_run(s);
        return rc == SQLITE_OK ? FL_OK : sq_fail(st, h, "acquire", rc);
    }
    s = h->q[Q_INSERT];
    sq_text(s, 1, req->token);
    sq_text(s, 2, req->provider);
    sq_text(s, 3, req->holder);
    sq_text(s, 4, req->purpose);
    sq_text(s, 5, fl_mode_name(req->mode));
    sq_text(s, 6, fl__state_name(FL_LEASE_PENDING));
    sqlite3_bind_int64(s, 7, 0);
    sqlite3_bind_int64(s, 8, req->ttl_ms);
    sqlite3_bind_int64(s, 9, now);
    sqlite3_bind_int64(s, 10, now);
    sqlite3_bind_int64(s, 11, exp);
    rc = sq_run(s);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "acquire", rc);
    return sq_history(st, h, "acquire", now, "pending", req->provider, req->holder, req->purpose,
                      req->mode, 0, exp, "");
}

/* GRANT or PROMOTE: the next fence, the active row, history. */
static int sq_grant(fl_store *st, sq *h, const fl__acq *req, int promote, int64_t now,
                    fl_lease *l)
{
    sqlite3_stmt *s = h->q[Q_FENCE_GET];
    int64_t fence = 0;
    int rc;

    sq_text(s, 1, req->provider);
    rc = sqlite3_step(s);

    if (rc == SQLITE_ROW) {
        fence = sqlite3_column_int64(s, 0);
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) {
        rc = sq_fail(st, h, "acquire", rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    /* Never below the store's clock, so a store restored from a backup
     * still issues fences above every one handed out before (C12). */
    fence = (fence + 1 > now) ? fence + 1 : now;

    memset(l, 0, sizeof *l);
    if (fl__copy(l->token, sizeof l->token, req->token) != FL_OK ||
        fl__copy(l->provider, sizeof l->provider, req->provider) != FL_OK ||
        fl__copy(l->holder, sizeof l->holder, req->holder) != FL_OK ||
        fl__copy(l->purpose, sizeof l->purpose, req->purpose) != FL_OK)
        return sq_bad(st, h, "acquire", "request field too long (not validated by the caller)");
    l->mode = req->mode;
    l->state = FL_LEASE_ACTIVE;
    l->fence = fence;
    l->ttl_ms = req->ttl_ms;
    l->acquired_at_ms = now;
    l->heartbeat_at_ms = now;
    l->expires_at_ms = now + req->ttl_ms;

    s = h->q[Q_FENCE_PUT];
    sq_text(s, 1, req->provider);
    sqlite3_bind_int64(s, 2, fence);
    rc = sq_run(s);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "acquire", rc);

    if (promote) {
        s = h->q[Q_PROMOTE];
        sq_text(s, 1, req->token);
        sq_text(s, 2, req->holder);
        sq_text(s, 3, req->purpose);
        sqlite3_bind_int64(s, 4, fence);
        sqlite3_bind_int64(s, 5, req->ttl_ms);
        sqlite3_bind_int64(s, 6, now);
        sqlite3_bind_int64(s, 7, l->expires_at_ms);
        rc = sq_run(s);
        if (rc != SQLITE_OK)
            return sq_fail(st, h, "acquire", rc);
        /* We hold the write lock and just read the row as live: anything
         * else is a bug, and granting without the row would be worse. */
        if (sqlite3_changes(h->db) != 1)
            return sq_bad(st, h, "acquire", "pending intent vanished under the write lock");
    } else {
        s = h->q[Q_INSERT];
        sq_text(s, 1, req->token);
        sq_text(s, 2, req->provider);
        sq_text(s, 3, req->holder);
        sq_text(s, 4, req->purpose);
        sq_text(s, 5, fl_mode_name(req->mode));
        sq_text(s, 6, fl__state_name(FL_LEASE_ACTIVE));
        sqlite3_bind_int64(s, 7, fence);
        sqlite3_bind_int64(s, 8, req->ttl_ms);
        sqlite3_bind_int64(s, 9, now);
        sqlite3_bind_int64(s, 10, now);
        sqlite3_bind_int64(s, 11, l->expires_at_ms);
        rc = sq_run(s);
        if (rc != SQLITE_OK)
            return sq_fail(st, h, "acquire", rc);
    }
    return sq_history(st, h, "acquire", now, "granted", req->provider, req->holder, req->purpose,
                      req->mode, fence, l->expires_at_ms, "");
}

static int sq_acquire(fl_store *st, const fl__acq *req, fl__acq_result *res)
{
    sq *h = st->impl;
    fl__decision d;
    int64_t now = 0;
    size_t n = 0;
    sqlite3_stmt *s;
    int rc;

    memset(res, 0, sizeof *res);
    if (fl__fault("acquire"))
        return sq_injected(st, h, "acquire");

    /* Phase 1: an autocommit read.  A refusal ends here and writes
     * nothing, so waiters polling a held host cost no fsync and never
     * take the write lock.  (now and the rows come from two statements; a
     * stale refusal is harmless since the waiter polls again, and a grant
     * is decided again under the lock.) */
    rc = sq_now(st, h, "acquire", &now);
    if (rc == FL_OK)
        rc = sq_rows(st, h, req->provider, now, "acquire", &n);
    if (rc != FL_OK)
        return rc;
    fl__decide(h->rows, n, now, req->mode, req->token, req->may_pend, &d);
    if (d.outcome == FL__REFUSE) {
        sq_refused(res, &d, now, 0);
        return FL_OK;
    }
    /* My intent is registered and fresh enough: refreshing it on every
     * poll would turn each poll into a durable commit. */
    if (d.outcome == FL__PEND && fl__pending_fresh(d.mine, now, req->pending_ttl_ms)) {
        sq_refused(res, &d, now, 1);
        return FL_OK;
    }

    /* Phase 2: under the write lock, clear lapsed rows, read, decide again. */
    rc = sq_begin(st, h, "acquire", &now);
    if (rc != FL_OK)
        return rc;
    s = h->q[Q_EXPIRE_HIST];
    sq_text(s, 1, req->provider);
    sqlite3_bind_int64(s, 2, now);
    rc = sq_run(s);
    if (rc == SQLITE_OK) {
        s = h->q[Q_EXPIRE_DEL];
        sq_text(s, 1, req->provider);
        sqlite3_bind_int64(s, 2, now);
        rc = sq_run(s);
    }
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "acquire", rc);
    rc = sq_rows(st, h, req->provider, now, "acquire", &n);
    if (rc != FL_OK)
        return rc;
    fl__decide(h->rows, n, now, req->mode, req->token, req->may_pend, &d);

    switch (d.outcome) {
    case FL__GRANT:
    case FL__PROMOTE:
        rc = sq_grant(st, h, req, d.outcome == FL__PROMOTE, now, &res->lease);
        if (rc == FL_OK)
            rc = sq_commit(st, h, "acquire");
        if (rc != FL_OK) {
            memset(&res->lease, 0, sizeof res->lease);
            return rc;
        }
        res->granted = 1;
        return FL_OK;
    case FL__PEND:
        rc = sq_pend(st, h, req, &d, now);
        if (rc != FL_OK)
            return rc;
        sq_refused(res, &d, now, 1);
        break;
    case FL__REFUSE:
    default:
        /* Someone won the race between our read and the lock.  The
         * lapsed-row cleanup is still worth committing. */
        sq_refused(res, &d, now, 0);
        break;
    }
    rc = sq_commit(st, h, "acquire");
    if (rc != FL_OK)
        memset(res, 0, sizeof *res);
    return rc;
}

static int sq_give_up_txn(fl_store *st, sq *h, const fl__acq *req, const char *message)
{
    sqlite3_stmt *s;
    int64_t now = 0;
    int rc = sq_begin(st, h, "give up", &now);

    if (rc != FL_OK)
        return rc;
    s = h->q[Q_DEL_PENDING];
    sq_text(s, 1, req->token);
    rc = sq_run(s);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "give up", rc);
    rc = sq_history(st, h, "give up", now, "refused", req->provider, req->holder, req->purpose,
                    req->mode, 0, 0, message);
    if (rc != FL_OK)
        return rc;
    return sq_commit(st, h, "give up");
}

/*
 * The refused call's audit row, and the withdrawal of its pending intent.
 * Like PostgreSQL's synchronous_commit = off for the same row: an audit
 * row of something that did not happen is not worth an fsync, so this one
 * transaction commits with synchronous=NORMAL (in WAL mode: durable at the
 * next checkpoint; a crash may lose it, and then the intent lapses alone).
 */
static int sq_give_up(fl_store *st, const fl__acq *req, const char *message)
{
    sq *h = st->impl;
    sqlite3_exec(h->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = sq_give_up_txn(st, h, req, message);
    sqlite3_exec(h->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    return rc;
}


/* ---- heartbeat / release -------------------------------------------- */

/* After a conditional UPDATE/DELETE by token matched nothing: tell a
 * lapsed lease (FL_EEXPIRED) from no lease at all (FL_ENOTFOUND).  Runs in
 * the same transaction, then rolls it back (nothing was written). */
static int sq_why_not(fl_store *st, sq *h, const char *what, const char *token, int64_t now)
{
    sqlite3_stmt *s = h->q[Q_BY_TOKEN];
    fl_lease l;
    int rc;

    sq_text(s, 1, token);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sq_done(s);
        sq_rollback(h);
        return fl__err_gone(st, what, NULL, 0, 0);
    }
    if (rc != SQLITE_ROW) {
        rc = sq_fail(st, h, what, rc);
        sq_done(s);
        return rc;
    }
    if (sq_lease(s, &l) != 0) {
        sq_done(s);
        return sq_bad(st, h, what, SQ_MALFORMED);
    }
    sq_done(s);
    sq_rollback(h);
    if (l.state != FL_LEASE_ACTIVE)
        return fl__err_gone(st, what, NULL, 0, 0);
    return fl__err_gone(st, what, l.provider, l.expires_at_ms, now);
}

/*
 * Renew (Q_RENEW) or release (Q_DELETE) the live active row of token: one
 * conditional statement whose WHERE carries the expiry test, its history
 * row, one write transaction.
 */
static int sq_by_token(fl_store *st, const char *token, int q, const char *what,
                       const char *event, fl_lease *out)
{
    sq *h = st->impl;
    sqlite3_stmt *s;
    fl_lease l;
    int64_t now = 0;
    int found = 0;
    int rc;

    if (fl__fault(what))
        return sq_injected(st, h, what);
    rc = sq_begin(st, h, what, &now);
    if (rc != FL_OK)
        return rc;
    s = h->q[q];
    sq_text(s, 1, token);
    sqlite3_bind_int64(s, 2, now);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sq_lease(s, &l) != 0) {
            sq_done(s);
            return sq_bad(st, h, what, SQ_MALFORMED);
        }
        found = 1;
    }
    if (rc != SQLITE_DONE) {
        rc = sq_fail(st, h, what, rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    if (!found)
        return sq_why_not(st, h, what, token, now);
    rc = sq_history(st, h, what, now, event, l.provider, l.holder, l.purpose, l.mode,
                    l.fence, l.expires_at_ms, "");
    if (rc == FL_OK)
        rc = sq_commit(st, h, what);
    if (rc == FL_OK && out != NULL)
        *out = l;
    return rc;
}

static int sq_lookup(fl_store *st, const char *token, fl_lease *out)
{
    sq *h = st->impl;
    int64_t now = 0;
    if (fl__fault("read"))
        return sq_injected(st, h, "lookup");
    /* One read transaction, so that the clock and the row agree. */
    int rc = sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "lookup", rc);
    if ((rc = sq_now(st, h, "lookup", &now)) != FL_OK) {
        sq_rollback(h);
        return rc;
    }
    sqlite3_stmt *s = h->q[Q_BY_TOKEN];
    sq_text(s, 1, token);
    rc = sqlite3_step(s);
    fl_lease l;
    int got = rc == SQLITE_ROW && sq_lease(s, &l) == 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = sq_fail(st, h, "lookup", rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    sq_rollback(h);
    if (!got || l.state != FL_LEASE_ACTIVE)
        return fl__err_gone(st, "lookup", NULL, 0, 0);
    if (l.expires_at_ms <= now)
        return fl__err_gone(st, "lookup", l.provider, l.expires_at_ms, now);
    *out = l;
    return FL_OK;
}

static int sq_heartbeat(fl_store *st, const char *token, fl_lease *out)
{
    return sq_by_token(st, token, Q_RENEW, "heartbeat", "renewed", out);
}

static int sq_release(fl_store *st, const char *token)
{
    return sq_by_token(st, token, Q_DELETE, "release", "released", NULL);
}

/* ---- reads ---------------------------------------------------------- */

static int sq_read_provider(fl_store *st, const char *provider, fl_lease **rows, size_t *n,
                            int64_t *now_ms)
{
    sq *h = st->impl;
    sqlite3_stmt *s;
    fl_lease *out = NULL;
    size_t cap = 0;
    int64_t now = 0;
    int rc;

    *rows = NULL;
    *n = 0;
    if (fl__fault("read"))
        return sq_injected(st, h, "read");
    rc = sq_now(st, h, "read", &now);
    if (rc != FL_OK)
        return rc;
    s = h->q[Q_ROWS];
    sq_text(s, 1, provider);
    sqlite3_bind_int64(s, 2, now);
    rc = sq_fetch(st, h, s, "read", &out, &cap, n);
    if (rc != FL_OK || *n == 0) {
        free(out);
        out = NULL;
        if (rc != FL_OK)
            *n = 0;
    }
    *rows = out;
    if (now_ms != NULL)
        *now_ms = now;
    return rc;
}

static int sq_list(fl_store *st, const char *provider, fl_lease **out, size_t *n)
{
    sq *h = st->impl;
    sqlite3_stmt *s;
    fl_lease *rows = NULL;
    size_t cap = 0;
    int64_t now = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (fl__fault("read"))
        return sq_injected(st, h, "list");
    rc = sq_now(st, h, "list", &now);
    if (rc != FL_OK)
        return rc;
    if (provider != NULL) {
        s = h->q[Q_ROWS];
        sq_text(s, 1, provider);
        sqlite3_bind_int64(s, 2, now);
    } else {
        s = h->q[Q_LIVE_ALL];
        sqlite3_bind_int64(s, 1, now);
    }
    rc = sq_fetch(st, h, s, "list", &rows, &cap, n);
    if (rc != FL_OK || *n == 0) {
        free(rows);
        *n = 0;
        return rc;
    }
    /* The token is the capability to renew and release: never listed. */
    for (size_t i = 0; i < *n; i++)
        rows[i].token[0] = '\0';
    *out = rows;
    return FL_OK;
}

#define SQ_BAD_EVENT "malformed row in control_host_lease_history (a field too long, or a bad mode)"

static int sq_event(sqlite3_stmt *s, fl_event *e)
{
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(s, 0);
    e->at_ms = sqlite3_column_int64(s, 1);
    if (sq_col_text(s, 2, e->event, sizeof e->event) != 0 ||
        sq_col_text(s, 3, e->provider, sizeof e->provider) != 0 ||
        sq_col_text(s, 4, e->holder, sizeof e->holder) != 0 ||
        sq_col_text(s, 5, e->purpose, sizeof e->purpose) != 0 ||
        sq_col_text(s, 9, e->detail, sizeof e->detail) != 0)
        return -1;
    e->mode = fl__mode_from((const char *)sqlite3_column_text(s, 6));
    if (e->mode == 0)
        return -1;
    e->fence = sqlite3_column_int64(s, 7);
    e->expires_at_ms = sqlite3_column_int64(s, 8);
    return 0;
}

static int sq_history_op(fl_store *st, const char *provider, size_t limit, fl_event **out,
                         size_t *n)
{
    sq *h = st->impl;
    sqlite3_stmt *s;
    fl_event *ev = NULL;
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (fl__fault("read"))
        return sq_injected(st, h, "history");
    if (provider != NULL) {
        s = h->q[Q_HIST_P];
        sq_text(s, 1, provider);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    } else {
        s = h->q[Q_HIST_ALL];
        sqlite3_bind_int64(s, 1, (sqlite3_int64)limit);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            /* Grown, not sized by limit: a limit of 10000 on a short
             * history should not allocate 20 MB. */
            size_t ncap = (cap != 0) ? cap * 2 : 16;
            fl_event *ne = realloc(ev, ncap * sizeof *ne);
            if (ne == NULL) {
                sq_done(s);
                free(ev);
                *n = 0;
                return sq_oom(st, h, "history");
            }
            ev = ne;
            cap = ncap;
        }
        if (sq_event(s, &ev[*n]) != 0) {
            sq_done(s);
            free(ev);
            *n = 0;
            return sq_bad(st, h, "history", SQ_BAD_EVENT);
        }
        (*n)++;
    }
    if (rc != SQLITE_DONE) {
        rc = sq_fail(st, h, "history", rc);
        sq_done(s);
        free(ev);
        *n = 0;
        return rc;
    }
    sq_done(s);
    if (*n == 0) {
        free(ev);
        ev = NULL;
    }
    *out = ev;
    return FL_OK;
}

static int sq_sweep(fl_store *st, size_t *expired)
{
    sq *h = st->impl;
    sqlite3_stmt *s;
    int64_t now = 0;
    size_t count;
    int rc;

    if (expired != NULL)
        *expired = 0;
    rc = sq_now(st, h, "sweep", &now);
    if (rc != FL_OK)
        return rc;
    s = h->q[Q_ANY_LAPSED];
    sqlite3_bind_int64(s, 1, now);
    rc = sqlite3_step(s);
    sq_done(s);
    if (rc == SQLITE_DONE)
        return FL_OK;  /* nothing lapsed: no write lock taken */
    if (rc != SQLITE_ROW)
        return sq_fail(st, h, "sweep", rc);
    rc = sq_begin(st, h, "sweep", &now);
    if (rc != FL_OK)
        return rc;
    s = h->q[Q_SWEEP_HIST];
    sqlite3_bind_int64(s, 1, now);
    rc = sq_run(s);
    if (rc == SQLITE_OK) {
        s = h->q[Q_SWEEP_DEL];
        sqlite3_bind_int64(s, 1, now);
        rc = sq_run(s);
    }
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "sweep", rc);
    count = (size_t)sqlite3_changes64(h->db);
    rc = sq_commit(st, h, "sweep");
    if (rc == FL_OK && expired != NULL)
        *expired = count;
    return rc;
}

static int sq_now_op(fl_store *st, int64_t *now_ms)
{
    return sq_now(st, st->impl, "now", now_ms);
}

/*
 * SQLite has no notifications, but PRAGMA data_version changes when another
 * connection commits, and reading it costs a look at the WAL index in
 * shared memory, no I/O.  Polling it every 10 ms wakes a waiter within
 * ~10 ms of a release instead of at the end of its back-off.  Any commit
 * wakes it (not only its provider's): it then pays one read and sleeps on.
 */
static int sq_data_version(sq *h, int64_t *v)
{
    sqlite3_stmt *s = h->q[Q_DATA_VERSION];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    sq_done(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int sq_wait_change(fl_store *st, const char *provider, int64_t timeout_ms)
{
    sq *h = st->impl;
    (void)provider;
    int64_t deadline = fl__mono_ms() + timeout_ms, v0 = 0, v = 0;
    if (sq_data_version(h, &v0) != 0) {
        fl__sleep_ms(timeout_ms);
        return FL_OK;
    }
    for (;;) {
        int64_t left = deadline - fl__mono_ms();
        if (left <= 0)
            return FL_OK;
        fl__sleep_ms(left < 10 ? left : 10);
        if (sq_data_version(h, &v) != 0 || v != v0)
            return FL_OK;
    }
}

/* ---- isolation reports -------------------------------------------- */

static int sq_report_put(fl_store *st, const char *gateway, const fl_report *r,
                         const char *detail)
{
    sq *h = st->impl;
    int64_t now = 0;
    int rc = sq_begin(st, h, "report", &now);
    if (rc != FL_OK)
        return rc;
    sqlite3_stmt *s = h->q[Q_REPORT_PUT];
    sq_text(s, 1, r->provider);
    sqlite3_bind_int64(s, 2, r->fence);
    sq_text(s, 3, gateway);
    sqlite3_bind_int64(s, 4, r->foreign_in_flight_at_grant);
    sqlite3_bind_int64(s, 5, r->concurrent_foreign_requests);
    sqlite3_bind_int64(s, 6, r->foreign_refused);
    sqlite3_bind_int64(s, 7, r->foreign_cut_off);
    sqlite3_bind_int64(s, 8, r->holder_requests);
    sqlite3_bind_int(s, 9, r->final ? 1 : 0);
    sqlite3_bind_int64(s, 10, now);
    int src = sq_run(s);
    for (size_t i = 0; src == SQLITE_OK && i < r->n_writers; i++) {
        s = h->q[Q_REPORT_WRITER];
        sq_text(s, 1, r->provider);
        sqlite3_bind_int64(s, 2, r->fence);
        sq_text(s, 3, gateway);
        sq_text(s, 4, r->writers[i].writer);
        sqlite3_bind_int64(s, 5, r->writers[i].refused);
        src = sq_run(s);
    }
    if (src != SQLITE_OK)
        return sq_fail(st, h, "report", src);
    if (r->final) {
        rc = sq_history(st, h, "report", now, "isolation", r->provider, gateway,
                        "isolation report", FL_EXCLUSIVE, r->fence, 0, detail);
        if (rc != FL_OK)
            return rc;
    }
    return sq_commit(st, h, "report");
}

static int sq_report_get(fl_store *st, const char *provider, int64_t fence, fl_report *out)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[Q_REPORT_SUM];
    sq_text(s, 1, provider);
    sqlite3_bind_int64(s, 2, fence);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = sq_fail(st, h, "report", rc);
        sq_done(s);
        return rc;
    }
    out->gateways = sqlite3_column_int(s, 0);
    out->final = sqlite3_column_int(s, 1);
    out->foreign_in_flight_at_grant = sqlite3_column_int64(s, 2);
    out->concurrent_foreign_requests = sqlite3_column_int64(s, 3);
    out->foreign_refused = sqlite3_column_int64(s, 4);
    out->foreign_cut_off = sqlite3_column_int64(s, 5);
    out->holder_requests = sqlite3_column_int64(s, 6);
    out->updated_at_ms = sqlite3_column_int64(s, 7);
    sq_done(s);
    if (out->gateways == 0)
        return fl__store_err(st, FL_ENOTFOUND, "report: no gateway reported on %s fence %lld",
                             provider, (long long)fence);
    s = h->q[Q_REPORT_WRITERS];
    sq_text(s, 1, provider);
    sqlite3_bind_int64(s, 2, fence);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && out->n_writers < FL_REPORT_WRITERS) {
        const char *w = (const char *)sqlite3_column_text(s, 0);
        fl_report_writer *rw = &out->writers[out->n_writers];
        if (w && fl__copy(rw->writer, sizeof rw->writer, w) == FL_OK) {
            rw->refused = sqlite3_column_int64(s, 1);
            out->n_writers++;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = sq_fail(st, h, "report", rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    return FL_OK;
}

/* ---- schedules ------------------------------------------------------ */

static const char *sq_row_text(const fl__row *r, int col)
{
    return (const char *)sqlite3_column_text((sqlite3_stmt *)r->ctx, col);
}

static int64_t sq_row_i64(const fl__row *r, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)r->ctx, col);
}

/* Step s to the end, appending each row through read() into a growing
 * array of elem-sized structs. */
static int sq_collect(fl_store *st, sq *h, sqlite3_stmt *s, const char *what, size_t elem,
                      int (*read)(const fl__row *, void *), void **out, size_t *n)
{
    fl__row row = {.ctx = s, .text = sq_row_text, .i64 = sq_row_i64};
    size_t cap = 0;
    char *v = NULL;
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char *nv = realloc(v, ncap * elem);
            if (!nv) {
                free(v);
                sq_done(s);
                return sq_oom(st, h, what);
            }
            v = nv;
            cap = ncap;
        }
        if (read(&row, v + *n * elem) != 0) {
            free(v);
            sq_done(s);
            return sq_bad(st, h, what, SQ_MALFORMED);
        }
        (*n)++;
    }
    if (rc != SQLITE_DONE) {
        free(v);
        rc = sq_fail(st, h, what, rc);
        sq_done(s);
        return rc;
    }
    sq_done(s);
    *out = v;
    return FL_OK;
}

static int sq_sched_put(fl_store *st, const fl_schedule *x)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[Q_SCHED_PUT];
    sq_text(s, 1, x->name);
    sq_text(s, 2, x->cron);
    sq_text(s, 3, x->tz);
    sq_text(s, 4, x->providers);
    sq_text(s, 5, x->holder);
    sq_text(s, 6, x->purpose);
    sqlite3_bind_int64(s, 7, x->max_wait_ms);
    sqlite3_bind_int64(s, 8, x->max_run_ms);
    sqlite3_bind_int64(s, 9, x->ttl_ms);
    sq_text(s, 10, x->command);
    int rc = sq_run(s);
    return rc == SQLITE_OK ? FL_OK : sq_fail(st, h, "schedule", rc);
}

static int sq_sched_rm(fl_store *st, const char *name)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[Q_SCHED_RM];
    sq_text(s, 1, name);
    int rc = sq_run(s);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "schedule rm", rc);
    if (sqlite3_changes(h->db) == 0)
        return fl__store_err(st, FL_ENOTFOUND, "schedule rm: no schedule named %s", name);
    return FL_OK;
}

static int sq_sched_list(fl_store *st, fl_schedule **out, size_t *n)
{
    sq *h = st->impl;
    return sq_collect(st, h, h->q[Q_SCHED_LIST], "schedule list", sizeof **out, fl__row_schedule,
                      (void **)out, n);
}

static int sq_sched_claim(fl_store *st, const char *name, int64_t due_at_ms, const char *daemon,
                          int64_t *run_id)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[Q_SCHED_CLAIM];
    sq_text(s, 1, name);
    sqlite3_bind_int64(s, 2, due_at_ms);
    sq_text(s, 3, daemon);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s);
        sq_done(s);
        return rc == SQLITE_DONE ? FL_OK : sq_fail(st, h, "schedule claim", rc);
    }
    sq_done(s);
    if (rc == SQLITE_DONE)
        return fl__store_err(st, FL_ECONFLICT, "schedule claim: the run of %s due at %lld "
                             "was claimed already", name, (long long)due_at_ms);
    return sq_fail(st, h, "schedule claim", rc);
}

static int sq_sched_finish(fl_store *st, int64_t run_id, const fl_sched_run *r)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[Q_SCHED_FINISH];
    sqlite3_bind_int64(s, 1, run_id);
    sq_text(s, 2, r->outcome);
    sq_text(s, 3, r->provider);
    sqlite3_bind_int64(s, 4, r->fence);
    sqlite3_bind_int(s, 5, r->exit_status);
    sq_text(s, 6, r->detail);
    int rc = sq_run(s);
    if (rc != SQLITE_OK)
        return sq_fail(st, h, "schedule finish", rc);
    if (sqlite3_changes(h->db) == 0)
        return fl__store_err(st, FL_ENOTFOUND, "schedule finish: no run %lld", (long long)run_id);
    return FL_OK;
}

static int sq_sched_runs(fl_store *st, const char *name, size_t limit, fl_sched_run **out,
                         size_t *n)
{
    sq *h = st->impl;
    sqlite3_stmt *s = h->q[name ? Q_RUNS_ONE : Q_RUNS_ALL];
    if (name) {
        sq_text(s, 1, name);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    } else {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)limit);
    }
    return sq_collect(st, h, s, "schedule runs", sizeof **out, fl__row_run, (void **)out, n);
}

const fl__store_ops fl__sqlite_ops = {
    .kind = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .now = sq_now_op,
    .acquire = sq_acquire,
    .give_up = sq_give_up,
    .heartbeat = sq_heartbeat,
    .release = sq_release,
    .lookup = sq_lookup,
    .read_provider = sq_read_provider,
    .list = sq_list,
    .history = sq_history_op,
    .sweep = sq_sweep,
    .wait_change = sq_wait_change,
    .report_put = sq_report_put,
    .report_get = sq_report_get,
    .sched_put = sq_sched_put,
    .sched_rm = sq_sched_rm,
    .sched_list = sq_sched_list,
    .sched_claim = sq_sched_claim,
    .sched_finish = sq_sched_finish,
    .sched_runs = sq_sched_runs,
};
