/*
 * src/http/sched.c -- `fleetlease serve` runs scheduled jobs.
 *
 * Every SRV_SCHED_TICK_MS the ticker thread reads the schedules and the
 * store's clock (due times are instants on the store's clock, like every
 * time in fleetlease), and for each schedule walks its cron instants from
 * the last one it handled up to now.  Each due instant is claimed with
 * fl_sched_claim(): the store lets exactly one claimant per (name, due_at)
 * through, so however many daemons share the store, a run fires once.
 * Instants due more than SRV_SCHED_GRACE_MS ago are logged as missed and
 * not run: a daemon that starts (or a store that comes back) does not
 * replay a night of runs.  The walk of a schedule first seen starts at
 * max(daemon start - grace, schedule created_at), so a run due just before
 * a restart still fires, and none due before the schedule existed does.
 *
 * A claimed run gets a runner thread, which runs the job on the grant
 * lifecycle of `fleetlease run` by spawning that very binary
 * (/proc/self/exe run PROVIDER --mode exclusive --wait W --ttl T
 * --max-run M -- CMD...): the heartbeat, the process group, the stop at
 * max-run and the release after the whole tree is gone are the wrapper's,
 * kept in one place.  The wrapper's stdout and stderr (and CMD's) come
 * back through a pipe: CMD's lines go to the log as event=job_output, and
 * the wrapper's own lines say whether and where it was granted ("granted
 * PROVIDER (exclusive, fence N)"), which the exit status alone cannot tell
 * apart from CMD's own status.
 *
 * Several providers: the first that can be had.  One pass tries each with
 * --wait 0 (a free host is taken at once); then passes of waits growing
 * from 10 s (10, 20, 40 s ... capped at 5 min and at what is left of
 * max-wait), each wait registering a pending intent so the host drains.
 * One provider simply waits the whole max-wait.  No host within max-wait:
 * the run is recorded as skipped, with the last refusal.
 *
 * Afterwards the run is recorded with fl_sched_finish (ok: exit 0; failed:
 * anything else, with why; skipped), including the lease's isolation
 * report when a gateway fronted the host (read with fl_report_get, waiting
 * up to 3 s for the gateways' final reports).
 *
 * The job runs with the daemon's environment and working directory,
 * minus FLEETLEASE_* variables (their defaults must not change what the
 * wrapper does), plus FLEETLEASE_DB (the daemon's store) and what `run`
 * adds (FLEETLEASE_PROVIDER, FLEETLEASE_TOKEN, FLEETLEASE_FENCE).
 *
 * Known limits: a daemon killed with SIGKILL leaves its runs "running";
 * the next daemon started on the same host marks those whose claimant
 * process is gone as "lost".  A wrapper outlives a SIGKILLed daemon and
 * still releases its lease when its job ends.
 */
#include "sched.h"
#include "../cli/schedule.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SCHED_MAX_RUNNERS 64
#define SCHED_SLICE_MIN_MS 10000
#define SCHED_SLICE_MAX_MS 300000
#define SCHED_REPORT_WAIT_MS 3000
#define SCHED_LINE_MAX 1024

typedef struct sched_state {
    char name[FL_SCHED_NAME_MAX + 1];
    char cron[FL_CRON_MAX + 1];
    char tz[FL_TZ_MAX + 1];
    int64_t created_at_ms;
    int64_t last_due_ms;   /* the last cron instant handled (claimed, lost or missed) */
    int bad;               /* its cron or tz does not parse: logged once */
    int seen;              /* still listed in this tick */
} sched_state;

typedef struct runner {
    srv_sched *s;
    struct runner *next;
    pthread_t tid;
    fl_schedule sc;
    int64_t run_id;
    int64_t due_at_ms;
    int64_t wait_left_ms;  /* of max-wait, at the claim */
    int64_t claim_mono_ms; /* when it was claimed, CLOCK_MONOTONIC */
    pid_t pid;             /* the current wrapper, 0 between attempts (under s->mu) */
    int done;              /* the thread has finished (under s->mu) */
} runner;

struct srv_sched {
    char url[FL_URL_MAX + 1];
    char daemon[FL_TEXT_MAX + 1];  /* "host:pid": fl_sched_run.claimed_by */
    char host[128];
    char exe[4096];
    fl_store *st;                  /* the ticker's handle */
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* CLOCK_MONOTONIC */
    int stopping;                  /* under mu */
    runner *runners;               /* under mu */
    int nrunners;                  /* live ones, under mu */
    sched_state *states;           /* ticker thread only */
    size_t nstates;
    int64_t start_ms;              /* store clock at start */
    int store_failing;             /* ticker thread only: log outages once */
};

/* ---- small helpers ------------------------------------------------------- */

static void fmt_ms(int64_t ms, char *buf, size_t len)
{
    if (fl_format_time(ms, buf, len) != FL_OK)
        snprintf(buf, len, "%lld", (long long)ms);
}

/* Printable ASCII only (a detail is stored as text; CMD's output may be
 * anything), at most len - 1 bytes. */
static void clean_copy(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    for (; *src && o + 1 < len; src++) {
        unsigned char c = (unsigned char)*src;
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len)
        dst[o] = '\0';
}

/* Append to a detail buffer, cutting at its end. */
static void detail_add(char *d, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void detail_add(char *d, size_t len, const char *fmt, ...)
{
    size_t o = strnlen(d, len);
    if (o + 1 >= len)
        return;
    char tmp[FL_MESSAGE_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    clean_copy(d + o, len - o, tmp);
}

/* Sleep up to ms, or until stopping.  Returns 1 when stopping. */
static int sched_sleep(srv_sched *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT) {
    }
    int stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static int is_stopping(srv_sched *s)
{
    pthread_mutex_lock(&s->mu);
    int stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* ---- one attempt: `fleetlease run` on one provider -------------------------- */

typedef struct attempt {
    int granted;
    int64_t granted_mono_ms;    /* when the wrapper said so */
    char provider[FL_PROVIDER_MAX + 1];
    int64_t fence;
    int status;                 /* the wrapper's exit status (128+N for signal N) */
    int overran;                /* stopped at max-run */
    int lost;                   /* the wrapper lost the lease */
    char refusal[FL_MESSAGE_MAX];   /* "not granted" reason, if any */
    char last_run_line[FL_MESSAGE_MAX]; /* the wrapper's last own line */
    char last_out[FL_MESSAGE_MAX];  /* CMD's last output line */
} attempt;

/* The child's environment: ours without FLEETLEASE_*, plus FLEETLEASE_DB.
 * Built before the spawn; freed by the caller (entries are borrowed). */
static char **child_env(const char *dbvar)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "FLEETLEASE_", 11) != 0)
            env[k++] = environ[i];
    env[k++] = (char *)dbvar;
    env[k] = NULL;
    return env;
}

/* One line of the wrapper's pipe: its own lines start "fleetlease run: ". */
static void on_line(runner *r, attempt *a, const char *line)
{
    static const char pfx[] = "fleetlease run: ";
    char num[32], id[32];
    snprintf(id, sizeof id, "%lld", (long long)r->run_id);
    if (strncmp(line, pfx, sizeof pfx - 1) != 0) {
        clean_copy(a->last_out, sizeof a->last_out, line);
        srv_log("info", "job_output", "schedule", r->sc.name, "run", id, "line", line, NULL);
        return;
    }
    const char *m = line + sizeof pfx - 1;
    clean_copy(a->last_run_line, sizeof a->last_run_line, m);
    if (!a->granted && strncmp(m, "granted ", 8) == 0) {
        /* "granted PROVIDER (exclusive, fence N) until T" */
        char prov[FL_PROVIDER_MAX + 1];
        long long fence = 0;
        const char *sp = strchr(m + 8, ' ');
        const char *f = strstr(m, "fence ");
        size_t pl = sp ? (size_t)(sp - (m + 8)) : 0;
        if (sp && pl > 0 && pl <= FL_PROVIDER_MAX && f && sscanf(f + 6, "%lld", &fence) == 1) {
            memcpy(prov, m + 8, pl);
            prov[pl] = '\0';
            a->granted = 1;
            a->granted_mono_ms = srv_mono_ms();
            snprintf(a->provider, sizeof a->provider, "%s", prov);
            a->fence = fence;
            srv_log("info", "job_started", "schedule", r->sc.name, "run", id, "provider", prov,
                    "fence", srv_num(num, sizeof num, fence), NULL);
        }
        return;
    }
    if (strstr(m, "max-run of ") == m)
        a->overran = 1;
    else if (strncmp(m, "lease on ", 9) == 0 && strstr(m, " lost"))
        a->lost = 1;
    const char *ng = strstr(m, " not granted");
    if (!a->granted && ng) {
        /* "P not granted within --wait: MESSAGE; not running CMD" */
        const char *colon = strstr(ng, ": ");
        const char *tail = colon ? strstr(colon, "; not running ") : NULL;
        if (colon && tail)
            snprintf(a->refusal, sizeof a->refusal, "%.*s", (int)(tail - colon - 2), colon + 2);
        else
            clean_copy(a->refusal, sizeof a->refusal, m);
    }
    srv_log("info", "job_wrapper", "schedule", r->sc.name, "run", id, "line", line, NULL);
}

/* Spawn the wrapper for `provider` with `wait_ms`, follow its output until
 * it exits.  Returns 0, or -1 if it could not be started (a->last_run_line
 * says why). */
static int run_attempt(runner *r, const char *provider, int64_t wait_ms, attempt *a)
{
    srv_sched *s = r->s;
    char errbuf[FL_MESSAGE_MAX];
    int argc = 0;
    char **cmd = cli_sched_decode(r->sc.command, &argc, errbuf, sizeof errbuf);
    if (!cmd) {
        snprintf(a->last_run_line, sizeof a->last_run_line, "%s", errbuf);
        return -1;
    }
    char ttl[32], wait[32], maxrun[32];
    snprintf(ttl, sizeof ttl, "%lldms", (long long)r->sc.ttl_ms);
    snprintf(wait, sizeof wait, "%lldms", (long long)(wait_ms > 0 ? wait_ms : 0));
    snprintf(maxrun, sizeof maxrun, "%lldms", (long long)r->sc.max_run_ms);
    const char *fixed[] = {"fleetlease", "run",   provider, "--mode",    "exclusive",
                           "--purpose",  r->sc.purpose,     "--holder",  r->sc.holder,
                           "--ttl",      ttl,   "--wait",   wait,        "--max-run",
                           maxrun,       "--"};
    size_t nf = sizeof fixed / sizeof fixed[0];
    char **argv = calloc(nf + (size_t)argc + 1, sizeof *argv);
    char *dbvar = NULL;
    if (!argv || asprintf(&dbvar, "FLEETLEASE_DB=%s", s->url) < 0) {
        dbvar = NULL;
        free(argv);
        free(cmd);
        snprintf(a->last_run_line, sizeof a->last_run_line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nf; i++)
        argv[i] = (char *)fixed[i];
    for (int i = 0; i < argc; i++)
        argv[nf + (size_t)i] = cmd[i];
    char **env = child_env(dbvar);

    int pfd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int fa_ok = 0, at_ok = 0, rc = -1;
    pid_t pid = 0;
    if (!env || pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(a->last_run_line, sizeof a->last_run_line, "cannot start: %s",
                 env ? strerror(errno) : "out of memory");
        goto out;
    }
    fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    at_ok = posix_spawnattr_init(&at) == 0;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* Every catchable signal to its default: the daemon's own handlers
     * (libevent's, SIGPIPE ignored) are not the wrapper's business. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaddset(&dfl, sig);
    /* Its own process group: a Ctrl-C meant for a foreground daemon
     * reaches the wrapper only through srv_sched_stop. */
    if (!fa_ok || !at_ok ||
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 2) != 0 ||
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF) != 0 ||
        posix_spawnattr_setpgroup(&at, 0) != 0 || posix_spawnattr_setsigmask(&at, &none) != 0 ||
        posix_spawnattr_setsigdefault(&at, &dfl) != 0) {
        snprintf(a->last_run_line, sizeof a->last_run_line, "cannot set up the spawn");
        goto out;
    }

    /* The pid is published under the lock so that srv_sched_stop can
     * signal it; stopping is checked under the same lock, so a stop
     * either sees this pid or keeps the spawn from happening. */
    pthread_mutex_lock(&s->mu);
    /* /proc/self/exe rather than its target: an upgrade that replaced the
     * file leaves this daemon spawning the binary it runs. */
    int e = s->stopping ? ECANCELED
                        : posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, env);
    if (e == 0)
        r->pid = pid;
    pthread_mutex_unlock(&s->mu);
    close(pfd[1]);
    pfd[1] = -1;
    if (e != 0) {
        snprintf(a->last_run_line, sizeof a->last_run_line, "cannot start %.200s: %s", s->exe,
                 e == ECANCELED ? "the daemon is shutting down" : strerror(e));
        goto out;
    }

    /* Lines until EOF: the wrapper exits only after CMD's whole tree is
     * gone, so EOF comes with (or just before) its exit. */
    char buf[SCHED_LINE_MAX + 1];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(pfd[0], buf + used, SCHED_LINE_MAX - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < used; i++) {
            if (buf[i] != '\n')
                continue;
            buf[i] = '\0';
            on_line(r, a, buf + start);
            start = i + 1;
        }
        memmove(buf, buf + start, used - start);
        used -= start;
        if (used == SCHED_LINE_MAX) { /* an over-long line: log it in pieces */
            buf[used] = '\0';
            on_line(r, a, buf);
            used = 0;
        }
    }
    if (used > 0) {
        buf[used] = '\0';
        on_line(r, a, buf);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    a->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pthread_mutex_lock(&s->mu);
    r->pid = 0;
    pthread_mutex_unlock(&s->mu);
    rc = 0;
out:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    free(env);
    free(dbvar);
    free(argv);
    free(cmd);
    return rc;
}

/* ---- a run ---------------------------------------------------------------- */

/* The isolation report of the grant, appended to the detail.  Returns 1
 * when it shows a foreign request at the host while the lease was active
 * (fl_report_isolated): the measurement is then not to be trusted. */
static int add_report(fl_store *st, const attempt *a, char *d, size_t len)
{
    fl_report rep;
    int rc = FL_ENOTFOUND;
    const int64_t t0 = srv_mono_ms();
    /* Gateways write their final report when they see the lease end
     * (within about a second); wait a little for it, and less when no
     * gateway has reported on the grant at all (most likely none fronts
     * the host). */
    for (;;) {
        rc = fl_report_get(st, a->provider, a->fence, &rep);
        int64_t spent = srv_mono_ms() - t0;
        if ((rc == FL_OK && rep.final) || (rc != FL_OK && rc != FL_ENOTFOUND) ||
            spent >= SCHED_REPORT_WAIT_MS || (rc == FL_ENOTFOUND && spent >= 1500))
            break;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == FL_ENOTFOUND) {
        detail_add(d, len, "; isolation: no gateway reported");
        return 0;
    }
    if (rc != FL_OK) {
        detail_add(d, len, "; isolation: report unreadable: %s", fl_errmsg(st));
        return 0;
    }
    detail_add(d, len,
               "; isolation: concurrent_foreign_requests=%lld foreign_in_flight_at_grant=%lld "
               "foreign_refused=%lld foreign_cut_off=%lld holder_requests=%lld gateways=%d%s",
               (long long)rep.concurrent_foreign_requests,
               (long long)rep.foreign_in_flight_at_grant, (long long)rep.foreign_refused,
               (long long)rep.foreign_cut_off, (long long)rep.holder_requests, rep.gateways,
               rep.final ? "" : " (not final)");
    for (size_t i = 0; i < rep.n_writers; i++)
        detail_add(d, len, "%s%s=%lld", i ? "," : " refused_by:", rep.writers[i].writer,
                   (long long)rep.writers[i].refused);
    return !fl_report_isolated(&rep);
}

/* Record the run; retried while the store is unreachable (up to ~1 min),
 * since a finished run left "running" would read as a lost one. */
static void finish_run(runner *r, const fl_sched_run *res, const attempt *granted)
{
    srv_sched *s = r->s;
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)r->run_id);
    fl_sched_run x = *res;
    for (int tries = 0; tries < 30; tries++) {
        fl_store *st = NULL;
        int rc = fl_open(s->url, &st);
        if (rc == FL_OK) {
            if (granted && tries == 0 && add_report(st, granted, x.detail, sizeof x.detail) &&
                strcmp(x.outcome, "ok") == 0) {
                /* Exit 0, but foreign traffic reached the host meanwhile. */
                char d[sizeof x.detail] = "isolation violated; ";
                detail_add(d, sizeof d, "%s", x.detail);
                memcpy(x.detail, d, sizeof d);
                snprintf(x.outcome, sizeof x.outcome, "failed");
            }
            rc = fl_sched_finish(st, r->run_id, &x);
        }
        char why[FL_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", st ? fl_errmsg(st) : fl_strerror(rc));
        fl_close(st);
        if (rc == FL_OK) {
            char ex[16];
            snprintf(ex, sizeof ex, "%d", x.exit_status);
            srv_log(strcmp(x.outcome, "ok") == 0 ? "info" : "warn", "run_finished", "schedule",
                    r->sc.name, "run", id, "outcome", x.outcome, "provider", x.provider,
                    "exit_status", ex, "detail", x.detail, NULL);
            return;
        }
        srv_log("warn", "run_record_failed", "schedule", r->sc.name, "run", id, "error", why,
                NULL);
        if (rc != FL_EUNAVAIL)
            return;
        struct timespec ts = {2, 0};
        nanosleep(&ts, NULL);
    }
}

enum { GOT_HOST, TIMED_OUT, STOPPED, NOT_STARTED };

/*
 * Find a host and run the job there: the attempts described at the top.
 * Returns GOT_HOST with *a from the attempt that ran the job, else why not
 * (refusal holds the last one).
 */
static int acquire_and_run(runner *r, attempt *a, char *refusal, size_t rlen)
{
    srv_sched *s = r->s;
    char provs[FL_PROVIDERS_MAX + 1];
    const char *list[FL_PROVIDERS_MAX / 2 + 1];
    size_t np = 0;
    snprintf(provs, sizeof provs, "%s", r->sc.providers);
    char *save = NULL;
    for (char *t = strtok_r(provs, ",", &save); t && np < sizeof list / sizeof list[0];
         t = strtok_r(NULL, ",", &save))
        list[np++] = t;
    if (np == 0) {
        snprintf(a->last_run_line, sizeof a->last_run_line, "no provider listed");
        return NOT_STARTED;
    }
    const int64_t deadline = srv_mono_ms() + (r->wait_left_ms > 0 ? r->wait_left_ms : 0);
    for (int pass = 0;; pass++) {
        for (size_t i = 0; i < np; i++) {
            int64_t left = deadline - srv_mono_ms();
            if (left < 0)
                left = 0;
            /* The first try of every provider happens even with no time
             * left (a run claimed at the end of the grace, max-wait 0). */
            if (pass > 0 && left == 0)
                return TIMED_OUT;
            if (is_stopping(s))
                return STOPPED;
            int64_t wait = left;
            if (np > 1) {
                int shift = pass - 1 < 5 ? pass - 1 : 5;
                int64_t slice = pass == 0 ? 0 : (int64_t)SCHED_SLICE_MIN_MS << shift;
                if (slice > SCHED_SLICE_MAX_MS)
                    slice = SCHED_SLICE_MAX_MS;
                if (slice < wait)
                    wait = slice;
            }
            int64_t t0 = srv_mono_ms();
            memset(a, 0, sizeof *a);
            if (run_attempt(r, list[i], wait, a) != 0)
                return NOT_STARTED;
            if (a->granted)
                return GOT_HOST;
            if (a->status != FL_EXIT_CONFLICT && a->status != FL_EXIT_UNAVAILABLE)
                return NOT_STARTED; /* failed before a grant: retrying cannot help */
            snprintf(refusal, rlen, "%.128s: %.800s", list[i],
                     a->refusal[0] ? a->refusal : a->last_run_line);
            /* A wrapper that gave up at once although it could have waited
             * (store unreachable): pause rather than spin. */
            if (wait > 0 && srv_mono_ms() - t0 < 1000 && sched_sleep(s, 1000))
                return STOPPED;
        }
    }
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    srv_sched *s = r->s;
    fl_sched_run res;
    memset(&res, 0, sizeof res);
    res.exit_status = -1;
    attempt a;
    memset(&a, 0, sizeof a);
    char refusal[FL_MESSAGE_MAX] = "";
    int how = acquire_and_run(r, &a, refusal, sizeof refusal);
    if (how == NOT_STARTED && is_stopping(s))
        how = STOPPED;

    if (how == GOT_HOST) {
        /* How late after the due instant the host was granted (claim
         * lateness on the store's clock, then the wait on ours). */
        int64_t late = (r->sc.max_wait_ms - r->wait_left_ms) + (a.granted_mono_ms - r->claim_mono_ms);
        detail_add(res.detail, sizeof res.detail, "granted %lld.%llds after due; ",
                   (long long)(late / 1000), (long long)(late % 1000 / 100));
        snprintf(res.provider, sizeof res.provider, "%s", a.provider);
        res.fence = a.fence;
        res.exit_status = a.status;
        snprintf(res.outcome, sizeof res.outcome, "%s",
                 a.status == 0 && !a.overran && !a.lost ? "ok" : "failed");
        if (a.overran)
            detail_add(res.detail, sizeof res.detail, "stopped at max-run (%llds)",
                       (long long)(r->sc.max_run_ms / 1000));
        else if (a.lost)
            detail_add(res.detail, sizeof res.detail, "lease lost while running: %s",
                       a.last_run_line);
        else if (a.status != 0 && is_stopping(s))
            detail_add(res.detail, sizeof res.detail, "stopped: the daemon shut down");
        else if ((a.status == FL_EXIT_NOTFOUND || a.status == FL_EXIT_NOEXEC) &&
                 strncmp(a.last_run_line, "cannot execute", 14) == 0)
            detail_add(res.detail, sizeof res.detail, "exit status %d: %s", a.status,
                       a.last_run_line);
        else
            detail_add(res.detail, sizeof res.detail, "exit status %d", a.status);
        if (a.status != 0 && a.last_out[0])
            detail_add(res.detail, sizeof res.detail, "; last output: %.200s", a.last_out);
        finish_run(r, &res, &a);
    } else if (how == TIMED_OUT) {
        snprintf(res.outcome, sizeof res.outcome, "skipped");
        detail_add(res.detail, sizeof res.detail, "not granted within max-wait %llds on %s%s%s%s",
                   (long long)(r->sc.max_wait_ms / 1000), r->sc.providers,
                   refusal[0] ? " (last refusal: " : "", refusal, refusal[0] ? ")" : "");
        finish_run(r, &res, NULL);
    } else if (how == STOPPED) {
        snprintf(res.outcome, sizeof res.outcome, "skipped");
        detail_add(res.detail, sizeof res.detail,
                   "the daemon shut down before a host was granted%s%s",
                   refusal[0] ? "; last refusal: " : "", refusal);
        finish_run(r, &res, NULL);
    } else {
        snprintf(res.outcome, sizeof res.outcome, "failed");
        detail_add(res.detail, sizeof res.detail, "could not start: %s", a.last_run_line);
        if (a.status)
            detail_add(res.detail, sizeof res.detail, " (fleetlease run exit %d)", a.status);
        finish_run(r, &res, NULL);
    }
    pthread_mutex_lock(&s->mu);
    r->done = 1;
    s->nrunners--;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Join and free finished runners (ticker thread, or stop). */
static void reap_runners(srv_sched *s, int all)
{
    for (;;) {
        runner *found = NULL;
        pthread_mutex_lock(&s->mu);
        for (runner **pp = &s->runners; *pp; pp = &(*pp)->next) {
            if ((*pp)->done || all) {
                found = *pp;
                *pp = found->next;
                break;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (!found)
            return;
        pthread_join(found->tid, NULL);
        free(found);
    }
}

static void start_runner(srv_sched *s, const fl_schedule *sc, int64_t run_id, int64_t due_at_ms,
                         int64_t now_ms)
{
    char id[32], due[40];
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    fmt_ms(due_at_ms, due, sizeof due);
    runner *r = calloc(1, sizeof *r);
    if (r) {
        r->s = s;
        r->sc = *sc;
        r->run_id = run_id;
        r->due_at_ms = due_at_ms;
        /* max-wait counts from the due instant, not from the claim. */
        r->wait_left_ms = due_at_ms + sc->max_wait_ms - now_ms;
        r->claim_mono_ms = srv_mono_ms();
        pthread_mutex_lock(&s->mu);
        int e = pthread_create(&r->tid, NULL, runner_main, r);
        if (e == 0) {
            r->next = s->runners;
            s->runners = r;
            s->nrunners++;
        }
        pthread_mutex_unlock(&s->mu);
        if (e == 0) {
            srv_log("info", "run_claimed", "schedule", sc->name, "run", id, "due_at", due,
                    "providers", sc->providers, NULL);
            return;
        }
        free(r);
    }
    /* Claimed but cannot run: say so in the record rather than leave it
     * "running" forever. */
    fl_sched_run res;
    memset(&res, 0, sizeof res);
    res.exit_status = -1;
    snprintf(res.outcome, sizeof res.outcome, "failed");
    snprintf(res.detail, sizeof res.detail, "could not start: no thread for the run");
    if (fl_sched_finish(s->st, run_id, &res) != FL_OK)
        srv_log("warn", "run_record_failed", "schedule", sc->name, "run", id, "error",
                fl_errmsg(s->st), NULL);
}

/* ---- the ticker ------------------------------------------------------------- */

static sched_state *state_for(srv_sched *s, const fl_schedule *sc)
{
    sched_state *st = NULL;
    for (size_t i = 0; i < s->nstates; i++)
        if (strcmp(s->states[i].name, sc->name) == 0)
            st = &s->states[i];
    if (!st) {
        sched_state *ns = realloc(s->states, (s->nstates + 1) * sizeof *ns);
        if (!ns)
            return NULL;
        s->states = ns;
        st = &s->states[s->nstates++];
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", sc->name);
    } else if (strcmp(st->cron, sc->cron) == 0 && strcmp(st->tz, sc->tz) == 0 &&
               st->created_at_ms == sc->created_at_ms) {
        return st;
    }
    /* New or replaced: start the walk afresh. */
    snprintf(st->cron, sizeof st->cron, "%s", sc->cron);
    snprintf(st->tz, sizeof st->tz, "%s", sc->tz);
    st->created_at_ms = sc->created_at_ms;
    st->bad = 0;
    int64_t from = s->start_ms - SRV_SCHED_GRACE_MS;
    st->last_due_ms = sc->created_at_ms > from ? sc->created_at_ms : from;
    return st;
}

static void tick(srv_sched *s)
{
    int64_t now = 0;
    fl_schedule *all = NULL;
    size_t n = 0;
    int rc = fl_store_now(s->st, &now);
    if (rc == FL_OK)
        rc = fl_schedule_list(s->st, &all, &n);
    if (rc != FL_OK) {
        if (!s->store_failing)
            srv_log("warn", "scheduler_store_failed", "error", fl_errmsg(s->st), NULL);
        s->store_failing = 1;
        return;
    }
    if (s->store_failing)
        srv_log("info", "scheduler_store_recovered", NULL);
    s->store_failing = 0;

    for (size_t i = 0; i < s->nstates; i++)
        s->states[i].seen = 0;
    for (size_t i = 0; i < n && !is_stopping(s); i++) {
        const fl_schedule *sc = &all[i];
        sched_state *st = state_for(s, sc);
        if (!st)
            continue;
        st->seen = 1;
        fl_cron c;
        char err[FL_MESSAGE_MAX];
        if (fl_cron_parse(sc->cron, &c, err, sizeof err) != FL_OK ||
            fl_cron_tz(sc->tz, NULL, err, sizeof err) != FL_OK) {
            if (!st->bad)
                srv_log("warn", "schedule_invalid", "schedule", sc->name, "error", err, NULL);
            st->bad = 1;
            continue;
        }
        long long missed = 0;
        int64_t first_missed = 0;
        for (;;) {
            int64_t due = 0;
            if (fl_cron_next(&c, sc->tz, st->last_due_ms, &due) != FL_OK || due > now)
                break;
            if (now - due > SRV_SCHED_GRACE_MS) {
                if (!missed++)
                    first_missed = due;
                st->last_due_ms = due;
                continue;
            }
            pthread_mutex_lock(&s->mu);
            int full = s->nrunners >= SCHED_MAX_RUNNERS;
            pthread_mutex_unlock(&s->mu);
            if (full) {
                /* Leave it unclaimed: another daemon may take it; we try
                 * again next tick while it is within the grace. */
                char cnt[32];
                srv_log("warn", "scheduler_busy", "schedule", sc->name, "running",
                        srv_num(cnt, sizeof cnt, SCHED_MAX_RUNNERS), NULL);
                break;
            }
            int64_t run_id = 0;
            rc = fl_sched_claim(s->st, sc->name, due, s->daemon, &run_id);
            if (rc == FL_OK) {
                st->last_due_ms = due;
                start_runner(s, sc, run_id, due, now);
            } else if (rc == FL_ECONFLICT) {
                st->last_due_ms = due; /* another daemon has it */
            } else {
                /* Store trouble: retry this instant on the next tick. */
                srv_log("warn", "claim_failed", "schedule", sc->name, "error", fl_errmsg(s->st),
                        NULL);
                break;
            }
        }
        if (missed) {
            char cnt[32], at[40];
            fmt_ms(first_missed, at, sizeof at);
            srv_log("warn", "runs_missed", "schedule", sc->name, "count",
                    srv_num(cnt, sizeof cnt, missed), "first_due_at", at, "note",
                    "due more than 60s ago (daemon or store down); not run", NULL);
        }
    }
    /* Forget removed schedules. */
    size_t k = 0;
    for (size_t i = 0; i < s->nstates; i++)
        if (s->states[i].seen)
            s->states[k++] = s->states[i];
    s->nstates = k;
    fl_free(all);
}

/*
 * Runs left "running" by an earlier daemon on this host whose process is
 * gone (SIGKILL, a crash, a reboot) can never be finished by it: record
 * them as lost.  Runs of other hosts are theirs to judge.
 */
static void mark_lost(srv_sched *s)
{
    fl_sched_run *runs = NULL;
    size_t n = 0;
    if (fl_sched_runs(s->st, NULL, 1000, &runs, &n) != FL_OK)
        return;
    size_t hl = strlen(s->host);
    for (size_t i = 0; i < n; i++) {
        fl_sched_run *x = &runs[i];
        if (strcmp(x->outcome, "running") != 0 || strncmp(x->claimed_by, s->host, hl) != 0 ||
            x->claimed_by[hl] != ':')
            continue;
        char *end = NULL;
        long pid = strtol(x->claimed_by + hl + 1, &end, 10);
        if (!end || *end || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        fl_sched_run res;
        memset(&res, 0, sizeof res);
        res.exit_status = -1;
        snprintf(res.outcome, sizeof res.outcome, "lost");
        snprintf(res.detail, sizeof res.detail,
                 "the daemon that claimed it (%.200s) is gone; how the run ended is unknown",
                 x->claimed_by);
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)x->id);
        if (fl_sched_finish(s->st, x->id, &res) == FL_OK)
            srv_log("warn", "run_lost", "schedule", x->name, "run", id, "claimed_by",
                    x->claimed_by, NULL);
    }
    fl_free(runs);
}

static void *ticker_main(void *arg)
{
    srv_sched *s = arg;
    mark_lost(s);
    while (!is_stopping(s)) {
        int64_t t0 = srv_mono_ms();
        tick(s);
        reap_runners(s, 0);
        int64_t spent = srv_mono_ms() - t0;
        if (sched_sleep(s, spent < SRV_SCHED_TICK_MS ? SRV_SCHED_TICK_MS - spent : 1))
            break;
    }
    return NULL;
}

/* ---- start and stop ----------------------------------------------------------- */

int srv_sched_start(cli_ctx *ctx, srv_sched **out)
{
    *out = NULL;
    srv_sched *s = calloc(1, sizeof *s);
    if (!s)
        return cli_fail(ctx, FL_ENOMEM, "out of memory");
    if (fl_resolve_url(ctx->db, s->url, sizeof s->url) != FL_OK) {
        free(s);
        return cli_fail(ctx, FL_EINVAL, "scheduler: cannot resolve the store URL");
    }
    /* The wrapper is this very binary. */
    ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
    if (n <= 0 || (size_t)n >= sizeof s->exe - 1) {
        free(s);
        return cli_fail(ctx, FL_ESYS, "scheduler: cannot find this program (/proc/self/exe)");
    }
    s->exe[n] = '\0';
    if (gethostname(s->host, sizeof s->host) != 0 || !s->host[0])
        snprintf(s->host, sizeof s->host, "localhost");
    s->host[sizeof s->host - 1] = '\0';
    snprintf(s->daemon, sizeof s->daemon, "%s:%ld", s->host, (long)getpid());

    int rc = cli_open(ctx, &s->st);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if (fl_store_now(s->st, &s->start_ms) != FL_OK) {
        rc = cli_store_fail(ctx, s->st, FL_EUNAVAIL, "scheduler: cannot read the store clock");
        fl_close(s->st);
        free(s);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->tid, NULL, ticker_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        fl_close(s->st);
        free(s);
        return cli_fail(ctx, FL_ESYS, "scheduler: cannot start its thread");
    }
    s->started = 1;
    char g[32];
    srv_log("info", "scheduler_started", "daemon", s->daemon, "grace_ms",
            srv_num(g, sizeof g, SRV_SCHED_GRACE_MS), NULL);
    *out = s;
    return 0;
}

void srv_sched_stop(srv_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    int running = 0;
    for (runner *r = s->runners; r; r = r->next)
        if (r->pid > 0) {
            /* The wrapper forwards SIGTERM to its job's group, stops the
             * tree (SIGKILL after the kill grace) and releases. */
            kill(r->pid, SIGTERM);
            running++;
        }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (running) {
        char n[32];
        srv_log("info", "scheduler_stopping", "running_jobs", srv_num(n, sizeof n, running),
                NULL);
    }
    if (s->started)
        pthread_join(s->tid, NULL);
    reap_runners(s, 1);
    fl_close(s->st);
    free(s->states);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
