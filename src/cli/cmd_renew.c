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
    "A token whose lease is on another provider is refused (64), nothing done.\n"
    "\n"
    "Exit: 0 renewed; 76 the lease is gone (expired, released or never\n"
    "granted): stop using the host; 64 bad usage; 69 store unreachable\n"
    "(retry until your deadline); 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease renew gpu-01 --token 0f6c2d...\n";

int cmd_renew(cli_ctx *ctx, int argc, char **argv)
{
    cli_target t;
    int rc = cli_token_target(ctx, argc, argv, &t);
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    fl_lease l;
    memset(&l, 0, sizeof l);
    int code = fl_heartbeat(t.st, t.token, &l);
    if (code == FL_OK) {
        if (ctx->json) {
            json_t *o = cli_lease_json(&l);
            if (o)
                json_object_del(o, "token"); /* the caller has it; keep it off logs */
            cli_print_json(o);
        } else {
            char when[64];
            if (fl_format_time(l.expires_at_ms, when, sizeof when) != FL_OK)
                snprintf(when, sizeof when, "%lld ms", (long long)l.expires_at_ms);
            printf("renewed lease on %s until %s\n", t.provider, when);
        }
    } else if (code == FL_ENOTFOUND) {
        rc = cli_fail(ctx, code, "lease not found: released, expired or never granted");
    } else if (code == FL_EEXPIRED) {
        rc = cli_fail(ctx, code, "lease expired: it lapsed before this renew and cannot be renewed");
    } else {
        rc = cli_store_fail(ctx, t.st, code, "renew failed");
    }
    fl_close(t.st);
    return rc;
}
