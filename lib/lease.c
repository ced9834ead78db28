/*
 * lib/lease.c -- the lease service: validation of every input, the wait
 * loop around one atomic store attempt, and the thin operations.  The
 * decision itself is in lib/core; the statements are in lib/store.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Validate with a core function and put its message on the handle. */
#define CHECK_ARG(call)                                                        \
    do {                                                                       \
        char e_[FL_MESSAGE_MAX];                                               \
        e_[0] = '\0';                                                          \
        int r_ = (call);                                                       \
        if (r_ != FL_OK)                                                       \
            return fl__store_err(st, r_, "%s", e_);                            \
    } while (0)


static void format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms % 3600000 == 0 && ms > 0)
        snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms > 0)
        snprintf(buf, len, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

/* While a cancel callback is set, naps are cut to this, so that a
 * cancellation is seen within it. */
#define CANCEL_POLL_MS 100

int fl__acquire(fl_store *st, const fl_acquire_opts *o, fl_lease *out, fl_verdict *conflict,
                int64_t *sent_mono_ms)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!o)
        return fl__store_err(st, FL_EINVAL, "fl_acquire_ex: opts must not be NULL");
    const char *provider = o->provider, *holder = o->holder, *purpose = o->purpose;
    const fl_mode mode = o->mode;
    const int64_t ttl_ms = o->ttl_ms, wait_ms = o->wait_ms;
    if (!out)
        return fl__store_err(st, FL_EINVAL, "fl_acquire: out must not be NULL");
    CHECK_ARG(fl_validate_provider(provider, e_, sizeof e_));
    CHECK_ARG(fl_validate_text("holder", holder, e_, sizeof e_));
    CHECK_ARG(fl_validate_text("purpose", purpose, e_, sizeof e_));
    if (mode != FL_SHARED && mode != FL_EXCLUSIVE)
        return fl__store_err(st, FL_EINVAL, "mode: must be shared or exclusive");
    if (ttl_ms < FL_TTL_MIN_MS || ttl_ms > FL_TTL_MAX_MS)
        return fl__store_err(st, FL_EINVAL, "ttl: must be between 1s and 24h, got %lldms",
                             (long long)ttl_ms);
    if (wait_ms < 0 || wait_ms > FL_WAIT_MAX_MS)
        return fl__store_err(st, FL_EINVAL, "wait: must be between 0 and 168h, got %lldms",
                             (long long)wait_ms);

    unsigned char raw[16];
    char token[FL_TOKEN_LEN + 1];
    if (fl__random(raw, sizeof raw) != FL_OK)
        return fl__store_err(st, FL_ESYS, "getrandom failed: cannot make a lease token");
    fl__token_hex(raw, token);

    fl__acq req = {
        .provider = provider, .holder = holder, .purpose = purpose, .mode = mode,
        .ttl_ms = ttl_ms, .token = token, .may_pend = 0,
        .pending_ttl_ms = fl__pending_ttl(ttl_ms),
    };
    /* A pending intent must be refreshed well within its lifetime. */
    int64_t cap = 1000;
    if (mode == FL_EXCLUSIVE && req.pending_ttl_ms / 3 < cap)
        cap = req.pending_ttl_ms / 3;

    fl__acq_result *res = calloc(1, sizeof *res);
    if (!res)
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    int64_t start = fl__mono_ms();
    int64_t deadline = start + wait_ms;
    int seen_refusal = 0, pended = 0;
    fl_verdict *last = calloc(1, sizeof *last);
    if (!last) {
        free(res);
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    }
    char unavail[FL_MESSAGE_MAX] = "";
    int canceled = 0;
    for (unsigned attempt = 0;; attempt++) {
        int64_t now = fl__mono_ms();
        req.may_pend = (mode == FL_EXCLUSIVE && wait_ms > 0 && now < deadline);
        memset(res, 0, sizeof *res);
        rc = st->ops->acquire(st, &req, res);
        if (rc == FL_OK && res->granted) {
            *out = res->lease;
            if (sent_mono_ms)
                *sent_mono_ms = now;
            free(res);
            free(last);
            return fl__store_err(st, FL_OK, NULL);
        }
        if (rc == FL_OK) {
            *last = res->refusal;
            seen_refusal = 1;
            pended |= res->pending;
            unavail[0] = '\0';
        } else if (rc == FL_EUNAVAIL) {
            /* Fail closed, but a waiter may outlast a blip of the store. */
            fl__copy(unavail, sizeof unavail, st->errmsg);
        } else {
            free(res);
            free(last);
            return rc;
        }
        int64_t left = deadline - fl__mono_ms();
        if (left <= 0)
            break;
        uint32_t rnd = 0;
        fl__random(&rnd, sizeof rnd);
        int64_t nap = fl__backoff(attempt, cap, rnd);
        if (nap > left)
            nap = left;
        /* wait_change's result only says whether to look again early.  With
         * a cancel callback the nap is sliced so that it is asked often. */
        while (nap > 0) {
            if (o->cancel && o->cancel(o->cancel_arg)) {
                canceled = 1;
                break;
            }
            int64_t piece = (o->cancel && nap > CANCEL_POLL_MS) ? CANCEL_POLL_MS : nap;
            st->ops->wait_change(st, provider, piece);
            nap -= piece;
        }
        if (canceled)
            break;
    }
    free(res);
    if (unavail[0]) {
        /* The last word was the store's absence: say that, not "conflict". */
        if (pended)
            st->ops->give_up(st, &req, "store unreachable while waiting");
        free(last);
        return fl__store_err(st, FL_EUNAVAIL, "%s", unavail);
    }
    if (!seen_refusal) {
        free(last);
        return fl__store_err(st, FL_ESTORE, "acquire: no answer from the store");
    }
    /* One history row per refused call, not per poll.  If it cannot be
     * written the intent still lapses on its own: ignore the error. */
    st->ops->give_up(st, &req, last->message);
    if (conflict)
        *conflict = *last;
    if (canceled) {
        fl__store_err(st, FL_ECANCELED, "%s: acquire cancelled while waiting: %s", provider,
                      last->message);
        free(last);
        return FL_ECANCELED;
    }
    char w[32];
    format_ms(wait_ms, w, sizeof w);
    if (wait_ms > 0)
        fl__store_err(st, FL_ECONFLICT, "%s: not granted within %s: %s", provider, w, last->message);
    else
        fl__store_err(st, FL_ECONFLICT, "%s: %s", provider, last->message);
    free(last);
    return FL_ECONFLICT;
}

int fl_acquire(fl_store *st, const char *provider, const char *holder,
               const char *purpose, fl_mode mode, int64_t ttl_ms,
               int64_t wait_ms, fl_lease *out, fl_verdict *conflict)
{
    fl_acquire_opts o = {.provider = provider, .holder = holder, .purpose = purpose,
                         .mode = mode, .ttl_ms = ttl_ms, .wait_ms = wait_ms};
    return fl__acquire(st, &o, out, conflict, NULL);
}

int fl_acquire_ex(fl_store *st, const fl_acquire_opts *opts, fl_lease *out, fl_verdict *conflict)
{
    return fl__acquire(st, opts, out, conflict, NULL);
}

int fl_heartbeat(fl_store *st, const char *token, fl_lease *out)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    CHECK_ARG(fl_validate_token(token, e_, sizeof e_));
    return st->ops->heartbeat(st, token, out);
}

int fl_lookup(fl_store *st, const char *token, fl_lease *out)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    CHECK_ARG(fl_validate_token(token, e_, sizeof e_));
    if (!out)
        return fl__store_err(st, FL_EINVAL, "fl_lookup: out must not be NULL");
    return st->ops->lookup(st, token, out);
}

int fl_release(fl_store *st, const char *token)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    CHECK_ARG(fl_validate_token(token, e_, sizeof e_));
    return st->ops->release(st, token);
}

int fl_list(fl_store *st, const char *provider, fl_lease **out, size_t *n)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!out || !n)
        return fl__store_err(st, FL_EINVAL, "fl_list: out and n must not be NULL");
    *out = NULL;
    *n = 0;
    if (provider)
        CHECK_ARG(fl_validate_provider(provider, e_, sizeof e_));
    return st->ops->list(st, provider, out, n);
}

int fl_history(fl_store *st, const char *provider, size_t limit, fl_event **out, size_t *n)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    if (!out || !n)
        return fl__store_err(st, FL_EINVAL, "fl_history: out and n must not be NULL");
    *out = NULL;
    *n = 0;
    if (provider)
        CHECK_ARG(fl_validate_provider(provider, e_, sizeof e_));
    if (limit < 1 || limit > 10000)
        return fl__store_err(st, FL_EINVAL, "limit: must be between 1 and 10000, got %zu", limit);
    return st->ops->history(st, provider, limit, out, n);
}

int fl_sweep(fl_store *st, size_t *expired)
{
    int rc = fl__ready(st);
    if (rc != FL_OK)
        return rc;
    size_t dummy;
    return st->ops->sweep(st, expired ? expired : &dummy);
}
