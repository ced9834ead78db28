/*
 * fleetlease schedule add|list|rm|runs
 *
 * Schedules live in the store, so every `fleetlease serve` sharing it sees
 * them; the daemons run due jobs (src/http/sched.c), each due run exactly
 * once across all of them.  This file only edits and shows them.
 */
#include "commands.h"
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char cmd_schedule_usage[] =
    "usage: fleetlease schedule add NAME --cron SPEC --provider ID[,ID...] --purpose TEXT\n"
    "           [--holder TEXT] [--max-wait D] [--max-run D] [--ttl D] [--tz TZ]\n"
    "           -- CMD [ARGS...]\n"
    "       fleetlease schedule list\n"
    "       fleetlease schedule rm NAME\n"
    "       fleetlease schedule runs [NAME] [--limit N]\n"
    "\n"
    "Unattended jobs, run by `fleetlease serve`: when a schedule is due, one\n"
    "daemon of those sharing the store claims the run (exactly once), takes an\n"
    "exclusive lease on the first provider that can be had (waiting up to\n"
    "--max-wait; shared holders drain first), runs CMD under it as\n"
    "`fleetlease run` does, kills it at --max-run, releases, and records the\n"
    "run.  A run that cannot get a host within --max-wait is recorded as\n"
    "skipped, with the reason.  Runs due while no daemon was running (or the\n"
    "store was unreachable) are not replayed: one more than 60s late is logged\n"
    "as missed (event=runs_missed) and not run.  With several providers, each\n"
    "is tried at once first, then in turn with growing waits (10s, 20s, 40s...\n"
    "up to 5m each) until --max-wait is used up.\n"
    "\n"
    "add replaces a schedule of the same name (past runs are kept).\n"
    "  NAME             1-64 bytes of [A-Za-z0-9._-]\n"
    "  --cron SPEC      minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\";\n"
    "                   *, N, N-M, lists, /STEP, names (jan, mon); or @hourly,\n"
    "                   @daily (@midnight), @weekly, @monthly, @yearly\n"
    "  --tz TZ          UTC (default) or a fixed offset: UTC+02:00, +05:30, -08:00;\n"
    "                   named zones (Europe/Berlin) are not supported\n"
    "  --provider LIST  provider ids, comma-separated, tried in this order\n"
    "  --purpose TEXT   shown to refused writers; required\n"
    "  --holder TEXT    the lease's holder (default: schedule:NAME)\n"
    "  --max-wait D     how long to wait for a host (default 1h; 0..168h)\n"
    "  --max-run D      CMD is stopped after this (default 4h; 1s..168h)\n"
    "  --ttl D          the lease's ttl (default 30s; 1s..24h)\n"
    "  CMD [ARGS...]    stored as a JSON array; runs with the daemon's\n"
    "                   environment and working directory, plus\n"
    "                   FLEETLEASE_PROVIDER, FLEETLEASE_TOKEN, FLEETLEASE_FENCE;\n"
    "                   options come before it: from CMD on, every argument is\n"
    "                   CMD's (\"--\" may be left out unless CMD starts with \"-\")\n"
    "list               every schedule and its next due time\n"
    "rm NAME            delete a schedule (its past runs are kept)\n"
    "runs [NAME]        past and running runs, newest first: due and start\n"
    "                   times, end, provider, fence, exit status, outcome (ok,\n"
    "                   failed, skipped, lost, running) and detail (why, and the\n"
    "                   lease's isolation report)\n"
    "  --limit N        at most N runs, 1..10000 (default 20)\n"
    "\n"
    "Options: --db URL, --json, -h/--help as for fleetlease.\n"
    "\n"
    "Exit: 0; 64 bad usage or value (a cron error names field and column);\n"
    "69 store unreachable; 70 store error; 76 rm: no such schedule.\n"
    "\n"
    "Example (nightly at 02:00 UTC, on gpu-01 or else gpu-02):\n"
    "  fleetlease schedule add nightly --cron \"0 2 * * *\" --provider gpu-01,gpu-02 \\\n"
    "      --purpose \"nightly bench\" --max-wait 2h --max-run 4h -- ./bench.sh --full\n";

enum {
    OPT_CRON = CLI_OPT_PRIVATE,
    OPT_PROVIDER,
    OPT_PURPOSE,
    OPT_HOLDER,
    OPT_MAX_WAIT,
    OPT_MAX_RUN,
    OPT_TTL,
    OPT_TZ,
    OPT_LIMIT,
};

typedef struct sched_raw {
    const char *cron, *provider, *purpose, *holder, *max_wait, *max_run, *ttl, *tz, *limit;
} sched_raw;

static int on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    sched_raw *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_CRON: o->cron = arg; break;
    case OPT_PROVIDER: o->provider = arg; break;
    case OPT_PURPOSE: o->purpose = arg; break;
    case OPT_HOLDER: o->holder = arg; break;
    case OPT_MAX_WAIT: o->max_wait = arg; break;
    case OPT_MAX_RUN: o->max_run = arg; break;
    case OPT_TTL: o->ttl = arg; break;
    case OPT_TZ: o->tz = arg; break;
    case OPT_LIMIT: o->limit = arg; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

/* ---- the command as JSON ---------------------------------------------- */

int cli_sched_encode(char *const *argv, int argc, char *out, size_t len, char *err,
                     size_t errlen)
{
    json_t *a = json_array();
    if (!a) {
        snprintf(err, errlen, "command: out of memory");
        return FL_ENOMEM;
    }
    for (int i = 0; i < argc; i++) {
        json_t *s = json_string(argv[i]);
        if (!s) {
            json_decref(a);
            snprintf(err, errlen, "command: argument %d is not valid UTF-8", i + 1);
            return FL_EINVAL;
        }
        json_array_append_new(a, s);
    }
    char *txt = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!txt) {
        snprintf(err, errlen, "command: out of memory");
        return FL_ENOMEM;
    }
    size_t n = strlen(txt);
    int rc = FL_OK;
    if (n > FL_COMMAND_MAX || n >= len) {
        snprintf(err, errlen, "command: must be at most %d bytes as a JSON array, got %zu",
                 FL_COMMAND_MAX, n);
        rc = FL_EINVAL;
    } else {
        memcpy(out, txt, n + 1);
    }
    free(txt);
    return rc;
}

char **cli_sched_decode(const char *command, int *argc, char *err, size_t errlen)
{
    json_error_t je;
    json_t *a = json_loads(command ? command : "", JSON_REJECT_DUPLICATES, &je);
    if (!a || !json_is_array(a) || json_array_size(a) == 0) {
        snprintf(err, errlen, "command: must be a non-empty JSON array of strings%s%s",
                 a ? "" : ": ", a ? "" : je.text);
        json_decref(a);
        return NULL;
    }
    size_t n = json_array_size(a), bytes = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
            snprintf(err, errlen, "command: element %zu must be a string without NUL bytes",
                     i + 1);
            json_decref(a);
            return NULL;
        }
        bytes += json_string_length(s) + 1;
    }
    /* One block: the pointer array, then the strings. */
    char **v = malloc((n + 1) * sizeof *v + bytes);
    if (!v) {
        snprintf(err, errlen, "command: out of memory");
        json_decref(a);
        return NULL;
    }
    char *p = (char *)(v + n + 1);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        size_t k = strlen(s) + 1;
        memcpy(p, s, k);
        v[i] = p;
        p += k;
    }
    v[n] = NULL;
    *argc = (int)n;
    json_decref(a);
    return v;
}

/* ---- output helpers ----------------------------------------------------- */

/* A duration that fl_parse_duration reads back: "4h", "90m", "30s". */
static void fmt_dur(int64_t ms, char *buf, size_t len)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(buf, len, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

static void fmt_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0 || fl_format_time(ms, buf, len) != FL_OK)
        snprintf(buf, len, "-");
}

/* Append s to buf (len bytes, *o used), cutting at the end: display only. */
static void append(char *buf, size_t len, size_t *o, const char *s)
{
    while (*s && *o + 1 < len)
        buf[(*o)++] = *s++;
    buf[*o] = '\0';
}

/* The command for people: argv joined, shell-quoted where needed. */
static void fmt_command(const char *stored, char *buf, size_t len)
{
    char err[128];
    int argc = 0;
    char **v = cli_sched_decode(stored, &argc, err, sizeof err);
    if (!v) {
        cli_quote(buf, len, stored, len); /* not ours: shown, never obeyed */
        return;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i)
            append(buf, len, &o, " ");
        if (v[i][0] && strspn(v[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789_-./=:,+@%") == strlen(v[i])) {
            append(buf, len, &o, v[i]);
            continue;
        }
        append(buf, len, &o, "'");
        for (const char *c = v[i]; *c; c++) {
            unsigned char u = (unsigned char)*c, n = (unsigned char)c[1];
            char one[32] = {*c, '\0'};
            /* A control character (C0, DEL, C1) would act on the reader's
             * terminal: shown as bash's $'\xNN' between the quotes. */
            if (u == 0xc2 && n >= 0x80 && n <= 0x9f) {
                snprintf(one, sizeof one, "'$'\\x%02x\\x%02x''", u, n);
                c++;
            } else if (u < 0x20 || u == 0x7f) {
                snprintf(one, sizeof one, "'$'\\x%02x''", u);
            }
            append(buf, len, &o, *c == '\'' ? "'\\''" : one);
        }
        append(buf, len, &o, "'");
    }
    free(v);
}

/* Display columns of UTF-8 text, counted as code points. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* A table of rows x cols cells (row 0 is the header); the last column is
 * not padded. */
static void print_table(const char *const *cells, size_t rows, size_t cols)
{
    size_t w[16] = {0};
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols && c < 16; c++)
            if (width(cells[r * cols + c]) > w[c])
                w[c] = width(cells[r * cols + c]);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const char *s = cells[r * cols + c];
            fputs(s, stdout);
            if (c + 1 == cols)
                break;
            for (size_t k = width(s); k < w[c] + 2; k++)
                fputc(' ', stdout);
        }
        fputc('\n', stdout);
    }
}

/* Next due time of s after now_ms, or 0 if its stored cron/tz do not
 * parse (written by something other than this command). */
static int64_t next_due(const fl_schedule *s, int64_t now_ms)
{
    fl_cron c;
    int64_t next = 0;
    if (fl_cron_parse(s->cron, &c, NULL, 0) != FL_OK ||
        fl_cron_next(&c, s->tz, now_ms, &next) != FL_OK)
        return 0;
    return next;
}

static json_t *schedule_json(const fl_schedule *s, int64_t now_ms)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "name", cli_jstr(s->name));
    json_object_set_new(o, "cron", cli_jstr(s->cron));
    json_object_set_new(o, "tz", cli_jstr(s->tz));
    json_t *pv = json_array();
    char one[FL_PROVIDERS_MAX + 1];
    snprintf(one, sizeof one, "%s", s->providers);
    char *save = NULL;
    for (char *t = strtok_r(one, ",", &save); t && pv; t = strtok_r(NULL, ",", &save))
        json_array_append_new(pv, cli_jstr(t));
    json_object_set_new(o, "providers", pv ? pv : json_null());
    json_object_set_new(o, "holder", cli_jstr(s->holder));
    json_object_set_new(o, "purpose", cli_jstr(s->purpose));
    json_object_set_new(o, "max_wait_ms", json_integer(s->max_wait_ms));
    json_object_set_new(o, "max_run_ms", json_integer(s->max_run_ms));
    json_object_set_new(o, "ttl_ms", json_integer(s->ttl_ms));
    json_t *cmd = json_loads(s->command, 0, NULL);
    json_object_set_new(o, "command", cmd ? cmd : cli_jstr(s->command));
    cli_jset_time(o, "created_at", s->created_at_ms);
    json_object_set_new(o, "created_at_ms", json_integer(s->created_at_ms));
    int64_t next = now_ms > 0 ? next_due(s, now_ms) : 0;
    if (next > 0) {
        cli_jset_time(o, "next_due_at", next);
        json_object_set_new(o, "next_due_at_ms", json_integer(next));
    } else {
        json_object_set_new(o, "next_due_at", json_null());
        json_object_set_new(o, "next_due_at_ms", json_null());
    }
    return o;
}

static void set_time_or_null(json_t *o, const char *key, const char *key_ms, int64_t ms)
{
    if (ms > 0) {
        cli_jset_time(o, key, ms);
        json_object_set_new(o, key_ms, json_integer(ms));
    } else {
        json_object_set_new(o, key, json_null());
        json_object_set_new(o, key_ms, json_null());
    }
}

static json_t *run_json(const fl_sched_run *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "name", cli_jstr(r->name));
    set_time_or_null(o, "due_at", "due_at_ms", r->due_at_ms);
    json_object_set_new(o, "claimed_by", cli_jstr(r->claimed_by));
    json_object_set_new(o, "outcome", cli_jstr(r->outcome));
    set_time_or_null(o, "started_at", "started_at_ms", r->started_at_ms);
    set_time_or_null(o, "ended_at", "ended_at_ms", r->ended_at_ms);
    json_object_set_new(o, "provider", r->provider[0] ? cli_jstr(r->provider) : json_null());
    json_object_set_new(o, "fence", r->fence > 0 ? json_integer(r->fence) : json_null());
    json_object_set_new(o, "exit_status",
                        r->exit_status >= 0 ? json_integer(r->exit_status) : json_null());
    json_object_set_new(o, "detail", cli_jstr(r->detail));
    return o;
}

/* ---- verbs ---------------------------------------------------------------- */

/* Option names given that a verb does not take: a usage error. */
static int reject_opts(cli_ctx *ctx, const char *verb, const sched_raw *o, int allow_limit)
{
    const struct {
        const char *v, *name;
    } given[] = {
        {o->cron, "--cron"},       {o->provider, "--provider"}, {o->purpose, "--purpose"},
        {o->holder, "--holder"},   {o->max_wait, "--max-wait"}, {o->max_run, "--max-run"},
        {o->ttl, "--ttl"},         {o->tz, "--tz"},
        {allow_limit ? NULL : o->limit, "--limit"},
    };
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++)
        if (given[i].v)
            return cli_usage_error(ctx, "%s is not an option of 'schedule %s'", given[i].name,
                                   verb);
    return 0;
}

static int do_add(cli_ctx *ctx, const sched_raw *o, const char **pos, int npos)
{
    if (o->limit)
        return cli_usage_error(ctx, "--limit is not an option of 'schedule add'");
    if (npos < 2)
        return cli_usage_error(ctx, "missing NAME: schedule add NAME --cron SPEC ... -- CMD");
    if (npos < 3)
        return cli_usage_error(ctx, "missing CMD: give it after --");
    if (!o->cron)
        return cli_usage_error(ctx, "missing --cron: when to run, e.g. --cron \"0 2 * * *\"");
    if (!o->provider)
        return cli_usage_error(ctx, "missing --provider: the host(s) to run on");
    if (!o->purpose)
        return cli_usage_error(ctx, "missing --purpose: say why the host is taken");

    fl_schedule s;
    memset(&s, 0, sizeof s);
    char err[FL_MESSAGE_MAX];
    if (strlen(pos[1]) > FL_SCHED_NAME_MAX)
        return cli_usage_error(ctx, "name: must be 1-%d bytes of [A-Za-z0-9._-], got %zu bytes",
                               FL_SCHED_NAME_MAX, strlen(pos[1]));
    snprintf(s.name, sizeof s.name, "%s", pos[1]);

    /* The cron expression and the zone are checked here, with the position
     * of the error, before anything is stored. */
    fl_cron cron;
    if (fl_cron_parse(o->cron, &cron, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    snprintf(s.cron, sizeof s.cron, "%s", o->cron);
    const char *tz = o->tz ? o->tz : "UTC";
    if (fl_cron_tz(tz, NULL, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (strlen(tz) > FL_TZ_MAX)
        return cli_usage_error(ctx, "tz: must be at most %d bytes", FL_TZ_MAX);
    snprintf(s.tz, sizeof s.tz, "%s", tz);

    if (strlen(o->provider) > FL_PROVIDERS_MAX)
        return cli_usage_error(ctx, "provider: the list must be at most %d bytes, got %zu",
                               FL_PROVIDERS_MAX, strlen(o->provider));
    snprintf(s.providers, sizeof s.providers, "%s", o->provider);

    if (fl_validate_text("purpose", o->purpose, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    snprintf(s.purpose, sizeof s.purpose, "%s", o->purpose);
    if (o->holder) {
        if (fl_validate_text("holder", o->holder, err, sizeof err) != FL_OK)
            return cli_bad_value(ctx, err);
        snprintf(s.holder, sizeof s.holder, "%s", o->holder);
    } else {
        snprintf(s.holder, sizeof s.holder, "schedule:%s", s.name);
    }

    s.max_wait_ms = CLI_SCHED_MAX_WAIT_MS;
    s.max_run_ms = CLI_SCHED_MAX_RUN_MS;
    s.ttl_ms = CLI_SCHED_TTL_MS;
    if (o->max_wait && fl_parse_wait("max-wait", o->max_wait, &s.max_wait_ms, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);
    if (o->max_run && cli_parse_max_run(ctx, o->max_run, &s.max_run_ms) != CLI_CONTINUE)
        return FL_EXIT_USAGE;
    if (o->ttl && fl_parse_ttl("ttl", o->ttl, &s.ttl_ms, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    if (cli_sched_encode((char *const *)(pos + 2), npos - 2, s.command, sizeof s.command, err,
                         sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    fl_store *st = NULL;
    int rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    int code = fl_schedule_put(st, &s);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "schedule add failed");
        fl_close(st);
        return rc;
    }
    /* Show it as stored (created_at is the store's). */
    fl_schedule *all = NULL;
    size_t n = 0;
    int64_t now_ms = 0;
    const fl_schedule *shown = &s;
    if (fl_schedule_list(st, &all, &n) == FL_OK) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(all[i].name, s.name) == 0)
                shown = &all[i];
    }
    if (fl_store_now(st, &now_ms) != FL_OK)
        now_ms = 0;
    if (ctx->json) {
        cli_print_json(schedule_json(shown, now_ms));
    } else {
        char next[40], w[32], r[32], cmd[512];
        fmt_time(now_ms > 0 ? next_due(shown, now_ms) : 0, next, sizeof next);
        fmt_dur(shown->max_wait_ms, w, sizeof w);
        fmt_dur(shown->max_run_ms, r, sizeof r);
        fmt_command(shown->command, cmd, sizeof cmd);
        printf("scheduled %s: \"%s\" (%s) on %s, max-wait %s, max-run %s: %s\n", shown->name,
               shown->cron, shown->tz, shown->providers, w, r, cmd);
        printf("next run: %s\n", next);
    }
    fl_free(all);
    fl_close(st);
    return FL_EXIT_OK;
}

static int do_list(cli_ctx *ctx, const sched_raw *o, int npos)
{
    int rc = reject_opts(ctx, "list", o, 0);
    if (rc)
        return rc;
    if (npos > 1)
        return cli_usage_error(ctx, "schedule list takes no argument");
    fl_store *st = NULL;
    if ((rc = cli_open(ctx, &st)) != 0)
        return rc;
    fl_schedule *all = NULL;
    size_t n = 0;
    int64_t now_ms = 0;
    int code = fl_schedule_list(st, &all, &n);
    if (code == FL_OK)
        code = fl_store_now(st, &now_ms);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "schedule list failed");
    } else if (ctx->json) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, schedule_json(&all[i], now_ms));
        cli_print_json(a);
    } else if (n == 0) {
        printf("no schedules\n");
    } else {
        enum { NC = 9 };
        const char **cells = calloc((n + 1) * NC, sizeof *cells);
        char(*buf)[4][512] = calloc(n, sizeof *buf);
        if (!cells || !buf) {
            rc = cli_fail(ctx, FL_ENOMEM, "out of memory");
        } else {
            static const char *const head[NC] = {"NAME", "CRON", "TZ", "PROVIDERS", "MAX-WAIT",
                                                 "MAX-RUN", "NEXT", "PURPOSE", "COMMAND"};
            memcpy(cells, head, sizeof head);
            for (size_t i = 0; i < n; i++) {
                const fl_schedule *s = &all[i];
                const char **row = cells + (i + 1) * NC;
                fmt_dur(s->max_wait_ms, buf[i][0], 32);
                fmt_dur(s->max_run_ms, buf[i][1], 32);
                fmt_time(next_due(s, now_ms), buf[i][2], 40);
                fmt_command(s->command, buf[i][3], sizeof buf[i][3]);
                row[0] = s->name;
                row[1] = s->cron;
                row[2] = s->tz;
                row[3] = s->providers;
                row[4] = buf[i][0];
                row[5] = buf[i][1];
                row[6] = buf[i][2];
                row[7] = s->purpose;
                row[8] = buf[i][3];
            }
            print_table(cells, n + 1, NC);
        }
        free(cells);
        free(buf);
    }
    fl_free(all);
    fl_close(st);
    return rc;
}

static int do_rm(cli_ctx *ctx, const sched_raw *o, const char **pos, int npos)
{
    int rc = reject_opts(ctx, "rm", o, 0);
    if (rc)
        return rc;
    if (npos < 2)
        return cli_usage_error(ctx, "missing NAME: schedule rm NAME");
    if (npos > 2)
        return cli_usage_error(ctx, "schedule rm takes one NAME");
    fl_store *st = NULL;
    if ((rc = cli_open(ctx, &st)) != 0)
        return rc;
    int code = fl_schedule_rm(st, pos[1]);
    if (code == FL_ENOTFOUND) {
        char q[160];
        rc = cli_fail(ctx, code, "no schedule named '%s'", cli_quote(q, sizeof q, pos[1], 64));
    } else if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "schedule rm failed");
    } else if (ctx->json) {
        json_t *j = json_object();
        if (j) {
            json_object_set_new(j, "removed", cli_jstr(pos[1]));
            cli_print_json(j);
        }
    } else {
        printf("removed schedule %s (its past runs are kept)\n", pos[1]);
    }
    fl_close(st);
    return rc;
}

static int do_runs(cli_ctx *ctx, const sched_raw *o, const char **pos, int npos)
{
    int rc = reject_opts(ctx, "runs", o, 1);
    if (rc)
        return rc;
    if (npos > 2)
        return cli_usage_error(ctx, "schedule runs takes at most one NAME");
    size_t limit = 20;
    if (o->limit) {
        char *end = NULL, q[160];
        errno = 0;
        unsigned long long v = strtoull(o->limit, &end, 10);
        if (!o->limit[0] || strspn(o->limit, "0123456789") != strlen(o->limit) || errno ||
            *end || v < 1 || v > 10000)
            return cli_usage_error(ctx, "limit: must be an integer from 1 to 10000, got '%s'",
                                   cli_quote(q, sizeof q, o->limit, 32));
        limit = (size_t)v;
    }
    const char *name = npos > 1 ? pos[1] : NULL;
    fl_store *st = NULL;
    if ((rc = cli_open(ctx, &st)) != 0)
        return rc;
    fl_sched_run *runs = NULL;
    size_t n = 0;
    int code = fl_sched_runs(st, name, limit, &runs, &n);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "schedule runs failed");
    } else if (ctx->json) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, run_json(&runs[i]));
        cli_print_json(a);
    } else if (n == 0) {
        printf(name ? "no runs of %s\n" : "no runs\n", name);
    } else {
        enum { NC = 10 };
        const char **cells = calloc((n + 1) * NC, sizeof *cells);
        char(*buf)[6][40] = calloc(n, sizeof *buf);
        if (!cells || !buf) {
            rc = cli_fail(ctx, FL_ENOMEM, "out of memory");
        } else {
            static const char *const head[NC] = {"ID",    "NAME", "DUE",      "STARTED", "ENDED",
                                                 "HOST",  "FENCE", "EXIT", "OUTCOME", "DETAIL"};
            memcpy(cells, head, sizeof head);
            for (size_t i = 0; i < n; i++) {
                const fl_sched_run *r = &runs[i];
                const char **row = cells + (i + 1) * NC;
                snprintf(buf[i][0], 40, "%lld", (long long)r->id);
                fmt_time(r->due_at_ms, buf[i][1], 40);
                fmt_time(r->started_at_ms, buf[i][2], 40);
                fmt_time(r->ended_at_ms, buf[i][3], 40);
                snprintf(buf[i][4], 40, r->fence > 0 ? "%lld" : "-", (long long)r->fence);
                snprintf(buf[i][5], 40, r->exit_status >= 0 ? "%d" : "-", r->exit_status);
                row[0] = buf[i][0];
                row[1] = r->name;
                row[2] = buf[i][1];
                row[3] = buf[i][2];
                row[4] = buf[i][3];
                row[5] = r->provider[0] ? r->provider : "-";
                row[6] = buf[i][4];
                row[7] = buf[i][5];
                row[8] = r->outcome;
                row[9] = r->detail;
            }
            print_table(cells, n + 1, NC);
        }
        free(cells);
        free(buf);
    }
    fl_free(runs);
    fl_close(st);
    return rc;
}

int cmd_schedule(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"cron", required_argument, NULL, OPT_CRON},
        {"provider", required_argument, NULL, OPT_PROVIDER},
        {"purpose", required_argument, NULL, OPT_PURPOSE},
        {"holder", required_argument, NULL, OPT_HOLDER},
        {"max-wait", required_argument, NULL, OPT_MAX_WAIT},
        {"max-run", required_argument, NULL, OPT_MAX_RUN},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"tz", required_argument, NULL, OPT_TZ},
        {"limit", required_argument, NULL, OPT_LIMIT},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    sched_raw raw = {0};
    const char **pos = malloc((size_t)(argc + 1) * sizeof *pos);
    if (!pos)
        return cli_fail(ctx, FL_ENOMEM, "out of memory");
    int npos = 0;
    ctx->opts_end_at = 3; /* CMD (after add NAME): from there on, its own arguments */
    int rc = cli_parse(ctx, argc, argv, "", longopts, on_opt, &raw, pos, argc, &npos);
    if (rc == CLI_CONTINUE) {
        char q[160];
        const char *verb = npos ? pos[0] : NULL;
        if (!verb)
            rc = cli_usage_error(ctx, "missing a verb: add, list, rm or runs");
        else if (strcmp(verb, "add") == 0)
            rc = do_add(ctx, &raw, pos, npos);
        else if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0)
            rc = do_list(ctx, &raw, npos);
        else if (strcmp(verb, "rm") == 0 || strcmp(verb, "remove") == 0)
            rc = do_rm(ctx, &raw, pos, npos);
        else if (strcmp(verb, "runs") == 0)
            rc = do_runs(ctx, &raw, pos, npos);
        else
            rc = cli_usage_error(ctx, "unknown verb '%s': must be add, list, rm or runs",
                                 cli_quote(q, sizeof q, verb, 32));
    }
    free(pos);
    return rc;
}
