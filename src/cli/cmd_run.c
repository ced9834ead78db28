/*
 * src/cli/cmd_run.c -- `fleetlease run`: hold a lease for exactly as long
 * as a command and everything it started is alive.
 *
 * The invariant this file keeps (cases C09, C10): the lease is released
 * only after every process the wrapper started is gone, and when the lease
 * is lost those processes are stopped before the store's expiry.
 *
 * How:
 * - The wrapper is a child subreaper, so a daemonized grandchild (double
 *   fork, setsid) is re-parented to it instead of to init: waitpid(-1)
 *   answering ECHILD then proves that no descendant is left.
 * - CMD runs in its own process group (setpgid on both sides of fork, so
 *   neither side can signal a group that does not exist yet).  Descendants
 *   that left the group are found through /proc (ppid chains).
 * - The main child is not reaped until the tree is gone: its zombie keeps
 *   its pid, which is the group id, from being reused, so kill(-pgid) can
 *   never hit an unrelated group that got the same number.
 * - Signal handlers and the grant's on_lost callback only set a flag and
 *   write a byte to a self-pipe; the main loop does the work.
 * - The grant's watchdog fires at the local deadline (before the store's
 *   expiry by a margin); the job then gets SIGTERM, and SIGKILL after
 *   fl_grant_kill_grace(), which is shorter than that margin.
 *
 * What cannot be covered: a wrapper stopped with SIGSTOP (or killed with
 * SIGKILL) stops heartbeating while its job runs on.  For SIGKILL the
 * direct child gets PR_SET_PDEATHSIG=SIGKILL; for SIGSTOP the lease
 * lapses after its TTL and the wrapper stops the job when it resumes.
 */
#include "commands.h"
#include "schedule.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char cmd_run_usage[] =
    "usage: fleetlease [--db URL] run PROVIDER --purpose TEXT [--holder TEXT]\n"
    "           [--mode shared|exclusive] [--ttl DURATION] [--wait DURATION]\n"
    "           -- CMD [ARGS...]\n"
    "\n"
    "Acquire a lease on PROVIDER, run CMD under it, and release the lease once\n"
    "CMD and every process it started are gone.\n"
    "\n"
    "Options come before CMD: everything from CMD on is CMD's own, so the \"--\"\n"
    "may be left out (as with timeout(1)), but a CMD that starts with \"-\" needs\n"
    "it.\n"
    "\n"
    "Options:\n"
    "  --purpose TEXT   why the host is taken (shown to refused writers); required\n"
    "  --holder TEXT    who holds it (default: $FLEETLEASE_HOLDER, else user@host)\n"
    "  --mode MODE      shared or exclusive (default: exclusive)\n"
    "  --ttl DURATION   lease lifetime without a renew, 1s..24h (default: 30s);\n"
    "                   renewed about every ttl/3 while CMD runs\n"
    "  --wait DURATION  how long to wait for the host (default: 0, fail at once)\n"
    "  --max-run DURATION  stop CMD after it ran this long, 1s..168h (default: no\n"
    "                   limit): SIGTERM to its tree, SIGKILL after the kill grace\n"
    "                   (min(ttl/8, 10s)), then release; exit 124\n"
    "  --require-isolation  exclusive only: exit 78 unless a lease-aware gateway\n"
    "                   (fleetlease gateway) reported on this lease and no foreign\n"
    "                   request was at the host while it was active (admitted\n"
    "                   during it, or still in flight at the grant)\n"
    "\n"
    "CMD runs in its own process group with FLEETLEASE_PROVIDER, FLEETLEASE_TOKEN\n"
    "and FLEETLEASE_FENCE in its environment.  Its stdout and stdin are the\n"
    "wrapper's; once CMD starts, fleetlease writes only to stderr (--json only\n"
    "formats an error that keeps CMD from starting).  SIGHUP, SIGINT,\n"
    "SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM and SIGWINCH are forwarded to\n"
    "the group; SIGTSTP stops the group and then the wrapper.  When CMD exits,\n"
    "what remains of its process tree (even daemonized grandchildren) gets\n"
    "SIGTERM, then SIGKILL after a grace period, before the lease is released.\n"
    "If the lease is lost (renews fail until the local deadline, or the lease\n"
    "was released or deleted behind the wrapper's back), the job is stopped the\n"
    "same way before the lease's expiry in the store.  CMD runs in the\n"
    "background process group of a terminal: it cannot read from the terminal.\n"
    "\n"
    "Exit status:\n"
    "  CMD's status    128+N if CMD was killed by signal N\n"
    "  64              usage error\n"
    "  69              the store cannot be reached\n"
    "  70              the store answered with an error\n"
    "  75              not granted (held by someone else, or not within --wait);\n"
    "                  CMD was not run\n"
    "  76              the lease was lost while CMD ran; CMD was stopped\n"
    "  78              --require-isolation: no gateway reported on the lease, or a\n"
    "                  foreign request reached the host during it (replaces CMD's\n"
    "                  status, but not 76)\n"
    "  124             --max-run passed; CMD was stopped (as timeout(1) does)\n"
    "  126             CMD could not be executed\n"
    "  127             CMD was not found\n"
    "\n"
    "An exclusive lease's isolation report (what the gateways in front of\n"
    "PROVIDER let through while it was held; docs/gateway.md) is printed on\n"
    "stderr when CMD ends.\n";

/* Signals passed on to the job's process group.  Every signal whose
 * default action would kill the wrapper is either here or ignored: a
 * wrapper killed by a stray SIGUSR1 would leave its job running unleased. */
static const int run_forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
                                    SIGUSR2, SIGALRM, SIGWINCH, SIGTSTP, SIGCONT};
/* The wrapper ignores these (restored to default in the child): SIGPIPE
 * when stderr goes away, SIGTTOU when it writes to a terminal with tostop. */
static const int run_ignored[] = {SIGPIPE, SIGTTOU};

#define RUN_NSIG 65
#define RUN_POLL_MS 100       /* fallback wake-up; on_lost and SIGCHLD wake at once */
#define RUN_STOP_POLL_MS 20   /* re-scan period while the tree is being stopped */

/* True process state: a signal handler can reach nothing else. */
static int run_wake_fd = -1;
static volatile sig_atomic_t run_pending[RUN_NSIG];

typedef struct run_opts {
    const char *provider;
    const char *purpose;
    const char *holder;
    fl_mode mode;
    int64_t ttl_ms;
    int64_t wait_ms;
    int64_t max_run_ms;         /* 0: no limit */
    int require_isolation;      /* --require-isolation */
    char **cmd;
} run_opts;

typedef struct run_state {
    int wake[2];                /* self-pipe: [0] read by the loop, [1] written async */
    int exec_fd;                /* read end of the exec-status pipe; -1 once settled */
    pid_t self;
    pid_t child;                /* also the job's process group id */
    int child_done;             /* exited (still an unreaped zombie) */
    int child_status;           /* exit code, or 128+signal */
    int child_reaped;           /* its pid (the group id) may be reused now */
    atomic_int lost_code;       /* set by on_lost, read by the loop */
    char lost_why[FL_MESSAGE_MAX]; /* written before lost_code is stored */
    int proc_warned;
    char provider[FL_PROVIDER_MAX + 1];
} run_state;

static int64_t run_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_wake(void)
{
    /* Non-blocking: if the pipe is full, the loop is already due to wake. */
    unsigned char b = 0;
    ssize_t n = write(run_wake_fd, &b, 1);
    (void)n;
}

static void run_on_signal(int sig)
{
    int saved = errno;
    if (sig > 0 && sig < RUN_NSIG)
        run_pending[sig] = 1;
    run_wake();
    errno = saved;
}

/* Called once from the grant's heartbeat or watchdog thread, which must not
 * be held up: a bounded copy into our own buffer, a flag, a byte.  The copy
 * of why is published by the atomic store that follows it. */
static void run_on_lost(fl_grant *g, int code, const char *why, void *arg)
{
    (void)g;
    run_state *r = arg;
    snprintf(r->lost_why, sizeof r->lost_why, "%s", why ? why : "");
    atomic_store(&r->lost_code, code ? code : FL_ELOST);
    run_wake();
}

/* ---- argument parsing ------------------------------------------------ */

enum { OPT_PURPOSE = CLI_OPT_PRIVATE, OPT_HOLDER, OPT_MODE, OPT_TTL, OPT_WAIT, OPT_MAX_RUN };

typedef struct run_raw {
    const char *purpose, *holder, *mode, *ttl, *wait, *max_run;
    int require_isolation;
} run_raw;

/* Apart from the enum above, which other options extend. */
enum { OPT_REQUIRE_ISOLATION = CLI_OPT_PRIVATE + 0x40 };

static int run_on_opt(cli_ctx *ctx, void *self, int opt, const char *arg)
{
    run_raw *o = self;
    (void)ctx;
    switch (opt) {
    case OPT_PURPOSE: o->purpose = arg; break;
    case OPT_HOLDER: o->holder = arg; break;
    case OPT_MODE: o->mode = arg; break;
    case OPT_TTL: o->ttl = arg; break;
    case OPT_WAIT: o->wait = arg; break;
    case OPT_MAX_RUN: o->max_run = arg; break;
    case OPT_REQUIRE_ISOLATION: o->require_isolation = 1; break;
    default: return FL_EXIT_USAGE;
    }
    return 0;
}

/*
 * Everything is validated before the store is opened, as acquire does.
 * Returns CLI_CONTINUE with o filled (o->cmd malloc'd, NULL-terminated),
 * or the exit code.  Operands are PROVIDER then CMD ARGS; CMD's own
 * options need the "--" before CMD, which ends fleetlease's options.
 */
static int run_parse(cli_ctx *ctx, int argc, char **argv, run_opts *o, char *hbuf,
                     size_t hlen)
{
    static const struct option longopts[] = {
        {"purpose", required_argument, NULL, OPT_PURPOSE},
        {"holder", required_argument, NULL, OPT_HOLDER},
        {"mode", required_argument, NULL, OPT_MODE},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"max-run", required_argument, NULL, OPT_MAX_RUN},
        {"require-isolation", no_argument, NULL, OPT_REQUIRE_ISOLATION},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    run_raw raw = {0};
    const char **pos = malloc((size_t)(argc + 1) * sizeof *pos);
    if (!pos)
        return cli_fail(ctx, FL_ENOMEM, "out of memory");
    int npos = 0;
    ctx->opts_end_at = 2; /* CMD (after PROVIDER): from there on, its own arguments */
    int rc = cli_parse(ctx, argc, argv, "", longopts, run_on_opt, &raw, pos, argc, &npos);
    if (rc != CLI_CONTINUE) {
        free(pos);
        return rc;
    }
    char err[FL_MESSAGE_MAX];
    if (npos < 1)
        rc = cli_usage_error(ctx, "missing PROVIDER");
    else if (fl_validate_provider(pos[0], err, sizeof err) != FL_OK)
        rc = cli_bad_value(ctx, err);
    else if (npos < 2)
        rc = cli_usage_error(ctx, "missing CMD: give it after --");
    else if (!raw.purpose)
        rc = cli_usage_error(ctx, "missing --purpose: say why you need the host");
    else if (fl_validate_text("purpose", raw.purpose, err, sizeof err) != FL_OK)
        rc = cli_bad_value(ctx, err);
    if (rc != CLI_CONTINUE) {
        free(pos);
        return rc;
    }
    o->provider = pos[0];
    o->purpose = raw.purpose;
    o->holder = raw.holder ? raw.holder : cli_holder_default(hbuf, hlen);
    if (fl_validate_text("holder", o->holder, err, sizeof err) != FL_OK)
        rc = raw.holder ? cli_bad_value(ctx, err)
                        : cli_usage_error(ctx, "%s (from FLEETLEASE_HOLDER)", err);
    else if (raw.mode && fl_parse_mode(raw.mode, &o->mode, err, sizeof err) != FL_OK)
        rc = cli_bad_value(ctx, err);
    else if (raw.ttl && fl_parse_ttl("ttl", raw.ttl, &o->ttl_ms, err, sizeof err) != FL_OK)
        rc = cli_bad_value(ctx, err);
    else if (raw.wait && fl_parse_wait("wait", raw.wait, &o->wait_ms, err, sizeof err) != FL_OK)
        rc = cli_bad_value(ctx, err);
    else if (raw.max_run && cli_parse_max_run(ctx, raw.max_run, &o->max_run_ms) != CLI_CONTINUE)
        rc = FL_EXIT_USAGE;
    else if (raw.require_isolation && o->mode != FL_EXCLUSIVE)
        rc = cli_usage_error(ctx, "--require-isolation needs --mode exclusive: isolation is "
                                  "reported per exclusive lease");
    o->require_isolation = raw.require_isolation;
    if (rc != CLI_CONTINUE) {
        free(pos);
        return rc;
    }
    /* CMD is handed to execvp, which wants char *const[]: the operands are
     * argv's own strings, so dropping const is safe.  Reuse pos's memory. */
    char **cmd = (char **)pos;
    for (int i = 1; i < npos; i++)
        cmd[i - 1] = (char *)pos[i];
    cmd[npos - 1] = NULL;
    o->cmd = cmd;
    return CLI_CONTINUE;
}

/* ---- the process tree ------------------------------------------------- */

typedef struct run_proc {
    pid_t pid, ppid, pgrp;
    char state;
    int mine;  /* a descendant of the wrapper */
} run_proc;

/* Read "pid (comm) S ppid pgrp" from /proc/PID/stat.  comm may hold
 * spaces and parentheses, so parse from the last ')'. */
static int run_read_stat(long pidnum, run_proc *p)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pidnum);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    int pid, ppid, pgrp;
    char st;
    if (!rp || sscanf(buf, "%d", &pid) != 1 ||
        sscanf(rp + 1, " %c %d %d", &st, &ppid, &pgrp) != 3)
        return -1;
    p->pid = pid;
    p->ppid = ppid;
    p->pgrp = pgrp;
    p->state = st;
    p->mine = 0;
    return 0;
}

/*
 * The processes to stop: live (not zombie) descendants of the wrapper, and
 * live members of the job's process group.  *out is malloc'd.  Returns -1
 * when /proc cannot be read; then only the group can be signalled, and
 * waitpid() alone decides when the tree is gone.
 */
static int run_scan(const run_state *r, pid_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    run_proc *ps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pidnum = strtol(e->d_name, &end, 10);
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || *end != '\0')
            continue;
        run_proc p;
        if (run_read_stat(pidnum, &p) != 0)
            continue;  /* it exited between readdir and open */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            run_proc *np = realloc(ps, ncap * sizeof *np);
            if (!np) {
                rc = -1;
                break;
            }
            ps = np;
            cap = ncap;
        }
        ps[n++] = p;
    }
    closedir(d);
    if (rc != 0) {
        free(ps);
        return -1;
    }
    /* Mark descendants: a fixed point over ppid links.  Each pass adds at
     * least one level of the tree; job trees are shallow and the process
     * table is a few thousand entries, so this costs well under a ms. */
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (ps[i].mine)
                continue;
            int parent_mine = ps[i].ppid == r->self;
            for (size_t j = 0; !parent_mine && j < n; j++)
                parent_mine = ps[j].mine && ps[j].pid == ps[i].ppid;
            if (parent_mine) {
                ps[i].mine = 1;
                changed = 1;
            }
        }
    }
    pid_t *pids = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int in_group = !r->child_reaped && ps[i].pgrp == r->child;
        int target = (ps[i].mine || in_group) && ps[i].state != 'Z' &&
                     ps[i].state != 'X' && ps[i].pid != r->self;
        if (!target)
            continue;
        if (!pids) {
            pids = malloc(n * sizeof *pids);
            if (!pids) {
                free(ps);
                return -1;
            }
        }
        pids[k++] = ps[i].pid;
    }
    free(ps);
    *out = pids;
    *nout = k;
    return 0;
}

/* ---- the event loop --------------------------------------------------- */

static void run_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = run_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof run_forwarded / sizeof run_forwarded[0]; i++)
        sigaction(run_forwarded[i], &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    for (size_t i = 0; i < sizeof run_ignored / sizeof run_ignored[0]; i++)
        sigaction(run_ignored[i], &sa, NULL);
}

static void run_handled_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof run_forwarded / sizeof run_forwarded[0]; i++)
        sigaddset(set, run_forwarded[i]);
    sigaddset(set, SIGCHLD);
}

/* Wait for a signal, the lost callback, the exec pipe or the timeout. */
static void run_wait(run_state *r, int with_exec, int timeout_ms)
{
    struct pollfd p[2];
    nfds_t n = 1;
    p[0].fd = r->wake[0];
    p[0].events = POLLIN;
    /* Only where run_check_exec() follows: an EOF left unread would make
     * every later poll return at once. */
    if (with_exec && r->exec_fd >= 0) {
        p[1].fd = r->exec_fd;
        p[1].events = POLLIN;
        n = 2;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (poll(p, n, timeout_ms) <= 0)
        return;  /* timeout or EINTR: the caller re-checks everything */
    if (p[0].revents) {
        unsigned char buf[64];
        while (read(r->wake[0], buf, sizeof buf) > 0) {
        }
    }
}

/* The exec pipe says whether execvp succeeded: EOF when the child exec'd
 * (the write end is close-on-exec), an errno when it failed. */
static void run_check_exec(run_state *r, const char *cmd)
{
    if (r->exec_fd < 0)
        return;
    struct pollfd p = {.fd = r->exec_fd, .events = POLLIN};
    if (!r->child_done && poll(&p, 1, 0) <= 0)
        return;
    int e = 0;
    ssize_t n;
    do
        n = read(r->exec_fd, &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof e) {
        char q[600];
        fprintf(stderr, "fleetlease run: cannot execute %s: %s\n", cli_quote(q, sizeof q, cmd, 256),
                strerror(e));
    }
    close(r->exec_fd);
    r->exec_fd = -1;
}

/* Pass pending signals on to the job's group. */
static void run_forward(run_state *r)
{
    for (size_t i = 0; i < sizeof run_forwarded / sizeof run_forwarded[0]; i++) {
        int sig = run_forwarded[i];
        if (!run_pending[sig])
            continue;
        run_pending[sig] = 0;
        kill(-r->child, sig);
        if (sig == SIGTSTP) {
            /* Job control: the job is stopped, so stop too; SIGCONT (from
             * `fg`) is forwarded when we resume.  The lease is not renewed
             * meanwhile: a stop longer than the TTL loses it. */
            raise(SIGSTOP);
        }
    }
}

/*
 * Reap re-parented orphans as they die, and notice the main child's exit
 * without reaping it (WNOWAIT: its zombie keeps the group id reserved).
 */
static void run_poll_children(run_state *r)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            return;
        if (si.si_pid != r->child) {
            waitpid(si.si_pid, NULL, WNOHANG);
            continue;
        }
        if (!r->child_done) {
            r->child_done = 1;
            r->child_status =
                si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        }
        /* waitid() keeps answering with the main child's zombie; orphans
         * behind it are reaped after the tree has been stopped. */
        return;
    }
}

/* Lost: by the grant's own word, or past the local deadline even if the
 * watchdog has not run yet.  Fills why. */
static int run_lost(run_state *r, fl_grant *g, char *why, size_t len)
{
    int code = atomic_load(&r->lost_code);
    if (code) {
        snprintf(why, len, "%s", r->lost_why[0] ? r->lost_why : fl_strerror(code));
        return code;
    }
    code = fl_grant_lost(g);
    if (!code && fl_grant_time_left(g) <= 0)
        code = FL_ELOST;
    if (code)
        snprintf(why, len, "%s",
                 code == FL_ELOST ? "no successful renew before the local deadline"
                                  : fl_strerror(code));
    return code;
}

static void run_signal_all(const pid_t *pids, size_t n, int sig)
{
    for (size_t i = 0; i < n; i++)
        kill(pids[i], sig);
}

/*
 * Stop everything the job left: SIGTERM to the group and every live
 * descendant, SIGKILL to whatever is still alive after grace_ms, then wait
 * until nothing is alive.  Zombies are left for run_reap_all().
 */
static void run_stop_tree(run_state *r, int64_t grace_ms)
{
    const int64_t kill_at = run_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
    int termed = 0;
    for (;;) {
        pid_t *pids = NULL;
        size_t n = 0;
        int scanned = run_scan(r, &pids, &n) == 0;
        if (!scanned && !r->proc_warned) {
            r->proc_warned = 1;
            fprintf(stderr, "fleetlease run: cannot read /proc: only the process group "
                            "of the job is signalled\n");
        }
        if (scanned && n == 0) {
            free(pids);
            return;
        }
        int sig = run_mono_ms() >= kill_at ? SIGKILL : SIGTERM;
        if (sig == SIGKILL || !termed) {
            if (!r->child_reaped)
                kill(-r->child, sig);
            run_signal_all(pids, n, sig);
            /* A stopped process acts on SIGTERM only once continued. */
            if (sig == SIGTERM) {
                if (!r->child_reaped)
                    kill(-r->child, SIGCONT);
                run_signal_all(pids, n, SIGCONT);
            }
            termed = 1;
        }
        free(pids);
        /* Without /proc, waitpid() in the caller decides what is left. */
        if (!scanned && (sig == SIGKILL || r->child_reaped))
            return;
        int64_t left = kill_at - run_mono_ms();
        run_wait(r, 0, sig == SIGKILL || left > RUN_STOP_POLL_MS ? RUN_STOP_POLL_MS
                                                                  : (int)left);
    }
}

/* Reap every child.  1 when none is left (ECHILD), 0 if one still runs. */
static int run_reap_all(run_state *r)
{
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            return 1;  /* ECHILD: no descendant is left anywhere */
        }
        if (p == 0)
            return 0;
        if (p == r->child) {
            r->child_reaped = 1;
            if (!r->child_done) {
                r->child_done = 1;
                r->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
    }
}

/* ---- the child ---------------------------------------------------------- */

/* Environment for CMD: ours, with the FLEETLEASE_ variables of the lease
 * replaced, and FLEETLEASE_DB set so that `fleetlease check/renew` inside
 * the job reach the same store.  Built before fork: the child of a threaded
 * process may only make async-signal-safe calls, so it cannot setenv(). */
#define RUN_VARS 4
static char **run_env(char *vars[RUN_VARS])
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + RUN_VARS + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        if (strncmp(e, "FLEETLEASE_PROVIDER=", 20) == 0 ||
            strncmp(e, "FLEETLEASE_TOKEN=", 17) == 0 ||
            strncmp(e, "FLEETLEASE_FENCE=", 17) == 0 ||
            strncmp(e, "FLEETLEASE_DB=", 14) == 0)
            continue;
        env[k++] = environ[i];
    }
    for (int i = 0; i < RUN_VARS; i++)
        env[k++] = vars[i];
    env[k] = NULL;
    return env;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void run_child(char **cmd, char **env, int exec_wr, pid_t parent,
                      const sigset_t *unblocked)
{
    setpgid(0, 0);
    /* If the wrapper dies without cleaning up (SIGKILL), take the job down
     * rather than let it run on unleased.  Check the parent after arming:
     * it may have died before. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(FL_EXIT_LOST);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (size_t i = 0; i < sizeof run_forwarded / sizeof run_forwarded[0]; i++)
        sigaction(run_forwarded[i], &dfl, NULL);
    for (size_t i = 0; i < sizeof run_ignored / sizeof run_ignored[0]; i++)
        sigaction(run_ignored[i], &dfl, NULL);
    sigaction(SIGCHLD, &dfl, NULL);
    sigprocmask(SIG_SETMASK, unblocked, NULL);
    execvpe(cmd[0], cmd, env);
    int e = errno;
    ssize_t w = write(exec_wr, &e, sizeof e);
    (void)w;
    _exit(e == ENOENT || e == ENOTDIR ? FL_EXIT_NOTFOUND : FL_EXIT_NOEXEC);
}

/* ---- the command ------------------------------------------------------- */

/* Supervise the job until it is gone; returns the exit code.  Releases g. */
static int run_supervise(run_state *r, fl_grant *g, const run_opts *o)
{
    char why[FL_MESSAGE_MAX];
    int lost = 0, overran = 0;
    /* --max-run counts from the start of CMD, on the monotonic clock. */
    const int64_t stop_at = o->max_run_ms > 0 ? run_mono_ms() + o->max_run_ms : INT64_MAX;
    for (;;) {
        run_forward(r);
        run_poll_children(r);
        run_check_exec(r, o->cmd[0]);
        if ((lost = run_lost(r, g, why, sizeof why)) != 0 || r->child_done)
            break;
        int64_t left = fl_grant_time_left(g), now = run_mono_ms();
        if (now >= stop_at) {
            overran = 1;
            break;
        }
        if (stop_at - now < left)
            left = stop_at - now;
        run_wait(r, 1, left < RUN_POLL_MS ? (int)left : RUN_POLL_MS);
    }

    int64_t grace = fl_grant_kill_grace(g);
    if (lost) {
        fprintf(stderr, "fleetlease run: lease on %s lost: %s; stopping the job\n",
                r->provider, why);
    } else if (overran) {
        /* The same stop as at a loss: SIGTERM, SIGKILL after the grace. */
        fprintf(stderr, "fleetlease run: max-run of %lld ms reached on %s; stopping the job\n",
                (long long)o->max_run_ms, r->provider);
    } else {
        /* Normal exit.  If the deadline passed just as the child exited,
         * SIGKILL must still land within the grace after the deadline, which
         * is what keeps it before the store's expiry. */
        int64_t left = fl_grant_time_left(g);
        if (left < 0)
            grace += left;
    }
    do
        run_stop_tree(r, grace);
    while (!run_reap_all(r));
    run_check_exec(r, o->cmd[0]);

    /* Only now, with the whole tree gone, may the lease go. */
    int rc = fl_grant_release(g);
    if (lost)
        return FL_EXIT_LOST;
    if (rc == FL_ELOST || rc == FL_EEXPIRED || rc == FL_ENOTFOUND) {
        fprintf(stderr, "fleetlease run: lease on %s lost before its release: %s\n",
                r->provider, fl_strerror(rc));
        return FL_EXIT_LOST;
    }
    if (rc != FL_OK)
        fprintf(stderr, "fleetlease run: cannot release the lease on %s: %s; it lapses "
                        "within its ttl\n",
                r->provider, fl_strerror(rc));
    return overran ? CLI_EXIT_MAX_RUN : r->child_status;
}

/* ---- the isolation report ------------------------------------------------ */

/* A gateway writes its final report once it sees the lease end, which is
 * milliseconds after the release; this is how long we wait for it. */
#define RUN_REPORT_WAIT_MS 2000

/*
 * After an exclusive lease ended: print what the lease-aware gateways in
 * front of the provider let through while it was held (fl_report_get sums
 * them).  Returns the exit code: `code`, or FL_EXIT_ISOLATION under
 * --require-isolation when the report shows a foreign request during the
 * lease or no gateway reported (then nothing proves the isolation).  Not
 * called after a lost lease (76).  Without
 * --require-isolation a provider no gateway reported on costs no wait.
 */
static int run_isolation(const char *url, const fl_lease *l, const run_opts *o, int code)
{
    const char *p = l->provider;
    fl_store *st = NULL;
    fl_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = fl_open(url, &st), found = 0;
    const int64_t until = run_mono_ms() + RUN_REPORT_WAIT_MS;
    while (rc == FL_OK) {
        rc = fl_report_get(st, p, l->fence, &rep);
        if (rc == FL_OK) {
            found = 1;
            if (rep.final)
                break;
        } else if (rc != FL_ENOTFOUND || !o->require_isolation) {
            break;
        }
        if (run_mono_ms() >= until)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        rc = FL_OK;
    }
    char why[FL_MESSAGE_MAX] = "";
    if (!found && rc != FL_OK && rc != FL_ENOTFOUND)
        snprintf(why, sizeof why, "%s", st && fl_errmsg(st)[0] ? fl_errmsg(st) : fl_strerror(rc));
    fl_close(st);
    int bad = 0;
    if (!found) {
        fprintf(stderr, "fleetlease run: isolation on %s (fence %" PRId64 "): %s%s\n", p,
                l->fence, why[0] ? "cannot read the report: " : "no gateway reported on this lease",
                why);
        bad = 1;
    } else {
        fprintf(stderr,
                "fleetlease run: isolation on %s (fence %" PRId64 ", %d gateway%s%s): "
                "concurrent_foreign_requests=%" PRId64 " foreign_in_flight_at_grant=%" PRId64
                " foreign_refused=%" PRId64 " foreign_cut_off=%" PRId64 " holder_requests=%" PRId64
                "\n",
                p, l->fence, rep.gateways, rep.gateways == 1 ? "" : "s",
                rep.final ? ", final" : ", not final: a gateway did not see the lease end",
                rep.concurrent_foreign_requests, rep.foreign_in_flight_at_grant,
                rep.foreign_refused, rep.foreign_cut_off, rep.holder_requests);
        if (rep.n_writers > 0) {
            char line[1024];
            size_t off = 0;
            for (size_t i = 0; i < rep.n_writers && off < sizeof line; i++) {
                int n = snprintf(line + off, sizeof line - off, "%s%s=%" PRId64, i ? " " : "",
                                 rep.writers[i].writer, rep.writers[i].refused);
                if (n < 0)
                    break;
                off += (size_t)n;
            }
            fprintf(stderr, "fleetlease run: refused by writer: %s\n", line);
        }
        bad = !fl_report_isolated(&rep);
        if (bad)
            fprintf(stderr,
                    "fleetlease run: isolation violated: %" PRId64
                    " foreign request(s) reached %s while the lease was active, %" PRId64
                    " were still in flight there when it was granted\n",
                    rep.concurrent_foreign_requests, p, rep.foreign_in_flight_at_grant);
    }
    if (!o->require_isolation || !bad)
        return code;
    fprintf(stderr, "fleetlease run: --require-isolation: exit %d (CMD's status was %d)\n",
            FL_EXIT_ISOLATION, code);
    return FL_EXIT_ISOLATION;
}

/* Acquire, start CMD, supervise it, release.  Returns the exit code. */
static int run_main(cli_ctx *ctx, const run_opts *o)
{
    char url[FL_URL_MAX];
    if (fl_resolve_url(ctx->db, url, sizeof url) != FL_OK)
        return cli_fail(ctx, FL_EINVAL, "store URL: cannot resolve (use --db or set "
                                        "FLEETLEASE_DB)");

    run_state r;
    memset(&r, 0, sizeof r);
    r.wake[0] = r.wake[1] = r.exec_fd = -1;
    atomic_init(&r.lost_code, 0);
    snprintf(r.provider, sizeof r.provider, "%s", o->provider);

    /* Set up the self-pipe before the grant exists: on_lost may fire as
     * soon as fl_grant_acquire returns. */
    if (pipe2(r.wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return cli_fail(ctx, FL_ESYS, "pipe: %s", strerror(errno));
    run_wake_fd = r.wake[1];

    fl_grant_opts go = {.url = url, .provider = o->provider, .holder = o->holder,
                        .purpose = o->purpose, .mode = o->mode, .ttl_ms = o->ttl_ms,
                        .wait_ms = o->wait_ms, .on_lost = run_on_lost, .arg = &r};
    fl_grant *g = NULL;
    fl_verdict conflict;
    char err[FL_MESSAGE_MAX];
    memset(&conflict, 0, sizeof conflict);
    int rc = fl_grant_acquire(&go, &g, &conflict, err, sizeof err);
    if (rc != FL_OK) {
        close(r.wake[0]);
        close(r.wake[1]);
        run_wake_fd = -1;
        if (rc == FL_ECONFLICT)
            return cli_fail(ctx, rc, "%s not granted%s: %s; not running %s", o->provider,
                            o->wait_ms > 0 ? " within --wait" : "", conflict.message,
                            o->cmd[0]);
        return cli_fail(ctx, rc, "%s", err);
    }

    fl_lease lease;
    fl_grant_lease(g, &lease);
    const fl_lease *l = &lease;
    char vprov[32 + FL_PROVIDER_MAX], vtok[32 + FL_TOKEN_LEN], vfence[48], until[40];
    snprintf(vprov, sizeof vprov, "FLEETLEASE_PROVIDER=%.128s", l->provider);
    snprintf(vtok, sizeof vtok, "FLEETLEASE_TOKEN=%.32s", l->token);
    snprintf(vfence, sizeof vfence, "FLEETLEASE_FENCE=%" PRId64, l->fence);
    if (fl_format_time(l->expires_at_ms, until, sizeof until) != FL_OK)
        snprintf(until, sizeof until, "?");
    fprintf(stderr, "fleetlease run: granted %s (%s, fence %" PRId64 ") until %s\n",
            l->provider, fl_mode_name(l->mode), l->fence, until);
    fflush(stderr);

    char vdb[16 + FL_URL_MAX];
    snprintf(vdb, sizeof vdb, "FLEETLEASE_DB=%s", url);
    char *vars[RUN_VARS] = {vprov, vtok, vfence, vdb};
    char **env = run_env(vars);
    int exec_pipe[2] = {-1, -1};
    if (!env || pipe2(exec_pipe, O_CLOEXEC) != 0) {
        int e = env ? errno : ENOMEM;
        free(env);
        fl_grant_release(g);
        close(r.wake[0]);
        close(r.wake[1]);
        run_wake_fd = -1;
        return cli_fail(ctx, FL_ESYS, "cannot start %s: %s", o->cmd[0], strerror(e));
    }

    /* Orphans of the job come to us, so they cannot outlive the lease. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        fprintf(stderr, "fleetlease run: cannot become a child subreaper (%s): "
                        "daemonized processes of the job may escape\n",
                strerror(errno));

    /* Handlers before fork, with the signals blocked across it so the
     * child never runs them (they would write into our self-pipe). */
    sigset_t handled, saved, unblocked;
    run_handled_set(&handled);
    sigemptyset(&unblocked);
    run_install_signals();
    sigprocmask(SIG_BLOCK, &handled, &saved);
    r.self = getpid();
    pid_t pid = fork();
    if (pid == 0)
        run_child(o->cmd, env, exec_pipe[1], r.self, &unblocked);
    int fork_errno = errno;
    if (pid > 0)
        setpgid(pid, pid);  /* fails harmlessly once the child has exec'd */
    sigprocmask(SIG_SETMASK, &saved, NULL);
    close(exec_pipe[1]);
    free(env);

    if (pid < 0) {
        close(exec_pipe[0]);
        fl_grant_release(g);
        close(r.wake[0]);
        close(r.wake[1]);
        run_wake_fd = -1;
        return cli_fail(ctx, FL_ESYS, "fork: %s", strerror(fork_errno));
    }
    r.child = pid;
    r.exec_fd = exec_pipe[0];

    int code = run_supervise(&r, g, o);
    /* A lost lease has nothing to prove (76 says more), and the store
     * that lost it may still be blocked: no report then. */
    if (o->mode == FL_EXCLUSIVE && code != FL_EXIT_LOST)
        code = run_isolation(url, &lease, o, code);

    if (r.exec_fd >= 0)
        close(r.exec_fd);
    run_wake_fd = -1;
    close(r.wake[0]);
    close(r.wake[1]);
    return code;
}

int cmd_run(cli_ctx *ctx, int argc, char **argv)
{
    run_opts o = {.mode = FL_EXCLUSIVE, .ttl_ms = 30000, .wait_ms = 0};
    char hbuf[FL_TEXT_MAX + 1];
    int code = run_parse(ctx, argc, argv, &o, hbuf, sizeof hbuf);
    if (code != CLI_CONTINUE)
        return code;
    code = run_main(ctx, &o);
    free(o.cmd);
    return code;
}
