/*
 * tests/writers/check_lib.c -- writer path (a): the C library.
 *
 * A writer that calls fl_check() before every dispatch honors an
 * exclusive lease: it is refused with "host leased for <purpose> by
 * <holder> until <time>", the holder itself (by name or by its token) is
 * allowed, and dispatch resumes once the lease is released.
 *
 * Built against include/fleetlease.h only, as an application would be.
 * The holder and the writer use separate handles (separate connections),
 * so every verdict comes through the store, as between two processes.
 *
 * usage: writer_check_lib STORE
 *   STORE  "sqlite:tmp"  a fresh SQLite file in a temporary directory
 *          "env:VAR"     the URL in $VAR; exit 77 (skipped) when unset
 *          anything else a store URL
 * Exit: 0 passed, 1 failed, 77 skipped.
 */
#include <fleetlease.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PURPOSE "nightly bench"
#define HOLDER "bench-1"

typedef struct writer {
    fl_store *st;
    const char *provider;
    int dispatched;     /* requests that went to the provider */
    int refusals;
    fl_verdict last;
} writer;

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
        }                                                                    \
    } while (0)

/* The pattern every library writer follows: check, then dispatch only if
 * allowed.  Returns 1 if it dispatched. */
static int try_dispatch(writer *w, const char *name, const char *token)
{
    memset(&w->last, 0, sizeof w->last);
    int rc = fl_check(w->st, w->provider, name, token, &w->last);
    CHECK(rc == FL_OK, "fl_check: %s", fl_errmsg(w->st));
    CHECK(!w->last.stale, "verdict is stale; the store was reachable");
    if (rc != FL_OK || !w->last.allowed) {
        w->refusals++;
        return 0;
    }
    w->dispatched++;
    return 1;
}

/* The refusal says who holds the host, for what, and until when: the
 * exact message fl_check formats, with the blocker's expiry. */
static void expect_refused(writer *w, const char *name, const char *token, const fl_lease *held)
{
    int before = w->dispatched;
    int got = try_dispatch(w, name, token);
    const char *who = name ? name : "(anonymous)";
    CHECK(!got && w->dispatched == before, "%s dispatched to a host under an exclusive lease", who);
    const fl_verdict *v = &w->last;
    char until[64], want[FL_MESSAGE_MAX];
    CHECK(fl_format_time(held->expires_at_ms, until, sizeof until) == FL_OK, "fl_format_time");
    snprintf(want, sizeof want, "host leased for %s by %s until %s", PURPOSE, HOLDER, until);
    CHECK(strcmp(v->message, want) == 0, "%s: message \"%s\", want \"%s\"", who, v->message, want);
    CHECK(v->state == FL_PSTATE_EXCLUSIVE, "%s: state %s, want exclusive", who,
          fl_pstate_name(v->state));
    CHECK(strcmp(v->blocker.holder, HOLDER) == 0, "%s: blocker holder \"%s\"", who, v->blocker.holder);
    CHECK(v->blocker.fence == held->fence, "%s: blocker fence %lld, want %lld", who,
          (long long)v->blocker.fence, (long long)held->fence);
    CHECK(v->blocker.token[0] == '\0', "%s: a verdict must never carry the lease token", who);
    CHECK(v->retry_after_ms >= 1000, "%s: retry_after_ms %lld, want >= 1000", who,
          (long long)v->retry_after_ms);
}

static void expect_allowed(writer *w, const char *name, const char *token, const char *why)
{
    int before = w->dispatched;
    int got = try_dispatch(w, name, token);
    CHECK(got && w->dispatched == before + 1, "%s: refused: %s", why, w->last.message);
}

/* "sqlite:tmp" makes a directory; its files are removed at the end. */
static void remove_tmp(const char *tmpdir)
{
    static const char *const files[] = {"leases.db", "leases.db-wal", "leases.db-shm",
                                        "leases.db-journal"};
    if (!tmpdir[0])
        return;
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s sqlite:tmp | env:VAR | URL\n", argv[0]);
        return 64;
    }
    char url[FL_URL_MAX + 1];
    char tmpdir[64] = "";
    const char *arg = argv[1];
    if (strcmp(arg, "sqlite:tmp") == 0) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/fl-writer-lib.XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(url, sizeof url, "%s/leases.db", tmpdir);
    } else if (strncmp(arg, "env:", 4) == 0) {
        const char *v = getenv(arg + 4);
        if (!v || !v[0]) {
            fprintf(stderr, "SKIP: $%s is not set\n", arg + 4);
            return 77;
        }
        if ((size_t)snprintf(url, sizeof url, "%s", v) >= sizeof url) {
            fprintf(stderr, "$%s: longer than %d bytes\n", arg + 4, FL_URL_MAX);
            return 1;
        }
    } else {
        snprintf(url, sizeof url, "%s", arg);
    }

    /* A per-run provider: runs may share one PostgreSQL database. */
    char provider[FL_PROVIDER_MAX + 1];
    snprintf(provider, sizeof provider, "writer-lib.%ld.%ld", (long)getpid(), (long)time(NULL));

    fl_store *hs = NULL, *ws = NULL;
    int rc = fl_open(url, &hs);
    if (rc != FL_OK) {
        fprintf(stderr, "FAIL: open %s: %s\n", arg, hs ? fl_errmsg(hs) : fl_strerror(rc));
        fl_close(hs);
        remove_tmp(tmpdir);
        return 1;
    }
    rc = fl_open(url, &ws);
    if (rc != FL_OK) {
        fprintf(stderr, "FAIL: open %s (writer): %s\n", arg, ws ? fl_errmsg(ws) : fl_strerror(rc));
        fl_close(ws);
        fl_close(hs);
        remove_tmp(tmpdir);
        return 1;
    }
    writer w = {.st = ws, .provider = provider};
    fprintf(stderr, "== library writer path on %s (%s)\n", fl_store_kind(ws), provider);

    /* Free host: anyone dispatches. */
    expect_allowed(&w, "router-3", NULL, "free host, router-3");

    fl_lease held;
    memset(&held, 0, sizeof held);
    rc = fl_acquire(hs, provider, HOLDER, PURPOSE, FL_EXCLUSIVE, 30000, 0, &held, NULL);
    CHECK(rc == FL_OK, "acquire: %s", fl_errmsg(hs));
    if (rc == FL_OK) {
        /* Refused while leased: a named writer and an anonymous one, and a
         * writer presenting a token that is not the lease's. */
        expect_refused(&w, "router-3", NULL, &held);
        expect_refused(&w, NULL, NULL, &held);
        expect_refused(&w, "router-3", "0123456789abcdef0123456789abcdef", &held);

        /* The holder itself: by name, and any writer presenting its token. */
        expect_allowed(&w, HOLDER, NULL, "holder by name");
        CHECK(strstr(w.last.message, "host leased for") == NULL,
              "the holder was told it is refused: %s", w.last.message);
        expect_allowed(&w, "bench-1-worker", held.token, "holder's token");

        CHECK(fl_release(hs, held.token) == FL_OK, "release: %s", fl_errmsg(hs));
    }

    /* Released: dispatch resumes for everyone, at once (no stale refusal). */
    expect_allowed(&w, "router-3", NULL, "after release, router-3");
    expect_allowed(&w, NULL, NULL, "after release, anonymous");
    CHECK(w.last.state == FL_PSTATE_FREE, "after release: state %s, want free",
          fl_pstate_name(w.last.state));

    CHECK(w.dispatched == 5 && w.refusals == 3, "dispatched %d (want 5), refused %d (want 3)",
          w.dispatched, w.refusals);

    fl_close(ws);
    fl_close(hs);
    remove_tmp(tmpdir);
    if (failures) {
        fprintf(stderr, "FAILED: %d check(s)\n", failures);
        return 1;
    }
    fprintf(stderr, "ok: refused 3, dispatched 5 (free, holder x2, after release x2)\n");
    return 0;
}
