/*
 * bench/main.c -- flbench CELL [options]: run one measurement and print
 * its result lines (bench.h).  bench/run.sh is the driver; `flbench
 * report` writes docs/benchmarks.md from the collected lines.
 */
#include "bench.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(const bn_opts *o);
    const char *what;
} cells[] = {
    {"fl-ops", bn_cell_fl, "fleetlease acquire/refused/heartbeat/check/release (library)"},
    {"fl-pair", bn_cell_fl_pair, "fleetlease acquire+release cycles on one provider per client"},
    {"pg-floor", bn_cell_pgfloor, "PostgreSQL SELECT 1, single-row upsert and update commits"},
    {"sqlite-floor", bn_cell_sqfloor, "SQLite point select, single-row upsert and update commits"},
    {"advisory", bn_cell_advisory, "pg_try_advisory_lock / pg_advisory_unlock"},
    {"redis", bn_cell_redis, "Redis SET NX PX / Lua compare-and-delete"},
    {"etcd", bn_cell_etcd, "etcd lease grant + create-if-absent txn / revoke (JSON gateway)"},
    {"etcd-pair", bn_cell_etcd_pair, "etcd grant+txn+revoke cycles"},
    {"http", bn_cell_http, "fleetlease serve: the fl-ops phases over HTTP"},
    {"contention", bn_cell_contention, "N racers for one provider: time to grant, calls/grant"},
    {"wakeup", bn_cell_wakeup, "release -> waiting acquirer's grant"},
    {"scale", bn_cell_scale, "check and sweep with --n live leases"},
    {"gwcheck", bn_cell_gwcheck, "the gateway's per-request check (fl_check_cached), ns"},
    {"profile", bn_cell_profile, "--n fixed cycles in one process (for callgrind)"},
};

static int usage(void)
{
    fprintf(stderr,
            "usage: flbench CELL --url URL --key KEY [--tag TAG] [--clients N] [--secs S]\n"
            "                    [--n COUNT] [--run-id ID] [--extra X]\n"
            "       flbench report RESULTS [INFO...]   (markdown on stdout)\n"
            "cells:\n");
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        fprintf(stderr, "  %-13s %s\n", cells[i].name, cells[i].what);
    return 64;
}

static int num(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "flbench: %s: must be a number from %g to %g, got \"%s\"\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "report") == 0)
        return bn_report(argc - 2, argv + 2);
    bn_opts o = {.cell = argv[1], .key = NULL, .tag = "1u", .clients = 1, .secs = 2,
                 .max_ops = 50000, .url = NULL, .run_id = "r", .extra = ""};
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!v)
            return usage();
        i++;
        if (strcmp(f, "--url") == 0)
            o.url = v;
        else if (strcmp(f, "--key") == 0)
            o.key = v;
        else if (strcmp(f, "--tag") == 0)
            o.tag = v;
        else if (strcmp(f, "--run-id") == 0)
            o.run_id = v;
        else if (strcmp(f, "--extra") == 0)
            o.extra = v;
        else if (strcmp(f, "--clients") == 0) {
            if (num(f, v, 1, BN_MAX_CLIENTS, &d))
                return 64;
            o.clients = (int)d;
        } else if (strcmp(f, "--secs") == 0) {
            if (num(f, v, 0.1, 600, &d))
                return 64;
            o.secs = d;
        } else if (strcmp(f, "--n") == 0) {
            if (num(f, v, 1, 10000000, &d))
                return 64;
            o.max_ops = (long)d;
        } else {
            fprintf(stderr, "flbench: unknown option %s\n", f);
            return usage();
        }
    }
    if (!o.url || !o.key)
        return usage();
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (strcmp(cells[i].name, o.cell) == 0) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            int rc = cells[i].fn(&o);
            curl_global_cleanup();
            return rc;
        }
    fprintf(stderr, "flbench: unknown cell %s\n", o.cell);
    return usage();
}
