/*
 * lib/core/core.h -- the pure logic of fleetlease: no I/O, no clocks, no
 * allocation.  Every store, the check helper and (later) the gateway decide
 * through these functions, so the rules exist in exactly one place.  The
 * PostgreSQL store mirrors fl__decide() in PL/pgSQL (one round trip); the
 * conformance suite pins both to the same outcomes.
 */
#ifndef FL_CORE_H
#define FL_CORE_H

#include "fleetlease.h"

#include <stdarg.h>

/* Internal cross-file names are fl__; they are hidden from the shared
 * library by -fvisibility=hidden. */

/* snprintf into err (NULL or len 0: nothing).  Never overflows. */
void fl__fmt(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Concatenate the strings up to a NULL into dst, truncating like fl__fmt
 * (always terminated).  The hot messages (a check per gateway request)
 * are built with it: vsnprintf costs more than the whole rest of a check. */
void fl__cat(char *dst, size_t len, ...) __attribute__((sentinel));

/* fl_validate_text with another length limit (a schedule's command). */
int fl__validate_text_max(const char *field, const char *value, size_t max, char *err,
                          size_t errlen);

/* Bounded copy; returns FL_EINVAL (and copies nothing) if src does not fit. */
int fl__copy(char *dst, size_t cap, const char *src);

/* A lease row counts iff it is live at now_ms: expires_at_ms > now_ms. */
int fl__live(const fl_lease *l, int64_t now_ms);

/*
 * The conflict decision.  `rows` are the provider's lease rows as read under
 * the store's lock (expired ones may be included: they are ignored).
 * `my_token` is the requester's token (its own pending intent, if any, has
 * it).  `may_pend`: the request is exclusive and still willing to wait.
 *
 * SHARED:     active exclusive          -> REFUSE (EXCLUSIVE)
 *             any pending exclusive     -> REFUSE (DRAINING)
 *             otherwise                 -> GRANT
 * EXCLUSIVE:  pending of someone else   -> REFUSE (DRAINING)
 *             active exclusive          -> PEND if may_pend, else REFUSE (EXCLUSIVE)
 *             shared holders            -> PEND if may_pend, else REFUSE (SHARED)
 *             otherwise                 -> GRANT (PROMOTE if my pending row exists)
 * At most one pending intent exists per provider: the first exclusive
 * waiter holds it; later ones are refused as DRAINING until it is granted.
 */
typedef enum fl__outcome {
    FL__GRANT = 1,   /* insert a new active row */
    FL__PROMOTE = 2, /* turn my pending row into the active grant */
    FL__PEND = 3,    /* insert or refresh my pending row; not granted yet */
    FL__REFUSE = 4   /* write nothing */
} fl__outcome;

typedef struct fl__decision {
    fl__outcome outcome;
    fl_pstate state;           /* the provider's state as the requester sees it */
    int shared_count;          /* live active shared rows */
    const fl_lease *blocker;   /* PEND/REFUSE: the row that blocks (points into rows), or NULL */
    const fl_lease *mine;      /* my live pending row, or NULL */
} fl__decision;

void fl__decide(const fl_lease *rows, size_t n, int64_t now_ms, fl_mode mode,
                const char *my_token, int may_pend, fl__decision *d);

/*
 * The check decision (the honor protocol).  Fills every field of *v except
 * stale/fail_open, which the caller sets.  A writer equal to the active
 * exclusive holder's name, or presenting its token, is allowed.  While an
 * exclusive is pending (draining) every writer is refused.
 */
void fl__verdict(const fl_lease *rows, size_t n, int64_t now_ms,
                 const char *writer, const char *token, fl_verdict *v);

/*
 * Fill v->message for a refusal by `blocker` in `state`:
 *   EXCLUSIVE: "host leased for <purpose> by <holder> until <RFC 3339>"
 *   DRAINING:  the same + " (draining: exclusive pending)"; blocker is the
 *              pending intent, so <time> is the intent's (short) expiry
 *   SHARED (an exclusive request met shared holders; blocker is the shared
 *              row with the latest expiry):
 *              the same + " (shared by <N> holder[s])"
 * Also sets allowed = 0, blocker (token cleared), state, shared_count,
 * now_ms and retry_after_ms = max(1000, blocker expiry - now_ms).
 * fl__verdict's allowed messages are "free", "shared by <N> holder(s)" and
 * "leased to you (<holder>) until <RFC 3339>".
 */
void fl__refusal(const fl_lease *blocker, fl_pstate state, int shared_count,
                 int64_t now_ms, fl_verdict *v);

/* Token: 32 lowercase hex digits from 16 random bytes. */
void fl__token_hex(const unsigned char raw[16], char out[FL_TOKEN_LEN + 1]);

/* "shared"/"exclusive" -> mode; "active"/"pending" -> state.  0 on failure. */
fl_mode fl__mode_from(const char *s);
fl_lease_state fl__state_from(const char *s);
const char *fl__state_name(fl_lease_state s);

/*
 * Grant timing (see fl_grant in fleetlease.h).  All in ms.
 *   heartbeat interval = ttl/3
 *   retry interval after a transient failure = max(ttl/10, 100)
 *   margin = min(ttl/4, 30000); deadline = last_sent + ttl - margin
 *   kill grace = min(ttl/8, 10000)
 *   pending intent lifetime = min(ttl, 5000), refreshed on every attempt
 */
int64_t fl__hb_interval(int64_t ttl_ms);
int64_t fl__hb_retry(int64_t ttl_ms);
int64_t fl__margin(int64_t ttl_ms);
int64_t fl__kill_grace(int64_t ttl_ms);
int64_t fl__pending_ttl(int64_t ttl_ms);

/*
 * A pending intent with more than half its lifetime left need not be
 * refreshed by this attempt: refreshing on every poll would make each poll
 * a durable commit.  mine may be NULL (0).  fl_acquire() in the PostgreSQL
 * store's PL/pgSQL applies the same rule.
 */
int fl__pending_fresh(const fl_lease *mine, int64_t now_ms, int64_t pending_ttl_ms);

/*
 * Jittered exponential back-off for waiters: attempt 0 -> ~50ms, doubling
 * to a cap of `cap_ms`; the result is uniformly in [d/2, d] using `rnd`
 * (any 32 random bits).  Never returns less than 10ms.
 */
int64_t fl__backoff(unsigned attempt, int64_t cap_ms, uint32_t rnd);

#endif
