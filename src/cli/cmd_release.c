/*
 * fleetlease release PROVIDER --token T
 *
 * The library releases by token alone (the token names exactly one grant,
 * so a late or repeated release never touches a later grant); a token whose
 * lease is on another provider is refused as usage and nothing changes.
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
    "A token whose lease is on another provider is refused (64), nothing done.\n"
    "\n"
    "Exit: 0 released; 76 no such live lease (released, expired or never\n"
    "granted); 64 bad usage; 69 store unreachable; 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease release gpu-01 --token 0f6c2d...\n";

int cmd_release(cli_ctx *ctx, int argc, char **argv)
{
    cli_target t;
    int rc = cli_token_target(ctx, argc, argv, &t);
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    int code = fl_release(t.st, t.token);
    if (code == FL_OK) {
        if (ctx->json) {
            json_t *o = json_object();
            if (o) {
                json_object_set_new(o, "released", json_true());
                json_object_set_new(o, "provider", cli_jstr(t.provider));
                cli_print_json(o);
            }
        } else {
            printf("released lease on %s\n", t.provider);
        }
    } else if (code == FL_ENOTFOUND) {
        rc = cli_fail(ctx, code, "lease not found: released, expired or never granted");
    } else if (code == FL_EEXPIRED) {
        rc = cli_fail(ctx, code, "lease expired: it lapsed before this release");
    } else {
        rc = cli_store_fail(ctx, t.st, code, "release failed");
    }
    fl_close(t.st);
    return rc;
}
