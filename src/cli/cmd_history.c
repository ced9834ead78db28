/*
 * fleetlease history [PROVIDER] [--limit N]
 *
 * The audit trail, newest first: every grant, renew, release, expiry,
 * refusal and pending intent.  (provider, fence) names a grant; tokens are
 * never recorded.
 */
#include "commands.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char cmd_history_usage[] =
    "usage: fleetlease history [PROVIDER] [--limit N]\n"
    "\n"
    "Show the history of every provider, or of PROVIDER, newest first:\n"
    "granted, renewed, released, expired, refused and pending events.\n"
    "With --json: an array of event objects.\n"
    "\n"
    "Options:\n"
    "  --limit N        at most N events, 1..10000 (default 50)\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0; 64 bad usage; 69 store unreachable; 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease history gpu-01 --limit 20\n";

enum { OPT_LIMIT = CLI_OPT_PRIVATE, LIMIT_MAX = 10000 };

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    (void)ctx;
    if (opt != OPT_LIMIT)
        return FL_EXIT_USAGE;
    *(const char **)self = arg;
    return 0;
}

/* Strict decimal: no sign, no spaces, no trailing text, no overflow. */
static int parse_limit(const char *s, size_t *out)
{
    if (!s[0] || strspn(s, "0123456789") != strlen(s))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > LIMIT_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

int cmd_history(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"limit", required_argument, NULL, OPT_LIMIT},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *limit_s = NULL;
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &limit_s, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;
    char err[FL_MESSAGE_MAX];
    const char *provider = npos ? pos[0] : NULL;
    if (provider && fl_validate_provider(provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    size_t limit = 50;
    char q[160];
    if (limit_s && parse_limit(limit_s, &limit) != 0)
        return cli_usage_error(ctx, "limit: must be an integer from 1 to %d, got '%s'", LIMIT_MAX,
                               cli_quote(q, sizeof q, limit_s, 32));

    fl_store *st = NULL;
    rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    fl_event *ev = NULL;
    size_t n = 0;
    int code = fl_history(st, provider, limit, &ev, &n);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "history failed");
    } else if (ctx->json) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, cli_event_json(&ev[i]));
        cli_print_json(a);
    } else if (n == 0) {
        printf(provider ? "no history for %s\n" : "no history\n", provider);
    } else {
        for (size_t i = 0; i < n; i++) {
            const fl_event *e = &ev[i];
            char at[64], exp[64];
            if (fl_format_time(e->at_ms, at, sizeof at) != FL_OK)
                snprintf(at, sizeof at, "%lld", (long long)e->at_ms);
            printf("%-8lld %s  %-8s %s %s fence=%lld holder=%s purpose=\"%s\"", (long long)e->id, at,
                   e->event, e->provider, fl_mode_name(e->mode), (long long)e->fence, e->holder,
                   e->purpose);
            if (e->expires_at_ms && fl_format_time(e->expires_at_ms, exp, sizeof exp) == FL_OK)
                printf(" expires_at=%s", exp);
            if (e->detail[0])
                printf(" detail=\"%s\"", e->detail);
            fputc('\n', stdout);
        }
    }
    fl_free(ev);
    fl_close(st);
    return rc;
}
