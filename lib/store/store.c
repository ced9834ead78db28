/*
 * lib/store/store.c -- opening a store by URL, and the handle's plumbing.
 * The stores themselves are in sqlite.c and postgres.c behind
 * fl__store_ops; nothing here knows SQL.
 */
#include "store/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fl__store_err(fl_store *st, int code, const char *fmt, ...)
{
    if (!st)
        return code;
    if (code == FL_OK || !fmt) {
        st->errmsg[0] = '\0';
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->errmsg, sizeof st->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int fl__err_gone(fl_store *st, const char *what, const char *provider,
                 int64_t expired_at, int64_t now)
{
    if (!provider)
        return fl__store_err(st, FL_ENOTFOUND,
                             "%s: no live lease has this token (released, swept or never granted)",
                             what);
    char at[32] = "", nowbuf[32] = "";
    fl_format_time(expired_at, at, sizeof at);
    fl_format_time(now, nowbuf, sizeof nowbuf);
    return fl__store_err(st, FL_EEXPIRED,
                         "%s: the lease on %.128s expired at %s (store clock now %s); "
                         "it cannot be renewed", what, provider, at, nowbuf);
}

static int default_path(char *buf, size_t len);

int fl_resolve_url(const char *explicit_url, char *buf, size_t len)
{
    if (!buf || len == 0)
        return FL_EINVAL;
    const char *u = explicit_url;
    if (!u || !*u)
        u = getenv("FLEETLEASE_DB");
    if (!u || !*u)
        u = getenv("DATABASE_URL");
    if (u && *u)
        return fl__copy(buf, len, u);
    return default_path(buf, len);
}

/* ${XDG_STATE_HOME:-$HOME/.local/state}/fleetlease/leases.db */
static int default_path(char *buf, size_t len)
{
    const char *state = getenv("XDG_STATE_HOME");
    int n;
    if (state && *state) {
        n = snprintf(buf, len, "%s/fleetlease/leases.db", state);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return FL_EINVAL;
        n = snprintf(buf, len, "%s/.local/state/fleetlease/leases.db", home);
    }
    return (n < 0 || (size_t)n >= len) ? FL_EINVAL : FL_OK;
}

/* mkdir -p of the directory part of path.  Errors surface later, when
 * SQLite cannot create the file, with a message that names it.  Only for
 * the default path: a path someone typed must have its directory already,
 * or a typo would silently make a new, empty store where every check
 * allows and every acquire succeeds, seen by no other writer. */
static void make_parent_dirs(const char *path)
{
    char dir[FL_URL_MAX];
    if (fl__copy(dir, sizeof dir, path) != FL_OK)
        return;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    }
    mkdir(dir, 0700);
}

/*
 * "postgresql://user:secret@host/db?password=x" -> password parts masked.
 * The display form is what goes into every message and log line.
 */
static void mask_url(const char *url, char *out, size_t cap)
{
    if (fl__copy(out, cap, url) != FL_OK) {
        fl__copy(out, cap, "(url too long)");
        return;
    }
    char *scheme = strstr(out, "://");
    if (scheme) {
        char *auth = scheme + 3;
        char *at = strchr(auth, '@');
        char *slash = strchr(auth, '/');
        char *colon = strchr(auth, ':');
        if (at && (!slash || at < slash) && colon && colon < at) {
            char rest[FL_URL_MAX];
            fl__copy(rest, sizeof rest, at);
            snprintf(colon, cap - (size_t)(colon - out), ":***%s", rest);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw) {
        char *end = strpbrk(pw, "& ");
        char rest[FL_URL_MAX] = "";
        if (end)
            fl__copy(rest, sizeof rest, end);
        snprintf(pw, cap - (size_t)(pw - out), "password=***%s", rest);
    }
}

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

int fl_open(const char *url, fl_store **out)
{
    if (!out)
        return FL_EINVAL;
    *out = NULL;
    fl_store *st = calloc(1, sizeof *st);
    if (!st)
        return FL_ENOMEM;
    *out = st;
    if (!url || !*url)
        return fl__store_err(st, FL_EINVAL, "store URL: must not be empty");
    size_t len = strlen(url);
    if (len >= FL_URL_MAX)
        return fl__store_err(st, FL_EURL, "store URL: must be at most %d bytes, got %zu",
                             FL_URL_MAX - 1, len);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fl__store_err(st, FL_EURL, "store URL: must not contain control characters");
    mask_url(url, st->display, sizeof st->display);

    const char *target = url;
    if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")) {
        st->ops = &fl__postgres_ops;
    } else if (has_prefix(url, "sqlite:")) {
        st->ops = &fl__sqlite_ops;
        target = url + strlen("sqlite:");
        if (has_prefix(target, "//"))  /* sqlite:///abs/path */
            target += 2;
    } else if (strstr(url, "://")) {
        return fl__store_err(st, FL_EURL,
                             "store URL: unknown scheme in \"%s\"; use a path, sqlite:PATH or postgresql://",
                             st->display);
    } else {
        st->ops = &fl__sqlite_ops;
    }
    if (st->ops == &fl__sqlite_ops) {
        if (!*target)
            return fl__store_err(st, FL_EURL, "store URL: sqlite: needs a file path");
        char def[FL_URL_MAX];
        if (default_path(def, sizeof def) == FL_OK && strcmp(def, target) == 0) {
            make_parent_dirs(target);
        } else {
            char dir[FL_URL_MAX];
            fl__copy(dir, sizeof dir, target);
            char *slash = strrchr(dir, '/');
            struct stat sb;
            if (slash && slash != dir) {
                *slash = '\0';
                int e = stat(dir, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
                /* Other errors (EACCES...) are SQLite's to report at open. */
                if (e == ENOENT || e == ENOTDIR)
                    return fl__store_err(st, FL_EURL,
                                         "store URL: the directory %s of %s does not exist; "
                                         "create it first (only the default store's directory "
                                         "is created)",
                                         dir, st->display);
            }
        }
    }
    fl__copy(st->target, sizeof st->target, target);
    int rc = st->ops->open(st, target);
    if (rc != FL_OK) {
        if (!st->errmsg[0])
            fl__store_err(st, rc, "%s: %s", st->display, fl_strerror(rc));
        return rc;
    }
    return fl__store_err(st, FL_OK, NULL);
}

int fl__ready(fl_store *st)
{
    if (!st)
        return FL_EINVAL;
    if (!st->impl) {
        if (!st->ops || !st->target[0])
            return fl__store_err(st, FL_EINVAL, "store handle is not open: %s",
                                 st->errmsg[0] ? st->errmsg : "fl_open failed");
        int rc = st->ops->open(st, st->target);
        if (rc != FL_OK) {
            if (!st->errmsg[0])
                fl__store_err(st, rc, "%s: %s", st->display, fl_strerror(rc));
            return rc;
        }
    }
    fl__store_err(st, FL_OK, NULL);
    return FL_OK;
}

void fl_close(fl_store *st)
{
    if (!st)
        return;
    if (st->ops && st->impl)
        st->ops->close(st->impl);
    fl__cache_free(st);
    free(st->cache_dir);
    free(st);
}

const char *fl_errmsg(const fl_store *st)
{
    if (!st)
        return "no store handle (NULL)";
    return st->errmsg;
}

const char *fl_store_kind(const fl_store *st)
{
    return (st && st->ops) ? st->ops->kind : "";
}

const char *fl_store_display(const fl_store *st)
{
    return st ? st->display : "";
}

int fl_store_now(fl_store *st, int64_t *now_ms)
{
    if (!st || !now_ms)
        return st ? fl__store_err(st, FL_EINVAL, "fl_store_now: now_ms must not be NULL") : FL_EINVAL;
    int rc = fl__ready(st);
    return rc != FL_OK ? rc : st->ops->now(st, now_ms);
}

void fl_free(void *p)
{
    free(p);
}
