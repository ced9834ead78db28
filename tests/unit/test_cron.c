/*
 * tests/unit/test_cron.c -- table-driven tests of lib/core/cron.c: parsing
 * (accepted forms, the bits they set, and the exact message with the
 * position of each error), time zones, and the next due instant.
 *
 * The expected instants were computed by an independent brute-force
 * reference (Python datetime, stepping minute by minute over the same
 * Vixie rules), not by the arithmetic under test; each row can also be
 * checked by eye against a calendar.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/core.h"

#define CHECK_STR(what, got, want)                                                   \
    do {                                                                             \
        if (strcmp((got), (want)) != 0)                                              \
            fail_msg("%s: %s =\n  \"%s\"\nwant\n  \"%s\"", what, #got, (got), (want)); \
    } while (0)

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" -> ms since the epoch (timegm: UTC, no $TZ). */
static int64_t ms_of(const char *rfc)
{
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(rfc, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        fail_msg("bad time in table: %s", rfc);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- parsing: what is accepted, and the bits ------------------------------ */

static uint64_t bits(const int *v, size_t n)
{
    uint64_t b = 0;
    for (size_t i = 0; i < n; i++)
        b |= (uint64_t)1 << v[i];
    return b;
}
#define BITS(...) bits((const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int))
#define ALL(lo, hi) ((((uint64_t)1 << ((hi) + 1)) - 1) & ~(((uint64_t)1 << (lo)) - 1))

static void test_parse_bits(void **state)
{
    (void)state;
    struct {
        const char *spec;
        uint64_t minute, hour, mday, month, wday;
        int mday_star, wday_star;
    } cases[] = {
        {"* * * * *", ALL(0, 59), ALL(0, 23), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"0 2 * * *", BITS(0), BITS(2), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"*/15 * * * *", BITS(0, 15, 30, 45), ALL(0, 23), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"5/20 8-18/5 1,15 jan-mar mon-fri", BITS(5, 25, 45), BITS(8, 13, 18), BITS(1, 15),
         BITS(1, 2, 3), BITS(1, 2, 3, 4, 5), 0, 0},
        {"0 0 * * 7", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), BITS(0), 1, 0},
        {"0 0 * * 5-7", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), BITS(0, 5, 6), 1, 0},
        {"0 0 * * SUN,Sat", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), BITS(0, 6), 1, 0},
        {"0 0 */2 DEC *", BITS(0), BITS(0), BITS(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                                   29, 31),
         BITS(12), ALL(0, 6), 1, 1},
        {"  59\t23  31 12 *  ", BITS(59), BITS(23), BITS(31), BITS(12), ALL(0, 6), 0, 1},
        {"@hourly", BITS(0), ALL(0, 23), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"@daily", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"@midnight", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), ALL(0, 6), 1, 1},
        {"@weekly", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), BITS(0), 1, 0},
        {" @WEEKLY ", BITS(0), BITS(0), ALL(1, 31), ALL(1, 12), BITS(0), 1, 0},
        {"@monthly", BITS(0), BITS(0), BITS(1), ALL(1, 12), ALL(0, 6), 0, 1},
        {"@yearly", BITS(0), BITS(0), BITS(1), BITS(1), ALL(0, 6), 0, 1},
        {"@annually", BITS(0), BITS(0), BITS(1), BITS(1), ALL(0, 6), 0, 1},
        {"0 0 29 2 *", BITS(0), BITS(0), BITS(29), BITS(2), ALL(0, 6), 0, 1},
        /* Day 30 of February never comes, but Mondays do: either matches. */
        {"0 0 30 2 mon", BITS(0), BITS(0), BITS(30), BITS(2), BITS(1), 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_cron c;
        char err[FL_MESSAGE_MAX] = "";
        int rc = fl_cron_parse(cases[i].spec, &c, err, sizeof err);
        if (rc != FL_OK)
            fail_msg("\"%s\": rc %d: %s", cases[i].spec, rc, err);
        if (c.minute != cases[i].minute || c.hour != cases[i].hour || c.mday != cases[i].mday ||
            c.month != cases[i].month || c.wday != cases[i].wday ||
            c.mday_star != cases[i].mday_star || c.wday_star != cases[i].wday_star)
            fail_msg("\"%s\": bits %llx %x %x %x %x stars %d %d", cases[i].spec,
                     (unsigned long long)c.minute, c.hour, c.mday, c.month, c.wday, c.mday_star,
                     c.wday_star);
    }
}

/* ---- parsing: every refusal names the field and the column ----------------- */

static void test_parse_errors(void **state)
{
    (void)state;
    struct {
        const char *spec;
        const char *msg;
    } cases[] = {
        {"0 25 * * *", "cron: field 2 (hour) at column 3: 25 is out of range 0-23"},
        {"60 * * * *", "cron: field 1 (minute) at column 1: 60 is out of range 0-59"},
        {"0 0 0 * *", "cron: field 3 (day-of-month) at column 5: 0 is out of range 1-31"},
        {"0 0 * 13 *", "cron: field 4 (month) at column 7: 13 is out of range 1-12"},
        {"0 0 * * 8", "cron: field 5 (day-of-week) at column 9: 8 is out of range 0-7"},
        {"0 0,5,99 * * *", "cron: field 2 (hour) at column 7: 99 is out of range 0-23"},
        {"0 1-99999999999 * * *",
         "cron: field 2 (hour) at column 5: 99999999... is out of range 0-23"},
        {"0 5-1 * * *", "cron: field 2 (hour) at column 3: range 5-1 goes backwards; write it "
                        "low-high, or as two ranges joined by ','"},
        {"*/0 * * * *", "cron: field 1 (minute) at column 3: step 0 is out of range 1-60"},
        {"*/61 * * * *", "cron: field 1 (minute) at column 3: step 61 is out of range 1-60"},
        {"0 0 * * */8", "cron: field 5 (day-of-week) at column 11: step 8 is out of range 1-7"},
        {"*/ * * * *", "cron: field 1 (minute) at column 3: expected a step (a number) after "
                       "'/', got the end"},
        {"*/x * * * *", "cron: field 1 (minute) at column 3: expected a step (a number) after "
                        "'/', got 'x'"},
        {"0 mon * * *", "cron: field 2 (hour) at column 3: names are not allowed here; use a "
                        "number 0-23"},
        {"0 0 * foo *", "cron: field 4 (month) at column 7: unknown name \"foo\"; use jan-dec or "
                        "1-12"},
        {"0 0 * * monday", "cron: field 5 (day-of-week) at column 9: unknown name \"monday\"; "
                           "use sun-sat or 0-7"},
        {"0 0 * * mon-", "cron: field 5 (day-of-week) at column 13: expected a number, a name "
                         "or '*', got the end"},
        {"0 0 * * ,1", "cron: field 5 (day-of-week) at column 9: expected a number, a name or "
                       "'*', got ','"},
        {"0 0 1,,2 * *", "cron: field 3 (day-of-month) at column 7: expected a number or '*', "
                         "got ','"},
        {"0 0 1 * * 5", "cron: at column 11: unexpected 6th field \"5\"; must be 5 fields "
                        "(minute hour day-of-month month day-of-week) or a macro (@hourly, "
                        "@daily, @midnight, @weekly, @monthly, @yearly, @annually)"},
        {"0 0 1 *", "cron: field 5 (day-of-week) at column 8: missing; must be 5 fields "
                    "(minute hour day-of-month month day-of-week) or a macro (@hourly, "
                    "@daily, @midnight, @weekly, @monthly, @yearly, @annually)"},
        {"0 0 1-5x * *", "cron: field 3 (day-of-month) at column 8: unexpected 'x'; a field is "
                         "a list of N, N-M, *, with optional /STEP, joined by ','"},
        {"** * * * *", "cron: field 1 (minute) at column 2: unexpected '*'; a field is a list "
                       "of N, N-M, *, with optional /STEP, joined by ','"},
        {"0 0 30 2 *", "cron: field 3 (day-of-month) at column 5: never fires: no listed month "
                       "has any of these days"},
        {"0 0 31 4,6,9,11 *", "cron: field 3 (day-of-month) at column 5: never fires: no "
                              "listed month has any of these days"},
        {"@reboot", "cron: at column 1: unknown macro \"@reboot\"; must be 5 fields (minute "
                    "hour day-of-month month day-of-week) or a macro (@hourly, @daily, "
                    "@midnight, @weekly, @monthly, @yearly, @annually)"},
        {"@daily 5", "cron: at column 8: unexpected text after @daily; a macro stands alone"},
        {"", "cron: must be 5 fields (minute hour day-of-month month day-of-week) or a macro "
             "(@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually), got an "
             "empty string"},
        {"   ", "cron: must be 5 fields (minute hour day-of-month month day-of-week) or a "
                "macro (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually), "
                "got only blanks"},
        {"0 0 * * *\n", "cron: at column 10: byte 0x0a is not printable ASCII"},
        {"0 0 \xc3\xa9 * *", "cron: at column 5: byte 0xc3 is not printable ASCII"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_cron c;
        char err[FL_MESSAGE_MAX] = "";
        int rc = fl_cron_parse(cases[i].spec, &c, err, sizeof err);
        if (rc != FL_EINVAL)
            fail_msg("\"%s\": rc %d, want FL_EINVAL", cases[i].spec, rc);
        CHECK_STR(cases[i].spec, err, cases[i].msg);
    }

    char longspec[FL_CRON_MAX + 2];
    memset(longspec, ' ', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    fl_cron c;
    char err[FL_MESSAGE_MAX];
    assert_int_equal(fl_cron_parse(longspec, &c, err, sizeof err), FL_EINVAL);
    CHECK_STR("long", err, "cron: must be at most 128 bytes, got 129");
    assert_int_equal(fl_cron_parse(NULL, &c, err, sizeof err), FL_EINVAL);
    assert_int_equal(fl_cron_parse("* * * * *", NULL, err, sizeof err), FL_EINVAL);
    /* A tiny or absent error buffer is fine. */
    assert_int_equal(fl_cron_parse("0 99 * * *", &c, NULL, 0), FL_EINVAL);
    char tiny[8];
    assert_int_equal(fl_cron_parse("0 99 * * *", &c, tiny, sizeof tiny), FL_EINVAL);
    CHECK_STR("tiny", tiny, "cron: f");
}

/* ---- time zones ------------------------------------------------------------- */

static void test_tz(void **state)
{
    (void)state;
    struct {
        const char *tz;
        int rc;
        int32_t off;
        const char *msg;
    } cases[] = {
        {"UTC", FL_OK, 0, ""},
        {"utc", FL_OK, 0, ""},
        {"GMT", FL_OK, 0, ""},
        {"Z", FL_OK, 0, ""},
        {"UTC+02:00", FL_OK, 120, ""},
        {"UTC+2", FL_OK, 120, ""},
        {"+05:30", FL_OK, 330, ""},
        {"+0530", FL_OK, 330, ""},
        {"-08:00", FL_OK, -480, ""},
        {"UTC-12", FL_OK, -720, ""},
        {"+14:00", FL_OK, 840, ""},
        {"UTC+00:00", FL_OK, 0, ""},
        {"", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got an empty string"},
        {"Europe/Berlin", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got \"Europe/Berlin\": named zones are not supported (a fixed "
         "offset does not follow daylight saving time)"},
        {"CET", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got \"CET\": named zones are not supported (a fixed offset does "
         "not follow daylight saving time)"},
        {"+2:3", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got \"+2:3\""},
        {"UTC+02:00x", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got \"UTC+02:00x\""},
        {"+", FL_EINVAL, 0,
         "tz: must be UTC, or a fixed offset from UTC such as UTC+02:00, +05:30 or -08:00 "
         "(-12:00 to +14:00), got \"+\""},
        {"+15", FL_EINVAL, 0, "tz: offset \"+15\" is out of range -12:00 to +14:00"},
        {"-12:30", FL_EINVAL, 0, "tz: offset \"-12:30\" is out of range -12:00 to +14:00"},
        {"+01:60", FL_EINVAL, 0, "tz: offset \"+01:60\" is out of range -12:00 to +14:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t off = 12345;
        char err[FL_MESSAGE_MAX] = "";
        int rc = fl_cron_tz(cases[i].tz, &off, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d (%s)", cases[i].tz, rc, cases[i].rc, err);
        if (rc == FL_OK && off != cases[i].off)
            fail_msg("\"%s\": offset %d, want %d", cases[i].tz, off, cases[i].off);
        CHECK_STR(cases[i].tz, err, cases[i].msg);
    }
    int32_t off = 7;
    assert_int_equal(fl_cron_tz(NULL, &off, NULL, 0), FL_OK);
    assert_int_equal(off, 0);
}

/* ---- the next instant --------------------------------------------------------- */

static void test_next(void **state)
{
    (void)state;
    struct {
        const char *spec, *tz, *after, *want;
    } cases[] = {
        /* 2026-12-03 is a Thursday. */
        {"0 2 * * *", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-04T02:00:00.000Z"},
        {"0 2 * * *", NULL, "2026-12-03T18:30:00.000Z", "2026-12-04T02:00:00.000Z"},
        /* Strictly after: a due instant itself yields the next one. */
        {"0 2 * * *", "UTC", "2026-12-04T02:00:00.000Z", "2026-12-05T02:00:00.000Z"},
        {"0 2 * * *", "UTC", "2026-12-04T01:59:59.999Z", "2026-12-04T02:00:00.000Z"},
        {"*/15 * * * *", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-03T18:45:00.000Z"},
        {"*/15 * * * *", "UTC", "2026-12-03T18:44:59.000Z", "2026-12-03T18:45:00.000Z"},
        {"* * * * *", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-03T18:31:00.000Z"},
        {"* * * * *", "UTC", "2026-12-03T18:30:59.999Z", "2026-12-03T18:31:00.000Z"},
        {"@weekly", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-06T00:00:00.000Z"},
        {"0 0 * * 7", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-06T00:00:00.000Z"},
        {"@monthly", "UTC", "2026-12-03T18:30:00.000Z", "2027-01-01T00:00:00.000Z"},
        {"@yearly", "UTC", "2026-12-03T18:30:00.000Z", "2027-01-01T00:00:00.000Z"},
        {"@hourly", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-03T19:00:00.000Z"},
        {"0 0 29 2 *", "UTC", "2026-12-03T18:30:00.000Z", "2028-02-29T00:00:00.000Z"},
        /* 2100 is not a leap year: the longest gap the search must cover. */
        {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00.000Z", "2104-02-29T00:00:00.000Z"},
        {"30 8 * * mon-fri", "UTC", "2026-12-04T09:00:00.000Z", "2026-12-07T08:30:00.000Z"},
        /* Both day fields restricted: the 13th OR a Friday. */
        {"0 9 13 * 5", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-04T09:00:00.000Z"},
        {"0 9 13 * *", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-13T09:00:00.000Z"},
        {"0 9 * * fri", "UTC", "2026-12-05T18:30:00.000Z", "2026-12-11T09:00:00.000Z"},
        /* 02:00 at UTC+2 is 00:00Z; at +05:30 it is 20:30Z the day before. */
        {"0 2 * * *", "UTC+02:00", "2026-12-03T18:30:00.000Z", "2026-12-04T00:00:00.000Z"},
        {"0 2 * * *", "+05:30", "2026-12-03T18:30:00.000Z", "2026-12-03T20:30:00.000Z"},
        {"0 2 * * *", "-08:00", "2026-12-03T18:30:00.000Z", "2026-12-04T10:00:00.000Z"},
        {"0 0 31 * *", "UTC", "2026-12-31T00:00:01.000Z", "2027-01-31T00:00:00.000Z"},
        {"5/20 * * * *", "UTC", "2026-12-03T18:30:00.000Z", "2026-12-03T18:45:00.000Z"},
        {"0 22-23/1,1 * * *", "UTC", "2026-12-03T23:30:00.000Z", "2026-12-04T01:00:00.000Z"},
        {"0 12 * jan,jul *", "UTC", "2026-12-03T18:30:00.000Z", "2027-01-01T12:00:00.000Z"},
        {"59 23 31 12 *", "UTC", "2026-12-31T23:59:00.000Z", "2027-12-31T23:59:00.000Z"},
        {"0 0 * * *", "UTC", "1969-12-31T12:00:00.000Z", "1970-01-01T00:00:00.000Z"},
        {"0 */6 * * 1-5", "UTC", "2026-12-04T19:00:00.000Z", "2026-12-07T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_cron c;
        char err[FL_MESSAGE_MAX] = "", got[40];
        if (fl_cron_parse(cases[i].spec, &c, err, sizeof err) != FL_OK)
            fail_msg("\"%s\": %s", cases[i].spec, err);
        int64_t next = 0;
        int rc = fl_cron_next(&c, cases[i].tz, ms_of(cases[i].after), &next);
        char what[128];
        snprintf(what, sizeof what, "\"%s\" tz %s after %s", cases[i].spec,
                 cases[i].tz ? cases[i].tz : "NULL", cases[i].after);
        if (rc != FL_OK)
            fail_msg("%s: rc %d", what, rc);
        assert_int_equal(fl_format_time(next, got, sizeof got), FL_OK);
        CHECK_STR(what, got, cases[i].want);
    }
}

/* Stepping through a day of every-minute and a year of daily instants
 * visits each exactly once, in order, with no gap. */
static void test_next_walk(void **state)
{
    (void)state;
    fl_cron c;
    assert_int_equal(fl_cron_parse("* * * * *", &c, NULL, 0), FL_OK);
    int64_t t = ms_of("2026-12-03T00:00:00.000Z") - 1;
    for (int i = 0; i < 1440; i++) {
        int64_t n;
        assert_int_equal(fl_cron_next(&c, "UTC", t, &n), FL_OK);
        assert_int_equal(n, ms_of("2026-12-03T00:00:00.000Z") + (int64_t)i * 60000);
        t = n;
    }
    assert_int_equal(fl_cron_parse("@daily", &c, NULL, 0), FL_OK);
    t = ms_of("2027-01-01T00:00:00.000Z");
    for (int i = 1; i <= 365; i++) {
        int64_t n;
        assert_int_equal(fl_cron_next(&c, "+05:30", t, &n), FL_OK);
        assert_int_equal(n - t, 24LL * 3600 * 1000 - (i == 1 ? 330LL * 60000 : 0));
        t = n;
    }
}

/*
 * Random expressions against a brute-force search that gets the calendar
 * from gmtime_r (not from the day arithmetic under test): for each day
 * from the start, its fields decide the day, then every minute is tried.
 */
static uint32_t rnd_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void rnd_field(char *out, size_t len, int lo, int hi)
{
    int a = lo + (int)rnd((uint32_t)(hi - lo + 1)), b = a + (int)rnd((uint32_t)(hi - a + 1));
    switch (rnd(5)) {
    case 0: snprintf(out, len, "*"); break;
    case 1: snprintf(out, len, "%d", a); break;
    case 2: snprintf(out, len, "%d-%d", a, b); break;
    case 3: snprintf(out, len, "*/%d", 1 + (int)rnd(7)); break;
    default: snprintf(out, len, "%d,%d-%d/%d", a, a, b, 1 + (int)rnd(3)); break;
    }
}

static int64_t brute_next(const fl_cron *c, int64_t after_ms)
{
    int64_t day0 = after_ms / 86400000;
    for (int64_t day = day0; day < day0 + 3000; day++) {
        time_t t = (time_t)(day * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        int dm = (int)(c->mday >> tm.tm_mday & 1), dw = (int)(c->wday >> tm.tm_wday & 1);
        int ok = (c->mday_star || c->wday_star) ? (dm && dw) : (dm || dw);
        if (!ok || !(c->month >> (tm.tm_mon + 1) & 1))
            continue;
        for (int h = 0; h < 24; h++)
            for (int m = 0; m < 60; m++) {
                int64_t at = (day * 1440 + h * 60 + m) * 60000;
                if (at > after_ms && (c->hour >> h & 1) && (c->minute >> m & 1))
                    return at;
            }
    }
    return -1;
}

static void test_next_random(void **state)
{
    (void)state;
    for (int i = 0; i < 400; i++) {
        char f[5][32], spec[200];
        rnd_field(f[0], sizeof f[0], 0, 59);
        rnd_field(f[1], sizeof f[1], 0, 23);
        rnd_field(f[2], sizeof f[2], 1, 28);
        rnd_field(f[3], sizeof f[3], 1, 12);
        rnd_field(f[4], sizeof f[4], 0, 6);
        snprintf(spec, sizeof spec, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
        fl_cron c;
        char err[FL_MESSAGE_MAX];
        if (fl_cron_parse(spec, &c, err, sizeof err) != FL_OK)
            fail_msg("\"%s\": %s", spec, err);
        /* 2024-01-01 .. ~2031, at any millisecond. */
        int64_t after = ms_of("2024-01-01T00:00:00.000Z") +
                        (int64_t)rnd(2500) * 86400000 + (int64_t)rnd(86400000);
        int64_t got = 0, want = brute_next(&c, after);
        int rc = fl_cron_next(&c, "UTC", after, &got);
        if (rc != FL_OK || got != want)
            fail_msg("\"%s\" after %lld: rc %d got %lld want %lld", spec, (long long)after, rc,
                     (long long)got, (long long)want);
    }
}

static void test_next_invalid(void **state)
{
    (void)state;
    fl_cron c, zero;
    int64_t n = 0;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(fl_cron_parse("@daily", &c, NULL, 0), FL_OK);
    assert_int_equal(fl_cron_next(&c, "Europe/Berlin", 0, &n), FL_EINVAL);
    assert_int_equal(fl_cron_next(NULL, "UTC", 0, &n), FL_EINVAL);
    assert_int_equal(fl_cron_next(&c, "UTC", 0, NULL), FL_EINVAL);
    assert_int_equal(fl_cron_next(&zero, "UTC", 0, &n), FL_EINVAL);
    assert_int_equal(fl_cron_next(&c, "UTC", INT64_MAX, &n), FL_EINVAL);
    assert_int_equal(fl_cron_next(&c, "UTC", INT64_MIN, &n), FL_EINVAL);
    /* A hand-built expression that never fires (day 31 of February only). */
    fl_cron never = c;
    never.mday = 1u << 31;
    never.month = 1u << 2;
    never.mday_star = 0;
    assert_int_equal(fl_cron_next(&never, "UTC", 0, &n), FL_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bits),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_tz),
        cmocka_unit_test(test_next),
        cmocka_unit_test(test_next_walk),
        cmocka_unit_test(test_next_random),
        cmocka_unit_test(test_next_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
