/*
 * tests/fuzz/fuzz_cli.c -- the fleetlease command's argument vector.  The
 * CLI's sources are compiled into this target with main renamed to
 * fl_cli_main (-Dmain=fl_cli_main, see CMakeLists.txt), so each input runs
 * the real option parsing of the global options and every subcommand in
 * process.  The input is split at NUL bytes into at most 24 arguments.
 *
 * Kept hermetic: the store is FLEETLEASE_DB=fuzz://nowhere (an unknown
 * scheme, refused before any I/O) and inputs that could name another store
 * (any argument starting "--d", which getopt_long would take as --db), run
 * a command (an argument "run") or start a server ("serve") are skipped.  stdout goes to
 * /dev/null; run the fuzzer with -close_fd_mask=2 to silence stderr too.
 * Property: no crash, no leak, and an exit status from the documented set.
 */
#include "fuzz.h"

#include <getopt.h>
#include <unistd.h>

int fl_cli_main(int argc, char **argv);

#define MAX_ARGS 24

static int documented(int rc)
{
    return rc == 0 || rc == 64 || rc == 69 || rc == 70 || rc == 75 || rc == 76;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setenv("FLEETLEASE_DB", "fuzz://nowhere", 1);
        unsetenv("DATABASE_URL");
        setenv("XDG_CACHE_HOME", "/nonexistent/fleetlease-fuzz", 1);
        setenv("HOME", "/nonexistent/fleetlease-fuzz", 1);
        if (freopen("/dev/null", "w", stdout) == NULL)
            abort();
        ready = 1;
    }
    if (size > 4096)
        return 0;
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';

    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "fleetlease";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
        char *a = copy + i;
        size_t len = strlen(a);
        if (strncmp(a, "--d", 3) == 0 || strcmp(a, "run") == 0 || strcmp(a, "serve") == 0) {
            free(copy);
            return 0;
        }
        argv[argc++] = a;
        i += len + 1;
    }
    argv[argc] = NULL;

    optind = 0; /* GNU getopt: a full re-initialisation for the next vector */
    int rc = fl_cli_main(argc, argv);
    fflush(stdout);
    clearerr(stdout);
    FUZZ_ASSERT(documented(rc));
    free(copy);
    return 0;
}
