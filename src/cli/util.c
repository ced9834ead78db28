/*
 * src/cli/util.c -- what the subcommands share: option parsing, exit codes,
 * error reporting, opening the store, and output (text or one JSON
 * document on stdout).
 *
 * Output contract: with --json, stdout carries exactly one JSON document
 * (also for errors), so scripts can parse it whatever the exit code; every
 * human message goes to stderr.
 */
#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

int cli_exit_for(int code)
{
    switch (code) {
    case FL_OK:
        return FL_EXIT_OK;
    case FL_EINVAL:
    case FL_EURL: /* a malformed --db / FLEETLEASE_DB is a bad value */
        return FL_EXIT_USAGE;
    case FL_ECONFLICT:
    case FL_ECANCELED: /* the wait ended without a grant, by request */
        return FL_EXIT_CONFLICT;
    case FL_ENOTFOUND:
    case FL_EEXPIRED:
    case FL_ELOST:
        return FL_EXIT_LOST;
    case FL_EUNAVAIL:
        return FL_EXIT_UNAVAILABLE;
    default:
        return FL_EXIT_INTERNAL;
    }
}

/* Stable machine-readable names for the "error" field of JSON errors
 * (fl_strerror's prose may be reworded; these may not). */
static const char *error_id(int code)
{
    switch (code) {
    case FL_EINVAL: return "invalid";
    case FL_ECONFLICT: return "conflict";
    case FL_ENOTFOUND: return "not_found";
    case FL_EEXPIRED: return "expired";
    case FL_ELOST: return "lost";
    case FL_EUNAVAIL: return "unavailable";
    case FL_ESTORE: return "store";
    case FL_ENOMEM: return "nomem";
    case FL_ESYS: return "system";
    case FL_EURL: return "url";
    case FL_ECANCELED: return "cancelled";
    default: return "error";
    }
}

static const char *prog_of(const cli_ctx *ctx)
{
    return ctx && ctx->prog ? ctx->prog : "fleetlease";
}

/* The message is allocated rather than formatted into a fixed buffer so
 * that nothing a validator wrote is ever cut. */
static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static void print_error(const cli_ctx *ctx, const char *id, int code, int exit_code,
                        const char *msg, const char *hint)
{
    if (ctx && ctx->cmd)
        fprintf(stderr, "%s %s: %s%s\n", prog_of(ctx), ctx->cmd, msg, hint ? hint : "");
    else
        fprintf(stderr, "%s: %s%s\n", prog_of(ctx), msg, hint ? hint : "");
    if (ctx && ctx->json) {
        json_t *o = json_object();
        if (!o)
            return;
        json_object_set_new(o, "error", json_string(id));
        json_object_set_new(o, "code", json_integer(code));
        json_object_set_new(o, "exit_code", json_integer(exit_code));
        json_object_set_new(o, "message", cli_jstr(msg));
        cli_print_json(o);
    }
}

/*
 * The options this process took from its environment (FLEETLEASE_<FLAG>),
 * so that a usage error about one of them names the variable the user has
 * to fix.  Process state: a process parses one command line, and every
 * cli_parse() starts the list afresh (the fuzzer calls main repeatedly).
 */
enum { CLI_ENV_MAX = 32, CLI_ENV_NAME_MAX = 64 };
static struct {
    const char *opt;               /* the long option's name, static */
    char var[CLI_ENV_NAME_MAX];    /* FLEETLEASE_... */
} env_used[CLI_ENV_MAX];
static size_t n_env_used;

/* " (from FLEETLEASE_X)" when msg is about an option that came from the
 * environment: validators start their messages with the field, which is
 * the option's name ("ttl: must be ...", "sweep-interval: ..."). */
static const char *env_source(const char *msg)
{
    for (size_t i = 0; msg && i < n_env_used; i++) {
        size_t n = strlen(env_used[i].opt);
        if (strncmp(msg, env_used[i].opt, n) == 0 && msg[n] == ':')
            return env_used[i].var;
    }
    return NULL;
}

int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    const char *var = env_source(msg);
    if (var && !strstr(msg, var)) {
        char *withvar = NULL;
        if (asprintf(&withvar, "%s (from %s)", msg, var) >= 0) {
            free(msg);
            msg = withvar;
        }
    }
    char hint[128];
    if (ctx && ctx->cmd)
        snprintf(hint, sizeof hint, "; see '%s %s --help'", prog_of(ctx), ctx->cmd);
    else
        snprintf(hint, sizeof hint, "; see '%s --help'", prog_of(ctx));
    print_error(ctx, "usage", FL_EINVAL, FL_EXIT_USAGE, msg ? msg : "invalid usage", hint);
    free(msg);
    return FL_EXIT_USAGE;
}

int cli_fail(const cli_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    int ex = cli_exit_for(code);
    print_error(ctx, error_id(code), code, ex, msg ? msg : fl_strerror(code), NULL);
    free(msg);
    return ex;
}

int cli_bad_value(const cli_ctx *ctx, const char *err)
{
    return cli_usage_error(ctx, "%s", err);
}

int cli_parse_max_run(const cli_ctx *ctx, const char *arg, int64_t *ms)
{
    char err[FL_MESSAGE_MAX], q[160];
    int64_t v = 0;
    if (fl_parse_duration(arg, &v, err, sizeof err) != FL_OK || v < 1000 ||
        v > FL_WAIT_MAX_MS)
        return cli_usage_error(ctx,
                               "max-run: must be a duration between 1s and 168h (7 days), such "
                               "as 4h, got '%s'",
                               cli_quote(q, sizeof q, arg, 32));
    *ms = v;
    return CLI_CONTINUE;
}

int cli_store_fail(const cli_ctx *ctx, fl_store *st, int code, const char *what)
{
    const char *why = st ? fl_errmsg(st) : "";
    return cli_fail(ctx, code, "%s: %s", what, why[0] ? why : fl_strerror(code));
}

int cli_help(const cli_ctx *ctx)
{
    for (const cli_command *c = cli_commands; c->name; c++) {
        if (ctx && ctx->cmd && strcmp(c->name, ctx->cmd) == 0) {
            fputs(c->usage, stdout);
            return FL_EXIT_OK;
        }
    }
    return FL_EXIT_OK;
}

/*
 * Options the environment never supplies: actions rather than settings
 * (help), the store, which fl_resolve_url() already takes from
 * FLEETLEASE_DB with the same precedence, and the names `fleetlease run`
 * hands its command (FLEETLEASE_PROVIDER, _TOKEN, _FENCE): inside a job a
 * stray `fleetlease release` must not act on the job's own lease.
 */
static int env_excluded(const char *name)
{
    static const char *const never[] = {"help", "version", "db", "token", "provider", "fence"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strcmp(name, never[i]) == 0)
            return 1;
    return 0;
}

/* 1 / 0 for a boolean variable's value; -1 when it is neither. */
static int env_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/*
 * Flag, then environment, then default: every long option not given on
 * the command line (seen[i] == 0) is looked up as FLEETLEASE_<NAME>, the
 * name upper-cased with '-' as '_' (--sweep-interval: FLEETLEASE_SWEEP_
 * INTERVAL).  An empty value counts as unset.  A value is handed to fn
 * exactly like the option's argument, so the command validates it the
 * same way; an option without a value (--json, --access-log) is set by
 * 1/true/yes/on and left alone by 0/false/no/off.
 */
static int parse_env(cli_ctx *ctx, const struct option *longopts, const unsigned char *seen,
                     cli_opt_fn fn, void *self)
{
    char q[160];
    for (size_t i = 0; longopts && longopts[i].name; i++) {
        const struct option *o = &longopts[i];
        if (seen[i] || o->flag || env_excluded(o->name))
            continue;
        char var[CLI_ENV_NAME_MAX];
        int n = snprintf(var, sizeof var, "FLEETLEASE_%s", o->name);
        if (n < 0 || (size_t)n >= sizeof var)
            return cli_fail(ctx, FL_EINVAL, "internal error: option name '%s' too long", o->name);
        for (char *p = var; *p; p++)
            *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        const char *v = getenv(var);
        if (!v || !v[0])
            continue;
        if (n_env_used < CLI_ENV_MAX) {
            env_used[n_env_used].opt = o->name;
            memcpy(env_used[n_env_used].var, var, (size_t)n + 1);
            n_env_used++;
        }
        const char *arg = v;
        if (o->has_arg == no_argument) {
            int b = env_bool(v);
            if (b < 0)
                return cli_usage_error(ctx,
                                       "%s: must be 1 or 0 (or true/false, yes/no, on/off), "
                                       "got \"%s\"",
                                       var, cli_quote(q, sizeof q, v, 32));
            if (b == 0)
                continue;
            arg = NULL;
        }
        if (o->val == CLI_OPT_JSON) {
            ctx->json = 1;
            continue;
        }
        int rc = fn ? fn(ctx, self, o->val, arg) : FL_EXIT_USAGE;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cli_parse(cli_ctx *ctx, int argc, char **argv, const char *shortopts,
              const struct option *longopts, cli_opt_fn fn, void *self,
              const char **pos, int maxpos, int *npos)
{
    /* Which long options the command line gave, for parse_env. */
    unsigned char seen[64] = {0};
    size_t nlong = 0;
    while (longopts && longopts[nlong].name)
        nlong++;
    if (nlong > sizeof seen)
        return cli_fail(ctx, FL_EINVAL, "internal error: more than %zu options", sizeof seen);
    n_env_used = 0;

    /* "-": operands come back in order as option 1, whatever
     * POSIXLY_CORRECT says; ":": we report errors ourselves, naming the
     * subcommand. */
    char sopts[64];
    int n = snprintf(sopts, sizeof sopts, "-:h%s", shortopts ? shortopts : "");
    if (n < 0 || (size_t)n >= sizeof sopts)
        return cli_fail(ctx, FL_EINVAL, "internal error: option string too long");
    char q[160];
    *npos = 0;
    optind = 0; /* glibc: 0 re-initializes fully, including the permutation state */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, sopts, longopts, NULL);
        if (c == -1)
            break;
        if (c != 1 && c != '?' && c != ':')
            for (size_t i = 0; i < nlong; i++)
                if (!longopts[i].flag && longopts[i].val == c)
                    seen[i] = 1;
        switch (c) {
        case 1:
            if (*npos >= maxpos)
                return cli_usage_error(ctx, "unexpected argument '%s'",
                                       cli_quote(q, sizeof q, optarg, 64));
            pos[(*npos)++] = optarg;
            if (ctx->opts_end_at > 0 && *npos == ctx->opts_end_at)
                goto operands; /* the rest is CMD's, "--" included */
            break;
        case CLI_OPT_DB:
            ctx->db = optarg;
            break;
        case CLI_OPT_JSON:
            ctx->json = 1;
            break;
        case 'h':
            return cli_help(ctx);
        case '?':
            /* A known short character here means a long option that takes
             * no value was given one ("--json=1"). */
            if (optopt > 0 && optopt < 256 && !strchr(sopts + 2, optopt))
                return cli_usage_error(ctx, "unknown option '-%s'",
                                       cli_quote(q, sizeof q, (char[]){(char)optopt, 0}, 4));
            if (optopt != 0)
                return cli_usage_error(ctx, "option '%s' takes no value",
                                       cli_quote(q, sizeof q, argv[optind - 1], 64));
            return cli_usage_error(ctx, "unknown or ambiguous option '%s'",
                                   cli_quote(q, sizeof q, argv[optind - 1], 64));
        case ':':
            return cli_usage_error(ctx, "option '%s' requires a value",
                                   cli_quote(q, sizeof q, argv[optind - 1], 64));
        default: {
            int rc = fn ? fn(ctx, self, c, optarg) : FL_EXIT_USAGE;
            if (rc != 0)
                return rc;
            break;
        }
        }
    }
operands:
    for (; optind < argc; optind++) {
        if (*npos >= maxpos)
            return cli_usage_error(ctx, "unexpected argument '%s'",
                                   cli_quote(q, sizeof q, argv[optind], 64));
        pos[(*npos)++] = argv[optind];
    }
    int rc = parse_env(ctx, longopts, seen, fn, self);
    return rc != 0 ? rc : CLI_CONTINUE;
}

/* ${XDG_CACHE_HOME:-$HOME/.cache}/fleetlease; relative values are ignored
 * as the XDG spec says.  -1 when there is no usable base or it is too long:
 * check then works without a cache rather than with a cut path. */
static int cache_dir(char *buf, size_t len)
{
    const char *x = getenv("XDG_CACHE_HOME");
    int n;
    if (x && x[0] == '/') {
        n = snprintf(buf, len, "%s/fleetlease", x);
    } else {
        const char *h = getenv("HOME");
        if (!h || h[0] != '/')
            return -1;
        n = snprintf(buf, len, "%s/.cache/fleetlease", h);
    }
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static void set_cache(const cli_ctx *ctx, fl_store *st)
{
    char dir[PATH_MAX];
    if (cache_dir(dir, sizeof dir) != 0)
        return;
    /* Without the cache only this process's memory could answer check
     * during an outage, which for a one-shot CLI is nothing: say so. */
    if (fl_set_cache_dir(st, dir) != FL_OK)
        fprintf(stderr, "%s %s: warning: check cache disabled: %s\n", prog_of(ctx),
                ctx->cmd ? ctx->cmd : "", fl_errmsg(st));
}

int cli_open_ex(const cli_ctx *ctx, fl_store **st, char *unavail, size_t unavail_len)
{
    char url[FL_URL_MAX + 1];
    *st = NULL;
    if (unavail && unavail_len)
        unavail[0] = '\0';
    if (ctx->db && !ctx->db[0])
        return cli_usage_error(ctx, "db: must be a store URL or path, got an empty string");
    int rc = fl_resolve_url(ctx->db, url, sizeof url);
    if (rc != FL_OK) {
        if (ctx->db)
            return cli_usage_error(ctx, "db: must be at most %d bytes, got %zu", FL_URL_MAX,
                                   strlen(ctx->db));
        return cli_fail(ctx, rc,
                        "cannot resolve the store: FLEETLEASE_DB, DATABASE_URL or the default "
                        "path under XDG_STATE_HOME/HOME is unset or longer than %d bytes",
                        FL_URL_MAX);
    }
    fl_store *s = NULL;
    rc = fl_open(url, &s);
    if (rc == FL_OK || (rc == FL_EUNAVAIL && unavail && unavail_len > 1 && s)) {
        /* Copied now: setting the cache dir resets the handle's message. */
        if (rc != FL_OK)
            snprintf(unavail, unavail_len, "%s",
                     fl_errmsg(s)[0] ? fl_errmsg(s) : fl_strerror(rc));
        set_cache(ctx, s);
        *st = s;
        return 0;
    }
    int ex;
    if (!s) {
        ex = cli_fail(ctx, rc, "cannot open store: %s", fl_strerror(rc));
    } else {
        /* Name the store (password masked) unless the library's message
         * already does. */
        const char *disp = fl_store_display(s);
        const char *why = fl_errmsg(s);
        if (!why[0])
            why = fl_strerror(rc);
        if (!disp || !disp[0] || strstr(why, disp))
            disp = NULL;
        ex = cli_fail(ctx, rc, "cannot open store%s%s: %s", disp ? " " : "", disp ? disp : "", why);
    }
    fl_close(s);
    return ex;
}

int cli_open(const cli_ctx *ctx, fl_store **st)
{
    return cli_open_ex(ctx, st, NULL, 0);
}

const char *cli_holder_default(char *buf, size_t len)
{
    const char *env = getenv("FLEETLEASE_HOLDER");
    if (env && env[0])
        return env;

    char user[256];
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && res->pw_name &&
        res->pw_name[0] && strlen(res->pw_name) < sizeof user)
        snprintf(user, sizeof user, "%s", res->pw_name);
    else
        snprintf(user, sizeof user, "uid%lu", (unsigned long)geteuid());

    char host[256];
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';

    int n = host[0] ? snprintf(buf, len, "%s@%s", user, host) : snprintf(buf, len, "%s", user);
    if (n < 0 || (size_t)n >= len) /* never a cut name: fall back to the user alone */
        n = snprintf(buf, len, "%s", user);
    if ((n < 0 || (size_t)n >= len) && len > 0)
        buf[0] = '\0';
    return buf;
}

void cli_default_holder(char *buf, size_t len)
{
    char tmp[FL_TEXT_MAX + 1];
    const char *h = cli_holder_default(tmp, sizeof tmp);
    if (len == 0)
        return;
    /* An over-long $FLEETLEASE_HOLDER yields "", which the holder
     * validator refuses; it is never cut to fit. */
    if (strlen(h) < len)
        memcpy(buf, h, strlen(h) + 1);
    else
        buf[0] = '\0';
}

/*
 * sd_notify(3) without libsystemd: the protocol is one datagram of
 * "VAR=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET ('@'
 * for the abstract namespace).  Unset: not under systemd Type=notify, a
 * no-op.  NOTIFY_SOCKET is left set, so the jobs serve's scheduler starts
 * inherit it; the units say NotifyAccess=main, and systemd ignores them.
 */
int cli_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, n);
    int abstract = path[0] == '@';
    if (abstract)
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t len = strlen(state);
    ssize_t w = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)len ? 0 : -1;
}

/* ---- output ------------------------------------------------------------ */

json_t *cli_jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    /* Not UTF-8 (a store message quoting raw input, say): keep the ASCII
     * and show every other byte as \xNN rather than dropping the field. */
    size_t n = strlen(s);
    char *b = malloc(n * 4 + 1);
    if (!b)
        return json_null();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            b[o++] = (char)c;
        } else {
            snprintf(b + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    b[o] = '\0';
    j = json_string(b);
    free(b);
    return j ? j : json_null();
}

void cli_jset_time(json_t *obj, const char *key, int64_t ms)
{
    char t[64];
    if (fl_format_time(ms, t, sizeof t) == FL_OK)
        json_object_set_new(obj, key, json_string(t));
    else
        json_object_set_new(obj, key, json_null());
}

const char *cli_lease_state_name(fl_lease_state s)
{
    switch (s) {
    case FL_LEASE_ACTIVE: return "active";
    case FL_LEASE_PENDING: return "pending";
    default: return "?";
    }
}

json_t *cli_lease_json(const fl_lease *l)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (l->token[0])
        json_object_set_new(o, "token", json_string(l->token));
    json_object_set_new(o, "fence", json_integer(l->fence));
    json_object_set_new(o, "provider", cli_jstr(l->provider));
    json_object_set_new(o, "holder", cli_jstr(l->holder));
    json_object_set_new(o, "purpose", cli_jstr(l->purpose));
    json_object_set_new(o, "mode", json_string(fl_mode_name(l->mode)));
    json_object_set_new(o, "state", json_string(cli_lease_state_name(l->state)));
    json_object_set_new(o, "ttl_ms", json_integer(l->ttl_ms));
    cli_jset_time(o, "acquired_at", l->acquired_at_ms);
    cli_jset_time(o, "heartbeat_at", l->heartbeat_at_ms);
    cli_jset_time(o, "expires_at", l->expires_at_ms);
    json_object_set_new(o, "acquired_at_ms", json_integer(l->acquired_at_ms));
    json_object_set_new(o, "heartbeat_at_ms", json_integer(l->heartbeat_at_ms));
    json_object_set_new(o, "expires_at_ms", json_integer(l->expires_at_ms));
    return o;
}

/* Leases as fl_list returns them (grouped by provider), each with its
 * provider's state: one place for `list --json` and GET /v1/leases. */
json_t *cli_leases_json(const fl_lease *ls, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0, end; a && i < n; i = end) {
        for (end = i + 1; end < n && strcmp(ls[end].provider, ls[i].provider) == 0; end++)
            ;
        const char *ps = fl_pstate_name(fl_pstate_of(ls + i, end - i));
        for (size_t k = i; k < end; k++) {
            json_t *o = cli_lease_json(&ls[k]);
            if (o)
                json_object_set_new(o, "provider_state", json_string(ps));
            json_array_append_new(a, o);
        }
    }
    return a;
}

json_t *cli_event_json(const fl_event *e)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_integer(e->id));
    cli_jset_time(o, "at", e->at_ms);
    json_object_set_new(o, "at_ms", json_integer(e->at_ms));
    json_object_set_new(o, "event", cli_jstr(e->event));
    json_object_set_new(o, "provider", cli_jstr(e->provider));
    json_object_set_new(o, "holder", cli_jstr(e->holder));
    json_object_set_new(o, "purpose", cli_jstr(e->purpose));
    json_object_set_new(o, "mode", json_string(fl_mode_name(e->mode)));
    json_object_set_new(o, "fence", json_integer(e->fence));
    if (e->expires_at_ms) {
        cli_jset_time(o, "expires_at", e->expires_at_ms);
        json_object_set_new(o, "expires_at_ms", json_integer(e->expires_at_ms));
    } else {
        json_object_set_new(o, "expires_at", json_null());
        json_object_set_new(o, "expires_at_ms", json_null());
    }
    json_object_set_new(o, "detail", cli_jstr(e->detail));
    return o;
}

void cli_print_json(json_t *obj)
{
    if (!obj) {
        fputs("null\n", stdout);
        return;
    }
    json_dumpf(obj, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(obj);
}

void cli_format_left(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "expired");
        return;
    }
    /* Rounded up: "0s" would read as already gone. */
    long long s = (long long)((ms + 999) / 1000);
    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

static void print_time_line(const char *label, int64_t ms)
{
    char t[64];
    if (fl_format_time(ms, t, sizeof t) != FL_OK)
        snprintf(t, sizeof t, "%lld ms", (long long)ms);
    printf("%-13s%s\n", label, t);
}

void cli_print_lease(const cli_ctx *ctx, const fl_lease *l)
{
    if (ctx->json) {
        cli_print_json(cli_lease_json(l));
        return;
    }
    char ttl[32];
    cli_format_left(l->ttl_ms, ttl, sizeof ttl);
    if (l->token[0])
        printf("%-13s%s\n", "token:", l->token);
    printf("%-13s%s\n", "provider:", l->provider);
    printf("%-13s%s\n", "holder:", l->holder);
    printf("%-13s%s\n", "purpose:", l->purpose);
    printf("%-13s%s\n", "mode:", fl_mode_name(l->mode));
    printf("%-13s%s\n", "state:", cli_lease_state_name(l->state));
    printf("%-13s%lld\n", "fence:", (long long)l->fence);
    printf("%-13s%s\n", "ttl:", ttl);
    print_time_line("acquired_at:", l->acquired_at_ms);
    print_time_line("expires_at:", l->expires_at_ms);
}

/* The JSON of a verdict: `fleetlease check --json` and the daemon's HTTP
 * check both answer with it, so a script can switch between the two. */
json_t *cli_verdict_json(const char *provider, const fl_verdict *v)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "provider", cli_jstr(provider));
    json_object_set_new(o, "allowed", json_boolean(v->allowed));
    json_object_set_new(o, "state", json_string(fl_pstate_name(v->state)));
    json_object_set_new(o, "shared_count", json_integer(v->shared_count));
    json_object_set_new(o, "stale", json_boolean(v->stale));
    json_object_set_new(o, "fail_open", json_boolean(v->fail_open));
    json_object_set_new(o, "message", cli_jstr(v->message));
    if (v->now_ms > 0) {
        cli_jset_time(o, "now", v->now_ms);
        json_object_set_new(o, "now_ms", json_integer(v->now_ms));
    } else { /* failing open with no state ever read: there is no store time */
        json_object_set_new(o, "now", json_null());
        json_object_set_new(o, "now_ms", json_null());
    }
    if (!v->allowed) {
        const fl_lease *b = &v->blocker;
        json_object_set_new(o, "holder", cli_jstr(b->holder));
        json_object_set_new(o, "purpose", cli_jstr(b->purpose));
        json_object_set_new(o, "mode", json_string(fl_mode_name(b->mode)));
        json_object_set_new(o, "lease_state", json_string(cli_lease_state_name(b->state)));
        json_object_set_new(o, "fence", json_integer(b->fence));
        cli_jset_time(o, "expires_at", b->expires_at_ms);
        json_object_set_new(o, "expires_at_ms", json_integer(b->expires_at_ms));
        json_object_set_new(o, "retry_after_ms", json_integer(v->retry_after_ms));
    }
    return o;
}

void cli_print_verdict(const cli_ctx *ctx, const char *provider, const fl_verdict *v)
{
    if (!ctx->json) {
        printf("%s\n", v->message);
        return;
    }
    json_t *o = cli_verdict_json(provider, v);
    if (o)
        cli_print_json(o);
}
