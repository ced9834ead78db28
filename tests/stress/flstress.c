/*
 * tests/stress/flstress.c -- a Jepsen-style workload with faults, and the
 * checker that judges its history (issue 4).
 *
 *   flstress [--db URL] [--duration 30s] [--procs 32] [--faults kill,stop,pg]
 *            [--log-dir DIR] ...            run the workload, then check it
 *   flstress --check-only --log-dir DIR     check the logs of an earlier run
 *
 * The store is --db, else $FL_TEST_DB (run-store.sh sets it; unset: exit
 * 77, skipped).  Public API only.
 *
 * Workload: --procs forked processes (respawned when killed) loop on a few
 * providers.  Most use the plain API (acquire with no wait, or a random one up to 2 s,
 * shared or exclusive, ttl 1-3 s; hold briefly, or long with heartbeats
 * every ttl/3, or abandon the lease so that it lapses; later renew and
 * release the abandoned token to prove a stale token is refused).  The
 * others (--grant-pct) hold through fl_grant and "work" in a loop: each work
 * step is an instant at which the holder asked fl_grant_lost() and
 * fl_grant_time_left() and was told the grant still holds.  Every call is
 * logged, one line per operation, in DIR/w<slot>-<gen>.log (format below).
 * Providers rotate every --epoch so that no provider's history reaches the
 * 10000 events fl_history can return in one call.
 *
 * Faults (the parent): SIGKILL of a holder (then a fresh worker takes its
 * slot); SIGSTOP of a holder for its ttl + 0.3-1.5 s, then SIGCONT; on
 * PostgreSQL with --pg-dir (or $FL_PG_DIR), alternately a server restart and
 * a down period of 2-5 s (tests/pg-server.sh restart / kill).  Each fault is
 * logged in DIR/faults.log with CLOCK_MONOTONIC times, which every process
 * on the machine shares.
 *
 * The checker reads the logs and each provider's history and counts, by
 * kind (history.h):
 *   overlap      an exclusive validity interval meets any other (history.c)
 *   fence        fences not strictly rising per provider, or reused, or one
 *                fence handed to two workers
 *   stale-token  a renew/release recorded after the lapse (history.c), or a
 *                success a worker saw that the history does not record
 *   unknown      a worker's grant, or an event, for a fence never granted
 *   regrant      a provider whose last lease lapsed (nothing live) while a
 *                worker was certainly waiting for it, not granted again
 *                within --bound (default 2.5 s: the waiters' poll cap of 1 s
 *                plus scheduling on a loaded machine; there is no sweep
 *                daemon, an acquire clears lapsed rows itself)
 *   draining     a shared grant while an exclusive intent was pending
 *   starvation   a pending exclusive not granted within --bound of the last
 *                holder leaving (or giving up although the host was free)
 *   work-after-loss  a grant holder's work step later, on the store's clock,
 *                than its lease's end; or a holder that was told it lost
 *                the grant stopping later than its local deadline + 250 ms
 *   history      a provider's history that cannot be read whole
 * A waiting worker that was frozen or killed, or a window in which the store
 * was unavailable (restart, down, any call failing with FL_EUNAVAIL), makes
 * the liveness checks skip that instance: safety checks never skip.
 *
 * Store clock from a worker's: each worker samples fl_store_now() between
 * two CLOCK_MONOTONIC reads m0 <= m1; the store time at monotonic t is then
 * at most s + (t - m0) and at least s + (t - m1).  A work step is judged
 * with the upper bound, a waiter's presence with the inner bounds, so every
 * estimate errs towards "no violation" except by the clocks' rate drift.
 *
 * Log lines: a letter, then TAB-separated integers.
 *   H slot gen pid grant?                          first line of a worker log
 *   C m0 m1 store_now                              clock sample
 *   A pidx fence tok m0 m1 rc mode ttl wait acquired_at expires_at
 *   G pidx fence tok m0 m1 rc mode ttl wait acquired_at expires_at deadline
 *   B pidx fence tok m0 m1 rc heartbeat_at expires_at
 *   R pidx fence tok m0 m1 rc
 *   b, r  the same, with the token of a lease abandoned ttl + 300 ms earlier
 *   E pidx fence tok last_step stopped release_rc lost lost_at deadline steps expires_at
 *   (faults.log) K pid t | S pid t | T pid t | D t0 t1 | C m0 m1 s
 * tok is a 64-bit FNV-1a hash of the token (the token itself is a secret);
 * pidx = epoch * providers + k names provider "<prefix>-e<epoch>-p<k>".
 * -1 marks "none" (no fence, no step, not lost).
 */
#include "history.h"
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef FL_PG_SERVER_SH
#define FL_PG_SERVER_SH "tests/pg-server.sh"
#endif

#define MAX_PROCS 128
#define MAX_PROVIDERS 16
#define HISTORY_MAX 10000
#define NONE (-1)
#define STEP_MS 5             /* a grant holder's work step */
#define STOP_TOLERANCE_MS 1000 /* a stall of the whole process, not of the library */
#define UNAVAIL_MARGIN_MS 2500

enum { F_KILL = 1, F_STOP = 2, F_PG = 4 };

typedef struct opts {
    const char *url;
    int64_t duration_ms, epoch_ms, bound_ms, pg_every_ms;
    int procs, providers, grant_pct, shared_pct, faults, check_only, keep_logs, print_max;
    long min_ops;
    const char *pg_dir, *pg_script;
    char log_dir[512];
} opts;

/* ---- shared by the parent and the workers ------------------------------ */

typedef struct slot {
    atomic_int holding; /* a lease is held: a target for faults */
    atomic_int ttl_ms;
} slot;

typedef struct run {
    const opts *o;
    char prefix[64];
    int64_t t0, end; /* CLOCK_MONOTONIC ms */
    slot *slots;     /* MAP_SHARED */
} run;

static uint32_t rnd(uint64_t *s)
{
    /* xorshift64*: per-process stream; quality is not the point */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 2685821657736338717ULL) >> 32);
}

static int64_t tok_hash(const char *token)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = token; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (int64_t)(h >> 1);
}

static void provider_name(char *buf, size_t len, const char *prefix, int providers, int64_t pidx)
{
    snprintf(buf, len, "%s-e%lld-p%d", prefix, (long long)(pidx / providers),
             (int)(pidx % providers));
}

static void logline(int fd, char kind, int n, const int64_t *v)
{
    char line[512];
    int len = snprintf(line, sizeof line, "%c", kind);
    for (int i = 0; i < n && len < (int)sizeof line; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, "\t%lld", (long long)v[i]);
    if (len < (int)sizeof line - 1) {
        line[len++] = '\n';
        /* One write per line: a SIGKILL never leaves half a line. */
        if (ts_write_all(fd, line, (size_t)len) != 0) {
            perror("flstress: log write");
            _exit(5);
        }
    }
}

/* ---- the workers ------------------------------------------------------- */

typedef struct worker {
    const run *r;
    int slot, gen, grant, fd;
    uint64_t seed;
    fl_store *st;
    char holder[32];
    int64_t last_cal;
    /* an abandoned lease whose token is tried again after it lapsed */
    char stale_token[FL_TOKEN_LEN + 1];
    int64_t stale_pidx, stale_fence, stale_at;
} worker;

static void calibrate(worker *w)
{
    int64_t s = 0, m0 = ts_mono_ms();
    if (fl_store_now(w->st, &s) != FL_OK)
        return;
    int64_t m1 = ts_mono_ms();
    logline(w->fd, 'C', 3, (int64_t[]){m0, m1, s});
    w->last_cal = m1;
}

/* Sleep ms, but not past the end of the run. */
static void nap(const worker *w, int64_t ms)
{
    int64_t left = w->r->end - ts_mono_ms();
    ts_sleep_ms(ms < left ? ms : left);
}

static void pick(worker *w, int64_t *pidx, char *prov, size_t plen, fl_mode *mode, int64_t *ttl,
                 int64_t *wait)
{
    const opts *o = w->r->o;
    int64_t epoch = (ts_mono_ms() - w->r->t0) / o->epoch_ms;
    *pidx = epoch * o->providers + (int64_t)(rnd(&w->seed) % (uint32_t)o->providers);
    provider_name(prov, plen, w->r->prefix, o->providers, *pidx);
    *mode = (int)(rnd(&w->seed) % 100) < o->shared_pct ? FL_SHARED : FL_EXCLUSIVE;
    *ttl = 1000 + rnd(&w->seed) % 2001;
    *wait = rnd(&w->seed) % 100 < 40 ? 0 : rnd(&w->seed) % 2001;
}

static void stale_ops(worker *w)
{
    /* The abandoned lease lapsed on the store's clock by now (ttl <= 3 s):
     * a renew and a release with its token must both fail. */
    fl_lease l;
    int64_t m0 = ts_mono_ms();
    int rc = fl_heartbeat(w->st, w->stale_token, &l);
    int64_t m1 = ts_mono_ms();
    logline(w->fd, 'b', 8,
            (int64_t[]){w->stale_pidx, w->stale_fence, tok_hash(w->stale_token), m0, m1, rc,
                        rc == FL_OK ? l.heartbeat_at_ms : NONE,
                        rc == FL_OK ? l.expires_at_ms : NONE});
    m0 = ts_mono_ms();
    rc = fl_release(w->st, w->stale_token);
    m1 = ts_mono_ms();
    logline(w->fd, 'r', 6,
            (int64_t[]){w->stale_pidx, w->stale_fence, tok_hash(w->stale_token), m0, m1, rc});
    w->stale_token[0] = '\0';
}

static void plain_cycle(worker *w)
{
    int64_t pidx, ttl, wait;
    fl_mode mode;
    char prov[FL_PROVIDER_MAX + 1];
    pick(w, &pidx, prov, sizeof prov, &mode, &ttl, &wait);

    fl_lease l;
    memset(&l, 0, sizeof l);
    int64_t m0 = ts_mono_ms();
    int rc = fl_acquire(w->st, prov, w->holder, "stress", mode, ttl, wait, &l, NULL);
    int64_t m1 = ts_mono_ms();
    int ok = rc == FL_OK;
    logline(w->fd, 'A', 11,
            (int64_t[]){pidx, ok ? l.fence : NONE, ok ? tok_hash(l.token) : NONE, m0, m1, rc,
                        mode, ttl, wait, ok ? l.acquired_at_ms : NONE,
                        ok ? l.expires_at_ms : NONE});
    if (!ok) {
        if (rc != FL_ECONFLICT)
            nap(w, 20 + rnd(&w->seed) % 100);
        return;
    }
    slot *me = &w->r->slots[w->slot];
    atomic_store(&me->ttl_ms, (int)ttl);
    atomic_store(&me->holding, 1);

    uint32_t style = rnd(&w->seed) % 100;
    /* Mostly brief holds, so that grants are many and contended; some
     * renewed past their ttl; a few abandoned to lapse. */
    int abandon = style < 6, renew = style >= 6 && style < 21;
    int64_t hold = renew ? ttl / 2 + (int64_t)(rnd(&w->seed) % (uint32_t)(3 * ttl / 2))
                         : (int64_t)(rnd(&w->seed) % 200);
    int64_t until = ts_mono_ms() + hold;
    int lost = 0;
    while (!lost && ts_mono_ms() < until && ts_mono_ms() < w->r->end) {
        int64_t left = until - ts_mono_ms();
        nap(w, renew && left > ttl / 3 ? ttl / 3 : left);
        if (!renew || ts_mono_ms() >= until)
            break;
        fl_lease nl;
        m0 = ts_mono_ms();
        rc = fl_heartbeat(w->st, l.token, &nl);
        m1 = ts_mono_ms();
        logline(w->fd, 'B', 8,
                (int64_t[]){pidx, l.fence, tok_hash(l.token), m0, m1, rc,
                            rc == FL_OK ? nl.heartbeat_at_ms : NONE,
                            rc == FL_OK ? nl.expires_at_ms : NONE});
        if (rc == FL_OK)
            l = nl;
        else if (rc == FL_EEXPIRED || rc == FL_ENOTFOUND)
            lost = 1;
    }
    if (abandon && w->stale_token[0] == '\0') {
        snprintf(w->stale_token, sizeof w->stale_token, "%s", l.token);
        w->stale_pidx = pidx;
        w->stale_fence = l.fence;
        w->stale_at = ts_mono_ms() + ttl + 300;
    } else if (!lost) {
        m0 = ts_mono_ms();
        rc = fl_release(w->st, l.token);
        m1 = ts_mono_ms();
        logline(w->fd, 'R', 6, (int64_t[]){pidx, l.fence, tok_hash(l.token), m0, m1, rc});
    }
    atomic_store(&me->holding, 0);
}

typedef struct lost_info {
    atomic_llong at; /* CLOCK_MONOTONIC ms of on_lost, or NONE */
    atomic_int code;
} lost_info;

static void on_lost(fl_grant *g, int code, const char *why, void *arg)
{
    /* Runs on the grant's thread: only record (fleetlease.h). */
    (void)g;
    (void)why;
    lost_info *li = arg;
    atomic_store(&li->at, (long long)ts_mono_ms());
    atomic_store(&li->code, code);
}

static void grant_cycle(worker *w)
{
    int64_t pidx, ttl, wait;
    fl_mode mode;
    char prov[FL_PROVIDER_MAX + 1], err[FL_MESSAGE_MAX];
    pick(w, &pidx, prov, sizeof prov, &mode, &ttl, &wait);

    lost_info li;
    atomic_init(&li.at, NONE);
    atomic_init(&li.code, 0);
    fl_grant_opts go = {.url = w->r->o->url, .provider = prov, .holder = w->holder,
                        .purpose = "stress-grant", .mode = mode, .ttl_ms = ttl,
                        .wait_ms = wait, .on_lost = on_lost, .arg = &li};
    fl_grant *g = NULL;
    int64_t m0 = ts_mono_ms();
    int rc = fl_grant_acquire(&go, &g, NULL, err, sizeof err);
    int64_t m1 = ts_mono_ms();
    fl_lease l;
    memset(&l, 0, sizeof l);
    int64_t deadline = NONE;
    if (rc == FL_OK) {
        fl_grant_lease(g, &l);
        int64_t left = fl_grant_time_left(g);
        deadline = ts_mono_ms() + left;
    }
    int ok = rc == FL_OK;
    logline(w->fd, 'G', 12,
            (int64_t[]){pidx, ok ? l.fence : NONE, ok ? tok_hash(l.token) : NONE, m0, m1, rc,
                        mode, ttl, wait, ok ? l.acquired_at_ms : NONE,
                        ok ? l.expires_at_ms : NONE, deadline});
    if (!ok) {
        if (rc != FL_ECONFLICT)
            nap(w, 20 + rnd(&w->seed) % 100);
        return;
    }
    slot *me = &w->r->slots[w->slot];
    atomic_store(&me->ttl_ms, (int)ttl);
    atomic_store(&me->holding, 1);

    /* Long holds outlive several renews, and faults (a frozen holder, a
     * store that went down) make some of them lose the grant. */
    int64_t hold = rnd(&w->seed) % 100 < 30 ? ttl + (int64_t)(rnd(&w->seed) % (uint32_t)ttl)
                                            : (int64_t)(rnd(&w->seed) % 300);
    int64_t until = ts_mono_ms() + hold, last_step = NONE, step_deadline = NONE, stopped = NONE;
    int64_t steps = 0;
    for (;;) {
        /* The step's instant is read BEFORE asking: a holder frozen between
         * the two reads is told "lost" and takes no step. */
        int64_t t = ts_mono_ms();
        int lost = fl_grant_lost(g);
        int64_t left = fl_grant_time_left(g);
        int64_t t2 = ts_mono_ms();
        if (lost != 0 || left <= 0) {
            stopped = ts_mono_ms();
            break;
        }
        last_step = t;
        step_deadline = t2 + left;
        steps++;
        if (t >= until || t >= w->r->end)
            break;
        ts_sleep_ms(STEP_MS);
    }
    fl_lease last;
    fl_grant_lease(g, &last);
    int lost_code = fl_grant_lost(g);
    rc = fl_grant_release(g);
    logline(w->fd, 'E', 11,
            (int64_t[]){pidx, l.fence, tok_hash(l.token), last_step, stopped, rc, lost_code,
                        (int64_t)atomic_load(&li.at), step_deadline, steps, last.expires_at_ms});
    atomic_store(&me->holding, 0);
}

static int worker_main(const run *r, int slot_idx, int gen, int grant)
{
    worker w = {.r = r, .slot = slot_idx, .gen = gen, .grant = grant};
    char path[700];
    snprintf(path, sizeof path, "%s/w%03d-%03d.log", r->o->log_dir, slot_idx, gen);
    w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        perror(path);
        return 3;
    }
    w.seed = ((uint64_t)getpid() << 32) ^ (uint64_t)ts_mono_ms() ^ 0x9e3779b97f4a7c15ULL;
    snprintf(w.holder, sizeof w.holder, "w%d.%d", slot_idx, gen);
    logline(w.fd, 'H', 4, (int64_t[]){slot_idx, gen, getpid(), grant});

    /* The store may be down (PostgreSQL fault) when a worker is (re)born. */
    while (ts_mono_ms() < r->end) {
        int rc = fl_open(r->o->url, &w.st);
        if (rc == FL_OK)
            break;
        fl_close(w.st);
        w.st = NULL;
        if (rc != FL_EUNAVAIL) {
            fprintf(stderr, "flstress: worker %s: open: %s\n", w.holder, fl_strerror(rc));
            return 3;
        }
        ts_sleep_ms(200);
    }
    while (w.st != NULL && ts_mono_ms() < r->end) {
        if (ts_mono_ms() - w.last_cal > 1000)
            calibrate(&w);
        if (w.stale_token[0] && ts_mono_ms() >= w.stale_at)
            stale_ops(&w);
        if (grant)
            grant_cycle(&w);
        else
            plain_cycle(&w);
        nap(&w, rnd(&w.seed) % 20);
    }
    if (w.st != NULL)
        calibrate(&w);
    fl_close(w.st);
    close(w.fd);
    return 0;
}

/* ---- the parent: workers and faults ------------------------------------ */

typedef struct proc {
    pid_t pid;
    int gen;
    int64_t cont_at; /* frozen until then; 0: running */
} proc;

static pid_t spawn(const run *r, int slot_idx, int gen)
{
    int grant = slot_idx * 100 < r->o->procs * r->o->grant_pct;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("flstress: fork");
        return -1;
    }
    if (pid == 0)
        _exit(worker_main(r, slot_idx, gen, grant));
    return pid;
}

/* Run tests/pg-server.sh CMD DIR; its output goes to DIR-of-logs/pg.log. */
static int pg_script(const opts *o, const char *cmd)
{
    char logp[700];
    snprintf(logp, sizeof logp, "%s/pg.log", o->log_dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execlp("bash", "bash", o->pg_script, cmd, o->pg_dir, (char *)NULL);
        _exit(127);
    }
    return ts_wait(pid);
}

static void parent_calibrate(int fd, fl_store *st)
{
    int64_t s = 0, m0 = ts_mono_ms();
    if (st != NULL && fl_store_now(st, &s) == FL_OK)
        logline(fd, 'C', 3, (int64_t[]){m0, ts_mono_ms(), s});
}

static int pick_holder(const run *r, const proc *ps, uint64_t *seed)
{
    int cand[MAX_PROCS], n = 0;
    for (int i = 0; i < r->o->procs; i++)
        if (ps[i].pid > 0 && ps[i].cont_at == 0 && atomic_load(&r->slots[i].holding))
            cand[n++] = i;
    return n ? cand[rnd(seed) % (uint32_t)n] : -1;
}

typedef struct fault_counts {
    long kills, stops, restarts, downs, failed;
} fault_counts;

static int run_workload(run *r, fault_counts *fc)
{
    const opts *o = r->o;
    char path[700];
    snprintf(path, sizeof path, "%s/faults.log", o->log_dir);
    int ffd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (ffd < 0) {
        perror(path);
        return 2;
    }
    fl_store *st = NULL;
    if (fl_open(o->url, &st) != FL_OK) {
        fprintf(stderr, "flstress: cannot open %s: %s\n", o->url, st ? fl_errmsg(st) : "");
        fl_close(st);
        close(ffd);
        return 2;
    }
    parent_calibrate(ffd, st);

    static proc ps[MAX_PROCS];
    memset(ps, 0, sizeof ps);
    for (int i = 0; i < o->procs; i++)
        ps[i].pid = spawn(r, i, 0);
    uint64_t seed = ((uint64_t)getpid() << 17) ^ (uint64_t)ts_mono_ms();
    int64_t now = ts_mono_ms();
    int64_t next_kill = now + 1000 + rnd(&seed) % 2000, next_stop = now + 1000 + rnd(&seed) % 2000;
    int64_t next_pg = now + o->pg_every_ms / 2, pg_up_at = 0, pg_down_from = 0;
    int pg_turn = 0;

    while ((now = ts_mono_ms()) < r->end) {
        for (int i = 0; i < o->procs; i++) {
            if (ps[i].cont_at != 0 && now >= ps[i].cont_at) {
                kill(ps[i].pid, SIGCONT);
                logline(ffd, 'T', 2, (int64_t[]){ps[i].pid, ts_mono_ms()});
                ps[i].cont_at = 0;
            }
        }
        if ((o->faults & F_KILL) && now >= next_kill) {
            int i = pick_holder(r, ps, &seed);
            if (i >= 0) {
                kill(ps[i].pid, SIGKILL);
                logline(ffd, 'K', 2, (int64_t[]){ps[i].pid, ts_mono_ms()});
                ts_wait(ps[i].pid);
                atomic_store(&r->slots[i].holding, 0);
                ps[i].gen++;
                ps[i].pid = spawn(r, i, ps[i].gen);
                fc->kills++;
            }
            next_kill = now + 1000 + rnd(&seed) % 2000;
        }
        if ((o->faults & F_STOP) && now >= next_stop) {
            int i = pick_holder(r, ps, &seed);
            if (i >= 0) {
                int ttl = atomic_load(&r->slots[i].ttl_ms);
                kill(ps[i].pid, SIGSTOP);
                logline(ffd, 'S', 2, (int64_t[]){ps[i].pid, ts_mono_ms()});
                ps[i].cont_at = now + ttl + 300 + rnd(&seed) % 1200;
                fc->stops++;
            }
            next_stop = now + 1000 + rnd(&seed) % 2000;
        }
        if ((o->faults & F_PG) && pg_up_at != 0 && now >= pg_up_at) {
            pg_script(o, "restart");
            logline(ffd, 'D', 2, (int64_t[]){pg_down_from, ts_mono_ms()});
            pg_up_at = 0;
            next_pg = ts_mono_ms() + o->pg_every_ms;
        } else if ((o->faults & F_PG) && pg_up_at == 0 && now >= next_pg) {
            pg_down_from = ts_mono_ms();
            if (pg_turn++ % 2 == 0) {
                int rc = pg_script(o, "restart");
                logline(ffd, 'D', 2, (int64_t[]){pg_down_from, ts_mono_ms()});
                fc->restarts++;
                if (rc != 0)
                    fprintf(stderr, "flstress: pg-server.sh restart exited %d\n", rc);
                next_pg = ts_mono_ms() + o->pg_every_ms;
            } else {
                pg_script(o, "kill");
                pg_up_at = ts_mono_ms() + 2000 + rnd(&seed) % 3000;
                fc->downs++;
            }
        }
        /* A worker that exits before the end has failed (they loop until it). */
        int status;
        pid_t dead;
        while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < o->procs; i++) {
                if (ps[i].pid == dead) {
                    fprintf(stderr, "flstress: worker %d.%d (pid %d) ended early, status %d\n", i,
                            ps[i].gen, (int)dead, status);
                    fc->failed++;
                    ps[i].pid = 0;
                }
            }
        }
        ts_sleep_ms(20);
    }
    for (int i = 0; i < o->procs; i++) {
        if (ps[i].cont_at != 0) {
            kill(ps[i].pid, SIGCONT);
            logline(ffd, 'T', 2, (int64_t[]){ps[i].pid, ts_mono_ms()});
            ps[i].cont_at = 0;
        }
    }
    if (pg_up_at != 0) {
        pg_script(o, "restart");
        logline(ffd, 'D', 2, (int64_t[]){pg_down_from, ts_mono_ms()});
    }
    /* Workers finish their current call (waits <= 3 s, holds end at the
     * end of the run); one still there 30 s later is hung. */
    int64_t give_up = ts_mono_ms() + 30000;
    for (int i = 0; i < o->procs; i++) {
        if (ps[i].pid <= 0)
            continue;
        int status = 0;
        pid_t w;
        while ((w = waitpid(ps[i].pid, &status, WNOHANG)) == 0 && ts_mono_ms() < give_up)
            ts_sleep_ms(20);
        if (w == 0) {
            fprintf(stderr, "flstress: worker %d.%d (pid %d) hung at the end: killed\n", i,
                    ps[i].gen, (int)ps[i].pid);
            kill(ps[i].pid, SIGKILL);
            ts_wait(ps[i].pid);
            fc->failed++;
        } else if (w > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            fprintf(stderr, "flstress: worker %d.%d (pid %d) failed, status %d\n", i, ps[i].gen,
                    (int)ps[i].pid, status);
            fc->failed++;
        }
    }
    fl_close(st);
    st = NULL;
    if (fl_open(o->url, &st) == FL_OK)
        parent_calibrate(ffd, st);
    fl_close(st);
    char counts[256];
    int len = snprintf(counts, sizeof counts, "# kills %ld stops %ld restarts %ld downs %ld failed %ld\n",
                       fc->kills, fc->stops, fc->restarts, fc->downs, fc->failed);
    ts_write_all(ffd, counts, (size_t)len);
    close(ffd);
    return 0;
}

/* ---- the checker: reading the logs ------------------------------------- */

enum { V_PIDX, V_FENCE, V_TOK, V_M0, V_M1, V_RC, V_X };
/* A/G: V_X+0 mode, +1 ttl, +2 wait, +3 acquired_at, +4 expires_at, +5 deadline (G)
 * B:   V_X+0 heartbeat_at, +1 expires_at
 * E:   V_M0 last step, V_M1 stopped, V_RC release rc, V_X+0 lost code,
 *      +1 lost at, +2 deadline at the last step, +3 steps, +4 last expiry */
#define NV 14

typedef struct op {
    char kind;
    int w; /* index into wlog[] */
    int64_t v[NV];
} op;

typedef struct cal {
    int64_t m0, m1, s;
} cal;

typedef struct wlog {
    int slot, gen, grant;
    pid_t pid;
    char holder[32];
    cal *cals;
    size_t ncal, capcal;
} wlog;

typedef struct win {
    int64_t a, b;
} win;

typedef struct winlist {
    win *w;
    size_t n, cap;
} winlist;

typedef struct freeze {
    pid_t pid;
    int64_t a, b; /* frozen [a,b); killed: b = INT64_MAX */
} freeze;

typedef struct hist {
    op *ops;
    size_t nops, capops;
    wlog *w;
    size_t nw, capw;
    winlist unavail; /* store unavailable, CLOCK_MONOTONIC */
    freeze *fz;
    size_t nfz, capfz;
    cal pcal[2]; /* the parent's clock samples: offsets for exemptions */
    size_t npcal;
    char prefix[64];
    int providers;
    int64_t epoch_ms, epochs;
} hist;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    size_t nc = *cap ? *cap * 2 : 256;
    void *q = realloc(p, nc * size);
    if (q == NULL) {
        fprintf(stderr, "flstress: out of memory\n");
        exit(2);
    }
    *cap = nc;
    return q;
}

static void win_add(winlist *l, int64_t a, int64_t b)
{
    l->w = grow(l->w, &l->cap, l->n, sizeof *l->w);
    l->w[l->n++] = (win){a, b};
}

static int cmp_win(const void *x, const void *y)
{
    const win *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a;
}

static void win_merge(winlist *l)
{
    if (l->n == 0)
        return;
    qsort(l->w, l->n, sizeof *l->w, cmp_win);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (k > 0 && l->w[i].a <= l->w[k - 1].b) {
            if (l->w[i].b > l->w[k - 1].b)
                l->w[k - 1].b = l->w[i].b;
        } else {
            l->w[k++] = l->w[i];
        }
    }
    l->n = k;
}

static int win_meets(const winlist *l, int64_t a, int64_t b)
{
    /* first window with start >= b, then look back one: merged, so only
     * the window just before can reach into [a, b). */
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->w[mid].a < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && l->w[lo - 1].b > a;
}

static int parse_line(const char *line, char *kind, int64_t *v, int max)
{
    *kind = line[0];
    const char *p = line + 1;
    int n = 0;
    while (n < max && *p == '\t') {
        char *end;
        errno = 0;
        long long x = strtoll(p + 1, &end, 10);
        if (errno != 0 || end == p + 1)
            return -1;
        v[n++] = x;
        p = end;
    }
    return (*p == '\n' || *p == '\0') ? n : -1;
}

static int read_meta(hist *h, const char *dir)
{
    char path[700], line[256];
    snprintf(path, sizeof path, "%s/meta", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "flstress: %s: %s (not a flstress log directory?)\n", path,
                strerror(errno));
        return -1;
    }
    long long x;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "prefix %63s", h->prefix) == 1)
            continue;
        if (sscanf(line, "providers %lld", &x) == 1)
            h->providers = (int)x;
        else if (sscanf(line, "epoch_ms %lld", &x) == 1)
            h->epoch_ms = x;
        else if (sscanf(line, "epochs %lld", &x) == 1)
            h->epochs = x;
    }
    fclose(f);
    if (h->prefix[0] == '\0' || h->providers < 1 || h->providers > MAX_PROVIDERS ||
        h->epochs < 1) {
        fprintf(stderr, "flstress: %s: incomplete\n", path);
        return -1;
    }
    return 0;
}

static int read_worker_log(hist *h, const char *path, long *bad)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[1024], kind;
    int64_t v[NV];
    int w = -1;
    while (fgets(line, sizeof line, f)) {
        memset(v, 0, sizeof v);
        int n = parse_line(line, &kind, v, NV);
        if (n < 0) {
            (*bad)++; /* cannot happen with one write per line; say so if it does */
            continue;
        }
        if (kind == 'H' && n == 4 && w < 0) {
            h->w = grow(h->w, &h->capw, h->nw, sizeof *h->w);
            w = (int)h->nw++;
            h->w[w] = (wlog){.slot = (int)v[0], .gen = (int)v[1], .pid = (pid_t)v[2],
                             .grant = (int)v[3]};
            snprintf(h->w[w].holder, sizeof h->w[w].holder, "w%d.%d", (int)v[0], (int)v[1]);
        } else if (w < 0) {
            (*bad)++;
        } else if (kind == 'C' && n == 3) {
            wlog *wl = &h->w[w];
            wl->cals = grow(wl->cals, &wl->capcal, wl->ncal, sizeof *wl->cals);
            wl->cals[wl->ncal++] = (cal){v[0], v[1], v[2]};
        } else if ((kind == 'A' && n == 11) || (kind == 'G' && n == 12) ||
                   (kind == 'B' && n == 8) || (kind == 'R' && n == 6) ||
                   (kind == 'b' && n == 8) || (kind == 'r' && n == 6) ||
                   (kind == 'E' && n == 11)) {
            h->ops = grow(h->ops, &h->capops, h->nops, sizeof *h->ops);
            op *o = &h->ops[h->nops++];
            o->kind = kind;
            o->w = w;
            memcpy(o->v, v, sizeof v);
            if (kind != 'E' && o->v[V_RC] == FL_EUNAVAIL)
                win_add(&h->unavail, o->v[V_M0], o->v[V_M1]);
        } else {
            (*bad)++;
        }
    }
    fclose(f);
    return 0;
}

static int read_logs(hist *h, const char *dir, fault_counts *fc, long *bad)
{
    if (read_meta(h, dir) != 0)
        return -1;
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != 'w' || len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        read_worker_log(h, path, bad);
    }
    closedir(d);

    snprintf(path, sizeof path, "%s/faults.log", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char line[256], kind;
    int64_t v[4];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            sscanf(line, "# kills %ld stops %ld restarts %ld downs %ld failed %ld", &fc->kills,
                   &fc->stops, &fc->restarts, &fc->downs, &fc->failed);
            continue;
        }
        int n = parse_line(line, &kind, v, 4);
        if (kind == 'D' && n == 2) {
            win_add(&h->unavail, v[0], v[1]);
        } else if (kind == 'C' && n == 3) {
            if (h->npcal < 2)
                h->pcal[h->npcal++] = (cal){v[0], v[1], v[2]};
        } else if ((kind == 'S' || kind == 'K') && n == 2) {
            h->fz = grow(h->fz, &h->capfz, h->nfz, sizeof *h->fz);
            h->fz[h->nfz++] = (freeze){(pid_t)v[0], v[1], kind == 'K' ? INT64_MAX : NONE};
        } else if (kind == 'T' && n == 2) {
            for (size_t i = h->nfz; i-- > 0;) {
                if (h->fz[i].pid == (pid_t)v[0] && h->fz[i].b == NONE) {
                    h->fz[i].b = v[1];
                    break;
                }
            }
        } else {
            (*bad)++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < h->nfz; i++)
        if (h->fz[i].b == NONE)
            h->fz[i].b = INT64_MAX; /* never continued: as if killed */
    win_merge(&h->unavail);
    return 0;
}

/* ---- the checker: clocks and exemptions -------------------------------- */

/*
 * Bounds of the store's clock at monotonic t, as worker w saw it.  Every
 * sample gives an upper bound s - m0 and a lower bound s - m1 of the offset
 * (store - monotonic); the tightest over the samples within a minute of t
 * is used (a minute: the two clocks may drift apart while NTP slews the
 * wall clock).  A worker without samples borrows the parent's.
 */
static int offsets(const hist *h, const wlog *w, int64_t t, int64_t *hi, int64_t *lo)
{
    const cal *c = w->cals;
    size_t n = w->ncal;
    if (n == 0) {
        c = h->pcal;
        n = h->npcal;
    }
    int found = 0;
    const cal *nearest = NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t d = c[i].m0 > t ? c[i].m0 - t : t - c[i].m0;
        if (nearest == NULL || d < (nearest->m0 > t ? nearest->m0 - t : t - nearest->m0))
            nearest = &c[i];
        if (d > 60000)
            continue;
        if (!found || c[i].s - c[i].m0 < *hi)
            *hi = c[i].s - c[i].m0;
        if (!found || c[i].s - c[i].m1 > *lo)
            *lo = c[i].s - c[i].m1;
        found = 1;
    }
    if (!found && nearest != NULL) {
        *hi = nearest->s - nearest->m0;
        *lo = nearest->s - nearest->m1;
        found = 1;
    }
    return found ? 0 : -1;
}

static int store_hi(const hist *h, const wlog *w, int64_t t, int64_t *s)
{
    int64_t hi, lo;
    if (offsets(h, w, t, &hi, &lo) != 0)
        return -1;
    *s = t + hi;
    return 0;
}

static int store_lo(const hist *h, const wlog *w, int64_t t, int64_t *s)
{
    int64_t hi, lo;
    if (offsets(h, w, t, &hi, &lo) != 0)
        return -1;
    *s = t + lo;
    return 0;
}

/* Store time -> monotonic, roughly (for exemptions, which add margins). */
static int64_t to_mono(const hist *h, int64_t s)
{
    if (h->npcal == 0)
        return s;
    return h->pcal[0].m0 + (s - h->pcal[0].s);
}

static int pid_impaired(const hist *h, pid_t pid, int64_t a, int64_t b)
{
    for (size_t i = 0; i < h->nfz; i++)
        if (h->fz[i].pid == pid && hs_meet(h->fz[i].a, h->fz[i].b, a, b))
            return 1;
    return 0;
}

/* Frozen time of pid within [a, b). */
static int64_t frozen_ms(const hist *h, pid_t pid, int64_t a, int64_t b)
{
    int64_t sum = 0;
    for (size_t i = 0; i < h->nfz; i++) {
        if (h->fz[i].pid != pid || !hs_meet(h->fz[i].a, h->fz[i].b, a, b))
            continue;
        int64_t x = h->fz[i].a > a ? h->fz[i].a : a;
        int64_t y = h->fz[i].b < b ? h->fz[i].b : b;
        sum += y - x;
    }
    return sum;
}

static int store_unavailable(const hist *h, int64_t sa, int64_t sb)
{
    return win_meets(&h->unavail, to_mono(h, sa) - UNAVAIL_MARGIN_MS, to_mono(h, sb) + 1000);
}

/* ---- the checker: per provider ----------------------------------------- */

typedef struct stats {
    long ops, events, grants, exclusive, renews, releases, stale_tries, lapses, lapses_waiter, intents, promoted, gave_up, grant_holds, grant_lost, steps, skipped;
    int64_t max_regrant, max_promote, max_late, min_margin;
} stats;

typedef struct intent {
    const char *holder;
    int64_t start, end;
    int term; /* 0 open, 1 promoted, 2 gave up, 3 lapsed, 4 superseded */
    int64_t grant_fence;
} intent;

static int cmp_op_pidx(const void *a, const void *b)
{
    const op *x = a, *y = b;
    if (x->v[V_PIDX] != y->v[V_PIDX])
        return x->v[V_PIDX] < y->v[V_PIDX] ? -1 : 1;
    return x->v[V_M0] < y->v[V_M0] ? -1 : x->v[V_M0] > y->v[V_M0];
}

static const wlog *holder_log(const hist *h, const char *holder)
{
    for (size_t i = 0; i < h->nw; i++)
        if (strcmp(h->w[i].holder, holder) == 0)
            return &h->w[i];
    return NULL;
}

/* Is some worker certainly inside an acquire on this provider throughout
 * [sa, sb] of the store's clock?  Returns its log, or NULL. */
static const wlog *waiter(const hist *h, const op *ops, size_t n, int64_t sa, int64_t sb)
{
    for (size_t i = 0; i < n; i++) {
        const op *o = &ops[i];
        if ((o->kind != 'A' && o->kind != 'G') ||
            (o->v[V_RC] != FL_OK && o->v[V_RC] != FL_ECONFLICT))
            continue;
        const wlog *w = &h->w[o->w];
        int64_t a, b;
        if (store_hi(h, w, o->v[V_M0], &a) != 0 || store_lo(h, w, o->v[V_M1], &b) != 0)
            continue;
        if (a <= sa && b >= sb && !pid_impaired(h, w->pid, to_mono(h, sa) - 1000, to_mono(h, sb)))
            return w;
    }
    return NULL;
}

static int cmp_grant_start(const void *a, const void *b)
{
    const hs_grant *x = *(const hs_grant *const *)a, *y = *(const hs_grant *const *)b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void check_regrant(const hist *h, const opts *o, const char *p, const hs_set *s,
                          const op *ops, size_t nops, const intent *in, size_t nin, hs_tally *t,
                          stats *st)
{
    if (s->n == 0)
        return;
    const hs_grant **by = calloc(s->n, sizeof *by);
    if (by == NULL)
        exit(2);
    for (size_t i = 0; i < s->n; i++)
        by[i] = &s->g[i];
    qsort(by, s->n, sizeof *by, cmp_grant_start);
    int64_t cur_end = by[0]->end;
    int lapsed = !by[0]->released;
    for (size_t i = 1; i <= s->n; i++) {
        int64_t next = i < s->n ? by[i]->start : INT64_MAX;
        if (next >= cur_end && lapsed) {
            /* The provider is free from cur_end: a lapse with nothing live.
             * Judged only when a worker certainly waited from F until the
             * next grant or F + bound, whichever is first; the next grant
             * must then come within the bound. */
            int64_t F = cur_end, lat = next - F;
            const wlog *w = waiter(h, ops, nops, F, lat < o->bound_ms ? next : F + o->bound_ms);
            st->lapses++;
            if (w != NULL && lat <= o->bound_ms) {
                st->lapses_waiter++;
                if (lat > st->max_regrant)
                    st->max_regrant = lat;
            } else if (w != NULL) {
                int blocked = 0;
                for (size_t k = 0; k < nin; k++) /* someone else's intent that nobody refreshes */
                    if (in[k].start <= F && (in[k].end > F || in[k].term == 0) &&
                        strcmp(in[k].holder, w->holder) != 0)
                        blocked = 1;
                if (blocked || store_unavailable(h, F, F + o->bound_ms)) {
                    st->skipped++;
                } else {
                    st->lapses_waiter++;
                    char after[64];
                    if (next == INT64_MAX)
                        snprintf(after, sizeof after, "no grant followed");
                    else
                        snprintf(after, sizeof after, "next grant %lld ms later", (long long)lat);
                    hs_violation(t, HS_LIVENESS, "%s: free after a lapse at %lld while %s waited; %s",
                                 p, (long long)F, w->holder, after);
                }
            }
        }
        if (i == s->n)
            break;
        if (by[i]->end > cur_end) {
            cur_end = by[i]->end;
            lapsed = !by[i]->released;
        }
    }
    free(by);
}

/* Pending intents from the history (fence 0 events by the waiter's name),
 * the draining rule, and the starvation rule. */
static size_t build_intents(const fl_event *ev, size_t n, const char *p, hs_tally *t,
                            intent **out, stats *st)
{
    size_t cap = 16, k = 0;
    intent *in = calloc(cap, sizeof *in);
    if (in == NULL)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        const fl_event *e = &ev[i];
        int is_pending = strcmp(e->event, "pending") == 0;
        int is_granted = strcmp(e->event, "granted") == 0;
        int is_refused = strcmp(e->event, "refused") == 0;
        int is_lapse = strcmp(e->event, "expired") == 0 && e->fence == 0;
        if (is_granted && e->mode == FL_SHARED) {
            for (size_t j = 0; j < k; j++)
                if (in[j].term == 0 && in[j].start <= e->at_ms)
                    hs_violation(t, HS_DRAIN,
                                 "%s: shared fence %lld granted to %s at %lld while %s's "
                                 "exclusive intent (since %lld) was pending",
                                 p, (long long)e->fence, e->holder, (long long)e->at_ms,
                                 in[j].holder, (long long)in[j].start);
        }
        if (!(is_pending || is_granted || is_refused || is_lapse))
            continue;
        /* close this holder's open intent */
        for (size_t j = 0; j < k; j++) {
            if (in[j].term != 0 || strcmp(in[j].holder, e->holder) != 0)
                continue;
            if (is_granted && e->mode == FL_EXCLUSIVE) {
                in[j].term = 1;
                in[j].end = e->at_ms;
                in[j].grant_fence = e->fence;
            } else if (is_refused) {
                in[j].term = 2;
                in[j].end = e->at_ms;
            } else if (is_lapse) {
                in[j].term = 3;
                in[j].end = e->expires_at_ms;
            } else if (is_pending) {
                in[j].term = 4;
                in[j].end = e->at_ms;
            }
        }
        if (is_pending) {
            if (k == cap) {
                cap *= 2;
                intent *q = realloc(in, cap * sizeof *in);
                if (q == NULL)
                    exit(2);
                in = q;
            }
            in[k++] = (intent){.holder = e->holder, .start = e->at_ms, .end = INT64_MAX};
            st->intents++;
        }
    }
    *out = in;
    return k;
}

static void check_starvation(const hist *h, const opts *o, const char *p, const hs_set *s,
                             const intent *in, size_t nin, hs_tally *t, stats *st)
{
    for (size_t k = 0; k < nin; k++) {
        const intent *I = &in[k];
        if (I->term != 1 && I->term != 2)
            continue;
        st->promoted += I->term == 1;
        st->gave_up += I->term == 2;
        /* When did the last holder that the intent waited for leave? */
        int64_t free_at = I->start;
        for (size_t i = 0; i < s->n; i++) {
            const hs_grant *g = &s->g[i];
            if (I->term == 1 && g->fence == I->grant_fence)
                continue;
            if (g->start < I->end && g->end > I->start && g->end > free_at)
                free_at = g->end;
        }
        if (free_at >= I->end)
            continue;
        int64_t lat = I->end - free_at;
        if (I->term == 1 && lat > st->max_promote)
            st->max_promote = lat;
        if (lat <= o->bound_ms)
            continue;
        const wlog *w = holder_log(h, I->holder);
        if (w == NULL || pid_impaired(h, w->pid, to_mono(h, free_at) - 1000, to_mono(h, I->end)) ||
            store_unavailable(h, free_at, I->end)) {
            st->skipped++;
            continue;
        }
        hs_violation(t, HS_STARVE,
                     "%s: %s's exclusive intent: host free from %lld, but %s at %lld (%lld ms)", p,
                     I->holder, (long long)free_at, I->term == 1 ? "granted" : "gave up",
                     (long long)I->end, (long long)lat);
    }
}

typedef struct renew_ev {
    int64_t fence, exp;
} renew_ev;

static int cmp_renew(const void *a, const void *b)
{
    const renew_ev *x = a, *y = b;
    if (x->fence != y->fence)
        return x->fence < y->fence ? -1 : 1;
    return x->exp < y->exp ? -1 : x->exp > y->exp;
}

static int has_renew(const renew_ev *r, size_t n, int64_t fence, int64_t exp)
{
    renew_ev key = {fence, exp};
    return bsearch(&key, r, n, sizeof *r, cmp_renew) != NULL;
}

static void check_ops(const hist *h, const char *p, const hs_set *s, const fl_event *ev, size_t nev,
                      const op *ops, size_t nops, hs_tally *t, stats *st)
{
    renew_ev *rn = calloc(nev ? nev : 1, sizeof *rn);
    unsigned char *claimed = calloc(s->n ? s->n : 1, 1);
    if (rn == NULL || claimed == NULL)
        exit(2);
    size_t nr = 0;
    for (size_t i = 0; i < nev; i++)
        if (strcmp(ev[i].event, "renewed") == 0)
            rn[nr++] = (renew_ev){ev[i].fence, ev[i].expires_at_ms};
    if (nr > 0)
        qsort(rn, nr, sizeof *rn, cmp_renew);

    for (size_t i = 0; i < nops; i++) {
        const op *o = &ops[i];
        const wlog *w = &h->w[o->w];
        int64_t fence = o->v[V_FENCE], rc = o->v[V_RC];
        hs_grant *g = fence > 0 ? hs_find(s, fence) : NULL;
        switch (o->kind) {
        case 'A':
        case 'G':
            if (rc != FL_OK)
                break;
            if (g == NULL) {
                hs_violation(t, HS_UNKNOWN, "%s: %s was granted fence %lld; the history has no "
                             "such grant", p, w->holder, (long long)fence);
                break;
            }
            if (claimed[g - s->g]++)
                hs_violation(t, HS_FENCE, "%s: fence %lld handed to two workers (%s, ...)", p,
                             (long long)fence, w->holder);
            if (strcmp(g->holder, w->holder) != 0 || g->start != o->v[V_X + 3] ||
                (int64_t)g->mode != o->v[V_X])
                hs_violation(t, HS_UNKNOWN,
                             "%s: fence %lld: %s got a %s grant at %lld; the history says %s "
                             "%s at %lld",
                             p, (long long)fence, w->holder, fl_mode_name((fl_mode)o->v[V_X]),
                             (long long)o->v[V_X + 3], g->holder, fl_mode_name(g->mode),
                             (long long)g->start);
            break;
        case 'B':
            if (rc != FL_OK)
                break;
            st->renews++;
            if (g == NULL || !has_renew(rn, nr, fence, o->v[V_X + 1]))
                hs_violation(t, HS_STALE,
                             "%s: %s renewed fence %lld (to %lld) with success, but the history "
                             "records no such renew",
                             p, w->holder, (long long)fence, (long long)o->v[V_X + 1]);
            break;
        case 'b':
        case 'r':
            /* The worker abandoned this lease (never renewed) and waited
             * ttl + 300 ms: it has lapsed, whatever the store says. */
            st->stale_tries++;
            if (rc == FL_OK)
                hs_violation(t, HS_STALE,
                             "%s: %s's %s with the lapsed token of fence %lld succeeded", p,
                             w->holder, o->kind == 'b' ? "renew" : "release", (long long)fence);
            break;
        case 'R':
            if (rc != FL_OK)
                break;
            st->releases++;
            if (g == NULL || !g->released)
                hs_violation(t, HS_STALE,
                             "%s: %s released fence %lld with success, but the history records "
                             "no release",
                             p, w->holder, (long long)fence);
            break;
        case 'E': {
            st->grant_holds++;
            int64_t last = o->v[V_M0], stopped = o->v[V_M1], lost = o->v[V_X];
            int64_t lost_at = o->v[V_X + 1], dl = o->v[V_X + 2];
            st->steps += o->v[V_X + 3];
            if (g == NULL)
                break; /* reported at 'G' */
            /* A released grant ended after its last step by construction
             * (the worker released it after stepping); a lapsed one is the
             * case that matters: the deadline must come before the lapse. */
            int64_t sh;
            if (!g->released && last != NONE && store_hi(h, w, last, &sh) == 0) {
                /* 2 ms: both clocks are read in whole milliseconds */
                if (sh >= g->end + 2)
                    hs_violation(t, HS_WORK,
                                 "%s: %s worked under fence %lld at store time <= %lld, after "
                                 "the lease ended at %lld",
                                 p, w->holder, (long long)fence, (long long)sh, (long long)g->end);
                if (g->end - sh < st->min_margin)
                    st->min_margin = g->end - sh;
            }
            /* No step after the local deadline: the library must say "lost"
             * (or time_left <= 0) from the deadline on. */
            if (last != NONE && dl != NONE && last > dl)
                hs_violation(t, HS_WORK, "%s: %s stepped at %lld under fence %lld, after its "
                             "local deadline %lld", p, w->holder, (long long)last,
                             (long long)fence, (long long)dl);
            if (lost != 0) {
                st->grant_lost++;
                int64_t late = stopped - dl;
                if (stopped != NONE && dl != NONE && late > 0) {
                    late -= frozen_ms(h, w->pid, dl - STOP_TOLERANCE_MS, stopped);
                    if (late > st->max_late)
                        st->max_late = late;
                    if (late > STOP_TOLERANCE_MS)
                        hs_violation(t, HS_WORK,
                                     "%s: %s lost fence %lld (code %lld, notified at %lld) but "
                                     "stopped at %lld, %lld ms after its local deadline %lld",
                                     p, w->holder, (long long)fence, (long long)lost,
                                     (long long)lost_at, (long long)stopped, (long long)late,
                                     (long long)dl);
                }
            }
            break;
        }
        default:
            break;
        }
    }
    free(rn);
    free(claimed);
}

static const char *store_title(const char *kind)
{
    return strcmp(kind, "sqlite") == 0 ? "SQLite" : strcmp(kind, "postgresql") == 0 ? "PostgreSQL"
                                                                                     : kind;
}

static int check(const opts *o, const fault_counts *run_fc, int64_t elapsed_ms)
{
    hist h;
    memset(&h, 0, sizeof h);
    fault_counts fc = {0};
    long bad = 0;
    if (read_logs(&h, o->log_dir, &fc, &bad) != 0)
        return 2;
    if (run_fc != NULL)
        fc = *run_fc;
    fl_store *st = NULL;
    int rc = fl_open(o->url, &st);
    if (rc != FL_OK) {
        fprintf(stderr, "flstress: check: cannot open the store: %s\n", st ? fl_errmsg(st) : "");
        fl_close(st);
        return 2;
    }
    const char *title = store_title(fl_store_kind(st));

    hs_tally t = {.print_max = o->print_max};
    stats sx = {.min_margin = INT64_MAX};
    if (h.nops > 0)
        qsort(h.ops, h.nops, sizeof *h.ops, cmp_op_pidx);
    sx.ops = (long)h.nops;

    int64_t nprov = h.epochs * h.providers;
    size_t oi = 0;
    for (int64_t pidx = 0; pidx < nprov; pidx++) {
        char p[FL_PROVIDER_MAX + 1];
        provider_name(p, sizeof p, h.prefix, h.providers, pidx);
        while (oi < h.nops && h.ops[oi].v[V_PIDX] < pidx)
            oi++;
        size_t oj = oi;
        while (oj < h.nops && h.ops[oj].v[V_PIDX] == pidx)
            oj++;

        fl_event *ev = NULL;
        size_t n = 0;
        rc = fl_history(st, p, HISTORY_MAX, &ev, &n);
        if (rc != FL_OK) {
            hs_violation(&t, HS_HISTORY, "%s: fl_history: %s: %s", p, fl_strerror(rc),
                         fl_errmsg(st));
            continue;
        }
        if (n >= HISTORY_MAX)
            hs_violation(&t, HS_HISTORY,
                         "%s: %zu events, the most fl_history returns: use a shorter --epoch", p,
                         n);
        for (size_t i = 0, j = n; i + 1 < j; i++, j--) { /* oldest first */
            fl_event tmp = ev[i];
            ev[i] = ev[j - 1];
            ev[j - 1] = tmp;
        }
        sx.events += (long)n;
        hs_set s;
        hs_build(ev, n, p, &t, &s);
        sx.grants += (long)s.n;
        sx.exclusive += hs_overlaps(&s, p, &t);
        intent *in = NULL;
        size_t nin = build_intents(ev, n, p, &t, &in, &sx);
        check_ops(&h, p, &s, ev, n, h.ops + oi, oj - oi, &t, &sx);
        check_regrant(&h, o, p, &s, h.ops + oi, oj - oi, in, nin, &t, &sx);
        check_starvation(&h, o, p, &s, in, nin, &t, &sx);
        free(in);
        hs_set_free(&s);
        fl_free(ev);
        oi = oj;
    }
    fl_close(st);

    long nw_grant = 0;
    for (size_t i = 0; i < h.nw; i++)
        nw_grant += h.w[i].grant;
    printf("flstress: %zu worker lives (%ld with fl_grant), %d providers x %lld epochs, %.1f s; "
           "faults: %ld SIGKILL, %ld SIGSTOP, %ld store restarts, %ld store down\n",
           h.nw, nw_grant, h.providers, (long long)h.epochs, (double)elapsed_ms / 1000.0, fc.kills,
           fc.stops, fc.restarts, fc.downs);
    printf("flstress: history: %ld events, %ld grants (%ld exclusive); workers: %ld renews, "
           "%ld releases ok, %ld stale-token tries refused\n",
           sx.events, sx.grants, sx.exclusive, sx.renews, sx.releases, sx.stale_tries);
    printf("flstress: liveness: %ld lapses freed a provider, %ld with a waiter (re-granted "
           "after at most %lld ms); %ld exclusive intents (%ld granted, at most %lld ms after "
           "the host freed; %ld gave up); %ld instances skipped (waiter frozen/killed or store "
           "unavailable)\n",
           sx.lapses, sx.lapses_waiter, (long long)sx.max_regrant, sx.intents, sx.promoted,
           (long long)sx.max_promote, sx.gave_up, sx.skipped);
    char margin[32] = "none lapsed";
    if (sx.min_margin != INT64_MAX)
        snprintf(margin, sizeof margin, "%lld ms", (long long)sx.min_margin);
    printf("flstress: grant holders: %ld holds, %ld work steps, %ld lost, latest stop %lld ms "
           "after the local deadline, closest work step before a lapse: %s\n",
           sx.grant_holds, sx.steps, sx.grant_lost, (long long)sx.max_late, margin);
    long v = hs_total(&t);
    if (v > 0) {
        printf("flstress: violations by kind:");
        for (int k = 0; k < HS_NKINDS; k++)
            if (t.count[k])
                printf(" %s %ld", hs_kind_name((hs_kind)k), t.count[k]);
        printf("\n");
    }
    printf("%s: %ld operations checked, %ld violations\n", title, sx.ops, v);

    int status = v > 0 ? 1 : 0;
    if (bad > 0) {
        printf("flstress: %ld unreadable log lines\n", bad);
        status = status ? status : 2;
    }
    if (fc.failed > 0) {
        printf("flstress: %ld workers failed (see stderr)\n", fc.failed);
        status = status ? status : 2;
    }
    if (sx.ops < o->min_ops) {
        printf("flstress: too few operations to prove anything (%ld < %ld)\n", sx.ops, o->min_ops);
        status = status ? status : 2;
    }
    for (size_t i = 0; i < h.nw; i++)
        free(h.w[i].cals);
    free(h.w);
    free(h.ops);
    free(h.unavail.w);
    free(h.fz);
    return status;
}

/* ---- main -------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: flstress [--db URL] [--duration D] [--procs N] [--providers K]\n"
            "                [--epoch D] [--grant-pct P] [--shared-pct P] [--bound D]\n"
            "                [--faults none|kill,stop,pg] [--pg-dir DIR] [--pg-every D]\n"
            "                [--pg-script PATH] [--log-dir DIR] [--keep-logs] [--min-ops N]\n"
            "                [--print N] [--check-only]\n"
            "D is a duration: 500ms, 30s, 10m, 1h.\n");
    exit(64);
}

static int64_t dur_arg(int argc, char **argv, int *i, int64_t lo)
{
    if (*i + 1 >= argc)
        usage();
    int64_t ms;
    char err[256];
    if (fl_parse_duration(argv[++*i], &ms, err, sizeof err) != FL_OK || ms < lo) {
        fprintf(stderr, "flstress: %s: %s (at least %lld ms)\n", argv[*i - 1], err, (long long)lo);
        exit(64);
    }
    return ms;
}

static long num_arg(int argc, char **argv, int *i, long lo, long hi)
{
    if (*i + 1 >= argc)
        usage();
    char *end;
    errno = 0;
    long v = strtol(argv[++*i], &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "flstress: %s: must be an integer %ld..%ld, got \"%s\"\n", argv[*i - 1],
                lo, hi, argv[*i]);
        exit(64);
    }
    return v;
}

static int parse_faults(const char *s)
{
    if (strcmp(s, "none") == 0)
        return 0;
    int f = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "kill") == 0)
            f |= F_KILL;
        else if (strcmp(t, "stop") == 0)
            f |= F_STOP;
        else if (strcmp(t, "pg") == 0)
            f |= F_PG;
        else {
            fprintf(stderr, "flstress: --faults: unknown fault \"%s\" (kill, stop, pg, none)\n", t);
            exit(64);
        }
    }
    return f;
}

int main(int argc, char **argv)
{
    static opts o = {.duration_ms = 30000, .epoch_ms = 60000, .bound_ms = 2500,
                     .pg_every_ms = 15000, .procs = 32, .providers = 6, .grant_pct = 25,
                     .shared_pct = 60, .faults = -1, .print_max = 20, .min_ops = 1000,
                     .pg_script = FL_PG_SERVER_SH};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--db") == 0 && i + 1 < argc)
            o.url = argv[++i];
        else if (strcmp(a, "--duration") == 0)
            o.duration_ms = dur_arg(argc, argv, &i, 1000);
        else if (strcmp(a, "--epoch") == 0)
            o.epoch_ms = dur_arg(argc, argv, &i, 1000);
        else if (strcmp(a, "--bound") == 0)
            o.bound_ms = dur_arg(argc, argv, &i, 100);
        else if (strcmp(a, "--pg-every") == 0)
            o.pg_every_ms = dur_arg(argc, argv, &i, 2000);
        else if (strcmp(a, "--procs") == 0)
            o.procs = (int)num_arg(argc, argv, &i, 2, MAX_PROCS);
        else if (strcmp(a, "--providers") == 0)
            o.providers = (int)num_arg(argc, argv, &i, 1, MAX_PROVIDERS);
        else if (strcmp(a, "--grant-pct") == 0)
            o.grant_pct = (int)num_arg(argc, argv, &i, 0, 100);
        else if (strcmp(a, "--shared-pct") == 0)
            o.shared_pct = (int)num_arg(argc, argv, &i, 0, 100);
        else if (strcmp(a, "--min-ops") == 0)
            o.min_ops = num_arg(argc, argv, &i, 0, 1000000000L);
        else if (strcmp(a, "--print") == 0)
            o.print_max = (int)num_arg(argc, argv, &i, 0, 1000000);
        else if (strcmp(a, "--faults") == 0 && i + 1 < argc)
            o.faults = parse_faults(argv[++i]);
        else if (strcmp(a, "--pg-dir") == 0 && i + 1 < argc)
            o.pg_dir = argv[++i];
        else if (strcmp(a, "--pg-script") == 0 && i + 1 < argc)
            o.pg_script = argv[++i];
        else if (strcmp(a, "--log-dir") == 0 && i + 1 < argc)
            snprintf(o.log_dir, sizeof o.log_dir, "%s", argv[++i]);
        else if (strcmp(a, "--keep-logs") == 0)
            o.keep_logs = 1;
        else if (strcmp(a, "--check-only") == 0)
            o.check_only = 1;
        else
            usage();
    }
    if (o.url == NULL)
        o.url = ts_url(); /* exits 77 (skipped) when no store is configured */
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (o.check_only) {
        if (o.log_dir[0] == '\0')
            usage();
        return check(&o, NULL, 0);
    }
    int postgres = strncmp(o.url, "postgres", 8) == 0;
    if (o.pg_dir == NULL && postgres)
        o.pg_dir = getenv("FL_PG_DIR");
    if (o.pg_dir != NULL && o.pg_dir[0] == '\0')
        o.pg_dir = NULL;
    if (o.faults < 0)
        o.faults = F_KILL | F_STOP | (postgres && o.pg_dir ? F_PG : 0);
    if ((o.faults & F_PG) && (!postgres || o.pg_dir == NULL)) {
        fprintf(stderr, "flstress: store faults need a PostgreSQL store and --pg-dir (or "
                        "$FL_PG_DIR); skipping them\n");
        o.faults &= ~F_PG;
    }

    int own_dir = 0;
    if (o.log_dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(o.log_dir, sizeof o.log_dir, "%s/flstress.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(o.log_dir) == NULL) {
            perror("flstress: mkdtemp");
            return 2;
        }
        own_dir = 1;
    } else if (mkdir(o.log_dir, 0755) != 0 && errno != EEXIST) {
        perror(o.log_dir);
        return 2;
    }

    run r = {.o = &o};
    snprintf(r.prefix, sizeof r.prefix, "fls-%ld-%ld", (long)getpid(), (long)time(NULL));
    r.slots = mmap(NULL, sizeof(slot) * MAX_PROCS, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r.slots == MAP_FAILED) {
        perror("flstress: mmap");
        return 2;
    }
    for (int i = 0; i < MAX_PROCS; i++) {
        atomic_init(&r.slots[i].holding, 0);
        atomic_init(&r.slots[i].ttl_ms, 1000);
    }
    char meta[700];
    snprintf(meta, sizeof meta, "%s/meta", o.log_dir);
    FILE *mf = fopen(meta, "w");
    if (mf == NULL) {
        perror(meta);
        return 2;
    }
    /* +2: workers finishing a call after the end may use the next epoch */
    fprintf(mf, "prefix %s\nproviders %d\nepoch_ms %lld\nepochs %lld\n", r.prefix, o.providers,
            (long long)o.epoch_ms, (long long)(o.duration_ms / o.epoch_ms + 2));
    fclose(mf);

    printf("flstress: %d processes on %s for %lld ms, faults:%s%s%s%s; logs in %s\n", o.procs,
           o.url, (long long)o.duration_ms, o.faults & F_KILL ? " kill" : "",
           o.faults & F_STOP ? " stop" : "", o.faults & F_PG ? " pg-restart pg-down" : "",
           o.faults ? "" : " none", o.log_dir);
    r.t0 = ts_mono_ms();
    r.end = r.t0 + o.duration_ms;
    fault_counts fc = {0};
    int rc = run_workload(&r, &fc);
    int64_t elapsed = ts_mono_ms() - r.t0;
    munmap(r.slots, sizeof(slot) * MAX_PROCS);
    if (rc != 0)
        return rc;
    rc = check(&o, &fc, elapsed);
    if (own_dir && !o.keep_logs && rc == 0) {
        DIR *d = opendir(o.log_dir);
        struct dirent *e;
        char path[1024];
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", o.log_dir, e->d_name);
            unlink(path);
        }
        if (d != NULL)
            closedir(d);
        rmdir(o.log_dir);
    } else if (rc != 0) {
        printf("flstress: logs kept in %s\n", o.log_dir);
    }
    return rc;
}
