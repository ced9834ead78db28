/*
 * lib/core/validate.c -- validation of every input the library accepts,
 * duration parsing and time formatting.  The CLI and the HTTP API parse
 * through these functions, so each rule and each message exists once.
 *
 * Messages follow one shape: "<field>: must be <rule and limit>, got <what>".
 * An offending value is shown only through show(): at most SHOW_MAX bytes,
 * quoted, with anything outside printable ASCII as \xNN, so hostile input
 * can neither flood nor drive a terminal.
 */
#include "core/core.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SHOW_MAX 40
/* Quoted, every byte as \xNN at worst, plus "..." and the NUL. */
#define SHOW_BUF (2 + 4 * SHOW_MAX + 3 + 1)

static void show(char out[SHOW_BUF], const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; s[i] && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0x0f];
        }
    }
    out[o++] = '"';
    if (s[i]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* ---- provider -------------------------------------------------------- */

#define PROVIDER_RULE "must be 1-128 bytes of [A-Za-z0-9._:/-]"

static int provider_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '/' || c == '-';
}

int fl_validate_provider(const char *provider, char *err, size_t errlen)
{
    char shown[SHOW_BUF];
    size_t n;

    if (!provider) {
        fl__fmt(err, errlen, "provider: missing; " PROVIDER_RULE);
        return FL_EINVAL;
    }
    n = strlen(provider);
    if (n == 0) {
        fl__fmt(err, errlen, "provider: " PROVIDER_RULE ", got an empty string");
        return FL_EINVAL;
    }
    if (n > FL_PROVIDER_MAX) {
        fl__fmt(err, errlen, "provider: " PROVIDER_RULE ", got %zu bytes", n);
        return FL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!provider_byte((unsigned char)provider[i])) {
            show(shown, provider);
            fl__fmt(err, errlen, "provider: " PROVIDER_RULE ", got %s (byte 0x%02x at offset %zu)",
                    shown, (unsigned char)provider[i], i);
            return FL_EINVAL;
        }
    }
    return FL_OK;
}

/* ---- holder, purpose, writer ----------------------------------------- */

#define TEXT_RULE "must be 1-%zu bytes of UTF-8 without control characters"

/*
 * Decode one UTF-8 sequence at s (NUL-terminated).  Returns its length and
 * sets *cp, or 0 if the sequence is invalid: a stray continuation byte, a
 * lead byte that cannot start a sequence (C0, C1, F5-FF), an overlong form,
 * a surrogate (U+D800-DFFF), a code point above U+10FFFF, or a sequence cut
 * short (the NUL is not a continuation byte, so truncation is caught here).
 * The second-byte ranges are those of RFC 3629 section 4; checking them is
 * what rejects overlongs, surrogates and > U+10FFFF without decoding first.
 */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0;      /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f;      /* above: surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90;      /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f;      /* above: > U+10FFFF */
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        unsigned char b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            return 0;
        v = (v << 6) | (b & 0x3f);
    }
    *cp = v;
    return len;
}

int fl__validate_text_max(const char *field, const char *value, size_t max, char *err,
                          size_t errlen)
{
    char shown[SHOW_BUF];
    size_t n, i = 0;

    if (!field)
        field = "text";
    if (!value) {
        fl__fmt(err, errlen, "%s: missing; " TEXT_RULE, field, max);
        return FL_EINVAL;
    }
    n = strlen(value);
    if (n == 0) {
        fl__fmt(err, errlen, "%s: " TEXT_RULE ", got an empty string", field, max);
        return FL_EINVAL;
    }
    if (n > max) {
        fl__fmt(err, errlen, "%s: " TEXT_RULE ", got %zu bytes", field, max, n);
        return FL_EINVAL;
    }
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)value + i, &cp);
        if (len == 0) {
            show(shown, value);
            fl__fmt(err, errlen, "%s: " TEXT_RULE ", got invalid UTF-8 at offset %zu in %s",
                    field, max, i, shown);
            return FL_EINVAL;
        }
        /* C0, DEL and C1: every code point a terminal may act on. */
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            show(shown, value);
            fl__fmt(err, errlen,
                    "%s: " TEXT_RULE ", got control character U+%04" PRIX32 " at offset %zu in %s",
                    field, max, cp, i, shown);
            return FL_EINVAL;
        }
        i += len;
    }
    return FL_OK;
}

int fl_validate_text(const char *field, const char *value, char *err, size_t errlen)
{
    return fl__validate_text_max(field, value, FL_TEXT_MAX, err, errlen);
}

/* ---- token ----------------------------------------------------------- */

/* The token is a capability: messages never echo it, not even in part. */
int fl_validate_token(const char *token, char *err, size_t errlen)
{
    size_t n;

    if (!token) {
        fl__fmt(err, errlen, "token: missing; must be 32 lowercase hex digits");
        return FL_EINVAL;
    }
    n = strnlen(token, FL_TOKEN_LEN + 1);
    if (n != FL_TOKEN_LEN) {
        if (n > FL_TOKEN_LEN)
            fl__fmt(err, errlen, "token: must be 32 lowercase hex digits, got more than 32 bytes");
        else
            fl__fmt(err, errlen, "token: must be 32 lowercase hex digits, got %zu bytes", n);
        return FL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            fl__fmt(err, errlen,
                    "token: must be 32 lowercase hex digits, got another character at offset %zu", i);
            return FL_EINVAL;
        }
    }
    return FL_OK;
}

/* ---- durations ------------------------------------------------------- */

#define DURATION_FORM "a whole number with a unit ms, s, m or h (e.g. 500ms, 30s, 5m, 2h)"

enum { DUR_OK = 0, DUR_SYNTAX, DUR_RANGE };

/*
 * The grammar is deliberately narrow: digits, then exactly one unit, no
 * sign, space, fraction or exponent; a bare number only when it is zero
 * (an unlabelled "30" is more likely a mistake than 30 ms).  Overflow is
 * checked before each multiplication, so no input can wrap into a small
 * or negative duration.
 */
static int parse_dur(const char *s, int64_t *ms)
{
    int64_t v = 0, unit;
    const char *p = s;

    if (!(*p >= '0' && *p <= '9'))
        return DUR_SYNTAX;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        /* Keep scanning after an overflow: "99...9x" is a syntax error,
         * not a range error. */
        if (overflow || v > (INT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit = 3600 * 1000;
    else if (*p == '\0' && !overflow && v == 0)
        unit = 1;
    else
        return DUR_SYNTAX;
    if (overflow || v > INT64_MAX / unit)
        return DUR_RANGE;
    *ms = v * unit;
    return DUR_OK;
}

int fl_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen)
{
    char shown[SHOW_BUF];
    int64_t v;
    int rc;

    if (!s || !ms) {
        fl__fmt(err, errlen, "duration: missing; must be " DURATION_FORM);
        return FL_EINVAL;
    }
    rc = parse_dur(s, &v);
    if (rc != DUR_OK) {
        show(shown, s);
        if (rc == DUR_SYNTAX)
            fl__fmt(err, errlen, "duration: must be " DURATION_FORM ", got %s", shown);
        else
            fl__fmt(err, errlen, "duration: must be at most %" PRId64 "ms, got %s",
                    INT64_MAX, shown);
        return FL_EINVAL;
    }
    *ms = v;
    return FL_OK;
}

/* A duration within [min, max]; `limits` names the bounds in the message. */
static int parse_bounded(const char *field, const char *s, int64_t min, int64_t max,
                         const char *limits, int64_t *ms, char *err, size_t errlen)
{
    char shown[SHOW_BUF];
    int64_t v = 0;
    int rc;

    if (!s || !ms) {
        fl__fmt(err, errlen, "%s: missing; must be a duration between %s", field, limits);
        return FL_EINVAL;
    }
    rc = parse_dur(s, &v);
    if (rc == DUR_SYNTAX) {
        show(shown, s);
        fl__fmt(err, errlen, "%s: must be between %s, as " DURATION_FORM ", got %s", field, limits,
                shown);
        return FL_EINVAL;
    }
    if (rc == DUR_RANGE || v < min || v > max) {
        show(shown, s);
        fl__fmt(err, errlen, "%s: must be between %s, got %s", field, limits, shown);
        return FL_EINVAL;
    }
    *ms = v;
    return FL_OK;
}

int fl_parse_ttl(const char *field, const char *s, int64_t *ms, char *err, size_t errlen)
{
    return parse_bounded(field ? field : "ttl", s, FL_TTL_MIN_MS, FL_TTL_MAX_MS,
                         "1s and 24h", ms, err, errlen);
}

int fl_parse_wait(const char *field, const char *s, int64_t *ms, char *err, size_t errlen)
{
    return parse_bounded(field ? field : "wait", s, 0, FL_WAIT_MAX_MS,
                         "0 and 168h (7 days)", ms, err, errlen);
}

int fl_parse_mode(const char *s, fl_mode *mode, char *err, size_t errlen)
{
    char shown[SHOW_BUF];
    fl_mode m;

    if (!s || !mode) {
        fl__fmt(err, errlen, "mode: missing; must be \"shared\" or \"exclusive\"");
        return FL_EINVAL;
    }
    m = fl__mode_from(s);
    if (m == 0) {
        show(shown, s);
        fl__fmt(err, errlen, "mode: must be \"shared\" or \"exclusive\", got %s", shown);
        return FL_EINVAL;
    }
    *mode = m;
    return FL_OK;
}

/* ---- time ------------------------------------------------------------ */

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
 * days_from_civil inverse: 400-year eras of 146097 days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

/* Years 0-9999 are written by hand: every refusal and every check message
 * carries a time, and gmtime_r + snprintf cost more than the rest of a
 * cached check (bench gwcheck).  Other years take the general path;
 * tests/unit compares the two over random instants. */
int fl_format_time(int64_t ms, char *buf, size_t len)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    struct tm tm;
    time_t t;
    int n;

    if (!buf || len < 25) {
        if (buf && len > 0)
            buf[0] = '\0';
        return FL_EINVAL;
    }
    /* C division truncates toward zero; times before 1970 need the floor. */
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    if (secs >= -62167219200LL && secs <= 253402300799LL) {  /* 0000-01-01 .. 9999-12-31 */
        int64_t days = secs / 86400, sod = secs % 86400, y;
        unsigned mo, d;
        if (sod < 0) {
            sod += 86400;
            days -= 1;
        }
        civil_from_days(days, &y, &mo, &d);
        char *p = put_digits(buf, (unsigned)y, 4);
        *p++ = '-';
        p = put_digits(p, mo, 2);
        *p++ = '-';
        p = put_digits(p, d, 2);
        *p++ = 'T';
        p = put_digits(p, (unsigned)(sod / 3600), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod % 60), 2);
        *p++ = '.';
        p = put_digits(p, (unsigned)frac, 3);
        *p++ = 'Z';
        *p = '\0';
        return FL_OK;
    }
    t = (time_t)secs;
    if ((int64_t)t != secs || !gmtime_r(&t, &tm)) {
        buf[0] = '\0';
        return FL_EINVAL;
    }
    n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return FL_EINVAL;
    }
    return FL_OK;
}
