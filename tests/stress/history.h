/*
 * tests/stress/history.h -- the one place that turns a provider's history
 * table into grant validity intervals and judges them.  Used by race32 and
 * by flstress; public API only (fl_event), so it judges what any user could
 * read back from the store.
 *
 * A grant is identified by (provider, fence): tokens never appear in the
 * history.  Its validity interval on the store's clock is
 *     [granted.at, end)   end = released.at, else the lapsed expiry (the
 *                         "expired" event's expires_at, or the last
 *                         granted/renewed expiry when nothing cleared it)
 * Half-open: at expires_at the lease is already gone (fleetlease.h).
 */
#ifndef FL_STRESS_HISTORY_H
#define FL_STRESS_HISTORY_H

#include "fleetlease.h"

#include <stddef.h>
#include <stdint.h>

/* Kinds of violation, counted separately so a report says which property
 * broke.  Names in hs_kind_name(). */
typedef enum hs_kind {
    HS_OVERLAP = 0, /* an exclusive interval meets another interval */
    HS_FENCE,       /* fence not rising in grant order, or reused */
    HS_STALE,       /* renew/release of a lapsed or ended grant succeeded */
    HS_UNKNOWN,     /* an event (or a worker's success) for a grant the history lacks */
    HS_LIVENESS,    /* a lapsed provider was not granted again in time to a waiter */
    HS_DRAIN,       /* a shared grant while an exclusive intent was pending */
    HS_STARVE,      /* a waiting exclusive not granted once the holders left */
    HS_WORK,        /* a grant holder worked past its deadline or its store expiry */
    HS_HISTORY,     /* the history cannot be checked (truncated, unreadable) */
    HS_NKINDS
} hs_kind;

typedef struct hs_tally {
    long count[HS_NKINDS];
    long printed;   /* details printed so far; capped so a broken build stays readable */
    long print_max;
} hs_tally;

const char *hs_kind_name(hs_kind k);
long hs_total(const hs_tally *t);

/* Count one violation; print "VIOLATION <kind>: <message>" to stderr for
 * the first print_max of them. */
void hs_violation(hs_tally *t, hs_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct hs_grant {
    int64_t id;        /* history id of the "granted" event: grant order */
    int64_t fence;
    int64_t start;     /* granted.at */
    int64_t exp;       /* latest expiry (granted/renewed) */
    int64_t end;       /* end of validity (see above) */
    int released;      /* 1: ended by release; 0: lapsed or still live */
    int expired_event; /* 1: an "expired" event recorded the lapse */
    int renewals;
    fl_mode mode;
    char holder[64];   /* for messages; stress holders are short */
} hs_grant;

typedef struct hs_set {
    hs_grant *g;          /* in grant (history id) order */
    size_t n;
    hs_grant **by_fence;  /* the same grants, sorted by fence */
} hs_set;

/*
 * Build the grants of one provider from its history, oldest first (as
 * ts_history returns it), judging as it goes:
 *   - fences rise strictly in grant order and are never reused (HS_FENCE);
 *   - a renew or release is recorded only before the lapse (HS_STALE);
 *   - every event names a fence granted earlier and not yet ended (HS_UNKNOWN);
 *   - an "expired" event names the grant's last expiry (HS_STALE).
 * Exits on out of memory.  Free with hs_set_free.
 */
void hs_build(const fl_event *ev, size_t n, const char *provider, hs_tally *t, hs_set *out);
void hs_set_free(hs_set *s);

/* The grant with this fence, or NULL. */
hs_grant *hs_find(const hs_set *s, int64_t fence);

/* Report every exclusive interval that overlaps another interval of the
 * provider (HS_OVERLAP).  Returns the number of exclusive grants. */
long hs_overlaps(const hs_set *s, const char *provider, hs_tally *t);

/* [a0,a1) and [b0,b1) share an instant. */
static inline int hs_meet(int64_t a0, int64_t a1, int64_t b0, int64_t b1)
{
    return a0 < b1 && b0 < a1;
}

#endif
