/*
 * tests/install/consumer.c -- a program built against the INSTALLED
 * libfleetlease, the way its users build: once with pkg-config, once with
 * find_package(fleetlease) (shared and static).  It sees only what was
 * installed: the header and the library.
 *
 * consumer DBFILE: take an exclusive lease on a temporary SQLite file,
 * see another writer refused with the lease's purpose, release, see the
 * host free again.  Exit 0 only if all of that held.
 */
#include <fleetlease.h>

#include <stdio.h>
#include <string.h>

static int fail(fl_store *st, const char *what, int rc)
{
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, fl_strerror(rc), st ? fl_errmsg(st) : "");
    fl_close(st);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: consumer DBFILE\n");
        return 2;
    }
    char url[FL_URL_MAX + 1];
    int n = snprintf(url, sizeof url, "sqlite:%s", argv[1]);
    if (n < 0 || (size_t)n >= sizeof url) {
        fprintf(stderr, "consumer: DBFILE: must be at most %d bytes\n", FL_URL_MAX - 8);
        return 2;
    }
    fl_store *st = NULL;
    int rc = fl_open(url, &st);
    if (rc != FL_OK)
        return fail(st, "fl_open", rc);

    fl_lease lease;
    fl_verdict v;
    memset(&lease, 0, sizeof lease);
    memset(&v, 0, sizeof v);
    rc = fl_acquire(st, "gpu-01", "consumer", "install test", FL_EXCLUSIVE, 30000, 0, &lease, &v);
    if (rc != FL_OK)
        return fail(st, "fl_acquire", rc);
    if (strlen(lease.token) != FL_TOKEN_LEN || lease.fence <= 0)
        return fail(st, "fl_acquire returned no token or fence", FL_EINVAL);

    rc = fl_check(st, "gpu-01", "someone-else", NULL, &v);
    if (rc != FL_OK)
        return fail(st, "fl_check", rc);
    if (v.allowed || !strstr(v.message, "install test"))
        return fail(st, "fl_check let another writer in while leased", FL_EINVAL);

    rc = fl_release(st, lease.token);
    if (rc != FL_OK)
        return fail(st, "fl_release", rc);
    rc = fl_check(st, "gpu-01", "someone-else", NULL, &v);
    if (rc != FL_OK || !v.allowed)
        return fail(st, "fl_check after release", rc != FL_OK ? rc : FL_EINVAL);

    printf("fleetlease.h %s: acquired fence %lld on %s, released\n", FL_VERSION_STRING,
           (long long)lease.fence, fl_store_kind(st));
    fl_close(st);
    return 0;
}
