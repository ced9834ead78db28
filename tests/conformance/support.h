/*
 * tests/conformance/support.h -- what the store-parameterized tests share
 * (the conformance suite and the stress races).  Public API only: these
 * programs see the library exactly as a user's program does.
 *
 * The store under test is the URL in $FL_TEST_DB.  When it is unset the
 * program exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), so a
 * store that is not available is never reported as passed.
 */
#ifndef FL_TEST_SUPPORT_H
#define FL_TEST_SUPPORT_H

#include "fleetlease.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TS_SKIP 77

/* $FL_TEST_DB; exits TS_SKIP (with a note on stderr) when unset or empty. */
const char *ts_url(void);

/* Open $FL_TEST_DB; on failure print why and exit 1 (nothing can be tested). */
fl_store *ts_open(void);

/*
 * A provider id unique per call and per run: "<tag>-<pid>-<start sec>-<n>".
 * The start time makes ids from a later run with a reused pid differ, so one
 * database can be reused across runs without old rows interfering.
 */
void ts_provider(char *buf, size_t len, const char *tag);

/* CLOCK_MONOTONIC in ms, and a sleep that survives EINTR. */
int64_t ts_mono_ms(void);
void ts_sleep_ms(int64_t ms);

/* The store's clock; exits 1 if the store cannot say (the tests need it). */
int64_t ts_store_now(fl_store *st);

/* Sleep until the store's clock has passed at_ms (+ slack_ms), so that
 * "advance past the expiry" is judged on the clock that decides. */
void ts_sleep_until_store(fl_store *st, int64_t at_ms, int64_t slack_ms);

/*
 * Run fn in a forked child that opens nothing of the parent's: fn gets the
 * write end of a pipe (the parent gets the read end in *rfd, may be NULL)
 * and its return value becomes the exit status.  The child leaves with
 * _exit, so it runs no atexit handlers of the parent (cmocka, sanitizers).
 */
typedef int (*ts_child_fn)(void *arg, int wfd);
pid_t ts_fork(ts_child_fn fn, void *arg, int *rfd);

/*
 * Start this program again (/proc/self/exe) with argv, with env_kv
 * ("NAME=VALUE" strings, NULL-terminated, may be NULL) added to its
 * environment and its stdout on a pipe whose read end goes to *rfd.  A fresh
 * exec inherits no library state of the parent, which matters for settings
 * read once per process (debug fault points, clock skew).
 */
pid_t ts_spawn_self(char *const argv[], const char *const env_kv[], int *rfd);

/* Wait for pid: its exit code, 128+N if killed by signal N, -1 on error. */
int ts_wait(pid_t pid);

/* Write/read exactly len bytes (EINTR-safe).  0 on success, -1 on short/err. */
int ts_write_all(int fd, const void *buf, size_t len);
int ts_read_all(int fd, void *buf, size_t len);

/* Read everything until EOF into buf (NUL-terminated, truncated to cap-1). */
size_t ts_read_text(int fd, char *buf, size_t cap);

/*
 * The provider's history, oldest first (fl_history returns newest first).
 * Exits 1 on error.  Free with fl_free.
 */
fl_event *ts_history(fl_store *st, const char *provider, size_t *n);

#endif
