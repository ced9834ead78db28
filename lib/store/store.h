/*
 * lib/store/store.h -- the one store interface.  sqlite.c and postgres.c
 * implement it with the same semantics; the conformance suite
 * (tests/conformance) runs unchanged against both.
 *
 * Rules every store keeps:
 * - The store's clock decides: every expiry computed or compared inside the
 *   statement/transaction that decides, never from a caller's clock.
 *   PostgreSQL uses clock_timestamp() (not now(), which is the start of a
 *   transaction that may have waited for a lock: case C02).
 * - acquire() is one atomic attempt.  A refusal that needs no pending
 *   intent writes nothing (it costs a read).
 * - heartbeat() is a conditional UPDATE that never inserts; release() a
 *   conditional DELETE by token; both fail on a lapsed row even if no
 *   sweep ran (C04, C05, C06).
 * - sweep() tests expiry inside the DELETE itself (C07).
 * - Each transition writes one history row in the same transaction.
 * - Errors set a message with fl__store_err() and return an fl_code:
 *   FL_EUNAVAIL for "cannot reach / busy past timeout" (retryable),
 *   FL_ESTORE for anything the store answered with.
 */
#ifndef FL_STORE_H
#define FL_STORE_H

#include "fleetlease.h"
#include "core/core.h"

typedef struct fl__acq {
    const char *provider;
    const char *holder;
    const char *purpose;
    fl_mode mode;
    int64_t ttl_ms;
    const char *token;       /* generated once per fl_acquire call; also names my pending intent */
    int may_pend;            /* exclusive and still willing to wait */
    int64_t pending_ttl_ms;  /* lifetime of a pending intent from now */
} fl__acq;

typedef struct fl__acq_result {
    int granted;             /* 1: lease is filled */
    int pending;             /* 1: my pending intent is registered (not granted yet) */
    fl_lease lease;          /* on grant: the full lease, token included */
    fl_verdict refusal;      /* when !granted: state, blocker, message (via fl__refusal) */
} fl__acq_result;

typedef struct fl__store_ops {
    const char *kind;                                         /* "sqlite", "postgresql" */
    int (*open)(fl_store *st, const char *url);               /* sets st->impl */
    void (*close)(void *impl);
    int (*now)(fl_store *st, int64_t *now_ms);
    int (*acquire)(fl_store *st, const fl__acq *req, fl__acq_result *res);
    /* Delete my pending intent (the waiter gave up) and record "refused"
     * with `message` in history; also used with no pending row. */
    int (*give_up)(fl_store *st, const fl__acq *req, const char *message);
    int (*heartbeat)(fl_store *st, const char *token, fl_lease *out);
    int (*release)(fl_store *st, const char *token);
    /* The live active row of token, read only; else fl__err_gone(). */
    int (*lookup)(fl_store *st, const char *token, fl_lease *out);
    /* Live rows (expires_at > now) of one provider, tokens included, and
     * the store's now.  *rows is malloc'd (NULL when n == 0). */
    int (*read_provider)(fl_store *st, const char *provider, fl_lease **rows,
                         size_t *n, int64_t *now_ms);
    int (*list)(fl_store *st, const char *provider, fl_lease **out, size_t *n);
    int (*history)(fl_store *st, const char *provider, size_t limit,
                   fl_event **out, size_t *n);
    int (*sweep)(fl_store *st, size_t *expired);
    /* Block up to timeout_ms or until the provider may have changed
     * (PostgreSQL: LISTEN/NOTIFY; SQLite: a plain sleep). */
    int (*wait_change)(fl_store *st, const char *provider, int64_t timeout_ms);
    /* Upsert one gateway's counters (validated by lib/report.c); when
     * r->final, also the "isolation" history row with `detail`. */
    int (*report_put)(fl_store *st, const char *gateway, const fl_report *r,
                      const char *detail);
    /* Sum over gateways; FL_ENOTFOUND when none reported. */
    int (*report_get)(fl_store *st, const char *provider, int64_t fence, fl_report *out);
    /* Schedules (validated by lib/sched.c).  Rows are read in FL__SCHED_COLS
     * and FL__RUN_COLS order through fl__row_schedule / fl__row_run, so the
     * column mapping exists once. */
    int (*sched_put)(fl_store *st, const fl_schedule *s);
    int (*sched_rm)(fl_store *st, const char *name);
    int (*sched_list)(fl_store *st, fl_schedule **out, size_t *n);
    int (*sched_claim)(fl_store *st, const char *name, int64_t due_at_ms, const char *daemon,
                       int64_t *run_id);
    int (*sched_finish)(fl_store *st, int64_t run_id, const fl_sched_run *r);
    int (*sched_runs)(fl_store *st, const char *name, size_t limit, fl_sched_run **out,
                      size_t *n);
} fl__store_ops;

#define FL__SCHED_COLS "name, cron, tz, providers, holder, purpose, max_wait_ms, max_run_ms, " \
                       "ttl_ms, command, created_at"
#define FL__RUN_COLS "id, name, due_at, claimed_by, outcome, started_at, ended_at, provider_id, " \
                     "fence, exit_status, detail"

/* One result row, as the stores expose it to the shared row readers:
 * text(col) is NULL for SQL NULL; i64(col) is 0 for NULL. */
typedef struct fl__row {
    const void *ctx;
    int row;
    const char *(*text)(const struct fl__row *r, int col);
    int64_t (*i64)(const struct fl__row *r, int col);
} fl__row;

/* Fill the fl_schedule / fl_sched_run at dst from one row: 0, or -1 when a
 * column does not fit (a row this library did not write).  dst is void *
 * so that both can be handed to a store's generic row collector. */
int fl__row_schedule(const fl__row *r, void *dst);
int fl__row_run(const fl__row *r, void *dst);

extern const fl__store_ops fl__sqlite_ops;
extern const fl__store_ops fl__postgres_ops;

struct fl__cache;  /* lib/check.c */

struct fl_store {
    const fl__store_ops *ops;
    void *impl;
    char display[FL_URL_MAX];      /* URL with the password masked */
    char target[FL_URL_MAX];       /* what ops->open takes (path or URL) */
    char errmsg[FL_MESSAGE_MAX];
    char *cache_dir;               /* fl_set_cache_dir */
    struct fl__cache *cache;       /* last state read per provider */
};

/*
 * Make sure st has a connection.  A handle whose open failed with
 * FL_EUNAVAIL (store down or busy) retries the open here, so a daemon or a
 * check started during an outage recovers without a new handle.
 */
int fl__ready(fl_store *st);

/* Free the check cache of a handle (lib/check.c). */
void fl__cache_free(fl_store *st);

/*
 * fl_acquire, also reporting the CLOCK_MONOTONIC time at which the
 * successful attempt was sent: the grant's local deadline counts from there
 * (the store's expiry is at least ttl after that instant).  lib/lease.c.
 */
int fl__acquire(fl_store *st, const fl_acquire_opts *o, fl_lease *out,
                fl_verdict *conflict, int64_t *sent_mono_ms);

/*
 * heartbeat and release found no live row with the token.  `provider` and
 * `expired_at` describe a lapsed active row that still carries it (NULL:
 * none): FL_EEXPIRED, else FL_ENOTFOUND.  The wording of both lives here,
 * so that every store says the same.
 */
int fl__err_gone(fl_store *st, const char *what, const char *provider,
                 int64_t expired_at, int64_t now);

/* Set st->errmsg and return code.  "" for FL_OK. */
int fl__store_err(fl_store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Local wall clock in ms (CLOCK_REALTIME) plus the debug skew, and
 * CLOCK_MONOTONIC in ms.  The wall clock never decides expiry. */
int64_t fl__wall_ms(void);
int64_t fl__mono_ms(void);
void fl__sleep_ms(int64_t ms);

/* 16 bytes from getrandom(2); FL_ESYS on failure. */
int fl__random(void *buf, size_t len);

/*
 * Debug hooks (compiled in only with -DFL_DEBUG_HOOKS; otherwise always 0).
 * FLEETLEASE_DEBUG_FAULTS="point=N[,N...][;point=...]" makes the Nth call
 * (1-based, per process) at `point` fail with FL_EUNAVAIL.  Points:
 * "heartbeat", "acquire", "release", "read".
 * FLEETLEASE_DEBUG_CLOCK_SKEW_MS shifts fl__wall_ms() (the client clock) to
 * prove that nothing decides on it (case C03).
 */
int fl__fault(const char *point);

#endif
