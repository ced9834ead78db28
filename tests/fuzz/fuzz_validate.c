/*
 * tests/fuzz/fuzz_validate.c -- provider ids, holder/purpose/writer text and
 * tokens: every string that comes from outside before it reaches a store.
 * Properties: an accepted provider is 1-FL_PROVIDER_MAX bytes of
 * [A-Za-z0-9._:/-]; an accepted text is 1-FL_TEXT_MAX bytes without ASCII
 * control characters; an accepted token is FL_TOKEN_LEN lowercase hex
 * digits; messages stay inside their buffer.
 */
#include "fuzz.h"

#include "fleetlease.h"

static int provider_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[FL_TEXT_MAX * 4];
    size_t n = fuzz_cstr(data, size, s, sizeof s);
    char err[FL_MESSAGE_MAX];
    static const size_t lens[] = {sizeof err, 7};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t el = lens[k];
        memset(err, 'x', sizeof err);
        if (fl_validate_provider(s, err, el) == FL_OK) {
            FUZZ_ASSERT(n >= 1 && n <= FL_PROVIDER_MAX);
            for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT(provider_char((unsigned char)s[i]));
        } else {
            fuzz_check_msg(err, el);
        }
        memset(err, 'x', sizeof err);
        if (fl_validate_text("holder", s, err, el) == FL_OK) {
            FUZZ_ASSERT(n >= 1 && n <= FL_TEXT_MAX);
            for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
        } else {
            fuzz_check_msg(err, el);
        }
        memset(err, 'x', sizeof err);
        if (fl_validate_token(s, err, el) == FL_OK) {
            FUZZ_ASSERT(n == FL_TOKEN_LEN);
            for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
        } else {
            fuzz_check_msg(err, el);
        }
    }
    return 0;
}
