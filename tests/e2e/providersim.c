/*
 * tests/e2e/providersim.c -- a stand-in for an inference server, for the
 * end-to-end tests of scheduled benchmarks (issue 7).
 *
 *   providersim --listen HOST:PORT --log FILE [--load-ms N] [--tokens N]
 *               [--token-ms N] [--slots N] [--port-file FILE]
 *
 * POST /v1/chat/completions takes an OpenAI-style body ({"model": ...,
 * "stream": true|false, ...}) and answers with --tokens content chunks,
 * --token-ms apart: server-sent events ("data: {chunk}\n\n" ... "data:
 * [DONE]\n\n") when stream is true, else one chat.completion object.
 * GET /healthz answers "ok"; GET /v1/models names the loaded model.
 * Up to --slots requests (default 4) get tokens at full speed; beyond, the
 * token interval grows in proportion, as when a GPU's batch is full.
 *
 * One model at a time.  A request naming another model evicts the loaded
 * one AT ONCE -- whatever is in flight for it -- and loads its own
 * (--load-ms); requests for the model being loaded wait for the load.
 * That is the behaviour the tests must catch: a benchmark that switches
 * the model while a user's request is in flight.  (Requests of an evicted
 * model are still answered to the end, and flagged in the log.)
 *
 * The log (--log, JSON lines, flushed per line; times are CLOCK_REALTIME
 * ms, comparable with the store clock of a database on the same host):
 *   {"type":"request","id":N,"writer":W,"lease":true|false,"model":M,
 *    "start_ms":T,"end_ms":T,"status":200|400|...|"client_closed",
 *    "load_wait_ms":N,"evicted_during":true|false}
 *   {"type":"evict","at_ms":T,"model":OLD,"in_flight":N,"in_flight_writers":[...],
 *    "next":NEW,"by_writer":W,"by_lease":true|false}
 *   {"type":"loaded","at_ms":T,"model":M}
 * writer is the X-Fleet-Writer header ("" when absent); lease says whether
 * an X-Fleet-Lease header came with the request (its value is never
 * logged: it is a capability).
 *
 * Single-threaded libevent; SIGTERM or SIGINT ends it (exit 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MODEL_MAX 128
#define WRITER_MAX 256

typedef struct sim sim;

typedef enum { R_WAIT_LOAD, R_STREAMING } rstate;

typedef struct sreq {
    sim *s;
    struct sreq *prev, *next;       /* s->live */
    struct evhttp_request *req;     /* NULL once the client is gone */
    struct evhttp_connection *conn;
    struct event *tick;
    rstate state;
    long long id;
    char writer[WRITER_MAX + 1];
    int lease;
    int stream;
    char model[MODEL_MAX + 1];
    int64_t start_ms, ready_ms;
    int sent;                       /* content chunks sent */
    int evicted;                    /* its model was evicted while it was in flight */
    int gone;                       /* the client closed its connection */
    int orphan;                     /* ...and evhttp left req to us to free */
} sreq;

struct sim {
    struct event_base *base;
    struct evhttp *http;
    FILE *log;
    int load_ms, tokens, token_ms;
    int slots;                      /* requests decoded at full speed at once */
    int streaming;                  /* requests in R_STREAMING */
    char loaded[MODEL_MAX + 1];     /* the model held (or being loaded) */
    int loading;
    struct event *load_done;
    sreq *live;                     /* every request in flight */
    long long next_id;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_json(sim *s, json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!t)
        return;
    fprintf(s->log, "%s\n", t);
    fflush(s->log);
    free(t);
}

static void unlink_req(sreq *r)
{
    sim *s = r->s;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Log the request and free it.  status: an HTTP code, or 0 for a client
 * that went away. */
static void finish(sreq *r, int status)
{
    sim *s = r->s;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("request"));
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "writer", json_string(r->writer));
    json_object_set_new(o, "lease", json_boolean(r->lease));
    json_object_set_new(o, "model", json_string(r->model));
    json_object_set_new(o, "start_ms", json_integer(r->start_ms));
    json_object_set_new(o, "end_ms", json_integer(now_ms()));
    json_object_set_new(o, "status", status ? json_integer(status) : json_string("client_closed"));
    json_object_set_new(o, "load_wait_ms",
                        json_integer(r->ready_ms ? r->ready_ms - r->start_ms : 0));
    json_object_set_new(o, "evicted_during", json_boolean(r->evicted));
    log_json(s, o);
    if (r->conn)
        evhttp_connection_set_closecb(r->conn, NULL, NULL);
    if (r->state == R_STREAMING)
        s->streaming--;
    if (r->tick)
        event_free(r->tick);
    unlink_req(r);
    free(r);
}

/*
 * The client went away.  An unanswered request has been taken off the
 * connection by evhttp and is ours to free; the rest is done from the
 * request's timer, outside evhttp's teardown of the connection.
 */
static void on_client_close(struct evhttp_connection *conn, void *arg)
{
    sreq *r = arg;
    (void)conn;
    r->gone = 1;
    r->orphan = r->req && evhttp_request_get_connection(r->req) == NULL;
    if (!r->orphan)
        r->req = NULL;
    r->conn = NULL;
    event_del(r->tick);
    event_active(r->tick, EV_TIMEOUT, 0);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    json_t *o = json_pack("{s:{s:s}}", "error", "message", msg);
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    evbuffer_add_printf(b, "%s\n", t ? t : "{}");
    free(t);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 400 ? "Bad Request" : "Error", b);
    evbuffer_free(b);
}

static json_t *chunk_json(const sreq *r, const char *content, int last)
{
    json_t *delta = last ? json_object() : json_pack("{s:s}", "content", content);
    char id[48];
    snprintf(id, sizeof id, "sim-%lld", r->id);
    return json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:o}]}", "id", id, "object",
                     "chat.completion.chunk", "created", (json_int_t)(r->start_ms / 1000),
                     "model", r->model, "choices", "index", 0, "delta", delta,
                     "finish_reason", last ? json_string("stop") : json_null());
}

static void send_sse(sreq *r, json_t *o)
{
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add_printf(b, "data: %s\n\n", t ? t : "{}");
        evhttp_send_reply_chunk(r->req, b);
        evbuffer_free(b);
    }
    free(t);
}

/* The time to the next token: --token-ms while at most --slots requests
 * are being answered, proportionally longer beyond (a GPU's batch is full),
 * so that a concurrency sweep sees throughput level off. */
static struct timeval token_delay(const sim *s)
{
    int64_t us = (int64_t)s->token_ms * 1000;
    if (s->streaming > s->slots)
        us = us * s->streaming / s->slots;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    return tv;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    sreq *r = arg;
    (void)fd;
    (void)what;
    if (r->gone) {
        if (r->orphan && r->req)
            evhttp_request_free(r->req);
        r->req = NULL;
        finish(r, 0);
        return;
    }
    sim *s = r->s;
    if (r->sent < s->tokens) {
        r->sent++;
        if (r->stream) {
            char word[32];
            snprintf(word, sizeof word, "tok%d ", r->sent);
            send_sse(r, chunk_json(r, word, 0));
        }
        struct timeval tv = token_delay(s);
        event_add(r->tick, &tv);
        return;
    }
    struct evhttp_request *req = r->req;
    if (r->stream) {
        send_sse(r, chunk_json(r, "", 1));
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add_printf(b, "data: [DONE]\n\n");
            evhttp_send_reply_chunk(req, b);
            evbuffer_free(b);
        }
    }
    /* From here evhttp owns req: no close callback may reach r. */
    evhttp_connection_set_closecb(r->conn, NULL, NULL);
    r->conn = NULL;
    r->req = NULL;
    if (r->stream) {
        evhttp_send_reply_end(req);
    } else {
        char id[48];
        snprintf(id, sizeof id, "sim-%lld", r->id);
        json_t *o = json_pack("{s:s,s:s,s:s,s:[{s:i,s:{s:s,s:s},s:s}]}", "id", id, "object",
                              "chat.completion", "model", r->model, "choices", "index", 0,
                              "message", "role", "assistant", "content", "simulated answer",
                              "finish_reason", "stop");
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add_printf(b, "%s\n", t ? t : "{}");
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                              "application/json");
            evhttp_send_reply(req, 200, "OK", b);
            evbuffer_free(b);
        } else {
            evhttp_send_error(req, 500, NULL);
        }
        free(t);
    }
    finish(r, 200);
}

static void start_streaming(sreq *r)
{
    sim *s = r->s;
    r->state = R_STREAMING;
    s->streaming++;
    r->ready_ms = now_ms();
    if (r->stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(r->req, 200, "OK");
    }
    struct timeval tv = token_delay(s);
    event_add(r->tick, &tv);
}

/* Switch to r's model: evict the loaded one (whatever is in flight for
 * it), then load.  Logged. */
static void switch_model(sim *s, const sreq *by)
{
    if (s->loaded[0]) {
        json_t *writers = json_array();
        int n = 0;
        for (sreq *x = s->live; x; x = x->next) {
            if (x == by || strcmp(x->model, s->loaded) != 0 || x->evicted)
                continue;
            x->evicted = 1;
            n++;
            json_array_append_new(writers, json_string(x->writer));
        }
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string("evict"));
        json_object_set_new(o, "at_ms", json_integer(now_ms()));
        json_object_set_new(o, "model", json_string(s->loaded));
        json_object_set_new(o, "in_flight", json_integer(n));
        json_object_set_new(o, "in_flight_writers", writers);
        json_object_set_new(o, "next", json_string(by->model));
        json_object_set_new(o, "by_writer", json_string(by->writer));
        json_object_set_new(o, "by_lease", json_boolean(by->lease));
        log_json(s, o);
    }
    snprintf(s->loaded, sizeof s->loaded, "%s", by->model);
    s->loading = 1;
    struct timeval tv = {s->load_ms / 1000, (s->load_ms % 1000) * 1000};
    event_add(s->load_done, &tv);
}

/* A request for the loaded model streams at once (or waits for the load
 * in progress); any other model is switched to. */
static void admit(sim *s, sreq *r)
{
    if (strcmp(s->loaded, r->model) != 0) {
        switch_model(s, r);
        r->state = R_WAIT_LOAD;
        return;
    }
    if (s->loading) {
        r->state = R_WAIT_LOAD;
        return;
    }
    start_streaming(r);
}

static void on_loaded(evutil_socket_t fd, short what, void *arg)
{
    sim *s = arg;
    (void)fd;
    (void)what;
    s->loading = 0;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("loaded"));
    json_object_set_new(o, "at_ms", json_integer(now_ms()));
    json_object_set_new(o, "model", json_string(s->loaded));
    log_json(s, o);
    /* Waiting requests in arrival order (the list is newest first): those
     * for this model start; one for another model switches again, and the
     * rest wait for that load. */
    sreq *tail = s->live;
    while (tail && tail->next)
        tail = tail->next;
    for (sreq *x = tail; x; x = x->prev) {
        if (x->state != R_WAIT_LOAD || x->gone)
            continue;
        if (s->loading)
            break;
        admit(s, x);
    }
}

static void handle_chat(sim *s, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = malloc(n + 1);
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    json_error_t je;
    json_t *j = json_loadb(body, n, 0, &je);
    free(body);
    const char *model = j ? json_string_value(json_object_get(j, "model")) : NULL;
    if (!model || !model[0] || strlen(model) > MODEL_MAX) {
        json_decref(j);
        reply_error(req, 400, "body: must be JSON with a \"model\" string of 1-128 bytes");
        return;
    }
    sreq *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(j);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->s = s;
    r->req = req;
    r->id = ++s->next_id;
    r->start_ms = now_ms();
    snprintf(r->model, sizeof r->model, "%s", model);
    r->stream = json_is_true(json_object_get(j, "stream"));
    json_decref(j);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *w = evhttp_find_header(h, "X-Fleet-Writer");
    snprintf(r->writer, sizeof r->writer, "%s", w ? w : "");
    r->lease = evhttp_find_header(h, "X-Fleet-Lease") != NULL;
    r->tick = evtimer_new(s->base, on_tick, r);
    r->conn = evhttp_request_get_connection(req);
    if (!r->tick || !r->conn) {
        if (r->tick)
            event_free(r->tick);
        free(r);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_connection_set_closecb(r->conn, on_client_close, r);
    r->next = s->live;
    if (s->live)
        s->live->prev = r;
    s->live = r;
    admit(s, r);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sim *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (strcmp(uri, "/v1/chat/completions") == 0 && m == EVHTTP_REQ_POST) {
        handle_chat(s, req);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (strcmp(uri, "/healthz") == 0) {
        evbuffer_add_printf(b, "ok\n");
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(uri, "/v1/models") == 0) {
        json_t *o = json_pack("{s:s,s:[]}", "object", "list", "data");
        if (o && s->loaded[0])
            json_array_append_new(json_object_get(o, "data"),
                                  json_pack("{s:s,s:s}", "id", s->loaded, "object", "model"));
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        evbuffer_add_printf(b, "%s\n", t ? t : "{}");
        free(t);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", b);
    } else {
        evhttp_send_error(req, 404, NULL);
    }
    evbuffer_free(b);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static int parse_int(const char *name, const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !end || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "providersim: %s: must be an integer %d-%d, got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"log", required_argument, NULL, 'o'},
        {"load-ms", required_argument, NULL, 'L'}, {"tokens", required_argument, NULL, 'n'},
        {"token-ms", required_argument, NULL, 't'}, {"port-file", required_argument, NULL, 'p'},
        {"slots", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    sim s;
    memset(&s, 0, sizeof s);
    s.load_ms = 300;
    s.tokens = 8;
    s.token_ms = 25;
    s.slots = 4;
    const char *listen = "127.0.0.1:0", *logpath = NULL, *portfile = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'o': logpath = optarg; break;
        case 'p': portfile = optarg; break;
        case 'L': if (parse_int("load-ms", optarg, 0, 600000, &s.load_ms)) return 64; break;
        case 'n': if (parse_int("tokens", optarg, 1, 100000, &s.tokens)) return 64; break;
        case 't': if (parse_int("token-ms", optarg, 0, 60000, &s.token_ms)) return 64; break;
        case 's': if (parse_int("slots", optarg, 1, 100000, &s.slots)) return 64; break;
        case 'h':
            printf("usage: providersim --listen HOST:PORT --log FILE [--load-ms N] [--tokens N]\n"
                   "                   [--token-ms N] [--slots N] [--port-file FILE]\n");
            return 0;
        default: return 64;
        }
    }
    if (!logpath) {
        fprintf(stderr, "providersim: --log FILE is required\n");
        return 64;
    }
    char host[256];
    const char *colon = strrchr(listen, ':');
    int port = 0;
    if (!colon || (size_t)(colon - listen) >= sizeof host ||
        parse_int("listen port", colon + 1, 0, 65535, &port))
        return 64;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    s.log = fopen(logpath, "a");
    if (!s.log) {
        fprintf(stderr, "providersim: cannot open %s: %s\n", logpath, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    s.base = event_base_new();
    s.http = s.base ? evhttp_new(s.base) : NULL;
    s.load_done = s.base ? evtimer_new(s.base, on_loaded, &s) : NULL;
    if (!s.http || !s.load_done) {
        fprintf(stderr, "providersim: libevent setup failed\n");
        return 1;
    }
    evhttp_set_gencb(s.http, on_request, &s);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s.http, host, (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "providersim: cannot listen on %s\n", listen);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        int p = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                        : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        printf("listening %s:%d\n", host, p);
        fflush(stdout);
        if (portfile) {
            FILE *f = fopen(portfile, "w");
            if (f) {
                fprintf(f, "%d\n", p);
                fclose(f);
            }
        }
    }
    struct event *st = evsignal_new(s.base, SIGTERM, on_signal, s.base);
    struct event *si = evsignal_new(s.base, SIGINT, on_signal, s.base);
    if (st)
        event_add(st, NULL);
    if (si)
        event_add(si, NULL);
    event_base_dispatch(s.base);
    while (s.live) {
        sreq *r = s.live;
        if (r->gone && r->orphan && r->req)
            evhttp_request_free(r->req);
        finish(r, 0);
    }
    if (st)
        event_free(st);
    if (si)
        event_free(si);
    event_free(s.load_done);
    evhttp_free(s.http);
    event_base_free(s.base);
    fclose(s.log);
    return 0;
}
