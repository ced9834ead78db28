/*
 * tests/gateway/stub_upstream.c -- a stand-in for an inference host, for
 * the gateway's tests and its overhead benchmark.
 *
 *   stub_upstream [--port-file FILE] [--log FILE] [--listen HOST:PORT]
 *
 * Listens (default 127.0.0.1, a free port written to --port-file) and
 * answers every request; the query string shapes the answer:
 *   chunks=N     body in N pieces (default 1), sent delay_ms apart
 *   delay_ms=D   between pieces, and before the first (default 0)
 *   sse=1        text/event-stream, each piece "data: {...}\n\n"
 *   length=1     send a Content-Length instead of chunked encoding
 *   status=CODE  the status (default 200)
 *   close=1      hang up without answering (the gateway must say 502)
 *   close_after=N  hang up after N pieces (a body cut in the middle)
 *   echo=1       answer with the request's headers, one "Name: value" line
 *                each, and "body-bytes: N" (what the gateway forwarded)
 *   sleep_ms=S   answer nothing for S ms first (the gateway's timeout: 504)
 * With no query string it answers at once with a small fixed body.
 *
 * --log: one line per request when its answer ends (or its client is
 * gone), fields separated by spaces, times in microseconds since the
 * epoch (CLOCK_REALTIME, comparable with the store's clock on this
 * machine):
 *   id=7 start_us=... end_us=... method=GET path=/x status=200 chunks=3
 *   writer=chat lease=- fence=-
 * "-" is an absent header.  This is the ground truth the end-to-end test
 * holds the gateway's report against.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

typedef struct stub_req {
    struct evhttp_request *req;
    struct event *ev;
    long id;
    int64_t start_us;
    int chunks, sent, sse, length, status, hang, close_after;
    long delay_ms, sleep_ms;
    char method[8];
    char path[256];
    char writer[128], lease[64], fence[32];
} stub_req;

static FILE *log_f;
static long next_id;
static struct event_base *base;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Header values for the log: no spaces or control bytes, bounded. */
static void field(char *dst, size_t cap, const char *v)
{
    if (!v || !v[0]) {
        snprintf(dst, cap, "-");
        return;
    }
    size_t j = 0;
    for (const char *p = v; *p && j + 1 < cap; p++)
        dst[j++] = (*p <= ' ' || *p == 0x7f) ? '_' : *p;
    dst[j] = '\0';
}

static void log_end(stub_req *s)
{
    if (!log_f)
        return;
    fprintf(log_f, "id=%ld start_us=%lld end_us=%lld method=%s path=%s status=%d chunks=%d "
                   "writer=%s lease=%s fence=%s\n",
            s->id, (long long)s->start_us, (long long)now_us(), s->method, s->path, s->status,
            s->sent, s->writer, s->lease, s->fence);
    fflush(log_f);
}

static void finish(stub_req *s)
{
    log_end(s);
    evhttp_send_reply_end(s->req);
    event_free(s->ev);
    free(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    stub_req *s = arg;
    (void)fd;
    (void)what;
    if (s->hang) {
        /* close=1: drop the connection without a word. */
        s->status = 0;
        log_end(s);
        evhttp_connection_free(evhttp_request_get_connection(s->req));
        event_free(s->ev);
        free(s);
        return;
    }
    if (s->sleep_ms > 0) {
        s->sleep_ms = 0;
    }
    if (s->sent == 0) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
        evhttp_add_header(h, "Content-Type", s->sse ? "text/event-stream" : "text/plain");
        if (s->length) {
            char cl[32];
            /* Each piece below is exactly 64 bytes. */
            snprintf(cl, sizeof cl, "%d", s->chunks * 64);
            evhttp_add_header(h, "Content-Length", cl);
        }
        evhttp_send_reply_start(s->req, s->status, NULL);
    }
    struct evbuffer *b = evbuffer_new();
    char piece[128];
    if (s->sse)
        snprintf(piece, sizeof piece, "data: {\"i\":%d,\"n\":%d,\"t_us\":%lld}", s->sent + 1,
                 s->chunks, (long long)now_us());
    else
        snprintf(piece, sizeof piece, "chunk %d/%d t_us=%lld", s->sent + 1, s->chunks,
                 (long long)now_us());
    /* Pad to 64 bytes with the line end (SSE: a blank line ends an event). */
    size_t n = strlen(piece);
    size_t tail = s->sse ? 2 : 1;
    while (n < 64 - tail)
        piece[n++] = ' ';
    piece[n++] = '\n';
    if (s->sse)
        piece[n++] = '\n';
    evbuffer_add(b, piece, n);
    evhttp_send_reply_chunk(s->req, b);
    evbuffer_free(b);
    s->sent++;
    if (s->close_after > 0 && s->sent >= s->close_after && s->sent < s->chunks) {
        s->hang = 1;
        s->status = 0;
        log_end(s);
        evhttp_connection_free(evhttp_request_get_connection(s->req));
        event_free(s->ev);
        free(s);
        return;
    }
    if (s->sent >= s->chunks) {
        finish(s);
        return;
    }
    struct timeval tv = {s->delay_ms / 1000, (s->delay_ms % 1000) * 1000};
    evtimer_add(s->ev, &tv);
}

static long qnum(struct evkeyvalq *q, const char *k, long dflt, long lo, long hi)
{
    const char *v = evhttp_find_header(q, k);
    if (!v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi)
        return dflt;
    return n;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    if (!query && !log_f) {
        /* The benchmark's fast path: a fixed small answer, at once. */
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, "{\"ok\":true,\"text\":\"the quick brown fox jumps over the lazy dog\"}\n",
                     66);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (query && strstr(query, "echo=1")) {
        struct evbuffer *b = evbuffer_new();
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        for (struct evkeyval *e = h->tqh_first; e; e = e->next.tqe_next)
            evbuffer_add_printf(b, "%s: %s\n", e->key, e->value);
        evbuffer_add_printf(b, "body-bytes: %zu\n",
                            evbuffer_get_length(evhttp_request_get_input_buffer(req)));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "keep-alive, X-Hop");
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Hop", "must not pass");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    stub_req *s = calloc(1, sizeof *s);
    if (!s) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    s->req = req;
    s->id = ++next_id;
    s->start_us = now_us();
    struct evkeyvalq q;
    memset(&q, 0, sizeof q);
    if (query)
        evhttp_parse_query_str(query, &q);
    s->chunks = (int)qnum(&q, "chunks", 1, 1, 100000);
    s->delay_ms = qnum(&q, "delay_ms", 0, 0, 600000);
    s->sleep_ms = qnum(&q, "sleep_ms", 0, 0, 600000);
    s->sse = (int)qnum(&q, "sse", 0, 0, 1);
    s->length = (int)qnum(&q, "length", 0, 0, 1);
    s->status = (int)qnum(&q, "status", 200, 200, 599);
    s->hang = (int)qnum(&q, "close", 0, 0, 1);
    s->close_after = (int)qnum(&q, "close_after", 0, 0, 100000);
    if (query)
        evhttp_clear_headers(&q);
    static const char *const names[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE",
                                        "CONNECT", "PATCH"};
    int cmd = evhttp_request_get_command(req);
    const char *m = "?";
    for (int i = 0; i < 9; i++)
        if (cmd == (1 << i))
            m = names[i];
    snprintf(s->method, sizeof s->method, "%s", m);
    field(s->path, sizeof s->path, u ? evhttp_uri_get_path(u) : "");
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    field(s->writer, sizeof s->writer, evhttp_find_header(h, "X-Fleet-Writer"));
    field(s->lease, sizeof s->lease, evhttp_find_header(h, "X-Fleet-Lease"));
    field(s->fence, sizeof s->fence, evhttp_find_header(h, "X-Fleet-Fence"));
    s->ev = evtimer_new(base, on_timer, s);
    long first = s->sleep_ms + s->delay_ms;
    struct timeval tv = {first / 1000, (first % 1000) * 1000};
    evtimer_add(s->ev, &tv);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *log_path = NULL, *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log_path = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: stub_upstream [--port-file FILE] [--log FILE] [--port N]\n");
            return 64;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (log_path && !(log_f = fopen(log_path, "a"))) {
        fprintf(stderr, "stub_upstream: %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_max_body_size(http, 1 << 20);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "stub_upstream: cannot listen on %s:%d\n", host, port);
        return 1;
    }
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "stub_upstream: cannot write %s\n", port_file);
            return 1;
        }
    } else {
        printf("%d\n", ntohs(sa.sin_port));
        fflush(stdout);
    }
    struct event *t = evsignal_new(base, SIGTERM, on_term, NULL);
    struct event *i = evsignal_new(base, SIGINT, on_term, NULL);
    event_add(t, NULL);
    event_add(i, NULL);
    event_base_dispatch(base);
    event_free(t);
    event_free(i);
    evhttp_free(http);
    event_base_free(base);
    if (log_f)
        fclose(log_f);
    return 0;
}
