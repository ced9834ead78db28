/*
 * tests/fuzz/fuzz_body.c -- the JSON bodies of the HTTP API
 * (src/http/body.c): POST /v1/leases and the empty bodies of heartbeat
 * and release, with and without an authenticated caller.
 * Properties: the answer is 0, 400 or 403 (403 only for a holder that is
 * not the caller's token name); an accepted body has a valid provider, a
 * valid holder and purpose (the caller's name when authenticated), a mode,
 * a ttl within FL_TTL_MIN_MS..FL_TTL_MAX_MS and a wait within
 * 0..FL_WAIT_MAX_MS; messages stay inside their buffer, also a tiny one.
 */
#include "fuzz.h"

#include "fleetlease.h"
#include "http/body.h"

static void one(const uint8_t *data, size_t size, const char *who, size_t errlen)
{
    char err[FL_MESSAGE_MAX];
    srv_acquire_body b;
    char m[FL_MESSAGE_MAX];
    memset(err, 'x', sizeof err);
    int st = srv_parse_acquire((const char *)data, size, who, &b, err, errlen);
    FUZZ_ASSERT(st == 0 || st == 400 || (st == 403 && who));
    if (st) {
        fuzz_check_msg(err, errlen);
    } else {
        FUZZ_ASSERT(fl_validate_provider(b.provider, m, sizeof m) == FL_OK);
        FUZZ_ASSERT(fl_validate_text("holder", b.holder, m, sizeof m) == FL_OK);
        FUZZ_ASSERT(fl_validate_text("purpose", b.purpose, m, sizeof m) == FL_OK);
        FUZZ_ASSERT(!who || strcmp(b.holder, who) == 0);
        FUZZ_ASSERT(b.mode == FL_SHARED || b.mode == FL_EXCLUSIVE);
        FUZZ_ASSERT(b.ttl_ms >= FL_TTL_MIN_MS && b.ttl_ms <= FL_TTL_MAX_MS);
        FUZZ_ASSERT(b.wait_ms >= 0 && b.wait_ms <= FL_WAIT_MAX_MS);
    }
    memset(err, 'x', sizeof err);
    st = srv_parse_empty((const char *)data, size, err, errlen);
    FUZZ_ASSERT(st == 0 || st == 400);
    FUZZ_ASSERT(st == 400 || size == 0 || memchr(data, '{', size));
    if (st)
        fuzz_check_msg(err, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t lens[] = {FL_MESSAGE_MAX, 7};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        one(data, size, NULL, lens[k]);
        one(data, size, "bench-1", lens[k]);
    }
    return 0;
}
