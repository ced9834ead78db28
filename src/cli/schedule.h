/*
 * src/cli/schedule.h -- what `fleetlease schedule` (src/cli/cmd_schedule.c)
 * shares with the daemon's scheduler (src/http/sched.c): the one encoding
 * of a schedule's command, a JSON array of argv strings in
 * fl_schedule.command.
 */
#ifndef FL_CLI_SCHEDULE_H
#define FL_CLI_SCHEDULE_H

#include "fleetlease.h"

#include <stddef.h>

/* Defaults of `schedule add`, also documented in its --help. */
#define CLI_SCHED_MAX_WAIT_MS (3600LL * 1000)      /* 1h */
#define CLI_SCHED_MAX_RUN_MS (4LL * 3600 * 1000)   /* 4h */
#define CLI_SCHED_TTL_MS 30000LL                   /* as for run */

/* `fleetlease run --max-run`: the exit status when the job was stopped
 * for running too long, as timeout(1) does. */
#define CLI_EXIT_MAX_RUN 124

/*
 * argv[0..argc) as a compact JSON array into out (at most len bytes with
 * the NUL; FL_COMMAND_MAX + 1 fits what the store takes).  FL_EINVAL with
 * a message naming the argument when one is not UTF-8 or the whole does
 * not fit.
 */
int cli_sched_encode(char *const *argv, int argc, char *out, size_t len, char *err,
                     size_t errlen);

/*
 * The stored command back as argv: one malloc'd block (free it whole),
 * NULL-terminated, *argc set.  NULL with a message when the text is not a
 * non-empty JSON array of strings without NUL bytes.
 */
char **cli_sched_decode(const char *command, int *argc, char *err, size_t errlen);

#endif
