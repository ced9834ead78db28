/*
 * lib/report.c -- isolation reports: the counters a lease-aware gateway
 * keeps per exclusive grant, stored so that the holder (fleetlease run),
 * the daemon and the audit history all read the same numbers.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

int fl_report_put(fl_store *st, const char *gateway, const fl_report *r)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    char e[FL_MESSAGE_MAX] = "";
    if (!r)
        return fl__store_err(st, FL_EINVAL, "fl_report_put: report must not be NULL");
    if ((rc = fl_validate_text("gateway", gateway, e, sizeof e)) != FL_OK ||
        (rc = fl_validate_provider(r->provider, e, sizeof e)) != FL_OK)
        return fl__store_err(st, rc, "%s", e);
    if (r->fence <= 0)
        return fl__store_err(st, FL_EINVAL, "fence: must be a granted lease's fence (> 0)");
    const int64_t *counts[] = {&r->foreign_in_flight_at_grant, &r->concurrent_foreign_requests,
                               &r->foreign_refused, &r->foreign_cut_off, &r->holder_requests};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (*counts[i] < 0)
            return fl__store_err(st, FL_EINVAL, "report: counters must not be negative");
    if (r->n_writers > FL_REPORT_WRITERS)
        return fl__store_err(st, FL_EINVAL, "report: at most %d writers, got %zu",
                             FL_REPORT_WRITERS, r->n_writers);
    for (size_t i = 0; i < r->n_writers; i++) {
        if ((rc = fl_validate_text("writer", r->writers[i].writer, e, sizeof e)) != FL_OK)
            return fl__store_err(st, rc, "%s", e);
        if (r->writers[i].refused < 0)
            return fl__store_err(st, FL_EINVAL, "report: counters must not be negative");
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->writers[i].writer, r->writers[j].writer) == 0)
                return fl__store_err(st, FL_EINVAL, "report: writer \"%s\" listed twice",
                                     r->writers[i].writer);
    }
    char detail[FL_MESSAGE_MAX];
    snprintf(detail, sizeof detail,
             "concurrent_foreign_requests=%lld foreign_in_flight_at_grant=%lld "
             "foreign_refused=%lld foreign_cut_off=%lld holder_requests=%lld",
             (long long)r->concurrent_foreign_requests, (long long)r->foreign_in_flight_at_grant,
             (long long)r->foreign_refused, (long long)r->foreign_cut_off,
             (long long)r->holder_requests);
    return st->ops->report_put(st, gateway, r, detail);
}

int fl_report_get(fl_store *st, const char *provider, int64_t fence, fl_report *out)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    char e[FL_MESSAGE_MAX] = "";
    if (!out)
        return fl__store_err(st, FL_EINVAL, "fl_report_get: out must not be NULL");
    if ((rc = fl_validate_provider(provider, e, sizeof e)) != FL_OK)
        return fl__store_err(st, rc, "%s", e);
    memset(out, 0, sizeof *out);
    fl__copy(out->provider, sizeof out->provider, provider);
    out->fence = fence;
    return st->ops->report_get(st, provider, fence, out);
}

int fl_report_isolated(const fl_report *r)
{
    return r && r->concurrent_foreign_requests == 0 && r->foreign_in_flight_at_grant == 0;
}
