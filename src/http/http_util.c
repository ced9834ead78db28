/*
 * src/http/http_util.c -- the log, JSON replies, status mapping.
 *
 * Everything here runs on the loop thread except srv_mono_ms/srv_wall_ms
 * and srv_log's formatting (the workers never log: they hand results back
 * and the loop logs, so lines never interleave and the order in the log is
 * the order in which answers went out).
 */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t srv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t srv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *srv_num(char *buf, size_t len, long long v)
{
    snprintf(buf, len, "%lld", v);
    return buf;
}

/* Append `v` to the line, quoted when it is empty or holds a space, '=',
 * '"' or a byte that is not printable ASCII; control bytes and backslashes
 * escaped, so that a holder name can never forge a second log line. */
static size_t put_value(char *line, size_t o, size_t cap, const char *v)
{
    int quote = v[0] == '\0';
    for (const char *p = v; *p && !quote; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
            quote = 1;
    }
    if (!quote) {
        int n = snprintf(line + o, cap - o, "%s", v);
        return n < 0 ? o : (size_t)n >= cap - o ? cap - 1 : o + (size_t)n;
    }
    if (o + 1 < cap)
        line[o++] = '"';
    for (const char *p = v; *p && o + 6 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            line[o++] = '\\';
            line[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(line + o, cap - o, "\\x%02x", c);
        } else {
            line[o++] = (char)c; /* UTF-8 passes through */
        }
    }
    if (o + 1 < cap)
        line[o++] = '"';
    line[o] = '\0';
    return o;
}

void srv_log(const char *level, const char *event, ...)
{
    /* Values are bounded (holder and purpose are at most 256 bytes, each
     * escaped byte at most 4), so a line of 4 KiB holds any event. */
    char line[4096];
    char ts[64];
    if (fl_format_time(srv_wall_ms(), ts, sizeof ts) != FL_OK)
        snprintf(ts, sizeof ts, "?");
    int n = snprintf(line, sizeof line, "ts=%s level=%s event=%s", ts, level, event);
    size_t o = n < 0 ? 0 : (size_t)n;
    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (o + 8 >= sizeof line)
            continue;
        n = snprintf(line + o, sizeof line - o, " %s=", k);
        if (n < 0 || (size_t)n >= sizeof line - o)
            continue;
        o += (size_t)n;
        o = put_value(line, o, sizeof line, v ? v : "");
    }
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

const char *srv_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 423: return "Locked";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

int srv_status_for(int code, const char **id)
{
    const char *i;
    int st;
    switch (code) {
    case FL_OK: i = "ok"; st = 200; break;
    case FL_EINVAL: i = "invalid"; st = 400; break;
    case FL_ECONFLICT: i = "conflict"; st = 423; break;
    case FL_ENOTFOUND: i = "not_found"; st = 404; break;
    case FL_EEXPIRED: i = "expired"; st = 404; break;
    case FL_EUNAVAIL: i = "unavailable"; st = 503; break;
    case FL_ENOMEM: i = "nomem"; st = 500; break;
    case FL_ESYS: i = "system"; st = 500; break;
    default: i = "store"; st = 500; break;
    }
    if (id)
        *id = i;
    return st;
}

long long srv_retry_after_s(int64_t ms)
{
    long long s = (long long)((ms + 999) / 1000);
    return s < 1 ? 1 : s;
}

static void count_status(srv *s, int code)
{
    int cls = code / 100;
    if (cls >= 1 && cls <= 5)
        s->metrics.responses[cls]++;
}

void srv_reply_buf(srv *s, struct evhttp_request *req, int code, const char *ctype,
                   struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (ctype)
        evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    /* Past the stop signal, ask clients not to keep the connection: the
     * loop ends once the in-flight requests are answered. */
    if (s->stopping)
        evhttp_add_header(h, "Connection", "close");
    count_status(s, code);
    evhttp_send_reply(req, code, srv_reason(code), body);
}

void srv_reply_json(srv *s, struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *b = evbuffer_new();
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!b || !text) {
        free(text);
        if (b)
            evbuffer_free(b);
        count_status(s, 500);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    free(text);
    srv_reply_buf(s, req, code, "application/json", b);
    evbuffer_free(b);
}

void srv_reply_error(srv *s, struct evhttp_request *req, int code, const char *id,
                     const char *fmt, ...)
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
    /* The reason in a header too, as for a refused check: nginx
     * auth_request passes only headers of a 401/403 on to its client.  A
     * message may quote input; control bytes would break the header. */
    char hdr[sizeof msg];
    size_t j = 0;
    for (const char *p = msg; *p && j + 1 < sizeof hdr; p++)
        hdr[j++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
    hdr[j] = '\0';
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Fleet-Message", hdr);
    srv_reply_json(s, req, code, o);
}
