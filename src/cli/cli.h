/*
 * src/cli/cli.h -- what the subcommands of the fleetlease command share.
 * The command uses only the public header, as curl's tool uses libcurl.
 *
 * Exit codes are part of the interface: documented in docs/cli.md and in
 * `fleetlease --help`, stable, never renumbered.  `run` passes its child's
 * status through (128+N when the child died of signal N), so the codes of
 * fleetlease's own failures sit where commands rarely exit (sysexits range).
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include "fleetlease.h"

#include <stdio.h>

enum {
    FL_EXIT_OK = 0,
    FL_EXIT_USAGE = 64,       /* bad option or value: the message names it */
    FL_EXIT_INTERNAL = 70,    /* the store answered with an error, or a bug */
    FL_EXIT_UNAVAILABLE = 69, /* the store cannot be reached */
    FL_EXIT_CONFLICT = 75,    /* held by someone else / not granted within --wait /
                                 check: this writer must not dispatch */
    FL_EXIT_LOST = 76,        /* the lease is gone: lost, expired, released or unknown token */
    FL_EXIT_ISOLATION = 78,   /* run --require-isolation: a foreign request reached the host
                                 while the lease was active, or no gateway reported on it */
    FL_EXIT_NOEXEC = 126,     /* run: CMD found but could not be executed */
    FL_EXIT_NOTFOUND = 127    /* run: CMD not found */
};

typedef struct cli_ctx {
    const char *prog;      /* "fleetlease" */
    const char *cmd;       /* subcommand name */
    const char *db;        /* --db, or NULL: fl_resolve_url() decides */
    int json;              /* --json */
    /* Set by a command before cli_parse: options end at this operand (the
     * n-th, counting from 1; 0: they never do).  For commands that run
     * CMD ARGS..., as timeout(1) and flock(1) do: CMD's own options
     * (--db, --ttl...) must reach CMD, not be taken as ours. */
    int opts_end_at;
} cli_ctx;

typedef struct cli_command {
    const char *name;
    int (*fn)(cli_ctx *ctx, int argc, char **argv); /* argv[0] is the subcommand */
    const char *summary;   /* one line for `fleetlease --help` */
    const char *usage;     /* full --help text of the subcommand */
} cli_command;

/* The subcommand table, in src/cli/main.c; NULL-name terminated. */
extern const cli_command cli_commands[];

/* Exit code for an fl_code. */
int cli_exit_for(int code);

/* "fleetlease CMD: <message>" on stderr; returns FL_EXIT_USAGE after
 * pointing at `fleetlease CMD --help`. */
int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "fleetlease CMD: <message>" on stderr; with --json also
 * {"error": "<fl_strerror>", "code": N, "message": ...} on stdout.
 * Returns cli_exit_for(code). */
int cli_fail(const cli_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print the subcommand's usage to stdout (for --help) and return 0. */
int cli_help(const cli_ctx *ctx);

/* Resolve and open the store (and set the check cache dir).  On failure
 * prints the error and returns its exit code; on success 0. */
int cli_open(const cli_ctx *ctx, fl_store **st);

/* Default holder: $FLEETLEASE_HOLDER, else "user@host". */
void cli_default_holder(char *buf, size_t len);

/* Output helpers: text to stdout, or one JSON object with --json. */
void cli_print_lease(const cli_ctx *ctx, const fl_lease *l);
void cli_print_verdict(const cli_ctx *ctx, const char *provider, const fl_verdict *v);

#endif
