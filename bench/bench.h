/*
 * bench/bench.h -- what the files of `flbench` share (issue 9).
 *
 * flbench measures fleetlease through its public API only, next to the
 * physical floor (bare SQL on the same server) and next to peer lock
 * designs (PostgreSQL advisory locks, Redis, etcd), in one run.  Each
 * subcommand is one "cell": it prints result lines on stdout that
 * bench/run.sh collects and `flbench report` turns into
 * docs/benchmarks.md.
 *
 * Result lines (tab separated):
 *   R <key> <ops_per_s> <p50_us> <p99_us> <n>   a measured row
 *   M <key> <value>                              a scalar
 *   F <key> <why>                                a cell that failed
 *   I <key> <text>                               machine facts (run.sh)
 *
 * Clients are processes, not threads: every peer is measured the way a
 * fleet would use it, one connection per process, and no client shares a
 * lock or an allocator with another.
 *
 * Names: bn_ for what crosses files here; the library's fl_/fl__ are not
 * ours to use beyond the public header.
 */
#ifndef BN_BENCH_H
#define BN_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BN_MAX_CLIENTS 64
#define BN_MAX_PHASES 8
/* Latency samples kept per phase over all clients (8 bytes each); ops
 * past it are counted but not sampled (a 2 s phase never gets there). */
#define BN_SAMPLE_BUDGET (1 << 20)

typedef struct bn_opts {
    const char *cell;     /* subcommand */
    const char *key;      /* key prefix of the rows: "pg", "sq", "pgfloor" ... */
    const char *tag;      /* column: "1p" pinned, "1u" unpinned, "8u" 8 clients */
    int clients;          /* processes */
    double secs;          /* time bound of one timed phase */
    long max_ops;         /* count bound (--n): leases one client may hold, cycles, N */
    const char *url;      /* store URL, or host:port of a peer server */
    const char *run_id;   /* makes provider and key names unique per run */
    const char *extra;    /* cell-specific (e.g. "aof" for the durable Redis) */
} bn_opts;

typedef struct bn_client bn_client;

/* The body of one client process.  Returns 0, or 1 after bn_fail(). */
typedef int (*bn_body)(bn_client *c, void *arg);

/*
 * Fork o->clients processes running body; print one R line per phase
 * (key "<o->key>.<phase>.<o->tag>").  Phases are entered by all clients
 * together (a process-shared barrier), so the throughput of a phase is its
 * ops over the span from the first start to the last finish, summed over
 * rounds.  A client that fails makes the whole cell print F lines.
 * Returns 0 when every client succeeded.
 */
int bn_run(const bn_opts *o, const char *const *phases, int nphases, bn_body body, void *arg);

int bn_id(const bn_client *c);
const bn_opts *bn_opts_of(const bn_client *c);

/* Another round of phases?  Every client must call it the same number of
 * times: it is a barrier.  Yes while fewer than max_rounds ran and the
 * summed phase time is under o->secs. */
int bn_round(bn_client *c, int max_rounds);

/* Enter phase ph with all other clients.  The phase ends when bn_more()
 * says so: after max_ops ops of this client (<= 0: no count bound), or
 * after o->secs when timed. */
void bn_phase_begin(bn_client *c, int ph, long max_ops, int timed);
int bn_more(const bn_client *c);
/* Record one op of the current phase that took ns. */
void bn_record(bn_client *c, int64_t ns);
/* Leave the phase (a barrier: the next phase starts for all together). */
void bn_phase_end(bn_client *c);
/* An operation of the current phase failed with a retryable store error
 * (FL_EUNAVAIL: busy past its timeout): counted, not timed, and the phase
 * goes on.  Printed as M <key>.<phase>.<tag>.errors. */
void bn_error(bn_client *c);
/* Ops recorded so far in the current phase by this client. */
long bn_done(const bn_client *c);

/* The failure of this client, printed by the parent as an F line. */
int bn_fail(bn_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int64_t bn_now_ns(void);
void bn_sleep_ms(int64_t ms);

/* Percentiles of n samples (sorted in place), in µs. */
double bn_pct_us(int64_t *v, size_t n, double pct);
void bn_sort(int64_t *v, size_t n);

/* Print lines, flushed at once (several processes share stdout). */
void bn_row(const char *key, double ops, double p50_us, double p99_us, long n);
void bn_scalar(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bn_failed(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Cells.  Each returns a process exit code (0 ok, 1 failed, 64 usage). */
int bn_cell_fl(const bn_opts *o);          /* fl-ops: acquire refused heartbeat check release */
int bn_cell_fl_pair(const bn_opts *o);     /* fl-pair: acquire+release cycles */
int bn_cell_pgfloor(const bn_opts *o);     /* select1 upsert update */
int bn_cell_sqfloor(const bn_opts *o);     /* select upsert update */
int bn_cell_advisory(const bn_opts *o);    /* lock unlock */
int bn_cell_redis(const bn_opts *o);       /* acquire release */
int bn_cell_etcd(const bn_opts *o);        /* acquire (grant+txn) release (revoke) */
int bn_cell_etcd_pair(const bn_opts *o);
int bn_cell_http(const bn_opts *o);        /* fleetlease serve: the fl-ops phases */
int bn_cell_contention(const bn_opts *o);
int bn_cell_wakeup(const bn_opts *o);
int bn_cell_scale(const bn_opts *o);
int bn_cell_gwcheck(const bn_opts *o);     /* the gateway's per-request fl_check_cached */
int bn_cell_profile(const bn_opts *o);     /* a fixed count of ops, for callgrind */
int bn_report(int argc, char **argv);

/* One kept-alive HTTP/1.1 connection (libcurl easy handle), http.c. */
typedef struct bn_http bn_http;
bn_http *bn_http_new(const char *base);   /* "http://127.0.0.1:PORT" */
void bn_http_free(bn_http *h);
/* method "GET" "POST" "DELETE"; body may be NULL.  Returns 0 and sets
 * *status and *resp (NUL-terminated, owned by h until the next call), or
 * -1 with err set when no HTTP answer came. */
int bn_http_do(bn_http *h, const char *method, const char *path, const char *body,
               long *status, const char **resp, char *err, size_t errlen);
/* 16 random bytes as 32 hex digits (a lock token, as fleetlease makes). */
void bn_token(char out[33]);

/* Store calls made by this process, counted by interposing the two entry
 * points the stores use (contention.c): PostgreSQL statements by prepared
 * name, SQLite statement executions by kind. */
typedef struct bn_calls {
    long pg_acquire, pg_give_up, pg_release, pg_other, pg_simple;
    long sq_reads, sq_attempts, sq_writes, sq_polls, sq_other;
} bn_calls;
void bn_calls_get(bn_calls *out);

#endif
