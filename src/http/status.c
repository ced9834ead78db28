/*
 * src/http/status.c -- GET / : the status page.
 *
 * A placeholder for now: one self-contained page (no external assets)
 * that points at the JSON API.  The real page (each provider's state,
 * holder, purpose, time left, fence, recent history, self-refreshing)
 * replaces this file; it is served without a token, so it must not show
 * more than an operator's dashboard may.
 */
#include "serve.h"

#include <string.h>

static const char page[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>fleetlease</title>\n"
    "<style>body{font:15px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "code{background:#f3f3f3;padding:0 .3em}</style>\n"
    "</head><body>\n"
    "<h1>fleetlease</h1>\n"
    "<p>The status page is not built yet. The JSON API is:</p>\n"
    "<ul>\n"
    "<li><code>GET /v1/leases</code> &mdash; live leases</li>\n"
    "<li><code>GET /v1/history?limit=50</code> &mdash; recent events</li>\n"
    "<li><code>GET /healthz</code>, <code>GET /metrics</code></li>\n"
    "</ul>\n"
    "</body></html>\n";

void srv_status_page(srv *s, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        srv_reply_error(s, req, 500, "nomem", "out of memory");
        return;
    }
    evbuffer_add_reference(b, page, sizeof page - 1, NULL, NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    srv_reply_buf(s, req, 200, "text/html; charset=utf-8", b);
    evbuffer_free(b);
}
