/*
 * src/http/opts.c -- what `fleetlease serve` and `fleetlease gateway` parse
 * alike: integer and duration options with their limits, HOST:PORT, and
 * the listening socket.  Errors are usage errors naming the option.
 */
#include "serve.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int srv_opt_int(const cli_ctx *ctx, const char *name, const char *v, long long lo, long long hi,
                long long *out)
{
    char q[160];
    long long n = 0;
    int ok = v && v[0] && strlen(v) <= 12;
    for (const char *p = v; ok && *p; p++) {
        if (!isdigit((unsigned char)*p))
            ok = 0;
        else
            n = n * 10 + (*p - '0');
    }
    if (!ok || n < lo || n > hi)
        return cli_usage_error(ctx, "%s: must be an integer between %lld and %lld, got \"%s\"",
                               name, lo, hi, cli_quote(q, sizeof q, v ? v : "", 32));
    *out = n;
    return 0;
}

int srv_opt_dur(const cli_ctx *ctx, const char *name, const char *v, int64_t lo, int64_t hi,
                int zero_ok, int64_t *out)
{
    char err[FL_MESSAGE_MAX], q[160];
    int64_t ms = 0;
    if (fl_parse_duration(v, &ms, err, sizeof err) != FL_OK)
        return cli_usage_error(ctx, "%s: %s", name, err);
    if ((ms == 0 && zero_ok) || (ms >= lo && ms <= hi)) {
        *out = ms;
        return 0;
    }
    return cli_usage_error(ctx, "%s: must be %sbetween %lldms and %llds, got \"%s\"", name,
                           zero_ok ? "0 or " : "", (long long)lo, (long long)(hi / 1000),
                           cli_quote(q, sizeof q, v, 32));
}

/* "HOST:PORT" or "[V6]:PORT" into host and port; `field` names the option. */
int srv_opt_hostport(const cli_ctx *ctx, const char *field, const char *v, char *host,
                     size_t hl, long long *port, int port_optional)
{
    char q[160];
    const char *hs = v, *he, *colon;
    if (v[0] == '[') {
        hs = v + 1;
        he = strchr(hs, ']');
        if (!he || (he[1] != ':' && !(port_optional && he[1] == '\0')))
            return cli_usage_error(ctx, "%s: must be HOST:PORT or [IPV6]:PORT, got \"%s\"", field,
                                   cli_quote(q, sizeof q, v, 64));
        colon = he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = strrchr(v, ':');
        if (colon && memchr(v, ':', (size_t)(colon - v)))
            return cli_usage_error(ctx, "%s: IPv6 addresses go in brackets ([::1]:8080), got \"%s\"",
                                   field, cli_quote(q, sizeof q, v, 64));
        if (!colon && !port_optional)
            return cli_usage_error(ctx, "%s: must be HOST:PORT, got \"%s\"", field,
                                   cli_quote(q, sizeof q, v, 64));
        he = colon ? colon : v + strlen(v);
    }
    size_t n = (size_t)(he - hs);
    if (n == 0 || n >= hl)
        return cli_usage_error(ctx, "%s: host must be 1-%zu bytes, got %zu", field, hl - 1, n);
    memcpy(host, hs, n);
    host[n] = '\0';
    if (!colon) {
        *port = 80;
        return 0;
    }
    char pf[64];
    snprintf(pf, sizeof pf, "%s: port", field);
    return srv_opt_int(ctx, pf, colon + 1, port_optional ? 1 : 0, 65535, port);
}

evutil_socket_t srv_listen_socket(const char *host, long long port, char *why, size_t wl)
{
    struct addrinfo hints, *res = NULL;
    char ps[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof ps, "%lld", port);
    int e = getaddrinfo(host, ps, &hints, &res);
    if (e != 0) {
        snprintf(why, wl, "%s", gai_strerror(e));
        return -1;
    }
    evutil_socket_t fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    /* TCP_NODELAY here is inherited by every accepted socket: streamed
     * pieces (tokens) leave at once instead of waiting on Nagle and the
     * client's delayed ACK. */
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(why, wl, "%s", strerror(errno));
        if (fd >= 0)
            evutil_closesocket(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}
