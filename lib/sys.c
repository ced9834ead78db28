/*
 * lib/sys.c -- the few system services the library needs: clocks, sleep,
 * randomness, and the debug hooks.  Kept apart so that lib/core stays pure.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t fl__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#ifdef FL_DEBUG_HOOKS
static int64_t debug_skew_ms(void)
{
    const char *s = getenv("FLEETLEASE_DEBUG_CLOCK_SKEW_MS");
    return s ? strtoll(s, NULL, 10) : 0;
}
#endif

int64_t fl__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#ifdef FL_DEBUG_HOOKS
    ms += debug_skew_ms();
#endif
    return ms;
}

void fl__sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int fl__random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return FL_ESYS;
        }
        p += r;
        len -= (size_t)r;
    }
    return FL_OK;
}

#ifdef FL_DEBUG_HOOKS
/*
 * FLEETLEASE_DEBUG_FAULTS="heartbeat=2,3;acquire=1": the 2nd and 3rd
 * heartbeat calls of this process fail.  Counters are per process (true
 * process state), shared by all handles and threads, hence the mutex.
 */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char point[16]; unsigned calls; } fault_count[8];

static int fault_listed(const char *spec, const char *point, unsigned nth)
{
    size_t plen = strlen(point);
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > plen && strncmp(p, point, plen) == 0 && p[plen] == '=') {
            const char *q = p + plen + 1;
            while (q < p + len) {
                char *e;
                unsigned long v = strtoul(q, &e, 10);
                if (e == q)
                    break;
                if (v == nth)
                    return 1;
                q = (*e == ',') ? e + 1 : e;
                if (*e != ',')
                    break;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int fl__fault(const char *point)
{
    const char *spec = getenv("FLEETLEASE_DEBUG_FAULTS");
    if (!spec || !*spec)
        return 0;
    pthread_mutex_lock(&fault_mu);
    unsigned nth = 0;
    for (size_t i = 0; i < sizeof fault_count / sizeof fault_count[0]; i++) {
        if (fault_count[i].point[0] == '\0')
            fl__copy(fault_count[i].point, sizeof fault_count[i].point, point);
        if (strcmp(fault_count[i].point, point) == 0) {
            nth = ++fault_count[i].calls;
            break;
        }
    }
    pthread_mutex_unlock(&fault_mu);
    return nth ? fault_listed(spec, point, nth) : 0;
}
#else
int fl__fault(const char *point)
{
    (void)point;
    return 0;
}
#endif
