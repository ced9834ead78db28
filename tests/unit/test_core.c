/*
 * tests/unit/test_core.c -- table-driven tests of lib/core: the conflict
 * decision, the check verdict, refusal messages, validation, duration
 * parsing, time formatting, timing and back-off.
 *
 * Expected values are written out in the tables, never computed by the
 * same rules as the code under test: a table row is a claim a reviewer can
 * check against core.h and docs/design.md by eye.
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

/* 2026-12-03T18:30:00.000Z */
#define NOW 1796322600000LL

#define CHECK_INT(what, got, want)                                                   \
    do {                                                                             \
        long long g_ = (long long)(got), w_ = (long long)(want);                     \
        if (g_ != w_)                                                                \
            fail_msg("%s: %s = %lld, want %lld", what, #got, g_, w_);                \
    } while (0)

#define CHECK_STR(what, got, want)                                                   \
    do {                                                                             \
        if (strcmp((got), (want)) != 0)                                              \
            fail_msg("%s: %s =\n  \"%s\"\nwant\n  \"%s\"", what, #got, (got), (want)); \
    } while (0)

/* ---- fixtures ------------------------------------------------------------ */

/* Token k: 16 bytes all equal to k, as hex.  k = 0 is "mine". */
static void token_of(int k, char out[FL_TOKEN_LEN + 1])
{
    unsigned char raw[16];
    memset(raw, 0xa0 + k, sizeof raw);
    fl__token_hex(raw, out);
}

typedef struct rowspec {
    int tok;                /* token_of(tok); 0 = the requester's */
    const char *holder;
    const char *purpose;
    fl_mode mode;
    fl_lease_state state;
    int64_t acquired_off;   /* relative to NOW */
    int64_t expires_off;    /* relative to NOW */
} rowspec;

#define SH FL_SHARED
#define EX FL_EXCLUSIVE
#define ACT FL_LEASE_ACTIVE
#define PEN FL_LEASE_PENDING

enum {
    S_FREE, S_SHARED1, S_SHARED2, S_EXCL, S_PEND_OTHER, S_MY_PEND, S_EXPIRED,
    S_SHARED_PEND_OTHER, S_SHARED_MY_PEND, S_EXCL_MY_PEND, S_EXCL_PEND_OTHER,
    S_TWO_PEND_OTHER_FIRST, S_TWO_PEND_MINE_FIRST, S_EXCL_JUST_LIVE, S_TWO_EXCL,
    S_COUNT
};

typedef struct scenario {
    const char *name;
    int n;
    rowspec rows[4];
} scenario;

static const scenario scenarios[S_COUNT] = {
    [S_FREE] = {"free", 0, {{0}}},
    [S_SHARED1] = {"shared(1)", 1, {{1, "r1", "eval", SH, ACT, -10000, 20000}}},
    [S_SHARED2] = {"shared(2)", 2,
                   {{1, "r1", "eval", SH, ACT, -10000, 20000},
                    {2, "r2", "eval", SH, ACT, -9000, 30000}}},
    [S_EXCL] = {"active exclusive", 1,
                {{1, "bench-1", "nightly bench", EX, ACT, -5000, 25000}}},
    [S_PEND_OTHER] = {"pending exclusive of other", 1,
                      {{2, "bench-2", "nightly bench", EX, PEN, -1000, 4000}}},
    [S_MY_PEND] = {"my pending", 1, {{0, "me", "my bench", EX, PEN, -1000, 4000}}},
    [S_EXPIRED] = {"expired rows only", 3,
                   {{1, "bench-1", "old", EX, ACT, -30000, 0},
                    {2, "r2", "old", SH, ACT, -30000, -1},
                    {3, "bench-3", "old", EX, PEN, -30000, -5}}},
    [S_SHARED_PEND_OTHER] = {"shared(1) + pending of other", 2,
                             {{1, "r1", "eval", SH, ACT, -10000, 20000},
                              {2, "bench-2", "nightly bench", EX, PEN, -1000, 4000}}},
    [S_SHARED_MY_PEND] = {"shared(1) + my pending", 2,
                          {{1, "r1", "eval", SH, ACT, -10000, 20000},
                           {0, "me", "my bench", EX, PEN, -1000, 4000}}},
    [S_EXCL_MY_PEND] = {"active exclusive + my pending", 2,
                        {{1, "bench-1", "nightly bench", EX, ACT, -5000, 25000},
                         {0, "me", "my bench", EX, PEN, -1000, 4000}}},
    [S_EXCL_PEND_OTHER] = {"active exclusive + pending of other", 2,
                           {{1, "bench-1", "nightly bench", EX, ACT, -5000, 25000},
                            {2, "bench-2", "nightly bench", EX, PEN, -1000, 4000}}},
    [S_TWO_PEND_OTHER_FIRST] = {"two pending, other's older", 2,
                                {{0, "me", "my bench", EX, PEN, -1000, 4000},
                                 {2, "bench-2", "nightly bench", EX, PEN, -2000, 3000}}},
    [S_TWO_PEND_MINE_FIRST] = {"two pending, mine older", 2,
                               {{2, "bench-2", "nightly bench", EX, PEN, -1000, 4000},
                                {0, "me", "my bench", EX, PEN, -2000, 3000}}},
    [S_EXCL_JUST_LIVE] = {"exclusive expiring in 1ms", 2,
                          {{1, "bench-1", "old", EX, ACT, -30000, 0},
                           {2, "bench-2", "nightly bench", EX, ACT, -30000, 1}}},
    [S_TWO_EXCL] = {"two active exclusives (should not happen)", 2,
                    {{1, "bench-1", "a", EX, ACT, -5000, 25000},
                     {2, "bench-2", "b", EX, ACT, -5000, 26000}}},
};

static int build(int s, fl_lease rows[4])
{
    const scenario *sc = &scenarios[s];
    memset(rows, 0, 4 * sizeof rows[0]);
    for (int i = 0; i < sc->n; i++) {
        const rowspec *r = &sc->rows[i];
        token_of(r->tok, rows[i].token);
        assert_int_equal(fl__copy(rows[i].provider, sizeof rows[i].provider, "gpu-01"), FL_OK);
        assert_int_equal(fl__copy(rows[i].holder, sizeof rows[i].holder, r->holder), FL_OK);
        assert_int_equal(fl__copy(rows[i].purpose, sizeof rows[i].purpose, r->purpose), FL_OK);
        rows[i].mode = r->mode;
        rows[i].state = r->state;
        rows[i].fence = r->state == PEN ? 0 : 1000 + i;
        rows[i].ttl_ms = 30000;
        rows[i].acquired_at_ms = NOW + r->acquired_off;
        rows[i].heartbeat_at_ms = NOW + r->acquired_off;
        rows[i].expires_at_ms = NOW + r->expires_off;
    }
    return sc->n;
}

/* ---- fl__decide ------------------------------------------------------------ */

typedef struct decide_case {
    int scenario;
    fl_mode mode;
    int may_pend;
    fl__outcome outcome;
    fl_pstate state;
    int shared_count;
    int blocker;  /* row index, -1: NULL */
    int mine;     /* row index, -1: NULL */
} decide_case;

#define GRANT FL__GRANT
#define PROMOTE FL__PROMOTE
#define PEND FL__PEND
#define REFUSE FL__REFUSE
#define P_FREE FL_PSTATE_FREE
#define P_SHARED FL_PSTATE_SHARED
#define P_DRAIN FL_PSTATE_DRAINING
#define P_EXCL FL_PSTATE_EXCLUSIVE

static const decide_case decide_cases[] = {
    /* every requested mode x provider state x may_pend */
    {S_FREE, SH, 0, GRANT, P_FREE, 0, -1, -1},
    {S_FREE, SH, 1, GRANT, P_FREE, 0, -1, -1},
    {S_FREE, EX, 0, GRANT, P_FREE, 0, -1, -1},
    {S_FREE, EX, 1, GRANT, P_FREE, 0, -1, -1},

    {S_SHARED1, SH, 0, GRANT, P_SHARED, 1, -1, -1},
    {S_SHARED1, SH, 1, GRANT, P_SHARED, 1, -1, -1},
    {S_SHARED1, EX, 0, REFUSE, P_SHARED, 1, 0, -1},
    {S_SHARED1, EX, 1, PEND, P_SHARED, 1, 0, -1},

    {S_SHARED2, SH, 0, GRANT, P_SHARED, 2, -1, -1},
    {S_SHARED2, SH, 1, GRANT, P_SHARED, 2, -1, -1},
    {S_SHARED2, EX, 0, REFUSE, P_SHARED, 2, 1, -1}, /* blocker: latest expiry */
    {S_SHARED2, EX, 1, PEND, P_SHARED, 2, 1, -1},

    {S_EXCL, SH, 0, REFUSE, P_EXCL, 0, 0, -1},
    {S_EXCL, SH, 1, REFUSE, P_EXCL, 0, 0, -1},      /* shared never pends */
    {S_EXCL, EX, 0, REFUSE, P_EXCL, 0, 0, -1},
    {S_EXCL, EX, 1, PEND, P_EXCL, 0, 0, -1},

    {S_PEND_OTHER, SH, 0, REFUSE, P_DRAIN, 0, 0, -1},
    {S_PEND_OTHER, SH, 1, REFUSE, P_DRAIN, 0, 0, -1},
    {S_PEND_OTHER, EX, 0, REFUSE, P_DRAIN, 0, 0, -1},
    {S_PEND_OTHER, EX, 1, REFUSE, P_DRAIN, 0, 0, -1}, /* one intent per provider */

    {S_MY_PEND, SH, 0, REFUSE, P_DRAIN, 0, 0, 0},
    {S_MY_PEND, SH, 1, REFUSE, P_DRAIN, 0, 0, 0},
    {S_MY_PEND, EX, 0, PROMOTE, P_FREE, 0, -1, 0},
    {S_MY_PEND, EX, 1, PROMOTE, P_FREE, 0, -1, 0},

    {S_EXPIRED, SH, 0, GRANT, P_FREE, 0, -1, -1},
    {S_EXPIRED, SH, 1, GRANT, P_FREE, 0, -1, -1},
    {S_EXPIRED, EX, 0, GRANT, P_FREE, 0, -1, -1},
    {S_EXPIRED, EX, 1, GRANT, P_FREE, 0, -1, -1},

    /* combinations */
    {S_SHARED_PEND_OTHER, SH, 0, REFUSE, P_DRAIN, 1, 1, -1}, /* C13: R2 refused */
    {S_SHARED_PEND_OTHER, EX, 1, REFUSE, P_DRAIN, 1, 1, -1},
    {S_SHARED_MY_PEND, SH, 0, REFUSE, P_DRAIN, 1, 1, 1},
    {S_SHARED_MY_PEND, EX, 0, REFUSE, P_SHARED, 1, 0, 1},
    {S_SHARED_MY_PEND, EX, 1, PEND, P_SHARED, 1, 0, 1},      /* refresh my intent */
    {S_EXCL_MY_PEND, SH, 0, REFUSE, P_EXCL, 0, 0, 1},
    {S_EXCL_MY_PEND, EX, 0, REFUSE, P_EXCL, 0, 0, 1},
    {S_EXCL_MY_PEND, EX, 1, PEND, P_EXCL, 0, 0, 1},
    {S_EXCL_PEND_OTHER, SH, 1, REFUSE, P_EXCL, 0, 0, -1},   /* active outranks pending */
    {S_EXCL_PEND_OTHER, EX, 1, REFUSE, P_DRAIN, 0, 1, -1},  /* pending of other first */
    {S_TWO_PEND_OTHER_FIRST, EX, 1, REFUSE, P_DRAIN, 0, 1, 0},
    {S_TWO_PEND_MINE_FIRST, EX, 1, PROMOTE, P_FREE, 0, -1, 1},
    {S_EXCL_JUST_LIVE, SH, 0, REFUSE, P_EXCL, 0, 1, -1},    /* expires == now is gone */
    {S_EXCL_JUST_LIVE, EX, 1, PEND, P_EXCL, 0, 1, -1},
    {S_TWO_EXCL, EX, 0, REFUSE, P_EXCL, 0, 1, -1},
};

static void test_decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof decide_cases / sizeof decide_cases[0]; i++) {
        const decide_case *c = &decide_cases[i];
        fl_lease rows[4];
        char my[FL_TOKEN_LEN + 1], what[256];
        fl__decision d;
        int n = build(c->scenario, rows);

        token_of(0, my);
        snprintf(what, sizeof what, "case %zu (%s, %s, may_pend=%d)", i,
                 scenarios[c->scenario].name, fl_mode_name(c->mode), c->may_pend);
        memset(&d, 0x5a, sizeof d);
        fl__decide(rows, (size_t)n, NOW, c->mode, my, c->may_pend, &d);
        CHECK_INT(what, d.outcome, c->outcome);
        CHECK_INT(what, d.state, c->state);
        CHECK_INT(what, d.shared_count, c->shared_count);
        if (c->blocker < 0 ? d.blocker != NULL : d.blocker != &rows[c->blocker])
            fail_msg("%s: blocker is row %ld, want %d", what,
                     d.blocker ? (long)(d.blocker - rows) : -1L, c->blocker);
        if (c->mine < 0 ? d.mine != NULL : d.mine != &rows[c->mine])
            fail_msg("%s: mine is row %ld, want %d", what,
                     d.mine ? (long)(d.mine - rows) : -1L, c->mine);
    }
}

static void test_decide_null_token(void **state)
{
    fl_lease rows[4];
    fl__decision d;
    int n = build(S_MY_PEND, rows);

    (void)state;
    /* Without a token nothing is "mine": the intent is someone else's. */
    fl__decide(rows, (size_t)n, NOW, FL_EXCLUSIVE, NULL, 1, &d);
    assert_int_equal(d.outcome, FL__REFUSE);
    assert_int_equal(d.state, FL_PSTATE_DRAINING);
    assert_null(d.mine);
    fl__decide(NULL, 0, NOW, FL_EXCLUSIVE, NULL, 0, &d);
    assert_int_equal(d.outcome, FL__GRANT);
}

/* ---- fl__live -------------------------------------------------------------- */

static void test_live_boundary(void **state)
{
    fl_lease l;
    (void)state;
    memset(&l, 0, sizeof l);
    l.expires_at_ms = NOW;
    assert_int_equal(fl__live(&l, NOW), 0);      /* at expires_at it is gone */
    assert_int_equal(fl__live(&l, NOW - 1), 1);
    assert_int_equal(fl__live(&l, NOW + 1), 0);
    assert_int_equal(fl__live(NULL, NOW), 0);
}

/* ---- fl__verdict ----------------------------------------------------------- */

typedef struct verdict_case {
    int scenario;
    const char *writer;
    int token;              /* token_of(token); -1: no token */
    int allowed;
    fl_pstate state;
    int shared_count;
    int blocker;            /* row index when refused, -1 otherwise */
    int64_t retry_after_ms;
    const char *message;
} verdict_case;

static const verdict_case verdict_cases[] = {
    {S_FREE, "anyone", -1, 1, P_FREE, 0, -1, 0, "free"},
    {S_FREE, NULL, -1, 1, P_FREE, 0, -1, 0, "free"},
    {S_EXPIRED, "anyone", -1, 1, P_FREE, 0, -1, 0, "free"},
    {S_SHARED1, "r9", -1, 1, P_SHARED, 1, -1, 0, "shared by 1 holder(s)"},
    {S_SHARED2, NULL, -1, 1, P_SHARED, 2, -1, 0, "shared by 2 holder(s)"},
    /* writer = holder */
    {S_EXCL, "bench-1", -1, 1, P_EXCL, 0, -1, 0,
     "leased to you (bench-1) until 2026-12-03T18:30:25.000Z"},
    /* writer = other */
    {S_EXCL, "bench-2", -1, 0, P_EXCL, 0, 0, 25000,
     "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z"},
    {S_EXCL, NULL, -1, 0, P_EXCL, 0, 0, 25000,
     "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z"},
    {S_EXCL, "Bench-1", -1, 0, P_EXCL, 0, 0, 25000,
     "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z"},
    /* token match, by an anonymous writer or one with another name */
    {S_EXCL, NULL, 1, 1, P_EXCL, 0, -1, 0,
     "leased to you (bench-1) until 2026-12-03T18:30:25.000Z"},
    {S_EXCL, "gateway", 1, 1, P_EXCL, 0, -1, 0,
     "leased to you (bench-1) until 2026-12-03T18:30:25.000Z"},
    {S_EXCL, "gateway", 2, 0, P_EXCL, 0, 0, 25000,
     "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z"},
    /* draining: everyone refused, the waiter and the shared holders too */
    {S_PEND_OTHER, "bench-2", 2, 0, P_DRAIN, 0, 0, 4000,
     "host leased for nightly bench by bench-2 until 2026-12-03T18:30:04.000Z"
     " (draining: exclusive pending)"},
    {S_SHARED_PEND_OTHER, "r1", 1, 0, P_DRAIN, 1, 1, 4000,
     "host leased for nightly bench by bench-2 until 2026-12-03T18:30:04.000Z"
     " (draining: exclusive pending)"},
    /* an intent queued behind an active exclusive does not stop its holder */
    {S_EXCL_PEND_OTHER, "bench-1", -1, 1, P_EXCL, 0, -1, 0,
     "leased to you (bench-1) until 2026-12-03T18:30:25.000Z"},
    {S_EXCL_PEND_OTHER, "bench-2", -1, 0, P_EXCL, 0, 0, 25000,
     "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z"},
    /* a lease expiring 1 ms from now still blocks, with the minimum retry */
    {S_EXCL_JUST_LIVE, "x", -1, 0, P_EXCL, 0, 1, 1000,
     "host leased for nightly bench by bench-2 until 2026-12-03T18:30:00.001Z"},
    {S_EXCL_JUST_LIVE, "bench-1", -1, 0, P_EXCL, 0, 1, 1000,
     "host leased for nightly bench by bench-2 until 2026-12-03T18:30:00.001Z"},
};

static void test_verdict_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof verdict_cases / sizeof verdict_cases[0]; i++) {
        const verdict_case *c = &verdict_cases[i];
        fl_lease rows[4];
        char tok[FL_TOKEN_LEN + 1], what[256];
        fl_verdict v;
        int n = build(c->scenario, rows);

        if (c->token >= 0)
            token_of(c->token, tok);
        snprintf(what, sizeof what, "case %zu (%s, writer %s, token %d)", i,
                 scenarios[c->scenario].name, c->writer ? c->writer : "NULL", c->token);
        memset(&v, 0x5a, sizeof v);
        v.stale = 1;
        v.fail_open = 0;
        fl__verdict(rows, (size_t)n, NOW, c->writer, c->token >= 0 ? tok : NULL, &v);
        CHECK_INT(what, v.allowed, c->allowed);
        CHECK_INT(what, v.state, c->state);
        CHECK_INT(what, v.shared_count, c->shared_count);
        CHECK_INT(what, v.retry_after_ms, c->retry_after_ms);
        CHECK_INT(what, v.now_ms, NOW);
        CHECK_INT(what, v.stale, 1);      /* the caller's fields are left alone */
        CHECK_INT(what, v.fail_open, 0);
        CHECK_STR(what, v.message, c->message);
        CHECK_STR(what, v.blocker.token, "");  /* never shown */
        if (c->blocker >= 0) {
            CHECK_STR(what, v.blocker.holder, rows[c->blocker].holder);
            CHECK_INT(what, v.blocker.fence, rows[c->blocker].fence);
            CHECK_INT(what, v.blocker.expires_at_ms, rows[c->blocker].expires_at_ms);
        } else {
            CHECK_STR(what, v.blocker.holder, "");
        }
    }
}

/* ---- fl__refusal, as the stores use it with fl__decide ---------------------- */

typedef struct refusal_case {
    int scenario;
    fl_mode mode;
    const char *message;
    int64_t retry_after_ms;
} refusal_case;

static const refusal_case refusal_cases[] = {
    {S_EXCL, SH, "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z", 25000},
    {S_EXCL, EX, "host leased for nightly bench by bench-1 until 2026-12-03T18:30:25.000Z", 25000},
    {S_PEND_OTHER, SH,
     "host leased for nightly bench by bench-2 until 2026-12-03T18:30:04.000Z"
     " (draining: exclusive pending)", 4000},
    {S_SHARED1, EX, "host leased for eval by r1 until 2026-12-03T18:30:20.000Z (shared by 1 holder)",
     20000},
    {S_SHARED2, EX, "host leased for eval by r2 until 2026-12-03T18:30:30.000Z (shared by 2 holders)",
     30000},
};

/* fl_pstate_of over a provider's live rows (as fl_list gives them) names
 * the state fl__verdict decides with, in every scenario. */
static void test_pstate_of(void **state)
{
    (void)state;
    for (int s = 0; s < S_COUNT; s++) {
        fl_lease rows[4], live[4];
        int n = build(s, rows), k = 0;
        for (int i = 0; i < n; i++)
            if (rows[i].expires_at_ms > NOW)
                live[k++] = rows[i];
        fl_verdict v;
        memset(&v, 0, sizeof v);
        fl__verdict(rows, (size_t)n, NOW, NULL, NULL, &v);
        if (fl_pstate_of(live, (size_t)k) != v.state) {
            print_error("%s: fl_pstate_of %s, verdict %s\n", scenarios[s].name,
                        fl_pstate_name(fl_pstate_of(live, (size_t)k)), fl_pstate_name(v.state));
            fail();
        }
    }
    assert_int_equal(fl_pstate_of(NULL, 3), FL_PSTATE_FREE);
}

static void test_refusal_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusal_cases / sizeof refusal_cases[0]; i++) {
        const refusal_case *c = &refusal_cases[i];
        fl_lease rows[4];
        fl__decision d;
        fl_verdict v;
        char what[128];
        int n = build(c->scenario, rows);

        snprintf(what, sizeof what, "refusal %zu (%s)", i, scenarios[c->scenario].name);
        fl__decide(rows, (size_t)n, NOW, c->mode, NULL, 0, &d);
        CHECK_INT(what, d.outcome, FL__REFUSE);
        memset(&v, 0, sizeof v);
        fl__refusal(d.blocker, d.state, d.shared_count, NOW, &v);
        CHECK_INT(what, v.allowed, 0);
        CHECK_INT(what, v.state, d.state);
        CHECK_INT(what, v.shared_count, d.shared_count);
        CHECK_INT(what, v.retry_after_ms, c->retry_after_ms);
        CHECK_STR(what, v.message, c->message);
        CHECK_STR(what, v.blocker.token, "");
        CHECK_STR(what, v.blocker.holder, d.blocker->holder);
    }
}

static void test_refusal_retry_floor(void **state)
{
    fl_lease rows[4];
    fl_verdict v;
    (void)state;
    build(S_EXCL, rows);
    rows[0].expires_at_ms = NOW + 200;
    fl__refusal(&rows[0], FL_PSTATE_EXCLUSIVE, 0, NOW, &v);
    assert_int_equal(v.retry_after_ms, 1000);
    rows[0].expires_at_ms = NOW + 1001;
    fl__refusal(&rows[0], FL_PSTATE_EXCLUSIVE, 0, NOW, &v);
    assert_int_equal(v.retry_after_ms, 1001);
    /* The longest fields still give the whole message: nothing cut. */
    memset(rows[0].holder, 'h', FL_TEXT_MAX);
    rows[0].holder[FL_TEXT_MAX] = '\0';
    memset(rows[0].purpose, 'p', FL_TEXT_MAX);
    rows[0].purpose[FL_TEXT_MAX] = '\0';
    fl__refusal(&rows[0], FL_PSTATE_DRAINING, 0, NOW, &v);
    assert_non_null(strstr(v.message, " (draining: exclusive pending)"));
    assert_int_equal(strlen(v.message), 16 + 256 + 4 + 256 + 7 + 24 + 30);
}

/* ---- validation ------------------------------------------------------------- */

typedef struct provider_case {
    const char *in;
    int rc;
} provider_case;

static void test_validate_provider(void **state)
{
    static const provider_case cases[] = {
        {"gpu-01", FL_OK},
        {"vllm/gpu-01:8000", FL_OK},
        {"A.b_c:d/e-f0", FL_OK},
        {"", FL_EINVAL},
        {"gpu 01", FL_EINVAL},
        {"gpu\n01", FL_EINVAL},
        {"gpu\x1b[2J", FL_EINVAL},
        {"gp\xc3\xbc", FL_EINVAL},  /* non-ASCII */
        {"gpu@01", FL_EINVAL},
        {"gpu,01", FL_EINVAL},
        {"gpu\\01", FL_EINVAL},
    };
    char err[FL_MESSAGE_MAX], buf[300];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        CHECK_INT(cases[i].in, fl_validate_provider(cases[i].in, err, sizeof err), cases[i].rc);
        static const char prefix[] = "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got ";
        if (cases[i].rc != FL_OK && strncmp(err, prefix, sizeof prefix - 1) != 0)
            fail_msg("message for \"%s\" does not name the field and limit: %s", cases[i].in, err);
    }
    assert_int_equal(fl_validate_provider(NULL, err, sizeof err), FL_EINVAL);
    CHECK_STR("NULL", err, "provider: missing; must be 1-128 bytes of [A-Za-z0-9._:/-]");

    memset(buf, 'a', 128);
    buf[128] = '\0';
    assert_int_equal(fl_validate_provider(buf, err, sizeof err), FL_OK);
    buf[128] = 'a';
    buf[129] = '\0';
    assert_int_equal(fl_validate_provider(buf, err, sizeof err), FL_EINVAL);
    CHECK_STR("129", err, "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got 129 bytes");

    fl_validate_provider("", err, sizeof err);
    CHECK_STR("empty", err, "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got an empty string");
    fl_validate_provider("gpu 01", err, sizeof err);
    CHECK_STR("space", err,
              "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got \"gpu 01\" (byte 0x20 at offset 3)");
    /* Hostile bytes are escaped, and the value shown is bounded. */
    fl_validate_provider("gpu\x1b[2J\"", err, sizeof err);
    CHECK_STR("escape", err,
              "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got \"gpu\\x1b[2J\\x22\" "
              "(byte 0x1b at offset 3)");
    memset(buf, 'b', 100);
    buf[99] = '!';
    buf[100] = '\0';
    fl_validate_provider(buf, err, sizeof err);
    CHECK_STR("long", err,
              "provider: must be 1-128 bytes of [A-Za-z0-9._:/-], got "
              "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"... (byte 0x21 at offset 99)");
    /* err may be NULL or tiny: the result is the same, nothing overflows. */
    assert_int_equal(fl_validate_provider("a b", NULL, 0), FL_EINVAL);
    assert_int_equal(fl_validate_provider("a b", err, 5), FL_EINVAL);
    CHECK_STR("tiny", err, "prov");
}

typedef struct text_case {
    const char *what;
    const char *in;
    int rc;
} text_case;

static void test_validate_text_utf8(void **state)
{
    static const text_case cases[] = {
        {"ascii", "nightly bench", FL_OK},
        {"2-byte", "caf\xc3\xa9", FL_OK},
        {"3-byte", "\xe6\x97\xa5\xe6\x9c\xac", FL_OK},
        {"4-byte", "\xf0\x9f\x98\x80", FL_OK},
        {"U+10FFFF", "\xf4\x8f\xbf\xbf", FL_OK},
        {"U+D7FF", "\xed\x9f\xbf", FL_OK},
        {"U+E000", "\xee\x80\x80", FL_OK},
        {"U+00A0 (first after C1)", "\xc2\xa0", FL_OK},
        {"U+FFFD", "\xef\xbf\xbd", FL_OK},
        {"U+0800 (smallest 3-byte)", "\xe0\xa0\x80", FL_OK},
        {"U+10000 (smallest 4-byte)", "\xf0\x90\x80\x80", FL_OK},
        {"printable ASCII edge", " ~", FL_OK},
        {"overlong 2-byte C0", "\xc0\xaf", FL_EINVAL},
        {"overlong 2-byte C1", "\xc1\xbf", FL_EINVAL},
        {"overlong 3-byte", "\xe0\x80\xaf", FL_EINVAL},
        {"overlong 3-byte max", "\xe0\x9f\xbf", FL_EINVAL},
        {"overlong 4-byte", "\xf0\x80\x80\xaf", FL_EINVAL},
        {"overlong 4-byte max", "\xf0\x8f\xbf\xbf", FL_EINVAL},
        {"surrogate D800", "\xed\xa0\x80", FL_EINVAL},
        {"surrogate DFFF", "\xed\xbf\xbf", FL_EINVAL},
        {"U+110000", "\xf4\x90\x80\x80", FL_EINVAL},
        {"F5 lead", "\xf5\x80\x80\x80", FL_EINVAL},
        {"FF", "a\xff", FL_EINVAL},
        {"FE", "\xfe", FL_EINVAL},
        {"lone continuation", "\x80", FL_EINVAL},
        {"truncated 2-byte", "ab\xc3", FL_EINVAL},
        {"truncated 3-byte", "\xe2\x82", FL_EINVAL},
        {"truncated 4-byte", "\xf0\x9f\x98", FL_EINVAL},
        {"bad continuation", "\xc3\x28", FL_EINVAL},
        {"bad 3rd byte", "\xe2\x82\x28", FL_EINVAL},
        {"bad 4th byte", "\xf0\x9f\x98\x28", FL_EINVAL},
        {"tab", "a\tb", FL_EINVAL},
        {"newline", "a\n", FL_EINVAL},
        {"CR", "\r", FL_EINVAL},
        {"ESC", "\x1b[31mred", FL_EINVAL},
        {"0x01", "\x01", FL_EINVAL},
        {"0x1f", "\x1f", FL_EINVAL},
        {"DEL", "a\x7f", FL_EINVAL},
        {"C1 U+0080", "\xc2\x80", FL_EINVAL},
        {"C1 U+0085 (NEL)", "x\xc2\x85y", FL_EINVAL},
        {"C1 U+009B (CSI)", "\xc2\x9b", FL_EINVAL},
        {"C1 U+009F", "\xc2\x9f", FL_EINVAL},
        {"empty", "", FL_EINVAL},
    };
    char err[FL_MESSAGE_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        CHECK_INT(cases[i].what, fl_validate_text("--purpose", cases[i].in, err, sizeof err),
                  cases[i].rc);
        static const char prefix[] =
            "--purpose: must be 1-256 bytes of UTF-8 without control characters, got ";
        if (cases[i].rc != FL_OK && strncmp(err, prefix, sizeof prefix - 1) != 0)
            fail_msg("%s: message does not name field and limit: %s", cases[i].what, err);
    }
}

static void test_validate_text_messages(void **state)
{
    char err[FL_MESSAGE_MAX], buf[400];
    (void)state;

    assert_int_equal(fl_validate_text("holder", NULL, err, sizeof err), FL_EINVAL);
    CHECK_STR("NULL", err, "holder: missing; must be 1-256 bytes of UTF-8 without control characters");
    fl_validate_text("holder", "", err, sizeof err);
    CHECK_STR("empty", err,
              "holder: must be 1-256 bytes of UTF-8 without control characters, got an empty string");
    fl_validate_text("--purpose", "ab\xc0\xaf", err, sizeof err);
    CHECK_STR("overlong", err,
              "--purpose: must be 1-256 bytes of UTF-8 without control characters, "
              "got invalid UTF-8 at offset 2 in \"ab\\xc0\\xaf\"");
    fl_validate_text("writer", "a\x1b[2Jb", err, sizeof err);
    CHECK_STR("escape", err,
              "writer: must be 1-256 bytes of UTF-8 without control characters, "
              "got control character U+001B at offset 1 in \"a\\x1b[2Jb\"");
    fl_validate_text("writer", "x\xc2\x9b", err, sizeof err);
    CHECK_STR("C1", err,
              "writer: must be 1-256 bytes of UTF-8 without control characters, "
              "got control character U+009B at offset 1 in \"x\\xc2\\x9b\"");
    fl_validate_text(NULL, "\x7f", err, sizeof err);
    CHECK_STR("no field", err,
              "text: must be 1-256 bytes of UTF-8 without control characters, "
              "got control character U+007F at offset 0 in \"\\x7f\"");

    /* Boundary lengths in bytes, not characters. */
    memset(buf, 'x', 256);
    buf[256] = '\0';
    assert_int_equal(fl_validate_text("holder", buf, err, sizeof err), FL_OK);
    buf[256] = 'x';
    buf[257] = '\0';
    assert_int_equal(fl_validate_text("holder", buf, err, sizeof err), FL_EINVAL);
    CHECK_STR("257", err,
              "holder: must be 1-256 bytes of UTF-8 without control characters, got 257 bytes");
    /* 85 x U+20AC (3 bytes) + 'a' = 256 bytes: allowed; one more byte is not. */
    for (int i = 0; i < 85; i++)
        memcpy(buf + 3 * i, "\xe2\x82\xac", 3);
    buf[255] = 'a';
    buf[256] = '\0';
    assert_int_equal(fl_validate_text("holder", buf, err, sizeof err), FL_OK);
    buf[255] = '\xc3';
    buf[256] = '\xa9';
    buf[257] = '\0';
    assert_int_equal(fl_validate_text("holder", buf, err, sizeof err), FL_EINVAL);
    CHECK_STR("257 utf8", err,
              "holder: must be 1-256 bytes of UTF-8 without control characters, got 257 bytes");
    /* A sequence cut at the 256-byte limit is invalid, not silently shortened. */
    buf[255] = '\xe2';
    buf[256] = '\0';
    assert_int_equal(fl_validate_text("holder", buf, err, sizeof err), FL_EINVAL);
}

static void test_validate_token(void **state)
{
    char err[FL_MESSAGE_MAX], tok[FL_TOKEN_LEN + 1];
    unsigned char raw[16];
    (void)state;

    for (int i = 0; i < 16; i++)
        raw[i] = (unsigned char)(i * 17);
    fl__token_hex(raw, tok);
    assert_string_equal(tok, "00112233445566778899aabbccddeeff");
    assert_int_equal(fl_validate_token(tok, err, sizeof err), FL_OK);
    assert_int_equal(fl_validate_token("0123456789abcdef0123456789abcdef", err, sizeof err), FL_OK);

    assert_int_equal(fl_validate_token("0123456789abcdef0123456789abcdeF", err, sizeof err), FL_EINVAL);
    CHECK_STR("upper", err, "token: must be 32 lowercase hex digits, got another character at offset 31");
    assert_int_equal(fl_validate_token("0123456789abcdef0123456789abcdeg", err, sizeof err), FL_EINVAL);
    assert_int_equal(fl_validate_token("0123456789abcdef0123456789abcde", err, sizeof err), FL_EINVAL);
    CHECK_STR("31", err, "token: must be 32 lowercase hex digits, got 31 bytes");
    assert_int_equal(fl_validate_token("0123456789abcdef0123456789abcdef0", err, sizeof err), FL_EINVAL);
    CHECK_STR("33", err, "token: must be 32 lowercase hex digits, got more than 32 bytes");
    assert_int_equal(fl_validate_token("", err, sizeof err), FL_EINVAL);
    CHECK_STR("empty", err, "token: must be 32 lowercase hex digits, got 0 bytes");
    assert_int_equal(fl_validate_token(" 123456789abcdef0123456789abcdef", err, sizeof err), FL_EINVAL);
    assert_int_equal(fl_validate_token(NULL, err, sizeof err), FL_EINVAL);
    CHECK_STR("NULL", err, "token: missing; must be 32 lowercase hex digits");
}

/* ---- durations ------------------------------------------------------------- */

typedef struct dur_case {
    const char *in;
    int rc;
    int64_t ms;
} dur_case;

static void test_parse_duration(void **state)
{
    static const dur_case cases[] = {
        {"0", FL_OK, 0},
        {"00", FL_OK, 0},
        {"0s", FL_OK, 0},
        {"0ms", FL_OK, 0},
        {"500ms", FL_OK, 500},
        {"30s", FL_OK, 30000},
        {"5m", FL_OK, 300000},
        {"2h", FL_OK, 7200000},
        {"01s", FL_OK, 1000},
        {"9223372036854775807ms", FL_OK, INT64_MAX},
        {"", FL_EINVAL, 0},
        {"s", FL_EINVAL, 0},
        {"ms", FL_EINVAL, 0},
        {"-1s", FL_EINVAL, 0},
        {"+1s", FL_EINVAL, 0},
        {"1.5s", FL_EINVAL, 0},
        {"1d", FL_EINVAL, 0},
        {"1S", FL_EINVAL, 0},
        {"1H", FL_EINVAL, 0},
        {"30", FL_EINVAL, 0},   /* a bare number is only allowed for 0 */
        {"1", FL_EINVAL, 0},
        {" 1s", FL_EINVAL, 0},
        {"1s ", FL_EINVAL, 0},
        {"1 s", FL_EINVAL, 0},
        {"1e3s", FL_EINVAL, 0},
        {"0x10s", FL_EINVAL, 0},
        {"1s1", FL_EINVAL, 0},
        {"1ms1", FL_EINVAL, 0},
        {"1sm", FL_EINVAL, 0},
        {"1msec", FL_EINVAL, 0},
        {"99999999999999999999h", FL_EINVAL, 0},
        {"9223372036854775808ms", FL_EINVAL, 0},
        {"2562047788016h", FL_EINVAL, 0},   /* fits as a number, overflows in ms */
        {"2562047788015h", FL_OK, 2562047788015LL * 3600000},
        {"9223372036854775808", FL_EINVAL, 0},
        {"99999999999999999999x", FL_EINVAL, 0},
    };
    char err[FL_MESSAGE_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -42;
        CHECK_INT(cases[i].in, fl_parse_duration(cases[i].in, &ms, err, sizeof err), cases[i].rc);
        CHECK_INT(cases[i].in, ms, cases[i].rc == FL_OK ? cases[i].ms : -42); /* untouched on error */
    }
    int64_t ms;
    fl_parse_duration("1.5s", &ms, err, sizeof err);
    CHECK_STR("syntax", err,
              "duration: must be a whole number with a unit ms, s, m or h (e.g. 500ms, 30s, 5m, 2h), "
              "got \"1.5s\"");
    fl_parse_duration("99999999999999999999h", &ms, err, sizeof err);
    CHECK_STR("overflow", err,
              "duration: must be at most 9223372036854775807ms, got \"99999999999999999999h\"");
    fl_parse_duration("", &ms, err, sizeof err);
    CHECK_STR("empty", err,
              "duration: must be a whole number with a unit ms, s, m or h (e.g. 500ms, 30s, 5m, 2h), "
              "got \"\"");
    assert_int_equal(fl_parse_duration(NULL, &ms, err, sizeof err), FL_EINVAL);
}

typedef struct bounded_case {
    int wait;  /* 0: fl_parse_ttl, 1: fl_parse_wait */
    const char *in;
    int rc;
    int64_t ms;
    const char *message;  /* NULL: not checked */
} bounded_case;

static void test_parse_ttl_wait(void **state)
{
    static const bounded_case cases[] = {
        {0, "999ms", FL_EINVAL, 0, "--ttl: must be between 1s and 24h, got \"999ms\""},
        {0, "1s", FL_OK, 1000, NULL},
        {0, "1000ms", FL_OK, 1000, NULL},
        {0, "30s", FL_OK, 30000, NULL},
        {0, "24h", FL_OK, 86400000, NULL},
        {0, "1440m", FL_OK, 86400000, NULL},
        {0, "86400000ms", FL_OK, 86400000, NULL},
        {0, "86400001ms", FL_EINVAL, 0, "--ttl: must be between 1s and 24h, got \"86400001ms\""},
        {0, "25h", FL_EINVAL, 0, "--ttl: must be between 1s and 24h, got \"25h\""},
        {0, "0", FL_EINVAL, 0, "--ttl: must be between 1s and 24h, got \"0\""},
        {0, "99999999999999999999h", FL_EINVAL, 0,
         "--ttl: must be between 1s and 24h, got \"99999999999999999999h\""},
        {0, "1.5s", FL_EINVAL, 0,
         "--ttl: must be between 1s and 24h, as a whole number with a unit ms, s, m or h "
         "(e.g. 500ms, 30s, 5m, 2h), got \"1.5s\""},
        {0, "1d", FL_EINVAL, 0, NULL},
        {1, "0", FL_OK, 0, NULL},
        {1, "0s", FL_OK, 0, NULL},
        {1, "10s", FL_OK, 10000, NULL},
        {1, "168h", FL_OK, 604800000, NULL},
        {1, "604800000ms", FL_OK, 604800000, NULL},
        {1, "604800001ms", FL_EINVAL, 0,
         "--wait: must be between 0 and 168h (7 days), got \"604800001ms\""},
        {1, "169h", FL_EINVAL, 0, "--wait: must be between 0 and 168h (7 days), got \"169h\""},
        {1, "7d", FL_EINVAL, 0,
         "--wait: must be between 0 and 168h (7 days), as a whole number with a unit ms, s, m or h "
         "(e.g. 500ms, 30s, 5m, 2h), got \"7d\""},
        {1, "-1s", FL_EINVAL, 0, NULL},
    };
    char err[FL_MESSAGE_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bounded_case *c = &cases[i];
        int64_t ms = -42;
        int rc;
        err[0] = '\0';
        rc = c->wait ? fl_parse_wait("--wait", c->in, &ms, err, sizeof err)
                     : fl_parse_ttl("--ttl", c->in, &ms, err, sizeof err);
        CHECK_INT(c->in, rc, c->rc);
        CHECK_INT(c->in, ms, c->rc == FL_OK ? c->ms : -42);
        if (c->message)
            CHECK_STR(c->in, err, c->message);
    }
    int64_t ms;
    assert_int_equal(fl_parse_ttl(NULL, "0", &ms, err, sizeof err), FL_EINVAL);
    CHECK_STR("default field", err, "ttl: must be between 1s and 24h, got \"0\"");
    assert_int_equal(fl_parse_ttl("ttl", NULL, &ms, err, sizeof err), FL_EINVAL);
    CHECK_STR("NULL", err, "ttl: missing; must be a duration between 1s and 24h");
    /* A hostile value is shown bounded and escaped. */
    fl_parse_wait("wait_ms", "\x1b]0;pwned\x07 and a very long tail that goes on and on", &ms, err,
                  sizeof err);
    CHECK_STR("hostile", err,
              "wait_ms: must be between 0 and 168h (7 days), as a whole number with a unit ms, s, m "
              "or h (e.g. 500ms, 30s, 5m, 2h), got \"\\x1b]0;pwned\\x07 and a very long tail that goe\"...");
}

static void test_parse_mode(void **state)
{
    char err[FL_MESSAGE_MAX];
    fl_mode m = (fl_mode)0;
    (void)state;
    assert_int_equal(fl_parse_mode("shared", &m, err, sizeof err), FL_OK);
    assert_int_equal(m, FL_SHARED);
    assert_int_equal(fl_parse_mode("exclusive", &m, err, sizeof err), FL_OK);
    assert_int_equal(m, FL_EXCLUSIVE);
    assert_int_equal(fl_parse_mode("Exclusive", &m, err, sizeof err), FL_EINVAL);
    CHECK_STR("case", err, "mode: must be \"shared\" or \"exclusive\", got \"Exclusive\"");
    assert_int_equal(m, FL_EXCLUSIVE);
    assert_int_equal(fl_parse_mode("", &m, err, sizeof err), FL_EINVAL);
    assert_int_equal(fl_parse_mode("excl", &m, err, sizeof err), FL_EINVAL);
    assert_int_equal(fl_parse_mode(NULL, &m, err, sizeof err), FL_EINVAL);
}

/* ---- time ----------------------------------------------------------------- */

typedef struct time_case {
    int64_t ms;
    const char *want;
} time_case;

static void test_format_time(void **state)
{
    static const time_case cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
        {1796322600250LL, "2026-12-03T18:30:00.250Z"},
        {951782400000LL, "2000-02-29T00:00:00.000Z"},
        {1709251199999LL, "2024-02-29T23:59:59.999Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    };
    char buf[64];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(cases[i].want, fl_format_time(cases[i].ms, buf, sizeof buf), FL_OK);
        CHECK_STR(cases[i].want, buf, cases[i].want);
        /* 25 bytes is exactly enough */
        CHECK_INT(cases[i].want, fl_format_time(cases[i].ms, buf, 25), FL_OK);
        CHECK_STR(cases[i].want, buf, cases[i].want);
    }
    assert_int_equal(fl_format_time(0, buf, 24), FL_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(fl_format_time(0, NULL, 64), FL_EINVAL);
    /* Year 10000 needs 26 bytes: refused, not cut. */
    assert_int_equal(fl_format_time(253402300800000LL, buf, 25), FL_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(fl_format_time(253402300800000LL, buf, sizeof buf), FL_OK);
    assert_string_equal(buf, "10000-01-01T00:00:00.000Z");

    /* Years 0-9999 are formatted by hand: they must agree with gmtime_r
     * everywhere, including around the edges of days, leap years and
     * centuries.  Random instants over the whole range, and instants
     * one millisecond either side of midnights. */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    const int64_t lo = -62167219200000LL, span = 253402300799999LL - lo + 1;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = lo + (int64_t)(x % (uint64_t)span);
        if (i % 2)
            ms = ms - ((ms % 86400000) + 86400000) % 86400000 + (i % 4 == 1 ? -1 : 0);
        if (ms < lo)
            continue;
        int64_t s = ms / 1000, f = ms % 1000;
        if (f < 0) {
            f += 1000;
            s -= 1;
        }
        time_t tt = (time_t)s;
        struct tm tm;
        char want[64];
        assert_non_null(gmtime_r(&tt, &tm));
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)f);
        assert_int_equal(fl_format_time(ms, buf, sizeof buf), FL_OK);
        if (strcmp(buf, want) != 0) {
            print_error("ms %lld: got %s, want %s\n", (long long)ms, buf, want);
            fail();
        }
    }
}

/* ---- util ------------------------------------------------------------------ */

static void test_copy_fmt(void **state)
{
    char dst[8];
    char err[8];
    (void)state;
    assert_int_equal(fl__copy(dst, sizeof dst, "1234567"), FL_OK);
    assert_string_equal(dst, "1234567");
    assert_int_equal(fl__copy(dst, sizeof dst, "12345678"), FL_EINVAL);
    assert_string_equal(dst, "1234567");  /* untouched: nothing copied */
    assert_int_equal(fl__copy(dst, sizeof dst, ""), FL_OK);
    assert_string_equal(dst, "");
    assert_int_equal(fl__copy(dst, 0, "x"), FL_EINVAL);
    assert_int_equal(fl__copy(NULL, 8, "x"), FL_EINVAL);
    assert_int_equal(fl__copy(dst, sizeof dst, NULL), FL_EINVAL);

    fl__fmt(err, sizeof err, "%s=%d", "abcdef", 42);
    assert_string_equal(err, "abcdef=");
    fl__fmt(NULL, 0, "%d", 1);
    err[0] = 'z';
    fl__fmt(err, 0, "%d", 1);
    assert_int_equal(err[0], 'z');
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(fl_strerror(FL_OK), "success");
    for (int c = FL_OK; c <= FL_ECANCELED; c++) {
        assert_non_null(fl_strerror(c));
        assert_string_not_equal(fl_strerror(c), "unknown error");
    }
    assert_string_equal(fl_strerror(FL_ECONFLICT), "provider held by someone else");
    assert_string_equal(fl_strerror(FL_ECANCELED + 1), "unknown error");
    assert_string_equal(fl_strerror(-1), "unknown error");
    assert_string_equal(fl_mode_name(FL_SHARED), "shared");
    assert_string_equal(fl_mode_name(FL_EXCLUSIVE), "exclusive");
    assert_string_equal(fl_mode_name((fl_mode)0), "?");
    assert_string_equal(fl_pstate_name(FL_PSTATE_FREE), "free");
    assert_string_equal(fl_pstate_name(FL_PSTATE_SHARED), "shared");
    assert_string_equal(fl_pstate_name(FL_PSTATE_DRAINING), "draining");
    assert_string_equal(fl_pstate_name(FL_PSTATE_EXCLUSIVE), "exclusive");
    assert_string_equal(fl_pstate_name((fl_pstate)9), "?");
    assert_int_equal(fl__mode_from("shared"), FL_SHARED);
    assert_int_equal(fl__mode_from("exclusive"), FL_EXCLUSIVE);
    assert_int_equal(fl__mode_from("Shared"), 0);
    assert_int_equal(fl__mode_from(NULL), 0);
    assert_int_equal(fl__state_from("active"), FL_LEASE_ACTIVE);
    assert_int_equal(fl__state_from("pending"), FL_LEASE_PENDING);
    assert_int_equal(fl__state_from("expired"), 0);
    assert_int_equal(fl__state_from(NULL), 0);
    assert_string_equal(fl__state_name(FL_LEASE_ACTIVE), "active");
    assert_string_equal(fl__state_name(FL_LEASE_PENDING), "pending");
    assert_string_equal(fl__state_name((fl_lease_state)0), "?");
}

typedef struct timing_case {
    int64_t ttl, interval, retry, margin, grace, pending;
} timing_case;

static void test_timing(void **state)
{
    static const timing_case cases[] = {
        /* ttl      ttl/3    retry   margin  grace  pending */
        {1000, 333, 100, 250, 125, 1000},
        {2000, 666, 200, 500, 250, 2000},
        {30000, 10000, 3000, 7500, 3750, 5000},
        {3600000, 1200000, 360000, 30000, 10000, 5000},
        {86400000, 28800000, 8640000, 30000, 10000, 5000},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const timing_case *c = &cases[i];
        char what[32];
        snprintf(what, sizeof what, "ttl %lld", (long long)c->ttl);
        CHECK_INT(what, fl__hb_interval(c->ttl), c->interval);
        CHECK_INT(what, fl__hb_retry(c->ttl), c->retry);
        CHECK_INT(what, fl__margin(c->ttl), c->margin);
        CHECK_INT(what, fl__kill_grace(c->ttl), c->grace);
        CHECK_INT(what, fl__pending_ttl(c->ttl), c->pending);
        /* The local deadline falls before the store's expiry, and the job
         * is killed before it too. */
        assert_true(c->ttl - c->margin + c->grace < c->ttl);
    }
}

typedef struct backoff_case {
    unsigned attempt;
    int64_t cap;
    uint32_t rnd;
    int64_t want;
} backoff_case;

static void test_backoff(void **state)
{
    static const backoff_case cases[] = {
        {0, 30000, 0, 25},      /* d = 50: [25, 50] */
        {0, 30000, 25, 50},
        {0, 30000, 26, 25},     /* wraps: span is 26 values */
        {1, 30000, 0, 50},      /* d = 100 */
        {3, 30000, 0, 200},     /* d = 400 */
        {3, 30000, 200, 400},
        {10, 30000, 0, 15000},  /* 51200 capped to 30000 */
        {10, 30000, 15000, 30000},
        {63, 30000, 0, 15000},
        {1000, 30000, 7, 15007},
        {5, 1000, 0, 500},      /* 1600 capped to 1000 */
        {0, 5, 0, 10},          /* never below 10 */
        {0, 0, UINT32_MAX, 10},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "attempt %u cap %lld rnd %u", cases[i].attempt,
                 (long long)cases[i].cap, cases[i].rnd);
        CHECK_INT(what, fl__backoff(cases[i].attempt, cases[i].cap, cases[i].rnd), cases[i].want);
    }
    for (uint32_t r = 0; r < 5000; r += 7) {
        int64_t b = fl__backoff(2, 30000, r * 2654435761u);
        assert_in_range(b, 100, 200);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_decide_null_token),
        cmocka_unit_test(test_live_boundary),
        cmocka_unit_test(test_verdict_table),
        cmocka_unit_test(test_refusal_messages),
        cmocka_unit_test(test_refusal_retry_floor),
        cmocka_unit_test(test_validate_provider),
        cmocka_unit_test(test_validate_text_utf8),
        cmocka_unit_test(test_validate_text_messages),
        cmocka_unit_test(test_validate_token),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_ttl_wait),
        cmocka_unit_test(test_parse_mode),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_pstate_of),
        cmocka_unit_test(test_copy_fmt),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_timing),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
