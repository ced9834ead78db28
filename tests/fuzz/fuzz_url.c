/*
 * tests/fuzz/fuzz_url.c -- store URL handling: fl_resolve_url, and fl_open's
 * checks and password masking, which run on every URL before any store is
 * touched.  To stay hermetic (no connection attempts, no files) fl_open
 * only sees URLs whose scheme it does not know: the input itself when it
 * has one, and always "fuzz://" + input, which sends arbitrary userinfo,
 * host and query text through the masking.  Properties: no crash, no leak;
 * the message is NUL-terminated within FL_MESSAGE_MAX; the message for
 * "fuzz://user:<pw>@db.example/fleet" is the same whatever <pw> is (it is
 * masked).
 */
#include "fuzz.h"

#include "fleetlease.h"

static int known_store(const char *u)
{
    return strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0 ||
           strncmp(u, "sqlite:", 7) == 0 || strstr(u, "://") == NULL;
}

static void open_unknown(const char *url)
{
    if (known_store(url))
        return;
    fl_store *st = NULL;
    int rc = fl_open(url, &st);
    FUZZ_ASSERT(rc != FL_OK);
    if (st != NULL) {
        const char *m = fl_errmsg(st);
        FUZZ_ASSERT(memchr(m, '\0', FL_MESSAGE_MAX) != NULL);
    }
    fl_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char s[FL_URL_MAX + 64], u[FL_URL_MAX + 128];
    size_t n = fuzz_cstr(data, size, s, sizeof s);

    char buf[FL_URL_MAX];
    size_t lens[] = {sizeof buf, n + 1, n > 0 ? n : 1, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        if (lens[i] > sizeof buf)
            continue;
        if (n > 0 && fl_resolve_url(s, buf, lens[i]) == FL_OK)
            FUZZ_ASSERT(strcmp(buf, s) == 0);
    }

    open_unknown(s);
    snprintf(u, sizeof u, "fuzz://%s", s);
    open_unknown(u);

    /* The masked display does not depend on the password, so the message
     * must equal the one for any other password (here "p"). */
    int printable = 1;
    for (size_t i = 0; i < n; i++)
        printable &= (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (n > 0 && n < 200 && printable && strpbrk(s, "@/?& ") == NULL) {
        static char m0[FL_MESSAGE_MAX];
        if (m0[0] == '\0') {
            fl_store *st0 = NULL;
            fl_open("fuzz://user:p@db.example/fleet", &st0);
            FUZZ_ASSERT(st0 != NULL);
            snprintf(m0, sizeof m0, "%s", fl_errmsg(st0));
            fl_close(st0);
        }
        snprintf(u, sizeof u, "fuzz://user:%s@db.example/fleet", s);
        fl_store *st = NULL;
        fl_open(u, &st);
        if (st != NULL)
            FUZZ_ASSERT(strcmp(fl_errmsg(st), m0) == 0);
        fl_close(st);
    }
    return 0;
}
