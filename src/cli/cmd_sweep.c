/*
 * fleetlease sweep
 *
 * Housekeeping only: a lapsed lease already counts as gone for every
 * decision (liveness is judged on the store's clock), so nothing depends
 * on a sweep having run.  It deletes the rows and records "expired".
 */
#include "commands.h"

const char cmd_sweep_usage[] =
    "usage: fleetlease sweep\n"
    "\n"
    "Delete every lapsed lease, recording an \"expired\" event for each, and\n"
    "print how many.  Optional: lapsed leases never block anyone, so this is\n"
    "housekeeping (run it from cron if you like).  With --json:\n"
    "{\"expired\": N}.\n"
    "\n"
    "Options:\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0; 64 bad usage; 69 store unreachable; 70 store error.\n";

int cmd_sweep(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, NULL, NULL, pos, 0, &npos);
    if (rc != CLI_CONTINUE)
        return rc;
    fl_store *st = NULL;
    rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    size_t expired = 0;
    int code = fl_sweep(st, &expired);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "sweep failed");
    } else if (ctx->json) {
        json_t *o = json_object();
        if (o) {
            json_object_set_new(o, "expired", json_integer((json_int_t)expired));
            cli_print_json(o);
        }
    } else {
        printf("swept %zu expired lease%s\n", expired, expired == 1 ? "" : "s");
    }
    fl_close(st);
    return rc;
}
