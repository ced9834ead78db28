/*
 * src/http/gw_proxy.c -- forwarding: the gateway as an HTTP/1.1 reverse
 * proxy, on non-blocking sockets and edge-triggered events.
 *
 * Why not evhttp.  The first version used evhttp on both sides; it worked,
 * but cost about 12 system calls per proxied request (an ioctl before
 * every read, an epoll_ctl around every read and write) against nginx's
 * 5, and reached half of nginx's throughput (docs/gateway.md).  Here each
 * socket is registered once, edge-triggered for reading and writing; a
 * read goes straight into an evbuffer's reserved space; a write is tried
 * at once and only waits for the socket when it is full.  evbuffers hold
 * the data (responses move between buffers without copying).
 *
 * What is parsed, and how strictly.  Request heads (request line and
 * header fields, at most GW_HEAD_MAX bytes and GW_MAX_HEADERS fields):
 * CRLF line ends, no obs-fold, token field names, no control bytes in
 * values; a body of Content-Length bytes or chunked (decoded; both at
 * once is refused, as request smuggling); Expect: 100-continue answered.
 * Response heads likewise; response bodies by Content-Length, chunked
 * (passed through as is to HTTP/1.1 clients, parsed only to find its end;
 * decoded for HTTP/1.0 clients) or up to the upstream's close (re-framed
 * as chunked for HTTP/1.1 clients).  Every piece of a body is written to
 * the client as soon as it is read: that is the streaming.  A client
 * slower than the upstream makes us stop reading the upstream past
 * GW_CLIENT_HIGH queued bytes (TCP then pushes back on it).
 *
 * Connections.  Client connections are kept alive as HTTP/1.1 says; one
 * request is answered at a time, pipelined ones wait in the input buffer.
 * Upstream connections are kept in an idle pool (up to
 * --upstream-connections in all); a request sent on a reused connection
 * that fails before any byte of response comes back is sent again on a
 * fresh one if its method is idempotent, as nginx does.
 *
 * Lifetimes.  A gw_req lives from a complete request to the end of its
 * answer, or until its client goes; then it is freed at once (its
 * upstream connection, mid-answer, is closed).  Connections are closed at
 * once but freed from g->ev_kick's handler (the "graveyard"), never inside
 * a callback of their own.
 */
#include "gw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define GW_HEAD_MAX 65536              /* a request or response head */
#define GW_LINE_MAX 4096               /* a chunk-size or trailer line */
#define GW_CLIENT_HIGH (1024 * 1024)   /* queued for a client: stop reading its upstream */
#define GW_CLIENT_LOW (256 * 1024)     /* ... and read again below this */
#define GW_PIPELINE_MAX (1024 * 1024)  /* following requests buffered while one is answered */
#define GW_READ_SIZE 16384
#define GW_LINGER_MS 2000              /* input drained after our last answer, before close */

/* Response body framing. */
enum { RM_NONE, RM_LENGTH, RM_CHUNKED_PASS, RM_CHUNKED_DECODE, RM_CLOSE_PASS, RM_CLOSE_CHUNK };
/* Chunked parser states. */
enum { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER, CH_DONE };

struct gw_cconn {
    gw *g;
    gw_cconn *prev, *next;             /* g->conns */
    gw_cconn *dnext;                   /* graveyard */
    evutil_socket_t fd;
    struct event ev;                   /* read and write, edge-triggered, added once */
    struct event timer;                /* slow or idle client */
    struct event kick;                 /* deferred: read and parse again */
    struct evbuffer *in, *out;
    gw_req *req;                       /* complete request being answered */
    gw_req *parsing;                   /* head read, body still arriving */
    uint64_t body_left;                /* Content-Length bytes still to arrive */
    int body_chunked;
    gw_chunk body_chunk;
    int dead;
    int lingering;                     /* answered and shut for writing; draining its input */
    int read_blocked;                  /* stopped reading (buffer full): read again later */
    int close_when_flushed;
    char peer[INET6_ADDRSTRLEN];
};

struct gw_upconn {
    gw *g;
    gw_upconn *next;                   /* idle list or graveyard */
    evutil_socket_t fd;
    struct event ev;
    struct event timer;                /* connect, response silence, idle */
    struct evbuffer *in, *out;
    gw_req *req;
    int connecting;
    int reused;                        /* served a request before this one */
    int paused;                        /* not reading: the client is slow */
    int head_done;                     /* the current response's head is parsed */
    int dead;
};

static void client_parse(gw_cconn *c);
static void client_flush(gw_cconn *c);
static void client_close(gw_cconn *c);
static void up_read(gw_upconn *u);
static void up_process(gw_upconn *u, int eof);

/* ---- small helpers ------------------------------------------------------ */

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static const char *reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 423: return "Locked";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* `name` (len bytes) equals `lit`, ignoring case. */
static int name_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/* Is `key` one of the comma-separated tokens of `list` (len bytes)? */
static int in_list(const char *list, size_t len, const char *key, size_t kl)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t s = i;
        while (i < len && list[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (e - s == kl && strncasecmp(list + s, key, kl) == 0)
            return 1;
    }
    return 0;
}

/* Headers of one hop only (RFC 9110 7.6.1), never forwarded. */
static int hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                      "Transfer-Encoding", "TE", "Trailer", "Upgrade",
                                      "Proxy-Authenticate", "Proxy-Authorization", NULL};
    for (const char *const *h = hop; *h; h++)
        if (name_is(name, len, *h))
            return 1;
    return 0;
}

/* "1234" -> 1234; -1 unless 1-18 decimal digits. */
static int64_t parse_len(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * Parse the header fields of a head block (NUL-ended, CRLF lines, the
 * first line already consumed up to `p`).  Fills hdrs.  Returns 0, 400
 * (malformed) or 431 (too many).
 */
static int parse_fields(char *head, char *p, gw_hdr *hdrs, int *nhdrs)
{
    *nhdrs = 0;
    for (;;) {
        char *eol = strstr(p, "\r\n");
        if (!eol)
            return 400;
        if (eol == p)
            return 0; /* the empty line */
        if (*p == ' ' || *p == '\t')
            return 400; /* obs-fold */
        char *colon = p;
        while (colon < eol && is_tchar((unsigned char)*colon))
            colon++;
        if (colon == p || colon == eol || *colon != ':')
            return 400;
        char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (char *q = v; q < ve; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return 400;
        }
        if (*nhdrs >= GW_MAX_HEADERS)
            return 431;
        gw_hdr *h = &hdrs[(*nhdrs)++];
        h->name = (uint32_t)(p - head);
        h->name_len = (uint32_t)(colon - p);
        h->value = (uint32_t)(v - head);
        h->value_len = (uint32_t)(ve - v);
        p = eol + 2;
    }
}

/* Pull a head ending in CRLF CRLF out of `in` into a NUL-ended copy.
 * 1: done (*out, *len set; the bytes drained); 0: need more; -1: too big. */
static int take_head(struct evbuffer *in, char **out, size_t *len)
{
    struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (p.pos < 0)
        return evbuffer_get_length(in) > GW_HEAD_MAX ? -1 : 0;
    size_t n = (size_t)p.pos + 4;
    if (n > GW_HEAD_MAX)
        return -1;
    char *h = malloc(n + 1);
    if (!h)
        return -1;
    evbuffer_remove(in, h, n);
    h[n] = '\0';
    *out = h;
    *len = n;
    return 1;
}

/*
 * Run the chunked framing over `in`.  Data bytes go to `out` (NULL: drop
 * them); with `pass`, so do the size lines, CRLFs and trailers (the body
 * goes on exactly as it came).  Returns 0 (need more, or ch->state is
 * CH_DONE), -1 malformed, -2 more data than `limit` (0: no limit).
 */
static int chunk_run(gw_chunk *ch, struct evbuffer *in, struct evbuffer *out, int pass,
                     uint64_t limit)
{
    while (ch->state != CH_DONE) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return 0;
        if (ch->state == CH_DATA) {
            size_t n = avail < ch->left ? avail : (size_t)ch->left;
            if (out)
                evbuffer_remove_buffer(in, out, n);
            else
                evbuffer_drain(in, n);
            ch->left -= n;
            if (ch->left == 0)
                ch->state = CH_DATA_CRLF;
            continue;
        }
        size_t eol = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
        if (p.pos < 0)
            return avail > GW_LINE_MAX ? -1 : 0;
        size_t ll = (size_t)p.pos;
        if (ll > GW_LINE_MAX)
            return -1;
        char line[GW_LINE_MAX + 1];
        evbuffer_copyout(in, line, ll);
        line[ll] = '\0';
        if (ch->state == CH_SIZE) {
            uint64_t v = 0;
            size_t i = 0;
            for (; i < ll && i < 16; i++) {
                char x = line[i];
                int d = x >= '0' && x <= '9' ? x - '0'
                        : x >= 'a' && x <= 'f' ? x - 'a' + 10
                        : x >= 'A' && x <= 'F' ? x - 'A' + 10
                                               : -1;
                if (d < 0)
                    break;
                v = v * 16 + (uint64_t)d;
            }
            if (i == 0 || i == 16 || (i < ll && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
                return -1;
            if (v == 0) {
                ch->state = CH_TRAILER;
            } else {
                ch->left = v;
                ch->total += v;
                if (limit && ch->total > limit)
                    return -2;
                ch->state = CH_DATA;
            }
        } else if (ch->state == CH_DATA_CRLF) {
            if (ll != 0)
                return -1;
            ch->state = CH_SIZE;
        } else if (ll == 0) { /* CH_TRAILER: the empty line ends the body */
            ch->state = CH_DONE;
        }
        if (pass && out)
            evbuffer_remove_buffer(in, out, ll + eol);
        else
            evbuffer_drain(in, ll + eol);
    }
    return 0;
}

/* ---- socket I/O ---------------------------------------------------------- */

/*
 * Read what the socket has into `in` (edge-triggered: a new edge comes
 * with new data, so a short read means "drained" and saves the EAGAIN
 * call).  Stops once `in` holds `cap` bytes (*blocked = 1: read again
 * later, the socket may hold more).  Returns 1 on EOF or error.
 */
static int read_some(evutil_socket_t fd, struct evbuffer *in, size_t cap, int *blocked)
{
    *blocked = 0;
    for (;;) {
        if (evbuffer_get_length(in) >= cap) {
            *blocked = 1;
            return 0;
        }
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(in, GW_READ_SIZE, v, 2);
        if (nv <= 0)
            return 1;
        size_t want = v[0].iov_len + (nv > 1 ? v[1].iov_len : 0);
        ssize_t n = readv(fd, (struct iovec *)v, nv);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            evbuffer_commit_space(in, v, 0);
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        }
        if ((size_t)n <= v[0].iov_len) {
            v[0].iov_len = (size_t)n;
            nv = 1;
        } else {
            v[1].iov_len = (size_t)n - v[0].iov_len;
        }
        evbuffer_commit_space(in, v, nv);
        if ((size_t)n < want)
            return 0;
    }
}

/* Write what the socket takes.  -1 on error. */
static int write_some(evutil_socket_t fd, struct evbuffer *out)
{
    while (evbuffer_get_length(out) > 0) {
        size_t before = evbuffer_get_length(out);
        int n = evbuffer_write(out, fd);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        if ((size_t)n < before)
            return 0; /* the socket is full; EPOLLOUT says when to go on */
    }
    return 0;
}

/* ---- freeing ---------------------------------------------------------------- */

static void access_log(gw_req *r)
{
    gw *g = r->g;
    if (!g->o.access_log)
        return;
    char path[256], st[16], ms[32], by[32];
    size_t n = r->target ? strcspn(r->target, "? ") : 0;
    if (n >= sizeof path)
        n = sizeof path - 1;
    memcpy(path, r->target ? r->target : "", n);
    path[n] = '\0';
    srv_log("info", "request", "method", r->method, "path", path, "status",
            srv_num(st, sizeof st, r->status), "ms",
            srv_num(ms, sizeof ms, (long long)(srv_mono_ms() - r->arrive_mono_ms)), "writer",
            r->writer, "kind", r->admit_mono_ms ? (r->foreign ? "foreign" : "holder") : "-",
            "bytes", srv_num(by, sizeof by, (long long)r->bytes), "peer",
            r->c ? r->c->peer : "", NULL);
}

static void upq_remove(gw *g, gw_req *r)
{
    gw_req *prev = NULL;
    for (gw_req *q = g->upq_head; q; prev = q, q = q->qnext)
        if (q == r) {
            if (prev)
                prev->qnext = r->qnext;
            else
                g->upq_head = r->qnext;
            if (g->upq_tail == r)
                g->upq_tail = prev;
            r->qnext = NULL;
            return;
        }
}

static void req_free(gw_req *r)
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
    if (r->c) {
        if (r->c->req == r)
            r->c->req = NULL;
        if (r->c->parsing == r)
            r->c->parsing = NULL;
    }
    if (r->u && r->u->req == r)
        r->u->req = NULL;
    if (r->body)
        evbuffer_free(r->body);
    if (r->head) {
        explicit_bzero(r->head, r->head_len); /* it may hold a lease token */
        free(r->head);
    }
    explicit_bzero(r->token, sizeof r->token);
    free(r);
    if (g->stopping && !g->reqs)
        event_active(g->ev_tick, EV_TIMEOUT, 0); /* shutdown may go on */
}

static void reap(gw *g)
{
    event_active(g->ev_kick, EV_TIMEOUT, 0);
}

/* Close an upstream connection for good (not reusable: failed, or
 * closed mid-answer).  The request it served, if any, is the caller's. */
static void up_discard(gw_upconn *u)
{
    gw *g = u->g;
    if (u->dead)
        return;
    u->dead = 1;
    if (u->req) {
        u->req->u = NULL;
        u->req = NULL;
    }
    /* Out of the idle list, if it is there. */
    for (gw_upconn **pp = &g->up_idle; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    event_del(&u->ev);
    event_del(&u->timer);
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    g->up_total--;
    u->next = g->grave_u;
    g->grave_u = u;
    reap(g);
}

/* ---- answering the client ------------------------------------------------------- */

static void arm_client_timer(gw_cconn *c)
{
    struct timeval tv = tv_ms(c->g->o.client_timeout_ms);
    evtimer_add(&c->timer, &tv);
}

/* The answer to c's request is queued in c->out: the next one may come. */
static void client_answered(gw_cconn *c, int close_after)
{
    if (c->dead)
        return;
    if (close_after || c->g->stopping)
        c->close_when_flushed = 1;
    client_flush(c);
    if (c->dead || c->close_when_flushed)
        return;
    arm_client_timer(c); /* idle keep-alive, or the next request's deadline */
    if (evbuffer_get_length(c->in) > 0 || c->read_blocked)
        event_active(&c->kick, EV_TIMEOUT, 0);
}

/* Write a whole answer of our own (head and body) to c. */
static void put_answer(gw_cconn *c, const gw_req *r, int code, const char *ctype,
                       struct evbuffer *body, int64_t retry_after_ms, const char *fleet_state,
                       int close_after)
{
    struct evbuffer *o = c->out;
    size_t blen = body ? evbuffer_get_length(body) : 0;
    evbuffer_add_printf(o,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                        "Content-Length: %zu\r\n",
                        code, reason(code), ctype, blen);
    if (retry_after_ms > 0)
        evbuffer_add_printf(o, "Retry-After: %lld\r\n", srv_retry_after_s(retry_after_ms));
    if (fleet_state)
        evbuffer_add_printf(o, "X-Fleet-State: %s\r\n", fleet_state);
    if (close_after)
        evbuffer_add(o, "Connection: close\r\n", 19);
    else if (r && r->minor == 0)
        evbuffer_add(o, "Connection: keep-alive\r\n", 24);
    evbuffer_add(o, "\r\n", 2);
    if (body && !(r && r->is_head))
        evbuffer_add_buffer(o, body);
}

void gw_reply_json(gw_req *r, int code, json_t *body, int64_t retry_after_ms,
                   const char *fleet_state)
{
    gw *g = r->g;
    r->status = code;
    gw_request_ended(r);
    access_log(r);
    gw_cconn *c = r->c;
    if (c && !c->dead) {
        if (c->req == r)
            c->req = NULL;
        struct evbuffer *b = evbuffer_new();
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (b && text) {
            evbuffer_add(b, text, strlen(text));
            evbuffer_add(b, "\n", 1);
        }
        int close_after = !r->keepalive || g->stopping || code == 400 || code == 413 ||
                          code == 431 || !b || !text;
        put_answer(c, r, b && text ? code : 500, "application/json", b, retry_after_ms,
                   fleet_state, close_after);
        free(text);
        if (b)
            evbuffer_free(b);
        r->c = NULL;
        client_answered(c, close_after);
    }
    json_decref(body);
    req_free(r);
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
    gw_reply_json(r, code, o, code == 503 ? 1000 : 0, NULL);
}

/* The client went away (or must be cut off): its request goes too. */
static void req_abort(gw_req *r)
{
    gw *g = r->g;
    if (!r->status || r->status < 400)
        r->status = r->headers_sent ? r->status : 499;
    g->m.client_aborts++;
    access_log(r);
    if (r->u)
        up_discard(r->u); /* mid-answer: it cannot serve another request */
    gw_request_ended(r);
    req_free(r); /* also clears c->req */
}

static void client_close(gw_cconn *c)
{
    gw *g = c->g;
    if (c->dead)
        return;
    c->dead = 1;
    if (c->req)
        req_abort(c->req);
    if (c->parsing)
        req_free(c->parsing); /* also clears c->parsing */
    event_del(&c->ev);
    event_del(&c->timer);
    event_del(&c->kick);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->nconns--;
    c->dnext = g->grave_c;
    g->grave_c = c;
    reap(g);
}

/*
 * Our last answer is out: shut the connection for writing and read (and
 * drop) what the client still sends until it closes, for at most
 * GW_LINGER_MS.  Closing with unread input makes the kernel send a reset,
 * which can destroy the answer before the client has read it -- exactly
 * the answers to malformed requests, whose input we did not read.
 */
static void client_linger(gw_cconn *c)
{
    if (c->lingering)
        return;
    c->lingering = 1;
    shutdown(c->fd, SHUT_WR);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    struct timeval tv = tv_ms(GW_LINGER_MS);
    evtimer_add(&c->timer, &tv);
    event_active(&c->kick, EV_TIMEOUT, 0); /* there may be input waiting already */
}

static void client_flush(gw_cconn *c)
{
    if (c->dead || c->lingering)
        return;
    if (write_some(c->fd, c->out) < 0) {
        client_close(c);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    if (left == 0 && c->close_when_flushed) {
        client_linger(c);
        return;
    }
    if (left > 0)
        arm_client_timer(c); /* a client that stops reading is dropped */
    else if (c->req)
        event_del(&c->timer);
    /* Below the low mark again: the upstream may go on. */
    gw_req *r = c->req;
    if (r && r->u && r->u->paused && left < GW_CLIENT_LOW) {
        r->u->paused = 0;
        up_read(r->u);
    }
}

/* ---- the upstream side ------------------------------------------------------ */

static void on_up_io(evutil_socket_t fd, short what, void *arg);
static void on_up_timer(evutil_socket_t fd, short what, void *arg);

static gw_upconn *up_new(gw *g)
{
    gw_upconn *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->g = g;
    u->fd = -1;
    u->in = evbuffer_new();
    u->out = evbuffer_new();
    if (!u->in || !u->out) {
        if (u->in)
            evbuffer_free(u->in);
        if (u->out)
            evbuffer_free(u->out);
        free(u);
        return NULL;
    }
    evtimer_assign(&u->timer, g->base, on_up_timer, u);
    g->up_total++;
    return u;
}

/* Start connecting.  0, or -1 with errno (the connection is discarded). */
static int up_connect(gw_upconn *u)
{
    gw *g = u->g;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (strchr(g->o.up_host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)g->o.up_port);
        inet_pton(AF_INET6, g->o.up_host, &a->sin6_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)g->o.up_port);
        inet_pton(AF_INET, g->o.up_host, &a->sin_addr);
        sl = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g->m.upstream_connects++;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    u->fd = fd;
    u->connecting = 1;
    event_assign(&u->ev, g->base, fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, on_up_io, u);
    if (event_add(&u->ev, NULL) != 0) {
        close(fd);
        u->fd = -1;
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static gw_upconn *pool_get(gw *g)
{
    gw_upconn *u = g->up_idle;
    if (u) {
        g->up_idle = u->next;
        u->next = NULL;
        event_del(&u->timer);
        return u;
    }
    if (g->up_total >= g->o.upstream_conns)
        return NULL;
    return up_new(g);
}

/* The response is complete: the connection goes back to the pool if it
 * can serve another request, and a queued request may take it. */
static void up_done(gw_upconn *u, int reusable)
{
    gw *g = u->g;
    u->req = NULL;
    u->head_done = 0;
    u->paused = 0;
    if (!reusable || evbuffer_get_length(u->in) > 0 || g->stopping) {
        up_discard(u);
    } else {
        u->reused = 1;
        u->next = g->up_idle;
        g->up_idle = u;
        struct timeval tv = tv_ms(g->o.upstream_timeout_ms); /* idle close */
        evtimer_add(&u->timer, &tv);
    }
    if (g->upq_head)
        event_active(g->ev_kick, EV_TIMEOUT, 0);
}

static void up_arm(gw_upconn *u)
{
    struct timeval tv = tv_ms(u->g->o.upstream_timeout_ms);
    evtimer_add(&u->timer, &tv);
}

/* The request on u failed: send it again, or answer 502/504, or cut the
 * client off if its answer had begun.  `timeout`: silence, not an error;
 * `err`: an errno, EPROTO for an answer that is not valid HTTP. */
static void up_fail(gw_upconn *u, int timeout, int err)
{
    gw *g = u->g;
    gw_req *r = u->req;
    int reused = u->reused;
    up_discard(u);
    if (!r)
        return;
    if (!r->got_bytes && reused && r->idempotent && !timeout && r->tries < 3) {
        /* A kept-alive connection the upstream had closed: the request
         * never reached it. */
        g->m.upstream_retries++;
        gw_forward(r);
        return;
    }
    const char *up = g->o.up_display;
    if (timeout)
        g->m.upstream_504++;
    else
        g->m.upstream_502++;
    g->m.requests[r->foreign ? 0 : 1][2]++;
    if (r->headers_sent) {
        char st[16];
        srv_log("warn", "upstream_failed", "upstream", up, "after", "headers", "error",
                timeout ? "timeout" : err ? strerror(err) : "connection closed", "status",
                srv_num(st, sizeof st, r->status), NULL);
        gw_cconn *c = r->c;
        gw_request_ended(r);
        access_log(r);
        req_free(r);
        if (c)
            client_close(c); /* only a cut tells the client the body is incomplete */
        return;
    }
    if (timeout)
        gw_reply_error(r, 504, "upstream_timeout",
                       "upstream %s: no response within --upstream-timeout (%llds)", up,
                       (long long)(g->o.upstream_timeout_ms / 1000));
    else if (err == EPROTO)
        gw_reply_error(r, 502, "bad_gateway", "upstream %s: sent an invalid response", up);
    else if (!r->got_bytes && err)
        gw_reply_error(r, 502, "bad_gateway", "upstream %s: cannot connect or send (%s)", up,
                       strerror(err));
    else
        gw_reply_error(r, 502, "bad_gateway",
                       "upstream %s: closed the connection before a complete response", up);
}

/* The target in origin form: an absolute target ("http://host/p?q") loses
 * its scheme and authority.  What is forwarded and what is matched against
 * our own /_fleet/ paths must be the same path. */
static void origin_form(const gw_req *r, const char **t, size_t *tl)
{
    *t = r->target;
    *tl = r->target_len;
    if (*tl > 7 && strncasecmp(*t, "http://", 7) == 0) {
        const char *s = memchr(*t + 7, '/', *tl - 7);
        const char *q = memchr(*t + 7, '?', *tl - 7);
        if (q && (!s || q < s))
            s = q;
        if (s) {
            *tl -= (size_t)(s - *t);
            *t = s;
        } else {
            *t = "/";
            *tl = 1;
        }
    }
}

/* Write the request head (rewritten) and body to u->out. */
static void build_request(gw_req *r, gw_upconn *u)
{
    gw *g = r->g;
    struct evbuffer *o = u->out;
    const char *conn = NULL;
    size_t conn_len = 0;
    int host = 0;
    for (int i = 0; i < r->nhdrs; i++) {
        const gw_hdr *h = &r->hdrs[i];
        if (name_is(r->head + h->name, h->name_len, "Connection")) {
            conn = r->head + h->value;
            conn_len = h->value_len;
        }
    }
    const char *t;
    size_t tl;
    origin_form(r, &t, &tl);
    evbuffer_add_printf(o, "%s ", r->method);
    if (t[0] == '?')
        evbuffer_add(o, "/", 1);
    evbuffer_add(o, t, tl);
    evbuffer_add(o, " HTTP/1.1\r\n", 11);
    for (int i = 0; i < r->nhdrs; i++) {
        const gw_hdr *h = &r->hdrs[i];
        const char *n = r->head + h->name;
        /* Names with '_' are dropped, as nginx does by default: CGI and
         * WSGI hosts fold '_' and '-' together, so X_Fleet_Fence would
         * arrive there as the fence we set. */
        if (hop_by_hop(n, h->name_len) || name_is(n, h->name_len, "Content-Length") ||
            name_is(n, h->name_len, "Expect") || name_is(n, h->name_len, "X-Fleet-Fence") ||
            memchr(n, '_', h->name_len) || (conn && in_list(conn, conn_len, n, h->name_len)))
            continue;
        if (name_is(n, h->name_len, "Host"))
            host = 1;
        evbuffer_add(o, n, h->name_len);
        evbuffer_add(o, ": ", 2);
        evbuffer_add(o, r->head + h->value, h->value_len);
        evbuffer_add(o, "\r\n", 2);
    }
    if (!host)
        evbuffer_add_printf(o, strchr(g->o.up_host, ':') ? "Host: [%s]:%d\r\n" : "Host: %s:%d\r\n",
                            g->o.up_host, g->o.up_port);
    size_t blen = evbuffer_get_length(r->body);
    if (blen > 0 || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
        !strcmp(r->method, "PATCH"))
        evbuffer_add_printf(o, "Content-Length: %zu\r\n", blen);
    if (!r->foreign)
        evbuffer_add_printf(o, "X-Fleet-Fence: %lld\r\n", (long long)r->fence);
    evbuffer_add(o, "\r\n", 2);
    /* By reference: the body stays with r for a second attempt. */
    if (blen > 0)
        evbuffer_add_buffer_reference(o, r->body);
}

static void send_upstream(gw_req *r, gw_upconn *u)
{
    r->tries++;
    r->u = u;
    u->req = r;
    u->head_done = 0;
    r->state = GWR_UPSTREAM;
    evbuffer_drain(u->out, evbuffer_get_length(u->out));
    build_request(r, u);
    if (u->fd < 0 && up_connect(u) != 0) {
        up_fail(u, 0, errno);
        return;
    }
    up_arm(u);
    if (!u->connecting && write_some(u->fd, u->out) < 0)
        up_fail(u, 0, errno);
}

void gw_forward(gw_req *r)
{
    gw *g = r->g;
    gw_upconn *u = pool_get(g);
    if (!u) {
        if (g->up_total >= g->o.upstream_conns) {
            r->state = GWR_QUEUED;
            r->qnext = NULL;
            if (g->upq_tail)
                g->upq_tail->qnext = r;
            else
                g->upq_head = r;
            g->upq_tail = r;
            return;
        }
        g->m.requests[r->foreign ? 0 : 1][2]++;
        gw_reply_error(r, 500, "nomem", "out of memory");
        return;
    }
    send_upstream(r, u);
}

/* Decide the response framing and write the client's response head. */
static int start_response(gw_req *r, char *head, int up_minor, int code,
                          const char *rsn, size_t rsn_len, const gw_hdr *hdrs, int n)
{
    gw_cconn *c = r->c;
    const char *conn = NULL, *te = NULL, *cl = NULL;
    size_t conn_len = 0, te_len = 0, cl_len = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = head + hdrs[i].name;
        size_t nl = hdrs[i].name_len;
        if (name_is(nm, nl, "Connection")) {
            conn = head + hdrs[i].value;
            conn_len = hdrs[i].value_len;
        } else if (name_is(nm, nl, "Transfer-Encoding")) {
            te = head + hdrs[i].value;
            te_len = hdrs[i].value_len;
        } else if (name_is(nm, nl, "Content-Length")) {
            if (cl && (cl_len != hdrs[i].value_len || memcmp(cl, head + hdrs[i].value, cl_len)))
                return -1; /* two different lengths */
            cl = head + hdrs[i].value;
            cl_len = hdrs[i].value_len;
        }
    }
    int up_close = up_minor == 0 ? !(conn && in_list(conn, conn_len, "keep-alive", 10))
                                 : (conn && in_list(conn, conn_len, "close", 5));
    if (r->is_head || code == 204 || code == 304) {
        r->rmode = RM_NONE;
    } else if (te) {
        /* The last coding must be chunked: nothing else frames a body. */
        size_t e = te_len;
        while (e > 0 && (te[e - 1] == ' ' || te[e - 1] == '\t'))
            e--;
        if (e < 7 || strncasecmp(te + e - 7, "chunked", 7) != 0 ||
            (e > 7 && te[e - 8] != ',' && te[e - 8] != ' '))
            return -1;
        r->rmode = r->minor >= 1 ? RM_CHUNKED_PASS : RM_CHUNKED_DECODE;
        memset(&r->rchunk, 0, sizeof r->rchunk);
    } else if (cl) {
        int64_t len = parse_len(cl, cl_len);
        if (len < 0)
            return -1;
        r->rmode = len > 0 ? RM_LENGTH : RM_NONE;
        r->rleft = (uint64_t)len;
    } else {
        r->rmode = r->minor >= 1 ? RM_CLOSE_CHUNK : RM_CLOSE_PASS;
        up_close = 1;
    }
    r->up_keep = !up_close;
    r->close_after = !r->keepalive || r->g->stopping || r->rmode == RM_CHUNKED_DECODE ||
                     r->rmode == RM_CLOSE_PASS;

    struct evbuffer *o = c->out;
    evbuffer_add_printf(o, "HTTP/1.1 %d ", code);
    evbuffer_add(o, rsn, rsn_len);
    evbuffer_add(o, "\r\n", 2);
    for (int i = 0; i < n; i++) {
        const char *nm = head + hdrs[i].name;
        size_t nl = hdrs[i].name_len;
        if (hop_by_hop(nm, nl) || (conn && in_list(conn, conn_len, nm, nl)) ||
            (name_is(nm, nl, "Content-Length") && te))
            continue;
        evbuffer_add(o, nm, nl);
        evbuffer_add(o, ": ", 2);
        evbuffer_add(o, head + hdrs[i].value, hdrs[i].value_len);
        evbuffer_add(o, "\r\n", 2);
    }
    if (r->rmode == RM_CHUNKED_PASS || r->rmode == RM_CLOSE_CHUNK)
        evbuffer_add(o, "Transfer-Encoding: chunked\r\n", 28);
    if (r->close_after)
        evbuffer_add(o, "Connection: close\r\n", 19);
    else if (r->minor == 0)
        evbuffer_add(o, "Connection: keep-alive\r\n", 24);
    evbuffer_add(o, "\r\n", 2);
    r->status = code;
    r->headers_sent = 1;
    return 0;
}

/* Parse the response head in u->in.  1: parsed (or a 1xx skipped: call
 * again); 0: need more; -1: invalid. */
static int up_head(gw_upconn *u)
{
    gw_req *r = u->req;
    char *head = NULL;
    size_t len = 0;
    int t = take_head(u->in, &head, &len);
    if (t <= 0)
        return t;
    /* "HTTP/1.x NNN reason" */
    int rc = -1;
    if (len >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && (head[7] == '0' || head[7] == '1') &&
        head[8] == ' ' && head[9] >= '1' && head[9] <= '5' && head[10] >= '0' &&
        head[10] <= '9' && head[11] >= '0' && head[11] <= '9' &&
        (head[12] == ' ' || head[12] == '\r')) {
        int code = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        char *eol = strstr(head, "\r\n");
        const char *rsn = head[12] == ' ' ? head + 13 : head + 12;
        size_t rl = (size_t)(eol - rsn);
        for (size_t i = 0; i < rl; i++)
            if ((unsigned char)rsn[i] < 0x20 && rsn[i] != '\t')
                rl = 0;
        gw_hdr hdrs[GW_MAX_HEADERS];
        int n = 0;
        if (parse_fields(head, eol + 2, hdrs, &n) == 0) {
            if (code < 200) {
                rc = code == 101 ? -1 : 1; /* interim (100, 103): wait for the real one */
            } else if (start_response(r, head, head[7] - '0', code,
                                      rl ? rsn : reason(code), rl ? rl : strlen(reason(code)),
                                      hdrs, n) == 0) {
                u->head_done = 1;
                rc = 1;
            }
        }
    }
    free(head);
    return rc;
}

/* Move what the body framing allows from u->in to the client.  1 when
 * the response is complete, 0 for more, -1 on a framing error. */
static int up_body(gw_upconn *u, int eof)
{
    gw_req *r = u->req;
    struct evbuffer *o = r->c->out;
    size_t before = evbuffer_get_length(o);
    int done = 0, rc = 0;
    switch (r->rmode) {
    case RM_NONE:
        done = 1;
        break;
    case RM_LENGTH: {
        size_t n = evbuffer_get_length(u->in);
        if (n > r->rleft)
            n = (size_t)r->rleft;
        evbuffer_remove_buffer(u->in, o, n);
        r->rleft -= n;
        done = r->rleft == 0;
        break;
    }
    case RM_CHUNKED_PASS:
    case RM_CHUNKED_DECODE:
        if (chunk_run(&r->rchunk, u->in, o, r->rmode == RM_CHUNKED_PASS, 0) != 0)
            rc = -1;
        done = r->rchunk.state == CH_DONE;
        break;
    case RM_CLOSE_PASS:
        evbuffer_add_buffer(o, u->in);
        done = eof;
        break;
    case RM_CLOSE_CHUNK: {
        size_t n = evbuffer_get_length(u->in);
        if (n > 0) {
            evbuffer_add_printf(o, "%zx\r\n", n);
            evbuffer_add_buffer(o, u->in);
            evbuffer_add(o, "\r\n", 2);
        }
        if (eof) {
            evbuffer_add(o, "0\r\n\r\n", 5);
            done = 1;
        }
        break;
    }
    }
    size_t moved = evbuffer_get_length(o) - before;
    if (moved > 0) {
        r->bytes += moved;
        r->chunks++;
        r->g->m.bytes_out += moved;
    }
    return rc < 0 ? -1 : done;
}

static void up_process(gw_upconn *u, int eof)
{
    gw_req *r = u->req;
    if (!r) {
        /* Idle: the upstream closed it (or sent what nobody asked for). */
        up_discard(u);
        return;
    }
    if (!r->c) {
        up_discard(u);
        return;
    }
    while (!u->head_done) {
        int h = up_head(u);
        if (h < 0) {
            up_fail(u, 0, EPROTO); /* EPROTO: an invalid answer, not a lost one */
            return;
        }
        if (h == 0) {
            if (eof)
                up_fail(u, 0, 0);
            return;
        }
    }
    gw_cconn *c = r->c;
    int done = up_body(u, eof);
    if (done < 0 || (!done && eof)) {
        up_fail(u, 0, 0); /* after the head: cuts the client */
        return;
    }
    if (done) {
        /* In flight ends with the upstream's answer: that is what a
         * drain waits for (the client may still be reading our buffer). */
        int close_after = r->close_after;
        int keep = r->up_keep && !eof;
        gw_request_ended(r);
        access_log(r);
        r->c = NULL;
        if (c->req == r)
            c->req = NULL;
        up_done(u, keep);
        req_free(r);
        client_answered(c, close_after);
        return;
    }
    client_flush(c);
    if (c->dead)
        return;
    if (evbuffer_get_length(c->out) > GW_CLIENT_HIGH)
        u->paused = 1;
    else
        up_arm(u); /* progress: the silence timer starts again */
}

static void up_read(gw_upconn *u)
{
    for (;;) {
        if (u->dead || u->paused || u->connecting)
            return;
        /* Until the head is parsed, a bounded read; after it, all there is
         * (the client's backpressure pauses us instead). */
        int blocked;
        int eof = read_some(u->fd, u->in,
                            u->head_done ? (size_t)-1 : GW_HEAD_MAX + GW_READ_SIZE, &blocked);
        if (u->req && evbuffer_get_length(u->in) > 0)
            u->req->got_bytes = 1; /* the host saw the request: a resend would repeat it */
        if (blocked && !u->head_done && evbuffer_get_length(u->in) > GW_HEAD_MAX) {
            up_fail(u, 0, 0);
            return;
        }
        up_process(u, eof);
        /* Stopped at the cap: no new edge will come for what is left. */
        if (!blocked || eof || !u->req)
            return;
    }
}

static void on_up_io(evutil_socket_t fd, short what, void *arg)
{
    gw_upconn *u = arg;
    (void)fd;
    if (u->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err) {
            up_fail(u, 0, err);
            return;
        }
        u->connecting = 0;
        what |= EV_WRITE;
    }
    if ((what & EV_WRITE) && evbuffer_get_length(u->out) > 0 &&
        write_some(u->fd, u->out) < 0) {
        up_fail(u, 0, errno);
        return;
    }
    if (what & EV_READ)
        up_read(u);
}

static void on_up_timer(evutil_socket_t fd, short what, void *arg)
{
    gw_upconn *u = arg;
    (void)fd;
    (void)what;
    if (!u->req) {
        up_discard(u); /* idle too long */
        return;
    }
    if (u->paused) {
        up_arm(u); /* our client is slow, not the upstream */
        return;
    }
    up_fail(u, 1, 0);
}

void gw_on_kick(evutil_socket_t fd, short what, void *arg)
{
    gw *g = arg;
    (void)fd;
    (void)what;
    while (g->grave_c) {
        gw_cconn *c = g->grave_c;
        g->grave_c = c->dnext;
        evbuffer_free(c->in);
        evbuffer_free(c->out);
        free(c);
    }
    while (g->grave_u) {
        gw_upconn *u = g->grave_u;
        g->grave_u = u->next;
        evbuffer_free(u->in);
        evbuffer_free(u->out);
        free(u);
    }
    while (g->upq_head) {
        gw_upconn *u = pool_get(g);
        if (!u)
            return;
        gw_req *r = g->upq_head;
        g->upq_head = r->qnext;
        if (!g->upq_head)
            g->upq_tail = NULL;
        r->qnext = NULL;
        r->state = GWR_UPSTREAM;
        send_upstream(r, u);
    }
}

void gw_pool_stats(const gw *g, size_t *idle, size_t *queued)
{
    *idle = *queued = 0;
    for (const gw_upconn *u = g->up_idle; u; u = u->next)
        (*idle)++;
    for (const gw_req *r = g->upq_head; r; r = r->qnext)
        (*queued)++;
}

/* ---- requests from clients -------------------------------------------------------- */

/* A request whose head could not be parsed: answer with a bare error and
 * close (the stream cannot be trusted any more). */
static void bad_head(gw_cconn *c, int code, const char *msg)
{
    gw *g = c->g;
    g->m.bad_requests++;
    json_t *o = json_object();
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    if (o && b) {
        json_object_set_new(o, "error", json_string(code == 505 ? "version" : "invalid"));
        json_object_set_new(o, "message", json_string(msg));
        text = json_dumps(o, JSON_COMPACT);
        if (text) {
            evbuffer_add(b, text, strlen(text));
            evbuffer_add(b, "\n", 1);
        }
    }
    put_answer(c, NULL, code, "application/json", b, 0, NULL, 1);
    free(text);
    json_decref(o);
    if (b)
        evbuffer_free(b);
    c->close_when_flushed = 1;
    client_flush(c);
}

/* The head of r is read: parse it.  0, or an HTTP status with msg set. */
static int parse_request(gw_req *r, char *msg, size_t ml)
{
    char *h = r->head;
    char *sp1 = strchr(h, ' ');
    char *eol = strstr(h, "\r\n");
    if (!sp1 || sp1 > eol || sp1 == h || (size_t)(sp1 - h) >= sizeof r->method) {
        snprintf(msg, ml, "request line: method must be 1-%zu token characters",
                 sizeof r->method - 1);
        return 400;
    }
    for (char *p = h; p < sp1; p++)
        if (!is_tchar((unsigned char)*p)) {
            snprintf(msg, ml, "request line: malformed method");
            return 400;
        }
    memcpy(r->method, h, (size_t)(sp1 - h));
    r->method[sp1 - h] = '\0';
    char *t = sp1 + 1;
    char *sp2 = memchr(t, ' ', (size_t)(eol - t));
    if (!sp2 || sp2 == t) {
        snprintf(msg, ml, "request line: must be METHOD TARGET HTTP/1.x");
        return 400;
    }
    for (char *p = t; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(msg, ml, "request target: must be visible ASCII");
            return 400;
        }
    if (!(t[0] == '/' || (sp2 - t == 1 && t[0] == '*') ||
          (sp2 - t > 7 && strncasecmp(t, "http://", 7) == 0))) {
        snprintf(msg, ml, "request target: must be a path, or an http:// URL");
        return 400;
    }
    r->target = t;
    r->target_len = (size_t)(sp2 - t);
    const char *v = sp2 + 1;
    if (eol - v != 8 || strncmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1')) {
        snprintf(msg, ml, "request line: only HTTP/1.0 and HTTP/1.1 are served");
        return eol - v == 8 && strncmp(v, "HTTP/", 5) == 0 ? 505 : 400;
    }
    r->minor = v[7] - '0';
    int rc = parse_fields(h, eol + 2, r->hdrs, &r->nhdrs);
    if (rc) {
        snprintf(msg, ml, rc == 431 ? "request head: more than %d header fields"
                                    : "request head: a malformed header field (or a folded "
                                      "line)",
                 GW_MAX_HEADERS);
        return rc;
    }
    return 0;
}

/* The semantics of the head: framing, connection, Expect, X-Fleet-*.
 * 0 or a status (msg set). */
static int request_meta(gw_cconn *c, gw_req *r, int *expect_continue, char *msg, size_t ml)
{
    gw *g = r->g;
    int hosts = 0, nw = 0, nt = 0, te = 0, ka = 0, close = 0;
    int64_t cl = -2;
    *expect_continue = 0;
    for (int i = 0; i < r->nhdrs; i++) {
        const gw_hdr *hd = &r->hdrs[i];
        const char *n = r->head + hd->name, *v = r->head + hd->value;
        size_t nl = hd->name_len, vl = hd->value_len;
        if (name_is(n, nl, "Host")) {
            hosts++;
        } else if (name_is(n, nl, "Content-Length")) {
            int64_t x = parse_len(v, vl);
            if (x < 0 || (cl >= 0 && x != cl)) {
                snprintf(msg, ml, "Content-Length: must be one decimal length");
                return 400;
            }
            cl = x;
        } else if (name_is(n, nl, "Transfer-Encoding")) {
            if (!name_is(v, vl, "chunked")) {
                snprintf(msg, ml, "Transfer-Encoding: only chunked is supported");
                return 501;
            }
            te++;
        } else if (name_is(n, nl, "Connection")) {
            close |= in_list(v, vl, "close", 5);
            ka |= in_list(v, vl, "keep-alive", 10);
        } else if (name_is(n, nl, "Expect")) {
            if (!name_is(v, vl, "100-continue")) {
                snprintf(msg, ml, "Expect: only 100-continue is supported");
                return 417;
            }
            *expect_continue = 1;
        } else if (name_is(n, nl, "X-Fleet-Writer") || name_is(n, nl, "X-Fleet-Lease")) {
            int writer = name_is(n, nl, "X-Fleet-Writer");
            if ((writer ? ++nw : ++nt) > 1) {
                snprintf(msg, ml, "%s: given more than once", writer ? "X-Fleet-Writer" : "X-Fleet-Lease");
                return 400;
            }
            char val[FL_TEXT_MAX * 4 + 2], err[FL_MESSAGE_MAX];
            if (vl >= sizeof val) {
                snprintf(msg, ml, "%s: must be at most %d bytes, got %zu",
                         writer ? "X-Fleet-Writer" : "X-Fleet-Lease",
                         writer ? FL_TEXT_MAX : FL_TOKEN_LEN, vl);
                return 400;
            }
            memcpy(val, v, vl);
            val[vl] = '\0';
            if (writer) {
                if (fl_validate_text("X-Fleet-Writer", val, err, sizeof err) != FL_OK) {
                    snprintf(msg, ml, "%s", err);
                    return 400;
                }
                memcpy(r->writer, val, vl + 1); /* validated: at most FL_TEXT_MAX bytes */
            } else {
                if (fl_validate_token(val, err, sizeof err) != FL_OK) {
                    snprintf(msg, ml, "X-Fleet-Lease: %s", err);
                    return 400;
                }
                memcpy(r->token, val, FL_TOKEN_LEN + 1);
            }
        }
    }
    if (te && cl >= 0) {
        snprintf(msg, ml, "request head: Content-Length and Transfer-Encoding together");
        return 400;
    }
    if (r->minor == 1 && hosts != 1) {
        snprintf(msg, ml, "Host: HTTP/1.1 needs exactly one, got %d", hosts);
        return 400;
    }
    if (cl > (int64_t)g->o.max_body) {
        snprintf(msg, ml, "body: %lld bytes, more than --max-body (%lld)", (long long)cl,
                 (long long)g->o.max_body);
        return 413;
    }
    r->keepalive = r->minor == 1 ? !close : ka && !close;
    c->body_chunked = te > 0;
    memset(&c->body_chunk, 0, sizeof c->body_chunk);
    c->body_left = cl > 0 ? (uint64_t)cl : 0;
    r->is_head = !strcmp(r->method, "HEAD");
    r->idempotent = !strcmp(r->method, "GET") || r->is_head || !strcmp(r->method, "OPTIONS") ||
                    !strcmp(r->method, "PUT") || !strcmp(r->method, "DELETE");
    return 0;
}

/* A complete request: our own endpoints, or admission. */
static void dispatch(gw_cconn *c, gw_req *r)
{
    gw *g = c->g;
    c->req = r;
    event_del(&c->timer);
    const char *t;
    size_t tl;
    origin_form(r, &t, &tl);
    if (t[0] == '/' && tl >= 8 && strncmp(t, "/_fleet/", 8) == 0) {
        char path[64];
        size_t n = 0;
        while (n < tl && t[n] != '?' && t[n] != ' ')
            n++;
        if (n >= sizeof path)
            n = sizeof path - 1;
        memcpy(path, t, n);
        path[n] = '\0';
        struct evbuffer *b = evbuffer_new();
        int code = 500;
        const char *ctype = "application/json";
        /* This request is not work in progress of the proxy: leave it out
         * of the counts the endpoint shows. */
        g->nreqs--;
        if (b)
            gw_local(g, r->method, path, &code, &ctype, b);
        g->nreqs++;
        r->status = code;
        access_log(r);
        c->req = NULL;
        r->c = NULL;
        put_answer(c, r, code, ctype, b, 0, NULL, !r->keepalive);
        if (b)
            evbuffer_free(b);
        int close_after = !r->keepalive;
        req_free(r);
        client_answered(c, close_after);
        return;
    }
    if (!strcmp(r->method, "TRACE") || !strcmp(r->method, "CONNECT")) {
        g->m.bad_requests++;
        gw_reply_error(r, 405, "method_not_allowed", "%s: the gateway does not forward %s",
                       r->method, r->method);
        return;
    }
    if (g->stopping) {
        gw_reply_error(r, 503, "shutting_down",
                       "the gateway is shutting down; retry elsewhere or in a moment");
        return;
    }
    gw_admit(r);
}

/* Parse what c->in holds: heads, bodies, and hand complete requests on. */
static void client_parse(gw_cconn *c)
{
    gw *g = c->g;
    while (!c->dead && !c->req && !c->close_when_flushed) {
        gw_req *r = c->parsing;
        if (!r) {
            if (evbuffer_get_length(c->in) == 0)
                return;
            r = calloc(1, sizeof *r);
            int t = r ? take_head(c->in, &r->head, &r->head_len) : -1;
            if (t == 0) {
                free(r);
                return;
            }
            if (t < 0) {
                free(r);
                bad_head(c, 431, "request head: larger than 64 KiB (or out of memory)");
                return;
            }
            r->g = g;
            r->c = c;
            r->arrive_mono_ms = srv_mono_ms();
            snprintf(r->writer, sizeof r->writer, "(anonymous)");
            r->next = g->reqs;
            if (g->reqs)
                g->reqs->prev = r;
            g->reqs = r;
            g->nreqs++;
            r->body = evbuffer_new();
            char msg[FL_MESSAGE_MAX + 64];
            int st = r->body ? parse_request(r, msg, sizeof msg) : 500;
            int cont = 0;
            if (!st)
                st = request_meta(c, r, &cont, msg, sizeof msg);
            if (st) {
                if (st == 500)
                    snprintf(msg, sizeof msg, "out of memory");
                r->c = NULL;
                req_free(r);
                bad_head(c, st, msg);
                return;
            }
            c->parsing = r;
            /* A foreign request the lease will refuse gets no 100: the
             * client then sends its body only after its own wait (RFC 9110
             * 10.1.1) and gets the 423, instead of being invited to upload
             * up to --max-body for nothing.  A token is decided after the
             * body, as ever (it may be one the view has not seen yet). */
            if (cont && (c->body_left > 0 || c->body_chunked) && evbuffer_get_length(c->in) == 0 &&
                (r->token[0] || !gw_refuses_foreign(g)))
                evbuffer_add_printf(c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        /* The body. */
        if (c->body_chunked) {
            int rc = chunk_run(&c->body_chunk, c->in, r->body, 0, (uint64_t)g->o.max_body);
            if (rc != 0) {
                c->parsing = NULL;
                r->c = NULL;
                req_free(r);
                bad_head(c, rc == -2 ? 413 : 400,
                         rc == -2 ? "body: more than --max-body" : "body: malformed chunked encoding");
                return;
            }
            if (c->body_chunk.state != CH_DONE) {
                client_flush(c); /* a 100 Continue */
                return;
            }
        } else if (c->body_left > 0) {
            size_t n = evbuffer_get_length(c->in);
            if (n > c->body_left)
                n = (size_t)c->body_left;
            evbuffer_remove_buffer(c->in, r->body, n);
            c->body_left -= n;
            if (c->body_left > 0) {
                client_flush(c);
                return;
            }
        }
        c->parsing = NULL;
        dispatch(c, r);
    }
}

static void client_read(gw_cconn *c)
{
    if (c->dead)
        return;
    if (c->lingering) {
        int blocked, eof;
        do {
            eof = read_some(c->fd, c->in, GW_READ_SIZE * 4, &blocked);
            evbuffer_drain(c->in, evbuffer_get_length(c->in));
        } while (blocked && !eof);
        if (eof)
            client_close(c);
        return;
    }
    /* While a request is answered only so much of the next is taken in. */
    size_t cap = c->req ? GW_PIPELINE_MAX
                        : (size_t)c->g->o.max_body + GW_HEAD_MAX + GW_READ_SIZE;
    int blocked;
    int eof = read_some(c->fd, c->in, cap, &blocked);
    c->read_blocked = blocked;
    if (eof) {
        /* Gone (or half-closed: treated alike, as nginx does). */
        client_close(c);
        return;
    }
    client_parse(c);
}

static void on_client_io(evutil_socket_t fd, short what, void *arg)
{
    gw_cconn *c = arg;
    (void)fd;
    if (what & EV_READ)
        client_read(c);
    if (!c->dead && (what & EV_WRITE) && evbuffer_get_length(c->out) > 0)
        client_flush(c);
}

static void on_client_timer(evutil_socket_t fd, short what, void *arg)
{
    gw_cconn *c = arg;
    (void)fd;
    (void)what;
    /* Idle, too slow to send a request, not reading our answer, or done
     * lingering. */
    if (!c->req || evbuffer_get_length(c->out) > 0 || c->lingering)
        client_close(c);
}

static void on_client_kick(evutil_socket_t fd, short what, void *arg)
{
    gw_cconn *c = arg;
    (void)fd;
    (void)what;
    if (c->read_blocked || c->lingering)
        client_read(c);
    else
        client_parse(c);
}

void gw_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    gw *g = arg;
    (void)what;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) {
                static int64_t warned;
                int64_t now = srv_mono_ms();
                if (now - warned > 10000) {
                    warned = now;
                    srv_log("warn", "accept_failed", "error", strerror(errno), NULL);
                }
            }
            return;
        }
        gw_cconn *c = calloc(1, sizeof *c);
        if (!c || !(c->in = evbuffer_new()) || !(c->out = evbuffer_new())) {
            if (c && c->in)
                evbuffer_free(c->in);
            free(c);
            close(fd);
            continue;
        }
        c->g = g;
        c->fd = fd;
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer, sizeof c->peer);
        event_assign(&c->ev, g->base, fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, on_client_io, c);
        evtimer_assign(&c->timer, g->base, on_client_timer, c);
        event_assign(&c->kick, g->base, -1, 0, on_client_kick, c);
        if (event_add(&c->ev, NULL) != 0) {
            evbuffer_free(c->in);
            evbuffer_free(c->out);
            free(c);
            close(fd);
            continue;
        }
        c->next = g->conns;
        if (g->conns)
            g->conns->prev = c;
        g->conns = c;
        g->nconns++;
        g->m.conns_accepted++;
        arm_client_timer(c);
    }
}

/* ---- stopping ------------------------------------------------------------------------ */

void gw_proxy_stop_accepting(gw *g)
{
    if (g->ev_accept)
        event_del(g->ev_accept);
    if (g->lfd >= 0)
        close(g->lfd);
    g->lfd = -1;
    /* Connections between requests go now; the others after their answer
     * (client_answered closes them once stopping). */
    for (gw_cconn *c = g->conns, *next; c; c = next) {
        next = c->next;
        if (!c->req)
            client_close(c);
    }
}

void gw_proxy_abort_all(gw *g)
{
    while (g->conns)
        client_close(g->conns);
    /* Requests without a connection cannot exist; parked ones went with theirs. */
    while (g->up_idle)
        up_discard(g->up_idle);
}

void gw_proxy_free(gw *g)
{
    gw_proxy_abort_all(g);
    gw_on_kick(-1, 0, g); /* the graveyard */
}
