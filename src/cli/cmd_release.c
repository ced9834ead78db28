/*
 * fleetlease release PROVIDER --token T
 *
 * The library releases by token alone (the token names exactly one grant,
 * so a late or repeated release never touches a later grant); PROVIDER is
 * validated so that a mistyped command line is refused as usage.
 */
#include "commands.h"

const char cmd_release_usage[] =
    "usage: fleetlease release PROVIDER --token TOKEN\n"
    "\n"
    "Give back the lease named by TOKEN (printed by acquire).  Only that lease\n"
    "is touched: a release after the lease lapsed, or a repeated one, fails\n"
    "and never affects a later holder.\n"
    "\n"
    "Options:\n"
    "  --token TOKEN    the lease's token (32 lowercase hex digits)\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0 released; 76 no such live lease (released, expired or never\n"
    "granted); 64 bad usage; 69 store unreachable; 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease release gpu-01 --token 0f6c2d...\n";

enum { OPT_TOKEN = CLI_OPT_PRIVATE };

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    (void)ctx;
    if (opt != OPT_TOKEN)
        return FL_EXIT_USAGE;
    *(const char **)self = arg;
    return 0;
}

int cmd_release(cli_ctx *ctx, int argc, char **argv)
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
    int code = fl_release(st, token);
    if (code == FL_OK) {
        if (ctx->json) {
            json_t *o = json_object();
            if (o) {
                json_object_set_new(o, "released", json_true());
                json_object_set_new(o, "provider", cli_jstr(pos[0]));
                cli_print_json(o);
            }
        } else {
            printf("released lease on %s\n", pos[0]);
        }
    } else if (code == FL_ENOTFOUND) {
        rc = cli_fail(ctx, code, "lease not found: released, expired or never granted");
    } else if (code == FL_EEXPIRED) {
        rc = cli_fail(ctx, code, "lease expired: it lapsed before this release");
    } else {
        rc = cli_store_fail(ctx, st, code, "release failed");
    }
    fl_close(st);
    return rc;
}
