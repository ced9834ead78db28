/*
 * src/http/gw.h -- what the files of `fleetlease gateway` share.
 *
 * The gateway is a reverse proxy in front of one provider.  Files:
 *   gateway.c   the command: options, setup, signals, local endpoints
 *   gw_proxy.c  forwarding: upstream connection pool, streaming, 502/504
 *   gw_lease.c  the lease side: store threads, the view of the provider,
 *               admission, the shared "drain guard" lease, accounting
 *   gw_report.c JSON of an isolation report (also used by the daemon)
 *
 * Threads.  One loop thread runs libevent and owns everything in `gw`:
 * requests, counters, the view, the accounting.  Store calls block, so
 * they run elsewhere: a refresher thread that waits for changes
 * (fl_wait_change) and re-reads the provider, and a worker thread that
 * makes the writes (shared lease acquire / renew / release, reports).
 * Each has its own fl_store handle.  The per-request decision is
 * fl_check_cached() on a handle the loop borrows under a mutex; see
 * gw_lease.c for how that handle is refreshed without a store round trip
 * on the loop.
 *
 * Names: gw_ for what crosses the gateway's files; static otherwise.
 */
#ifndef FL_GW_H
#define FL_GW_H

#include "serve.h"

#include <event2/event_struct.h> /* events inside our structs: no malloc per connection */
#include <event2/util.h>

typedef struct gw gw;
typedef struct gw_req gw_req;
typedef struct gw_store gw_store;
typedef struct gw_upconn gw_upconn;

/* ---- options ------------------------------------------------------------ */

typedef struct gw_opts {
    char provider[FL_PROVIDER_MAX + 1];
    char name[FL_TEXT_MAX + 1];         /* reporter name: --name, else gateway@LISTEN */
    int name_given;
    char up_host[64];                   /* numeric address of the upstream */
    int up_port;
    char up_display[FL_URL_MAX];        /* http://HOST:PORT as given */
    char listen_host[256];
    long long listen_port;
    int64_t drain_timeout_ms;
    int64_t lease_ttl_ms;               /* of the shared drain-guard lease */
    int64_t idle_release_ms;            /* keep the shared lease this long after the last foreign request */
    int64_t upstream_timeout_ms;        /* idle time waiting for upstream bytes (and connect) */
    int64_t client_timeout_ms;          /* to receive a request; idle keep-alive */
    int64_t max_body;
    int upstream_conns;
    int access_log;
} gw_opts;

/* ---- connections and requests (gw_proxy.c) -------------------------------- */

typedef struct gw_cconn gw_cconn;      /* a client connection */

typedef enum gw_rstate {
    GWR_NEW = 0,
    GWR_PARKED_LEASE,     /* foreign, admitted by the check; waits for the shared lease */
    GWR_PARKED_REFRESH,   /* carries a token the view does not know yet; waits for a re-read */
    GWR_QUEUED,           /* forwarded; waits for a free upstream connection */
    GWR_UPSTREAM          /* sent (or being sent) upstream */
} gw_rstate;

/* Chunked framing, parsed as it streams (gw_proxy.c). */
typedef struct gw_chunk {
    int state;
    uint64_t left;                     /* bytes left in the current chunk */
    uint64_t total;                    /* data bytes so far */
} gw_chunk;

#define GW_MAX_HEADERS 100

typedef struct gw_hdr {
    uint32_t name, name_len, value, value_len; /* offsets into the request's head block */
} gw_hdr;

struct gw_req {
    gw *g;
    gw_req *prev, *next;               /* g->reqs: every live request */
    gw_req *qnext;                     /* g->upq: waiting for an upstream connection */
    gw_cconn *c;                       /* the client connection; NULL once it is gone */
    gw_upconn *u;                      /* the upstream connection serving it, or NULL */
    gw_rstate state;
    /* The request as received. */
    char *head;                        /* its head block (request line + headers), NUL-ended */
    size_t head_len;
    gw_hdr hdrs[GW_MAX_HEADERS];
    int nhdrs;
    char method[16];
    const char *target;                /* into head */
    size_t target_len;
    int minor;                         /* HTTP/1.minor of the client */
    int keepalive;                     /* the client connection stays open after it */
    int is_head;
    int idempotent;                    /* may be sent again on a fresh connection */
    struct evbuffer *body;             /* the whole body (decoded if it came chunked) */
    /* Lease side. */
    int foreign;                       /* 1: foreign; 0: the exclusive holder's (by token) */
    int admitted;                      /* counted in g->foreign_inflight / holder_inflight */
    int cut_off;                       /* foreign, still in flight when a drain timed out */
    int refresh_tries;
    uint64_t want_seq;                 /* PARKED_REFRESH: a re-read that started after arrival */
    int64_t fence;                     /* holder requests: the grant */
    int64_t arrive_mono_ms;
    int64_t admit_mono_ms, admit_est_ms; /* admission: monotonic, estimated store clock */
    char writer[FL_TEXT_MAX + 1];      /* label for the report: X-Fleet-Writer or "(anonymous)" */
    char token[FL_TOKEN_LEN + 1];      /* X-Fleet-Lease, "" if none */
    /* The answer. */
    int tries;                         /* upstream attempts */
    int got_bytes;                     /* any response byte came back: never resent */
    int headers_sent;                  /* the response head went to the client */
    int status;                        /* sent to the client (499: the client left) */
    int rmode;                         /* response body framing (gw_proxy.c) */
    uint64_t rleft;                    /* content-length bytes still to come */
    gw_chunk rchunk;
    int up_keep;                       /* the upstream connection may be reused after it */
    int close_after;                   /* close the client connection after it */
    uint64_t bytes, chunks;
};

/* ---- the view of the provider and the accounting ------------------------ */

typedef struct gw_view {
    fl_pstate state;
    int64_t fence;                     /* EXCLUSIVE: the active grant */
    int64_t granted_at_ms;             /* its acquired_at (store clock) */
    char holder[FL_TEXT_MAX + 1];      /* EXCLUSIVE: holder; DRAINING: the pending waiter */
    char purpose[FL_TEXT_MAX + 1];
    int shared_count;
} gw_view;

/* One exclusive grant seen by this gateway, and what crossed it. */
typedef struct gw_acct {
    struct gw_acct *next;              /* g->closed */
    fl_report rep;
    int64_t granted_at_ms;
    char holder[FL_TEXT_MAX + 1];
    int dirty;                         /* changed since the last report put */
    int64_t last_put_mono;
    int put_inflight;
} gw_acct;

/* Refusals while an exclusive is pending: its fence is not known yet, so
 * they are held here and merged into the grant once it shows. */
typedef struct gw_drain {
    int active;
    int64_t since_mono;
    char holder[FL_TEXT_MAX + 1];
    fl_report rep;                     /* foreign_refused, writers, foreign_cut_off */
    int timed_out;
} gw_drain;

/* The shared lease that makes an exclusive request wait (draining) while
 * foreign requests are in flight. */
typedef enum gw_shstate { SH_NONE = 0, SH_ACQUIRING, SH_HELD, SH_RELEASING } gw_shstate;

typedef struct gw_shared {
    gw_shstate state;
    char token[FL_TOKEN_LEN + 1];
    int64_t fence;
    int64_t renewed_mono;              /* last successful acquire/renew was sent about then */
    int hb_inflight;
    int64_t retry_after_mono;          /* after a failed acquire: not before */
    int unguarded;                     /* store unreachable: forwarding without it (fail open) */
} gw_shared;

/* Recently finished foreign requests, for a grant seen late: were they in
 * flight at its grant, or even admitted after it? */
#define GW_RING 1024
#define GW_CLOSED_MAX 64
typedef struct gw_done_rec {
    int64_t admit_est_ms, end_est_ms;
} gw_done_rec;

typedef struct gw_counters {
    uint64_t requests[2][3];           /* [foreign=0/holder=1][forwarded, refused, error] */
    uint64_t bad_requests;
    uint64_t upstream_502, upstream_504, client_aborts;
    uint64_t parked_lease, parked_refresh;
    uint64_t unguarded;                /* foreign forwarded without the shared lease (store down) */
    uint64_t shared_acquired, shared_released, shared_lost, shared_refused;
    uint64_t drains, drain_timeouts, foreign_cut_off;
    uint64_t grants_seen, reports_put, report_errors;
    uint64_t concurrent_foreign_total, in_flight_at_grant_total;
    uint64_t refreshes, refresh_errors;
    uint64_t bytes_out;
    uint64_t conns_accepted, upstream_retries, upstream_connects;
} gw_counters;

/* ---- the gateway --------------------------------------------------------- */

struct gw {
    cli_ctx *ctx;
    gw_opts o;
    struct event_base *base;
    evutil_socket_t lfd;               /* listening socket (-1 once stopping) */
    struct event *ev_accept;
    struct event *ev_term, *ev_int, *ev_tick, *ev_refreshed, *ev_results, *ev_kick;
    size_t nconns;                     /* open client connections */
    gw_cconn *conns;                   /* all of them */
    gw_cconn *grave_c;                 /* closed, freed by ev_kick's handler */
    gw_upconn *grave_u;
    int stopping;
    int64_t stop_deadline_mono;
    gw_store *store;

    gw_req *reqs;
    size_t nreqs;
    int foreign_inflight, holder_inflight;
    int64_t last_foreign_mono;         /* last foreign admission or completion */

    gw_upconn *up_idle;                /* idle upstream connections (LIFO) */
    int up_total;
    gw_req *upq_head, *upq_tail;       /* forwarded, waiting for a connection */

    gw_view view;
    int64_t view_mono;                 /* when the view was last derived */
    gw_shared sh;
    gw_acct *acct;                     /* the open grant (exclusive active), or NULL */
    gw_acct *closed;                   /* ended grants whose final report is not stored yet */
    size_t nclosed;
    gw_drain drain;
    gw_done_rec ring[GW_RING];
    size_t ring_next, ring_n;
    int refresh_wanted;                /* a re-read was asked of the worker, not done yet */
    unsigned ticks;

    gw_counters m;
};

/* ---- gw_lease.c ------------------------------------------------------------ */

/* Open the store handles, read the provider once (the gateway does not
 * start blind), start the threads.  0, or the exit code after printing. */
int gw_store_start(gw *g);
/* Stop and join the threads, close the handles. */
void gw_store_stop(gw *g);
/* The refresher's state, for status and metrics. */
void gw_store_health(gw *g, int *store_ok, int64_t *age_ms, uint64_t *refreshes, char *err,
                     size_t errlen);

/* Admission of a new request (r->writer, r->token filled).  Either
 * forwards it (gw_forward), parks it, or answers it (423/400); may free r. */
void gw_admit(gw_req *r);
/* Whether a request without a lease token would be refused now (the cached
 * check): then no "100 Continue" invites a body that only gets a 423. */
int gw_refuses_foreign(gw *g);
/* A request left the in-flight set (finished, failed or aborted). */
void gw_request_ended(gw_req *r);
/* The loop's events for the store threads (created here, freed by the caller). */
void gw_lease_events(gw *g, struct event **refreshed, struct event **results);
/* Free the accounting records (after the threads stopped). */
void gw_lease_free(gw *g);
/* The loop's periodic work: view, shared lease, drain timeout, reports. */
void gw_lease_tick(gw *g);
/* After SIGTERM: final state of the accounting, release the shared lease. */
void gw_lease_shutdown(gw *g);
/* 1 when nothing of the lease side is still in progress (puts, release). */
int gw_lease_idle(gw *g);
/* Prometheus lines of the lease side. */
void gw_lease_metrics(gw *g, struct evbuffer *out);
/* JSON of the lease side for /_fleet/status. */
json_t *gw_lease_status(gw *g);

/* ---- gw_proxy.c ------------------------------------------------------------ */

/* The listening socket's callback: accept connections. */
void gw_on_accept(evutil_socket_t fd, short what, void *arg);
/* Send r upstream (or queue it for a connection).  r may be answered (and
 * freed) before this returns. */
void gw_forward(gw_req *r);
/* Answer r with a JSON body (consumed) and free r.  fleet_state, if not
 * NULL, goes in X-Fleet-State. */
void gw_reply_json(gw_req *r, int code, json_t *body, int64_t retry_after_ms,
                   const char *fleet_state);
void gw_reply_error(gw_req *r, int code, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Stop accepting; close idle client connections; the others close after
 * their current answer. */
void gw_proxy_stop_accepting(gw *g);
/* Abort every live request and close every connection (shutdown past its
 * grace, or at exit). */
void gw_proxy_abort_all(gw *g);
/* Free what is left (after the loop ended). */
void gw_proxy_free(gw *g);
void gw_on_kick(evutil_socket_t fd, short what, void *arg);
void gw_pool_stats(const gw *g, size_t *idle, size_t *queued);
/* GET /_fleet/...: the gateway's own endpoints (gateway.c): fill the
 * status, content type and body of the answer. */
void gw_local(gw *g, const char *method, const char *path, int *code, const char **ctype,
              struct evbuffer *body);

/* ---- gw_report.c ------------------------------------------------------------ */

/* Also declared in serve.h for the daemon: srv_report_json(). */

#endif
