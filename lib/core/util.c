/*
 * lib/core/util.c -- small pure helpers shared by the whole library: bounded
 * string handling, names of codes/modes/states, grant timing and back-off.
 * No I/O, no clocks, no allocation.
 */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

void fl__fmt(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!err || len == 0)
        return;
    va_start(ap, fmt);
    /* vsnprintf truncates and always terminates: a message is advisory, so
     * cutting it short is acceptable where cutting data is not. */
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void fl__cat(char *dst, size_t len, ...)
{
    va_list ap;
    size_t j = 0;

    if (!dst || len == 0)
        return;
    va_start(ap, len);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        if (n > len - 1 - j)
            n = len - 1 - j;
        memcpy(dst + j, s, n);
        j += n;
    }
    va_end(ap);
    dst[j] = '\0';
}

int fl__copy(char *dst, size_t cap, const char *src)
{
    size_t n;

    if (!dst || cap == 0 || !src)
        return FL_EINVAL;
    n = strnlen(src, cap);
    if (n >= cap)
        return FL_EINVAL; /* refuse rather than truncate; dst is untouched */
    memcpy(dst, src, n + 1);
    return FL_OK;
}

void fl__token_hex(const unsigned char raw[16], char out[FL_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    out[FL_TOKEN_LEN] = '\0';
}

const char *fl_strerror(int code)
{
    switch (code) {
    case FL_OK: return "success";
    case FL_EINVAL: return "invalid argument";
    case FL_ECONFLICT: return "provider held by someone else";
    case FL_ENOTFOUND: return "no such live lease";
    case FL_EEXPIRED: return "lease expired";
    case FL_ELOST: return "lease lost";
    case FL_EUNAVAIL: return "store unavailable";
    case FL_ESTORE: return "store error";
    case FL_ENOMEM: return "out of memory";
    case FL_ESYS: return "system error";
    case FL_EURL: return "invalid store URL";
    case FL_ECANCELED: return "cancelled";
    default: return "unknown error";
    }
}

const char *fl_mode_name(fl_mode mode)
{
    switch (mode) {
    case FL_SHARED: return "shared";
    case FL_EXCLUSIVE: return "exclusive";
    default: return "?";
    }
}

const char *fl_pstate_name(fl_pstate state)
{
    switch (state) {
    case FL_PSTATE_FREE: return "free";
    case FL_PSTATE_SHARED: return "shared";
    case FL_PSTATE_DRAINING: return "draining";
    case FL_PSTATE_EXCLUSIVE: return "exclusive";
    default: return "?";
    }
}

fl_mode fl__mode_from(const char *s)
{
    if (s && strcmp(s, "shared") == 0)
        return FL_SHARED;
    if (s && strcmp(s, "exclusive") == 0)
        return FL_EXCLUSIVE;
    return (fl_mode)0;
}

fl_lease_state fl__state_from(const char *s)
{
    if (s && strcmp(s, "active") == 0)
        return FL_LEASE_ACTIVE;
    if (s && strcmp(s, "pending") == 0)
        return FL_LEASE_PENDING;
    return (fl_lease_state)0;
}

const char *fl__state_name(fl_lease_state s)
{
    switch (s) {
    case FL_LEASE_ACTIVE: return "active";
    case FL_LEASE_PENDING: return "pending";
    default: return "?";
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Every interval is at least 1 ms so that a caller looping on it can never
 * spin, even if handed a ttl below the validated minimum. */
int64_t fl__hb_interval(int64_t ttl_ms) { return max64(ttl_ms / 3, 1); }
int64_t fl__hb_retry(int64_t ttl_ms) { return max64(ttl_ms / 10, 100); }
int64_t fl__margin(int64_t ttl_ms) { return max64(min64(ttl_ms / 4, 30000), 0); }
int64_t fl__kill_grace(int64_t ttl_ms) { return max64(min64(ttl_ms / 8, 10000), 0); }
int64_t fl__pending_ttl(int64_t ttl_ms) { return max64(min64(ttl_ms, 5000), 1); }

int64_t fl__backoff(unsigned attempt, int64_t cap_ms, uint32_t rnd)
{
    int64_t d = cap_ms;
    int64_t lo, r;

    /* 50 << 36 already exceeds any sane cap; stop shifting before the shift
     * itself could overflow. */
    if (attempt < 36)
        d = min64((int64_t)50 << attempt, cap_ms);
    if (d < 10)
        d = 10;
    lo = d / 2;
    /* Modulo bias is at most span/2^32: irrelevant for spreading waiters. */
    r = lo + (int64_t)((uint64_t)rnd % (uint64_t)(d - lo + 1));
    return max64(r, 10);
}

int fl__pending_fresh(const fl_lease *mine, int64_t now_ms, int64_t pending_ttl_ms)
{
    return mine != NULL && mine->expires_at_ms - now_ms > pending_ttl_ms / 2;
}
