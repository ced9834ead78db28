/*
 * fleetlease.h -- time-limited, heartbeated leases on shared inference hosts.
 *
 * This header is the manual of libfleetlease.  Everything a program may use
 * is declared here; nothing else in the library is exported.
 *
 * Concepts
 * --------
 * A *provider* is one inference host, named by an opaque id such as
 * "gpu-01" (1-128 bytes of [A-Za-z0-9._:/-]).  A *lease* is a claim on one
 * provider, either FL_SHARED (any number at once) or FL_EXCLUSIVE (alone).
 * Leases live in a *store* that every writer reaches: an SQLite file on one
 * machine, or a PostgreSQL database for a fleet.  The store's clock decides
 * expiry; the caller's clock is never compared with it.
 *
 * Reader-writer rule: an exclusive request that finds shared holders and is
 * willing to wait registers a *pending* intent.  While it is pending the
 * provider is "draining": no new shared lease is granted, so a benchmark is
 * never starved.  It becomes active once the shared holders are gone.
 *
 * Every grant carries a *fence*: a number that rises with every grant on a
 * provider and is never reused, even across a restore of the store from a
 * backup (it is never below the store's clock in milliseconds).  Pass it to
 * the resource where the resource can check it.
 *
 * Every grant also carries a *token*: 128 random bits from getrandom(2),
 * written as 32 lowercase hex digits.  The token is the only capability that
 * renews or releases a lease; list and history never show it.
 *
 * Conventions
 * -----------
 * - Functions return an fl_code: FL_OK (0) or a positive error.  The codes
 *   are stable and never renumbered.  fl_strerror() names a code;
 *   fl_errmsg() gives the detailed message of the last failed call on a
 *   handle ("provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got 130").
 * - Times are milliseconds since the Unix epoch on the *store's* clock
 *   (int64_t, suffix _ms).  Durations are milliseconds.
 * - Strings passed in are borrowed for the duration of the call only.
 *   Structs filled by the library use fixed buffers: nothing to free, unless
 *   a function says it allocates (fl_list, fl_history: free with fl_free).
 * - Passing NULL where a handle or required string is expected returns
 *   FL_EINVAL; closing or freeing NULL is a no-op.
 * - Thread safety: an fl_store handle may be used by one thread at a time
 *   (like an sqlite3 connection).  Different handles are independent and may
 *   be used concurrently, in one process or many.  An fl_grant owns its own
 *   handle and threads; its functions may be called from any one thread.
 */
#ifndef FLEETLEASE_H
#define FLEETLEASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FL_BUILDING_LIBRARY) && defined(__GNUC__)
#define FL_EXTERN __attribute__((visibility("default")))
#else
#define FL_EXTERN
#endif

#define FL_VERSION_MAJOR 0
#define FL_VERSION_MINOR 1
#define FL_VERSION_PATCH 0
#define FL_VERSION_STRING "0.1.0"

/* Input limits.  Nothing is ever truncated: longer input is refused. */
#define FL_PROVIDER_MAX 128   /* bytes of [A-Za-z0-9._:/-] */
#define FL_TEXT_MAX 256       /* holder, purpose, writer: UTF-8 bytes */
#define FL_TOKEN_LEN 32       /* lowercase hex digits */
#define FL_TTL_MIN_MS 1000LL
#define FL_TTL_MAX_MS (24LL * 3600 * 1000)
#define FL_WAIT_MAX_MS (7LL * 24 * 3600 * 1000)
#define FL_URL_MAX 4096
#define FL_MESSAGE_MAX 1024

/* Error codes.  Stable: append only, never renumber. */
typedef enum fl_code {
    FL_OK = 0,
    FL_EINVAL = 1,    /* an argument is invalid; fl_errmsg names field and limit */
    FL_ECONFLICT = 2, /* provider held by someone else, or not granted within wait */
    FL_ENOTFOUND = 3, /* no live lease has this token: released, swept, never granted */
    FL_EEXPIRED = 4,  /* the lease lapsed on the store's clock; it cannot be renewed */
    FL_ELOST = 5,     /* a grant passed its local deadline without a successful renew */
    FL_EUNAVAIL = 6,  /* the store cannot be reached, or stayed busy past its timeout */
    FL_ESTORE = 7,    /* the store answered with an error (schema, permissions, SQL) */
    FL_ENOMEM = 8,    /* out of memory */
    FL_ESYS = 9,      /* a system call failed (errno in the message) */
    FL_EURL = 10,     /* the store URL is malformed, names an unknown scheme, or a
                       * SQLite file in a directory that does not exist */
    FL_ECANCELED = 11 /* a waiting acquire was cancelled by its caller */
} fl_code;

/* Short, static English description of a code; never NULL. */
FL_EXTERN const char *fl_strerror(int code);

typedef enum fl_mode { FL_SHARED = 1, FL_EXCLUSIVE = 2 } fl_mode;

/* "shared" / "exclusive"; "?" for anything else. */
FL_EXTERN const char *fl_mode_name(fl_mode mode);

/* The state of one lease row. */
typedef enum fl_lease_state {
    FL_LEASE_ACTIVE = 1,  /* granted, valid until expires_at_ms */
    FL_LEASE_PENDING = 2  /* an exclusive intent waiting for shared holders to drain */
} fl_lease_state;

/* The state of a provider as a whole, as a writer sees it. */
typedef enum fl_pstate {
    FL_PSTATE_FREE = 0,      /* no live lease */
    FL_PSTATE_SHARED = 1,    /* one or more shared leases, no exclusive intent */
    FL_PSTATE_DRAINING = 2,  /* an exclusive is pending; shared holders finishing */
    FL_PSTATE_EXCLUSIVE = 3  /* an exclusive lease is active */
} fl_pstate;

/* "free", "shared", "draining", "exclusive". */
FL_EXTERN const char *fl_pstate_name(fl_pstate state);

typedef struct fl_lease {
    char token[FL_TOKEN_LEN + 1];     /* empty in fl_list / verdict results */
    char provider[FL_PROVIDER_MAX + 1];
    char holder[FL_TEXT_MAX + 1];
    char purpose[FL_TEXT_MAX + 1];
    fl_mode mode;
    fl_lease_state state;
    int64_t fence;                    /* 0 while pending */
    int64_t ttl_ms;
    int64_t acquired_at_ms;           /* grant time (pending: time of the intent) */
    int64_t heartbeat_at_ms;          /* last successful renew, or grant time */
    int64_t expires_at_ms;            /* store clock; the lease is gone at this instant */
} fl_lease;

/*
 * A check verdict: may `writer` dispatch to `provider` now?
 * message is always set: "host leased for <purpose> by <holder> until <RFC
 * 3339 time>" when refused (with " (draining: exclusive pending)" appended
 * while draining), a short description when allowed.
 */
typedef struct fl_verdict {
    int allowed;            /* 1: dispatch; 0: do not */
    fl_pstate state;
    int shared_count;       /* live shared leases */
    int stale;              /* 1: the store was unreachable; answered from the last state read */
    int fail_open;          /* 1: stale state had itself expired; allowed without knowledge */
    fl_lease blocker;       /* when !allowed: the exclusive lease (active or pending); token empty */
    int64_t retry_after_ms; /* when !allowed: until the blocker's expiry, at least 1000 */
    int64_t now_ms;         /* the store's clock when the state was read */
    char message[FL_MESSAGE_MAX];
} fl_verdict;

/* One audit event from the history table. */
typedef struct fl_event {
    int64_t id;                       /* rises with every event in a store */
    int64_t at_ms;                    /* store clock */
    char event[16];                   /* granted renewed released expired refused pending isolation */
    char provider[FL_PROVIDER_MAX + 1];
    char holder[FL_TEXT_MAX + 1];
    char purpose[FL_TEXT_MAX + 1];
    fl_mode mode;
    int64_t fence;                    /* 0 for refused and pending */
    int64_t expires_at_ms;            /* for granted/renewed: the new expiry; expired: the lapsed one */
    char detail[FL_MESSAGE_MAX];      /* refused: the message; otherwise may be empty */
} fl_event;

/* ---- Store handles -------------------------------------------------- */

typedef struct fl_store fl_store;

/*
 * Resolve the store URL the way every fleetlease program does: `explicit_url`
 * if not NULL, else $FLEETLEASE_DB, else $DATABASE_URL, else
 * ${XDG_STATE_HOME:-$HOME/.local/state}/fleetlease/leases.db.
 * Writes at most `len` bytes including the NUL.  FL_EINVAL if it does not fit.
 */
FL_EXTERN int fl_resolve_url(const char *explicit_url, char *buf, size_t len);

/*
 * Open a store.  URL forms:
 *   /path/to/file.db, ./rel.db, sqlite:PATH      SQLite (the file is created on
 *                                                 first use; its directory must
 *                                                 exist, FL_EURL if not, except
 *                                                 for the default path, whose
 *                                                 directories are created)
 *   postgresql://..., postgres://...             PostgreSQL (libpq syntax)
 * The schema is created or migrated on open, safely when many processes open
 * at once.  On failure *out is still set to a handle whose fl_errmsg() says
 * why (or NULL on FL_ENOMEM); close it with fl_close().
 */
FL_EXTERN int fl_open(const char *url, fl_store **out);
FL_EXTERN void fl_close(fl_store *st);

/* Message of the last failed call on st; "" after success; never NULL. */
FL_EXTERN const char *fl_errmsg(const fl_store *st);

/* "sqlite" or "postgresql". */
FL_EXTERN const char *fl_store_kind(const fl_store *st);

/* The URL with any password replaced by "***", safe for logs. */
FL_EXTERN const char *fl_store_display(const fl_store *st);

/* The store's clock, in ms since the epoch. */
FL_EXTERN int fl_store_now(fl_store *st, int64_t *now_ms);

/* ---- Lease operations ----------------------------------------------- */

/*
 * Acquire a lease.  Atomic across processes and machines.
 *   wait_ms = 0: one attempt.  > 0: retry with jittered back-off (and store
 *   notifications where the store has them) until granted or wait_ms passed.
 *   An exclusive request that waits registers a pending intent, which blocks
 *   new shared grants until it is granted, given up, or lapses.
 * On FL_OK *out holds the lease, token included; expires_at_ms is counted
 * from the moment of the grant on the store's clock.
 * On FL_ECONFLICT, if `conflict` is not NULL it holds the verdict that
 * refused (blocker, state, message).  A refusal is recorded once in the
 * history, when the call gives up.
 */
FL_EXTERN int fl_acquire(fl_store *st, const char *provider, const char *holder,
                         const char *purpose, fl_mode mode, int64_t ttl_ms,
                         int64_t wait_ms, fl_lease *out, fl_verdict *conflict);

/*
 * fl_acquire with options, for callers that must be able to stop a long
 * wait (a daemon shutting down, a client that went away).  `cancel`, if
 * not NULL, is called between attempts, at least every 100 ms while
 * waiting, from the calling thread; returning nonzero ends the wait with
 * FL_ECANCELED: the pending intent is withdrawn and one "refused" event is
 * recorded, as for a wait that ran out.  Fields not set are 0/NULL.
 */
typedef struct fl_acquire_opts {
    const char *provider;
    const char *holder;
    const char *purpose;
    fl_mode mode;
    int64_t ttl_ms;
    int64_t wait_ms;
    int (*cancel)(void *arg);
    void *cancel_arg;
} fl_acquire_opts;

FL_EXTERN int fl_acquire_ex(fl_store *st, const fl_acquire_opts *opts, fl_lease *out,
                            fl_verdict *conflict);

/*
 * Renew the lease named by token: expires_at becomes store-now + its ttl.
 * FL_EEXPIRED if it lapsed (even if no sweep ran yet), FL_ENOTFOUND if it is
 * not live.  Never creates a lease.  *out (may be NULL) gets the new state.
 */
FL_EXTERN int fl_heartbeat(fl_store *st, const char *token, fl_lease *out);

/*
 * Read the live active lease named by token, without renewing it (for a
 * daemon that must map a token to its grant).  *out gets the lease with
 * its token.  FL_EEXPIRED / FL_ENOTFOUND as for fl_heartbeat.
 */
FL_EXTERN int fl_lookup(fl_store *st, const char *token, fl_lease *out);

/*
 * Release the lease named by token.  Only that lease is touched: a late or
 * repeated release never affects a later grant.  FL_EEXPIRED if it had
 * already lapsed, FL_ENOTFOUND if there is no such live lease.
 */
FL_EXTERN int fl_release(fl_store *st, const char *token);

/*
 * THE check helper: every writer path (library, CLI, HTTP, gateway, nginx
 * auth_request) decides through this function.  writer may be NULL
 * (anonymous); token may be NULL.  A writer whose name is the exclusive
 * holder's, or who presents its token, is allowed.
 * Store unreachable: the verdict comes from the last state this handle (or
 * the check cache, see fl_set_cache_dir) read for the provider, with
 * stale = 1, while the leases in it are unexpired by the local estimate of
 * the store clock; after that it fails open (allowed = 1, fail_open = 1).
 * Returns FL_OK whenever a verdict was produced, stale or not.
 */
FL_EXTERN int fl_check(fl_store *st, const char *provider, const char *writer,
                       const char *token, fl_verdict *out);

/*
 * fl_check without a store round trip when this handle read the provider
 * less than max_age_ms ago (by fl_check or a previous refresh here): the
 * same rule, over the rows in memory, at the store time estimated from the
 * read plus CLOCK_MONOTONIC elapsed.  Otherwise it reads like fl_check.
 * For per-request checks in a gateway; max_age_ms 0 always reads.
 * Cost of an answer from memory: a hash lookup, the token's validation and
 * the rule, no allocation and no lock (0.1-0.2 µs; bench/ gwcheck).  A
 * handle remembers up to 4096 providers; past that the least recently read
 * is forgotten (its cache file, if any, remains).
 */
FL_EXTERN int fl_check_cached(fl_store *st, const char *provider, const char *writer,
                              const char *token, int64_t max_age_ms, fl_verdict *out);

/*
 * Block up to timeout_ms, or until the provider may have changed (PostgreSQL:
 * a NOTIFY from the store; SQLite: another connection committed).  Returns
 * FL_OK either way; it only says when to look again.  Like every call on st,
 * one thread at a time.
 */
FL_EXTERN int fl_wait_change(fl_store *st, const char *provider, int64_t timeout_ms);

/*
 * Keep the last state read by fl_check in files under dir (one small file
 * per provider, replaced atomically), so that separate processes such as
 * the CLI can answer from it when the store is down.  NULL turns it off
 * (the default): then only this handle's memory is used.
 */
FL_EXTERN int fl_set_cache_dir(fl_store *st, const char *dir);

/*
 * All live leases (active and pending), optionally of one provider (NULL:
 * all), ordered by provider then acquired time.  Tokens are empty.
 * *out is allocated; free it with fl_free().  *n may be 0 (then *out NULL).
 */
FL_EXTERN int fl_list(fl_store *st, const char *provider, fl_lease **out, size_t *n);

/*
 * The state of one provider from its live leases (n rows of one provider,
 * as fl_list returns them; n 0: FL_PSTATE_FREE), by the rule fl_check
 * applies: an active exclusive lease makes it EXCLUSIVE, else a pending
 * one DRAINING, else shared leases SHARED.  Pure: no store call.  For
 * listings that show providers rather than rows.  rows NULL with n > 0:
 * FL_PSTATE_FREE.
 */
FL_EXTERN fl_pstate fl_pstate_of(const fl_lease *rows, size_t n);

/*
 * History events, newest first, optionally of one provider, at most limit
 * (1..10000).  Allocated like fl_list.
 */
FL_EXTERN int fl_history(fl_store *st, const char *provider, size_t limit,
                         fl_event **out, size_t *n);

/* Delete every lapsed lease, recording an "expired" event for each. */
FL_EXTERN int fl_sweep(fl_store *st, size_t *expired);

FL_EXTERN void fl_free(void *p);

/* ---- Isolation reports --------------------------------------------- */

/*
 * A lease-aware gateway in front of a provider counts, for each exclusive
 * grant (provider + fence), what crossed it, and writes its counters to the
 * store; several gateways may front one provider, and a report is the sum
 * of theirs.  `fleetlease run` reads it when its job ends.
 */
#define FL_REPORT_WRITERS 16

typedef struct fl_report_writer {
    char writer[FL_TEXT_MAX + 1];
    int64_t refused;
} fl_report_writer;

typedef struct fl_report {
    char provider[FL_PROVIDER_MAX + 1];
    int64_t fence;                        /* the exclusive grant it is about */
    int gateways;                         /* fl_report_get: how many gateways reported */
    int final;                            /* put: this gateway saw the lease end;
                                             get: every reporting gateway did */
    int64_t foreign_in_flight_at_grant;   /* foreign requests in flight at the grant */
    int64_t concurrent_foreign_requests;  /* foreign requests admitted while active: must be 0 */
    int64_t foreign_refused;              /* foreign requests refused while pending or active */
    int64_t foreign_cut_off;              /* in flight when the drain timeout expired */
    int64_t holder_requests;              /* requests carrying the lease's token */
    int64_t updated_at_ms;                /* get: the latest report, store clock */
    size_t n_writers;                     /* refusals by writer, most first */
    fl_report_writer writers[FL_REPORT_WRITERS];
} fl_report;

/*
 * Store this gateway's counters (absolute values, not increments) for
 * r->provider / r->fence.  gateway names the reporter (1-256 bytes of
 * text, e.g. "host:port"); writer names must be distinct.  A final report
 * also writes an "isolation" history event whose detail holds the counts.
 */
FL_EXTERN int fl_report_put(fl_store *st, const char *gateway, const fl_report *r);

/* The sum over every gateway's report of one grant.  FL_ENOTFOUND if no
 * gateway reported on it. */
FL_EXTERN int fl_report_get(fl_store *st, const char *provider, int64_t fence,
                            fl_report *out);

/*
 * 1 when the report shows the grant isolated: no foreign request admitted
 * while it was active, and none still in flight at the host when it was
 * granted (which happens only when a drain timed out, or when requests
 * were forwarded unguarded while the store was unreachable or busy).  0 otherwise,
 * or for NULL.  The one rule behind `run --require-isolation` and a
 * scheduled run's outcome.
 */
FL_EXTERN int fl_report_isolated(const fl_report *r);

/* ---- Schedules: unattended benchmarks ------------------------------ */

/*
 * Schedules live in the store, so every daemon of a fleet sees the same
 * ones.  The library stores and validates their fields; cron expressions
 * are parsed by fl_cron_parse (lib/core/cron.c), and the command is opaque
 * text to the library (the fleetlease command stores a JSON array of argv).
 */
#define FL_SCHED_NAME_MAX 64      /* [A-Za-z0-9._-] */
#define FL_CRON_MAX 128
#define FL_TZ_MAX 64
#define FL_PROVIDERS_MAX 1024     /* comma-separated provider ids, tried in order */
#define FL_COMMAND_MAX 4096

typedef struct fl_schedule {
    char name[FL_SCHED_NAME_MAX + 1];
    char cron[FL_CRON_MAX + 1];
    char tz[FL_TZ_MAX + 1];                 /* "UTC" by default */
    char providers[FL_PROVIDERS_MAX + 1];
    char holder[FL_TEXT_MAX + 1];
    char purpose[FL_TEXT_MAX + 1];
    int64_t max_wait_ms;                    /* waiting for the host; then skipped */
    int64_t max_run_ms;                     /* the command is killed after this */
    int64_t ttl_ms;                         /* of the exclusive lease */
    char command[FL_COMMAND_MAX + 1];       /* valid UTF-8, no NUL */
    int64_t created_at_ms;                  /* store clock; set by the store */
} fl_schedule;

/* Insert, or replace the schedule of the same name.  FL_EINVAL names the
 * field (name, providers, holder, purpose, durations, command). */
FL_EXTERN int fl_schedule_put(fl_store *st, const fl_schedule *s);
/* FL_ENOTFOUND if there is no such schedule.  Past runs are kept. */
FL_EXTERN int fl_schedule_rm(fl_store *st, const char *name);
/* All schedules by name; free *out with fl_free. */
FL_EXTERN int fl_schedule_list(fl_store *st, fl_schedule **out, size_t *n);

typedef struct fl_sched_run {
    int64_t id;                              /* rises per store */
    char name[FL_SCHED_NAME_MAX + 1];
    int64_t due_at_ms;                       /* the cron instant this run is for */
    char claimed_by[FL_TEXT_MAX + 1];        /* the daemon that ran it */
    char outcome[16];                        /* running ok failed skipped lost */
    int64_t started_at_ms;                   /* claim time, store clock */
    int64_t ended_at_ms;                     /* 0 while running */
    char provider[FL_PROVIDER_MAX + 1];      /* the host it ran on ("" if none) */
    int64_t fence;                           /* its exclusive lease */
    int exit_status;                         /* -1 unless it ran to an exit */
    char detail[FL_MESSAGE_MAX];             /* why skipped/failed; the isolation report */
} fl_sched_run;

/*
 * Claim the run of schedule `name` due at due_at_ms for `daemon`.  Exactly
 * one caller per (name, due_at_ms) ever gets FL_OK, however many daemons
 * share the store; the others get FL_ECONFLICT.  The run is recorded as
 * "running" with *run_id.
 */
FL_EXTERN int fl_sched_claim(fl_store *st, const char *name, int64_t due_at_ms,
                             const char *daemon, int64_t *run_id);
/* Record how a claimed run ended: outcome (ok failed skipped lost),
 * provider, fence, exit_status and detail from r; ended_at is store-now. */
FL_EXTERN int fl_sched_finish(fl_store *st, int64_t run_id, const fl_sched_run *r);
/* Runs, newest first, of one schedule (NULL: all), at most limit (1..10000). */
FL_EXTERN int fl_sched_runs(fl_store *st, const char *name, size_t limit,
                            fl_sched_run **out, size_t *n);

/* ---- Cron ------------------------------------------------------------ */

/*
 * A parsed cron expression: five fields separated by blanks,
 *     minute 0-59   hour 0-23   day-of-month 1-31   month 1-12 or jan-dec
 *     day-of-week 0-7 or sun-sat (0 and 7 are Sunday)
 * each `*`, N, N-M, or a comma-separated list of them, any item with a
 * step /S (`*\/15`, `8-18/2`, and `5/20` meaning 5-max/20); names are
 * case-insensitive.  Macros: @hourly (0 * * * *), @daily and @midnight
 * (0 0 * * *), @weekly (0 0 * * 0), @monthly (0 0 1 * *), @yearly and
 * @annually (0 0 1 1 *).  As in Vixie cron, when both day fields are
 * restricted (neither begins with `*`) a day matches if either matches.
 * A day-of-month no listed month has (`0 0 30 2 *`) is refused.
 *
 * Time zones (tz): "UTC" (also "Z", "GMT"; NULL means UTC) or a fixed
 * offset east of Greenwich, ISO 8601 style: "UTC+02:00", "+05:30", "-8",
 * "-0800", between -12:00 and +14:00.  Named zones ("Europe/Berlin") are
 * refused: following daylight saving time needs the tz database, and the
 * libc way (localtime_r under $TZ) is process-global state.  A job that
 * must run at 02:00 Berlin time all year needs two schedules or UTC.
 *
 * Pure functions: thread-safe, no I/O, independent of $TZ and the locale.
 */
typedef struct fl_cron {
    uint64_t minute;   /* bit n set: minute n */
    uint32_t hour;     /* bit n: hour n */
    uint32_t mday;     /* bit n: day n of the month (1-31) */
    uint16_t month;    /* bit n: month n (1-12) */
    uint8_t wday;      /* bit n: weekday n (0 Sunday .. 6 Saturday) */
    int mday_star;     /* the day-of-month field began with '*' */
    int wday_star;     /* the day-of-week field began with '*' */
} fl_cron;

/*
 * Parse spec (at most FL_CRON_MAX bytes).  FL_EINVAL with err saying where:
 * "cron: field 2 (hour) at column 5: 25 is out of range 0-23" (columns
 * count bytes from 1).
 */
FL_EXTERN int fl_cron_parse(const char *spec, fl_cron *out, char *err, size_t errlen);

/* Validate tz (see above) and give its offset in minutes east of UTC.
 * NULL is UTC.  FL_EINVAL with err naming the supported forms. */
FL_EXTERN int fl_cron_tz(const char *tz, int32_t *offset_min, char *err, size_t errlen);

/*
 * The first instant strictly after after_ms (ms since the epoch, any
 * clock) at which c fires in tz, on a whole minute.  FL_EINVAL for a bad
 * tz or cron; FL_ENOTFOUND if it does not fire within nine years (never
 * for an expression fl_cron_parse accepted).
 */
FL_EXTERN int fl_cron_next(const fl_cron *c, const char *tz, int64_t after_ms,
                           int64_t *next_ms);

/* ---- Validation and formatting (what the CLI and HTTP API parse with) -- */

/* Each writes a message naming the field and the limit into err. */
FL_EXTERN int fl_validate_provider(const char *provider, char *err, size_t errlen);
FL_EXTERN int fl_validate_text(const char *field, const char *value, char *err, size_t errlen);
FL_EXTERN int fl_validate_token(const char *token, char *err, size_t errlen);

/*
 * Parse "500ms", "30s", "5m", "2h" (a decimal integer and one unit; also
 * "0" and "0s").  Result in ms.  Does not apply ttl/wait limits: see
 * fl_parse_ttl and fl_parse_wait, which also name `field` in err.
 */
FL_EXTERN int fl_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
FL_EXTERN int fl_parse_ttl(const char *field, const char *s, int64_t *ms, char *err, size_t errlen);
FL_EXTERN int fl_parse_wait(const char *field, const char *s, int64_t *ms, char *err, size_t errlen);
FL_EXTERN int fl_parse_mode(const char *s, fl_mode *mode, char *err, size_t errlen);

/* RFC 3339 UTC with milliseconds: "2026-12-03T18:30:00.250Z". FL_EINVAL if len < 25. */
FL_EXTERN int fl_format_time(int64_t ms, char *buf, size_t len);

/* ---- Grant lifecycle ------------------------------------------------- */

/*
 * A grant is a lease plus the machinery that keeps it: a heartbeat thread
 * that renews about every ttl/3 on its own store connection, and a local
 * deadline.  The deadline is measured on CLOCK_MONOTONIC from the moment
 * the last successful renew was *sent* (so it can only be early):
 *     deadline = last_sent + ttl - margin,  margin = min(ttl/4, 30s)
 * It always falls before the store's expiry.  If a renew fails for good
 * (FL_EEXPIRED, FL_ENOTFOUND) or the deadline passes without one, the grant
 * is lost: on_lost is called once, from an internal thread, and must only
 * set a flag or write to a pipe.  A transient failure (FL_EUNAVAIL) is
 * retried until the deadline.  kill_grace_ms = min(ttl/8, 10s) is the time
 * a wrapper should give its job between SIGTERM and SIGKILL, so that the
 * job is gone before the store's expiry.
 */
typedef struct fl_grant fl_grant;

typedef void (*fl_lost_fn)(fl_grant *g, int code, const char *why, void *arg);

typedef struct fl_grant_opts {
    const char *url;        /* NULL: fl_resolve_url(NULL) */
    const char *provider;
    const char *holder;
    const char *purpose;
    fl_mode mode;
    int64_t ttl_ms;
    int64_t wait_ms;
    fl_lost_fn on_lost;     /* may be NULL; poll fl_grant_lost() then */
    void *arg;
} fl_grant_opts;

/*
 * Acquire and start heartbeating.  On FL_ECONFLICT, `conflict` (may be NULL)
 * holds the refusal.  On any failure err (may be NULL) holds the message and
 * *out is NULL.
 */
FL_EXTERN int fl_grant_acquire(const fl_grant_opts *opts, fl_grant **out,
                               fl_verdict *conflict, char *err, size_t errlen);

/* Copy the lease as last renewed into *out (the heartbeat thread updates
 * it, so it is copied under the grant's lock).  FL_EINVAL on NULL. */
FL_EXTERN int fl_grant_lease(const fl_grant *g, fl_lease *out);

/* 0 while held; else the fl_code that lost it (FL_ELOST, FL_EEXPIRED, ...). */
FL_EXTERN int fl_grant_lost(const fl_grant *g);

/* Milliseconds left before the local deadline (<= 0 once passed). */
FL_EXTERN int64_t fl_grant_time_left(const fl_grant *g);

FL_EXTERN int64_t fl_grant_kill_grace(const fl_grant *g);

/*
 * Stop heartbeating, release the lease and free g.  Returns FL_OK, or why
 * the lease was not held to the end: the code that lost it (FL_ELOST,
 * FL_EEXPIRED, FL_ENOTFOUND), else the release's own error.  After a local
 * loss (FL_ELOST) the release is still attempted, since the store may hold
 * the lease yet and releasing frees the host before its expiry.  No renew is
 * sent after this returns.  NULL is a no-op returning FL_OK.
 */
FL_EXTERN int fl_grant_release(fl_grant *g);

#ifdef __cplusplus
}
#endif
#endif /* FLEETLEASE_H */
