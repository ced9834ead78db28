/*
 * lib/store/postgres.c -- the PostgreSQL store (libpq): one lease table for
 * a whole fleet.  Same semantics as sqlite.c; the conformance suite runs
 * unchanged against both.
 *
 * Shape of a call: exactly one round trip per operation.  Every statement
 * that carries input is prepared once per connection (lazily, on first use)
 * and run with PQsendQueryPrepared; the only plain-text statements are the
 * constant ones of the schema migration and LISTEN.  Results are awaited with poll() against a
 * client-side deadline, so a stopped server or a cut network cannot block a
 * call for longer than PG_CLIENT_TIMEOUT_MS (statement_timeout alone cannot
 * promise that: it needs a server that is running).
 *
 * Time: every statement reads the store's clock through fl_now_ms()
 * (clock_timestamp(), never now(): now() is the start of a transaction that
 * may have waited for a lock, case C02), evaluated once per statement in a
 * MATERIALIZED CTE so that one statement compares against one instant and
 * the index on (provider_id, expires_at) can be used.
 *
 * Acquire is the PL/pgSQL function fl_acquire() below (design.md section 3).
 * No lease state depends on the connection (case C08): a lost connection is
 * reported as FL_EUNAVAIL and the next call reconnects, with back-off.
 */
#include "store/store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* Server-side limit per statement, and the client-side deadline that also
 * covers a server that does not answer at all. */
#define PG_STATEMENT_TIMEOUT "5000"
#define PG_CLIENT_TIMEOUT_MS 6000
/* Reconnect attempts after a failure: 200 ms, doubling to 5 s. */
#define PG_BACKOFF_MIN_MS 200
#define PG_BACKOFF_MAX_MS 5000
/* pg_advisory_xact_lock key of the schema migration: "fleetlea" in ASCII. */
#define PG_MIGRATION_LOCK "7380385375772763489"
#define PG_CHANNEL "fleetlease"

/* ---- schema ------------------------------------------------------------ */

/*
 * Version 1: the tables of docs/design.md section 2, the clock and the
 * notification trigger (its fl_acquire() is replaced by version 4).  A later change to any function
 * body is a new version whose step runs CREATE OR REPLACE; steps run in one
 * transaction under the advisory lock, so many processes opening a fresh
 * database at once apply each step exactly once.
 */
static const char SCHEMA_V1[] =
    "CREATE TABLE IF NOT EXISTS fl_providers ("
    "  provider_id TEXT PRIMARY KEY,"
    "  fence BIGINT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS control_host_leases ("
    "  token TEXT PRIMARY KEY,"
    "  provider_id TEXT NOT NULL,"
    "  holder TEXT NOT NULL,"
    "  purpose TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),"
    "  state TEXT NOT NULL CHECK (state IN ('active', 'pending')),"
    "  fence BIGINT NOT NULL DEFAULT 0,"
    "  ttl_ms BIGINT NOT NULL,"
    "  acquired_at BIGINT NOT NULL,"
    "  heartbeat_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS control_host_leases_provider"
    "  ON control_host_leases (provider_id, expires_at);\n"
    "CREATE INDEX IF NOT EXISTS control_host_leases_expiry"
    "  ON control_host_leases (expires_at);\n"
    "CREATE TABLE IF NOT EXISTS control_host_lease_history ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  at BIGINT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  provider_id TEXT NOT NULL,"
    "  holder TEXT NOT NULL,"
    "  purpose TEXT NOT NULL,"
    "  mode TEXT NOT NULL,"
    "  fence BIGINT NOT NULL DEFAULT 0,"
    "  expires_at BIGINT NOT NULL DEFAULT 0,"
    "  detail TEXT NOT NULL DEFAULT '');\n"
    "CREATE INDEX IF NOT EXISTS control_host_lease_history_provider"
    "  ON control_host_lease_history (provider_id, id);\n"

    /* The store's clock in ms.  VOLATILE: a new reading at every call. */
    "CREATE OR REPLACE FUNCTION fl_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS\n"
    "$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;\n"

    /* Wake-ups for waiters (wait_change).  A trigger, so that no write path
     * can forget it; it fires on what can let a waiter in or keep it out
     * (a row appears, disappears, or changes state) and not on renewals or
     * refreshes of a pending intent, which change nothing a waiter could
     * act on.  NOTIFY folds equal payloads within a transaction: a sweep
     * of many rows sends one per provider. */
    "CREATE OR REPLACE FUNCTION fl_notify() RETURNS trigger LANGUAGE plpgsql AS\n"
    "$$ BEGIN\n"
    "  PERFORM pg_notify('" PG_CHANNEL "',"
    "    CASE TG_OP WHEN 'DELETE' THEN OLD.provider_id ELSE NEW.provider_id END);\n"
    "  RETURN NULL;\n"
    "END $$;\n"
    "DROP TRIGGER IF EXISTS control_host_leases_notify ON control_host_leases;\n"
    "CREATE TRIGGER control_host_leases_notify"
    "  AFTER INSERT OR DELETE OR UPDATE OF state ON control_host_leases"
    "  FOR EACH ROW EXECUTE FUNCTION fl_notify();\n";


/* Version 2: isolation reports, per grant and gateway (lib/report.c). */
static const char SCHEMA_V2[] =
    "CREATE TABLE IF NOT EXISTS control_host_lease_reports ("
    "  provider_id TEXT NOT NULL, fence BIGINT NOT NULL, gateway TEXT NOT NULL,"
    "  foreign_in_flight_at_grant BIGINT NOT NULL DEFAULT 0,"
    "  concurrent_foreign BIGINT NOT NULL DEFAULT 0,"
    "  foreign_refused BIGINT NOT NULL DEFAULT 0,"
    "  foreign_cut_off BIGINT NOT NULL DEFAULT 0,"
    "  holder_requests BIGINT NOT NULL DEFAULT 0,"
    "  final INTEGER NOT NULL DEFAULT 0,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (provider_id, fence, gateway));\n"
    "CREATE TABLE IF NOT EXISTS control_host_lease_report_refusals ("
    "  provider_id TEXT NOT NULL, fence BIGINT NOT NULL, gateway TEXT NOT NULL,"
    "  writer TEXT NOT NULL, refused BIGINT NOT NULL,"
    "  PRIMARY KEY (provider_id, fence, gateway, writer));\n";

/* Version 3: schedules and their runs (lib/sched.c). */
static const char SCHEMA_V3[] =
    "CREATE TABLE IF NOT EXISTS fl_schedules ("
    "  name TEXT PRIMARY KEY, cron TEXT NOT NULL, tz TEXT NOT NULL, providers TEXT NOT NULL,"
    "  holder TEXT NOT NULL, purpose TEXT NOT NULL, max_wait_ms BIGINT NOT NULL,"
    "  max_run_ms BIGINT NOT NULL, ttl_ms BIGINT NOT NULL, command TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS fl_schedule_runs ("
    "  id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, due_at BIGINT NOT NULL,"
    "  claimed_by TEXT NOT NULL, outcome TEXT NOT NULL, started_at BIGINT NOT NULL,"
    "  ended_at BIGINT NOT NULL DEFAULT 0, provider_id TEXT NOT NULL DEFAULT '',"
    "  fence BIGINT NOT NULL DEFAULT 0, exit_status INTEGER NOT NULL DEFAULT -1,"
    "  detail TEXT NOT NULL DEFAULT '', UNIQUE (name, due_at));\n"
    "CREATE INDEX IF NOT EXISTS fl_schedule_runs_name ON fl_schedule_runs (name, id);\n";

/* Version 4: fl_acquire() (it replaced the version-1 body: a grant now
 * re-reads the clock after its reads; see the comment inside). */
static const char SCHEMA_V4[] =
    /*
     * One acquire attempt (docs/design.md section 3).  VOLATILE, so under
     * READ COMMITTED every statement below takes a fresh snapshot.
     *   pass 1: a plain read and the decision; REFUSE returns here, having
     *           written nothing and without a transaction id, so a refusal
     *           costs a read and no flushed commit.
     *   lock:   the provider's row in fl_providers FOR UPDATE (created if
     *           missing); every deciding attempt on a provider queues here.
     *   pass 2: delete the provider's lapsed rows (history 'expired'), then
     *           read and decide again in NEW statements, whose snapshot is
     *           taken after the lock was granted and so includes everything
     *           the previous lock holder committed.  (A CTE beside an upsert
     *           would decide on the snapshot from before the wait.)
     * Both passes use one reading of the clock for delete and read, so a
     * row is either deleted as lapsed or read as live, never neither.  A
     * write re-reads the clock after its reads: renew and release do not
     * take the provider's lock, so one may commit between our clock read
     * and our row read, and a grant stamped with the earlier reading would
     * appear in history before the release it followed.
     * The scan and the decision mirror scan_rows() and fl__decide() in
     * lib/core/decide.c exactly; change both together.
     */
    "CREATE OR REPLACE FUNCTION fl_acquire(\n"
    "  p_provider text, p_holder text, p_purpose text, p_mode text, p_ttl_ms bigint,\n"
    "  p_token text, p_may_pend boolean, p_pending_ttl_ms bigint,\n"
    "  OUT outcome text, OUT pstate text, OUT shared_count integer, OUT now_ms bigint,\n"
    "  OUT l_fence bigint, OUT l_acquired_at bigint, OUT l_heartbeat_at bigint,\n"
    "  OUT l_expires_at bigint,\n"
    "  OUT b_provider_id text, OUT b_holder text, OUT b_purpose text, OUT b_mode text,\n"
    "  OUT b_state text, OUT b_fence bigint, OUT b_ttl_ms bigint, OUT b_acquired_at bigint,\n"
    "  OUT b_heartbeat_at bigint, OUT b_expires_at bigint)\n"
    "LANGUAGE plpgsql VOLATILE AS $fn$\n"
    "DECLARE\n"
    "  r control_host_leases%ROWTYPE;\n"
    "  v_excl control_host_leases%ROWTYPE;\n"
    "  v_pend control_host_leases%ROWTYPE;\n"
    "  v_mine control_host_leases%ROWTYPE;\n"
    "  v_shared control_host_leases%ROWTYPE;\n"
    "  v_b control_host_leases%ROWTYPE;\n"
    "  v_fence bigint;\n"
    "  v_locked boolean := false;\n"
    "BEGIN\n"
    "  LOOP\n"
    "    now_ms := fl_now_ms();\n"
    "    IF v_locked THEN\n"
    "      WITH d AS (DELETE FROM control_host_leases\n"
    "                 WHERE provider_id = p_provider AND expires_at <= now_ms RETURNING *)\n"
    "      INSERT INTO control_host_lease_history\n"
    "        (at, event, provider_id, holder, purpose, mode, fence, expires_at)\n"
    "      SELECT now_ms, 'expired', d.provider_id, d.holder, d.purpose, d.mode, d.fence,\n"
    "             d.expires_at\n"
    "      FROM d ORDER BY d.expires_at, d.token;\n"
    "    END IF;\n"
    /* scan_rows() */
    "    v_excl := NULL; v_pend := NULL; v_mine := NULL; v_shared := NULL;\n"
    "    shared_count := 0;\n"
    "    FOR r IN SELECT * FROM control_host_leases\n"
    "             WHERE provider_id = p_provider AND expires_at > now_ms\n"
    "             ORDER BY acquired_at, token LOOP\n"
    "      IF r.state = 'pending' THEN\n"
    "        IF v_pend.token IS NULL OR r.acquired_at < v_pend.acquired_at THEN\n"
    "          v_pend := r;\n"
    "        END IF;\n"
    "        IF v_mine.token IS NULL AND r.token = p_token THEN v_mine := r; END IF;\n"
    "      ELSIF r.mode = 'exclusive' THEN\n"
    "        IF v_excl.token IS NULL OR r.expires_at > v_excl.expires_at THEN\n"
    "          v_excl := r;\n"
    "        END IF;\n"
    "      ELSE\n"
    "        shared_count := shared_count + 1;\n"
    "        IF v_shared.token IS NULL OR r.expires_at > v_shared.expires_at THEN\n"
    "          v_shared := r;\n"
    "        END IF;\n"
    "      END IF;\n"
    "    END LOOP;\n"
    /* fl__decide() */
    "    v_b := NULL;\n"
    "    IF p_mode <> 'exclusive' THEN\n"
    "      IF v_excl.token IS NOT NULL THEN\n"
    "        outcome := 'refuse'; pstate := 'exclusive'; v_b := v_excl;\n"
    "      ELSIF v_pend.token IS NOT NULL THEN\n"
    "        outcome := 'refuse'; pstate := 'draining'; v_b := v_pend;\n"
    "      ELSE\n"
    "        outcome := 'grant';\n"
    "        pstate := CASE WHEN shared_count > 0 THEN 'shared' ELSE 'free' END;\n"
    "      END IF;\n"
    "    ELSIF v_pend.token IS NOT NULL AND v_pend.token IS DISTINCT FROM v_mine.token THEN\n"
    "      outcome := 'refuse'; pstate := 'draining'; v_b := v_pend;\n"
    "    ELSIF v_excl.token IS NOT NULL THEN\n"
    "      outcome := CASE WHEN p_may_pend THEN 'pend' ELSE 'refuse' END;\n"
    "      pstate := 'exclusive'; v_b := v_excl;\n"
    "    ELSIF shared_count > 0 THEN\n"
    "      outcome := CASE WHEN p_may_pend THEN 'pend' ELSE 'refuse' END;\n"
    "      pstate := 'shared'; v_b := v_shared;\n"
    "    ELSE\n"
    "      outcome := CASE WHEN v_mine.token IS NULL THEN 'grant' ELSE 'promote' END;\n"
    "      pstate := 'free';\n"
    "    END IF;\n"
    "    EXIT WHEN outcome = 'refuse' OR v_locked;\n"
    /* My intent is registered and fresh enough: refreshing it on every
     * poll would make each poll a durable commit (as in sqlite.c). */
    "    IF outcome = 'pend' AND v_mine.token IS NOT NULL\n"
    "       AND v_mine.expires_at - now_ms > p_pending_ttl_ms / 2 THEN\n"
    "      EXIT;\n"
    "    END IF;\n"
    "    SELECT fence INTO v_fence FROM fl_providers WHERE provider_id = p_provider FOR UPDATE;\n"
    "    IF NOT FOUND THEN\n"
    "      INSERT INTO fl_providers (provider_id, fence) VALUES (p_provider, 0)\n"
    "        ON CONFLICT DO NOTHING;\n"
    "      SELECT fence INTO v_fence FROM fl_providers WHERE provider_id = p_provider\n"
    "        FOR UPDATE;\n"
    "    END IF;\n"
    "    v_locked := true;\n"
    "  END LOOP;\n"
    "  IF v_locked THEN\n"
    "    now_ms := greatest(now_ms, fl_now_ms());\n"
    "  END IF;\n"
    "  b_provider_id := v_b.provider_id; b_holder := v_b.holder; b_purpose := v_b.purpose;\n"
    "  b_mode := v_b.mode; b_state := v_b.state; b_fence := v_b.fence;\n"
    "  b_ttl_ms := v_b.ttl_ms; b_acquired_at := v_b.acquired_at;\n"
    "  b_heartbeat_at := v_b.heartbeat_at; b_expires_at := v_b.expires_at;\n"
    "  IF outcome = 'refuse' THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  IF outcome = 'pend' AND NOT v_locked THEN\n"
    "    l_fence := 0; l_acquired_at := v_mine.acquired_at;\n"
    "    l_heartbeat_at := v_mine.heartbeat_at; l_expires_at := v_mine.expires_at;\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  IF outcome = 'pend' THEN\n"
    "    l_fence := 0; l_heartbeat_at := now_ms; l_expires_at := now_ms + p_pending_ttl_ms;\n"
    "    IF v_mine.token IS NULL THEN\n"
    "      l_acquired_at := now_ms;\n"
    "      INSERT INTO control_host_leases (token, provider_id, holder, purpose, mode, state,\n"
    "        fence, ttl_ms, acquired_at, heartbeat_at, expires_at)\n"
    "      VALUES (p_token, p_provider, p_holder, p_purpose, 'exclusive', 'pending', 0,\n"
    "        p_ttl_ms, now_ms, now_ms, l_expires_at);\n"
    "      INSERT INTO control_host_lease_history (at, event, provider_id, holder, purpose,\n"
    "        mode, expires_at)\n"
    "      VALUES (now_ms, 'pending', p_provider, p_holder, p_purpose, 'exclusive',\n"
    "        l_expires_at);\n"
    "    ELSE\n"
    "      l_acquired_at := v_mine.acquired_at; l_heartbeat_at := v_mine.heartbeat_at;\n"
    "      UPDATE control_host_leases SET expires_at = l_expires_at WHERE token = p_token;\n"
    "    END IF;\n"
    "    RETURN;\n"
    "  END IF;\n"
    /* grant or promote.  The fence never falls below the clock (case C12). */
    "  l_fence := greatest(v_fence + 1, now_ms);\n"
    "  l_acquired_at := now_ms; l_heartbeat_at := now_ms; l_expires_at := now_ms + p_ttl_ms;\n"
    "  UPDATE fl_providers SET fence = l_fence WHERE provider_id = p_provider;\n"
    "  IF outcome = 'promote' THEN\n"
    "    UPDATE control_host_leases SET state = 'active', fence = l_fence, holder = p_holder,\n"
    "      purpose = p_purpose, ttl_ms = p_ttl_ms, acquired_at = now_ms,\n"
    "      heartbeat_at = now_ms, expires_at = l_expires_at\n"
    "    WHERE token = p_token;\n"
    "  ELSE\n"
    "    INSERT INTO control_host_leases (token, provider_id, holder, purpose, mode, state,\n"
    "      fence, ttl_ms, acquired_at, heartbeat_at, expires_at)\n"
    "    VALUES (p_token, p_provider, p_holder, p_purpose, p_mode, 'active', l_fence,\n"
    "      p_ttl_ms, now_ms, now_ms, l_expires_at);\n"
    "  END IF;\n"
    "  INSERT INTO control_host_lease_history (at, event, provider_id, holder, purpose, mode,\n"
    "    fence, expires_at)\n"
    "  VALUES (now_ms, 'granted', p_provider, p_holder, p_purpose, p_mode, l_fence,\n"
    "    l_expires_at);\n"
    "END\n"
    "$fn$;\n";

static const struct {
    int version;
    const char *sql;
} migrations[] = {
    {1, SCHEMA_V1},
    {2, SCHEMA_V2},
    {3, SCHEMA_V3},
    {4, SCHEMA_V4},
};

/* ---- statements ---------------------------------------------------------- */

/* The lease columns every reading statement returns, in this order (see
 * row_lease); prefixed by the token where the caller may see it. */
#define LEASE_COLS "provider_id, holder, purpose, mode, state, fence, ttl_ms, " \
                   "acquired_at, heartbeat_at, expires_at"
#define NOW_CTE "WITH n AS MATERIALIZED (SELECT fl_now_ms() AS now) "

enum {
    Q_NOW,
    Q_ACQUIRE,
    Q_GIVE_UP,
    Q_HEARTBEAT,
    Q_RELEASE,
    Q_READ,
    Q_LIST_ALL,
    Q_LIST_ONE,
    Q_HISTORY_ALL,
    Q_HISTORY_ONE,
    Q_SWEEP,
    Q_REPORT_PUT,
    Q_REPORT_SUM,
    Q_LOOKUP,
    Q_SCHED_PUT,
    Q_SCHED_RM,
    Q_SCHED_LIST,
    Q_SCHED_CLAIM,
    Q_SCHED_FINISH,
    Q_RUNS_ALL,
    Q_RUNS_ONE,
    Q_REPORT_WRITERS,
    Q_COUNT
};

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} stmts[Q_COUNT] = {
    [Q_NOW] = {"fl_now", 0, "SELECT fl_now_ms()"},
    [Q_ACQUIRE] = {"fl_acquire", 8,
        "SELECT * FROM fl_acquire($1::text, $2::text, $3::text, $4::text, $5::bigint,"
        " $6::text, $7::boolean, $8::bigint)"},
    /* 'refused' is an audit row of something that did not happen: not worth
     * a flushed commit, so this transaction commits asynchronously
     * (set_config(..., true) lasts until the end of the statement's
     * implicit transaction, i.e. its commit).  Losing it in a server crash
     * also un-deletes the pending intent, which then lapses on its own. */
    [Q_GIVE_UP] = {"fl_give_up", 6,
        "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true),"
        "                               fl_now_ms() AS now),"
        " d AS (DELETE FROM control_host_leases WHERE token = $1::text AND state = 'pending')"
        " INSERT INTO control_host_lease_history (at, event, provider_id, holder, purpose,"
        "   mode, detail)"
        " SELECT s.now, 'refused', $2::text, $3::text, $4::text, $5::text, $6::text FROM s"},
    /* A conditional UPDATE that never inserts (C04, C05).  The second
     * branch reads the statement's snapshot: a row still there but lapsed
     * is 'expired'; no row at all is not found. */
    [Q_HEARTBEAT] = {"fl_heartbeat", 1,
        NOW_CTE
        ", u AS (UPDATE control_host_leases l"
        "        SET heartbeat_at = n.now, expires_at = n.now + l.ttl_ms FROM n"
        "        WHERE l.token = $1::text AND l.state = 'active' AND l.expires_at > n.now"
        "        RETURNING l.*),"
        " h AS (INSERT INTO control_host_lease_history"
        "         (at, event, provider_id, holder, purpose, mode, fence, expires_at)"
        "       SELECT u.heartbeat_at, 'renewed', u.provider_id, u.holder, u.purpose, u.mode,"
        "              u.fence, u.expires_at FROM u)"
        " SELECT 'renewed', " LEASE_COLS ", n.now FROM u, n"
        " UNION ALL"
        " SELECT 'expired', " LEASE_COLS ", n.now FROM control_host_leases l, n"
        " WHERE l.token = $1::text AND l.state = 'active' AND l.expires_at <= n.now"},
    /* Only the lease named by the token, and only while live (C06). */
    [Q_RELEASE] = {"fl_release", 1,
        NOW_CTE
        ", d AS (DELETE FROM control_host_leases l USING n"
        "        WHERE l.token = $1::text AND l.state = 'active' AND l.expires_at > n.now"
        "        RETURNING l.*, n.now),"
        " h AS (INSERT INTO control_host_lease_history"
        "         (at, event, provider_id, holder, purpose, mode, fence, expires_at)"
        "       SELECT d.now, 'released', d.provider_id, d.holder, d.purpose, d.mode, d.fence,"
        "              d.expires_at FROM d)"
        " SELECT 'released', d.provider_id, d.expires_at, d.now FROM d"
        " UNION ALL"
        " SELECT 'expired', l.provider_id, l.expires_at, n.now FROM control_host_leases l, n"
        " WHERE l.token = $1::text AND l.state = 'active' AND l.expires_at <= n.now"},
    /* The hot read of check: one index range scan on (provider_id,
     * expires_at).  The LEFT JOIN returns the clock even when no row is
     * live. */
    [Q_READ] = {"fl_read", 1,
        NOW_CTE
        "SELECT n.now, l.token, l.provider_id, l.holder, l.purpose, l.mode, l.state, l.fence,"
        "       l.ttl_ms, l.acquired_at, l.heartbeat_at, l.expires_at"
        " FROM n LEFT JOIN control_host_leases l"
        "   ON l.provider_id = $1::text AND l.expires_at > n.now"
        " ORDER BY l.acquired_at, l.token"},
    [Q_LIST_ALL] = {"fl_list_all", 0,
        NOW_CTE "SELECT " LEASE_COLS " FROM control_host_leases l, n"
        " WHERE l.expires_at > n.now ORDER BY provider_id, acquired_at, token"},
    [Q_LIST_ONE] = {"fl_list_one", 1,
        NOW_CTE "SELECT " LEASE_COLS " FROM control_host_leases l, n"
        " WHERE l.provider_id = $1::text AND l.expires_at > n.now"
        " ORDER BY acquired_at, token"},
    /* Newest first: the primary key, or (provider_id, id). */
    [Q_HISTORY_ALL] = {"fl_history_all", 1,
        "SELECT id, at, event, provider_id, holder, purpose, mode, fence, expires_at, detail"
        " FROM control_host_lease_history ORDER BY id DESC LIMIT $1::bigint"},
    [Q_HISTORY_ONE] = {"fl_history_one", 2,
        "SELECT id, at, event, provider_id, holder, purpose, mode, fence, expires_at, detail"
        " FROM control_host_lease_history WHERE provider_id = $1::text"
        " ORDER BY id DESC LIMIT $2::bigint"},
    /* The expiry test is part of the DELETE itself (C07). */
    [Q_SWEEP] = {"fl_sweep", 0,
        NOW_CTE
        ", d AS (DELETE FROM control_host_leases l USING n WHERE l.expires_at <= n.now"
        "        RETURNING l.*, n.now)"
        " INSERT INTO control_host_lease_history"
        "   (at, event, provider_id, holder, purpose, mode, fence, expires_at)"
        " SELECT d.now, 'expired', d.provider_id, d.holder, d.purpose, d.mode, d.fence,"
        "        d.expires_at FROM d ORDER BY d.provider_id, d.expires_at, d.token"},
    /* One gateway's counters, its writers' refusals (two parallel arrays)
     * and, when final, the history row: one statement, one commit. */
    [Q_REPORT_PUT] = {"fl_report_put", 12,
        NOW_CTE
        ", m AS (INSERT INTO control_host_lease_reports (provider_id, fence, gateway,"
        "          foreign_in_flight_at_grant, concurrent_foreign, foreign_refused,"
        "          foreign_cut_off, holder_requests, final, updated_at)"
        "        SELECT $1::text, $2::bigint, $3::text, $4::bigint, $5::bigint, $6::bigint,"
        "               $7::bigint, $8::bigint, $9::int, n.now FROM n"
        "        ON CONFLICT (provider_id, fence, gateway) DO UPDATE SET"
        "          foreign_in_flight_at_grant = excluded.foreign_in_flight_at_grant,"
        "          concurrent_foreign = excluded.concurrent_foreign,"
        "          foreign_refused = excluded.foreign_refused,"
        "          foreign_cut_off = excluded.foreign_cut_off,"
        "          holder_requests = excluded.holder_requests,"
        "          final = excluded.final, updated_at = excluded.updated_at),"
        " w AS (INSERT INTO control_host_lease_report_refusals"
        "         (provider_id, fence, gateway, writer, refused)"
        "       SELECT $1::text, $2::bigint, $3::text, u.w, u.c"
        "       FROM unnest($10::text[], $11::bigint[]) AS u(w, c)"
        "       ON CONFLICT (provider_id, fence, gateway, writer)"
        "       DO UPDATE SET refused = excluded.refused)"
        " INSERT INTO control_host_lease_history"
        "   (at, event, provider_id, holder, purpose, mode, fence, expires_at, detail)"
        " SELECT n.now, 'isolation', $1::text, $3::text, 'isolation report', 'exclusive',"
        "        $2::bigint, 0, $12::text FROM n WHERE $9::int = 1"},
    /* The active row of a token, live or lapsed, and the clock. */
    [Q_LOOKUP] = {"fl_lookup", 1,
        NOW_CTE
        "SELECT n.now, l.token, l.provider_id, l.holder, l.purpose, l.mode, l.state, l.fence,"
        "       l.ttl_ms, l.acquired_at, l.heartbeat_at, l.expires_at"
        " FROM n LEFT JOIN control_host_leases l ON l.token = $1::text AND l.state = 'active'"},
    [Q_SCHED_PUT] = {"fl_sched_put", 10,
        "INSERT INTO fl_schedules (" FL__SCHED_COLS ")"
        " VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint,"
        "         $8::bigint, $9::bigint, $10::text, fl_now_ms())"
        " ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz,"
        " providers = excluded.providers, holder = excluded.holder, purpose = excluded.purpose,"
        " max_wait_ms = excluded.max_wait_ms, max_run_ms = excluded.max_run_ms,"
        " ttl_ms = excluded.ttl_ms, command = excluded.command"},
    [Q_SCHED_RM] = {"fl_sched_rm", 1, "DELETE FROM fl_schedules WHERE name = $1::text"},
    [Q_SCHED_LIST] = {"fl_sched_list", 0,
        "SELECT " FL__SCHED_COLS " FROM fl_schedules ORDER BY name"},
    /* Exactly once per (name, due_at): the UNIQUE constraint decides, and a
     * concurrent claimer waits for the first one's commit, then skips. */
    [Q_SCHED_CLAIM] = {"fl_sched_claim", 3,
        "INSERT INTO fl_schedule_runs (name, due_at, claimed_by, outcome, started_at)"
        " VALUES ($1::text, $2::bigint, $3::text, 'running', fl_now_ms())"
        " ON CONFLICT (name, due_at) DO NOTHING RETURNING id"},
    [Q_SCHED_FINISH] = {"fl_sched_finish", 6,
        "UPDATE fl_schedule_runs SET outcome = $2::text, ended_at = fl_now_ms(),"
        " provider_id = $3::text, fence = $4::bigint, exit_status = $5::int, detail = $6::text"
        " WHERE id = $1::bigint"},
    [Q_RUNS_ALL] = {"fl_runs_all", 1,
        "SELECT " FL__RUN_COLS " FROM fl_schedule_runs ORDER BY id DESC LIMIT $1::bigint"},
    [Q_RUNS_ONE] = {"fl_runs_one", 2,
        "SELECT " FL__RUN_COLS " FROM fl_schedule_runs WHERE name = $1::text"
        " ORDER BY id DESC LIMIT $2::bigint"},
    [Q_REPORT_SUM] = {"fl_report_sum", 2,
        "SELECT count(*), coalesce(min(final), 0), coalesce(sum(foreign_in_flight_at_grant), 0),"
        "       coalesce(sum(concurrent_foreign), 0), coalesce(sum(foreign_refused), 0),"
        "       coalesce(sum(foreign_cut_off), 0), coalesce(sum(holder_requests), 0),"
        "       coalesce(max(updated_at), 0)"
        " FROM control_host_lease_reports WHERE provider_id = $1::text AND fence = $2::bigint"},
    [Q_REPORT_WRITERS] = {"fl_report_writers", 2,
        "SELECT writer, sum(refused) FROM control_host_lease_report_refusals"
        " WHERE provider_id = $1::text AND fence = $2::bigint"
        " GROUP BY writer ORDER BY 2 DESC, 1 LIMIT 16"},
};

/* ---- connection -------------------------------------------------------- */

typedef struct pg {
    char *url;             /* as given: libpq parses it on every connect */
    PGconn *conn;          /* NULL: not connected; the next call connects */
    unsigned prepared;     /* bit q: stmts[q] is prepared on conn */
    int listening;         /* LISTEN issued on conn */
    int schema_ok;         /* the migration ran (once per handle) */
    int64_t retry_at_ms;   /* CLOCK_MONOTONIC: no connect attempt before this */
    int64_t backoff_ms;    /* wait after the next failed attempt */
    char why[512];         /* the last connection failure, for messages */
    char sqlstate[6];      /* of the last FL_ESTORE answer */
} pg;

/* libpq messages span lines ("...failed: Connection refused\n\tIs the
 * server running..."): the first line says what happened, the rest are
 * hints and DETAIL.  Runs of blanks become one space. */
static void one_line(const char *in, char *out, size_t cap)
{
    size_t j = 0;
    int space = 0;
    for (const char *s = in ? in : ""; *s && j + 1 < cap; s++) {
        if ((*s == '\n' || *s == '\r') && j > 0)
            break;
        if (*s == '\n' || *s == '\r' || *s == '\t' || *s == ' ') {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < cap)
            out[j++] = ' ';
        space = 0;
        out[j++] = *s;
    }
    out[j] = '\0';
}

/* NOTICEs ("relation already exists, skipping") are not the user's business;
 * libpq's default prints them on stderr. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Forget the connection; the next call reconnects at once, later failures
 * back off. */
static void drop_conn(pg *p)
{
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    p->prepared = 0;
    p->listening = 0;
}

static int unavailable(fl_store *st, const char *what, const char *why)
{
    return fl__store_err(st, FL_EUNAVAIL, "store unreachable: %s: %s: %s",
                         fl_store_display(st), what, why);
}

static int connect_now(fl_store *st, pg *p)
{
    int64_t now = fl__mono_ms();
    if (now < p->retry_at_ms)
        return fl__store_err(st, FL_EUNAVAIL,
                             "store unreachable: %s: connect: %s (next attempt in %lld ms)",
                             fl_store_display(st), p->why, (long long)(p->retry_at_ms - now));
    /* Defaults first: expand_dbname lets the URL's own settings override
     * them (a pooler that rejects the options startup parameter can be
     * given "options=" in the URL; the client deadline still holds).
     * Holder and purpose are validated as UTF-8: they travel as UTF-8
     * whatever the server's encoding.
     * Keepalives notice a dead peer while idle (LISTEN waits); the client
     * deadline covers a dead peer during a call. */
    static const char *const keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "options", "client_encoding", "fallback_application_name",
        "dbname", NULL};
    const char *vals[] = {
        "3", "1", "10", "5", "3", "-c statement_timeout=" PG_STATEMENT_TIMEOUT,
        "UTF8", "fleetlease", p->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c)
        return fl__store_err(st, FL_ENOMEM, "out of memory (connecting to %s)",
                             fl_store_display(st));
    if (PQstatus(c) != CONNECTION_OK) {
        one_line(PQerrorMessage(c), p->why, sizeof p->why);
        PQfinish(c);
        p->retry_at_ms = fl__mono_ms() + p->backoff_ms;
        p->backoff_ms = p->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
                                                              : p->backoff_ms * 2;
        return unavailable(st, "connect", p->why);
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    p->conn = c;
    p->prepared = 0;
    p->listening = 0;
    p->backoff_ms = PG_BACKOFF_MIN_MS;
    p->why[0] = '\0';
    return FL_OK;
}

/*
 * Collect the results of what was just sent, waiting at most
 * PG_CLIENT_TIMEOUT_MS.  Returns the first error result, else the last
 * result; NULL if the connection broke or the deadline passed (*late).
 */
static PGresult *await(PGconn *c, int *late)
{
    int64_t deadline = fl__mono_ms() + PG_CLIENT_TIMEOUT_MS;
    PGresult *keep = NULL;
    *late = 0;
    for (;;) {
        while (PQisBusy(c)) {
            int64_t left = deadline - fl__mono_ms();
            if (left <= 0) {
                *late = 1;
                PQclear(keep);
                return NULL;
            }
            struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
            int n = poll(&pfd, 1, (int)left);
            if (n < 0 && errno != EINTR) {
                PQclear(keep);
                return NULL;
            }
            if (n > 0 && !PQconsumeInput(c)) {
                PQclear(keep);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(c);
        if (!r)
            return keep;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
}

/*
 * Does this failure mean the store is unreachable (retryable, FL_EUNAVAIL)
 * rather than an answer (FL_ESTORE)?  *gone: the connection is unusable.
 */
static int unreachable(PGconn *c, const PGresult *r, int *gone)
{
    *gone = 1;
    if (!r || PQstatus(c) != CONNECTION_OK)
        return 1;
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* No SQLSTATE: libpq's own error (the server closed the connection). */
    if (!code || strncmp(code, "08", 2) == 0 || strcmp(code, "57P01") == 0 ||
        strcmp(code, "57P02") == 0 || strcmp(code, "57P03") == 0)
        return 1;
    *gone = 0;
    /* The server is up but busy past our limits: statement timeout, lock
     * timeout, out of resources.  Worth retrying; not a wrong statement. */
    return strcmp(code, "57014") == 0 || strcmp(code, "55P03") == 0 ||
           strncmp(code, "53", 2) == 0 || strcmp(code, "40001") == 0 ||
           strcmp(code, "40P01") == 0;
}

/*
 * Await what was sent (sent = the PQsend* result) and classify the outcome.
 * On FL_OK *out holds a TUPLES_OK or COMMAND_OK result (caller clears).
 */
static int finish(fl_store *st, pg *p, const char *what, int sent, PGresult **out)
{
    int late = 0, gone = 0;
    PGresult *r = sent ? await(p->conn, &late) : NULL;
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    *out = NULL;
    if (r && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)) {
        *out = r;
        return FL_OK;
    }
    char why[512];
    if (late)
        snprintf(why, sizeof why, "no answer within %d ms", PG_CLIENT_TIMEOUT_MS);
    else
        one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn), why, sizeof why);
    int rc;
    if (late || unreachable(p->conn, r, &gone)) {
        /* A late answer would arrive in the middle of the next call:
         * the connection is unusable, like one that broke. */
        if (late || gone)
            drop_conn(p);
        rc = unavailable(st, what, why);
    } else {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!code || fl__copy(p->sqlstate, sizeof p->sqlstate, code) != FL_OK)
            p->sqlstate[0] = '\0';
        rc = fl__store_err(st, FL_ESTORE, "store error: %s: %s: %s", fl_store_display(st),
                           what, why);
    }
    PQclear(r);
    return rc;
}

/* A constant statement without parameters (DDL, LISTEN); one round trip. */
static int simple(fl_store *st, pg *p, const char *what, const char *sql)
{
    PGresult *r;
    int rc = finish(st, p, what, PQsendQuery(p->conn, sql), &r);
    PQclear(r);
    return rc;
}

/*
 * Consume every queued notification; 1 if one was for `provider` (NULL:
 * none matches).  libpq queues notifications without bound until they are
 * consumed, so run() discards those that arrived before each statement is
 * sent: the statement's own snapshot already includes the commits they
 * announce.  Only those that arrive during and after it can mean a change
 * the caller has not seen, and wait_change looks at exactly those.
 */
static int drain_notifies(PGconn *c, const char *provider)
{
    int hit = 0;
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
        if (provider && n->extra && strcmp(n->extra, provider) == 0)
            hit = 1;
        PQfreemem(n);
    }
    return hit;
}

static int migrate(fl_store *st, pg *p);

/* Run stmts[q], connecting (and migrating) and preparing first where
 * needed. */
static int run(fl_store *st, const char *what, int q, const char *const *params,
               PGresult **out)
{
    pg *p = st->impl;
    int rc;
    *out = NULL;
    if (!p->conn && (rc = connect_now(st, p)) != FL_OK)
        return rc;
    if (!p->schema_ok && (rc = migrate(st, p)) != FL_OK)
        return rc;
    if (!(p->prepared & (1u << q))) {
        PGresult *r;
        rc = finish(st, p, what,
                    PQsendPrepare(p->conn, stmts[q].name, stmts[q].sql, stmts[q].nparams, NULL),
                    &r);
        PQclear(r);
        if (rc != FL_OK)
            return rc;
        p->prepared |= 1u << q;
    }
    if (p->listening && PQconsumeInput(p->conn))
        drain_notifies(p->conn, NULL);
    return finish(st, p, what,
                  PQsendQueryPrepared(p->conn, stmts[q].name, stmts[q].nparams, params, NULL,
                                      NULL, 0),
                  out);
}

/*
 * Create or migrate the schema.  The common case, an up-to-date schema, is
 * one read without any lock.  Otherwise one transaction under an advisory
 * lock re-reads the version and applies the missing steps: concurrent
 * CREATE ... IF NOT EXISTS is not safe by itself (two sessions can both
 * decide to create), the lock makes it so.
 */
static int migrate(fl_store *st, pg *p)
{
    const int latest = migrations[sizeof migrations / sizeof migrations[0] - 1].version;
    PGresult *r;
    int rc = finish(st, p, "schema check",
                    PQsendQuery(p->conn, "SELECT coalesce(max(version), 0) FROM fl_schema_version"),
                    &r);
    if (rc == FL_OK) {
        int have = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (have >= latest) {
            p->schema_ok = 1;
            return FL_OK;
        }
    } else if (rc != FL_ESTORE || strcmp(p->sqlstate, "42P01") != 0) {
        return rc;  /* anything but "no such table yet" */
    }

    rc = simple(st, p, "schema migration",
                "BEGIN; SELECT pg_advisory_xact_lock(" PG_MIGRATION_LOCK ");"
                "CREATE TABLE IF NOT EXISTS fl_schema_version ("
                "  version INTEGER NOT NULL, applied_at BIGINT NOT NULL)");
    if (rc != FL_OK)
        goto rollback;
    rc = finish(st, p, "schema migration",
                PQsendQuery(p->conn, "SELECT coalesce(max(version), 0) FROM fl_schema_version"),
                &r);
    if (rc != FL_OK)
        goto rollback;
    int have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++) {
        if (migrations[i].version <= have)
            continue;
        char what[64], ins[160];
        snprintf(what, sizeof what, "schema migration to version %d", migrations[i].version);
        snprintf(ins, sizeof ins,
                 "INSERT INTO fl_schema_version (version, applied_at) VALUES (%d, fl_now_ms())",
                 migrations[i].version);
        if ((rc = simple(st, p, what, migrations[i].sql)) != FL_OK ||
            (rc = simple(st, p, what, ins)) != FL_OK)
            goto rollback;
    }
    rc = simple(st, p, "schema migration", "COMMIT");
    if (rc == FL_OK) {
        p->schema_ok = 1;
        return fl__store_err(st, FL_OK, NULL);  /* the 42P01 above is history */
    }
rollback:
    /* The error message is already set; a failed rollback changes nothing
     * (the server rolls back when the connection goes). */
    if (p->conn) {
        char keep[FL_MESSAGE_MAX];
        fl__copy(keep, sizeof keep, st->errmsg);
        if (simple(st, p, "schema migration", "ROLLBACK") != FL_OK)
            drop_conn(p);
        fl__store_err(st, rc, "%s", keep);
    }
    return rc;
}

/* ---- reading rows ------------------------------------------------------ */

static int bad_value(fl_store *st, const char *what, const char *column)
{
    return fl__store_err(st, FL_ESTORE, "store error: %s: %s: unexpected value in column %s",
                         fl_store_display(st), what, column);
}

static int col_i64(const PGresult *r, int row, int col, int64_t *v)
{
    const char *s = PQgetvalue(r, row, col);
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (PQgetisnull(r, row, col) || end == s || *end || errno)
        return -1;
    *v = x;
    return 0;
}

static int col_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    if (PQgetisnull(r, row, col))
        return -1;
    return fl__copy(dst, cap, PQgetvalue(r, row, col)) == FL_OK ? 0 : -1;
}

/* LEASE_COLS starting at column c into *l (token untouched). */
static int row_lease(fl_store *st, const char *what, const PGresult *r, int row, int c,
                     fl_lease *l)
{
    if (col_text(r, row, c, l->provider, sizeof l->provider))
        return bad_value(st, what, "provider_id");
    if (col_text(r, row, c + 1, l->holder, sizeof l->holder))
        return bad_value(st, what, "holder");
    if (col_text(r, row, c + 2, l->purpose, sizeof l->purpose))
        return bad_value(st, what, "purpose");
    if (!(l->mode = fl__mode_from(PQgetvalue(r, row, c + 3))))
        return bad_value(st, what, "mode");
    if (!(l->state = fl__state_from(PQgetvalue(r, row, c + 4))))
        return bad_value(st, what, "state");
    if (col_i64(r, row, c + 5, &l->fence) || col_i64(r, row, c + 6, &l->ttl_ms) ||
        col_i64(r, row, c + 7, &l->acquired_at_ms) ||
        col_i64(r, row, c + 8, &l->heartbeat_at_ms) || col_i64(r, row, c + 9, &l->expires_at_ms))
        return bad_value(st, what, "fence/ttl_ms/acquired_at/heartbeat_at/expires_at");
    return FL_OK;
}

/* ---- operations -------------------------------------------------------- */

static int injected(fl_store *st, const char *point)
{
    return fl__store_err(st, FL_EUNAVAIL,
                         "store unreachable: %s: %s: fault injected (FLEETLEASE_DEBUG_FAULTS)",
                         fl_store_display(st), point);
}

static void pg_close(void *impl)
{
    pg *p = impl;
    if (!p)
        return;
    drop_conn(p);
    free(p->url);
    free(p);
}

/*
 * Open: parse the URL (a malformed one is FL_EURL, not a connection
 * problem), connect and migrate.  If the server cannot be reached the
 * handle stays usable: it is returned with FL_EUNAVAIL, and later calls
 * connect (and migrate) themselves, so a check can still answer from its
 * cached state while the store is down.
 */
static int pg_open(fl_store *st, const char *url)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (!opts) {
        char why[512];
        one_line(err ? err : "out of memory", why, sizeof why);
        PQfreemem(err);
        return fl__store_err(st, FL_EURL, "store URL: cannot parse %s: %s",
                             fl_store_display(st), why);
    }
    PQconninfoFree(opts);
    pg *p = calloc(1, sizeof *p);
    if (!p || !(p->url = strdup(url))) {
        free(p);
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    }
    p->backoff_ms = PG_BACKOFF_MIN_MS;
    st->impl = p;
    int rc = connect_now(st, p);
    return rc != FL_OK ? rc : migrate(st, p);
}

static int pg_now(fl_store *st, int64_t *now_ms)
{
    PGresult *r;
    int rc = run(st, "now", Q_NOW, NULL, &r);
    if (rc != FL_OK)
        return rc;
    if (PQntuples(r) != 1 || col_i64(r, 0, 0, now_ms))
        rc = bad_value(st, "now", "fl_now_ms");
    PQclear(r);
    return rc;
}

static fl_pstate pstate_from(const char *s)
{
    for (int i = FL_PSTATE_FREE; i <= FL_PSTATE_EXCLUSIVE; i++)
        if (strcmp(s, fl_pstate_name((fl_pstate)i)) == 0)
            return (fl_pstate)i;
    return (fl_pstate)-1;
}

/* Column positions of fl_acquire()'s result. */
enum { A_OUTCOME, A_PSTATE, A_SHARED, A_NOW, A_FENCE, A_ACQUIRED, A_HEARTBEAT, A_EXPIRES,
       A_BLOCKER, A_NCOLS = A_BLOCKER + 10 };

static int pg_acquire(fl_store *st, const fl__acq *req, fl__acq_result *res)
{
    if (fl__fault("acquire"))
        return injected(st, "acquire");
    char ttl[24], pttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)req->ttl_ms);
    snprintf(pttl, sizeof pttl, "%lld", (long long)req->pending_ttl_ms);
    const char *params[8] = {req->provider, req->holder, req->purpose, fl_mode_name(req->mode),
                             ttl, req->token, req->may_pend ? "t" : "f", pttl};
    PGresult *r;
    memset(res, 0, sizeof *res);
    int rc = run(st, "acquire", Q_ACQUIRE, params, &r);
    if (rc != FL_OK)
        return rc;
    const char *outcome = PQntuples(r) == 1 && PQnfields(r) == A_NCOLS
                              ? PQgetvalue(r, 0, A_OUTCOME) : "";
    int64_t now = 0, shared = 0;
    fl_pstate state = pstate_from(PQntuples(r) == 1 ? PQgetvalue(r, 0, A_PSTATE) : "");
    if (!*outcome || (int)state < 0 || col_i64(r, 0, A_NOW, &now) ||
        col_i64(r, 0, A_SHARED, &shared)) {
        PQclear(r);
        return bad_value(st, "acquire", "outcome/pstate/now_ms/shared_count");
    }
    if (strcmp(outcome, "grant") == 0 || strcmp(outcome, "promote") == 0) {
        fl_lease *l = &res->lease;
        res->granted = 1;
        fl__copy(l->token, sizeof l->token, req->token);
        fl__copy(l->provider, sizeof l->provider, req->provider);
        fl__copy(l->holder, sizeof l->holder, req->holder);
        fl__copy(l->purpose, sizeof l->purpose, req->purpose);
        l->mode = req->mode;
        l->state = FL_LEASE_ACTIVE;
        l->ttl_ms = req->ttl_ms;
        if (col_i64(r, 0, A_FENCE, &l->fence) || col_i64(r, 0, A_ACQUIRED, &l->acquired_at_ms) ||
            col_i64(r, 0, A_HEARTBEAT, &l->heartbeat_at_ms) ||
            col_i64(r, 0, A_EXPIRES, &l->expires_at_ms))
            rc = bad_value(st, "acquire", "l_fence/l_acquired_at/l_heartbeat_at/l_expires_at");
    } else if (strcmp(outcome, "pend") == 0 || strcmp(outcome, "refuse") == 0) {
        fl_lease blocker;
        memset(&blocker, 0, sizeof blocker);
        res->pending = outcome[0] == 'p';
        rc = row_lease(st, "acquire", r, 0, A_BLOCKER, &blocker);
        if (rc == FL_OK)
            fl__refusal(&blocker, state, (int)shared, now, &res->refusal);
    } else {
        rc = bad_value(st, "acquire", "outcome");
    }
    PQclear(r);
    return rc;
}

static int pg_give_up(fl_store *st, const fl__acq *req, const char *message)
{
    const char *params[6] = {req->token, req->provider, req->holder, req->purpose,
                             fl_mode_name(req->mode), message ? message : ""};
    PGresult *r;
    int rc = run(st, "give up", Q_GIVE_UP, params, &r);
    PQclear(r);
    return rc;
}

/* heartbeat and release found no live row: a lapsed one still there
 * answers 'expired' (its provider, expires_at and the clock in columns pc,
 * ec, nc); no row at all is not found. */
static int lease_gone(fl_store *st, const char *what, const PGresult *r, int pc, int ec, int nc)
{
    int64_t exp = 0, now = 0;
    if (PQntuples(r) == 0)
        return fl__err_gone(st, what, NULL, 0, 0);
    if (col_i64(r, 0, ec, &exp) || col_i64(r, 0, nc, &now))
        return bad_value(st, what, "expires_at");
    return fl__err_gone(st, what, PQgetvalue(r, 0, pc), exp, now);
}

static int pg_heartbeat(fl_store *st, const char *token, fl_lease *out)
{
    if (fl__fault("heartbeat"))
        return injected(st, "heartbeat");
    const char *params[1] = {token};
    PGresult *r;
    int rc = run(st, "heartbeat", Q_HEARTBEAT, params, &r);
    if (rc != FL_OK)
        return rc;
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "renewed") != 0) {
        rc = lease_gone(st, "heartbeat", r, 1, 10, 11);
    } else if (out) {
        /* token may point into *out (renewing l.token into &l). */
        fl_lease l;
        memset(&l, 0, sizeof l);
        rc = row_lease(st, "heartbeat", r, 0, 1, &l);
        if (rc == FL_OK && fl__copy(l.token, sizeof l.token, token) == FL_OK)
            *out = l;
    }
    PQclear(r);
    return rc;
}

static int pg_release(fl_store *st, const char *token)
{
    if (fl__fault("release"))
        return injected(st, "release");
    const char *params[1] = {token};
    PGresult *r;
    int rc = run(st, "release", Q_RELEASE, params, &r);
    if (rc != FL_OK)
        return rc;
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "released") != 0)
        rc = lease_gone(st, "release", r, 1, 2, 3);
    PQclear(r);
    return rc;
}

/* Rows of a result as leases, starting at column c (after an optional
 * token column at c - 1 when with_token). */
static int leases(fl_store *st, const char *what, const PGresult *r, int first_row, int c,
                  int with_token, fl_lease **out, size_t *n)
{
    int rows = PQntuples(r) - first_row;
    *out = NULL;
    *n = 0;
    if (rows <= 0)
        return FL_OK;
    fl_lease *v = calloc((size_t)rows, sizeof *v);
    if (!v)
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    for (int i = 0; i < rows; i++) {
        int rc = row_lease(st, what, r, first_row + i, c, &v[i]);
        if (rc == FL_OK && with_token && col_text(r, first_row + i, c - 1, v[i].token,
                                                  sizeof v[i].token))
            rc = bad_value(st, what, "token");
        if (rc != FL_OK) {
            free(v);
            return rc;
        }
    }
    *out = v;
    *n = (size_t)rows;
    return FL_OK;
}

static int pg_read_provider(fl_store *st, const char *provider, fl_lease **rows, size_t *n,
                            int64_t *now_ms)
{
    *rows = NULL;
    *n = 0;
    if (fl__fault("read"))
        return injected(st, "read");
    const char *params[1] = {provider};
    PGresult *r;
    int rc = run(st, "read", Q_READ, params, &r);
    if (rc != FL_OK)
        return rc;
    if (PQntuples(r) < 1 || col_i64(r, 0, 0, now_ms)) {
        rc = bad_value(st, "read", "now");
    } else {
        /* The LEFT JOIN gives one row of NULLs when nothing is live. */
        int first = PQgetisnull(r, 0, 1) ? 1 : 0;
        rc = leases(st, "read", r, first, 2, 1, rows, n);
    }
    PQclear(r);
    return rc;
}

static int pg_lookup(fl_store *st, const char *token, fl_lease *out)
{
    if (fl__fault("read"))
        return injected(st, "lookup");
    const char *params[1] = {token};
    PGresult *r;
    int rc = run(st, "lookup", Q_LOOKUP, params, &r);
    if (rc != FL_OK)
        return rc;
    int64_t now = 0;
    fl_lease *rows = NULL;
    size_t n = 0;
    if (PQntuples(r) != 1 || col_i64(r, 0, 0, &now))
        rc = bad_value(st, "lookup", "now");
    else if (!PQgetisnull(r, 0, 1))
        rc = leases(st, "lookup", r, 0, 2, 1, &rows, &n);
    PQclear(r);
    if (rc != FL_OK)
        return rc;
    if (n == 0)
        rc = fl__err_gone(st, "lookup", NULL, 0, 0);
    else if (rows[0].expires_at_ms <= now)
        rc = fl__err_gone(st, "lookup", rows[0].provider, rows[0].expires_at_ms, now);
    else
        *out = rows[0];
    free(rows);
    return rc;
}

static int pg_list(fl_store *st, const char *provider, fl_lease **out, size_t *n)
{
    if (fl__fault("read"))
        return injected(st, "list");
    const char *params[1] = {provider};
    PGresult *r;
    int rc = run(st, "list", provider ? Q_LIST_ONE : Q_LIST_ALL, params, &r);
    if (rc != FL_OK)
        return rc;
    rc = leases(st, "list", r, 0, 0, 0, out, n);
    PQclear(r);
    return rc;
}

static int pg_history(fl_store *st, const char *provider, size_t limit, fl_event **out,
                      size_t *n)
{
    if (fl__fault("read"))
        return injected(st, "history");
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *all[1] = {lim}, *one[2] = {provider, lim};
    PGresult *r;
    int rc = provider ? run(st, "history", Q_HISTORY_ONE, one, &r)
                      : run(st, "history", Q_HISTORY_ALL, all, &r);
    if (rc != FL_OK)
        return rc;
    int rows = PQntuples(r);
    fl_event *v = rows > 0 ? calloc((size_t)rows, sizeof *v) : NULL;
    if (rows > 0 && !v)
        rc = fl__store_err(st, FL_ENOMEM, "out of memory");
    for (int i = 0; rc == FL_OK && i < rows; i++) {
        fl_event *e = &v[i];
        if (col_i64(r, i, 0, &e->id) || col_i64(r, i, 1, &e->at_ms) ||
            col_i64(r, i, 7, &e->fence) || col_i64(r, i, 8, &e->expires_at_ms))
            rc = bad_value(st, "history", "id/at/fence/expires_at");
        else if (col_text(r, i, 2, e->event, sizeof e->event) ||
                 col_text(r, i, 3, e->provider, sizeof e->provider) ||
                 col_text(r, i, 4, e->holder, sizeof e->holder) ||
                 col_text(r, i, 5, e->purpose, sizeof e->purpose) ||
                 col_text(r, i, 9, e->detail, sizeof e->detail) ||
                 !(e->mode = fl__mode_from(PQgetvalue(r, i, 6))))
            rc = bad_value(st, "history", "event/provider_id/holder/purpose/mode/detail");
    }
    PQclear(r);
    if (rc != FL_OK) {
        free(v);
        return rc;
    }
    *out = v;
    *n = (size_t)(rows > 0 ? rows : 0);
    return FL_OK;
}

static int pg_sweep(fl_store *st, size_t *expired)
{
    PGresult *r;
    *expired = 0;
    int rc = run(st, "sweep", Q_SWEEP, NULL, &r);
    if (rc != FL_OK)
        return rc;
    *expired = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return FL_OK;
}

/* ---- isolation reports -------------------------------------------- */

/* A PostgreSQL array literal of the writers' names: each element quoted,
 * with " and \ escaped, so that no name can break out of its element.
 * Names are validated text (no control characters).  NULL on overflow. */
static char *text_array(const fl_report *r)
{
    size_t cap = 3 + r->n_writers * (2 * FL_TEXT_MAX + 3);
    char *buf = malloc(cap), *o = buf;
    if (!buf)
        return NULL;
    *o++ = '{';
    for (size_t i = 0; i < r->n_writers; i++) {
        if (i)
            *o++ = ',';
        *o++ = '"';
        for (const char *c = r->writers[i].writer; *c; c++) {
            if (*c == '"' || *c == '\\')
                *o++ = '\\';
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return buf;
}

static int pg_report_put(fl_store *st, const char *gateway, const fl_report *r,
                         const char *detail)
{
    char fence[24], c[5][24], fin[4];
    char counts[2 + FL_REPORT_WRITERS * 22];
    snprintf(fence, sizeof fence, "%lld", (long long)r->fence);
    const int64_t v[5] = {r->foreign_in_flight_at_grant, r->concurrent_foreign_requests,
                          r->foreign_refused, r->foreign_cut_off, r->holder_requests};
    for (int i = 0; i < 5; i++)
        snprintf(c[i], sizeof c[i], "%lld", (long long)v[i]);
    snprintf(fin, sizeof fin, "%d", r->final ? 1 : 0);
    size_t k = 0;
    counts[k++] = '{';
    for (size_t i = 0; i < r->n_writers; i++)
        k += (size_t)snprintf(counts + k, sizeof counts - k, "%s%lld", i ? "," : "",
                              (long long)r->writers[i].refused);
    snprintf(counts + k, sizeof counts - k, "}");
    char *names = text_array(r);
    if (!names)
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    const char *params[12] = {r->provider, fence, gateway, c[0], c[1], c[2], c[3], c[4],
                              fin, names, counts, detail};
    PGresult *res;
    int rc = run(st, "report", Q_REPORT_PUT, params, &res);
    PQclear(res);
    free(names);
    return rc;
}

static int pg_report_get(fl_store *st, const char *provider, int64_t fence, fl_report *out)
{
    char f[24];
    snprintf(f, sizeof f, "%lld", (long long)fence);
    const char *params[2] = {provider, f};
    PGresult *r;
    int rc = run(st, "report", Q_REPORT_SUM, params, &r);
    if (rc != FL_OK)
        return rc;
    int64_t g = 0, fin = 0;
    if (PQntuples(r) != 1 || col_i64(r, 0, 0, &g) || col_i64(r, 0, 1, &fin) ||
        col_i64(r, 0, 2, &out->foreign_in_flight_at_grant) ||
        col_i64(r, 0, 3, &out->concurrent_foreign_requests) ||
        col_i64(r, 0, 4, &out->foreign_refused) || col_i64(r, 0, 5, &out->foreign_cut_off) ||
        col_i64(r, 0, 6, &out->holder_requests) || col_i64(r, 0, 7, &out->updated_at_ms)) {
        PQclear(r);
        return bad_value(st, "report", "counters");
    }
    PQclear(r);
    out->gateways = (int)g;
    out->final = (int)fin;
    if (g == 0)
        return fl__store_err(st, FL_ENOTFOUND, "report: no gateway reported on %s fence %lld",
                             provider, (long long)fence);
    rc = run(st, "report", Q_REPORT_WRITERS, params, &r);
    if (rc != FL_OK)
        return rc;
    for (int i = 0; i < PQntuples(r) && out->n_writers < FL_REPORT_WRITERS; i++) {
        fl_report_writer *w = &out->writers[out->n_writers];
        if (col_text(r, i, 0, w->writer, sizeof w->writer) == 0 &&
            col_i64(r, i, 1, &w->refused) == 0)
            out->n_writers++;
    }
    PQclear(r);
    return FL_OK;
}

/* ---- schedules ------------------------------------------------------ */

static const char *pg_row_text(const fl__row *r, int col)
{
    const PGresult *res = r->ctx;
    return PQgetisnull(res, r->row, col) ? NULL : PQgetvalue(res, r->row, col);
}

static int64_t pg_row_i64(const fl__row *r, int col)
{
    int64_t v = 0;
    col_i64(r->ctx, r->row, col, &v);
    return v;
}

/* Every row of r through read() into a new array of elem-sized structs. */
static int pg_collect(fl_store *st, const char *what, PGresult *r, size_t elem,
                      int (*read)(const fl__row *, void *), void **out, size_t *n)
{
    int rows = PQntuples(r);
    char *v = rows > 0 ? calloc((size_t)rows, elem) : NULL;
    if (rows > 0 && !v) {
        PQclear(r);
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    }
    fl__row row = {.ctx = r, .text = pg_row_text, .i64 = pg_row_i64};
    for (int i = 0; i < rows; i++) {
        row.row = i;
        if (read(&row, v + (size_t)i * elem) != 0) {
            free(v);
            PQclear(r);
            return bad_value(st, what, "row");
        }
    }
    PQclear(r);
    *out = v;
    *n = (size_t)(rows > 0 ? rows : 0);
    return FL_OK;
}

static int pg_sched_put(fl_store *st, const fl_schedule *x)
{
    char w[24], m[24], t[24];
    snprintf(w, sizeof w, "%lld", (long long)x->max_wait_ms);
    snprintf(m, sizeof m, "%lld", (long long)x->max_run_ms);
    snprintf(t, sizeof t, "%lld", (long long)x->ttl_ms);
    const char *params[10] = {x->name, x->cron, x->tz, x->providers, x->holder, x->purpose,
                              w, m, t, x->command};
    PGresult *r;
    int rc = run(st, "schedule", Q_SCHED_PUT, params, &r);
    PQclear(r);
    return rc;
}

static int pg_sched_rm(fl_store *st, const char *name)
{
    const char *params[1] = {name};
    PGresult *r;
    int rc = run(st, "schedule rm", Q_SCHED_RM, params, &r);
    if (rc == FL_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = fl__store_err(st, FL_ENOTFOUND, "schedule rm: no schedule named %s", name);
    PQclear(r);
    return rc;
}

static int pg_sched_list(fl_store *st, fl_schedule **out, size_t *n)
{
    PGresult *r;
    int rc = run(st, "schedule list", Q_SCHED_LIST, NULL, &r);
    if (rc != FL_OK)
        return rc;
    return pg_collect(st, "schedule list", r, sizeof **out, fl__row_schedule, (void **)out, n);
}

static int pg_sched_claim(fl_store *st, const char *name, int64_t due_at_ms, const char *daemon,
                          int64_t *run_id)
{
    char due[24];
    snprintf(due, sizeof due, "%lld", (long long)due_at_ms);
    const char *params[3] = {name, due, daemon};
    PGresult *r;
    int rc = run(st, "schedule claim", Q_SCHED_CLAIM, params, &r);
    if (rc != FL_OK)
        return rc;
    if (PQntuples(r) == 1 && col_i64(r, 0, 0, run_id) == 0)
        rc = FL_OK;
    else
        rc = fl__store_err(st, FL_ECONFLICT, "schedule claim: the run of %s due at %lld was "
                           "claimed already", name, (long long)due_at_ms);
    PQclear(r);
    return rc;
}

static int pg_sched_finish(fl_store *st, int64_t run_id, const fl_sched_run *x)
{
    char id[24], fence[24], ex[16];
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    snprintf(fence, sizeof fence, "%lld", (long long)x->fence);
    snprintf(ex, sizeof ex, "%d", x->exit_status);
    const char *params[6] = {id, x->outcome, x->provider, fence, ex, x->detail};
    PGresult *r;
    int rc = run(st, "schedule finish", Q_SCHED_FINISH, params, &r);
    if (rc == FL_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = fl__store_err(st, FL_ENOTFOUND, "schedule finish: no run %lld", (long long)run_id);
    PQclear(r);
    return rc;
}

static int pg_sched_runs(fl_store *st, const char *name, size_t limit, fl_sched_run **out,
                         size_t *n)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *all[1] = {lim}, *one[2] = {name, lim};
    PGresult *r;
    int rc = name ? run(st, "schedule runs", Q_RUNS_ONE, one, &r)
                  : run(st, "schedule runs", Q_RUNS_ALL, all, &r);
    if (rc != FL_OK)
        return rc;
    return pg_collect(st, "schedule runs", r, sizeof **out, fl__row_run, (void **)out, n);
}

/*
 * Sleep up to timeout_ms, waking early on a notification for the provider.
 * Without a connection (the store is down) this is a plain sleep: the next
 * acquire attempt reconnects, with its back-off.  The result only tells the
 * caller whether to look again early, so errors are not reported.
 */
static int pg_wait_change(fl_store *st, const char *provider, int64_t timeout_ms)
{
    pg *p = st->impl;
    int64_t deadline = fl__mono_ms() + timeout_ms;
    if (p->conn && !p->listening) {
        if (simple(st, p, "listen", "LISTEN " PG_CHANNEL) != FL_OK) {
            fl__sleep_ms(deadline - fl__mono_ms());
            return FL_OK;
        }
        p->listening = 1;
        /* A change between the caller's last read and LISTEN was not
         * notified to us: let the caller look again now. */
        return FL_OK;
    }
    if (!p->conn) {
        fl__sleep_ms(timeout_ms);
        return FL_OK;
    }
    for (;;) {
        if (drain_notifies(p->conn, provider))
            return FL_OK;
        int64_t left = deadline - fl__mono_ms();
        if (left <= 0)
            return FL_OK;
        struct pollfd pfd = {.fd = PQsocket(p->conn), .events = POLLIN};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno != EINTR)
            return FL_OK;
        if (n > 0 && !PQconsumeInput(p->conn)) {
            /* The connection broke while idle: the next call reconnects. */
            drop_conn(p);
            return FL_OK;
        }
    }
}

const fl__store_ops fl__postgres_ops = {
    .kind = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .now = pg_now,
    .acquire = pg_acquire,
    .give_up = pg_give_up,
    .heartbeat = pg_heartbeat,
    .release = pg_release,
    .lookup = pg_lookup,
    .read_provider = pg_read_provider,
    .list = pg_list,
    .history = pg_history,
    .sweep = pg_sweep,
    .wait_change = pg_wait_change,
    .report_put = pg_report_put,
    .report_get = pg_report_get,
    .sched_put = pg_sched_put,
    .sched_rm = pg_sched_rm,
    .sched_list = pg_sched_list,
    .sched_claim = pg_sched_claim,
    .sched_finish = pg_sched_finish,
    .sched_runs = pg_sched_runs,
};
