/*
 * tests/conformance/test_store.c -- THE conformance suite: one set of tests
 * that every store must pass unchanged.  It runs against the URL in
 * $FL_TEST_DB (ctest runs it once per store, see CMakeLists.txt) and uses
 * only the public header, so it pins what a user can observe.
 *
 * Every test takes fresh provider ids (support.h), so tests do not see each
 * other's rows and one database can be reused across runs.  Time advances
 * are real sleeps against TTL 1 s, the minimum, judged on the store's clock.
 * "Another process" is a real fork()ed or exec'd process with its own handle.
 *
 * One named test per shared case (../shared/cases/C01..C14) that can be
 * expressed at the library level.  C09 and C10 are about `fleetlease run`
 * and live in tests/run.
 *
 * Some checks accept FL_ENOTFOUND where FL_EEXPIRED is the first answer: a
 * lapsed row may have been cleared (by a sweep of a concurrent test on a
 * shared database, or by the next acquire on the provider, which records it
 * as "expired").  expect_lapsed() accepts that only when the history shows
 * the grant's "expired" event, so a lease that simply vanished still fails.
 */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PURPOSE "nightly bench"

/* ---- assertions that print what the store said -------------------------- */

#define EXPECT_RC(st, want, call)                                                        \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ != (want)) {                                                             \
            print_error("%s:%d: %s\n    want %s, got %s (%d): %s\n", __FILE__, __LINE__, \
                        #call, fl_strerror(want), fl_strerror(rc_), rc_,                 \
                        (st) != NULL ? fl_errmsg(st) : "");                              \
            fail();                                                                      \
        }                                                                                \
    } while (0)

#define ASSERT_CMP(a, op, b)                                                             \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (!(a_ op b_)) {                                                               \
            print_error("%s:%d: expected %s %s %s, got %lld %s %lld\n", __FILE__,        \
                        __LINE__, #a, #op, #b, a_, #op, b_);                             \
            fail();                                                                      \
        }                                                                                \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                     \
    do {                                                                                 \
        const char *h_ = (hay), *n_ = (needle);                                          \
        if (h_ == NULL || strstr(h_, n_) == NULL) {                                      \
            print_error("%s:%d: expected \"%s\" to contain \"%s\"\n", __FILE__,          \
                        __LINE__, h_ != NULL ? h_ : "(null)", n_);                       \
            fail();                                                                      \
        }                                                                                \
    } while (0)

/* ---- per-test state -------------------------------------------------------- */

typedef struct tc {
    fl_store *st;
    char p[FL_PROVIDER_MAX + 1];
    fl_event *hist; /* the last history read by hist(); freed by the next or by teardown */
} tc;

/* The grant's lease, copied (the heartbeat thread updates it). */
static fl_lease grant_lease(const fl_grant *g)
{
    fl_lease l;
    memset(&l, 0, sizeof l);
    fl_grant_lease(g, &l);
    return l;
}

static int setup(void **state)
{
    tc *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    t->st = ts_open();
    ts_provider(t->p, sizeof t->p, "t");
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tc *t = *state;
    if (t != NULL) {
        fl_free(t->hist);
        fl_close(t->st);
        free(t);
    }
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

/* The provider's history, oldest first.  Owned by the test state, so that a
 * failing assertion (which longjmps out of the test) leaks nothing. */
static fl_event *hist(tc *t, const char *p, size_t *n)
{
    fl_free(t->hist);
    t->hist = ts_history(t->st, p, n);
    return t->hist;
}

static fl_lease acq(fl_store *st, const char *p, const char *holder, fl_mode mode, int64_t ttl)
{
    fl_lease l;
    memset(&l, 0, sizeof l);
    EXPECT_RC(st, FL_OK, fl_acquire(st, p, holder, PURPOSE, mode, ttl, 0, &l, NULL));
    return l;
}

static fl_verdict refused(fl_store *st, const char *p, const char *holder, fl_mode mode,
                          int64_t wait)
{
    fl_lease l;
    fl_verdict v;
    memset(&v, 0, sizeof v);
    EXPECT_RC(st, FL_ECONFLICT, fl_acquire(st, p, holder, PURPOSE, mode, 5000, wait, &l, &v));
    assert_int_equal(v.allowed, 0);
    return v;
}

static fl_verdict check(fl_store *st, const char *p, const char *writer, const char *token)
{
    fl_verdict v;
    memset(&v, 0, sizeof v);
    EXPECT_RC(st, FL_OK, fl_check(st, p, writer, token, &v));
    return v;
}

static void release(fl_store *st, const fl_lease *l)
{
    EXPECT_RC(st, FL_OK, fl_release(st, l->token));
}

/* A well-formed token that no lease has (tokens are 128 random bits). */
static void fake_token(char out[FL_TOKEN_LEN + 1])
{
    static unsigned n;
    snprintf(out, FL_TOKEN_LEN + 1, "0000dead%08x%08x%08x", (unsigned)getpid(), ++n, 0xbeefu);
}

static size_t count_events(const fl_event *ev, size_t n, const char *type, int64_t fence)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].event, type) == 0 && (fence < 0 || ev[i].fence == fence))
            c++;
    return c;
}

static const fl_event *find_event(const fl_event *ev, size_t n, const char *type, int64_t fence)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].event, type) == 0 && (fence < 0 || ev[i].fence == fence))
            return &ev[i];
    return NULL;
}

/* A renew/release of a lapsed lease: FL_EEXPIRED, or FL_ENOTFOUND once the
 * row was cleared -- then the history must say it expired. */
static void expect_lapsed(fl_store *st, int rc, const char *p, int64_t fence)
{
    if (rc == FL_EEXPIRED)
        return;
    if (rc != FL_ENOTFOUND) {
        print_error("want %s (or %s after a sweep), got %s: %s\n", fl_strerror(FL_EEXPIRED),
                    fl_strerror(FL_ENOTFOUND), fl_strerror(rc), fl_errmsg(st));
        fail();
    }
    size_t n;
    fl_event *ev = ts_history(st, p, &n);
    int swept = find_event(ev, n, "expired", fence) != NULL;
    fl_free(ev);
    if (!swept) {
        print_error("got %s for a lapsed lease (fence %lld) with no \"expired\" event\n",
                    fl_strerror(rc), (long long)fence);
        fail();
    }
}

/* The refusal message: "host leased for <purpose> by <holder> until <time>". */
static void expect_message(const char *msg, const char *purpose, const char *holder,
                           int64_t until_ms)
{
    char want[FL_MESSAGE_MAX], t[64];
    assert_int_equal(fl_format_time(until_ms, t, sizeof t), FL_OK);
    snprintf(want, sizeof want, "host leased for %s by %s until %s", purpose, holder, t);
    if (strncmp(msg, want, strlen(want)) != 0) {
        print_error("message \"%s\"\n   does not start with \"%s\"\n", msg, want);
        fail();
    }
}

static size_t list_count(fl_store *st, const char *p, fl_lease_state state)
{
    fl_lease *rows = NULL;
    size_t n = 0, c = 0;
    EXPECT_RC(st, FL_OK, fl_list(st, p, &rows, &n));
    for (size_t i = 0; i < n; i++)
        if (state == 0 || rows[i].state == state)
            c++;
    fl_free(rows);
    return c;
}

static int is_lower_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* What a forked acquirer reports back over its pipe. */
typedef struct acq_msg {
    int rc;
    fl_lease lease;
    int64_t before_ms; /* store clock just before fl_acquire */
    int64_t after_ms;  /* store clock just after it returned */
    char err[FL_MESSAGE_MAX];
} acq_msg;

typedef struct child_acq {
    const char *p;
    const char *holder;
    fl_mode mode;
    int64_t ttl, wait;
    int64_t hold_ms; /* after a grant: sleep, then release */
    int forever;     /* after a grant: block until killed */
} child_acq;

static int child_acquire(void *arg, int wfd)
{
    const child_acq *c = arg;
    fl_store *st = ts_open();
    acq_msg m;
    memset(&m, 0, sizeof m);
    m.before_ms = ts_store_now(st);
    m.rc = fl_acquire(st, c->p, c->holder, PURPOSE, c->mode, c->ttl, c->wait, &m.lease, NULL);
    m.after_ms = ts_store_now(st);
    snprintf(m.err, sizeof m.err, "%s", fl_errmsg(st));
    if (ts_write_all(wfd, &m, sizeof m) != 0)
        return 2;
    if (m.rc == FL_OK && c->forever)
        for (;;)
            pause();
    if (m.rc == FL_OK) {
        ts_sleep_ms(c->hold_ms);
        if (fl_release(st, m.lease.token) != FL_OK)
            return 3;
    }
    fl_close(st);
    return 0;
}

static acq_msg read_acq(int rfd)
{
    acq_msg m;
    memset(&m, 0, sizeof m);
    if (ts_read_all(rfd, &m, sizeof m) != 0) {
        print_error("child acquirer died before reporting\n");
        fail();
    }
    return m;
}

/* Poll the list until the provider has a pending intent (a waiter registered). */
static int wait_pending(fl_store *st, const char *p, int64_t timeout_ms)
{
    int64_t end = ts_mono_ms() + timeout_ms;
    while (ts_mono_ms() < end) {
        if (list_count(st, p, FL_LEASE_PENDING) > 0)
            return 1;
        ts_sleep_ms(20);
    }
    return 0;
}

/* ======================================================================== */
/* API semantics                                                             */
/* ======================================================================== */

static void test_grant_fields(void **state)
{
    tc *t = *state;
    int64_t before = ts_store_now(t->st);
    fl_lease l = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    int64_t after = ts_store_now(t->st);

    assert_true(is_lower_hex(l.token, FL_TOKEN_LEN));
    assert_string_equal(l.provider, t->p);
    assert_string_equal(l.holder, "bench-A");
    assert_string_equal(l.purpose, PURPOSE);
    assert_int_equal(l.mode, FL_EXCLUSIVE);
    assert_int_equal(l.state, FL_LEASE_ACTIVE);
    ASSERT_CMP(l.fence, >, 0);
    ASSERT_CMP(l.ttl_ms, ==, 30000);
    ASSERT_CMP(l.expires_at_ms, ==, l.acquired_at_ms + 30000);
    ASSERT_CMP(l.heartbeat_at_ms, ==, l.acquired_at_ms);
    ASSERT_CMP(l.acquired_at_ms, >=, before);
    ASSERT_CMP(l.acquired_at_ms, <=, after);
    ASSERT_CMP(l.expires_at_ms, >, after);
    assert_string_equal(fl_errmsg(t->st), "");

    /* Two grants never share a token. */
    char p2[FL_PROVIDER_MAX + 1];
    ts_provider(p2, sizeof p2, "t");
    fl_lease l2 = acq(t->st, p2, "bench-A", FL_EXCLUSIVE, 30000);
    assert_string_not_equal(l.token, l2.token);
    release(t->st, &l);
    release(t->st, &l2);
}

static void test_shared_shared(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    fl_lease b = acq(t->st, t->p, "reader-2", FL_SHARED, 30000);
    assert_int_equal(a.mode, FL_SHARED);
    assert_string_not_equal(a.token, b.token);
    ASSERT_CMP(b.fence, >, a.fence);

    fl_verdict v = check(t->st, t->p, "anyone", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_SHARED);
    assert_int_equal(v.shared_count, 2);
    assert_int_equal(list_count(t->st, t->p, FL_LEASE_ACTIVE), 2);
    release(t->st, &a);
    release(t->st, &b);
    assert_int_equal(list_count(t->st, t->p, 0), 0);
}

static void test_exclusive_blocks_exclusive(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    fl_verdict v = refused(t->st, t->p, "bench-B", FL_EXCLUSIVE, 0);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    assert_string_equal(v.blocker.holder, "bench-A");
    assert_string_equal(v.blocker.purpose, PURPOSE);
    assert_int_equal(v.blocker.mode, FL_EXCLUSIVE);
    assert_int_equal(v.blocker.state, FL_LEASE_ACTIVE);
    assert_string_equal(v.blocker.token, "");
    ASSERT_CMP(v.blocker.fence, ==, a.fence);
    ASSERT_CMP(v.blocker.expires_at_ms, ==, a.expires_at_ms);
    ASSERT_CMP(v.retry_after_ms, >=, 1000);
    expect_message(v.message, PURPOSE, "bench-A", a.expires_at_ms);

    /* conflict may be NULL */
    fl_lease l;
    EXPECT_RC(t->st, FL_ECONFLICT,
              fl_acquire(t->st, t->p, "bench-B", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL));
    /* The same holder name does not get a second exclusive either. */
    refused(t->st, t->p, "bench-A", FL_EXCLUSIVE, 0);
    release(t->st, &a);
}

/* fl_check_cached answers from the handle's last read while it is young
 * enough (a gateway's per-request check), and reads again after. */
static void test_check_cached(void **state)
{
    tc *t = *state;
    fl_store *other = ts_open();
    fl_lease a = acq(other, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    fl_verdict v;
    memset(&v, 0, sizeof v);
    EXPECT_RC(t->st, FL_OK, fl_check_cached(t->st, t->p, "chat", NULL, 60000, &v));
    assert_int_equal(v.allowed, 0);
    /* Released by another handle: a young cache still says refused... */
    release(other, &a);
    EXPECT_RC(t->st, FL_OK, fl_check_cached(t->st, t->p, "chat", NULL, 60000, &v));
    assert_int_equal(v.allowed, 0);
    expect_message(v.message, PURPOSE, "bench-A", a.expires_at_ms);
    /* A fresh read (fl_check) refreshes the cache; the holder's token is
     * allowed from it by the same rule as fl_check... */
    assert_int_equal(check(t->st, t->p, "chat", NULL).allowed, 1);
    fl_lease b = acq(other, t->p, "bench-B", FL_EXCLUSIVE, 30000);
    EXPECT_RC(t->st, FL_OK, fl_check_cached(t->st, t->p, "chat", NULL, 0, &v));
    assert_int_equal(v.allowed, 0);
    EXPECT_RC(t->st, FL_OK, fl_check_cached(t->st, t->p, "chat", b.token, 60000, &v));
    assert_int_equal(v.allowed, 1);
    /* ...and input is validated on the fast path too. */
    EXPECT_RC(t->st, FL_EINVAL, fl_check_cached(t->st, t->p, "bad\x01writer", NULL, 60000, &v));
    EXPECT_RC(t->st, FL_EINVAL, fl_check_cached(t->st, t->p, "chat", "nothex", 60000, &v));
    /* max_age 0 always reads: after release it is free. */
    release(other, &b);
    EXPECT_RC(t->st, FL_OK, fl_check_cached(t->st, t->p, "chat", NULL, 0, &v));
    assert_int_equal(v.allowed, 1);
    /* fl_wait_change returns within its bound. */
    int64_t t0 = ts_mono_ms();
    EXPECT_RC(t->st, FL_OK, fl_wait_change(t->st, t->p, 200));
    ASSERT_CMP(ts_mono_ms() - t0, <, 2000);
    fl_close(other);
}

/* Isolation reports: per gateway, summed per grant; final ones land in
 * history.  Absolute counters: a repeated put replaces, never adds. */
static void test_isolation_report(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    fl_report r, got;
    memset(&r, 0, sizeof r);
    snprintf(r.provider, sizeof r.provider, "%s", t->p);
    r.fence = a.fence;
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_report_get(t->st, t->p, a.fence, &got));
    r.foreign_refused = 3;
    r.holder_requests = 10;
    r.n_writers = 2;
    snprintf(r.writers[0].writer, sizeof r.writers[0].writer, "chat");
    r.writers[0].refused = 2;
    snprintf(r.writers[1].writer, sizeof r.writers[1].writer, "odd \"name\\, {x}");
    r.writers[1].refused = 1;
    EXPECT_RC(t->st, FL_OK, fl_report_put(t->st, "gw-1", &r));
    r.holder_requests = 12; /* replaces */
    EXPECT_RC(t->st, FL_OK, fl_report_put(t->st, "gw-1", &r));
    fl_report r2 = r;
    r2.foreign_in_flight_at_grant = 1;
    r2.holder_requests = 5;
    r2.n_writers = 1;
    r2.writers[0].refused = 4;
    r2.final = 1;
    EXPECT_RC(t->st, FL_OK, fl_report_put(t->st, "gw-2", &r2));
    EXPECT_RC(t->st, FL_OK, fl_report_get(t->st, t->p, a.fence, &got));
    assert_int_equal(got.gateways, 2);
    assert_int_equal(got.final, 0); /* gw-1 has not seen the end yet */
    ASSERT_CMP(got.holder_requests, ==, 17);
    ASSERT_CMP(got.foreign_in_flight_at_grant, ==, 1);
    ASSERT_CMP(got.concurrent_foreign_requests, ==, 0);
    assert_int_equal(got.n_writers, 2);
    assert_string_equal(got.writers[0].writer, "chat");
    ASSERT_CMP(got.writers[0].refused, ==, 6);
    assert_string_equal(got.writers[1].writer, "odd \"name\\, {x}");
    r.final = 1;
    EXPECT_RC(t->st, FL_OK, fl_report_put(t->st, "gw-1", &r));
    EXPECT_RC(t->st, FL_OK, fl_report_get(t->st, t->p, a.fence, &got));
    assert_int_equal(got.final, 1);
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "isolation", a.fence), 2);
    /* Bad input changes nothing. */
    r.n_writers = 2;
    snprintf(r.writers[1].writer, sizeof r.writers[1].writer, "chat");
    EXPECT_RC(t->st, FL_EINVAL, fl_report_put(t->st, "gw-1", &r));
    r.n_writers = 0;
    r.concurrent_foreign_requests = -1;
    EXPECT_RC(t->st, FL_EINVAL, fl_report_put(t->st, "gw-1", &r));
    EXPECT_RC(t->st, FL_EINVAL, fl_report_put(t->st, "bad\ngw", &r));
    EXPECT_RC(t->st, FL_OK, fl_report_get(t->st, t->p, a.fence, &got));
    ASSERT_CMP(got.holder_requests, ==, 17);
    release(t->st, &a);
}

static int cancel_after(void *arg)
{
    return ts_mono_ms() >= *(const int64_t *)arg;
}

/* A cancelled wait ends promptly, withdraws its pending intent (shared
 * grants resume at once) and is recorded once as refused. */
static void test_acquire_cancel(void **state)
{
    tc *t = *state;
    fl_lease r = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    fl_store *w = ts_open();
    int64_t t0 = ts_mono_ms(), stop_at = t0 + 300;
    fl_acquire_opts o = {.provider = t->p, .holder = "bench-W", .purpose = PURPOSE,
                         .mode = FL_EXCLUSIVE, .ttl_ms = 5000, .wait_ms = 20000,
                         .cancel = cancel_after, .cancel_arg = &stop_at};
    fl_lease l;
    fl_verdict v;
    memset(&v, 0, sizeof v);
    EXPECT_RC(w, FL_ECANCELED, fl_acquire_ex(w, &o, &l, &v));
    ASSERT_CMP(ts_mono_ms() - t0, <, 1500);
    assert_int_equal(v.allowed, 0);
    fl_lease r2 = acq(t->st, t->p, "reader-2", FL_SHARED, 30000);
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "refused", -1), 1);
    assert_int_equal(count_events(ev, n, "pending", -1), 1);
    /* No options: invalid, nothing written. */
    EXPECT_RC(w, FL_EINVAL, fl_acquire_ex(w, NULL, &l, &v));
    release(t->st, &r2);
    release(t->st, &r);
    fl_close(w);
}

static fl_schedule sample_schedule(const char *name)
{
    fl_schedule s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.cron, sizeof s.cron, "0 2 * * *");
    snprintf(s.tz, sizeof s.tz, "UTC");
    snprintf(s.providers, sizeof s.providers, "gpu-01,gpu-02");
    snprintf(s.holder, sizeof s.holder, "nightly");
    snprintf(s.purpose, sizeof s.purpose, PURPOSE);
    s.max_wait_ms = 7200000;
    s.max_run_ms = 14400000;
    s.ttl_ms = 30000;
    snprintf(s.command, sizeof s.command, "[\"./bench.sh\",\"--quick\"]");
    return s;
}

/* Schedules: put/replace/list/rm; a run is claimed exactly once however
 * many processes race for it; finish and runs record how it went. */
static void test_schedules(void **state)
{
    tc *t = *state;
    char name[64];
    snprintf(name, sizeof name, "sched-%.50s", t->p); /* unique per run */
    for (char *c = name; *c; c++)
        if (*c == ':' || *c == '/')
            *c = '-';
    fl_schedule s = sample_schedule(name);
    EXPECT_RC(t->st, FL_OK, fl_schedule_put(t->st, &s));
    snprintf(s.cron, sizeof s.cron, "@daily");
    EXPECT_RC(t->st, FL_OK, fl_schedule_put(t->st, &s)); /* replaces */
    fl_schedule *all = NULL;
    size_t n = 0, found = 0;
    EXPECT_RC(t->st, FL_OK, fl_schedule_list(t->st, &all, &n));
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].name, name) == 0) {
            found++;
            assert_string_equal(all[i].cron, "@daily");
            assert_string_equal(all[i].providers, "gpu-01,gpu-02");
            assert_string_equal(all[i].command, s.command);
            ASSERT_CMP(all[i].max_run_ms, ==, 14400000);
            ASSERT_CMP(all[i].created_at_ms, >, 0);
        }
    fl_free(all);
    assert_int_equal(found, 1);

    /* Bad input names the field and changes nothing. */
    fl_schedule bad = s;
    snprintf(bad.name, sizeof bad.name, "no spaces");
    EXPECT_RC(t->st, FL_EINVAL, fl_schedule_put(t->st, &bad));
    assert_non_null(strstr(fl_errmsg(t->st), "name"));
    bad = s;
    snprintf(bad.providers, sizeof bad.providers, "gpu-01,,gpu-02");
    EXPECT_RC(t->st, FL_EINVAL, fl_schedule_put(t->st, &bad));
    bad = s;
    bad.ttl_ms = 10;
    EXPECT_RC(t->st, FL_EINVAL, fl_schedule_put(t->st, &bad));
    assert_non_null(strstr(fl_errmsg(t->st), "ttl"));
    bad = s;
    snprintf(bad.command, sizeof bad.command, "a\tb");
    EXPECT_RC(t->st, FL_EINVAL, fl_schedule_put(t->st, &bad));

    /* 8 processes race to claim the same due run: exactly one wins. */
    const int64_t due = 1800000000000LL + (getpid() % 100000) * 1000;
    enum { RACERS = 8 };
    pid_t kids[RACERS];
    for (int i = 0; i < RACERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            fl_store *cst = ts_open();
            int64_t id = 0;
            char daemon[32];
            snprintf(daemon, sizeof daemon, "daemon-%d", i);
            int rc = fl_sched_claim(cst, name, due, daemon, &id);
            fl_close(cst);
            _exit(rc == FL_OK ? 0 : rc == FL_ECONFLICT ? 1 : 2);
        }
    }
    int wins = 0, losses = 0;
    for (int i = 0; i < RACERS; i++) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        assert_true(WIFEXITED(status));
        wins += WEXITSTATUS(status) == 0;
        losses += WEXITSTATUS(status) == 1;
    }
    assert_int_equal(wins, 1);
    assert_int_equal(losses, RACERS - 1);
    int64_t id = 0;
    EXPECT_RC(t->st, FL_ECONFLICT, fl_sched_claim(t->st, name, due, "late", &id));

    fl_sched_run *runs = NULL;
    EXPECT_RC(t->st, FL_OK, fl_sched_runs(t->st, name, 10, &runs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(runs[0].outcome, "running");
    ASSERT_CMP(runs[0].due_at_ms, ==, due);
    ASSERT_CMP(runs[0].ended_at_ms, ==, 0);
    id = runs[0].id;
    fl_free(runs);
    fl_sched_run fin;
    memset(&fin, 0, sizeof fin);
    snprintf(fin.outcome, sizeof fin.outcome, "ok");
    snprintf(fin.provider, sizeof fin.provider, "gpu-02");
    fin.fence = 42;
    fin.exit_status = 0;
    snprintf(fin.detail, sizeof fin.detail, "concurrent_foreign_requests=0");
    EXPECT_RC(t->st, FL_OK, fl_sched_finish(t->st, id, &fin));
    snprintf(fin.outcome, sizeof fin.outcome, "maybe");
    EXPECT_RC(t->st, FL_EINVAL, fl_sched_finish(t->st, id, &fin));
    snprintf(fin.outcome, sizeof fin.outcome, "ok");
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_sched_finish(t->st, 999999999999LL, &fin));
    EXPECT_RC(t->st, FL_OK, fl_sched_runs(t->st, name, 10, &runs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(runs[0].outcome, "ok");
    assert_string_equal(runs[0].provider, "gpu-02");
    ASSERT_CMP(runs[0].fence, ==, 42);
    ASSERT_CMP(runs[0].ended_at_ms, >=, runs[0].started_at_ms);
    assert_string_equal(runs[0].detail, "concurrent_foreign_requests=0");
    fl_free(runs);

    EXPECT_RC(t->st, FL_OK, fl_schedule_rm(t->st, name));
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_schedule_rm(t->st, name));
    EXPECT_RC(t->st, FL_OK, fl_sched_runs(t->st, name, 10, &runs, &n));
    assert_int_equal(n, 1); /* past runs are kept */
    fl_free(runs);
}

static void test_exclusive_blocks_shared(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    fl_verdict v = refused(t->st, t->p, "reader-1", FL_SHARED, 0);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    assert_string_equal(v.blocker.holder, "bench-A");
    expect_message(v.message, PURPOSE, "bench-A", a.expires_at_ms);
    release(t->st, &a);
    fl_lease s = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    release(t->st, &s);
}

static void test_shared_blocks_exclusive(void **state)
{
    tc *t = *state;
    fl_lease s1 = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    fl_lease s2 = acq(t->st, t->p, "reader-2", FL_SHARED, 30000);
    fl_verdict v = refused(t->st, t->p, "bench-A", FL_EXCLUSIVE, 0);
    assert_int_equal(v.state, FL_PSTATE_SHARED);
    assert_int_equal(v.shared_count, 2);
    assert_int_equal(v.blocker.mode, FL_SHARED);
    assert_string_equal(v.blocker.token, "");
    ASSERT_CONTAINS(v.message, "host leased for " PURPOSE " by reader-");
    ASSERT_CONTAINS(v.message, "(shared by 2 holders)");
    /* A refused exclusive with wait 0 registers no intent: shared still works. */
    assert_int_equal(list_count(t->st, t->p, FL_LEASE_PENDING), 0);
    fl_lease s3 = acq(t->st, t->p, "reader-3", FL_SHARED, 30000);
    release(t->st, &s1);
    release(t->st, &s2);
    release(t->st, &s3);
    fl_lease e = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    release(t->st, &e);
}

static void test_release_wrong_token_changes_nothing(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    char fake[FL_TOKEN_LEN + 1];
    fake_token(fake);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_release(t->st, fake));
    assert_true(fl_errmsg(t->st)[0] != '\0');
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_heartbeat(t->st, fake, NULL));
    EXPECT_RC(t->st, FL_EINVAL, fl_release(t->st, "not-a-token"));
    ASSERT_CONTAINS(fl_errmsg(t->st), "token");

    fl_lease *rows = NULL;
    size_t n = 0;
    EXPECT_RC(t->st, FL_OK, fl_list(t->st, t->p, &rows, &n));
    assert_int_equal(n, 1);
    ASSERT_CMP(rows[0].fence, ==, a.fence);
    ASSERT_CMP(rows[0].expires_at_ms, ==, a.expires_at_ms);
    assert_string_equal(rows[0].holder, "bench-A");
    fl_free(rows);

    size_t ne;
    fl_event *ev = hist(t, t->p, &ne);
    assert_int_equal(ne, 1); /* only the grant */
    assert_string_equal(ev[0].event, "granted");

    release(t->st, &a);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_release(t->st, a.token)); /* twice: not found */
    fl_lease b = acq(t->st, t->p, "bench-B", FL_EXCLUSIVE, 30000);
    ASSERT_CMP(b.fence, >, a.fence); /* the next grant's fence is larger */
    release(t->st, &b);
}

static void test_fence_rises_never_reused(void **state)
{
    tc *t = *state;
    int64_t f[8];
    size_t k = 0;
    fl_lease e1 = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    f[k++] = e1.fence;
    release(t->st, &e1);
    fl_lease s1 = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    fl_lease s2 = acq(t->st, t->p, "reader-2", FL_SHARED, 30000);
    f[k++] = s1.fence;
    f[k++] = s2.fence;
    release(t->st, &s1);
    release(t->st, &s2);
    for (int i = 0; i < 4; i++) {
        fl_lease e = acq(t->st, t->p, "bench-B", FL_EXCLUSIVE, 30000);
        f[k++] = e.fence;
        release(t->st, &e);
    }
    for (size_t i = 1; i < k; i++)
        ASSERT_CMP(f[i], >, f[i - 1]);

    /* The history agrees: one grant per fence, in rising order. */
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    int64_t last = 0;
    size_t grants = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].event, "granted") != 0)
            continue;
        ASSERT_CMP(ev[i].fence, >, last);
        last = ev[i].fence;
        grants++;
    }
    assert_int_equal(grants, k);
}

/* fl_lookup reads a lease by token without renewing it. */
static void test_lookup(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 1000);
    fl_lease l;
    EXPECT_RC(t->st, FL_OK, fl_lookup(t->st, a.token, &l));
    assert_string_equal(l.token, a.token);
    assert_string_equal(l.provider, t->p);
    ASSERT_CMP(l.fence, ==, a.fence);
    ASSERT_CMP(l.expires_at_ms, ==, a.expires_at_ms); /* not renewed */
    char fake[FL_TOKEN_LEN + 1];
    fake_token(fake);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_lookup(t->st, fake, &l));
    EXPECT_RC(t->st, FL_EINVAL, fl_lookup(t->st, "nothex", &l));
    ts_sleep_ms(1200);
    int rc = fl_lookup(t->st, a.token, &l);
    assert_true(rc == FL_EEXPIRED || rc == FL_ENOTFOUND);
}

static void test_renew_extends(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 1000);
    fl_lease r = a;
    /* Renew past the first expiry: the lease must still be held after it. */
    for (int i = 0; i < 5; i++) {
        ts_sleep_ms(300);
        fl_lease prev = r;
        memset(&r, 0, sizeof r);
        EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, a.token, &r));
        ASSERT_CMP(r.fence, ==, a.fence);
        assert_string_equal(r.token, a.token);
        assert_int_equal(r.state, FL_LEASE_ACTIVE);
        ASSERT_CMP(r.acquired_at_ms, ==, a.acquired_at_ms);
        ASSERT_CMP(r.ttl_ms, ==, 1000);
        ASSERT_CMP(r.heartbeat_at_ms, >, prev.heartbeat_at_ms);
        ASSERT_CMP(r.expires_at_ms, ==, r.heartbeat_at_ms + 1000);
        ASSERT_CMP(r.expires_at_ms, >, prev.expires_at_ms);
    }
    ASSERT_CMP(ts_store_now(t->st), >, a.expires_at_ms);
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 0);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    ASSERT_CMP(v.blocker.expires_at_ms, ==, r.expires_at_ms);
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, a.token, NULL)); /* out may be NULL */
    release(t->st, &a);
}

static void test_list_hides_tokens(void **state)
{
    tc *t = *state;
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    fl_lease s1 = acq(t->st, q, "reader-1", FL_SHARED, 30000);
    ts_sleep_ms(5);
    fl_lease s2 = acq(t->st, q, "reader-2", FL_SHARED, 30000);

    fl_lease *rows = NULL;
    size_t n = 0;
    EXPECT_RC(t->st, FL_OK, fl_list(t->st, t->p, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].token, "");
    assert_string_equal(rows[0].provider, t->p);
    assert_string_equal(rows[0].holder, "bench-A");
    assert_string_equal(rows[0].purpose, PURPOSE);
    assert_int_equal(rows[0].mode, FL_EXCLUSIVE);
    assert_int_equal(rows[0].state, FL_LEASE_ACTIVE);
    ASSERT_CMP(rows[0].fence, ==, a.fence);
    ASSERT_CMP(rows[0].acquired_at_ms, ==, a.acquired_at_ms);
    ASSERT_CMP(rows[0].expires_at_ms, ==, a.expires_at_ms);
    fl_free(rows);

    EXPECT_RC(t->st, FL_OK, fl_list(t->st, q, &rows, &n));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].holder, "reader-1"); /* ordered by acquired time */
    assert_string_equal(rows[1].holder, "reader-2");
    assert_string_equal(rows[0].token, "");
    assert_string_equal(rows[1].token, "");
    fl_free(rows);

    /* All providers: ours are there, and no row of anyone shows a token. */
    EXPECT_RC(t->st, FL_OK, fl_list(t->st, NULL, &rows, &n));
    size_t mine = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].token, "");
        if (strcmp(rows[i].provider, t->p) == 0 || strcmp(rows[i].provider, q) == 0)
            mine++;
        if (i > 0)
            assert_true(strcmp(rows[i - 1].provider, rows[i].provider) <= 0);
    }
    assert_int_equal(mine, 3);
    fl_free(rows);

    /* A provider with nothing: n == 0 and no allocation. */
    char empty[FL_PROVIDER_MAX + 1];
    ts_provider(empty, sizeof empty, "t");
    rows = (fl_lease *)&n; /* must be overwritten */
    EXPECT_RC(t->st, FL_OK, fl_list(t->st, empty, &rows, &n));
    assert_int_equal(n, 0);
    assert_null(rows);

    release(t->st, &a);
    release(t->st, &s1);
    release(t->st, &s2);
}

static void expect_event(const fl_event *e, const char *type, const char *p, const char *holder,
                         fl_mode mode)
{
    assert_string_equal(e->event, type);
    assert_string_equal(e->provider, p);
    assert_string_equal(e->holder, holder);
    assert_string_equal(e->purpose, PURPOSE);
    assert_int_equal(e->mode, mode);
}

static void test_history_every_transition(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 1000);
    fl_lease ar;
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, a.token, &ar));
    release(t->st, &a);
    fl_lease b = acq(t->st, t->p, "bench-B", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, b.expires_at_ms, 20);
    size_t swept = 0;
    EXPECT_RC(t->st, FL_OK, fl_sweep(t->st, &swept));
    ASSERT_CMP(swept, >=, 1);
    fl_lease c = acq(t->st, t->p, "reader-C", FL_SHARED, 30000);
    /* An exclusive that waits behind a shared holder registers an intent
     * ("pending"), and when it gives up records one "refused". */
    fl_verdict v = refused(t->st, t->p, "bench-D", FL_EXCLUSIVE, 300);
    release(t->st, &c);

    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    for (size_t i = 0; i < n; i++)
        print_message("  %lld %s %s fence=%lld exp=%lld %s\n", (long long)ev[i].at_ms,
                      ev[i].event, ev[i].holder, (long long)ev[i].fence,
                      (long long)ev[i].expires_at_ms, ev[i].detail);
    assert_int_equal(n, 9);
    expect_event(&ev[0], "granted", t->p, "bench-A", FL_EXCLUSIVE);
    ASSERT_CMP(ev[0].fence, ==, a.fence);
    ASSERT_CMP(ev[0].at_ms, ==, a.acquired_at_ms);
    ASSERT_CMP(ev[0].expires_at_ms, ==, a.expires_at_ms);
    expect_event(&ev[1], "renewed", t->p, "bench-A", FL_EXCLUSIVE);
    ASSERT_CMP(ev[1].fence, ==, a.fence);
    ASSERT_CMP(ev[1].expires_at_ms, ==, ar.expires_at_ms);
    expect_event(&ev[2], "released", t->p, "bench-A", FL_EXCLUSIVE);
    ASSERT_CMP(ev[2].fence, ==, a.fence);
    expect_event(&ev[3], "granted", t->p, "bench-B", FL_EXCLUSIVE);
    ASSERT_CMP(ev[3].fence, ==, b.fence);
    expect_event(&ev[4], "expired", t->p, "bench-B", FL_EXCLUSIVE);
    ASSERT_CMP(ev[4].fence, ==, b.fence);
    ASSERT_CMP(ev[4].expires_at_ms, ==, b.expires_at_ms);
    ASSERT_CMP(ev[4].at_ms, >=, b.expires_at_ms);
    expect_event(&ev[5], "granted", t->p, "reader-C", FL_SHARED);
    ASSERT_CMP(ev[5].fence, ==, c.fence);
    expect_event(&ev[6], "pending", t->p, "bench-D", FL_EXCLUSIVE);
    ASSERT_CMP(ev[6].fence, ==, 0);
    expect_event(&ev[7], "refused", t->p, "bench-D", FL_EXCLUSIVE);
    ASSERT_CMP(ev[7].fence, ==, 0);
    ASSERT_CONTAINS(ev[7].detail, "host leased for " PURPOSE " by reader-C until ");
    assert_string_equal(ev[7].detail, v.message);
    expect_event(&ev[8], "released", t->p, "reader-C", FL_SHARED);
    for (size_t i = 1; i < n; i++) {
        ASSERT_CMP(ev[i].id, >, ev[i - 1].id);
        ASSERT_CMP(ev[i].at_ms, >=, ev[i - 1].at_ms);
    }

    /* limit: newest first, at most limit */
    EXPECT_RC(t->st, FL_OK, fl_history(t->st, t->p, 2, &ev, &n));
    assert_int_equal(n, 2);
    assert_string_equal(ev[0].event, "released");
    assert_string_equal(ev[1].event, "refused");
    fl_free(ev);
}

static void test_sweep(void **state)
{
    tc *t = *state;
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 1000);
    fl_lease live = acq(t->st, q, "bench-Q", FL_EXCLUSIVE, 30000);
    ts_sleep_until_store(t->st, a.expires_at_ms, 20);
    /* Lapsed but not yet swept: not live, not listed, the provider is free. */
    assert_int_equal(list_count(t->st, t->p, 0), 0);
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_FREE);

    size_t swept = 0;
    EXPECT_RC(t->st, FL_OK, fl_sweep(t->st, &swept));
    ASSERT_CMP(swept, >=, 1);
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "expired", a.fence), 1);
    const fl_event *e = find_event(ev, n, "expired", a.fence);
    ASSERT_CMP(e->expires_at_ms, ==, a.expires_at_ms);
    assert_string_equal(e->holder, "bench-A");

    /* A second sweep records nothing more for it; the live lease is untouched. */
    EXPECT_RC(t->st, FL_OK, fl_sweep(t->st, &swept));
    ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "expired", -1), 1);
    ev = hist(t, q, &n);
    assert_int_equal(count_events(ev, n, "expired", -1), 0);
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, live.token, NULL));
    release(t->st, &live);
}

static void test_check_verdicts(void **state)
{
    tc *t = *state;
    /* free */
    fl_verdict v = check(t->st, t->p, "writer-1", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_FREE);
    assert_int_equal(v.shared_count, 0);
    assert_int_equal(v.stale, 0);
    assert_int_equal(v.fail_open, 0);
    assert_true(v.message[0] != '\0');
    int64_t now = ts_store_now(t->st);
    ASSERT_CMP(v.now_ms, <=, now);
    ASSERT_CMP(v.now_ms, >, now - 60000);
    v = check(t->st, t->p, NULL, NULL); /* anonymous */
    assert_int_equal(v.allowed, 1);

    /* shared: everyone may dispatch */
    fl_lease s = acq(t->st, t->p, "reader-1", FL_SHARED, 30000);
    v = check(t->st, t->p, NULL, NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_SHARED);
    assert_int_equal(v.shared_count, 1);
    release(t->st, &s);

    /* exclusive: only its holder (by name or by token) */
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 30000);
    v = check(t->st, t->p, "writer-1", NULL);
    assert_int_equal(v.allowed, 0);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    assert_string_equal(v.blocker.holder, "bench-A");
    assert_string_equal(v.blocker.token, "");
    ASSERT_CMP(v.blocker.fence, ==, a.fence);
    ASSERT_CMP(v.retry_after_ms, >=, 1000);
    ASSERT_CMP(v.retry_after_ms, <=, 30000 + 1000);
    char t_exp[64], want[FL_MESSAGE_MAX];
    assert_int_equal(fl_format_time(a.expires_at_ms, t_exp, sizeof t_exp), FL_OK);
    snprintf(want, sizeof want, "host leased for %s by %s until %s", PURPOSE, "bench-A", t_exp);
    assert_string_equal(v.message, want);
    v = check(t->st, t->p, NULL, NULL);
    assert_int_equal(v.allowed, 0);
    v = check(t->st, t->p, "bench-A", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    v = check(t->st, t->p, "someone-else", a.token);
    assert_int_equal(v.allowed, 1);
    char fake[FL_TOKEN_LEN + 1];
    fake_token(fake);
    v = check(t->st, t->p, "someone-else", fake);
    assert_int_equal(v.allowed, 0);
    release(t->st, &a);
    v = check(t->st, t->p, "writer-1", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_FREE);
    /* draining is covered by test_C13_writer_starvation */
}

static void expect_einval(fl_store *st, int rc, const char *field)
{
    if (rc != FL_EINVAL) {
        print_error("invalid %s: want %s, got %s: %s\n", field, fl_strerror(FL_EINVAL),
                    fl_strerror(rc), fl_errmsg(st));
        fail();
    }
    ASSERT_CONTAINS(fl_errmsg(st), field);
}

static void test_invalid_inputs(void **state)
{
    tc *t = *state;
    fl_store *st = t->st;
    fl_lease l;
    fl_verdict v;
    char big[FL_TEXT_MAX + 8];

    /* provider: 1-128 of [A-Za-z0-9._:/-] */
    char p129[FL_PROVIDER_MAX + 2];
    memset(p129, 'p', FL_PROVIDER_MAX + 1);
    p129[FL_PROVIDER_MAX + 1] = '\0';
    expect_einval(st, fl_acquire(st, "", "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "provider");
    expect_einval(st, fl_acquire(st, p129, "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "provider");
    expect_einval(st, fl_acquire(st, "gpu 01", "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "provider");
    expect_einval(st, fl_acquire(st, "gpu\xc3\xa9", "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "provider");
    expect_einval(st, fl_check(st, "bad provider", NULL, NULL, &v), "provider");
    fl_lease *rows;
    size_t n;
    expect_einval(st, fl_list(st, "bad provider", &rows, &n), "provider");
    fl_event *ev;
    expect_einval(st, fl_history(st, "bad provider", 10, &ev, &n), "provider");

    /* exactly 128 is fine (unique: our id, padded) */
    char p128[FL_PROVIDER_MAX + 1];
    snprintf(p128, sizeof p128, "%.100s-", t->p);
    size_t len = strlen(p128);
    memset(p128 + len, 'x', FL_PROVIDER_MAX - len);
    p128[FL_PROVIDER_MAX] = '\0';
    l = acq(st, p128, "h", FL_EXCLUSIVE, 5000);
    assert_string_equal(l.provider, p128);
    release(st, &l);

    /* holder, purpose: 1-256 bytes of UTF-8 without control characters */
    memset(big, 'h', FL_TEXT_MAX + 1);
    big[FL_TEXT_MAX + 1] = '\0';
    expect_einval(st, fl_acquire(st, t->p, "", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "holder");
    expect_einval(st, fl_acquire(st, t->p, big, PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "holder");
    expect_einval(st, fl_acquire(st, t->p, "a\nb", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "holder");
    expect_einval(st, fl_acquire(st, t->p, "a\x7f", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "holder");
    expect_einval(st, fl_acquire(st, t->p, "bad\xff", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), "holder");
    expect_einval(st, fl_acquire(st, t->p, "h", "", FL_EXCLUSIVE, 5000, 0, &l, NULL), "purpose");
    expect_einval(st, fl_acquire(st, t->p, "h", big, FL_EXCLUSIVE, 5000, 0, &l, NULL), "purpose");
    expect_einval(st, fl_acquire(st, t->p, "h", "a\tb", FL_EXCLUSIVE, 5000, 0, &l, NULL), "purpose");
    expect_einval(st, fl_check(st, t->p, "w\x01", NULL, &v), "writer");

    /* exactly 256 bytes, and multi-byte UTF-8, are fine */
    big[FL_TEXT_MAX] = '\0';
    memcpy(big, "h\xc3\xa9-\xe2\x9c\x93", 7);
    l = acq(st, t->p, big, FL_EXCLUSIVE, 5000);
    assert_string_equal(l.holder, big);
    release(st, &l);

    /* ttl 1s..24h, wait 0..7d, mode */
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, 0, 0, &l, NULL), "ttl");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, FL_TTL_MIN_MS - 1, 0, &l, NULL), "ttl");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, FL_TTL_MAX_MS + 1, 0, &l, NULL), "ttl");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, -5000, 0, &l, NULL), "ttl");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, 5000, -1, &l, NULL), "wait");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, 5000, FL_WAIT_MAX_MS + 1, &l, NULL), "wait");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, (fl_mode)0, 5000, 0, &l, NULL), "mode");
    expect_einval(st, fl_acquire(st, t->p, "h", PURPOSE, (fl_mode)3, 5000, 0, &l, NULL), "mode");

    /* tokens: 32 lowercase hex */
    expect_einval(st, fl_heartbeat(st, "abc", NULL), "token");
    expect_einval(st, fl_heartbeat(st, "0123456789ABCDEF0123456789ABCDEF", NULL), "token");
    expect_einval(st, fl_heartbeat(st, "0123456789abcdef0123456789abcdef0", NULL), "token");
    expect_einval(st, fl_release(st, "0123456789abcdef0123456789abcdeg"), "token");
    expect_einval(st, fl_release(st, ""), "token");

    /* history limit 1..10000 */
    expect_einval(st, fl_history(st, t->p, 0, &ev, &n), "limit");
    expect_einval(st, fl_history(st, t->p, 10001, &ev, &n), "limit");

    /* Nothing invalid was written, and a valid call clears the message. */
    ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "granted", -1), 1);
    assert_int_equal(count_events(ev, n, "refused", -1), 0);
    v = check(st, t->p, NULL, NULL);
    assert_string_equal(fl_errmsg(st), "");
}

static void test_null_handling(void **state)
{
    tc *t = *state;
    fl_store *st = t->st;
    fl_lease l;
    fl_verdict v;
    fl_lease *rows;
    fl_event *ev;
    size_t n;
    int64_t now;

    fl_close(NULL);
    fl_free(NULL);
    assert_int_equal(fl_grant_release(NULL), FL_OK);

    fl_store *bad = NULL;
    int rc = fl_open(NULL, &bad);
    assert_int_equal(rc, FL_EINVAL);
    fl_close(bad);
    assert_int_equal(fl_open("sqlite:/tmp/x.db", NULL), FL_EINVAL);

    assert_int_equal(fl_acquire(NULL, t->p, "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_acquire(st, NULL, "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL));
    EXPECT_RC(st, FL_EINVAL, fl_acquire(st, t->p, NULL, PURPOSE, FL_EXCLUSIVE, 5000, 0, &l, NULL));
    EXPECT_RC(st, FL_EINVAL, fl_acquire(st, t->p, "h", NULL, FL_EXCLUSIVE, 5000, 0, &l, NULL));
    EXPECT_RC(st, FL_EINVAL, fl_acquire(st, t->p, "h", PURPOSE, FL_EXCLUSIVE, 5000, 0, NULL, NULL));
    assert_int_equal(fl_heartbeat(NULL, "0123456789abcdef0123456789abcdef", NULL), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_heartbeat(st, NULL, NULL));
    assert_int_equal(fl_release(NULL, "0123456789abcdef0123456789abcdef"), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_release(st, NULL));
    assert_int_equal(fl_check(NULL, t->p, NULL, NULL, &v), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_check(st, NULL, NULL, NULL, &v));
    EXPECT_RC(st, FL_EINVAL, fl_check(st, t->p, NULL, NULL, NULL));
    assert_int_equal(fl_list(NULL, NULL, &rows, &n), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_list(st, NULL, NULL, &n));
    EXPECT_RC(st, FL_EINVAL, fl_list(st, NULL, &rows, NULL));
    assert_int_equal(fl_history(NULL, NULL, 10, &ev, &n), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_history(st, NULL, 10, NULL, &n));
    assert_int_equal(fl_sweep(NULL, &n), FL_EINVAL);
    assert_int_equal(fl_store_now(NULL, &now), FL_EINVAL);
    EXPECT_RC(st, FL_EINVAL, fl_store_now(st, NULL));

    /* Static descriptions never NULL. */
    assert_non_null(fl_strerror(-1));
    assert_non_null(fl_strerror(9999));
    assert_string_equal(fl_mode_name((fl_mode)0), "?");
    assert_string_equal(fl_mode_name(FL_SHARED), "shared");
    assert_string_equal(fl_mode_name(FL_EXCLUSIVE), "exclusive");
    assert_string_equal(fl_pstate_name(FL_PSTATE_DRAINING), "draining");

    /* Nothing was written for the provider. */
    ev = hist(t, t->p, &n);
    assert_int_equal(n, 0);

    /* fl_grant_acquire: *out is NULL on any failure */
    fl_grant *g = (fl_grant *)&n;
    char err[FL_MESSAGE_MAX] = "";
    assert_int_equal(fl_grant_acquire(NULL, &g, NULL, err, sizeof err), FL_EINVAL);
    assert_null(g);
    fl_grant_opts o = {.url = ts_url(), .provider = NULL, .holder = "h", .purpose = PURPOSE,
                       .mode = FL_EXCLUSIVE, .ttl_ms = 3000};
    g = (fl_grant *)&n;
    assert_int_equal(fl_grant_acquire(&o, &g, NULL, err, sizeof err), FL_EINVAL);
    assert_null(g);
    ASSERT_CONTAINS(err, "provider");
}

static void test_open_and_store_info(void **state)
{
    tc *t = *state;
    const char *url = ts_url();
    const char *kind = fl_store_kind(t->st);
    int pg = strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0;
    assert_string_equal(kind, pg ? "postgresql" : "sqlite");
    assert_non_null(fl_store_display(t->st));

    /* A password never shows in the display form. */
    const char *at = strchr(url, '@'), *scheme = strstr(url, "://");
    if (pg && at != NULL && scheme != NULL) {
        const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
        if (colon != NULL && colon + 1 < at) {
            char pw[256];
            snprintf(pw, sizeof pw, "%.*s", (int)(at - colon - 1), colon + 1);
            assert_null(strstr(fl_store_display(t->st), pw));
            ASSERT_CONTAINS(fl_store_display(t->st), "***");
        }
    }

    fl_store *bad = NULL;
    assert_int_equal(fl_open("mysql://localhost/db", &bad), FL_EURL);
    assert_non_null(bad);
    assert_true(fl_errmsg(bad)[0] != '\0');
    fl_close(bad);

    /* The store clock does not go backwards between two reads. */
    int64_t a = ts_store_now(t->st), b = ts_store_now(t->st);
    ASSERT_CMP(b, >=, a);
    ASSERT_CMP(a, >, 1600000000000LL);
}

static void test_grant_lifecycle(void **state)
{
    tc *t = *state;
    fl_grant_opts o = {.url = ts_url(), .provider = t->p, .holder = "bench-G",
                       .purpose = PURPOSE, .mode = FL_EXCLUSIVE, .ttl_ms = 3000, .wait_ms = 0};
    fl_grant *g = NULL;
    char err[FL_MESSAGE_MAX] = "";
    int rc = fl_grant_acquire(&o, &g, NULL, err, sizeof err);
    if (rc != FL_OK) {
        print_error("fl_grant_acquire: %s: %s\n", fl_strerror(rc), err);
        fail();
    }
    fl_lease l_ = grant_lease(g);
    const fl_lease *l = &l_;
    assert_true(is_lower_hex(l->token, FL_TOKEN_LEN));
    ASSERT_CMP(l->fence, >, 0);
    int64_t fence = l->fence;
    assert_int_equal(fl_grant_lost(g), 0);
    ASSERT_CMP(fl_grant_time_left(g), >, 0);
    ASSERT_CMP(fl_grant_time_left(g), <=, 3000);
    ASSERT_CMP(fl_grant_kill_grace(g), ==, 375); /* min(ttl/8, 10s) */
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 0);
    assert_string_equal(v.blocker.holder, "bench-G");

    /* A second grant is refused and says by whom. */
    fl_grant_opts o2 = o;
    o2.holder = "bench-H";
    fl_grant *g2 = (fl_grant *)&o2;
    fl_verdict cv;
    memset(&cv, 0, sizeof cv);
    assert_int_equal(fl_grant_acquire(&o2, &g2, &cv, err, sizeof err), FL_ECONFLICT);
    assert_null(g2);
    ASSERT_CONTAINS(cv.message, "by bench-G until ");
    assert_true(err[0] != '\0');

    /* It heartbeats on its own: held past the first expiry. */
    ts_sleep_ms(3500);
    assert_int_equal(fl_grant_lost(g), 0);
    ASSERT_CMP(grant_lease(g).fence, ==, fence);
    ASSERT_CMP(grant_lease(g).expires_at_ms, >, l->acquired_at_ms + 3000);
    v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 0);
    assert_int_equal(fl_grant_release(g), FL_OK);
    v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 1);
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    ASSERT_CMP(count_events(ev, n, "renewed", fence), >=, 2);
    assert_int_equal(count_events(ev, n, "released", fence), 1);
}

/* ======================================================================== */
/* The shared cases (../shared/cases)                                         */
/* ======================================================================== */

/* C01: a paused holder must not act after its lease lapsed. */
static void test_C01_paused_holder(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, a.expires_at_ms, 100); /* A "paused" past its TTL */
    fl_lease b = acq(t->st, t->p, "holder-B", FL_EXCLUSIVE, 30000);
    ASSERT_CMP(b.fence, >, a.fence);

    expect_lapsed(t->st, fl_heartbeat(t->st, a.token, NULL), t->p, a.fence);
    expect_lapsed(t->st, fl_release(t->st, a.token), t->p, a.fence);

    fl_verdict v = check(t->st, t->p, "holder-A", NULL);
    assert_int_equal(v.allowed, 0);
    assert_int_equal(v.state, FL_PSTATE_EXCLUSIVE);
    assert_string_equal(v.blocker.holder, "holder-B");
    ASSERT_CMP(v.blocker.fence, ==, b.fence);
    v = check(t->st, t->p, "holder-X", a.token); /* A's stale token admits nobody */
    assert_int_equal(v.allowed, 0);
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, b.token, NULL));
    release(t->st, &b);
}

/* C02: a grant's expiry is counted from the grant, never from the start of
 * the wait; a grant already past expiry is never reported as success. */
static void test_C02_grant_already_expired(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 10000);
    child_acq c = {.p = t->p, .holder = "holder-B", .mode = FL_EXCLUSIVE, .ttl = 2000,
                   .wait = 10000, .hold_ms = 0};
    int rfd;
    pid_t pid = ts_fork(child_acquire, &c, &rfd);
    ts_sleep_ms(1500);
    release(t->st, &a);
    acq_msg m = read_acq(rfd);
    close(rfd);
    assert_int_equal(ts_wait(pid), 0);
    if (m.rc != FL_OK) {
        print_error("B's waiting acquire: %s: %s\n", fl_strerror(m.rc), m.err);
        fail();
    }
    ASSERT_CMP(m.lease.expires_at_ms, ==, m.lease.acquired_at_ms + 2000);
    ASSERT_CMP(m.lease.expires_at_ms, >, m.after_ms); /* alive when reported */
    ASSERT_CMP(m.lease.acquired_at_ms - m.before_ms, >=, 1000); /* B really waited */

    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    const fl_event *rel = find_event(ev, n, "released", a.fence);
    assert_non_null(rel);
    ASSERT_CMP(m.lease.acquired_at_ms, >=, rel->at_ms);
    const fl_event *gr = find_event(ev, n, "granted", m.lease.fence);
    assert_non_null(gr);
    ASSERT_CMP(gr->expires_at_ms, ==, m.lease.expires_at_ms);
}

#ifdef FL_TEST_DEBUG_HOOKS /* only C03 needs it */
/* Run this program as "--child acquire ..." with extra environment; parse
 * "rc fence acquired expires token". */
typedef struct exec_acq {
    int rc;
    long long fence, acquired, expires;
    char token[FL_TOKEN_LEN + 2];
} exec_acq;

static exec_acq exec_acquire(const char *p, const char *mode, const char *ttl, const char *wait,
                             const char *release_after, const char *const env[])
{
    char *argv[] = {"test_store", "--child", "acquire", (char *)p, (char *)mode, (char *)ttl,
                    (char *)wait, (char *)release_after, NULL};
    int rfd;
    pid_t pid = ts_spawn_self(argv, env, &rfd);
    char out[512];
    ts_read_text(rfd, out, sizeof out);
    close(rfd);
    int st = ts_wait(pid);
    exec_acq r;
    memset(&r, 0, sizeof r);
    if (st != 0 || sscanf(out, "%d %lld %lld %lld %33s", &r.rc, &r.fence, &r.acquired,
                          &r.expires, r.token) != 5) {
        print_error("child acquire exited %d, said \"%s\"\n", st, out);
        fail();
    }
    return r;
}
#endif

/* C03: expiry is never judged by a client's clock. */
static void test_C03_client_clock(void **state)
{
#ifndef FL_TEST_DEBUG_HOOKS
    (void)state;
    print_message("C03 needs FLEETLEASE_DEBUG_CLOCK_SKEW_MS (build with -DFL_DEBUG_HOOKS=ON)\n");
    skip();
#else
    tc *t = *state;
    const char *fast[] = {"FLEETLEASE_DEBUG_CLOCK_SKEW_MS=180000", NULL};
    const char *slow[] = {"FLEETLEASE_DEBUG_CLOCK_SKEW_MS=-180000", NULL};
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 120000);
    ts_sleep_ms(200);
    exec_acq b = exec_acquire(t->p, "exclusive", "120000", "0", "1", fast);
    assert_int_equal(b.rc, FL_ECONFLICT);
    b = exec_acquire(t->p, "shared", "120000", "0", "1", fast);
    assert_int_equal(b.rc, FL_ECONFLICT);
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_string_equal(v.blocker.holder, "holder-A");
    release(t->st, &a);

    /* A grant made by a skewed client is stamped with the store's clock. */
    const char *const *envs[] = {fast, slow};
    for (int i = 0; i < 2; i++) {
        int64_t before = ts_store_now(t->st);
        b = exec_acquire(t->p, "exclusive", "5000", "0", "0", envs[i]);
        int64_t after = ts_store_now(t->st);
        assert_int_equal(b.rc, FL_OK);
        ASSERT_CMP(b.acquired, >=, before);
        ASSERT_CMP(b.acquired, <=, after);
        ASSERT_CMP(b.expires, ==, b.acquired + 5000);
        fl_verdict w = check(t->st, t->p, "other", NULL);
        assert_int_equal(w.allowed, 0);
        /* a skewed client may release its own lease */
        char tok[FL_TOKEN_LEN + 1];
        assert_int_equal(strlen(b.token), FL_TOKEN_LEN);
        memcpy(tok, b.token, sizeof tok);
        EXPECT_RC(t->st, FL_OK, fl_release(t->st, tok));
    }
#endif
}

/* C04: a renew never brings a lapsed lease back. */
static void test_C04_renew_resurrects(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, a.expires_at_ms, 100);
    int rc = fl_heartbeat(t->st, a.token, NULL);
    expect_lapsed(t->st, rc, t->p, a.fence);
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 1);
    assert_int_equal(v.state, FL_PSTATE_FREE);
    assert_int_equal(list_count(t->st, t->p, 0), 0);

    /* Variant: B acquires and releases in the gap; A's renew still fails. */
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_lease a2 = acq(t->st, q, "holder-A", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, a2.expires_at_ms, 100);
    fl_lease b = acq(t->st, q, "holder-B", FL_EXCLUSIVE, 30000);
    release(t->st, &b);
    expect_lapsed(t->st, fl_heartbeat(t->st, a2.token, NULL), q, a2.fence);
    assert_int_equal(list_count(t->st, q, 0), 0);
    v = check(t->st, q, "other", NULL);
    assert_int_equal(v.state, FL_PSTATE_FREE);

    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "renewed", -1), 0);
    assert_int_equal(count_events(ev, n, "granted", -1), 1);
    ev = hist(t, q, &n);
    assert_int_equal(count_events(ev, n, "renewed", -1), 0);
}

/* C05: a heartbeat that arrives after release recreates nothing. */
static void test_C05_renew_after_release(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 5000);
    release(t->st, &a);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_heartbeat(t->st, a.token, NULL));
    assert_int_equal(list_count(t->st, t->p, 0), 0);
    fl_lease b = acq(t->st, t->p, "holder-B", FL_EXCLUSIVE, 5000);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_heartbeat(t->st, a.token, NULL));
    release(t->st, &b);

    /* The grant handle sends no renew after its release returned. */
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_grant_opts o = {.url = ts_url(), .provider = q, .holder = "holder-G",
                       .purpose = PURPOSE, .mode = FL_EXCLUSIVE, .ttl_ms = 1500};
    fl_grant *g = NULL;
    char err[FL_MESSAGE_MAX] = "";
    assert_int_equal(fl_grant_acquire(&o, &g, NULL, err, sizeof err), FL_OK);
    int64_t fence = grant_lease(g).fence;
    ts_sleep_ms(700); /* at least one renew (every ttl/3 = 500 ms) */
    assert_int_equal(fl_grant_release(g), FL_OK);
    ts_sleep_ms(1200);
    size_t n;
    fl_event *ev = hist(t, q, &n);
    const fl_event *rel = find_event(ev, n, "released", fence);
    assert_non_null(rel);
    ASSERT_CMP(count_events(ev, n, "renewed", fence), >=, 1);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].event, "renewed") == 0)
            ASSERT_CMP(ev[i].id, <, rel->id);
    assert_true(&ev[n - 1] == rel); /* nothing after the release */
    assert_int_equal(list_count(t->st, q, 0), 0);
}

/* C06: a late or repeated release never touches a later grant. */
static void test_C06_late_release(void **state)
{
    tc *t = *state;
    /* 1: release(t1) retried after t2 was granted */
    fl_lease t1 = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 30000);
    release(t->st, &t1);
    fl_lease t2 = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 30000);
    EXPECT_RC(t->st, FL_ENOTFOUND, fl_release(t->st, t1.token));
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, t2.token, NULL));
    fl_verdict v = check(t->st, t->p, "other", NULL);
    ASSERT_CMP(v.blocker.fence, ==, t2.fence);
    release(t->st, &t2);

    /* 2: t1 lapsed, B holds with t3, then release(t1) arrives */
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_lease u1 = acq(t->st, q, "holder-A", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, u1.expires_at_ms, 100);
    fl_lease t3 = acq(t->st, q, "holder-B", FL_EXCLUSIVE, 30000);
    expect_lapsed(t->st, fl_release(t->st, u1.token), q, u1.fence);
    v = check(t->st, q, "other", NULL);
    assert_int_equal(v.allowed, 0);
    assert_string_equal(v.blocker.holder, "holder-B");
    ASSERT_CMP(v.blocker.fence, ==, t3.fence);
    assert_int_equal(list_count(t->st, q, 0), 1);
    EXPECT_RC(t->st, FL_OK, fl_heartbeat(t->st, t3.token, NULL));
    release(t->st, &t3);
}

static int child_sweeper(void *arg, int wfd)
{
    int64_t until = *(const int64_t *)arg;
    fl_store *st = ts_open();
    long sweeps = 0, errors = 0;
    while (ts_mono_ms() < until) {
        size_t n;
        if (fl_sweep(st, &n) != FL_OK)
            errors++;
        sweeps++;
        /* A gap between sweeps: SQLite's busy handler is not fair, and a
         * sweeper with no gap at all can starve the renewer past its TTL,
         * which would test lock fairness, not the sweep's expiry check. */
        ts_sleep_ms(1);
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%ld %ld\n", sweeps, errors);
    ts_write_all(wfd, line, (size_t)len);
    fl_close(st);
    return 0;
}

/* C07: the sweep's expiry test is part of its delete, so a renew that lands
 * between "select candidates" and "delete" is never lost.  The window cannot
 * be paused from outside, so this races a sweeper process sweeping every
 * millisecond against a holder renewing a 1 s lease every 250 ms: every renew must
 * succeed and nothing of the holder's may be deleted. */
static void test_C07_sweep_vs_renew(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 1000);
    int64_t until = ts_mono_ms() + 2500;
    int rfd;
    pid_t pid = ts_fork(child_sweeper, &until, &rfd);
    int64_t worst = 0;
    while (ts_mono_ms() < until) {
        ts_sleep_ms(250);
        int64_t h0 = ts_mono_ms();
        int rc = fl_heartbeat(t->st, a.token, NULL);
        int64_t took = ts_mono_ms() - h0;
        if (took > worst)
            worst = took;
        if (rc != FL_OK) {
            print_error("renew failed after %lld ms: %s: %s\n", (long long)took,
                        fl_strerror(rc), fl_errmsg(t->st));
            size_t nh;
            fl_event *h = ts_history(t->st, t->p, &nh);
            for (size_t i = 0; i < nh; i++)
                print_error("  %lld %s fence=%lld exp=%lld\n", (long long)h[i].at_ms,
                            h[i].event, (long long)h[i].fence, (long long)h[i].expires_at_ms);
            fl_free(h);
            kill(pid, SIGKILL);
            ts_wait(pid);
            close(rfd);
            fail();
        }
    }
    char out[64];
    ts_read_text(rfd, out, sizeof out);
    close(rfd);
    assert_int_equal(ts_wait(pid), 0);
    long sweeps = 0, errors = 0;
    assert_int_equal(sscanf(out, "%ld %ld", &sweeps, &errors), 2);
    print_message("  %ld sweeps raced the renews (%ld errors), slowest renew %lld ms\n", sweeps,
                  errors, (long long)worst);
    ASSERT_CMP(sweeps, >, 10);
    ASSERT_CMP(errors, ==, 0);
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "expired", -1), 0);
    release(t->st, &a);

    /* Separately: a SIGKILLed holder's lease is grantable after its TTL, with
     * or without a sweep having run. */
    char q1[FL_PROVIDER_MAX + 1], q2[FL_PROVIDER_MAX + 1];
    ts_provider(q1, sizeof q1, "t");
    ts_provider(q2, sizeof q2, "t");
    child_acq c1 = {.p = q1, .holder = "holder-K1", .mode = FL_EXCLUSIVE, .ttl = 1000, .forever = 1};
    child_acq c2 = {.p = q2, .holder = "holder-K2", .mode = FL_EXCLUSIVE, .ttl = 1000, .forever = 1};
    int r1, r2;
    pid_t p1 = ts_fork(child_acquire, &c1, &r1);
    pid_t p2 = ts_fork(child_acquire, &c2, &r2);
    acq_msg m1 = read_acq(r1), m2 = read_acq(r2);
    close(r1);
    close(r2);
    kill(p1, SIGKILL);
    kill(p2, SIGKILL);
    assert_int_equal(ts_wait(p1), 128 + SIGKILL);
    assert_int_equal(ts_wait(p2), 128 + SIGKILL);
    assert_int_equal(m1.rc, FL_OK);
    assert_int_equal(m2.rc, FL_OK);
    ts_sleep_until_store(t->st, m1.lease.expires_at_ms > m2.lease.expires_at_ms
                                    ? m1.lease.expires_at_ms : m2.lease.expires_at_ms, 50);
    fl_lease b1 = acq(t->st, q1, "holder-B", FL_EXCLUSIVE, 5000); /* no sweep ran */
    ASSERT_CMP(b1.fence, >, m1.lease.fence);
    size_t swept;
    EXPECT_RC(t->st, FL_OK, fl_sweep(t->st, &swept));
    fl_lease b2 = acq(t->st, q2, "holder-B", FL_EXCLUSIVE, 5000); /* after a sweep */
    ASSERT_CMP(b2.fence, >, m2.lease.fence);
    release(t->st, &b1);
    release(t->st, &b2);
}

/* C08: no lease state depends on a connection or a process. */
static void test_C08_connection_bound(void **state)
{
    tc *t = *state;
    child_acq c = {.p = t->p, .holder = "holder-K", .mode = FL_EXCLUSIVE, .ttl = 2000, .forever = 1};
    int rfd;
    pid_t pid = ts_fork(child_acquire, &c, &rfd);
    acq_msg m = read_acq(rfd);
    close(rfd);
    kill(pid, SIGKILL);
    assert_int_equal(ts_wait(pid), 128 + SIGKILL);
    assert_int_equal(m.rc, FL_OK);

    /* Its connection is gone; the lease is not. */
    int64_t now = ts_store_now(t->st);
    ASSERT_CMP(now, <, m.lease.expires_at_ms - 300);
    fl_verdict v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 0);
    assert_string_equal(v.blocker.holder, "holder-K");
    refused(t->st, t->p, "holder-B", FL_EXCLUSIVE, 0);

    /* ... exactly until its expires_at: a waiting B gets it then. */
    fl_lease b;
    EXPECT_RC(t->st, FL_OK,
              fl_acquire(t->st, t->p, "holder-B", PURPOSE, FL_EXCLUSIVE, 30000, 5000, &b, NULL));
    ASSERT_CMP(b.acquired_at_ms, >=, m.lease.expires_at_ms);
    ASSERT_CMP(b.fence, >, m.lease.fence);

    /* A lease made on one connection is renewed and released on others. */
    fl_store *h2 = ts_open();
    fl_lease r;
    EXPECT_RC(h2, FL_OK, fl_heartbeat(h2, b.token, &r));
    ASSERT_CMP(r.fence, ==, b.fence);
    fl_close(h2);
    fl_store *h3 = ts_open();
    v = check(h3, t->p, "other", NULL);
    assert_string_equal(v.blocker.holder, "holder-B");
    EXPECT_RC(h3, FL_OK, fl_release(h3, b.token));
    fl_close(h3);
    v = check(t->st, t->p, "other", NULL);
    assert_int_equal(v.allowed, 1);
}

/* The check cache is a bounded hash table: the state of a provider read
 * thousands of checks ago (and the tables regrown since) still answers
 * while the store is unreachable; past the bound, the least recently
 * refreshed provider is dropped and a check of it fails open.  Run in a
 * child whose "read" fault points 4097 and 4099 fail (counters are per
 * process); the child prints "ok" or what went wrong. */
#define CACHE_BOUND 4096
static void test_check_cache_bound(void **state)
{
#ifndef FL_TEST_DEBUG_HOOKS
    (void)state;
    print_message("the cache bound test needs FLEETLEASE_DEBUG_FAULTS (-DFL_DEBUG_HOOKS=ON)\n");
    skip();
#else
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "bench-A", FL_EXCLUSIVE, 60000);
    char *argv[] = {"test_store", "--child", "cache-bound", t->p, NULL};
    const char *env[] = {"FLEETLEASE_DEBUG_FAULTS=read=4097,4099", NULL};
    int rfd;
    char out[1024];
    pid_t pid = ts_spawn_self(argv, env, &rfd);
    ts_read_text(rfd, out, sizeof out);
    close(rfd);
    int st = ts_wait(pid);
    if (st != 0 || strncmp(out, "ok", 2) != 0) {
        print_error("cache-bound exited %d: %s\n", st, out);
        fail();
    }
    release(t->st, &a);
#endif
}

/* C11 runs in re-exec'd children so that FLEETLEASE_DEBUG_FAULTS is read by
 * a fresh process (fault counters are per process). */
static void test_C11_transient_vs_lost(void **state)
{
#ifndef FL_TEST_DEBUG_HOOKS
    (void)state;
    print_message("C11 needs FLEETLEASE_DEBUG_FAULTS (build with -DFL_DEBUG_HOOKS=ON)\n");
    skip();
#else
    tc *t = *state;
    char out[1024];
    int rfd;

    /* 1: one heartbeat fails transiently; the grant keeps its lease. */
    char *argv1[] = {"test_store", "--child", "c11-transient", t->p, NULL};
    const char *env1[] = {"FLEETLEASE_DEBUG_FAULTS=heartbeat=1", NULL};
    pid_t pid = ts_spawn_self(argv1, env1, &rfd);
    ts_read_text(rfd, out, sizeof out);
    close(rfd);
    int st = ts_wait(pid);
    long long fence = 0;
    if (st != 0 || sscanf(out, "ok %lld", &fence) != 1) {
        print_error("c11-transient exited %d: %s\n", st, out);
        fail();
    }
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "granted", -1), 1);
    ASSERT_CMP(count_events(ev, n, "renewed", fence), >=, 1);
    assert_int_equal(count_events(ev, n, "released", fence), 1);

    /* 2: every heartbeat after the first fails: lost by the local deadline,
     * while the store still holds the lease; a later renew is refused. */
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    char *argv2[] = {"test_store", "--child", "c11-lost", q, NULL};
    const char *env2[] = {"FLEETLEASE_DEBUG_FAULTS=heartbeat=2,3,4,5,6,7,8,9,10,11,12,13,14,"
                          "15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30",
                          NULL};
    pid = ts_spawn_self(argv2, env2, &rfd);
    ts_read_text(rfd, out, sizeof out);
    close(rfd);
    st = ts_wait(pid);
    char token[FL_TOKEN_LEN + 2];
    long long expires = 0;
    if (st != 0 || sscanf(out, "ok %lld %33s %lld", &fence, token, &expires) != 3) {
        print_error("c11-lost exited %d: %s\n", st, out);
        fail();
    }
    print_message("  %s", out);
    ts_sleep_until_store(t->st, expires, 50);
    expect_lapsed(t->st, fl_heartbeat(t->st, token, NULL), q, fence);
    assert_int_equal(list_count(t->st, q, 0), 0);
#endif
}

/* C12: fences are never below the store's clock, so a restored store still
 * issues fences above everything handed out before.  The restore itself is
 * only done for SQLite (a file copy); for PostgreSQL the fence rule is
 * checked and docs/design.md explains the high-water mark. */
static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (in == NULL)
        return -1;
    FILE *out = fopen(to, "wb");
    if (out == NULL) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t r;
    int rc = 0;
    while ((r = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, r, out) != r)
            rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

static void c12_sqlite_restore(const char *url)
{
    const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
    char db[1024], bak[1100], side[1100], sidebak[1200], u[1100];
    snprintf(db, sizeof db, "%.900s.c12-%ld.db", path, (long)getpid());
    snprintf(bak, sizeof bak, "%s.bak", db);
    snprintf(u, sizeof u, "sqlite:%s", db);
    fl_store *st = NULL;
    EXPECT_RC(st, FL_OK, fl_open(u, &st));
    int64_t last = 0;
    for (int i = 0; i < 5; i++) {
        fl_lease l = acq(st, "gpu-restore", "holder-A", FL_EXCLUSIVE, 30000);
        ASSERT_CMP(l.fence, >, last);
        last = l.fence;
        release(st, &l);
    }
    fl_close(st); /* the last close checkpoints the WAL into the file */
    assert_int_equal(copy_file(db, bak), 0);
    snprintf(side, sizeof side, "%s-wal", db);
    snprintf(sidebak, sizeof sidebak, "%s-wal", bak);
    int had_wal = copy_file(side, sidebak) == 0;

    st = NULL;
    EXPECT_RC(st, FL_OK, fl_open(u, &st));
    fl_lease lost = acq(st, "gpu-restore", "holder-B", FL_EXCLUSIVE, 30000);
    ASSERT_CMP(lost.fence, >, last);
    fl_close(st);

    /* restore the older snapshot */
    assert_int_equal(copy_file(bak, db), 0);
    if (had_wal)
        assert_int_equal(copy_file(sidebak, side), 0);
    else
        unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    ts_sleep_ms(20);

    st = NULL;
    EXPECT_RC(st, FL_OK, fl_open(u, &st));
    EXPECT_RC(st, FL_ENOTFOUND, fl_heartbeat(st, lost.token, NULL));
    fl_lease next = acq(st, "gpu-restore", "holder-C", FL_EXCLUSIVE, 30000);
    print_message("  restore: fences up to %lld, lost grant %lld, next after restore %lld\n",
                  (long long)last, (long long)lost.fence, (long long)next.fence);
    ASSERT_CMP(next.fence, >, lost.fence);
    release(st, &next);
    fl_close(st);
    unlink(db);
    unlink(bak);
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    unlink(sidebak);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
}

static void test_C12_store_restore(void **state)
{
    tc *t = *state;
    int64_t last = 0;
    for (int i = 0; i < 50; i++) {
        int64_t before = ts_store_now(t->st);
        fl_lease l = acq(t->st, t->p, "holder-A", i % 2 ? FL_SHARED : FL_EXCLUSIVE, 30000);
        ASSERT_CMP(l.fence, >=, before);          /* never below the store's clock */
        ASSERT_CMP(l.fence, >=, l.acquired_at_ms);
        ASSERT_CMP(l.fence, >, last);             /* rises with every grant */
        last = l.fence;
        release(t->st, &l);
    }
    if (strcmp(fl_store_kind(t->st), "sqlite") == 0)
        c12_sqlite_restore(ts_url());
    else
        print_message("  restore simulated only on SQLite; fence >= store clock checked\n");
}

/* C13: a waiting exclusive drains shared holders and is not starved. */
static void test_C13_writer_starvation(void **state)
{
    tc *t = *state;
    fl_lease r1 = acq(t->st, t->p, "reader-1", FL_SHARED, 10000);
    child_acq w = {.p = t->p, .holder = "writer-W", .mode = FL_EXCLUSIVE, .ttl = 5000,
                   .wait = 8000, .hold_ms = 300};
    int rfd;
    pid_t pid = ts_fork(child_acquire, &w, &rfd);
    assert_true(wait_pending(t->st, t->p, 3000));

    fl_lease *rows;
    size_t n;
    EXPECT_RC(t->st, FL_OK, fl_list(t->st, t->p, &rows, &n));
    for (size_t i = 0; i < n; i++)
        if (rows[i].state == FL_LEASE_PENDING) {
            assert_string_equal(rows[i].holder, "writer-W");
            assert_int_equal(rows[i].mode, FL_EXCLUSIVE);
            ASSERT_CMP(rows[i].fence, ==, 0);
        }
    fl_free(rows);

    fl_verdict v = refused(t->st, t->p, "reader-2", FL_SHARED, 0);
    assert_int_equal(v.state, FL_PSTATE_DRAINING);
    ASSERT_CONTAINS(v.message, "host leased for " PURPOSE " by writer-W until ");
    ASSERT_CONTAINS(v.message, " (draining: exclusive pending)");
    v = check(t->st, t->p, "reader-1", NULL);
    assert_int_equal(v.allowed, 0);
    assert_int_equal(v.state, FL_PSTATE_DRAINING);
    ASSERT_CONTAINS(v.message, " (draining: exclusive pending)");
    /* the one intent is W's: another exclusive is refused as draining too */
    v = refused(t->st, t->p, "writer-X", FL_EXCLUSIVE, 0);
    assert_int_equal(v.state, FL_PSTATE_DRAINING);

    int64_t t0 = ts_mono_ms();
    release(t->st, &r1);
    acq_msg m = read_acq(rfd);
    int64_t latency = ts_mono_ms() - t0;
    close(rfd);
    assert_int_equal(ts_wait(pid), 0);
    if (m.rc != FL_OK) {
        print_error("W: %s: %s\n", fl_strerror(m.rc), m.err);
        fail();
    }
    print_message("  W granted %lld ms after R1 released\n", (long long)latency);
    ASSERT_CMP(latency, <, 2500);
    ASSERT_CMP(m.lease.fence, >, r1.fence);
    size_t ne;
    fl_event *ev = hist(t, t->p, &ne);
    const fl_event *rel = find_event(ev, ne, "released", r1.fence);
    assert_non_null(rel);
    ASSERT_CMP(m.lease.acquired_at_ms, >=, rel->at_ms);
    assert_int_equal(count_events(ev, ne, "pending", -1), 1);

    /* W dies while pending: its intent lapses (min(ttl, 5s) = 1s here) and
     * shared grants resume. */
    char q[FL_PROVIDER_MAX + 1];
    ts_provider(q, sizeof q, "t");
    fl_lease s1 = acq(t->st, q, "reader-1", FL_SHARED, 10000);
    child_acq w2 = {.p = q, .holder = "writer-W2", .mode = FL_EXCLUSIVE, .ttl = 1000,
                    .wait = 20000};
    pid = ts_fork(child_acquire, &w2, &rfd);
    assert_true(wait_pending(t->st, q, 3000));
    kill(pid, SIGKILL);
    assert_int_equal(ts_wait(pid), 128 + SIGKILL);
    close(rfd);
    int64_t killed = ts_mono_ms();
    refused(t->st, q, "reader-2", FL_SHARED, 0); /* still draining right after */
    fl_lease s2;
    EXPECT_RC(t->st, FL_OK,
              fl_acquire(t->st, q, "reader-2", PURPOSE, FL_SHARED, 10000, 6000, &s2, NULL));
    int64_t resumed = ts_mono_ms() - killed;
    print_message("  shared resumed %lld ms after the waiter died\n", (long long)resumed);
    /* the intent's 1 s lifetime plus the shared waiter's back-off (a lapse
     * sends no notification), far below the dead waiter's 20 s wait */
    ASSERT_CMP(resumed, <, 5000);

    /* W gives up: its intent is removed at once. */
    v = refused(t->st, q, "writer-W3", FL_EXCLUSIVE, 300);
    assert_int_equal(v.state, FL_PSTATE_SHARED);
    assert_int_equal(list_count(t->st, q, FL_LEASE_PENDING), 0);
    fl_lease s3 = acq(t->st, q, "reader-3", FL_SHARED, 10000);
    release(t->st, &s1);
    release(t->st, &s2);
    release(t->st, &s3);
}

/* C14: waits are bounded, and failures answer at once. */
static void test_C14_unbounded_wait(void **state)
{
    tc *t = *state;
    fl_lease a = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 60000);
    int64_t t0 = ts_mono_ms();
    fl_verdict v = refused(t->st, t->p, "holder-B", FL_EXCLUSIVE, 1000);
    int64_t took = ts_mono_ms() - t0;
    ASSERT_CMP(took, >=, 900);
    ASSERT_CMP(took, <, 2500);
    expect_message(v.message, PURPOSE, "holder-A", a.expires_at_ms);
    t0 = ts_mono_ms();
    refused(t->st, t->p, "holder-B", FL_SHARED, 0);
    ASSERT_CMP(ts_mono_ms() - t0, <, 1000);

    /* the grant API: no grant, the refusal says who and why */
    fl_grant_opts o = {.url = ts_url(), .provider = t->p, .holder = "holder-B",
                       .purpose = PURPOSE, .mode = FL_EXCLUSIVE, .ttl_ms = 5000, .wait_ms = 500};
    fl_grant *g = (fl_grant *)&o;
    char err[FL_MESSAGE_MAX] = "";
    t0 = ts_mono_ms();
    assert_int_equal(fl_grant_acquire(&o, &g, &v, err, sizeof err), FL_ECONFLICT);
    took = ts_mono_ms() - t0;
    assert_null(g);
    ASSERT_CMP(took, <, 2000);
    expect_message(v.message, PURPOSE, "holder-A", a.expires_at_ms);
    release(t->st, &a);

    /* Each call that gave up is recorded once, however often it polled; an
     * exclusive waiter registered at most one intent per call. */
    size_t n;
    fl_event *ev = hist(t, t->p, &n);
    assert_int_equal(count_events(ev, n, "refused", -1), 3);
    ASSERT_CMP(count_events(ev, n, "pending", -1), <=, 2);

    /* After the lease expired, release answers at once with an error. */
    fl_lease a2 = acq(t->st, t->p, "holder-A", FL_EXCLUSIVE, 1000);
    ts_sleep_until_store(t->st, a2.expires_at_ms, 50);
    t0 = ts_mono_ms();
    int rc = fl_release(t->st, a2.token);
    ASSERT_CMP(ts_mono_ms() - t0, <, 500);
    expect_lapsed(t->st, rc, t->p, a2.fence);
}

/* ======================================================================== */
/* Child modes (run as "--child MODE ..." by the tests above)                */
/* ======================================================================== */

static int child_exec_acquire(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    fl_store *st = ts_open();
    fl_mode mode = strcmp(argv[2], "shared") == 0 ? FL_SHARED : FL_EXCLUSIVE;
    fl_lease l;
    memset(&l, 0, sizeof l);
    int rc = fl_acquire(st, argv[1], "holder-skewed", PURPOSE, mode, atoll(argv[3]),
                        atoll(argv[4]), &l, NULL);
    printf("%d %lld %lld %lld %s\n", rc, (long long)l.fence, (long long)l.acquired_at_ms,
           (long long)l.expires_at_ms, rc == FL_OK ? l.token : "-");
    fflush(stdout);
    if (rc == FL_OK && atoi(argv[5]) != 0 && fl_release(st, l.token) != FL_OK)
        rc = -1;
    fl_close(st);
    return rc < 0 ? 1 : 0;
}

typedef struct lost_rec {
    atomic_int code;
    atomic_llong at_ms;
} lost_rec;

static void on_lost(fl_grant *g, int code, const char *why, void *arg)
{
    (void)g;
    (void)why;
    lost_rec *r = arg;
    atomic_store(&r->at_ms, (long long)ts_mono_ms());
    atomic_store(&r->code, code);
}

static int child_c11(int argc, char **argv, int lost_mode)
{
    if (argc != 2)
        return 2;
    lost_rec rec;
    atomic_init(&rec.code, 0);
    atomic_init(&rec.at_ms, 0);
    fl_grant_opts o = {.url = ts_url(), .provider = argv[1], .holder = "holder-C11",
                       .purpose = PURPOSE, .mode = FL_EXCLUSIVE, .ttl_ms = 3000,
                       .on_lost = on_lost, .arg = &rec};
    fl_grant *g = NULL;
    char err[FL_MESSAGE_MAX] = "";
    int64_t t0 = ts_mono_ms();
    int rc = fl_grant_acquire(&o, &g, NULL, err, sizeof err);
    if (rc != FL_OK) {
        printf("fail acquire: %s: %s\n", fl_strerror(rc), err);
        return 1;
    }
    fl_lease first = grant_lease(g);
    if (!lost_mode) {
        /* heartbeat 1 (at ~1 s) fails; the retry (~1.3 s) and the next (~2.3 s)
         * succeed, well before the deadline (last sent + 3 s - 750 ms). */
        ts_sleep_ms(2700);
        fl_lease l_ = grant_lease(g);
    const fl_lease *l = &l_;
        if (fl_grant_lost(g) != 0 || atomic_load(&rec.code) != 0) {
            printf("fail: lost after one transient failure: %s\n", fl_strerror(fl_grant_lost(g)));
            return 1;
        }
        if (l->fence != first.fence || strcmp(l->token, first.token) != 0 ||
            l->heartbeat_at_ms <= first.acquired_at_ms) {
            printf("fail: lease changed or never renewed (fence %lld->%lld, hb %lld)\n",
                   (long long)first.fence, (long long)l->fence, (long long)l->heartbeat_at_ms);
            return 1;
        }
        rc = fl_grant_release(g);
        if (rc != FL_OK) {
            printf("fail release: %s\n", fl_strerror(rc));
            return 1;
        }
        printf("ok %lld\n", (long long)first.fence);
        return 0;
    }

    /* Lost mode: heartbeat 1 (~1 s) succeeds, all later ones fail.  The
     * local deadline is ~1 s + 3 s - 750 ms after the grant; the store's
     * expiry ~4 s. */
    while (fl_grant_lost(g) == 0 && ts_mono_ms() - t0 < 8000)
        ts_sleep_ms(20);
    int64_t lost_after = ts_mono_ms() - t0;
    int code = fl_grant_lost(g);
    fl_lease last = grant_lease(g);
    fl_store *st = ts_open();
    fl_verdict v;
    memset(&v, 0, sizeof v);
    int crc = fl_check(st, argv[1], "other", NULL, &v);
    int64_t now = ts_store_now(st);
    fl_close(st);
    if (code == 0) {
        printf("fail: never lost in %lld ms of failing heartbeats\n", (long long)lost_after);
        return 1;
    }
    if (atomic_load(&rec.code) != code) {
        printf("fail: on_lost got %d, fl_grant_lost %d\n", atomic_load(&rec.code), code);
        return 1;
    }
    if (lost_after > 3700) {
        printf("fail: lost only after %lld ms (deadline ~3250)\n", (long long)lost_after);
        return 1;
    }
    if (crc != FL_OK || v.allowed || v.state != FL_PSTATE_EXCLUSIVE || now >= last.expires_at_ms) {
        printf("fail: at loss (%lld ms) the store no longer held the lease: it was lost too "
               "late (now %lld, expires %lld)\n", (long long)lost_after, (long long)now,
               (long long)last.expires_at_ms);
        return 1;
    }
    if (fl_grant_time_left(g) > 0) {
        printf("fail: lost but time_left %lld\n", (long long)fl_grant_time_left(g));
        return 1;
    }
    printf("ok %lld %s %lld lost=%s after %lld ms, %lld ms before the store's expiry\n",
           (long long)last.fence, last.token, (long long)last.expires_at_ms, fl_strerror(code),
           (long long)lost_after, (long long)(last.expires_at_ms - now));
    fflush(stdout);
    /* Leave without fl_grant_release: in this scenario the holder cannot
     * reach the store, so the lease must lapse on the store's clock and the
     * parent's later renew must be refused as expired.  (fl_grant_release
     * would try a release, which the fault points do not block.) */
    _exit(0);
}

/* See test_check_cache_bound: one "read" per fl_check; reads 4097 and
 * 4099 fail. */
static int child_cache_bound(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *p = argv[1];
    fl_store *st = ts_open();
    fl_verdict v;
    char q[FL_PROVIDER_MAX + 1];
    int rc = fl_check(st, p, "other", NULL, &v);           /* read 1 */
    if (rc != FL_OK || v.allowed) {
        printf("fail: first check rc %d allowed %d\n", rc, v.allowed);
        return 1;
    }
    for (int i = 0; i < CACHE_BOUND - 1; i++) {               /* reads 2..4096 */
        snprintf(q, sizeof q, "%.100s.c%d", p, i);
        rc = fl_check(st, q, "other", NULL, &v);
        if (rc != FL_OK || !v.allowed || v.stale) {
            printf("fail: check of %s rc %d allowed %d stale %d\n", q, rc, v.allowed, v.stale);
            return 1;
        }
    }
    rc = fl_check(st, p, "other", NULL, &v);               /* read 4097 fails */
    if (rc != FL_OK || !v.stale || v.allowed || v.fail_open ||
        strcmp(v.blocker.holder, "bench-A") != 0) {
        printf("fail: stale check after %d others: rc %d stale %d allowed %d fail_open %d "
               "holder '%s': %s\n", CACHE_BOUND - 1, rc, v.stale, v.allowed, v.fail_open,
               v.blocker.holder, v.message);
        return 1;
    }
    snprintf(q, sizeof q, "%.100s.last", p);
    rc = fl_check(st, q, "other", NULL, &v);               /* read 4098: drops p */
    if (rc != FL_OK || v.stale) {
        printf("fail: check of %s rc %d stale %d\n", q, rc, v.stale);
        return 1;
    }
    rc = fl_check(st, p, "other", NULL, &v);               /* read 4099 fails */
    if (rc != FL_OK || !v.stale || !v.allowed || !v.fail_open ||
        strstr(v.message, "no state known") == NULL) {
        printf("fail: past the bound: rc %d stale %d allowed %d fail_open %d: %s\n", rc,
               v.stale, v.allowed, v.fail_open, v.message);
        return 1;
    }
    fl_close(st);
    printf("ok\n");
    return 0;
}

static int child_main(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "acquire") == 0)
        return child_exec_acquire(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "c11-transient") == 0)
        return child_c11(argc, argv, 0);
    if (argc >= 1 && strcmp(argv[0], "c11-lost") == 0)
        return child_c11(argc, argv, 1);
    if (argc >= 1 && strcmp(argv[0], "cache-bound") == 0)
        return child_cache_bound(argc, argv);
    fprintf(stderr, "unknown child mode\n");
    return 2;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argc - 2, argv + 2);
    (void)ts_url(); /* exits 77 (skip) when no store is configured */
    const char *filter = getenv("FL_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);

    const struct CMUnitTest tests[] = {
        T(test_grant_fields),
        T(test_shared_shared),
        T(test_exclusive_blocks_exclusive),
        T(test_exclusive_blocks_shared),
        T(test_shared_blocks_exclusive),
        T(test_release_wrong_token_changes_nothing),
        T(test_fence_rises_never_reused),
        T(test_renew_extends),
        T(test_lookup),
        T(test_list_hides_tokens),
        T(test_history_every_transition),
        T(test_sweep),
        T(test_check_verdicts),
        T(test_check_cached),
        T(test_check_cache_bound),
        T(test_isolation_report),
        T(test_acquire_cancel),
        T(test_schedules),
        T(test_invalid_inputs),
        T(test_null_handling),
        T(test_open_and_store_info),
        T(test_grant_lifecycle),
        T(test_C01_paused_holder),
        T(test_C02_grant_already_expired),
        T(test_C03_client_clock),
        T(test_C04_renew_resurrects),
        T(test_C05_renew_after_release),
        T(test_C06_late_release),
        T(test_C07_sweep_vs_renew),
        T(test_C08_connection_bound),
        T(test_C11_transient_vs_lost),
        T(test_C12_store_restore),
        T(test_C13_writer_starvation),
        T(test_C14_unbounded_wait),
    };
    fl_store *st = ts_open();
    char name[64];
    snprintf(name, sizeof name, "conformance(%s)", fl_store_kind(st));
    fl_close(st);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
