/*
 * lib/core/cron.c -- cron expressions: parsing (with the position of every
 * error) and the next due instant in UTC or a fixed UTC offset.
 *
 * Pure: no I/O, no clocks, no allocation, no libc time zone state.  Civil
 * dates are computed with the days-from-civil arithmetic of the proleptic
 * Gregorian calendar, so the result never depends on $TZ, setlocale or
 * tzset(), and any thread may call these functions at any time.  That is
 * also why named zones ("Europe/Berlin") are refused: following one needs
 * the tz database, and localtime_r() would read the process-global $TZ.
 */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

enum { F_MIN, F_HOUR, F_MDAY, F_MONTH, F_WDAY, NFIELDS };

typedef struct field_spec {
    const char *name;
    int lo, hi;          /* accepted numbers (day-of-week: 0-7, 7 is Sunday) */
    const char *const *names; /* lowercase 3-letter names for lo.., or NULL */
    int names_base;      /* value of names[0] */
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_spec fields[NFIELDS] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 0, 7, wday_names, 0},
};

#define CRON_FORM "5 fields (minute hour day-of-month month day-of-week) or a macro " \
                  "(@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)"

static const struct {
    const char *name;
    const char *spec;
} macros[] = {
    {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* Every message starts "cron: " and names the 1-based column (byte) of the
 * offending text, so that a long expression can be fixed by counting; f is
 * the field (0-based), or -1 for a message about the whole expression. */
static void cron_err(char *err, size_t len, int f, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void cron_err(char *err, size_t len, int f, size_t col, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (f >= 0)
        fl__fmt(err, len, "cron: field %d (%s) at column %zu: %s", f + 1, fields[f].name, col,
                what);
    else
        fl__fmt(err, len, "cron: at column %zu: %s", col, what);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Printable, for quoting one offending byte in a message. */
static void show_byte(char out[8], char c)
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x21 && u < 0x7f && u != '\'' && u != '\\')
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "\\x%02x", u);
}

/*
 * One number or name at s[*i] within field f.  On success *v is the value
 * (a name is mapped through the field's table; range checks are the
 * caller's, so it can name the limits).  Otherwise writes the message.
 * `base` is the column of s[0].
 */
static int parse_atom(const char *s, size_t *i, int f, size_t base, int *v, char *err,
                      size_t len)
{
    const field_spec *fs = &fields[f];
    size_t start = *i;
    if (s[*i] >= '0' && s[*i] <= '9') {
        long n = 0;
        while (s[*i] >= '0' && s[*i] <= '9') {
            if (n < 100000) /* saturate: only "out of range" matters beyond */
                n = n * 10 + (s[*i] - '0');
            (*i)++;
        }
        if (n < fs->lo || n > fs->hi) {
            char num[16];
            size_t k = *i - start;
            snprintf(num, sizeof num, "%.*s%s", (int)(k > 8 ? 8 : k), s + start,
                     k > 8 ? "..." : "");
            cron_err(err, len, f, base + start, "%s is out of range %d-%d", num, fs->lo, fs->hi);
            return FL_EINVAL;
        }
        *v = (int)n;
        return FL_OK;
    }
    if (is_alpha(s[*i])) {
        char word[8];
        size_t k = 0;
        while (is_alpha(s[*i])) {
            if (k < sizeof word - 1)
                word[k++] = lower(s[*i]);
            (*i)++;
        }
        word[k] = '\0';
        size_t wlen = *i - start;
        if (!fs->names) {
            cron_err(err, len, f, base + start, "names are not allowed here; use a number %d-%d",
                 fs->lo, fs->hi);
            return FL_EINVAL;
        }
        for (int k2 = 0; fs->names[k2]; k2++) {
            if (wlen == 3 && strcmp(word, fs->names[k2]) == 0) {
                *v = fs->names_base + k2;
                return FL_OK;
            }
        }
        cron_err(err, len, f, base + start, "unknown name \"%.*s%s\"; use %s-%s or %d-%d",
             (int)(wlen > 8 ? 8 : wlen), s + start, wlen > 8 ? "..." : "", fs->names[0],
             f == F_MONTH ? "dec" : "sat", fs->lo, fs->hi);
        return FL_EINVAL;
    }
    char b[8];
    if (s[*i] == '\0' || is_blank(s[*i]))
        cron_err(err, len, f, base + start, "expected a number%s or '*', got %s",
             fs->names ? ", a name" : "", s[*i] ? "a blank" : "the end");
    else {
        show_byte(b, s[*i]);
        cron_err(err, len, f, base + start, "expected a number%s or '*', got %s",
             fs->names ? ", a name" : "", b);
    }
    return FL_EINVAL;
}

/*
 * One field: s[0..n) holds it, base is its column.  Sets the field's bits
 * in *bits (bit v for value v) and *star when it begins with '*' (which
 * matters for the day-of-month / day-of-week rule).
 */
static int parse_field(const char *s, size_t n, int f, size_t base, uint64_t *bits, int *star,
                       char *err, size_t len)
{
    const field_spec *fs = &fields[f];
    char buf[FL_CRON_MAX + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    *bits = 0;
    *star = buf[0] == '*';
    size_t i = 0;
    for (;;) {
        size_t item = i;
        int lo, hi, step = 1, rc;
        int wide = 0; /* "*" or "N/step": runs to the field's maximum */
        if (buf[i] == '*') {
            lo = fs->lo;
            hi = f == F_WDAY ? 6 : fs->hi; /* 7 is only another name for Sunday */
            wide = 1;
            i++;
        } else {
            if ((rc = parse_atom(buf, &i, f, base, &lo, err, len)) != FL_OK)
                return rc;
            hi = lo;
            if (buf[i] == '-') {
                i++;
                if ((rc = parse_atom(buf, &i, f, base, &hi, err, len)) != FL_OK)
                    return rc;
                if (hi < lo) {
                    cron_err(err, len, f, base + item,
                         "range %.*s goes backwards; write it low-high, or as two ranges "
                         "joined by ','",
                         (int)(i - item), buf + item);
                    return FL_EINVAL;
                }
            }
        }
        if (buf[i] == '/') {
            size_t at = ++i;
            if (!(buf[i] >= '0' && buf[i] <= '9')) {
                char b[8];
                if (buf[i])
                    show_byte(b, buf[i]);
                cron_err(err, len, f, base + at, "expected a step (a number) after '/', got %s",
                     buf[i] ? b : "the end");
                return FL_EINVAL;
            }
            long n2 = 0;
            while (buf[i] >= '0' && buf[i] <= '9') {
                if (n2 < 100000)
                    n2 = n2 * 10 + (buf[i] - '0');
                i++;
            }
            int span = fs->hi - fs->lo + (f == F_WDAY ? 0 : 1);
            if (n2 < 1 || n2 > span) {
                cron_err(err, len, f, base + at, "step %.*s is out of range 1-%d",
                     (int)(i - at > 8 ? 8 : i - at), buf + at, span);
                return FL_EINVAL;
            }
            step = (int)n2;
            /* "5/15": from 5 to the end of the field, as in Vixie cron. */
            if (!wide && hi == lo)
                hi = f == F_WDAY ? 6 : fs->hi;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= (uint64_t)1 << (f == F_WDAY && v == 7 ? 0 : v);
        if (buf[i] == ',') {
            i++;
            continue;
        }
        if (buf[i] == '\0')
            return FL_OK;
        char b[8];
        show_byte(b, buf[i]);
        cron_err(err, len, f, base + i, "unexpected %s; a field is a list of N, N-M, *, with "
             "optional /STEP, joined by ','", b);
        return FL_EINVAL;
    }
}

/* Longest day-of-month in each month (February in a leap year). */
static const int month_max_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static int parse5(const char *spec, size_t col0, fl_cron *out, char *err, size_t len)
{
    uint64_t bits[NFIELDS];
    int star[NFIELDS];
    size_t start[NFIELDS];
    size_t i = 0;
    int f = 0;
    for (;;) {
        while (is_blank(spec[i]))
            i++;
        if (spec[i] == '\0')
            break;
        size_t b = i;
        while (spec[i] && !is_blank(spec[i]))
            i++;
        if (f == NFIELDS) {
            cron_err(err, len, -1, col0 + b, "unexpected 6th field \"%.*s%s\"; must be " CRON_FORM,
                 (int)(i - b > 16 ? 16 : i - b), spec + b, i - b > 16 ? "..." : "");
            return FL_EINVAL;
        }
        start[f] = col0 + b;
        int rc = parse_field(spec + b, i - b, f, col0 + b, &bits[f], &star[f], err, len);
        if (rc != FL_OK)
            return rc;
        f++;
    }
    if (f < NFIELDS) {
        cron_err(err, len, f, col0 + i, "missing; must be " CRON_FORM);
        return FL_EINVAL;
    }

    /* A day-of-month that no listed month has (30 2, 31 4,6,9,11) never
     * fires: refuse it now rather than let a schedule sit silent forever.
     * With day-of-week restricted too, either matching is enough. */
    if (!star[F_MDAY] && star[F_WDAY]) {
        int ok = 0;
        for (int m = 1; m <= 12 && !ok; m++)
            for (int d = 1; m <= 12 && d <= month_max_days[m] && !ok; d++)
                ok = (bits[F_MONTH] >> m & 1) && (bits[F_MDAY] >> d & 1);
        if (!ok) {
            cron_err(err, len, F_MDAY, start[F_MDAY],
                 "never fires: no listed month has any of these days");
            return FL_EINVAL;
        }
    }
    memset(out, 0, sizeof *out);
    out->minute = bits[F_MIN];
    out->hour = (uint32_t)bits[F_HOUR];
    out->mday = (uint32_t)bits[F_MDAY];
    out->month = (uint16_t)bits[F_MONTH];
    out->wday = (uint8_t)bits[F_WDAY];
    out->mday_star = star[F_MDAY];
    out->wday_star = star[F_WDAY];
    return FL_OK;
}

int fl_cron_parse(const char *spec, fl_cron *out, char *err, size_t errlen)
{
    if (!spec || !out) {
        fl__fmt(err, errlen, "cron: missing; must be " CRON_FORM);
        return FL_EINVAL;
    }
    size_t n = strlen(spec);
    if (n > FL_CRON_MAX) {
        fl__fmt(err, errlen, "cron: must be at most %d bytes, got %zu", FL_CRON_MAX, n);
        return FL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)spec[i];
        if ((c < 0x20 && c != '\t') || c >= 0x7f) {
            cron_err(err, errlen, -1, i + 1, "byte 0x%02x is not printable ASCII", c);
            return FL_EINVAL;
        }
    }
    size_t i = 0;
    while (is_blank(spec[i]))
        i++;
    if (spec[i] == '\0') {
        fl__fmt(err, errlen, "cron: must be " CRON_FORM ", got %s",
                n ? "only blanks" : "an empty string");
        return FL_EINVAL;
    }
    if (spec[i] != '@')
        return parse5(spec, 1, out, err, errlen);

    size_t b = i;
    while (spec[i] && !is_blank(spec[i]))
        i++;
    size_t wl = i - b;
    size_t j = i;
    while (is_blank(spec[j]))
        j++;
    for (size_t k = 0; k < sizeof macros / sizeof macros[0]; k++) {
        if (strlen(macros[k].name) != wl)
            continue;
        int same = 1;
        for (size_t c = 0; c < wl && same; c++)
            same = lower(spec[b + c]) == macros[k].name[c];
        if (!same)
            continue;
        if (spec[j]) {
            cron_err(err, errlen, -1, j + 1, "unexpected text after %s; a macro stands alone",
                 macros[k].name);
            return FL_EINVAL;
        }
        return parse5(macros[k].spec, 1, out, err, errlen);
    }
    cron_err(err, errlen, -1, b + 1, "unknown macro \"%.*s%s\"; must be " CRON_FORM,
         (int)(wl > 16 ? 16 : wl), spec + b, wl > 16 ? "..." : "");
    return FL_EINVAL;
}

/* ---- time zones ------------------------------------------------------ */

#define TZ_FORM "UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 " \
                "(-12:00 to +14:00)"

int fl_cron_tz(const char *tz, int32_t *offset_min, char *err, size_t errlen)
{
    int32_t dummy;
    if (!offset_min)
        offset_min = &dummy;
    if (!tz) {
        *offset_min = 0;
        return FL_OK;
    }
    size_t n = strlen(tz);
    if (n == 0) {
        fl__fmt(err, errlen, "tz: must be " TZ_FORM ", got an empty string");
        return FL_EINVAL;
    }
    const char *p = tz;
    if ((lower(p[0]) == 'u' && lower(p[1]) == 't' && lower(p[2]) == 'c') ||
        (lower(p[0]) == 'g' && lower(p[1]) == 'm' && lower(p[2]) == 't'))
        p += 3;
    else if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0')
        p++;
    if (*p == '\0' && p != tz) {
        *offset_min = 0;
        return FL_OK;
    }
    /* [+-]H[H][[:]MM] */
    int sign = 0, h = 0, m = 0, hd = 0, md = 0, ok = 1;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        while (*p >= '0' && *p <= '9' && hd < 2) {
            h = h * 10 + (*p++ - '0');
            hd++;
        }
        if (*p == ':')
            p++;
        while (*p >= '0' && *p <= '9' && md < 2) {
            m = m * 10 + (*p++ - '0');
            md++;
        }
        ok = hd > 0 && (md == 0 || md == 2) && *p == '\0';
    } else {
        ok = 0;
    }
    char shown[48];
    snprintf(shown, sizeof shown, "%.40s%s", tz, n > 40 ? "..." : "");
    for (char *s = shown; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"')
            *s = '?';
    if (!ok) {
        int named = strchr(tz, '/') != NULL || (is_alpha(tz[0]) && sign == 0);
        fl__fmt(err, errlen, "tz: must be " TZ_FORM ", got \"%s\"%s", shown,
                named ? ": named zones are not supported (a fixed offset does not follow "
                        "daylight saving time)"
                      : "");
        return FL_EINVAL;
    }
    int total = h * 60 + m;
    if (m > 59 || (sign < 0 && total > 12 * 60) || (sign > 0 && total > 14 * 60)) {
        fl__fmt(err, errlen, "tz: offset \"%s\" is out of range -12:00 to +14:00", shown);
        return FL_EINVAL;
    }
    *offset_min = sign * total;
    return FL_OK;
}

/* ---- the next instant ------------------------------------------------- */

/* The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
 * civil_from_days: exact over the whole range fl_cron_next accepts). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int day_matches(const fl_cron *c, int64_t day)
{
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    if (!(c->month >> m & 1))
        return 0;
    int wd = (int)(((day % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int dm = (int)(c->mday >> d & 1), dw = (int)(c->wday >> wd & 1);
    /* Vixie cron: both restricted -> either; otherwise both must match. */
    if (!c->mday_star && !c->wday_star)
        return dm || dw;
    return dm && dw;
}

/* The smallest set bit >= from in bits (below `limit`), or -1. */
static int next_bit(uint64_t bits, int from, int limit)
{
    for (int b = from; b < limit; b++)
        if (bits >> b & 1)
            return b;
    return -1;
}

/* Enough for any expression fl_cron_parse accepts: the rarest, "29 2",
 * comes every 8 years at worst (2096 -> 2104). */
#define SEARCH_DAYS (9 * 366)

/* Far enough out that no arithmetic below can overflow. */
#define TIME_LIMIT_MS (INT64_C(1) << 52)

int fl_cron_next(const fl_cron *c, const char *tz, int64_t after_ms, int64_t *next_ms)
{
    int32_t off_min;
    if (!c || !next_ms || after_ms <= -TIME_LIMIT_MS || after_ms >= TIME_LIMIT_MS)
        return FL_EINVAL;
    if (fl_cron_tz(tz, &off_min, NULL, 0) != FL_OK)
        return FL_EINVAL;
    if (!c->minute || !c->hour || !c->month || (!c->mday && !c->wday))
        return FL_EINVAL; /* not from fl_cron_parse */
    const int64_t off_ms = (int64_t)off_min * 60000;
    /* Strictly after: the first whole minute past after_ms, in local time. */
    int64_t local_min = floor_div(after_ms + off_ms, 60000) + 1;
    int64_t day = floor_div(local_min, 1440);
    int minute_of_day = (int)(local_min - day * 1440);
    for (int k = 0; k <= SEARCH_DAYS; k++, day++, minute_of_day = 0) {
        if (!day_matches(c, day))
            continue;
        const int h0 = minute_of_day / 60;
        for (int h = next_bit(c->hour, h0, 24); h >= 0; h = next_bit(c->hour, h + 1, 24)) {
            /* Within the current hour, from the current minute; any later
             * hour from its minute 0. */
            int m2 = next_bit(c->minute, h == h0 ? minute_of_day % 60 : 0, 60);
            if (m2 >= 0) {
                *next_ms = (day * 1440 + h * 60 + m2) * 60000 - off_ms;
                return FL_OK;
            }
        }
    }
    return FL_ENOTFOUND;
}
