/*
 * src/cli/main.c -- the fleetlease command: global options, then a
 * subcommand from cli_commands[] (git style).  Each subcommand parses its
 * own options and also accepts --db/--json after its name.
 */
#include "commands.h"

#include <errno.h>
#include <string.h>

const cli_command cli_commands[] = {
    {"acquire", cmd_acquire, "take a lease on a provider and print its token", cmd_acquire_usage},
    {"renew", cmd_renew, "extend a lease by its ttl (heartbeat)", cmd_renew_usage},
    {"release", cmd_release, "give a lease back", cmd_release_usage},
    {"check", cmd_check, "may this writer dispatch to a provider now?", cmd_check_usage},
    {"list", cmd_list, "show live leases", cmd_list_usage},
    {"history", cmd_history, "show the audit history, newest first", cmd_history_usage},
    {"sweep", cmd_sweep, "delete lapsed leases, recording them as expired", cmd_sweep_usage},
    {"run", cmd_run, "run a command under a lease, heartbeating, and release", cmd_run_usage},
    {"serve", cmd_serve, "serve the lease API over HTTP (see docs/api.md)", cmd_serve_usage},
    {"gateway", cmd_gateway, "lease-aware proxy in front of a host (see docs/gateway.md)",
     cmd_gateway_usage},
    {"schedule", cmd_schedule, "add, list and remove scheduled jobs; show their runs",
     cmd_schedule_usage},
    {NULL, NULL, NULL, NULL},
};

static void print_help(FILE *out)
{
    fputs("usage: fleetlease [--db URL] [--json] COMMAND [ARGS...]\n"
          "       fleetlease --help | --version | help COMMAND\n"
          "\n"
          "Time-limited, heartbeated leases on shared inference hosts (providers).\n"
          "The manual: man fleetlease; examples: docs/cli.md.\n"
          "\n"
          "Commands:\n",
          out);
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->summary);
    fputs("\n"
          "Global options (also accepted after the command):\n"
          "  --db URL    the store: a path, sqlite:PATH, or postgresql://...\n"
          "  --json      print one JSON document on stdout (an array for list and\n"
          "              history), also for errors; messages stay on stderr\n"
          "  -h, --help  this help (COMMAND --help: that command's options)\n"
          "  --version   print the version\n"
          "\n"
          "Environment (precedence: command-line flag, then variable, then default):\n"
          "  FLEETLEASE_<FLAG>  any --FLAG of any command, upper case with '-' as\n"
          "                     '_': --ttl as FLEETLEASE_TTL, --sweep-interval as\n"
          "                     FLEETLEASE_SWEEP_INTERVAL; 1 or 0 for a flag without\n"
          "                     a value (FLEETLEASE_JSON=1); empty counts as unset.\n"
          "                     Not --help, --db (see below), --token or --provider:\n"
          "                     run hands its command FLEETLEASE_TOKEN and _PROVIDER\n"
          "  FLEETLEASE_DB      store URL when --db is not given\n"
          "  DATABASE_URL       store URL when neither --db nor FLEETLEASE_DB is set\n"
          "  FLEETLEASE_HOLDER  default --holder (else user@host)\n"
          "  FLEETLEASE_WRITER  default --writer of check (else anonymous)\n"
          "  PGPASSFILE         libpq's password file: keeps a PostgreSQL password\n"
          "                     out of --db, and so out of ps and the logs\n"
          "  XDG_STATE_HOME     where the default store lives (see Files)\n"
          "  XDG_CACHE_HOME     where check keeps its last-known state (see Files)\n"
          "\n"
          "Files:\n"
          "  ${XDG_STATE_HOME:-$HOME/.local/state}/fleetlease/leases.db\n"
          "                     the default store (SQLite), created on first use with\n"
          "                     its directories (a --db path's directory must exist)\n"
          "  ${XDG_CACHE_HOME:-$HOME/.cache}/fleetlease/\n"
          "                     check's last state read of each provider, to answer\n"
          "                     from while the store is unreachable\n"
          "\n"
          "Exit codes:\n"
          "  0      success (check: this writer may dispatch)\n"
          "  64     usage: bad option or value (the message names it)\n"
          "  69     the store cannot be reached\n"
          "  70     the store answered with an error, or an internal error\n"
          "  75     conflict: held by someone else, not granted within --wait,\n"
          "         or check: this writer must not dispatch\n"
          "  76     the lease is gone: lost, expired, released or unknown token\n"
          "  78     run --require-isolation: a foreign request reached the host\n"
          "         during the lease, or no gateway reported on it\n"
          "  126    run: COMMAND found but not executable\n"
          "  127    run: COMMAND not found\n"
          "  other  run: COMMAND's own status (128+N when killed by signal N)\n",
          out);
}

enum { OPT_VERSION = CLI_OPT_PRIVATE };

static const cli_command *find_command(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* stdout is the command's result: a write error there (full disk, closed
 * pipe) must not end in exit 0. */
static int finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        fprintf(stderr, "fleetlease: error writing to stdout: %s\n", strerror(e));
        if (rc == FL_EXIT_OK)
            rc = FL_EXIT_INTERNAL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    cli_ctx ctx = {.prog = "fleetlease", .cmd = NULL, .db = NULL, .json = 0};
    char q[160];

    /* "+": stop at the subcommand; its options are its own. */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+:h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case CLI_OPT_DB:
            ctx.db = optarg;
            break;
        case CLI_OPT_JSON:
            ctx.json = 1;
            break;
        case 'h':
            print_help(stdout);
            return finish(FL_EXIT_OK);
        case OPT_VERSION:
            printf("fleetlease %s\n", FL_VERSION_STRING);
            return finish(FL_EXIT_OK);
        case ':':
            return cli_usage_error(&ctx, "option '%s' requires a value",
                                   cli_quote(q, sizeof q, argv[optind - 1], 64));
        default:
            if (optopt > 0 && optopt < 256 && optopt != 'h')
                return cli_usage_error(&ctx, "unknown option '-%s'",
                                       cli_quote(q, sizeof q, (char[]){(char)optopt, 0}, 4));
            return cli_usage_error(&ctx, "unknown option '%s'",
                                   cli_quote(q, sizeof q, argv[optind - 1], 64));
        }
    }
    if (optind >= argc) {
        print_help(stderr);
        return FL_EXIT_USAGE;
    }

    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            print_help(stdout);
            return finish(FL_EXIT_OK);
        }
        const cli_command *c = find_command(argv[optind + 1]);
        if (!c)
            return cli_usage_error(&ctx, "unknown command '%s'",
                                   cli_quote(q, sizeof q, argv[optind + 1], 64));
        fputs(c->usage, stdout);
        return finish(FL_EXIT_OK);
    }
    const cli_command *c = find_command(name);
    if (!c)
        return cli_usage_error(&ctx, "unknown command '%s'", cli_quote(q, sizeof q, name, 64));
    ctx.cmd = c->name;
    return finish(c->fn(&ctx, argc - optind, argv + optind));
}
