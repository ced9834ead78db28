/*
 * src/http/gw_proxy.c -- forwarding: the gateway as an HTTP/1.1 reverse
 * proxy on evhttp.
 *
 * Why evhttp on both sides rather than a bufferevent-level proxy: evhttp
 * already parses and bounds requests (header and body limits, request
 * timeouts), de-chunks the upstream's answer and hands it over piece by
 * piece as it arrives (the chunked callback fires for every chunk of a
 * chunked body, and for every read of a Content-Length or read-to-close
 * body), and re-frames it for the client with evhttp_send_reply_start /
 * _chunk / _end.  A byte-level splice would be faster but would have to
 * parse HTTP again to find where one response ends, to strip hop-by-hop
 * headers and to answer 502/504 itself; the overhead benchmark
 * (docs/gateway.md) shows what evhttp costs.
 *
 * Lifetimes.  A gw_req lives from the client's request to the end of its
 * answer.  The client's evhttp_request belongs to evhttp until we answer
 * it; if its connection dies first, evhttp calls our close callback and
 * (because we had not answered) leaves the request to us to free: the
 * teardown then runs from a deferred event, never inside evhttp's own
 * call stack.  The upstream request is evhttp's: it frees it after the
 * done callback, or at evhttp_cancel_request (no done callback then).
 * evhttp_make_request may call the done callback before it returns (a
 * refused connect), so nothing touches the gw_req after that call.
 *
 * Streaming.  Response headers go out as soon as the upstream's arrive;
 * every piece of body goes out as it arrives.  A client slower than the
 * upstream would make the output grow without bound, so past
 * GW_CLIENT_HIGH bytes queued for the client the upstream connection
 * stops reading until the client has taken what is queued (TCP then
 * pushes back on the upstream).
 */
#include "gw.h"

#include <errno.h>
#include <event2/http_struct.h> /* major/minor: 2.1 has no getter for the version */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define GW_CLIENT_HIGH (1024 * 1024)
#define GW_UP_MAX_HEADERS 65536

struct gw_upconn {
    struct evhttp_connection *evcon;
    gw_upconn *next;
};

static void on_up_done(struct evhttp_request *u, void *arg);

int gw_method_name(enum evhttp_cmd_type m, const char **name)
{
    const char *n = NULL;
    switch (m) {
    case EVHTTP_REQ_GET: n = "GET"; break;
    case EVHTTP_REQ_POST: n = "POST"; break;
    case EVHTTP_REQ_HEAD: n = "HEAD"; break;
    case EVHTTP_REQ_PUT: n = "PUT"; break;
    case EVHTTP_REQ_DELETE: n = "DELETE"; break;
    case EVHTTP_REQ_OPTIONS: n = "OPTIONS"; break;
    case EVHTTP_REQ_PATCH: n = "PATCH"; break;
    case EVHTTP_REQ_TRACE: n = "TRACE"; break;
    case EVHTTP_REQ_CONNECT: n = "CONNECT"; break;
    default: n = "?"; break;
    }
    *name = n;
    return m == EVHTTP_REQ_TRACE || m == EVHTTP_REQ_CONNECT ? 0 : 1;
}

/* ---- the upstream connection pool ------------------------------------- */

static gw_upconn *pool_get(gw *g)
{
    gw_upconn *uc = g->up_idle;
    if (uc) {
        g->up_idle = uc->next;
        uc->next = NULL;
        return uc;
    }
    if (g->up_total >= g->o.upstream_conns)
        return NULL;
    uc = calloc(1, sizeof *uc);
    if (!uc)
        return NULL;
    uc->evcon = evhttp_connection_base_new(g->base, NULL, g->o.up_host, (ev_uint16_t)g->o.up_port);
    if (!uc->evcon) {
        free(uc);
        return NULL;
    }
    struct timeval tv = {.tv_sec = (time_t)(g->o.upstream_timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(g->o.upstream_timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(uc->evcon, &tv);
    /* No retries: a request may not be idempotent, and a refused connect
     * should be a prompt 502, not a hidden back-off. */
    evhttp_connection_set_retries(uc->evcon, 0);
    evhttp_connection_set_max_headers_size(uc->evcon, GW_UP_MAX_HEADERS);
    g->up_total++;
    return uc;
}

/* Back to the idle list.  The connection may have been reset by an error
 * or a "Connection: close": evhttp reconnects it on its next request. */
static void pool_put(gw *g, gw_upconn *uc)
{
    if (!uc)
        return;
    uc->next = g->up_idle;
    g->up_idle = uc;
    if (g->upq_head)
        event_active(g->ev_kick, EV_TIMEOUT, 0);
}

void gw_pool_stats(const gw *g, size_t *idle, size_t *queued)
{
    *idle = *queued = 0;
    for (const gw_upconn *u = g->up_idle; u; u = u->next)
        (*idle)++;
    for (const gw_req *r = g->upq_head; r; r = r->qnext)
        (*queued)++;
}

void gw_pool_free(gw *g)
{
    while (g->up_idle) {
        gw_upconn *uc = g->up_idle;
        g->up_idle = uc->next;
        evhttp_connection_free(uc->evcon);
        free(uc);
        g->up_total--;
    }
}

static void upq_remove(gw *g, gw_req *r)
{
    for (gw_req **pp = &g->upq_head; *pp; pp = &(*pp)->qnext)
        if (*pp == r) {
            *pp = r->qnext;
            if (g->upq_tail == r) {
                g->upq_tail = NULL;
                for (gw_req *q = g->upq_head; q; q = q->qnext)
                    g->upq_tail = q;
            }
            r->qnext = NULL;
            return;
        }
}

/* ---- freeing and answering ---------------------------------------------- */

static void access_log(gw_req *r)
{
    gw *g = r->g;
    if (!g->o.access_log)
        return;
    const char *m;
    gw_method_name(r->method, &m);
    char st[16], ms[32], by[32];
    const char *path = "";
    if (r->creq) {
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->creq);
        path = u && evhttp_uri_get_path(u) ? evhttp_uri_get_path(u) : "";
    }
    srv_log("info", "request", "method", m, "path", path, "status",
            srv_num(st, sizeof st, r->status), "ms",
            srv_num(ms, sizeof ms, (long long)(srv_mono_ms() - r->arrive_mono_ms)), "writer",
            r->writer, "kind", r->admitted || r->admit_mono_ms ? (r->foreign ? "foreign" : "holder")
                                                              : "refused",
            "bytes", srv_num(by, sizeof by, (long long)r->bytes), NULL);
}

void gw_req_free(gw_req *r)
{
    gw *g = r->g;
    if (r->prev)
        r->prev->next = r->next;
    else
        g->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    g->nreqs--;
    if (r->state == GWR_QUEUED)
        upq_remove(g, r);
    if (r->cconn && !r->client_gone)
        evhttp_connection_set_closecb(r->cconn, NULL, NULL);
    if (r->ev_abort)
        event_free(r->ev_abort);
    explicit_bzero(r->token, sizeof r->token);
    free(r);
    if (g->stopping && !g->reqs)
        event_active(g->ev_tick, EV_TIMEOUT, 0); /* shutdown may go on now */
}

/* The answer is queued: detach from the client connection first, since
 * evhttp may free it (and call the close callback) inside the send. */
static struct evhttp_request *take_client(gw_req *r)
{
    struct evhttp_request *c = r->creq;
    if (r->cconn)
        evhttp_connection_set_closecb(r->cconn, NULL, NULL);
    r->cconn = NULL;
    r->creq = NULL;
    return c;
}

void gw_reply_json(gw_req *r, int code, json_t *body, int64_t retry_after_ms)
{
    r->status = code;
    gw_request_ended(r);
    if (r->client_gone || !r->creq) {
        /* Nobody to answer; the pending teardown frees r. */
        json_decref(body);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->creq);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (retry_after_ms > 0) {
        char b[32];
        snprintf(b, sizeof b, "%lld", srv_retry_after_s(retry_after_ms));
        evhttp_add_header(h, "Retry-After", b);
    }
    if (r->g->stopping)
        evhttp_add_header(h, "Connection", "close");
    struct evbuffer *b = evbuffer_new();
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    access_log(r);
    struct evhttp_request *c = take_client(r);
    if (!b || !text) {
        free(text);
        if (b)
            evbuffer_free(b);
        evhttp_send_error(c, 500, NULL);
    } else {
        evbuffer_add(b, text, strlen(text));
        evbuffer_add(b, "\n", 1);
        free(text);
        evhttp_send_reply(c, code, NULL, b);
        evbuffer_free(b);
    }
    gw_req_free(r);
}

void gw_reply_error(gw_req *r, int code, const char *id, const char *fmt, ...)
{
    char msg[FL_MESSAGE_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "error", json_string(id));
        json_object_set_new(o, "message", cli_jstr(msg));
    }
    gw_reply_json(r, code, o, code == 503 ? 1000 : 0);
}

/*
 * Close the client connection without finishing the answer (the upstream
 * failed mid-body, or the client vanished): evhttp handles it like a
 * broken connection, orphans our request and calls on_client_close.
 */
static void drop_client(gw_req *r)
{
    if (r->client_gone || !r->cconn)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->cconn);
    bufferevent_trigger_event(bev, BEV_EVENT_READING | BEV_EVENT_EOF, 0);
}

static void on_client_close(struct evhttp_connection *evcon, void *arg)
{
    gw_req *r = arg;
    (void)evcon;
    if (r->client_gone)
        return;
    r->client_gone = 1;
    r->cconn = NULL;
    /* Not answered yet: evhttp took it off the connection and it is ours
     * to free.  Otherwise it is freed with the connection, right after. */
    if (r->creq && evhttp_request_get_connection(r->creq) == NULL)
        r->orphan = 1;
    else
        r->creq = NULL;
    event_active(r->ev_abort, EV_TIMEOUT, 0);
}

static void on_abort(evutil_socket_t fd, short what, void *arg)
{
    gw_req *r = arg;
    gw *g = r->g;
    (void)fd;
    (void)what;
    g->m.client_aborts++;
    if (r->ureq) {
        struct evhttp_request *u = r->ureq;
        r->ureq = NULL;
        evhttp_cancel_request(u); /* no done callback; resets the upstream connection */
    }
    if (r->uc) {
        pool_put(g, r->uc);
        r->uc = NULL;
    }
    if (r->state == GWR_QUEUED) {
        upq_remove(g, r);
        r->state = GWR_DONE;
    }
    if (!r->status)
        r->status = 499; /* nginx's "client closed request", for the log */
    access_log(r);
    gw_request_ended(r);
    if (r->orphan && r->creq)
        evhttp_request_free(r->creq);
    r->creq = NULL;
    gw_req_free(r);
}

/* ---- headers -------------------------------------------------------------- */

static int listed_in(const char *list, const char *key)
{
    if (!list)
        return 0;
    size_t kl = strlen(key);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == kl && strncasecmp(p, key, kl) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* Headers of one hop only (RFC 9110 7.6.1), never forwarded. */
static int hop_by_hop(const char *key, const char *connection)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                      "Transfer-Encoding", "TE", "Trailer", "Upgrade",
                                      "Proxy-Authenticate", "Proxy-Authorization", NULL};
    for (const char *const *h = hop; *h; h++)
        if (strcasecmp(key, *h) == 0)
            return 1;
    return listed_in(connection, key);
}

static void copy_request_headers(gw_req *r, struct evkeyvalq *in, struct evkeyvalq *out)
{
    const char *conn = evhttp_find_header(in, "Connection");
    for (struct evkeyval *e = in->tqh_first; e; e = e->next.tqe_next) {
        if (hop_by_hop(e->key, conn) || strcasecmp(e->key, "Content-Length") == 0 ||
            strcasecmp(e->key, "Expect") == 0 || strcasecmp(e->key, "X-Fleet-Fence") == 0)
            continue;
        evhttp_add_header(out, e->key, e->value);
    }
    if (!evhttp_find_header(out, "Host")) {
        char host[128];
        snprintf(host, sizeof host, "%s:%d", r->g->o.up_host, r->g->o.up_port);
        evhttp_add_header(out, "Host", host);
    }
    if (!r->foreign) {
        char f[32];
        snprintf(f, sizeof f, "%lld", (long long)r->fence);
        evhttp_add_header(out, "X-Fleet-Fence", f);
    }
}

static void copy_response_headers(struct evkeyvalq *in, struct evkeyvalq *out)
{
    const char *conn = evhttp_find_header(in, "Connection");
    for (struct evkeyval *e = in->tqh_first; e; e = e->next.tqe_next)
        if (!hop_by_hop(e->key, conn))
            evhttp_add_header(out, e->key, e->value);
}

/* ---- upstream callbacks -------------------------------------------------- */

static struct bufferevent *up_bev(gw_req *r)
{
    return r->uc ? evhttp_connection_get_bufferevent(r->uc->evcon) : NULL;
}

static int on_up_headers(struct evhttp_request *u, void *arg)
{
    gw_req *r = arg;
    if (r->client_gone || !r->creq)
        return -1; /* stop reading; the teardown is already scheduled */
    int code = evhttp_request_get_response_code(u);
    const char *reason = evhttp_request_get_response_code_line(u);
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->creq);
    copy_response_headers(evhttp_request_get_input_headers(u), out);
    /* evhttp would answer an HTTP/1.0 keep-alive client with
     * "Content-Length: 0" and then our streamed body: without a length
     * from the upstream, such a client gets the body up to a close. */
    if (r->creq->major == 1 && r->creq->minor == 0 && !evhttp_find_header(out, "Content-Length"))
        evhttp_remove_header(evhttp_request_get_input_headers(r->creq), "Connection");
    if (r->g->stopping)
        evhttp_add_header(out, "Connection", "close");
    r->status = code;
    r->headers_sent = 1;
    evhttp_send_reply_start(r->creq, code, reason && reason[0] ? reason : NULL);
    return 0;
}

static void on_client_drained(struct evhttp_connection *evcon, void *arg)
{
    gw_req *r = arg;
    (void)evcon;
    if (r->paused) {
        r->paused = 0;
        struct bufferevent *b = up_bev(r);
        if (b)
            bufferevent_enable(b, EV_READ);
    }
}

static void on_up_chunk(struct evhttp_request *u, void *arg)
{
    gw_req *r = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(u);
    size_t n = evbuffer_get_length(in);
    if (r->client_gone || !r->creq || !r->headers_sent || n == 0)
        return; /* evhttp drains the buffer after we return */
    r->bytes += n;
    r->chunks++;
    r->g->m.bytes_out += n;
    struct evhttp_connection *cc = evhttp_request_get_connection(r->creq);
    size_t queued = cc ? evbuffer_get_length(bufferevent_get_output(
                             evhttp_connection_get_bufferevent(cc)))
                       : 0;
    if (queued + n > GW_CLIENT_HIGH && !r->paused) {
        struct bufferevent *b = up_bev(r);
        if (b) {
            bufferevent_disable(b, EV_READ);
            r->paused = 1;
        }
        evhttp_send_reply_chunk_with_cb(r->creq, in, on_client_drained, r);
        return;
    }
    evhttp_send_reply_chunk(r->creq, in);
}

static void on_up_error(enum evhttp_request_error err, void *arg)
{
    gw_req *r = arg;
    r->up_error = (int)err;
    r->up_errno = errno;
}

static void up_failed(gw_req *r)
{
    gw *g = r->g;
    const char *up = g->o.up_display;
    int timeout = r->up_error == EVREQ_HTTP_TIMEOUT;
    if (timeout)
        g->m.upstream_504++;
    else
        g->m.upstream_502++;
    g->m.requests[r->foreign ? 0 : 1][2]++;
    if (r->headers_sent) {
        /* The status is gone; only a broken connection tells the client
         * that the body is incomplete. */
        char st[16];
        srv_log("warn", "upstream_failed", "upstream", up, "after", "headers", "error",
                timeout ? "timeout" : "connection", "status", srv_num(st, sizeof st, r->status),
                NULL);
        gw_request_ended(r);
        drop_client(r);
        if (!r->client_gone) { /* no connection to drop: free it here */
            take_client(r);
            gw_req_free(r);
        }
        return;
    }
    switch (r->up_error) {
    case EVREQ_HTTP_TIMEOUT:
        gw_reply_error(r, 504, "upstream_timeout",
                       "upstream %s: no response within --upstream-timeout (%llds)", up,
                       (long long)(g->o.upstream_timeout_ms / 1000));
        break;
    case EVREQ_HTTP_EOF:
        gw_reply_error(r, 502, "bad_gateway",
                       "upstream %s: closed the connection before a complete response", up);
        break;
    case EVREQ_HTTP_INVALID_HEADER:
    case EVREQ_HTTP_DATA_TOO_LONG:
        gw_reply_error(r, 502, "bad_gateway",
                       "upstream %s: sent an invalid response (or headers over %d bytes)", up,
                       GW_UP_MAX_HEADERS);
        break;
    default:
        gw_reply_error(r, 502, "bad_gateway", "upstream %s: cannot connect%s%s%s", up,
                       r->up_errno ? " (" : "", r->up_errno ? strerror(r->up_errno) : "",
                       r->up_errno ? ")" : "");
        break;
    }
}

static void on_up_done(struct evhttp_request *u, void *arg)
{
    gw_req *r = arg;
    gw *g = r->g;
    int ok = u && evhttp_request_get_response_code(u) != 0 && r->up_error < 0;
    if (!ok && !r->up_errno)
        r->up_errno = errno;
    r->ureq = NULL;
    gw_upconn *uc = r->uc;
    r->uc = NULL;
    pool_put(g, uc);
    r->state = GWR_DONE;
    if (r->client_gone) {
        gw_request_ended(r);
        return; /* the scheduled teardown frees r */
    }
    if (!ok) {
        up_failed(r);
        return;
    }
    /* In-flight ends when the upstream is done: that is what the drain
     * waits for (the client may still be reading our buffers). */
    gw_request_ended(r);
    if (!r->headers_sent) {
        gw_reply_error(r, 502, "bad_gateway", "upstream %s: response without headers",
                       g->o.up_display);
        return;
    }
    access_log(r);
    struct evhttp_request *c = take_client(r);
    evhttp_send_reply_end(c);
    gw_req_free(r);
}

/* ---- forwarding ------------------------------------------------------------ */

/* The request target for the upstream: origin form ("/path?query"). */
static int target_of(struct evhttp_request *creq, char *buf, size_t len)
{
    const char *raw = evhttp_request_get_uri(creq);
    if (raw && (raw[0] == '/' || strcmp(raw, "*") == 0)) {
        int n = snprintf(buf, len, "%s", raw);
        return n > 0 && (size_t)n < len ? 0 : -1;
    }
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(creq);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    int n = snprintf(buf, len, "%s%s%s", path && path[0] ? path : "/", q ? "?" : "", q ? q : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static void send_upstream(gw_req *r, gw_upconn *uc)
{
    gw *g = r->g;
    char *target = malloc(16384);
    if (!target || target_of(r->creq, target, 16384) != 0) {
        free(target);
        pool_put(g, uc);
        g->m.requests[r->foreign ? 0 : 1][2]++;
        gw_reply_error(r, 414, "invalid", "request target: longer than 16383 bytes");
        return;
    }
    struct evhttp_request *u = evhttp_request_new(on_up_done, r);
    if (!u) {
        free(target);
        pool_put(g, uc);
        gw_reply_error(r, 500, "nomem", "out of memory");
        return;
    }
    evhttp_request_set_header_cb(u, on_up_headers);
    evhttp_request_set_chunked_cb(u, on_up_chunk);
    evhttp_request_set_error_cb(u, on_up_error);
    struct evkeyvalq *out = evhttp_request_get_output_headers(u);
    copy_request_headers(r, evhttp_request_get_input_headers(r->creq), out);
    struct evbuffer *body = evhttp_request_get_input_buffer(r->creq);
    size_t blen = evbuffer_get_length(body);
    if (blen > 0 || r->method == EVHTTP_REQ_POST || r->method == EVHTTP_REQ_PUT ||
        r->method == EVHTTP_REQ_PATCH) {
        char cl[32];
        snprintf(cl, sizeof cl, "%zu", blen);
        evhttp_add_header(out, "Content-Length", cl);
        evbuffer_add_buffer(evhttp_request_get_output_buffer(u), body);
    }
    r->uc = uc;
    r->ureq = u;
    r->state = GWR_UPSTREAM;
    /* May call on_up_done (and free r) before it returns. */
    int rc = evhttp_make_request(uc->evcon, u, r->method, target);
    free(target);
    if (rc != 0) {
        /* Not sent, and the callback did not run (evhttp freed u). */
        r->ureq = NULL;
        r->uc = NULL;
        pool_put(g, uc);
        r->up_error = -1;
        up_failed(r);
    }
}

void gw_forward(gw_req *r)
{
    gw *g = r->g;
    gw_upconn *uc = pool_get(g);
    if (!uc) {
        r->state = GWR_QUEUED;
        r->qnext = NULL;
        if (g->upq_tail)
            g->upq_tail->qnext = r;
        else
            g->upq_head = r;
        g->upq_tail = r;
        return;
    }
    send_upstream(r, uc);
}

void gw_on_kick(evutil_socket_t fd, short what, void *arg)
{
    gw *g = arg;
    (void)fd;
    (void)what;
    while (g->upq_head) {
        gw_upconn *uc = pool_get(g);
        if (!uc)
            return;
        gw_req *r = g->upq_head;
        g->upq_head = r->qnext;
        if (!g->upq_head)
            g->upq_tail = NULL;
        r->qnext = NULL;
        r->state = GWR_UPSTREAM;
        send_upstream(r, uc);
    }
}

/* ---- new requests ------------------------------------------------------------- */

void gw_on_request(struct evhttp_request *creq, void *arg)
{
    gw *g = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(creq);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path && strncmp(path, "/_fleet/", 8) == 0) {
        gw_local(g, creq, path);
        return;
    }
    gw_req *r = calloc(1, sizeof *r);
    if (!r || !(r->ev_abort = event_new(g->base, -1, 0, on_abort, r))) {
        free(r);
        evhttp_send_error(creq, 500, NULL);
        return;
    }
    r->g = g;
    r->creq = creq;
    r->cconn = evhttp_request_get_connection(creq);
    r->method = evhttp_request_get_command(creq);
    r->up_error = -1;
    r->arrive_mono_ms = srv_mono_ms();
    r->next = g->reqs;
    if (g->reqs)
        g->reqs->prev = r;
    g->reqs = r;
    g->nreqs++;
    if (r->cconn)
        evhttp_connection_set_closecb(r->cconn, on_client_close, r);
    snprintf(r->writer, sizeof r->writer, "(anonymous)");

    const char *mname;
    if (!gw_method_name(r->method, &mname)) {
        g->m.bad_requests++;
        gw_reply_error(r, 405, "method_not_allowed", "%s: the gateway does not forward %s",
                       mname, mname);
        return;
    }
    if (g->stopping) {
        gw_reply_error(r, 503, "shutting_down",
                       "the gateway is shutting down; retry elsewhere or in a moment");
        return;
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(creq);
    const char *writer = NULL, *token = NULL;
    int nw = 0, nt = 0;
    for (struct evkeyval *e = in->tqh_first; e; e = e->next.tqe_next) {
        if (strcasecmp(e->key, "X-Fleet-Writer") == 0) {
            writer = e->value;
            nw++;
        } else if (strcasecmp(e->key, "X-Fleet-Lease") == 0) {
            token = e->value;
            nt++;
        }
    }
    char err[FL_MESSAGE_MAX];
    if (nw > 1 || nt > 1) {
        g->m.bad_requests++;
        gw_reply_error(r, 400, "invalid", "%s: given more than once",
                       nw > 1 ? "X-Fleet-Writer" : "X-Fleet-Lease");
        return;
    }
    if (writer) {
        if (fl_validate_text("X-Fleet-Writer", writer, err, sizeof err) != FL_OK) {
            g->m.bad_requests++;
            gw_reply_error(r, 400, "invalid", "%s", err);
            return;
        }
        snprintf(r->writer, sizeof r->writer, "%s", writer);
    }
    if (token) {
        if (fl_validate_token(token, err, sizeof err) != FL_OK) {
            g->m.bad_requests++;
            gw_reply_error(r, 400, "invalid", "X-Fleet-Lease: %s", err);
            return;
        }
        memcpy(r->token, token, FL_TOKEN_LEN + 1);
    }
    gw_admit(r);
}

/* ---- periodic checks and shutdown ------------------------------------------- */

/* evhttp does not read from a client while its request is answered, so a
 * client that hangs up while we wait (parked, queued, or for the
 * upstream's first byte) is only visible on the socket.  MSG_PEEK: a
 * pipelined next request stays for evhttp. */
static int client_gone(gw_req *r)
{
    if (!r->cconn)
        return 0;
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(r->cconn));
    if (fd < 0)
        return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void gw_proxy_tick(gw *g)
{
    for (gw_req *r = g->reqs; r; r = r->next)
        if (!r->client_gone && !r->headers_sent && r->creq && client_gone(r))
            drop_client(r);
}

void gw_proxy_abort_all(gw *g)
{
    for (gw_req *r = g->reqs, *next; r; r = next) {
        next = r->next;
        if (!r->client_gone && r->cconn)
            drop_client(r);
        else if (!r->client_gone)
            event_active(r->ev_abort, EV_TIMEOUT, 0);
    }
}
