/*
 * tests/fuzz/fuzz_parse.c -- the duration, ttl, wait and mode parsers: what
 * the CLI and the HTTP API parse --ttl/--wait/--mode with.
 * Properties: a parsed duration is >= 0; a parsed ttl is within
 * [FL_TTL_MIN_MS, FL_TTL_MAX_MS], a wait within [0, FL_WAIT_MAX_MS]; a
 * parsed mode is shared or exclusive; messages stay inside their buffer,
 * also when it is tiny.
 */
#include "fuzz.h"

#include "fleetlease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512];
    fuzz_cstr(data, size, s, sizeof s);
    static const size_t lens[] = {sizeof(char[FL_MESSAGE_MAX]), 16, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char err[FL_MESSAGE_MAX];
        size_t el = lens[i];
        memset(err, 'x', sizeof err);
        int64_t ms = -12345;
        if (fl_parse_duration(s, &ms, err, el) == FL_OK)
            FUZZ_ASSERT(ms >= 0);
        else
            fuzz_check_msg(err, el);
        memset(err, 'x', sizeof err);
        if (fl_parse_ttl("ttl", s, &ms, err, el) == FL_OK)
            FUZZ_ASSERT(ms >= FL_TTL_MIN_MS && ms <= FL_TTL_MAX_MS);
        else
            fuzz_check_msg(err, el);
        memset(err, 'x', sizeof err);
        if (fl_parse_wait("wait", s, &ms, err, el) == FL_OK)
            FUZZ_ASSERT(ms >= 0 && ms <= FL_WAIT_MAX_MS);
        else
            fuzz_check_msg(err, el);
        memset(err, 'x', sizeof err);
        fl_mode mode = (fl_mode)0;
        if (fl_parse_mode(s, &mode, err, el) == FL_OK)
            FUZZ_ASSERT(mode == FL_SHARED || mode == FL_EXCLUSIVE);
        else
            fuzz_check_msg(err, el);
    }
    /* fl_format_time must accept any ms a parser could produce. */
    if (size >= 8) {
        int64_t ms;
        memcpy(&ms, data, sizeof ms);
        char t[64];
        if (fl_format_time(ms, t, sizeof t) == FL_OK)
            FUZZ_ASSERT(memchr(t, '\0', sizeof t) != NULL);
    }
    return 0;
}
