/*
 * lib/core/decide.c -- the conflict decision (acquire) and the check
 * decision (the honor protocol), and the refusal message both produce.
 * Pure: the caller supplies the rows and the store's clock.  The PostgreSQL
 * store mirrors fl__decide() in PL/pgSQL; any change here must be made there
 * too, and the conformance suite pins the two together.
 */
#include "core/core.h"

#include <string.h>

int fl__live(const fl_lease *l, int64_t now_ms)
{
    /* Strict: at expires_at the lease is already gone (fleetlease.h). */
    return l && l->expires_at_ms > now_ms;
}

/*
 * What the live rows of a provider amount to.  Duplicates should not exist
 * (one active exclusive, one pending intent), but the choice among them is
 * deterministic so that every store and the check agree even if they do:
 * the active exclusive and the shared row that block the longest (latest
 * expires_at), and the oldest pending intent (earliest acquired_at), which
 * is the one the one-intent rule would have let in.
 */
typedef struct scan {
    const fl_lease *excl;     /* active exclusive */
    const fl_lease *pending;  /* the pending intent */
    const fl_lease *mine;     /* my pending row */
    const fl_lease *shared;   /* active shared, latest expiry */
    int shared_count;
} scan;

static int same_token(const char *a, const char *b)
{
    /* Constant time over the token length: a check must not leak, through
     * its timing, how much of a guessed token was right. */
    unsigned char diff = 0;

    if (!a || !b || strnlen(a, FL_TOKEN_LEN + 1) != FL_TOKEN_LEN ||
        strnlen(b, FL_TOKEN_LEN + 1) != FL_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < FL_TOKEN_LEN; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static void scan_rows(const fl_lease *rows, size_t n, int64_t now_ms, const char *my_token,
                      scan *sc)
{
    memset(sc, 0, sizeof *sc);
    for (size_t i = 0; i < n; i++) {
        const fl_lease *r = &rows[i];
        if (!fl__live(r, now_ms))
            continue;
        if (r->state == FL_LEASE_PENDING) {
            if (!sc->pending || r->acquired_at_ms < sc->pending->acquired_at_ms)
                sc->pending = r;
            if (!sc->mine && same_token(r->token, my_token))
                sc->mine = r;
        } else if (r->mode == FL_EXCLUSIVE) {
            if (!sc->excl || r->expires_at_ms > sc->excl->expires_at_ms)
                sc->excl = r;
        } else {
            sc->shared_count++;
            if (!sc->shared || r->expires_at_ms > sc->shared->expires_at_ms)
                sc->shared = r;
        }
    }
}

static void outcome(fl__decision *d, fl__outcome o, fl_pstate state, const fl_lease *blocker)
{
    d->outcome = o;
    d->state = state;
    d->blocker = blocker;
}

/*
 * d->state is the state that decided: the blocker's (EXCLUSIVE, DRAINING,
 * SHARED) for PEND and REFUSE; for GRANT/PROMOTE the state the grant was
 * made in, ignoring my own pending intent (FREE or SHARED).
 */
void fl__decide(const fl_lease *rows, size_t n, int64_t now_ms, fl_mode mode,
                const char *my_token, int may_pend, fl__decision *d)
{
    scan sc;

    scan_rows(rows, n, now_ms, my_token, &sc);
    memset(d, 0, sizeof *d);
    d->shared_count = sc.shared_count;
    d->mine = sc.mine;

    if (mode != FL_EXCLUSIVE) {
        /* A shared request never pends: may_pend is ignored. */
        if (sc.excl)
            outcome(d, FL__REFUSE, FL_PSTATE_EXCLUSIVE, sc.excl);
        else if (sc.pending)
            outcome(d, FL__REFUSE, FL_PSTATE_DRAINING, sc.pending);
        else
            outcome(d, FL__GRANT, sc.shared_count ? FL_PSTATE_SHARED : FL_PSTATE_FREE, NULL);
        return;
    }
    if (sc.pending && sc.pending != sc.mine) {
        outcome(d, FL__REFUSE, FL_PSTATE_DRAINING, sc.pending);
        return;
    }
#ifndef FL_BROKEN_DECIDE /* test-only build: grant over other holders */
    if (sc.excl) {
        outcome(d, may_pend ? FL__PEND : FL__REFUSE, FL_PSTATE_EXCLUSIVE, sc.excl);
        return;
    }
    if (sc.shared_count) {
        outcome(d, may_pend ? FL__PEND : FL__REFUSE, FL_PSTATE_SHARED, sc.shared);
        return;
    }
#else
    (void)may_pend;
#endif
    outcome(d, sc.mine ? FL__PROMOTE : FL__GRANT, FL_PSTATE_FREE, NULL);
}

/* The "until" time of a message; a value gmtime cannot render still gives
 * a readable message rather than none. */
static void until(int64_t ms, char buf[64])
{
    if (fl_format_time(ms, buf, 64) != FL_OK)
        fl__copy(buf, 64, "(unrepresentable time)");
}

void fl__refusal(const fl_lease *blocker, fl_pstate state, int shared_count,
                 int64_t now_ms, fl_verdict *v)
{
    char when[64];
    int64_t left;

    v->allowed = 0;
    v->state = state;
    v->shared_count = shared_count;
    v->now_ms = now_ms;
    v->retry_after_ms = 1000;
    memset(&v->blocker, 0, sizeof v->blocker);
    if (!blocker) {
        /* Every refusal from fl__decide names a blocker; this only keeps a
         * caller's mistake from printing garbage. */
        fl__fmt(v->message, sizeof v->message, "host %s", fl_pstate_name(state));
        return;
    }
    v->blocker = *blocker;
    /* The token is the holder's capability; a refused party never sees it. */
    memset(v->blocker.token, 0, sizeof v->blocker.token);
    if (!__builtin_sub_overflow(blocker->expires_at_ms, now_ms, &left) && left > 1000)
        v->retry_after_ms = left;
    until(blocker->expires_at_ms, when);
    /* One format for every refusal, so that writers and operators can rely
     * on its prefix; the state only adds a suffix. */
    char suffix[64];
    suffix[0] = '\0';
    if (state == FL_PSTATE_DRAINING)
        fl__copy(suffix, sizeof suffix, " (draining: exclusive pending)");
    else if (state == FL_PSTATE_SHARED)
        fl__fmt(suffix, sizeof suffix, " (shared by %d holder%s)", shared_count,
                shared_count == 1 ? "" : "s");
    fl__cat(v->message, sizeof v->message, "host leased for ", blocker->purpose, " by ",
            blocker->holder, " until ", when, suffix, (char *)NULL);
}

fl_pstate fl_pstate_of(const fl_lease *rows, size_t n)
{
    scan sc;

    if (!rows)
        return FL_PSTATE_FREE;
    scan_rows(rows, n, INT64_MIN, NULL, &sc);  /* the rows are live: count them all */
    return sc.excl ? FL_PSTATE_EXCLUSIVE
           : sc.pending ? FL_PSTATE_DRAINING
           : sc.shared_count ? FL_PSTATE_SHARED
                             : FL_PSTATE_FREE;
}

void fl__verdict(const fl_lease *rows, size_t n, int64_t now_ms,
                 const char *writer, const char *token, fl_verdict *v)
{
    char when[64];
    scan sc;

    scan_rows(rows, n, now_ms, NULL, &sc);
    /* Field by field rather than memset: stale and fail_open belong to the
     * caller and may be set before or after this call. */
    v->allowed = 0;
    v->state = FL_PSTATE_FREE;
    v->shared_count = sc.shared_count;
    memset(&v->blocker, 0, sizeof v->blocker);
    v->retry_after_ms = 0;
    v->now_ms = now_ms;
    v->message[0] = '\0';

    /* An active exclusive outranks a pending intent queued behind it: the
     * benchmark that holds the host must keep dispatching to it. */
    if (sc.excl) {
        if ((writer && strcmp(writer, sc.excl->holder) == 0) || same_token(token, sc.excl->token)) {
            v->allowed = 1;
            v->state = FL_PSTATE_EXCLUSIVE;
            until(sc.excl->expires_at_ms, when);
            fl__cat(v->message, sizeof v->message, "leased to you (", sc.excl->holder,
                    ") until ", when, (char *)NULL);
        } else {
            fl__refusal(sc.excl, FL_PSTATE_EXCLUSIVE, sc.shared_count, now_ms, v);
        }
        return;
    }
    if (sc.pending) {
        fl__refusal(sc.pending, FL_PSTATE_DRAINING, sc.shared_count, now_ms, v);
        return;
    }
    v->allowed = 1;
    if (sc.shared_count) {
        v->state = FL_PSTATE_SHARED;
        fl__fmt(v->message, sizeof v->message, "shared by %d holder(s)", sc.shared_count);
    } else {
        v->state = FL_PSTATE_FREE;
        fl__copy(v->message, sizeof v->message, "free");
    }
}
