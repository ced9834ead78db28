/*
 * bench/cells_peer.c -- the locks users would build instead: Redis and
 * etcd, each used the way its documentation recommends.
 *
 * Redis: SET key token NX PX ttl to acquire; release by a Lua script that
 * deletes the key only if it still holds our token (EVALSHA, loaded once).
 * Its durability is whatever the server runs with: run.sh measures a
 * server without persistence and one with appendfsync always.
 *
 * etcd 3.4, over its JSON gateway (grpc-gateway, base64 keys): acquire is
 * a lease grant plus a transaction that puts the key with that lease only
 * if the key does not exist (create_revision == 0); release is a lease
 * revoke.  etcd fsyncs its raft log before it answers a write.
 *
 * Both peers get a fresh random token per acquire, as fleetlease does.
 */
#include "bench.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_TTL_S 60

/* ---- Redis ------------------------------------------------------------- */

static const char UNLOCK_LUA[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";

static redisContext *redis_connect(const char *hostport, char *err, size_t errlen)
{
    char host[128];
    int port = 0;
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host || (port = atoi(colon + 1)) <= 0) {
        snprintf(err, errlen, "redis address: expected HOST:PORT, got %s", hostport);
        return NULL;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    redisContext *r = redisConnect(host, port);
    if (!r || r->err) {
        snprintf(err, errlen, "redis connect %s: %s", hostport, r ? r->errstr : "out of memory");
        redisFree(r);
        return NULL;
    }
    return r;
}

typedef struct rkey {
    char key[96];
    char token[33];
} rkey;

static int redis_set(redisContext *r, rkey *k, char *err, size_t errlen)
{
    bn_token(k->token);
    redisReply *rep = redisCommand(r, "SET %s %s NX PX %d", k->key, k->token, PEER_TTL_S * 1000);
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0;
    if (!ok)
        snprintf(err, errlen, "SET %s NX: %s", k->key,
                 !rep ? r->errstr : rep->type == REDIS_REPLY_NIL ? "key exists" : "unexpected reply");
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int redis_unlock(redisContext *r, const char *sha, const rkey *k, char *err, size_t errlen)
{
    redisReply *rep = redisCommand(r, "EVALSHA %s 1 %s %s", sha, k->key, k->token);
    int ok = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    if (!ok)
        snprintf(err, errlen, "EVALSHA unlock %s: %s", k->key,
                 !rep ? r->errstr : rep->type == REDIS_REPLY_ERROR ? rep->str : "not deleted");
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int redis_body(bn_client *c, void *arg)
{
    (void)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600], sha[64] = "";
    redisContext *r = redis_connect(o->url, err, sizeof err);
    if (!r)
        return bn_fail(c, "%s", err);
    rkey *k = calloc((size_t)o->max_ops + 1, sizeof *k);
    redisReply *rep = redisCommand(r, "SCRIPT LOAD %s", UNLOCK_LUA);
    int bad = 0;
    if (!k || !rep || rep->type != REDIS_REPLY_STRING)
        bad = bn_fail(c, "SCRIPT LOAD: %s", !k ? "out of memory" : !rep ? r->errstr : "failed");
    else
        snprintf(sha, sizeof sha, "%s", rep->str);
    freeReplyObject(rep);
    if (!bad) {
        rkey *w = &k[o->max_ops];
        snprintf(w->key, sizeof w->key, "w:%s:%s:%s:c%d", o->run_id, o->key, o->tag, bn_id(c));
        if (redis_set(r, w, err, sizeof err) || redis_unlock(r, sha, w, err, sizeof err))
            bad = bn_fail(c, "warm-up: %s", err);
    }
    long n = 0;
    bn_phase_begin(c, 0, o->max_ops, 1);
    while (!bad && bn_more(c)) {
        snprintf(k[n].key, sizeof k[n].key, "b:%s:%s:%s:c%d:%ld", o->run_id, o->key, o->tag,
                 bn_id(c), n);
        int64_t t0 = bn_now_ns();
        bad = redis_set(r, &k[n], err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
        n++;
    }
    bn_phase_end(c);
    bn_phase_begin(c, 1, n > 0 ? n : 1, 0);
    for (long i = 0; !bad && i < n && bn_more(c); i++) {
        int64_t t0 = bn_now_ns();
        bad = redis_unlock(r, sha, &k[i], err, sizeof err);
        bn_record(c, bn_now_ns() - t0);
    }
    bn_phase_end(c);
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    free(k);
    redisFree(r);
    return bad ? 1 : 0;
}

int bn_cell_redis(const bn_opts *o)
{
    static const char *const phases[] = {"acquire", "release"};
    return bn_run(o, phases, 2, redis_body, NULL);
}

/* ---- etcd -------------------------------------------------------------- */

static void b64(const char *in, char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), j = 0;
    for (size_t i = 0; i < n && j + 5 < cap; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[j++] = tbl[(v >> 18) & 63];
        out[j++] = tbl[(v >> 12) & 63];
        out[j++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[j] = '\0';
}

typedef struct ekey {
    char key[96];
    char lease[32];   /* the lease ID, decimal, as the gateway writes int64 */
} ekey;

static int etcd_post(bn_http *h, const char *path, const char *body, json_t **out, char *err,
                     size_t errlen)
{
    long status = 0;
    const char *resp = NULL;
    *out = NULL;
    if (bn_http_do(h, "POST", path, body, &status, &resp, err, errlen))
        return -1;
    json_error_t je;
    json_t *j = json_loads(resp, 0, &je);
    if (status != 200 || !j) {
        snprintf(err, errlen, "POST %s: HTTP %ld: %.300s", path, status, resp);
        json_decref(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* Lease grant, then put-if-absent with that lease: two requests, two
 * raft commits. */
static int etcd_acquire(bn_http *h, ekey *k, char *err, size_t errlen)
{
    json_t *j = NULL;
    char body[1024], kb[160], vb[64], token[33];
    snprintf(body, sizeof body, "{\"TTL\":%d}", PEER_TTL_S);
    if (etcd_post(h, "/v3/lease/grant", body, &j, err, errlen))
        return -1;
    const char *id = json_string_value(json_object_get(j, "ID"));
    if (!id || snprintf(k->lease, sizeof k->lease, "%s", id) >= (int)sizeof k->lease) {
        snprintf(err, errlen, "lease grant: no ID in the answer");
        json_decref(j);
        return -1;
    }
    json_decref(j);
    bn_token(token);
    b64(k->key, kb, sizeof kb);
    b64(token, vb, sizeof vb);
    snprintf(body, sizeof body,
             "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
             "\"create_revision\":\"0\"}],"
             "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}}]}",
             kb, kb, vb, k->lease);
    if (etcd_post(h, "/v3/kv/txn", body, &j, err, errlen))
        return -1;
    int won = json_is_true(json_object_get(j, "succeeded"));
    json_decref(j);
    if (!won) {
        snprintf(err, errlen, "txn on %s: key exists", k->key);
        return -1;
    }
    return 0;
}

static int etcd_release(bn_http *h, const ekey *k, char *err, size_t errlen)
{
    json_t *j = NULL;
    char body[96];
    snprintf(body, sizeof body, "{\"ID\":\"%s\"}", k->lease);
    if (etcd_post(h, "/v3/lease/revoke", body, &j, err, errlen))
        return -1;
    json_decref(j);
    return 0;
}

static int etcd_body(bn_client *c, void *arg)
{
    int pair = *(const int *)arg;
    const bn_opts *o = bn_opts_of(c);
    char err[600];
    bn_http *h = bn_http_new(o->url);
    ekey *k = calloc((size_t)o->max_ops + 1, sizeof *k);
    int bad = 0;
    if (!h || !k)
        bad = bn_fail(c, "out of memory");
    if (!bad) {
        ekey *w = &k[o->max_ops];
        snprintf(w->key, sizeof w->key, "/w/%s/%s/%s/c%d", o->run_id, o->key, o->tag, bn_id(c));
        if (etcd_acquire(h, w, err, sizeof err) || etcd_release(h, w, err, sizeof err))
            bad = bn_fail(c, "warm-up: %s", err);
    }
    if (pair) {
        ekey *p = &k[o->max_ops];
        bn_phase_begin(c, 0, 0, 1);
        while (!bad && bn_more(c)) {
            int64_t t0 = bn_now_ns();
            bad = etcd_acquire(h, p, err, sizeof err) || etcd_release(h, p, err, sizeof err)
                      ? -1 : 0;
            bn_record(c, bn_now_ns() - t0);
        }
        bn_phase_end(c);
    } else {
        long n = 0;
        bn_phase_begin(c, 0, o->max_ops, 1);
        while (!bad && bn_more(c)) {
            snprintf(k[n].key, sizeof k[n].key, "/b/%s/%s/%s/c%d/%ld", o->run_id, o->key, o->tag,
                     bn_id(c), n);
            int64_t t0 = bn_now_ns();
            bad = etcd_acquire(h, &k[n], err, sizeof err);
            bn_record(c, bn_now_ns() - t0);
            n++;
        }
        bn_phase_end(c);
        bn_phase_begin(c, 1, n > 0 ? n : 1, 0);
        for (long i = 0; !bad && i < n && bn_more(c); i++) {
            int64_t t0 = bn_now_ns();
            bad = etcd_release(h, &k[i], err, sizeof err);
            bn_record(c, bn_now_ns() - t0);
        }
        bn_phase_end(c);
    }
    if (bad == -1)
        bad = bn_fail(c, "%s", err);
    free(k);
    bn_http_free(h);
    return bad ? 1 : 0;
}

int bn_cell_etcd(const bn_opts *o)
{
    static const char *const phases[] = {"acquire", "release"};
    static const int no = 0;
    return bn_run(o, phases, 2, etcd_body, (void *)&no);
}

int bn_cell_etcd_pair(const bn_opts *o)
{
    static const char *const phases[] = {"pair"};
    static const int yes = 1;
    return bn_run(o, phases, 1, etcd_body, (void *)&yes);
}
