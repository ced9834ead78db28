/*
 * bench/harness.c -- the multi-process runner, the timing and the stats.
 *
 * Each client is a forked process with its own connection.  Phases are
 * entered and left through one process-shared barrier, so every client
 * measures the same operation at the same time and the span of a phase is
 * well defined: from the earliest start to the latest finish.  The barrier
 * is outside every timed region.  Latencies are CLOCK_MONOTONIC (the vDSO:
 * no system call) around each operation.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct shared {
    pthread_barrier_t bar;
    int go;
    int rounds;
    int64_t total_span_ns;
    int64_t span_ns[BN_MAX_PHASES];
    long ops[BN_MAX_PHASES];
    long pg_calls[BN_MAX_PHASES];     /* store calls made inside the phase */
    long sq_stmts[BN_MAX_PHASES];
    long sq_writes[BN_MAX_PHASES];
    long errors[BN_MAX_PHASES];       /* bn_error() */
    int64_t start_ns[BN_MAX_CLIENTS];
    int64_t end_ns[BN_MAX_CLIENTS];
    size_t nsamp[BN_MAX_PHASES][BN_MAX_CLIENTS];
    char why[BN_MAX_CLIENTS][512];
} shared;

struct bn_client {
    int id;
    const bn_opts *o;
    shared *sh;
    int64_t *samples;      /* [phase][client][per_client] */
    size_t per_client;
    int phase;             /* current phase, -1 outside */
    long max_ops;
    int64_t deadline_ns;   /* 0: not timed */
    long done;
    bn_calls calls0;       /* store calls at the phase's start */
};

int64_t bn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bn_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void bn_sort(int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
}

/* Nearest rank on sorted samples. */
double bn_pct_us(int64_t *v, size_t n, double pct)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)ceil(pct / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

void bn_row(const char *key, double ops, double p50_us, double p99_us, long n)
{
    printf("R\t%s\t%.1f\t%.1f\t%.1f\t%ld\n", key, ops, p50_us, p99_us, n);
    fflush(stdout);
}

void bn_scalar(const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("M\t%s\t%s\n", key, buf);
    fflush(stdout);
}

void bn_failed(const char *key, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One line: the report is line-oriented. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    printf("F\t%s\t%s\n", key, buf);
    fflush(stdout);
    fprintf(stderr, "flbench: %s: %s\n", key, buf);
}

int bn_id(const bn_client *c) { return c->id; }
const bn_opts *bn_opts_of(const bn_client *c) { return c->o; }
long bn_done(const bn_client *c) { return c->done; }

int bn_fail(bn_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->sh->why[c->id], sizeof c->sh->why[c->id], fmt, ap);
    va_end(ap);
    return 1;
}

/* Returns 1 in exactly one waiter (the last to arrive), after all arrived. */
static int barrier(shared *sh)
{
    return pthread_barrier_wait(&sh->bar) == PTHREAD_BARRIER_SERIAL_THREAD;
}

int bn_round(bn_client *c, int max_rounds)
{
    shared *sh = c->sh;
    if (barrier(sh)) {
        sh->go = sh->rounds < max_rounds &&
                 (double)sh->total_span_ns / 1e9 < c->o->secs;
        sh->rounds++;
    }
    barrier(sh);
    return sh->go;
}

void bn_phase_begin(bn_client *c, int ph, long max_ops, int timed)
{
    barrier(c->sh);
    c->phase = ph;
    c->max_ops = max_ops > 0 ? max_ops : (long)1 << 40;
    c->done = 0;
    bn_calls_get(&c->calls0);
    c->sh->start_ns[c->id] = bn_now_ns();
    c->deadline_ns = timed ? c->sh->start_ns[c->id] + (int64_t)(c->o->secs * 1e9) : 0;
}

int bn_more(const bn_client *c)
{
    if (c->done >= c->max_ops)
        return 0;
    return c->deadline_ns == 0 || bn_now_ns() < c->deadline_ns;
}

void bn_record(bn_client *c, int64_t ns)
{
    size_t *k = &c->sh->nsamp[c->phase][c->id];
    if (*k < c->per_client)
        c->samples[((size_t)c->phase * (size_t)c->o->clients + (size_t)c->id) * c->per_client +
                   (*k)++] = ns;
    c->done++;
}

void bn_error(bn_client *c)
{
    __atomic_add_fetch(&c->sh->errors[c->phase], 1, __ATOMIC_SEQ_CST);
}

void bn_phase_end(bn_client *c)
{
    shared *sh = c->sh;
    sh->end_ns[c->id] = bn_now_ns();
    __atomic_add_fetch(&sh->ops[c->phase], c->done, __ATOMIC_SEQ_CST);
    bn_calls n;
    bn_calls_get(&n);
    const bn_calls *b = &c->calls0;
    __atomic_add_fetch(&sh->pg_calls[c->phase],
                       (n.pg_acquire + n.pg_give_up + n.pg_release + n.pg_other + n.pg_simple) -
                           (b->pg_acquire + b->pg_give_up + b->pg_release + b->pg_other +
                            b->pg_simple),
                       __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sh->sq_stmts[c->phase],
                       (n.sq_attempts + n.sq_reads + n.sq_writes + n.sq_polls + n.sq_other) -
                           (b->sq_attempts + b->sq_reads + b->sq_writes + b->sq_polls +
                            b->sq_other),
                       __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sh->sq_writes[c->phase], n.sq_writes - b->sq_writes, __ATOMIC_SEQ_CST);
    if (barrier(sh)) {
        int64_t lo = sh->start_ns[0], hi = sh->end_ns[0];
        for (int i = 1; i < c->o->clients; i++) {
            if (sh->start_ns[i] < lo)
                lo = sh->start_ns[i];
            if (sh->end_ns[i] > hi)
                hi = sh->end_ns[i];
        }
        sh->span_ns[c->phase] += hi - lo;
        sh->total_span_ns += hi - lo;
    }
    barrier(sh);
    c->phase = -1;
}

static void kill_all(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) {
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
}

int bn_run(const bn_opts *o, const char *const *phases, int nphases, bn_body body, void *arg)
{
    if (o->clients < 1 || o->clients > BN_MAX_CLIENTS || nphases < 1 ||
        nphases > BN_MAX_PHASES) {
        bn_failed(o->key, "clients must be 1-%d and phases 1-%d", BN_MAX_CLIENTS,
                  BN_MAX_PHASES);
        return 1;
    }
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    size_t per_client = BN_SAMPLE_BUDGET / (size_t)o->clients;
    size_t bytes = (size_t)nphases * (size_t)o->clients * per_client * sizeof(int64_t);
    int64_t *samples = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (sh == MAP_FAILED || samples == MAP_FAILED) {
        bn_failed(o->key, "mmap: %s", strerror(errno));
        return 1;
    }
    memset(sh, 0, sizeof *sh);
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&sh->bar, &ba, (unsigned)o->clients);
    pthread_barrierattr_destroy(&ba);

    pid_t pids[BN_MAX_CLIENTS] = {0};
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < o->clients; i++) {
        pid_t p = fork();
        if (p < 0) {
            bn_failed(o->key, "fork: %s", strerror(errno));
            kill_all(pids, i);
            return 1;
        }
        if (p == 0) {
            bn_client c = {.id = i, .o = o, .sh = sh, .samples = samples,
                           .per_client = per_client, .phase = -1};
            int rc = body(&c, arg);
            fflush(stdout);
            fflush(stderr);
            _exit(rc == 0 ? 0 : 1);
        }
        pids[i] = p;
    }

    /* Reap; a failed client leaves the others stuck at the next barrier,
     * so the first failure (or the watchdog) ends all of them. */
    int64_t watchdog = bn_now_ns() + (int64_t)((o->secs * nphases * 30 + 300) * 1e9);
    int left = o->clients, failed = -1;
    char why[600] = "";
    while (left > 0) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p == 0) {
            if (bn_now_ns() > watchdog) {
                snprintf(why, sizeof why, "watchdog: clients did not finish in time");
                failed = 0;
                kill_all(pids, o->clients);
                break;
            }
            bn_sleep_ms(20);
            continue;
        }
        if (p < 0)
            break;
        int idx = -1;
        for (int i = 0; i < o->clients; i++)
            if (pids[i] == p)
                idx = i;
        if (idx < 0)
            continue;
        pids[idx] = 0;
        left--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed = idx;
            if (sh->why[idx][0])
                snprintf(why, sizeof why, "client %d: %.500s", idx, sh->why[idx]);
            else if (WIFSIGNALED(status))
                snprintf(why, sizeof why, "client %d: killed by signal %d", idx,
                         WTERMSIG(status));
            else
                snprintf(why, sizeof why, "client %d: exit %d", idx, WEXITSTATUS(status));
            kill_all(pids, o->clients);
            break;
        }
    }

    int rc = 0;
    for (int ph = 0; ph < nphases; ph++) {
        char key[256];
        snprintf(key, sizeof key, "%s.%s.%s", o->key, phases[ph], o->tag);
        if (failed >= 0) {
            bn_failed(key, "%s", why);
            rc = 1;
            continue;
        }
        size_t n = 0;
        for (int i = 0; i < o->clients; i++)
            n += sh->nsamp[ph][i];
        if (sh->ops[ph] == 0 || n == 0 || sh->span_ns[ph] <= 0) {
            bn_failed(key, "no operation completed");
            rc = 1;
            continue;
        }
        int64_t *all = malloc(n * sizeof *all);
        if (!all) {
            bn_failed(key, "out of memory");
            rc = 1;
            continue;
        }
        size_t k = 0;
        for (int i = 0; i < o->clients; i++) {
            const int64_t *src = samples + ((size_t)ph * (size_t)o->clients + (size_t)i) *
                                               per_client;
            memcpy(all + k, src, sh->nsamp[ph][i] * sizeof *all);
            k += sh->nsamp[ph][i];
        }
        bn_sort(all, n);
        bn_row(key, (double)sh->ops[ph] / ((double)sh->span_ns[ph] / 1e9), bn_pct_us(all, n, 50),
               bn_pct_us(all, n, 99), sh->ops[ph]);
        free(all);
        if (sh->errors[ph] > 0) {
            char k3[300];
            snprintf(k3, sizeof k3, "%s.%s.%s.errors", o->key, phases[ph], o->tag);
            bn_scalar(k3, "%ld", sh->errors[ph]);
        }
        /* Store calls per operation, where the phase went through the
         * counted entry points (contention.c). */
        char k2[300];
        double ops = (double)sh->ops[ph];
        if (sh->pg_calls[ph] > 0) {
            snprintf(k2, sizeof k2, "%s.%s.%s.store_calls_per_op", o->key, phases[ph], o->tag);
            bn_scalar(k2, "%.2f", (double)sh->pg_calls[ph] / ops);
        } else if (sh->sq_stmts[ph] > 0) {
            snprintf(k2, sizeof k2, "%s.%s.%s.store_calls_per_op", o->key, phases[ph], o->tag);
            bn_scalar(k2, "%.2f", (double)sh->sq_stmts[ph] / ops);
            snprintf(k2, sizeof k2, "%s.%s.%s.sq_writes_per_op", o->key, phases[ph], o->tag);
            bn_scalar(k2, "%.2f", (double)sh->sq_writes[ph] / ops);
        }
    }
    /* No pthread_barrier_destroy: after a failure, killed clients never
     * leave the barrier and glibc's destroy would wait for them forever.
     * Unmapping is all the clean-up a process-shared barrier needs here. */
    munmap(samples, bytes);
    munmap(sh, sizeof *sh);
    return rc;
}
