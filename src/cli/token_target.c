/*
 * src/cli/token_target.c -- what `renew` and `release` share: the command
 * line "PROVIDER --token TOKEN", and the check that the token's lease is on
 * PROVIDER.  The library works by token alone (a token names exactly one
 * grant); the check makes a mistyped provider a usage error that changes
 * nothing, instead of acting on a lease the user did not mean.
 */
#include "commands.h"

#include <string.h>

enum { OPT_TOKEN = CLI_OPT_PRIVATE };

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    (void)ctx;
    if (opt != OPT_TOKEN)
        return FL_EXIT_USAGE;
    *(const char **)self = arg;
    return 0;
}

int cli_token_target(cli_ctx *ctx, int argc, char **argv, cli_target *t)
{
    static const struct option longopts[] = {
        {"token", required_argument, NULL, OPT_TOKEN},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *pos[1];
    int npos = 0;
    memset(t, 0, sizeof *t);
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &t->token, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;

    char err[FL_MESSAGE_MAX];
    if (npos < 1)
        return cli_usage_error(ctx, "missing PROVIDER");
    t->provider = pos[0];
    if (fl_validate_provider(t->provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (!t->token)
        return cli_usage_error(ctx, "missing --token: the token acquire printed");
    if (fl_validate_token(t->token, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    rc = cli_open(ctx, &t->st);
    if (rc != 0)
        return rc;
    fl_lease l;
    int code = fl_lookup(t->st, t->token, &l);
    if (code == FL_OK && strcmp(l.provider, t->provider) != 0) {
        rc = cli_usage_error(ctx, "PROVIDER: the token's lease is on %s, not %s; nothing done",
                             l.provider, t->provider);
    } else if (code == FL_OK) {
        return CLI_CONTINUE;
    } else if (code == FL_ENOTFOUND) {
        rc = cli_fail(ctx, code, "lease not found: released, expired or never granted");
    } else if (code == FL_EEXPIRED) {
        rc = cli_fail(ctx, code, "lease expired: it lapsed before this %s", ctx->cmd);
    } else {
        rc = cli_store_fail(ctx, t->st, code, ctx->cmd);
    }
    fl_close(t->st);
    t->st = NULL;
    return rc;
}
