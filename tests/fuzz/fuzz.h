/*
 * tests/fuzz/fuzz.h -- what the libFuzzer targets share.  Each target
 * defines LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer it is
 * a fuzzer, built with replay.c (any compiler) it replays the seed corpus
 * as a regression test.  A property the library promises and the input
 * breaks ends in FUZZ_ASSERT, which aborts so that both runners report it.
 */
#ifndef FL_FUZZ_H
#define FL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                           \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* The input as a NUL-terminated string (cut at its first NUL), at most cap-1
 * bytes; returns the length. */
static inline size_t fuzz_cstr(const uint8_t *data, size_t size, char *buf, size_t cap)
{
    size_t n = size < cap - 1 ? size : cap - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
    return strlen(buf);
}

/* An err buffer must always come back NUL-terminated within its length. */
static inline void fuzz_check_msg(const char *err, size_t errlen)
{
    if (errlen > 0)
        FUZZ_ASSERT(memchr(err, '\0', errlen) != NULL);
}

#endif
