/*
 * tests/conformance/support.c -- helpers shared by the store-parameterized
 * tests.  See support.h.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *ts_url(void)
{
    const char *url = getenv("FL_TEST_DB");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "FL_TEST_DB is not set: no store to test, skipping\n");
        exit(TS_SKIP);
    }
    return url;
}

fl_store *ts_open(void)
{
    fl_store *st = NULL;
    const char *url = ts_url();
    int rc = fl_open(url, &st);
    if (rc != FL_OK) {
        fprintf(stderr, "cannot open store $FL_TEST_DB: %s: %s\n", fl_strerror(rc),
                st != NULL ? fl_errmsg(st) : "(no handle)");
        fl_close(st);
        exit(1);
    }
    return st;
}

void ts_provider(char *buf, size_t len, const char *tag)
{
    /* Per-process counter and start time: true process state. */
    static unsigned counter;
    static long start;
    if (start == 0)
        start = (long)time(NULL);
    snprintf(buf, len, "%s-%ld-%ld-%u", tag, (long)getpid(), start, ++counter);
}

int64_t ts_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t ts_store_now(fl_store *st)
{
    int64_t now = 0;
    int rc = fl_store_now(st, &now);
    if (rc != FL_OK) {
        fprintf(stderr, "fl_store_now: %s: %s\n", fl_strerror(rc), fl_errmsg(st));
        exit(1);
    }
    return now;
}

void ts_sleep_until_store(fl_store *st, int64_t at_ms, int64_t slack_ms)
{
    /* The store's clock and ours tick at the same rate; sleep the difference
     * and re-read, so a store whose clock differs from ours is still judged
     * on its own clock. */
    for (int i = 0; i < 100; i++) {
        int64_t now = ts_store_now(st);
        if (now > at_ms + slack_ms)
            return;
        ts_sleep_ms(at_ms + slack_ms - now + 1);
    }
}

pid_t ts_fork(ts_child_fn fn, void *arg, int *rfd)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL); /* else buffered output would be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        int rc = fn(arg, fds[1]);
        close(fds[1]);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    close(fds[1]);
    if (rfd != NULL)
        *rfd = fds[0];
    else
        close(fds[0]);
    return pid;
}

pid_t ts_spawn_self(char *const argv[], const char *const env_kv[], int *rfd)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(126);
        close(fds[1]);
        for (size_t i = 0; env_kv != NULL && env_kv[i] != NULL; i++) {
            char kv[512];
            snprintf(kv, sizeof kv, "%s", env_kv[i]);
            char *eq = strchr(kv, '=');
            if (eq == NULL)
                _exit(126);
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

int ts_wait(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int ts_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int ts_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

size_t ts_read_text(int fd, char *buf, size_t cap)
{
    size_t used = 0;
    for (;;) {
        char chunk[512];
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        /* Keep draining past cap so the writer never blocks on a full pipe. */
        size_t take = (size_t)r;
        if (used + take > cap - 1)
            take = cap - 1 - used;
        memcpy(buf + used, chunk, take);
        used += take;
    }
    buf[used] = '\0';
    return used;
}

fl_event *ts_history(fl_store *st, const char *provider, size_t *n)
{
    fl_event *ev = NULL;
    int rc = fl_history(st, provider, 10000, &ev, n);
    if (rc != FL_OK) {
        fprintf(stderr, "fl_history(%s): %s: %s\n", provider, fl_strerror(rc), fl_errmsg(st));
        exit(1);
    }
    for (size_t i = 0, j = *n; i + 1 < j; i++, j--) {
        fl_event tmp = ev[i];
        ev[i] = ev[j - 1];
        ev[j - 1] = tmp;
    }
    return ev;
}
