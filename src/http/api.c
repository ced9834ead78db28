/*
 * src/http/api.c -- routing and the handlers of the JSON API v1.
 *
 * Every request is validated here, on the loop thread, with the library's
 * validators and parsers (fl_validate_*, fl_parse_*), before any store
 * call: refused input never reaches a worker.  The decisions themselves
 * are the library's: acquire, heartbeat and release are fl_acquire,
 * fl_heartbeat and fl_release; the HTTP check and /v1/auth are fl_check
 * and nothing else (the honor protocol has one implementation).
 *
 * Identity: with --tokens, the name of the caller's token is its holder
 * (acquire) and writer (check, auth).  Giving another name is refused
 * with 403: a token must not let one writer pass for another, least of
 * all for the exclusive holder, whom fl_check allows.
 *
 * Handlers return the status they answered with, or 0 when a job took
 * the request over (its completion answers and finishes it).
 */
#include "serve.h"
#include "body.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct rq {
    srv *s;
    struct evhttp_request *req;
    srv_conn *conn;
    const char *route;
    const char *who;   /* authenticated writer name, or NULL */
    int64_t t0;
} rq;

/* ---- finishing a request ---------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "?";
    }
}

static const char *peer_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    return addr ? addr : "";
}

/* The access log names the route, never the path: paths carry lease
 * tokens (heartbeat, release) and are attacker-chosen text. */
static void access_log(srv *s, struct evhttp_request *req, const char *route, const char *who,
                       int status, int64_t t0)
{
    if (!s->access_log)
        return;
    char st[16], ms[32];
    srv_log("info", "request", "method", method_name(evhttp_request_get_command(req)), "route",
            route, "status", srv_num(st, sizeof st, status), "ms",
            srv_num(ms, sizeof ms, (long long)(srv_mono_ms() - t0)), "who", who ? who : "",
            "peer", peer_of(req), NULL);
}

static void finish(rq *r, int status)
{
    access_log(r->s, r->req, r->route, r->who, status, r->t0);
    srv_conn_idle(r->s, r->conn);
}

static void job_finish(srv_job *j, int status)
{
    if (j->req)
        access_log(j->s, j->req, j->route, j->writer[0] ? j->writer : j->holder, status,
                   j->started_mono_ms);
    srv_conn_idle(j->s, j->conn);
}

static void add_header(struct evhttp_request *req, const char *k, const char *v)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), k, v);
}

static void retry_after(struct evhttp_request *req, int64_t ms)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", srv_retry_after_s(ms));
    add_header(req, "Retry-After", b);
}

/* A store error as JSON, with Retry-After when retrying can help. */
static int reply_store_error(srv *s, struct evhttp_request *req, int rc, const char *msg)
{
    const char *id;
    int st = srv_status_for(rc, &id);
    if (rc == FL_EUNAVAIL)
        retry_after(req, 1000);
    srv_reply_error(s, req, st, id, "%s", msg[0] ? msg : fl_strerror(rc));
    return st;
}

static int shutting_down(srv *s, struct evhttp_request *req)
{
    retry_after(req, 1000);
    srv_reply_error(s, req, 503, "shutting_down", "the server is shutting down; retry elsewhere "
                                                  "or in a moment");
    return 503;
}

/* ---- input helpers ---------------------------------------------------- */

/* Parse the query string against the allowed names: unknown, repeated or
 * malformed parameters are a 400 naming them (a typo such as ?provder=
 * must not silently widen a list to every provider). */
static int parse_query(rq *r, struct evkeyvalq *kv, const char *const *allowed)
{
    char q[160];
    kv->tqh_first = NULL;
    kv->tqh_last = &kv->tqh_first;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->req);
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    if (!query || !query[0])
        return 0;
    /* evhttp would decode %00 into a NUL that silently cuts the value. */
    for (const char *p = query; (p = strchr(p, '%')) != NULL; p++)
        if (p[1] == '0' && p[2] == '0') {
            srv_reply_error(r->s, r->req, 400, "invalid", "query: %%00 (a NUL byte) is not allowed");
            return 400;
        }
    if (evhttp_parse_query_str(query, kv) != 0) {
        evhttp_clear_headers(kv);
        srv_reply_error(r->s, r->req, 400, "invalid",
                        "query: malformed; expected name=value pairs separated by '&'");
        return 400;
    }
    for (struct evkeyval *e = kv->tqh_first; e; e = e->next.tqe_next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, e->key) == 0)
                ok = 1;
        if (!ok) {
            char list[256] = "";
            size_t o = 0;
            for (const char *const *a = allowed; *a && o < sizeof list; a++) {
                int n = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", *a);
                if (n < 0)
                    break;
                o += (size_t)n;
            }
            srv_reply_error(r->s, r->req, 400, "invalid",
                            "query: unknown parameter \"%s\" (allowed: %s)",
                            cli_quote(q, sizeof q, e->key, 64), list[0] ? list : "none");
            evhttp_clear_headers(kv);
            return 400;
        }
        for (struct evkeyval *f = e->next.tqe_next; f; f = f->next.tqe_next)
            if (strcmp(f->key, e->key) == 0) {
                srv_reply_error(r->s, r->req, 400, "invalid",
                                "query: parameter \"%s\" given more than once", e->key);
                evhttp_clear_headers(kv);
                return 400;
            }
    }
    return 0;
}

/* The caller's name for `field` (srv_identity), answered as an error here. */
static int identity(rq *r, const char *field, const char *given, int required, char *out,
                    size_t outlen)
{
    char err[FL_MESSAGE_MAX];
    int st = srv_identity(r->who, field, given, required, out, outlen, err, sizeof err);
    if (st)
        srv_reply_error(r->s, r->req, st, st == 403 ? "forbidden" : "invalid", "%s", err);
    return st;
}

static int check_token(rq *r, const char *token, char *out)
{
    char err[FL_MESSAGE_MAX];
    if (fl_validate_token(token, err, sizeof err) != FL_OK) {
        srv_reply_error(r->s, r->req, 400, "invalid", "%s", err);
        return 400;
    }
    memcpy(out, token, FL_TOKEN_LEN + 1);
    return 0;
}

static int check_provider(rq *r, const char *provider, char *out)
{
    char err[FL_MESSAGE_MAX];
    if (fl_validate_provider(provider, err, sizeof err) != FL_OK) {
        srv_reply_error(r->s, r->req, 400, "invalid", "%s", err);
        return 400;
    }
    snprintf(out, FL_PROVIDER_MAX + 1, "%s", provider);
    return 0;
}

/* The request body, whole (NULL when empty); bounded by --max-body. */
static const char *body_of(rq *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    *len = evbuffer_get_length(in);
    return *len ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

static int empty_body(rq *r)
{
    char err[FL_MESSAGE_MAX];
    size_t len;
    const char *data = body_of(r, &len);
    int st = srv_parse_empty(data, len, err, sizeof err);
    if (st)
        srv_reply_error(r->s, r->req, st, "invalid", "%s", err);
    return st;
}

static int submit(rq *r, srv_job *j)
{
    if (srv_job_submit(j) != 0) {
        srv_job_free(j);
        srv_reply_error(r->s, r->req, 500, "nomem", "out of memory");
        return 500;
    }
    /* Safe after the hand-off: the job's completion runs on this thread,
     * not before we return to the loop. */
    srv_conn_attach(r->conn, j);
    return 0;
}

static srv_job *new_job(rq *r, srv_op op, srv_done_fn done)
{
    srv_job *j = srv_job_new(r->s, r->req, op, r->route, done);
    if (!j)
        srv_reply_error(r->s, r->req, 500, "nomem", "out of memory");
    return j;
}

/* ---- POST /v1/leases ---------------------------------------------------- */

static void log_abandoned(srv *s, const char *provider, const char *holder, const char *fence,
                          int release_rc)
{
    s->metrics.abandoned++;
    srv_log("warn", "abandoned", "provider", provider, "holder", holder, "fence", fence,
            "released", release_rc == FL_OK ? "yes" : fl_strerror(release_rc), NULL);
}

static void abandon_done(srv_job *j)
{
    char a[32];
    log_abandoned(j->s, j->provider, j->holder, srv_num(a, sizeof a, (long long)j->lease.fence),
                  j->rc);
}

/*
 * A long poll granted after its client closed the connection, seen only
 * here: the worker releases at once when the close was noticed before the
 * grant (the wait-check timer), but a close in the last tick before the
 * grant is noticed only now, on the loop thread.  Nobody will ever learn
 * the token, so give the host back instead of blocking it for a whole ttl.
 * 0 when the client is still there (or the release could not be queued:
 * the lease then lapses on its own).
 */
static int abandon_if_gone(srv_job *j)
{
    /* No connection record: untracked (out of memory at accept), not known
     * to be gone, as srv_jobs_check_clients also takes it. */
    if (!j->long_poll || j->abandoned || !j->conn || !srv_conn_client_gone(j->conn))
        return 0;
    srv_job *r = srv_job_new(j->s, NULL, SRV_OP_RELEASE, "abandon", abandon_done);
    if (!r)
        return 0;
    memcpy(r->token, j->lease.token, sizeof r->token);
    memcpy(r->provider, j->provider, sizeof r->provider);
    memcpy(r->holder, j->holder, sizeof r->holder);
    r->lease.fence = j->lease.fence;
    if (srv_job_submit(r) != 0) {
        srv_job_free(r);
        return 0;
    }
    return 1;
}

static void acquire_done(srv_job *j)
{
    srv *s = j->s;
    int st;
    char a[32], b[32], c[64], w[32];
    int m = j->mode == FL_SHARED ? 1 : 2;
    int cancel = atomic_load(&j->cancel);
    if (j->rc == FL_OK) {
        s->metrics.grants[m]++;
        if (fl_format_time(j->lease.expires_at_ms, c, sizeof c) != FL_OK)
            c[0] = '\0';
        srv_log("info", "granted", "provider", j->provider, "holder", j->holder, "purpose",
                j->purpose, "mode", fl_mode_name(j->mode), "fence",
                srv_num(a, sizeof a, (long long)j->lease.fence), "ttl_ms",
                srv_num(b, sizeof b, (long long)j->ttl_ms), "expires_at", c, "waited_ms",
                srv_num(w, sizeof w, (long long)(srv_mono_ms() - j->started_mono_ms)), NULL);
        int late = abandon_if_gone(j);
        if (j->abandoned)
            log_abandoned(s, j->provider, j->holder, a, j->release_rc);
        if (j->abandoned || late) {
            srv_reply_error(s, j->req, 503, "client_gone",
                            "granted after the client closed its connection; %s",
                            late ? "being released" : "released again");
            st = 503;
        } else {
            srv_reply_json(s, j->req, 201, cli_lease_json(&j->lease));
            st = 201;
        }
    } else if (cancel == SRV_CANCEL_SHUTDOWN) {
        st = shutting_down(s, j->req);
    } else if (cancel == SRV_CANCEL_CLIENT_GONE && j->rc == FL_ECANCELED) {
        /* The wait stopped because the client left: not a store error. */
        srv_log("info", "wait_abandoned", "provider", j->provider, "holder", j->holder, NULL);
        srv_reply_error(s, j->req, 503, "client_gone",
                        "the client closed its connection while waiting; nothing was granted");
        st = 503;
    } else if (j->rc == FL_ECONFLICT && j->verdict.message[0]) {
        const fl_verdict *v = &j->verdict;
        s->metrics.refusals[m]++;
        srv_log("info", "refused", "provider", j->provider, "holder", j->holder, "mode",
                fl_mode_name(j->mode), "state", fl_pstate_name(v->state), "message", v->message,
                NULL);
        json_t *o = json_object();
        if (o) {
            json_object_set_new(o, "error", json_string("conflict"));
            json_object_set_new(o, "message", cli_jstr(v->message));
            json_object_set_new(o, "provider", cli_jstr(j->provider));
            json_object_set_new(o, "state", json_string(fl_pstate_name(v->state)));
            json_object_set_new(o, "shared_count", json_integer(v->shared_count));
            json_object_set_new(o, "holder", cli_jstr(v->blocker.holder));
            json_object_set_new(o, "purpose", cli_jstr(v->blocker.purpose));
            json_object_set_new(o, "mode", json_string(fl_mode_name(v->blocker.mode)));
            if (v->blocker.expires_at_ms > 0) {
                cli_jset_time(o, "expires_at", v->blocker.expires_at_ms);
                json_object_set_new(o, "expires_at_ms", json_integer(v->blocker.expires_at_ms));
            } else {
                json_object_set_new(o, "expires_at", json_null());
                json_object_set_new(o, "expires_at_ms", json_null());
            }
            json_object_set_new(o, "retry_after_ms", json_integer(v->retry_after_ms));
        }
        retry_after(j->req, v->retry_after_ms);
        srv_reply_json(s, j->req, 423, o);
        st = 423;
    } else {
        if (j->rc != FL_EINVAL)
            srv_log("warn", "store_error", "op", "acquire", "provider", j->provider, "error",
                    j->err, NULL);
        st = reply_store_error(s, j->req, j->rc, j->err);
    }
    job_finish(j, st);
}

static int h_acquire(rq *r)
{
    srv *s = r->s;
    char err[FL_MESSAGE_MAX];
    srv_acquire_body b;
    size_t len;
    const char *data = body_of(r, &len);
    int st = srv_parse_acquire(data, len, r->who, &b, err, sizeof err);
    if (st) {
        srv_reply_error(s, r->req, st, st == 403 ? "forbidden" : "invalid", "%s", err);
        return st;
    }
    srv_job *j = new_job(r, SRV_OP_ACQUIRE, acquire_done);
    if (!j)
        return 500;
    memcpy(j->provider, b.provider, sizeof j->provider);
    memcpy(j->holder, b.holder, sizeof j->holder);
    memcpy(j->purpose, b.purpose, sizeof j->purpose);
    j->mode = b.mode;
    j->ttl_ms = b.ttl_ms;
    j->wait_ms = b.wait_ms;
    if (j->wait_ms > 0) {
        if (s->waiters >= s->lim.max_waiters) {
            s->metrics.waiters_refused++;
            srv_job_free(j);
            retry_after(r->req, 1000);
            srv_reply_error(s, r->req, 503, "busy",
                            "too many acquires waiting (--max-waiters %d); retry, or acquire "
                            "without wait",
                            s->lim.max_waiters);
            return 503;
        }
        j->long_poll = 1;
        j->op = SRV_OP_ACQUIRE_WAIT;
    }
    return submit(r, j);
}

/* ---- heartbeat and release -------------------------------------------- */

static void heartbeat_done(srv_job *j)
{
    srv *s = j->s;
    int st;
    if (j->rc == FL_OK) {
        char c[64];
        s->metrics.heartbeats++;
        if (fl_format_time(j->lease.expires_at_ms, c, sizeof c) != FL_OK)
            c[0] = '\0';
        srv_log("info", "renewed", "provider", j->lease.provider, "holder", j->lease.holder,
                "expires_at", c, NULL);
        snprintf(j->holder, sizeof j->holder, "%s", j->lease.holder);
        explicit_bzero(j->lease.token, sizeof j->lease.token);
        srv_reply_json(s, j->req, 200, cli_lease_json(&j->lease));
        st = 200;
    } else {
        if (j->rc == FL_ENOTFOUND || j->rc == FL_EEXPIRED)
            srv_log("info", "renew_failed", "reason",
                    j->rc == FL_EEXPIRED ? "expired" : "not_found", NULL);
        st = reply_store_error(s, j->req, j->rc, j->err);
    }
    job_finish(j, st);
}

static void release_done(srv_job *j)
{
    srv *s = j->s;
    int st;
    if (j->rc == FL_OK) {
        s->metrics.releases++;
        srv_log("info", "released", NULL);
        json_t *o = json_object();
        if (o)
            json_object_set_new(o, "released", json_true());
        srv_reply_json(s, j->req, 200, o);
        st = 200;
    } else {
        if (j->rc == FL_ENOTFOUND || j->rc == FL_EEXPIRED)
            srv_log("info", "release_failed", "reason",
                    j->rc == FL_EEXPIRED ? "expired" : "not_found", NULL);
        st = reply_store_error(s, j->req, j->rc, j->err);
    }
    job_finish(j, st);
}

static int h_token_op(rq *r, const char *token, srv_op op, srv_done_fn done)
{
    /* No parameters: a stray one (a token in the query, say) is a 400 here
     * as on every other route, not silently ignored. */
    struct evkeyvalq kv;
    static const char *const none[] = {NULL};
    int st = parse_query(r, &kv, none);
    evhttp_clear_headers(&kv);
    if (!st)
        st = empty_body(r);
    if (st)
        return st;
    srv_job *j = new_job(r, op, done);
    if (!j)
        return 500;
    st = check_token(r, token, j->token);
    if (st) {
        srv_job_free(j);
        return st;
    }
    if (r->who)
        snprintf(j->writer, sizeof j->writer, "%s", r->who);
    return submit(r, j);
}

/* ---- check and /v1/auth --------------------------------------------------- */

static void check_done(srv_job *j)
{
    srv *s = j->s;
    int st;
    if (j->rc != FL_OK) {
        srv_log("warn", "store_error", "op", "check", "provider", j->provider, "error", j->err,
                NULL);
        st = reply_store_error(s, j->req, j->rc, j->err);
        job_finish(j, st);
        return;
    }
    const fl_verdict *v = &j->verdict;
    if (v->allowed)
        s->metrics.checks_allowed++;
    else
        s->metrics.checks_refused++;
    if (j->auth_style) {
        /* nginx auth_request: 2xx lets the request through, 403 stops it;
         * the reason goes in a header nginx can copy to its own answer
         * (auth_request_set $msg $upstream_http_x_fleet_message). */
        add_header(j->req, "X-Fleet-Message", v->message);
        add_header(j->req, "X-Fleet-State", fl_pstate_name(v->state));
        if (v->stale)
            add_header(j->req, "X-Fleet-Stale", v->fail_open ? "fail-open" : "stale");
        if (v->allowed) {
            srv_reply_buf(s, j->req, 204, NULL, NULL);
            st = 204;
        } else {
            retry_after(j->req, v->retry_after_ms);
            srv_reply_json(s, j->req, 403, cli_verdict_json(j->provider, v));
            st = 403;
        }
    } else {
        if (!v->allowed)
            retry_after(j->req, v->retry_after_ms);
        st = v->allowed ? 200 : 423;
        srv_reply_json(s, j->req, st, cli_verdict_json(j->provider, v));
    }
    job_finish(j, st);
}

static int h_check(rq *r, const char *raw_id, int auth_style)
{
    static const char *const check_params[] = {"writer", "token", NULL};
    static const char *const auth_params[] = {"provider", "writer", "token", NULL};
    struct evkeyvalq kv;
    int st = parse_query(r, &kv, auth_style ? auth_params : check_params);
    if (st)
        return st;
    struct evkeyvalq *hin = evhttp_request_get_input_headers(r->req);
    const char *writer = evhttp_find_header(&kv, "writer");
    const char *token = evhttp_find_header(&kv, "token");
    if (auth_style) {
        /* Each may come as a header (nginx passes the client's) or in the
         * query; given twice, or both ways with different values, there is
         * no telling which one the writer meant: refused, never guessed. */
        static const char *const names[2][2] = {{"X-Fleet-Writer", "writer"},
                                                {"X-Fleet-Lease", "token"}};
        const char **vals[2] = {&writer, &token};
        for (int k = 0; k < 2 && !st; k++) {
            const char *h = NULL;
            int n = 0;
            for (const struct evkeyval *e = hin->tqh_first; e; e = e->next.tqe_next)
                if (evutil_ascii_strcasecmp(e->key, names[k][0]) == 0 && n++ == 0)
                    h = e->value;
            if (n > 1 || (h && *vals[k] && strcmp(h, *vals[k]) != 0)) {
                srv_reply_error(r->s, r->req, 400, "invalid",
                                "%s: given %s; send it once, as the header or as ?%s=", names[k][0],
                                n > 1 ? "more than once" : "both as a header and as ?query with "
                                                           "different values",
                                names[k][1]);
                st = 400;
            } else if (!*vals[k]) {
                *vals[k] = h;
            }
        }
    }
    char *id = NULL;
    const char *provider = NULL;
    if (st) {
        /* answered above */
    } else if (auth_style) {
        provider = evhttp_find_header(&kv, "provider");
        if (!provider) {
            srv_reply_error(r->s, r->req, 400, "invalid", "provider: missing (?provider=ID)");
            st = 400;
        }
    } else {
        size_t dlen = 0;
        id = evhttp_uridecode(raw_id, 0, &dlen);
        if (!id || strlen(id) != dlen) {
            srv_reply_error(r->s, r->req, 400, "invalid",
                            "provider: the path holds a NUL byte or bad escape");
            st = 400;
        }
        provider = id;
    }
    srv_job *j = NULL;
    if (!st && !(j = new_job(r, SRV_OP_CHECK, check_done)))
        st = 500;
    if (!st)
        st = check_provider(r, provider, j->provider);
    if (!st)
        st = identity(r, "writer", writer, 0, j->writer, sizeof j->writer);
    if (!st && token)
        st = check_token(r, token, j->token);
    free(id);
    evhttp_clear_headers(&kv);
    if (st) {
        srv_job_free(j);
        return st;
    }
    j->auth_style = auth_style;
    return submit(r, j);
}

/* ---- list, history -------------------------------------------------------- */

static void list_done(srv_job *j)
{
    int st;
    if (j->rc == FL_OK) {
        srv_reply_json(j->s, j->req, 200, cli_leases_json(j->leases, j->nleases));
        st = 200;
    } else {
        st = reply_store_error(j->s, j->req, j->rc, j->err);
    }
    job_finish(j, st);
}

static void history_done(srv_job *j)
{
    int st;
    if (j->rc == FL_OK) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < j->nevents; i++)
            json_array_append_new(a, cli_event_json(&j->events[i]));
        srv_reply_json(j->s, j->req, 200, a);
        st = 200;
    } else {
        st = reply_store_error(j->s, j->req, j->rc, j->err);
    }
    job_finish(j, st);
}

static int parse_limit(rq *r, const char *v, size_t *out)
{
    char q[160];
    size_t n = 0;
    int ok = v && v[0] && strlen(v) <= 5;
    for (const char *p = v; ok && *p; p++) {
        if (!isdigit((unsigned char)*p))
            ok = 0;
        else
            n = n * 10 + (size_t)(*p - '0');
    }
    if (!ok || n < 1 || n > 10000) {
        srv_reply_error(r->s, r->req, 400, "invalid",
                        "limit: must be an integer between 1 and 10000, got \"%s\"",
                        cli_quote(q, sizeof q, v ? v : "", 32));
        return 400;
    }
    *out = n;
    return 0;
}

static int h_list(rq *r, int history)
{
    static const char *const list_params[] = {"provider", NULL};
    static const char *const history_params[] = {"provider", "limit", NULL};
    struct evkeyvalq kv;
    int st = parse_query(r, &kv, history ? history_params : list_params);
    if (st)
        return st;
    srv_job *j = new_job(r, history ? SRV_OP_HISTORY : SRV_OP_LIST,
                         history ? history_done : list_done);
    if (!j)
        st = 500;
    const char *p = evhttp_find_header(&kv, "provider");
    if (!st && p)
        st = check_provider(r, p, j->provider);
    if (!st && history) {
        const char *l = evhttp_find_header(&kv, "limit");
        j->limit = 50;
        if (l)
            st = parse_limit(r, l, &j->limit);
    }
    evhttp_clear_headers(&kv);
    if (st) {
        srv_job_free(j);
        return st;
    }
    return submit(r, j);
}

/* ---- /healthz and /metrics ------------------------------------------------- */

static void health_done(srv_job *j)
{
    srv *s = j->s;
    json_t *o = json_object();
    int st = 200;
    if (o) {
        json_object_set_new(o, "status", json_string(j->rc == FL_OK && !s->stopping ? "ok"
                                                     : s->stopping ? "stopping"
                                                                   : "unavailable"));
        json_object_set_new(o, "store", json_string(s->store_kind));
        if (j->rc == FL_OK) {
            cli_jset_time(o, "store_time", j->now_ms);
            json_object_set_new(o, "store_time_ms", json_integer(j->now_ms));
        } else {
            json_object_set_new(o, "message", cli_jstr(j->err));
        }
        json_object_set_new(o, "connections", json_integer((json_int_t)srv_conns_open(s)));
        json_object_set_new(o, "long_polls", json_integer(s->waiters));
    }
    if (j->rc != FL_OK || s->stopping) {
        st = 503;
        retry_after(j->req, 1000);
    }
    srv_reply_json(s, j->req, st, o);
    job_finish(j, st);
}

static void metrics_done(srv_job *j)
{
    struct evbuffer *b = evbuffer_new();
    int st = 200;
    if (!b) {
        srv_reply_error(j->s, j->req, 500, "nomem", "out of memory");
        st = 500;
    } else {
        srv_metrics_render(j->s, b, j->leases, j->nleases, j->rc == FL_OK);
        if (j->rc == FL_OK)
            srv_metrics_reports(b, j->reports, j->nreports);
        srv_reply_buf(j->s, j->req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
        evbuffer_free(b);
    }
    job_finish(j, st);
}

/* ---- GET /v1/leases/{token}/report -------------------------------------- */

static void report_done(srv_job *j)
{
    int st;
    if (j->rc != FL_OK) {
        st = reply_store_error(j->s, j->req, j->rc, j->err);
    } else if (j->report_rc == FL_ENOTFOUND) {
        srv_reply_error(j->s, j->req, 404, "no_report",
                        "no gateway has reported on this lease (provider %s, fence %lld) yet",
                        j->lease.provider, (long long)j->lease.fence);
        st = 404;
    } else {
        srv_reply_json(j->s, j->req, 200, srv_report_json(&j->report));
        st = 200;
    }
    job_finish(j, st);
}

static int h_simple(rq *r, srv_op op, srv_done_fn done)
{
    struct evkeyvalq kv;
    static const char *const none[] = {NULL};
    int st = parse_query(r, &kv, none);
    evhttp_clear_headers(&kv);
    if (st)
        return st;
    srv_job *j = new_job(r, op, done);
    if (j && done == metrics_done)
        j->with_reports = 1; /* the isolation gauges */
    return j ? submit(r, j) : 500;
}

/* ---- routing ---------------------------------------------------------------- */

enum { M_GET = EVHTTP_REQ_GET, M_POST = EVHTTP_REQ_POST, M_DELETE = EVHTTP_REQ_DELETE };

/* `pattern` names the endpoint without the path's own text (tokens). */
static int method_not_allowed(rq *r, const char *pattern, const char *allow)
{
    add_header(r->req, "Allow", allow);
    srv_reply_error(r->s, r->req, 405, "method_not_allowed", "%s %s: allowed methods: %s",
                    method_name(evhttp_request_get_command(r->req)), pattern, allow);
    return 405;
}

/* 0 when the caller may go on (r->who set with --tokens), else 401. */
static int authenticate(rq *r)
{
    srv *s = r->s;
    if (!s->auth)
        return 0;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    r->who = srv_auth_check(s->auth, h);
    if (r->who)
        return 0;
    s->metrics.auth_failures++;
    srv_log("warn", "auth_failed", "route", r->route, "reason",
            h ? "unknown token" : "no bearer token", "peer", peer_of(r->req), NULL);
    add_header(r->req, "WWW-Authenticate", "Bearer realm=\"fleetlease\"");
    srv_reply_error(s, r->req, 401, "unauthorized",
                    h ? "Authorization: unknown token" : "Authorization: missing; send "
                                                         "\"Authorization: Bearer <token>\"");
    return 401;
}

static int dispatch(rq *r)
{
    srv *s = r->s;
    struct evhttp_request *req = r->req;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || path[0] != '/') {
        r->route = "invalid";
        srv_reply_error(s, req, 400, "invalid", "request target: must be an absolute path");
        return 400;
    }

    /* Match the route first, so that 404/405 do not depend on auth. */
    enum { R_NONE, R_STATUS, R_HEALTH, R_METRICS, R_LEASES, R_LEASE, R_HEARTBEAT, R_CHECK,
           R_HISTORY, R_AUTH, R_REPORT } route = R_NONE;
    char token[80] = "";
    char raw_id[3 * FL_PROVIDER_MAX + 1] = "";
    static const char leases_prefix[] = "/v1/leases/";
    static const char prov_prefix[] = "/v1/providers/";
    size_t plen = strlen(path);
    if (strcmp(path, "/") == 0) {
        route = R_STATUS;
        r->route = "status";
    } else if (strcmp(path, "/healthz") == 0) {
        route = R_HEALTH;
        r->route = "healthz";
    } else if (strcmp(path, "/metrics") == 0) {
        route = R_METRICS;
        r->route = "metrics";
    } else if (strcmp(path, "/v1/leases") == 0) {
        route = R_LEASES;
        r->route = m == EVHTTP_REQ_POST ? "acquire" : "list";
    } else if (strcmp(path, "/v1/history") == 0) {
        route = R_HISTORY;
        r->route = "history";
    } else if (strcmp(path, "/v1/auth") == 0) {
        route = R_AUTH;
        r->route = "auth";
    } else if (strncmp(path, leases_prefix, sizeof leases_prefix - 1) == 0) {
        const char *rest = path + sizeof leases_prefix - 1;
        const char *slash = strchr(rest, '/');
        size_t tl = slash ? (size_t)(slash - rest) : strlen(rest);
        if (tl > 0 && tl < sizeof token) {
            if (!slash) {
                route = R_LEASE;
                r->route = "release";
            } else if (strcmp(slash, "/heartbeat") == 0) {
                route = R_HEARTBEAT;
                r->route = "heartbeat";
            } else if (strcmp(slash, "/report") == 0) {
                route = R_REPORT;
                r->route = "report";
            }
            memcpy(token, rest, tl);
            token[tl] = '\0';
        }
    } else if (strncmp(path, prov_prefix, sizeof prov_prefix - 1) == 0 && plen > 6 &&
               strcmp(path + plen - 6, "/check") == 0) {
        size_t il = plen - 6 - (sizeof prov_prefix - 1);
        if (il > 0 && il < sizeof raw_id) {
            memcpy(raw_id, path + sizeof prov_prefix - 1, il);
            raw_id[il] = '\0';
            route = R_CHECK;
            r->route = "check";
        } else if (il >= sizeof raw_id) {
            r->route = "check";
            srv_reply_error(s, req, 400, "invalid",
                            "provider: must be 1-%d bytes of [A-Za-z0-9._:/-], got %zu",
                            FL_PROVIDER_MAX, il);
            return 400;
        }
    }
    if (route == R_NONE) {
        r->route = "unknown";
        srv_reply_error(s, req, 404, "not_found",
                        "no such endpoint; see docs/api.md (GET /v1/leases, POST /v1/leases, ...)");
        return 404;
    }
    if (s->stopping)
        return shutting_down(s, req);

    switch (route) {
    case R_STATUS:
        if (m != EVHTTP_REQ_GET)
            return method_not_allowed(r, "/", "GET");
        srv_status_page(s, req);
        return 200;
    case R_HEALTH:
        if (m != EVHTTP_REQ_GET)
            return method_not_allowed(r, "/healthz", "GET");
        return h_simple(r, SRV_OP_NOW, health_done);
    case R_METRICS:
        if (m != EVHTTP_REQ_GET)
            return method_not_allowed(r, "/metrics", "GET");
        if (!s->public_metrics) {
            int st = authenticate(r);
            if (st)
                return st;
        }
        return h_simple(r, SRV_OP_LIST, metrics_done);
    default:
        break;
    }

    /* Everything under /v1 needs a token when the server has --tokens. */
    const char *allow = route == R_LEASES ? "GET, POST"
                        : route == R_LEASE ? "DELETE"
                        : route == R_HEARTBEAT ? "POST"
                        : route == R_REPORT ? "GET"
                        : route == R_AUTH ? "any"
                                          : "GET";
    int ok = route == R_LEASES ? (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST)
             : route == R_LEASE ? m == EVHTTP_REQ_DELETE
             : route == R_HEARTBEAT ? m == EVHTTP_REQ_POST
             : route == R_REPORT ? m == EVHTTP_REQ_GET
             : route == R_AUTH ? 1
                               : m == EVHTTP_REQ_GET;
    const char *pattern = route == R_LEASES ? "/v1/leases"
                          : route == R_LEASE ? "/v1/leases/{token}"
                          : route == R_HEARTBEAT ? "/v1/leases/{token}/heartbeat"
                          : route == R_REPORT ? "/v1/leases/{token}/report"
                          : route == R_CHECK ? "/v1/providers/{id}/check"
                                             : "/v1/history";
    if (!ok)
        return method_not_allowed(r, pattern, allow);
    int st = authenticate(r);
    if (st)
        return st;
    switch (route) {
    case R_LEASES:
        return m == EVHTTP_REQ_POST ? h_acquire(r) : h_list(r, 0);
    case R_HISTORY:
        return h_list(r, 1);
    case R_LEASE:
        return h_token_op(r, token, SRV_OP_RELEASE, release_done);
    case R_HEARTBEAT:
        return h_token_op(r, token, SRV_OP_HEARTBEAT, heartbeat_done);
    case R_REPORT:
        return h_token_op(r, token, SRV_OP_REPORT, report_done);
    case R_CHECK:
        return h_check(r, raw_id, 0);
    case R_AUTH:
        /* nginx sends the subrequest with the client's method; the body
         * is never forwarded and is ignored. */
        return h_check(r, NULL, 1);
    default:
        break;
    }
    srv_reply_error(s, req, 500, "internal", "unrouted request");
    return 500;
}

/*
 * Request framing that two parsers could read two ways (RFC 9112 6.3):
 * Content-Length given twice with different values, or a transfer coding
 * evhttp does not decode (it would take the body as the next request).
 * evhttp has already framed this request by its own reading, so the answer
 * also closes the connection: whatever follows on it is not trusted.
 */
static int framing(rq *r)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
    const char *cl = NULL;
    int st = 0;
    for (const struct evkeyval *e = h->tqh_first; e && !st; e = e->next.tqe_next) {
        if (evutil_ascii_strcasecmp(e->key, "Content-Length") == 0) {
            if (cl && strcmp(cl, e->value) != 0) {
                add_header(r->req, "Connection", "close");
                srv_reply_error(r->s, r->req, 400, "invalid",
                                "Content-Length: given twice with different values");
                st = 400;
            }
            cl = e->value;
        } else if (evutil_ascii_strcasecmp(e->key, "Transfer-Encoding") == 0 &&
                   evutil_ascii_strcasecmp(e->value, "chunked") != 0) {
            add_header(r->req, "Connection", "close");
            srv_reply_error(r->s, r->req, 501, "not_implemented",
                            "Transfer-Encoding: only chunked is supported");
            st = 501;
        }
    }
    return st;
}

void srv_api_handle(struct evhttp_request *req, void *arg)
{
    srv *s = arg;
    rq r = {.s = s, .req = req, .conn = NULL, .route = "?", .who = NULL, .t0 = srv_mono_ms()};
    r.conn = srv_conn_busy(s, req);
    int st = framing(&r);
    if (!st)
        st = dispatch(&r);
    if (st)
        finish(&r, st);
}
