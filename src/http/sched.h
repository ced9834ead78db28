/*
 * src/http/sched.h -- the scheduler of `fleetlease serve` (sched.c): runs
 * the store's schedules when they are due, each due run exactly once
 * across every daemon sharing the store.
 *
 * It lives on its own threads with its own store handles, apart from the
 * libevent loop and the worker pool: a run lasts hours, and nothing it
 * does may hold up a request.  It logs with srv_log (one whole line per
 * call).
 */
#ifndef FL_SRV_SCHED_H
#define FL_SRV_SCHED_H

#include "../cli/cli.h"

typedef struct srv_sched srv_sched;

/* How late a due run may still be started: runs due longer ago than this
 * (while no daemon was running, or the store was unreachable) are logged
 * as missed and not run. */
#define SRV_SCHED_GRACE_MS 60000
/* How often the schedules are read and due runs claimed. */
#define SRV_SCHED_TICK_MS 1000

/* Start the scheduler for the store ctx names.  0, or an exit code after
 * printing why. */
int srv_sched_start(cli_ctx *ctx, srv_sched **out);

/* Stop claiming; send SIGTERM to the running jobs' `fleetlease run`
 * wrappers (which stop their jobs and release their leases), wait for
 * them, record their runs as failed ("stopped: the daemon shut down"),
 * and free everything.  NULL is a no-op. */
void srv_sched_stop(srv_sched *s);

#endif
