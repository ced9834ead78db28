/*
 * fleetlease acquire PROVIDER --purpose P [--holder H] [--mode M] [--ttl D] [--wait D]
 *
 * Takes a lease and prints it, token included: the token is the only
 * capability that renews or releases it.  The lease is not heartbeated
 * (use `fleetlease run` for that, or `renew` from a script).
 */
#include "commands.h"

#include <string.h>

const char cmd_acquire_usage[] =
    "usage: fleetlease acquire PROVIDER --purpose TEXT [options]\n"
    "\n"
    "Take a lease on PROVIDER and print it, with its token and fence.  The\n"
    "lease lapses after --ttl unless renewed (fleetlease renew), so keep the\n"
    "token; `fleetlease run` does all of this for a command.\n"
    "\n"
    "Options:\n"
    "  --purpose TEXT   why (required; shown to refused writers), 1-256 bytes UTF-8\n"
    "  --holder NAME    who (default: $FLEETLEASE_HOLDER, else user@host)\n"
    "  --mode MODE      exclusive (default) or shared\n"
    "  --ttl DURATION   lifetime without renew, 1s..24h (default 30s)\n"
    "  --wait DURATION  keep trying this long, 0..7d (default 0: one attempt);\n"
    "                   an exclusive waiter stops new shared grants (draining)\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Durations: 500ms, 30s, 5m, 2h.\n"
    "\n"
    "Exit: 0 granted; 75 held by someone else (or not granted within --wait);\n"
    "64 bad usage; 69 store unreachable; 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease acquire gpu-01 --holder bench-1 --purpose \"nightly bench\" --ttl 30s --json\n";

enum { OPT_PURPOSE = CLI_OPT_PRIVATE, OPT_HOLDER, OPT_MODE, OPT_TTL, OPT_WAIT };

typedef struct acquire_opts {
    const char *purpose, *holder, *mode, *ttl, *wait;
} acquire_opts;

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    acquire_opts *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_PURPOSE: o->purpose = arg; break;
    case OPT_HOLDER: o->holder = arg; break;
    case OPT_MODE: o->mode = arg; break;
    case OPT_TTL: o->ttl = arg; break;
    case OPT_WAIT: o->wait = arg; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

static int print_conflict(const cli_ctx *ctx, const fl_verdict *v)
{
    fprintf(stderr, "%s %s: %s\n", ctx->prog, ctx->cmd, v->message);
    if (ctx->json) {
        json_t *o = json_object();
        if (o) {
            json_object_set_new(o, "error", json_string("conflict"));
            json_object_set_new(o, "code", json_integer(FL_ECONFLICT));
            json_object_set_new(o, "exit_code", json_integer(FL_EXIT_CONFLICT));
            json_object_set_new(o, "message", cli_jstr(v->message));
            json_object_set_new(o, "state", json_string(fl_pstate_name(v->state)));
            json_object_set_new(o, "shared_count", json_integer(v->shared_count));
            json_object_set_new(o, "holder", cli_jstr(v->blocker.holder));
            json_object_set_new(o, "purpose", cli_jstr(v->blocker.purpose));
            json_object_set_new(o, "mode", json_string(fl_mode_name(v->blocker.mode)));
            cli_jset_time(o, "expires_at", v->blocker.expires_at_ms);
            json_object_set_new(o, "expires_at_ms", json_integer(v->blocker.expires_at_ms));
            json_object_set_new(o, "retry_after_ms", json_integer(v->retry_after_ms));
            cli_print_json(o);
        }
    }
    return FL_EXIT_CONFLICT;
}

int cmd_acquire(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"purpose", required_argument, NULL, OPT_PURPOSE},
        {"holder", required_argument, NULL, OPT_HOLDER},
        {"mode", required_argument, NULL, OPT_MODE},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"wait", required_argument, NULL, OPT_WAIT},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    acquire_opts o = {0};
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &o, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;

    /* Everything is validated before the store is opened, so refused
     * input never even creates a database file. */
    char err[FL_MESSAGE_MAX];
    if (npos < 1)
        return cli_usage_error(ctx, "missing PROVIDER");
    const char *provider = pos[0];
    if (fl_validate_provider(provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (!o.purpose)
        return cli_usage_error(ctx, "missing --purpose: say why you need the host");
    if (fl_validate_text("purpose", o.purpose, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    char hbuf[FL_TEXT_MAX + 1];
    const char *holder = o.holder ? o.holder : cli_holder_default(hbuf, sizeof hbuf);
    if (fl_validate_text("holder", holder, err, sizeof err) != FL_OK)
        return o.holder ? cli_bad_value(ctx, err)
                        : cli_usage_error(ctx, "%s (from FLEETLEASE_HOLDER)", err);
    fl_mode mode = FL_EXCLUSIVE;
    if (o.mode && fl_parse_mode(o.mode, &mode, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    int64_t ttl_ms = 30000, wait_ms = 0;
    if (o.ttl && fl_parse_ttl("ttl", o.ttl, &ttl_ms, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (o.wait && fl_parse_wait("wait", o.wait, &wait_ms, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    fl_store *st = NULL;
    rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    fl_lease lease;
    fl_verdict conflict;
    memset(&lease, 0, sizeof lease);
    memset(&conflict, 0, sizeof conflict);
    int code = fl_acquire(st, provider, holder, o.purpose, mode, ttl_ms, wait_ms, &lease, &conflict);
    if (code == FL_OK)
        cli_print_lease(ctx, &lease);
    else if (code == FL_ECONFLICT && conflict.message[0])
        rc = print_conflict(ctx, &conflict);
    else
        rc = cli_store_fail(ctx, st, code, "acquire failed");
    fl_close(st);
    return rc;
}
