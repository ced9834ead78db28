/*
 * src/http/serve.h -- what the files of `fleetlease serve` share.
 *
 * Threads.  One loop thread runs libevent: every evhttp object, every
 * connection record, the metrics counters and the log are touched only
 * there.  Store calls block (a long poll for minutes), so they run on a
 * pool of worker threads, each with its own fl_store handle (a handle is
 * single-threaded).  A request becomes a job: the loop fills its inputs,
 * a worker runs the store call and fills its outputs, then activates the
 * job's completion event, which libevent runs on the loop thread.  After
 * that hand-back the worker never touches the job again.
 *
 * Names: srv_ for what crosses files here (the library's fl_/fl__ are not
 * ours to use); everything else is static.
 */
#ifndef FL_SRV_H
#define FL_SRV_H

#include "../cli/commands.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv srv;
typedef struct srv_job srv_job;
typedef struct srv_conn srv_conn;
typedef struct srv_pool srv_pool;
typedef struct srv_auth srv_auth;
typedef struct srv_conns srv_conns;

/* ---- limits (command-line options; docs/api.md lists the defaults) ---- */

typedef struct srv_limits {
    int workers;               /* threads for quick store calls */
    int max_waiters;           /* concurrent long polls (acquire with wait) */
    int max_conns;             /* open client connections */
    int64_t max_body;          /* request body bytes */
    int64_t max_headers;       /* request line + header bytes */
    int64_t request_timeout_ms;/* to receive one request; idle keep-alive */
    int64_t sweep_interval_ms; /* 0: no sweep timer */
} srv_limits;

/* ---- metrics (loop thread only, except the histogram: see metrics.c) -- */

typedef enum srv_op {
    SRV_OP_ACQUIRE,       /* acquire with wait 0 */
    SRV_OP_ACQUIRE_WAIT,  /* one slice of a long poll */
    SRV_OP_HEARTBEAT,
    SRV_OP_RELEASE,
    SRV_OP_CHECK,
    SRV_OP_LIST,
    SRV_OP_HISTORY,
    SRV_OP_SWEEP,
    SRV_OP_NOW,           /* /healthz */
    SRV_OP_REPORT,        /* GET /v1/leases/{token}/report: lookup + report */
    SRV_OP_COUNT
} srv_op;

#define SRV_LAT_BUCKETS 14

typedef struct srv_metrics {
    /* Counters of what this daemon did through its API and timer. */
    uint64_t grants[3];        /* by fl_mode (index 1 shared, 2 exclusive) */
    uint64_t refusals[3];
    uint64_t heartbeats, releases, expiries;
    uint64_t sweep_runs, sweep_errors;
    uint64_t checks_allowed, checks_refused;
    uint64_t auth_failures;
    uint64_t responses[6];     /* by status class: [1]..[5] */
    uint64_t conns_accepted, conns_evicted, conns_refused;
    uint64_t waiters_refused;
    uint64_t abandoned;        /* long polls granted after the client left */
    /* Store call latency.  Observed on worker threads: under `lat_lock`. */
    pthread_mutex_t lat_lock;
    uint64_t lat_count[SRV_OP_COUNT][SRV_LAT_BUCKETS + 1];
    uint64_t lat_total[SRV_OP_COUNT];
    double lat_sum[SRV_OP_COUNT];
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
/* Thread-safe. */
void srv_metrics_observe(srv_metrics *m, srv_op op, double seconds);
/* Prometheus text exposition; `leases` from fl_list (may be NULL when the
 * store could not be read: the gauge is then left out, and
 * fleetlease_store_up is 0). */
void srv_metrics_render(srv *s, struct evbuffer *out, const fl_lease *leases,
                        size_t n, int store_ok);
/* The isolation reports of the live exclusive leases, as gauges. */
void srv_metrics_reports(struct evbuffer *out, const fl_report *r, size_t n);

/* ---- the server --------------------------------------------------------- */

struct srv {
    cli_ctx *ctx;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    srv_limits lim;
    srv_auth *auth;            /* NULL: no --tokens, every caller anonymous */
    int public_metrics;        /* /metrics without a token */
    srv_pool *pool;
    srv_conns *conns;
    srv_metrics metrics;
    int stopping;              /* SIGTERM/SIGINT seen: finish in-flight, then exit */
    int inflight;              /* jobs handed to the pool, not yet completed */
    int waiters;               /* long polls among them */
    int sweep_busy;            /* a sweep job is in flight */
    int sweep_failing;         /* the last sweep failed (log state changes only) */
    int access_log;            /* --access-log: one line per request */
    srv_job *jobs;             /* in-flight jobs (loop thread) */
    struct event *ev_term, *ev_int, *ev_sweep, *ev_wait_check;
    char store_kind[16];
    char store_display[FL_URL_MAX + 1];
};

/* ---- jobs and the pool (pool.c) ----------------------------------------- */

/* Why a long poll stops early. */
enum { SRV_CANCEL_NONE = 0, SRV_CANCEL_CLIENT_GONE = 1, SRV_CANCEL_SHUTDOWN = 2 };

typedef void (*srv_done_fn)(srv_job *j);

struct srv_job {
    srv *s;
    srv_job *next;                 /* pool queue; s->jobs list on the loop */
    srv_job *lprev, *lnext;        /* in-flight list (loop thread) */
    struct event *done_ev;         /* completion, run on the loop thread */
    struct evhttp_request *req;    /* NULL for timer jobs (sweep) */
    srv_conn *conn;                /* the request's connection; NULL if gone */
    srv_op op;
    int long_poll;
    atomic_int cancel;             /* SRV_CANCEL_*: written by the loop, read by the worker */
    srv_done_fn done;              /* on the loop thread, after the worker */
    const char *route;             /* for the log: never the raw path (tokens) */
    int64_t started_mono_ms;

    /* Inputs (validated on the loop thread before the job is queued). */
    char provider[FL_PROVIDER_MAX + 1];
    char holder[FL_TEXT_MAX + 1];
    char purpose[FL_TEXT_MAX + 1];
    char writer[FL_TEXT_MAX + 1];  /* "" : anonymous */
    char token[FL_TOKEN_LEN + 1];  /* "" : none */
    fl_mode mode;
    int64_t ttl_ms, wait_ms;
    size_t limit;
    int auth_style;                /* /v1/auth: answer 204/403 instead of JSON */

    /* Outputs (written by the worker). */
    int rc;                        /* fl_code */
    char err[FL_MESSAGE_MAX];      /* fl_errmsg when rc != FL_OK */
    fl_lease lease;
    fl_verdict verdict;
    fl_lease *leases;              /* fl_list result (fl_free) */
    size_t nleases;
    fl_event *events;              /* fl_history result (fl_free) */
    size_t nevents;
    size_t expired;
    int64_t now_ms;
    int abandoned;                 /* granted after the client left; released again */
    int release_rc;                /* of that release */
    fl_report report;              /* SRV_OP_REPORT: the summed report */
    int report_rc;                 /* SRV_OP_REPORT: fl_report_get's code (lookup in rc) */
    int with_reports;              /* SRV_OP_LIST for /metrics: also read the reports of
                                      the live exclusive leases */
    fl_report *reports;            /* ... those that have one (malloc'd) */
    size_t nreports;
};

/* Start `n` threads, each opening its own store handle with cli_open.
 * Returns 0, or the exit code after printing why. */
int srv_pool_start(srv *s, int n, srv_pool **out);
/* Queue a job.  The job's done_ev is created here.  0, or -1 (ENOMEM). */
int srv_pool_submit(srv_pool *p, srv_job *j);
/* Stop the threads after the queue is empty, join, close the handles. */
void srv_pool_stop(srv_pool *p);

/* A zeroed job for request `req` (NULL for timer jobs); NULL on ENOMEM.
 * Linked into the in-flight list by srv_job_submit. */
srv_job *srv_job_new(srv *s, struct evhttp_request *req, srv_op op, const char *route,
                     srv_done_fn done);
/* Hand to the pool (counts it in flight; long polls count as waiters). */
int srv_job_submit(srv_job *j);
/* Release what the job holds and free it (loop thread, after done()). */
void srv_job_free(srv_job *j);
/* Loop thread: after a job completed or the stop signal, end the loop
 * once stopping and nothing is in flight. */
void srv_shutdown_progress(srv *s);
/* Cancel every in-flight long poll (shutdown). */
void srv_jobs_cancel_all(srv *s);
/* For each in-flight long poll whose client closed its connection, set
 * cancel = SRV_CANCEL_CLIENT_GONE. */
void srv_jobs_check_clients(srv *s);

/* ---- connections (conn.c) ------------------------------------------------ */

/* Install the per-connection tracking on s->http (bevcb). */
int srv_conns_init(srv *s);
void srv_conns_free(srv *s);
size_t srv_conns_open(const srv *s);
/* The request was read: take the connection out of the idle list and
 * stop its deadline until srv_conn_idle.  NULL if the request has no
 * tracked connection (it can still be answered). */
srv_conn *srv_conn_busy(srv *s, struct evhttp_request *req);
/* Link the job answering the connection's request (c may be NULL); if the
 * connection record goes away first, j->conn is cleared. */
void srv_conn_attach(srv_conn *c, srv_job *j);
/* The reply was queued: the connection may be reused, evicted or reaped
 * again (c may be NULL). */
void srv_conn_idle(srv *s, srv_conn *c);
/* 1 if the client closed its end (EOF seen without reading). */
int srv_conn_client_gone(const srv_conn *c);

/* ---- auth (auth.c) ------------------------------------------------------- */

/* Load a tokens file.  On error writes a message naming the file and line
 * into err and returns -1. */
int srv_auth_load(const char *path, srv_auth **out, char *err, size_t errlen);
void srv_auth_free(srv_auth *a);
size_t srv_auth_count(const srv_auth *a);
/* Check an Authorization header value.  Returns the writer name of the
 * matching token, or NULL.  Constant time over all entries. */
const char *srv_auth_check(const srv_auth *a, const char *authorization);

/* ---- option values and the listening socket (opts.c) --------------------- */

/* A decimal integer in [lo, hi]; else a usage error naming the option. */
int srv_opt_int(const cli_ctx *ctx, const char *name, const char *v, long long lo, long long hi,
                long long *out);
/* A duration (fl_parse_duration) in [lo, hi] ms, or 0 when zero_ok. */
int srv_opt_dur(const cli_ctx *ctx, const char *name, const char *v, int64_t lo, int64_t hi,
                int zero_ok, int64_t *out);
/* "HOST:PORT" or "[V6]:PORT" into host and port; with port_optional a bare
 * host gives port 80 (an upstream URL).  `field` names the option. */
int srv_opt_hostport(const cli_ctx *ctx, const char *field, const char *v, char *host,
                     size_t hl, long long *port, int port_optional);
/* A non-blocking listening socket with SO_REUSEADDR and TCP_NODELAY
 * (inherited by accepted sockets: streamed pieces leave at once); -1 with
 * why set. */
evutil_socket_t srv_listen_socket(const char *host, long long port, char *why, size_t wl);

/* ---- responses and helpers (http_util.c) -------------------------------- */

int64_t srv_mono_ms(void);
int64_t srv_wall_ms(void);

/* logfmt, one line per event, on stderr.  Pairs of key, value strings,
 * NULL-terminated; values are quoted and escaped as needed. */
void srv_log(const char *level, const char *event, ...);
/* The same for numbers: format first with srv_num. */
const char *srv_num(char *buf, size_t len, long long v);

/* Send `body` (an object; consumed) with `code`.  Adds the JSON content
 * type and no-store.  req may have been orphaned by a closed connection:
 * evhttp then frees it. */
void srv_reply_json(srv *s, struct evhttp_request *req, int code, json_t *body);
/* {"error": id, "message": msg} */
void srv_reply_error(srv *s, struct evhttp_request *req, int code, const char *id,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reply with a raw buffer (content type given). */
void srv_reply_buf(srv *s, struct evhttp_request *req, int code, const char *ctype,
                   struct evbuffer *body);
/* Reason phrase for the status codes we send. */
const char *srv_reason(int code);
/* HTTP status and error id for an fl_code. */
int srv_status_for(int code, const char **id);

/* Seconds for Retry-After: ms rounded up, at least 1. */
long long srv_retry_after_s(int64_t ms);

/* JSON of an isolation report: GET /v1/leases/{token}/report and the
 * gateway's /_fleet/status answer with it (gw_report.c). */
json_t *srv_report_json(const fl_report *r);

/* ---- routing (api.c) and the status page (status.c) --------------------- */

void srv_api_handle(struct evhttp_request *req, void *arg);
/* GET / : the status page. */
void srv_status_page(srv *s, struct evhttp_request *req);

#endif
