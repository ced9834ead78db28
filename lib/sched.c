/*
 * lib/sched.c -- schedules and their runs: validation, and the mapping of
 * result rows to structs that both stores share.  The exactly-once claim
 * is the store's: a run is a row unique on (name, due_at), inserted by
 * whichever daemon gets there first.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#define CHECK_ARG(call)                                                        \
    do {                                                                       \
        char e_[FL_MESSAGE_MAX] = "";                                          \
        int r_ = (call);                                                       \
        if (r_ != FL_OK)                                                       \
            return fl__store_err(st, r_, "%s", e_);                            \
    } while (0)

static int valid_name(const char *name, char *err, size_t len)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > FL_SCHED_NAME_MAX) {
        fl__fmt(err, len, "name: must be 1-%d bytes of [A-Za-z0-9._-], got %zu bytes",
                FL_SCHED_NAME_MAX, n);
        return FL_EINVAL;
    }
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            fl__fmt(err, len, "name: must be 1-%d bytes of [A-Za-z0-9._-]; byte %zu is not",
                    FL_SCHED_NAME_MAX, (size_t)(p - name) + 1);
            return FL_EINVAL;
        }
    }
    return FL_OK;
}

/* Printable ASCII only: cron specs and zone names are never anything else. */
static int valid_ascii(const char *field, const char *v, size_t max, char *err, size_t len)
{
    size_t n = strlen(v);
    if (n == 0 || n > max) {
        fl__fmt(err, len, "%s: must be 1-%zu bytes, got %zu", field, max, n);
        return FL_EINVAL;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            fl__fmt(err, len, "%s: must be printable ASCII; byte %zu is not", field,
                    (size_t)(p - v) + 1);
            return FL_EINVAL;
        }
    return FL_OK;
}

static int valid_providers(const char *list, char *err, size_t len)
{
    size_t n = strlen(list);
    if (n == 0 || n > FL_PROVIDERS_MAX) {
        fl__fmt(err, len, "providers: must be 1-%d bytes (comma-separated ids), got %zu",
                FL_PROVIDERS_MAX, n);
        return FL_EINVAL;
    }
    char one[FL_PROVIDER_MAX + 2];
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t k = comma ? (size_t)(comma - p) : strlen(p);
        if (k == 0 || k > FL_PROVIDER_MAX) {
            fl__fmt(err, len, "providers: each id must be 1-%d bytes; \"%.40s\" has an empty "
                    "or too long entry", FL_PROVIDER_MAX, list);
            return FL_EINVAL;
        }
        memcpy(one, p, k);
        one[k] = '\0';
        int rc = fl_validate_provider(one, err, len);
        if (rc != FL_OK)
            return rc;
        if (!comma)
            return FL_OK;
        p = comma + 1;
    }
}

static int range(const char *field, int64_t v, int64_t lo, int64_t hi, char *err, size_t len)
{
    if (v >= lo && v <= hi)
        return FL_OK;
    fl__fmt(err, len, "%s: must be between %lldms and %lldms, got %lldms", field,
            (long long)lo, (long long)hi, (long long)v);
    return FL_EINVAL;
}

int fl_schedule_put(fl_store *st, const fl_schedule *s)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!s)
        return fl__store_err(st, FL_EINVAL, "fl_schedule_put: schedule must not be NULL");
    CHECK_ARG(valid_name(s->name, e_, sizeof e_));
    CHECK_ARG(valid_ascii("cron", s->cron, FL_CRON_MAX, e_, sizeof e_));
    CHECK_ARG(valid_ascii("tz", s->tz, FL_TZ_MAX, e_, sizeof e_));
    CHECK_ARG(valid_providers(s->providers, e_, sizeof e_));
    CHECK_ARG(fl_validate_text("holder", s->holder, e_, sizeof e_));
    CHECK_ARG(fl_validate_text("purpose", s->purpose, e_, sizeof e_));
    CHECK_ARG(range("max_wait", s->max_wait_ms, 0, FL_WAIT_MAX_MS, e_, sizeof e_));
    CHECK_ARG(range("max_run", s->max_run_ms, 1000, FL_WAIT_MAX_MS, e_, sizeof e_));
    CHECK_ARG(range("ttl", s->ttl_ms, FL_TTL_MIN_MS, FL_TTL_MAX_MS, e_, sizeof e_));
    /* The command is text to the library (the CLI stores a JSON array of
     * argv, which has no control characters), bounded. */
    CHECK_ARG(fl__validate_text_max("command", s->command, FL_COMMAND_MAX, e_, sizeof e_));
    return st->ops->sched_put(st, s);
}

int fl_schedule_rm(fl_store *st, const char *name)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    CHECK_ARG(valid_name(name, e_, sizeof e_));
    return st->ops->sched_rm(st, name);
}

int fl_schedule_list(fl_store *st, fl_schedule **out, size_t *n)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!out || !n)
        return fl__store_err(st, FL_EINVAL, "fl_schedule_list: out and n must not be NULL");
    *out = NULL;
    *n = 0;
    return st->ops->sched_list(st, out, n);
}

int fl_sched_claim(fl_store *st, const char *name, int64_t due_at_ms, const char *daemon,
                   int64_t *run_id)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    CHECK_ARG(valid_name(name, e_, sizeof e_));
    CHECK_ARG(fl_validate_text("daemon", daemon, e_, sizeof e_));
    if (!run_id)
        return fl__store_err(st, FL_EINVAL, "fl_sched_claim: run_id must not be NULL");
    if (due_at_ms <= 0)
        return fl__store_err(st, FL_EINVAL, "due_at: must be a time after the epoch");
    return st->ops->sched_claim(st, name, due_at_ms, daemon, run_id);
}

int fl_sched_finish(fl_store *st, int64_t run_id, const fl_sched_run *r)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!r)
        return fl__store_err(st, FL_EINVAL, "fl_sched_finish: run must not be NULL");
    static const char *const outcomes[] = {"ok", "failed", "skipped", "lost"};
    int known = 0;
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        known |= strcmp(r->outcome, outcomes[i]) == 0;
    if (!known)
        return fl__store_err(st, FL_EINVAL, "outcome: must be ok, failed, skipped or lost");
    if (r->provider[0])
        CHECK_ARG(fl_validate_provider(r->provider, e_, sizeof e_));
    if (strnlen(r->detail, sizeof r->detail) == sizeof r->detail)
        return fl__store_err(st, FL_EINVAL, "detail: must be at most %zu bytes",
                             sizeof r->detail - 1);
    if (r->detail[0])
        CHECK_ARG(fl__validate_text_max("detail", r->detail, sizeof r->detail - 1, e_, sizeof e_));
    return st->ops->sched_finish(st, run_id, r);
}

int fl_sched_runs(fl_store *st, const char *name, size_t limit, fl_sched_run **out, size_t *n)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!out || !n)
        return fl__store_err(st, FL_EINVAL, "fl_sched_runs: out and n must not be NULL");
    *out = NULL;
    *n = 0;
    if (name)
        CHECK_ARG(valid_name(name, e_, sizeof e_));
    if (limit < 1 || limit > 10000)
        return fl__store_err(st, FL_EINVAL, "limit: must be between 1 and 10000, got %zu", limit);
    return st->ops->sched_runs(st, name, limit, out, n);
}

static int text(const fl__row *r, int col, char *dst, size_t cap)
{
    const char *t = r->text(r, col);
    return (t && fl__copy(dst, cap, t) == FL_OK) ? 0 : -1;
}

int fl__row_schedule(const fl__row *r, void *dst)
{
    fl_schedule *s = dst;
    memset(s, 0, sizeof *s);
    if (text(r, 0, s->name, sizeof s->name) || text(r, 1, s->cron, sizeof s->cron) ||
        text(r, 2, s->tz, sizeof s->tz) || text(r, 3, s->providers, sizeof s->providers) ||
        text(r, 4, s->holder, sizeof s->holder) || text(r, 5, s->purpose, sizeof s->purpose) ||
        text(r, 9, s->command, sizeof s->command))
        return -1;
    s->max_wait_ms = r->i64(r, 6);
    s->max_run_ms = r->i64(r, 7);
    s->ttl_ms = r->i64(r, 8);
    s->created_at_ms = r->i64(r, 10);
    return 0;
}

int fl__row_run(const fl__row *r, void *dst)
{
    fl_sched_run *x = dst;
    memset(x, 0, sizeof *x);
    if (text(r, 1, x->name, sizeof x->name) || text(r, 3, x->claimed_by, sizeof x->claimed_by) ||
        text(r, 4, x->outcome, sizeof x->outcome) || text(r, 7, x->provider, sizeof x->provider) ||
        text(r, 10, x->detail, sizeof x->detail))
        return -1;
    x->id = r->i64(r, 0);
    x->due_at_ms = r->i64(r, 2);
    x->started_at_ms = r->i64(r, 5);
    x->ended_at_ms = r->i64(r, 6);
    x->fence = r->i64(r, 8);
    x->exit_status = (int)r->i64(r, 9);
    return 0;
}
