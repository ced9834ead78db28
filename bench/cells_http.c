/*
 * bench/cells_http.c -- the same phases as fl-ops, through `fleetlease
 * serve` (docs/api.md), one kept-alive connection per client.  The
 * daemon's store is whatever run.sh started it with (PostgreSQL).
 *
 *   acquire    POST   /v1/leases                   201
 *   refused    POST   /v1/leases (held)            423
 *   heartbeat  POST   /v1/leases/{token}/heartbeat 2xx
 *   check      GET    /v1/providers/{id}/check     423 (held, anonymous writer)
 *   release    DELETE /v1/leases/{token}           2xx
 */
#include "bench.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hheld {
    char provider[128];
    char token[40];
} hheld;

static int expect(long got, long lo, long hi, const char *what, const char *resp, char *err,
                  size_t errlen)
{
    if (got >= lo && got <= hi)
        return 0;
    snprintf(err, errlen, "%s: HTTP %ld: %.300s", what, got, resp);
    return -1;
}

static int h_acquire(bn_http *h, const char *provider, const char *holder, long want,
                     char *token, size_t toklen, char *err, size_t errlen)
{
    char body[512];
    long st = 0;
    const char *resp = NULL;
    snprintf(body, sizeof body,
             "{\"provider\":\"%s\",\"holder\":\"%s\",\"purpose\":\"bench\","
             "\"mode\":\"exclusive\",\"ttl\":\"120s\",\"wait\":\"0s\"}",
             provider, holder);
    if (bn_http_do(h, "POST", "/v1/leases", body, &st, &resp, err, errlen) ||
        expect(st, want, want, "POST /v1/leases", resp, err, errlen))
        return -1;
    if (!token)
        return 0;
    json_t *j = json_loads(resp, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "token"));
    int ok = t && snprintf(token, toklen, "%s", t) < (int)toklen;
    if (!ok)
        snprintf(err, errlen, "POST /v1/leases: no token in %.300s", resp);
    json_decref(j);
    return ok ? 0 : -1;
}

static int h_simple(bn_http *h, const char *method, const char *path, long lo, long hi,
                    char *err, size_t errlen)
{
    long st = 0;
    const char *resp = NULL;
    if (bn_http_do(h, method, path, method[0] == 'G' ? NULL : "", &st, &resp, err, errlen))
        return -1;
    return expect(st, lo, hi, path, resp, err, errlen);
}

enum { H_ACQUIRE, H_REFUSED, H_HEARTBEAT, H_CHECK, H_RELEASE, H_N };

static int http_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600], holder[64], path[256];
    snprintf(holder, sizeof holder, "bench-%d", bn_id(c));
    bn_http *h = bn_http_new(o->url);
    hheld *k = calloc((size_t)o->max_ops + 1, sizeof *k);
    int bad = 0;
    if (!h || !k)
        bad = bn_fail(c, "out of memory");
    if (!bad) {
        hheld *w = &k[o->max_ops];
        snprintf(w->provider, sizeof w->provider, "hw-%s-%s-%s-c%d", o->run_id, o->key, o->tag,
                 bn_id(c));
        bad = h_acquire(h, w->provider, holder, 201, w->token, sizeof w->token, err, sizeof err);
        snprintf(path, sizeof path, "/v1/leases/%s/heartbeat", w->token);
        if (!bad)
            bad = h_acquire(h, w->provider, holder, 423, NULL, 0, err, sizeof err) ||
                  h_simple(h, "POST", path, 200, 299, err, sizeof err);
        snprintf(path, sizeof path, "/v1/providers/%s/check", w->provider);
        if (!bad)
            bad = h_simple(h, "GET", path, 423, 423, err, sizeof err);
        snprintf(path, sizeof path, "/v1/leases/%s", w->token);
        if (!bad)
            bad = h_simple(h, "DELETE", path, 200, 299, err, sizeof err);
        if (bad)
            bad = bn_fail(c, "warm-up: %s", err);
    }
    long n = 0;
    bn_phase_begin(c, H_ACQUIRE, o->max_ops, 1);
    while (!bad && bn_more(c)) {
        snprintf(k[n].provider, sizeof k[n].provider, "hb-%s-%s-%s-c%d-%ld", o->run_id, o->key,
                 o->tag, bn_id(c), n);
        int64_t t0 = bn_now_ns();
        bad = h_acquire(h, k[n].provider, holder, 201, k[n].token, sizeof k[n].token, err,
                        sizeof err);
        bn_record(c, bn_now_ns() - t0);
        n++;
    }
    bn_phase_end(c);
    bn_phase_begin(c, H_REFUSED, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        int64_t t0 = bn_now_ns();
        bad = h_acquire(h, k[i].provider, holder, 423, NULL, 0, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, H_HEARTBEAT, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        snprintf(path, sizeof path, "/v1/leases/%s/heartbeat", k[i].token);
        int64_t t0 = bn_now_ns();
        bad = h_simple(h, "POST", path, 200, 299, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, H_CHECK, 0, 1);
    for (long i = 0; !bad && n > 0 && bn_more(c); i = (i + 1) % n) {
        snprintf(path, sizeof path, "/v1/providers/%s/check", k[i].provider);
        int64_t t0 = bn_now_ns();
        bad = h_simple(h, "GET", path, 423, 423, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    bn_phase_begin(c, H_RELEASE, n > 0 ? n : 1, 0);
    for (long i = 0; !bad && i < n && bn_more(c); i++) {
        snprintf(path, sizeof path, "/v1/leases/%s", k[i].token);
        int64_t t0 = bn_now_ns();
        bad = h_simple(h, "DELETE", path, 200, 299, err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    free(k);
    bn_http_free(h);
    return bad ? 1 : 0;
}

int bn_cell_http(const bn_opts *o)
{
    static const char *const phases[H_N] = {"acquire", "refused", "heartbeat", "check",
                                            "release"};
    return bn_run(o, phases, H_N, http_body, NULL);
}
