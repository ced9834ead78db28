/*
 * lib/check.c -- THE check helper.  Every path that decides whether a
 * writer may dispatch (library, CLI, HTTP, nginx auth_request, gateway)
 * ends here, and the rule itself is fl__verdict() in lib/core.
 *
 * Store unreachable: answer from the last state read for the provider,
 * marked stale, for as long as the blocking lease in it is live by our
 * estimate of the store's clock (store time at the read + CLOCK_MONOTONIC
 * elapsed since, which is system-wide on Linux, so it also works across
 * processes through the cache files).  After that, fail open, loudly.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The memory cache: the last state read per provider, in a hash table
 * (chained, doubled when it holds more entries than buckets) with a
 * recency list, so a lookup costs one hash of the provider id and a short
 * chain whatever the number of providers a daemon checks.  It is bounded:
 * past CACHE_MAX the least recently refreshed entry is dropped (its file
 * remains).  The gateway admits every request through a lookup here, so
 * this is the per-request cost of enforcement (bench: gwcheck).
 */
#define CACHE_MAX 4096
#define CACHE_MIN_BUCKETS 16

struct fl__entry {
    struct fl__entry *hnext;          /* bucket chain */
    struct fl__entry *newer, *older;  /* recency list */
    uint32_t hash;
    char provider[FL_PROVIDER_MAX + 1];
    fl_lease *rows;
    size_t n;
    int64_t store_now_ms;
    int64_t mono_ms;
    int on_disk;    /* the file holds these rows (times advance together) */
};

struct fl__cache {
    struct fl__entry **bucket;
    size_t nbuckets;                  /* a power of two */
    size_t count;
    struct fl__entry *newest, *oldest;
};

static uint32_t hash_of(const char *s)
{
    uint32_t h = 2166136261u;         /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void entry_free(struct fl__entry *e)
{
    if (e) {
        free(e->rows);
        free(e);
    }
}

void fl__cache_free(fl_store *st)
{
    struct fl__cache *c = st ? st->cache : NULL;
    if (!c)
        return;
    for (struct fl__entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        entry_free(e);
    }
    free(c->bucket);
    free(c);
    st->cache = NULL;
}

static struct fl__entry *cache_find(const struct fl__cache *c, const char *provider)
{
    if (!c || !c->count)
        return NULL;
    uint32_t h = hash_of(provider);
    for (struct fl__entry *e = c->bucket[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->provider, provider) == 0)
            return e;
    return NULL;
}

static void list_unlink(struct fl__cache *c, struct fl__entry *e)
{
    *(e->newer ? &e->newer->older : &c->newest) = e->older;
    *(e->older ? &e->older->newer : &c->oldest) = e->newer;
    e->newer = e->older = NULL;
}

static void list_push(struct fl__cache *c, struct fl__entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    *(c->newest ? &c->newest->newer : &c->oldest) = e;
    c->newest = e;
}

static void cache_remove(struct fl__cache *c, struct fl__entry *e)
{
    struct fl__entry **pp = &c->bucket[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(c, e);
    c->count--;
    entry_free(e);
}

/* Link a new entry in as the newest; on allocation failure the entry is
 * freed (a cache miss later, never an error of the check). */
static struct fl__entry *cache_insert(fl_store *st, struct fl__entry *e)
{
    struct fl__cache *c = st->cache;
    if (!c && (c = st->cache = calloc(1, sizeof *c)) == NULL)
        goto fail;
    if (c->count >= c->nbuckets) {
        size_t nb = c->nbuckets ? 2 * c->nbuckets : CACHE_MIN_BUCKETS;
        struct fl__entry **b = calloc(nb, sizeof *b);
        if (!b)
            goto fail;
        for (struct fl__entry *x = c->newest; x; x = x->older) {
            x->hnext = b[x->hash & (nb - 1)];
            b[x->hash & (nb - 1)] = x;
        }
        free(c->bucket);
        c->bucket = b;
        c->nbuckets = nb;
    }
    e->hash = hash_of(e->provider);
    e->hnext = c->bucket[e->hash & (c->nbuckets - 1)];
    c->bucket[e->hash & (c->nbuckets - 1)] = e;
    list_push(c, e);
    c->count++;
    if (c->count > CACHE_MAX)  /* drop the least recently refreshed */
        cache_remove(c, c->oldest);
    return e;
fail:
    entry_free(e);
    return NULL;
}

int fl_set_cache_dir(fl_store *st, const char *dir)
{
    if (!st)
        return FL_EINVAL;
    free(st->cache_dir);
    st->cache_dir = NULL;
    if (!dir)
        return fl__store_err(st, FL_OK, NULL);
    size_t len = strlen(dir);
    if (len == 0 || len > 3000)
        return fl__store_err(st, FL_EINVAL, "cache dir: must be 1-3000 bytes, got %zu", len);
    st->cache_dir = strdup(dir);
    if (!st->cache_dir)
        return fl__store_err(st, FL_ENOMEM, "out of memory");
    /* mkdir -p; a failure shows up as a missing cache, never as an error
     * of the check itself. */
    char path[3072];
    fl__copy(path, sizeof path, dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
    return fl__store_err(st, FL_OK, NULL);
}

/* Provider ids may contain '/' and may be "..": escape into one safe name. */
static int cache_path(const fl_store *st, const char *provider, char *buf, size_t len)
{
    char name[3 * FL_PROVIDER_MAX + 3] = "p-";
    size_t j = 2;
    for (const char *p = provider; *p && j + 4 < sizeof name; p++) {
        if (*p == '/') {
            memcpy(name + j, "%2F", 3);
            j += 3;
        } else {
            name[j++] = *p;
        }
    }
    name[j] = '\0';
    int n = snprintf(buf, len, "%s/%s", st->cache_dir, name);
    return (n > 0 && (size_t)n < len) ? 0 : -1;
}

/*
 * File format, one record per line, fields separated by tabs (holder and
 * purpose cannot contain control characters, so tabs are safe):
 *   fleetlease-check-cache 1 <store_now_ms> <mono_ms> <n>
 *   <mode> <state> <fence> <ttl_ms> <acquired> <heartbeat> <expires> <holder> <purpose>
 * Tokens are never written: a stale answer matches holders by name only.
 */
static void cache_write_file(const fl_store *st, const struct fl__entry *c)
{
    char path[4096], tmp[4200];
    if (!st->cache_dir || cache_path(st, c->provider, path, sizeof path) != 0)
        return;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "fleetlease-check-cache 1 %lld %lld %zu\n", (long long)c->store_now_ms,
            (long long)c->mono_ms, c->n);
    for (size_t i = 0; i < c->n; i++) {
        const fl_lease *l = &c->rows[i];
        fprintf(f, "%d\t%d\t%lld\t%lld\t%lld\t%lld\t%lld\t%s\t%s\n", (int)l->mode,
                (int)l->state, (long long)l->fence, (long long)l->ttl_ms,
                (long long)l->acquired_at_ms, (long long)l->heartbeat_at_ms,
                (long long)l->expires_at_ms, l->holder, l->purpose);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0)
        unlink(tmp);
}

static struct fl__entry *cache_read_file(const fl_store *st, const char *provider)
{
    char path[4096];
    if (!st->cache_dir || cache_path(st, provider, path, sizeof path) != 0)
        return NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    struct fl__entry *c = calloc(1, sizeof *c);
    char line[2048];
    long long now = 0, mono = 0;
    size_t n = 0;
    if (!c || !fgets(line, sizeof line, f) ||
        sscanf(line, "fleetlease-check-cache 1 %lld %lld %zu", &now, &mono, &n) != 3 ||
        n > 100000)
        goto bad;
    fl__copy(c->provider, sizeof c->provider, provider);
    c->store_now_ms = now;
    c->mono_ms = mono;
    c->rows = n ? calloc(n, sizeof *c->rows) : NULL;
    if (n && !c->rows)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        fl_lease *l = &c->rows[i];
        if (!fgets(line, sizeof line, f))
            goto bad;
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *fld[9];
        int k = 0;
        for (char *t = strtok_r(line, "\t", &save); t && k < 9; t = strtok_r(NULL, "\t", &save))
            fld[k++] = t;
        if (k != 9)
            goto bad;
        l->mode = (fl_mode)atoi(fld[0]);
        l->state = (fl_lease_state)atoi(fld[1]);
        l->fence = strtoll(fld[2], NULL, 10);
        l->ttl_ms = strtoll(fld[3], NULL, 10);
        l->acquired_at_ms = strtoll(fld[4], NULL, 10);
        l->heartbeat_at_ms = strtoll(fld[5], NULL, 10);
        l->expires_at_ms = strtoll(fld[6], NULL, 10);
        if (fl__copy(l->holder, sizeof l->holder, fld[7]) != FL_OK ||
            fl__copy(l->purpose, sizeof l->purpose, fld[8]) != FL_OK)
            goto bad;
        fl__copy(l->provider, sizeof l->provider, provider);
    }
    c->n = n;
    fclose(f);
    return c;
bad:
    fclose(f);
    entry_free(c);
    return NULL;
}

static void cache_put(fl_store *st, const char *provider, fl_lease *rows, size_t n,
                      int64_t now)
{
    struct fl__entry *c = cache_find(st->cache, provider);
    if (c) {
        list_unlink(st->cache, c);
        list_push(st->cache, c);
    } else {
        c = calloc(1, sizeof *c);
        if (!c) {
            free(rows);
            return;
        }
        fl__copy(c->provider, sizeof c->provider, provider);
        if (!cache_insert(st, c)) {
            free(rows);
            return;
        }
    }
    /* The file only needs rewriting when the rows change: the stale
     * estimate is store time at the read + monotonic time since, and both
     * advance together, so an older pair in the file is as good.  This
     * keeps a daemon's checks from writing a file each. */
    int same = c->on_disk && c->n == n &&
               (n == 0 || memcmp(c->rows, rows, n * sizeof *rows) == 0);
    free(c->rows);
    c->rows = rows;
    c->n = n;
    c->store_now_ms = now;
    c->mono_ms = fl__mono_ms();
    if (!same && st->cache_dir) {
        cache_write_file(st, c);
        c->on_disk = 1;
    }
}

static struct fl__entry *cache_get(fl_store *st, const char *provider)
{
    struct fl__entry *c = cache_find(st->cache, provider);
    if (c)
        return c;
    c = cache_read_file(st, provider);
    return c ? cache_insert(st, c) : NULL;
}

static void stale_verdict(fl_store *st, const char *provider, const char *writer,
                          const char *token, const char *why, fl_verdict *out)
{
    struct fl__entry *c = cache_get(st, provider);
    int64_t mono = fl__mono_ms();
    if (c && mono >= c->mono_ms) {
        int64_t est_now = c->store_now_ms + (mono - c->mono_ms);
        fl__verdict(c->rows, c->n, est_now, writer, token, out);
        out->now_ms = c->store_now_ms;  /* when the state was read, as documented */
        out->stale = 1;
        if (!out->allowed)
            return;  /* the blocking lease is still live by our estimate */
        char when[32];
        fl_format_time(c->store_now_ms, when, sizeof when);
        out->fail_open = 1;
        snprintf(out->message, sizeof out->message,
                 "store unreachable (%.600s); last state read at %s no longer holds; failing open",
                 why, when);
        return;
    }
    memset(out, 0, sizeof *out);
    out->allowed = 1;
    out->stale = 1;
    out->fail_open = 1;
    out->state = FL_PSTATE_FREE;
    snprintf(out->message, sizeof out->message,
             "store unreachable (%.600s); no state known for %s; failing open", why, provider);
}

int fl_check(fl_store *st, const char *provider, const char *writer, const char *token,
             fl_verdict *out)
{
    if (!st)
        return FL_EINVAL;
    char e[FL_MESSAGE_MAX] = "";
    int rc = fl_validate_provider(provider, e, sizeof e);
    if (rc == FL_OK && writer)
        rc = fl_validate_text("writer", writer, e, sizeof e);
    if (rc == FL_OK && token && *token)
        rc = fl_validate_token(token, e, sizeof e);
    if (rc != FL_OK)
        return fl__store_err(st, rc, "%s", e);
    if (!out)
        return fl__store_err(st, FL_EINVAL, "fl_check: out must not be NULL");
    if (token && !*token)
        token = NULL;
    memset(out, 0, sizeof *out);

    fl_lease *rows = NULL;
    size_t n = 0;
    int64_t now = 0;
    rc = fl__ready(st);
    if (rc == FL_OK)
        rc = st->ops->read_provider(st, provider, &rows, &n, &now);
    if (rc == FL_OK) {
        fl__verdict(rows, n, now, writer, token, out);
        cache_put(st, provider, rows, n, now);  /* takes rows */
        return FL_OK;
    }
    if (rc != FL_EUNAVAIL)
        return rc;
    char why[FL_MESSAGE_MAX];
    fl__copy(why, sizeof why, st->errmsg);
    stale_verdict(st, provider, writer, token, why, out);
    /* errmsg keeps the store's error so callers can log it. */
    return FL_OK;
}

int fl_check_cached(fl_store *st, const char *provider, const char *writer, const char *token,
                    int64_t max_age_ms, fl_verdict *out)
{
    if (!st || !provider || !out || max_age_ms <= 0)
        return fl_check(st, provider, writer, token, out);
    int64_t mono = fl__mono_ms();
    const struct fl__entry *c = cache_find(st->cache, provider);
    if (c && mono >= c->mono_ms && mono - c->mono_ms <= max_age_ms) {
        /* Validate exactly as fl_check does: the fast path must not be a
         * way around the input rules. */
        char e[FL_MESSAGE_MAX];
        int rc = FL_OK;
        e[0] = '\0';
        if (writer)
            rc = fl_validate_text("writer", writer, e, sizeof e);
        if (rc == FL_OK && token && *token)
            rc = fl_validate_token(token, e, sizeof e);
        if (rc != FL_OK)
            return fl__store_err(st, rc, "%s", e);
        memset(out, 0, sizeof *out);
        fl__verdict(c->rows, c->n, c->store_now_ms + (mono - c->mono_ms), writer,
                    (token && *token) ? token : NULL, out);
        return FL_OK;
    }
    return fl_check(st, provider, writer, token, out);
}

int fl_wait_change(fl_store *st, const char *provider, int64_t timeout_ms)
{
    int rc = fl__ready(st);
    if (rc != FL_OK) {
        fl__sleep_ms(timeout_ms);  /* still a bounded wait, as promised */
        return FL_OK;
    }
    char e[FL_MESSAGE_MAX];
    if (fl_validate_provider(provider, e, sizeof e) != FL_OK)
        return fl__store_err(st, FL_EINVAL, "%s", e);
    if (timeout_ms < 0)
        timeout_ms = 0;
    return st->ops->wait_change(st, provider, timeout_ms);
}
