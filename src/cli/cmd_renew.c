/*
 * fleetlease renew PROVIDER --token T
 *
 * One heartbeat: the store sets expires_at to its own now + the lease's
 * ttl.  It never creates a lease, so a renew after the lease lapsed or was
 * released fails (76) instead of resurrecting it.
 */
#include "commands.h"

#include <string.h>

const char cmd_renew_usage[] =
    "usage: fleetlease renew PROVIDER --token TOKEN\n"
    "\n"
    "Extend the lease named by TOKEN by its ttl, counted from now on the\n"
    "store's clock, and print the new expiry.  Scripts that hold a lease\n"
    "without `fleetlease run` call this about every ttl/3.\n"
    "\n"
    "Options:\n"
    "  --token TOKEN    the lease's token (32 lowercase hex digits)\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0 renewed; 76 the lease is gone (expired, released or never\n"
    "granted): stop using the host; 64 bad usage; 69 store unreachable\n"
    "(retry until your deadline); 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease renew gpu-01 --token 0f6c2d...\n";

enum { OPT_TOKEN = CLI_OPT_PRIVATE };

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    (void)ctx;
    if (opt != OPT_TOKEN)
        return FL_EXIT_USAGE;
    *(const char **)self = arg;
    return 0;
}

int cmd_renew(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"token", required_argument, NULL, OPT_TOKEN},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *token = NULL;
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &token, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;

    char err[FL_MESSAGE_MAX];
    if (npos < 1)
        return cli_usage_error(ctx, "missing PROVIDER");
    if (fl_validate_provider(pos[0], err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (!token)
        return cli_usage_error(ctx, "missing --token: the token acquire printed");
    if (fl_validate_token(token, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    fl_store *st = NULL;
    rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    fl_lease l;
    memset(&l, 0, sizeof l);
    int code = fl_heartbeat(st, token, &l);
    if (code == FL_OK) {
        /* The token identifies the lease; PROVIDER only guards the command
         * line, so a mismatch is worth a warning, not a failure (the renew
         * has already happened). */
        if (l.provider[0] && strcmp(l.provider, pos[0]) != 0)
            fprintf(stderr, "%s %s: warning: the token is for provider %s, not %s\n",
                    ctx->prog, ctx->cmd, l.provider, pos[0]);
        if (ctx->json) {
            json_t *o = cli_lease_json(&l);
            if (o)
                json_object_del(o, "token"); /* the caller has it; keep it off logs */
            cli_print_json(o);
        } else {
            char t[64];
            if (fl_format_time(l.expires_at_ms, t, sizeof t) != FL_OK)
                snprintf(t, sizeof t, "%lld ms", (long long)l.expires_at_ms);
            printf("renewed lease on %s until %s\n", l.provider[0] ? l.provider : pos[0], t);
        }
    } else if (code == FL_ENOTFOUND) {
        rc = cli_fail(ctx, code, "lease not found: released, expired or never granted");
    } else if (code == FL_EEXPIRED) {
        rc = cli_fail(ctx, code, "lease expired: it lapsed before this renew and cannot be renewed");
    } else {
        rc = cli_store_fail(ctx, st, code, "renew failed");
    }
    fl_close(st);
    return rc;
}
