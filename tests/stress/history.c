/*
 * tests/stress/history.c -- grant intervals from the history table, and the
 * checks that need nothing but the history.  See history.h.
 */
#include "history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[HS_NKINDS] = {
    [HS_OVERLAP] = "overlap",   [HS_FENCE] = "fence",     [HS_STALE] = "stale-token",
    [HS_UNKNOWN] = "unknown",   [HS_LIVENESS] = "regrant", [HS_DRAIN] = "draining",
    [HS_STARVE] = "starvation", [HS_WORK] = "work-after-loss", [HS_HISTORY] = "history",
};

const char *hs_kind_name(hs_kind k)
{
    return k < HS_NKINDS ? kind_names[k] : "?";
}

long hs_total(const hs_tally *t)
{
    long sum = 0;
    for (int k = 0; k < HS_NKINDS; k++)
        sum += t->count[k];
    return sum;
}

void hs_violation(hs_tally *t, hs_kind kind, const char *fmt, ...)
{
    t->count[kind]++;
    long max = t->print_max > 0 ? t->print_max : 20;
    if (t->printed++ >= max)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "VIOLATION %s: %s\n", hs_kind_name(kind), msg);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "history: out of memory\n");
        exit(1);
    }
    return p;
}

static int cmp_fence(const void *a, const void *b)
{
    const hs_grant *x = *(const hs_grant *const *)a, *y = *(const hs_grant *const *)b;
    if (x->fence != y->fence)
        return x->fence < y->fence ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

hs_grant *hs_find(const hs_set *s, int64_t fence)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->by_fence[mid]->fence < fence)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->by_fence[lo]->fence == fence ? s->by_fence[lo] : NULL;
}

void hs_build(const fl_event *ev, size_t n, const char *p, hs_tally *t, hs_set *out)
{
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        ng += strcmp(ev[i].event, "granted") == 0;
    out->g = xcalloc(ng, sizeof *out->g);
    out->by_fence = xcalloc(ng, sizeof *out->by_fence);
    out->n = ng;

    /* Grants in history order (ids rise); fences must rise with them. */
    size_t k = 0;
    int64_t last_fence = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].event, "granted") != 0)
            continue;
        if (ev[i].fence <= last_fence)
            hs_violation(t, HS_FENCE, "%s: grant #%lld has fence %lld after fence %lld", p,
                         (long long)ev[i].id, (long long)ev[i].fence, (long long)last_fence);
        if (ev[i].fence > last_fence)
            last_fence = ev[i].fence;
        hs_grant *g = &out->g[k];
        *g = (hs_grant){.id = ev[i].id, .fence = ev[i].fence, .start = ev[i].at_ms,
                        .exp = ev[i].expires_at_ms, .end = -1, .mode = ev[i].mode};
        snprintf(g->holder, sizeof g->holder, "%.63s", ev[i].holder);
        out->by_fence[k] = g;
        k++;
    }
    if (ng > 0)
        qsort(out->by_fence, ng, sizeof *out->by_fence, cmp_fence);
    for (size_t i = 1; i < ng; i++)
        if (out->by_fence[i]->fence == out->by_fence[i - 1]->fence)
            hs_violation(t, HS_FENCE, "%s: fence %lld granted twice", p,
                         (long long)out->by_fence[i]->fence);

    /* Walk the other transitions in order, matched by fence.  Pending
     * intents (fence 0) are judged by the caller that knows who waited. */
    for (size_t i = 0; i < n; i++) {
        const fl_event *e = &ev[i];
        if (strcmp(e->event, "granted") == 0 || strcmp(e->event, "refused") == 0 ||
            strcmp(e->event, "pending") == 0)
            continue;
        if (e->fence == 0 && strcmp(e->event, "expired") == 0)
            continue; /* a lapsed pending intent */
        hs_grant *x = hs_find(out, e->fence);
        if (x == NULL || e->id < x->id) {
            hs_violation(t, HS_UNKNOWN, "%s: %s event #%lld for fence %lld that was never granted",
                         p, e->event, (long long)e->id, (long long)e->fence);
            continue;
        }
        if (x->end >= 0) {
            hs_violation(t, HS_STALE, "%s: %s event #%lld for fence %lld after it had ended", p,
                         e->event, (long long)e->id, (long long)e->fence);
            continue;
        }
        if (strcmp(e->event, "renewed") == 0) {
            if (e->at_ms >= x->exp)
                hs_violation(t, HS_STALE, "%s: fence %lld renewed at %lld, lapsed at %lld", p,
                             (long long)x->fence, (long long)e->at_ms, (long long)x->exp);
            x->exp = e->expires_at_ms;
            x->renewals++;
        } else if (strcmp(e->event, "released") == 0) {
            if (e->at_ms >= x->exp)
                hs_violation(t, HS_STALE, "%s: fence %lld released at %lld, lapsed at %lld", p,
                             (long long)x->fence, (long long)e->at_ms, (long long)x->exp);
            x->end = e->at_ms < x->exp ? e->at_ms : x->exp;
            x->released = 1;
        } else if (strcmp(e->event, "expired") == 0) {
            if (e->expires_at_ms != x->exp)
                hs_violation(t, HS_STALE, "%s: fence %lld expired at %lld, but its expiry was %lld",
                             p, (long long)x->fence, (long long)e->expires_at_ms,
                             (long long)x->exp);
            x->end = x->exp;
            x->expired_event = 1;
        } else {
            hs_violation(t, HS_UNKNOWN, "%s: unknown event \"%s\"", p, e->event);
        }
    }
    for (size_t i = 0; i < ng; i++)
        if (out->g[i].end < 0)
            out->g[i].end = out->g[i].exp; /* lapsed (or still live) and not yet cleared */
}

void hs_set_free(hs_set *s)
{
    free(s->g);
    free(s->by_fence);
    memset(s, 0, sizeof *s);
}

static int cmp_start(const void *a, const void *b)
{
    const hs_grant *x = *(const hs_grant *const *)a, *y = *(const hs_grant *const *)b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

long hs_overlaps(const hs_set *s, const char *p, hs_tally *t)
{
    /* Sorted by start, an interval can only meet later ones that start
     * before it ends: O(n * concurrent) rather than O(n^2). */
    hs_grant **by_start = xcalloc(s->n, sizeof *by_start);
    for (size_t i = 0; i < s->n; i++)
        by_start[i] = &s->g[i];
    if (s->n > 0)
        qsort(by_start, s->n, sizeof *by_start, cmp_start);
    long excl = 0;
    for (size_t i = 0; i < s->n; i++) {
        const hs_grant *a = by_start[i];
        excl += a->mode == FL_EXCLUSIVE;
        for (size_t j = i + 1; j < s->n && by_start[j]->start < a->end; j++) {
            const hs_grant *b = by_start[j];
            if (a->mode != FL_EXCLUSIVE && b->mode != FL_EXCLUSIVE)
                continue;
            if (hs_meet(a->start, a->end, b->start, b->end))
                hs_violation(t, HS_OVERLAP,
                             "%s: %s fence %lld by %s [%lld,%lld) overlaps %s fence %lld by %s "
                             "[%lld,%lld)",
                             p, fl_mode_name(a->mode), (long long)a->fence, a->holder,
                             (long long)a->start, (long long)a->end, fl_mode_name(b->mode),
                             (long long)b->fence, b->holder, (long long)b->start,
                             (long long)b->end);
        }
    }
    free(by_start);
    return excl;
}
