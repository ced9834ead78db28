/*
 * fleetlease check PROVIDER [--writer W] [--token T]
 *
 * The honor protocol from a shell: every writer runs this (or fl_check)
 * before it dispatches.  The decision is fl_check's; this file only maps
 * it to an exit code and makes a stale answer loud.
 */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

const char cmd_check_usage[] =
    "usage: fleetlease check PROVIDER [--writer NAME] [--token TOKEN]\n"
    "\n"
    "May this writer dispatch to PROVIDER now?  Prints the verdict; exits 0\n"
    "when allowed and 75 when not, with the reason:\n"
    "  host leased for <purpose> by <holder> until <time>\n"
    "A writer is allowed when the provider is free or shared, or when it is\n"
    "the exclusive holder (by name or by token).  While an exclusive lease is\n"
    "pending (draining) every writer is refused.\n"
    "\n"
    "If the store cannot be reached, the answer comes from the last state read\n"
    "(cached under ${XDG_CACHE_HOME:-$HOME/.cache}/fleetlease) with a warning\n"
    "on stderr and \"stale\": true; once that state has itself expired, check\n"
    "fails OPEN (allowed, \"fail_open\": true).\n"
    "\n"
    "Options:\n"
    "  --writer NAME    who asks (default: $FLEETLEASE_WRITER, else anonymous)\n"
    "  --token TOKEN    a lease token the writer holds\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0 allowed; 75 refused; 64 bad usage; 69/70 no verdict at all.\n"
    "\n"
    "Example:\n"
    "  fleetlease check gpu-01 --writer router-3 || echo \"skip gpu-01\"\n";

enum { OPT_WRITER = CLI_OPT_PRIVATE, OPT_TOKEN };

typedef struct check_opts {
    const char *writer, *token;
} check_opts;

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    check_opts *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_WRITER: o->writer = arg; break;
    case OPT_TOKEN: o->token = arg; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

int cmd_check(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"writer", required_argument, NULL, OPT_WRITER},
        {"token", required_argument, NULL, OPT_TOKEN},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    check_opts o = {0};
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &o, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;

    char err[FL_MESSAGE_MAX];
    if (npos < 1)
        return cli_usage_error(ctx, "missing PROVIDER");
    const char *provider = pos[0];
    if (fl_validate_provider(provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    int writer_from_env = 0;
    const char *writer = o.writer;
    if (!writer) {
        const char *env = getenv("FLEETLEASE_WRITER");
        if (env && env[0]) {
            writer = env;
            writer_from_env = 1;
        }
    }
    if (writer && fl_validate_text("writer", writer, err, sizeof err) != FL_OK)
        return writer_from_env ? cli_usage_error(ctx, "%s (from FLEETLEASE_WRITER)", err)
                               : cli_bad_value(ctx, err);
    if (o.token && fl_validate_token(o.token, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    /* An unreachable store is not fatal here: fl_check answers from the
     * cached state of the provider. */
    fl_store *st = NULL;
    char open_err[FL_MESSAGE_MAX];
    rc = cli_open_ex(ctx, &st, open_err, sizeof open_err);
    if (rc != 0)
        return rc;
    fl_verdict v;
    memset(&v, 0, sizeof v);
    int code = fl_check(st, provider, writer, o.token, &v);
    if (code != FL_OK) {
        /* A library that cannot check on a handle whose open failed leaves
         * us with the open error, which is the one worth reporting. */
        if (open_err[0])
            rc = cli_fail(ctx, FL_EUNAVAIL, "cannot open store: %s", open_err);
        else
            rc = cli_store_fail(ctx, st, code, "check failed");
        fl_close(st);
        return rc;
    }
    if (v.stale) {
        char t[64];
        if (fl_format_time(v.now_ms, t, sizeof t) != FL_OK)
            snprintf(t, sizeof t, "an unknown time");
        if (v.fail_open && v.now_ms <= 0)
            fprintf(stderr, "%s check: WARNING: store unreachable; no state cached; failing OPEN\n",
                    ctx->prog);
        else if (v.fail_open)
            fprintf(stderr,
                    "%s check: WARNING: store unreachable; last state (read at %s) has "
                    "expired; failing OPEN\n",
                    ctx->prog, t);
        else
            fprintf(stderr, "%s check: WARNING: store unreachable; answering from state read at %s\n",
                    ctx->prog, t);
    }
    cli_print_verdict(ctx, provider, &v);
    fl_close(st);
    return v.allowed ? FL_EXIT_OK : FL_EXIT_CONFLICT;
}
