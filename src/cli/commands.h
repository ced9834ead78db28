/*
 * src/cli/commands.h -- private to the fleetlease command: the subcommand
 * entry points (the table lives in main.c) and the option-parsing and
 * output helpers the subcommands share beyond what cli.h declares.
 */
#ifndef FL_CLI_COMMANDS_H
#define FL_CLI_COMMANDS_H

#include "cli.h"

#include <getopt.h>
#include <jansson.h>

#define CLI_DECLARE(name)                                   \
    int cmd_##name(cli_ctx *ctx, int argc, char **argv);    \
    extern const char cmd_##name##_usage[]

CLI_DECLARE(acquire);
CLI_DECLARE(renew);
CLI_DECLARE(release);
CLI_DECLARE(check);
CLI_DECLARE(list);
CLI_DECLARE(history);
CLI_DECLARE(sweep);
CLI_DECLARE(run);
CLI_DECLARE(serve);
CLI_DECLARE(gateway);
CLI_DECLARE(schedule);

#undef CLI_DECLARE

/*
 * Options every subcommand accepts after its name, because users type
 * `fleetlease check gpu-01 --json`.  The values sit above any character so
 * that they never collide with a subcommand's short options.
 */
enum { CLI_OPT_DB = 0x1000, CLI_OPT_JSON, CLI_OPT_PRIVATE = 0x1100 };

#define CLI_COMMON_OPTIONS                                 \
    {"db", required_argument, NULL, CLI_OPT_DB},           \
    {"json", no_argument, NULL, CLI_OPT_JSON},             \
    {"help", no_argument, NULL, 'h'}

/* cli_parse() result meaning "options parsed, go on". */
#define CLI_CONTINUE (-1)

/*
 * Store one option of the subcommand (raw: values are validated after
 * parsing, once --json is known, so that a value error is reported in the
 * requested format whatever the order of the options).  Return 0, or an
 * exit code to stop with (after printing why).
 */
typedef int (*cli_opt_fn)(cli_ctx *ctx, void *self, int opt, const char *arg);

/*
 * getopt_long over argv (argv[0] is the subcommand), in order, so that
 * options and operands may be mixed and `--` ends the options.  Handles
 * --db, --json and --help itself; passes every other option to fn.
 * Operands go to pos[0..maxpos); one more is a usage error.  Returns
 * CLI_CONTINUE, or the exit code to return at once (0 after --help).
 * shortopts lists the subcommand's short options other than "h".
 */
int cli_parse(cli_ctx *ctx, int argc, char **argv, const char *shortopts,
              const struct option *longopts, cli_opt_fn fn, void *self,
              const char **pos, int maxpos, int *npos);

/* Usage error for an invalid value whose message a validator wrote. */
int cli_bad_value(const cli_ctx *ctx, const char *err);
/* --max-run of run and schedule add: 1s..FL_WAIT_MAX_MS (168h, the limit
 * the library holds a schedule's max_run to).  CLI_CONTINUE, or the exit
 * code of the usage error it reported. */
int cli_parse_max_run(const cli_ctx *ctx, const char *arg, int64_t *ms);

/*
 * Write `s` for a message: at most `max` input bytes, control characters
 * (C0, DEL, C1), backslashes and bytes that are not well-formed UTF-8 as
 * \xNN, "..." appended when cut.  Only for echoing hostile input in an
 * error message; values that are used are never shortened.
 */
const char *cli_quote(char *buf, size_t len, const char *s, size_t max);

/*
 * The default holder without a length limit: $FLEETLEASE_HOLDER as set
 * (the caller validates it like --holder, so an over-long value is refused
 * with its real length instead of being cut), else "user@host" in buf.
 */
const char *cli_holder_default(char *buf, size_t len);

/*
 * cli_open(), but when `unavail` is not NULL an unreachable store is not
 * fatal: *st is then the handle fl_open() returned, the reason is copied
 * into unavail (never empty then; "" when the store was reached) and the
 * return is 0, so that check can answer from its cache.  Any other failure
 * prints and returns its exit code.
 */
int cli_open_ex(const cli_ctx *ctx, fl_store **st, char *unavail, size_t unavail_len);

/*
 * Tell systemd about the service's state ("READY=1", "STOPPING=1") when it
 * runs us as Type=notify ($NOTIFY_SOCKET set); a no-op otherwise.  0 on
 * success or when there is nobody to tell; -1 with errno if sending failed.
 */
int cli_sd_notify(const char *state);

/* The store error of the last call on st, via cli_fail(). */
int cli_store_fail(const cli_ctx *ctx, fl_store *st, int code, const char *what);

/*
 * renew and release: parse "PROVIDER --token TOKEN", open the store and
 * make sure the token names a live lease on PROVIDER (src/cli/token_target.c).
 * Returns CLI_CONTINUE with t->st open (the caller closes it), or the exit
 * code after saying why.
 */
typedef struct cli_target {
    const char *provider;
    const char *token;
    fl_store *st;
} cli_target;
int cli_token_target(cli_ctx *ctx, int argc, char **argv, cli_target *t);

/* JSON building: strings that are not valid UTF-8 are escaped, not lost. */
json_t *cli_jstr(const char *s);
void cli_jset_time(json_t *obj, const char *key, int64_t ms);
json_t *cli_lease_json(const fl_lease *l);
/* An array of cli_lease_json objects, each with "provider_state". */
json_t *cli_leases_json(const fl_lease *ls, size_t n);

/* A verdict as JSON (check --json, and the daemon's HTTP check). */
json_t *cli_verdict_json(const char *provider, const fl_verdict *v);
json_t *cli_event_json(const fl_event *e);
/* Print obj (an object or array) as the one JSON document on stdout; takes
 * ownership. */
void cli_print_json(json_t *obj);

/* "active" / "pending". */
const char *cli_lease_state_name(fl_lease_state s);

/* A duration for people: "29s", "4m59s", "2h03m", "expired". */
void cli_format_left(int64_t ms, char *buf, size_t len);

#endif
