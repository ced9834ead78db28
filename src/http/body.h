/*
 * src/http/body.h -- the JSON request bodies of the API and the caller's
 * identity, parsed and validated apart from evhttp.
 *
 * Why a file of its own: these are the parsers of outside input on the
 * HTTP surface, and a parser a fuzzer cannot reach alone is a parser that
 * is not fuzzed (tests/fuzz/fuzz_body.c links this file and nothing of the
 * daemon).  The handlers in api.c turn a non-zero return into the error
 * answer: status 400 is "invalid", 403 "forbidden", and err is the message.
 *
 * All functions are pure (no I/O, no globals) and thread-safe.  err is
 * always NUL-terminated within errlen when errlen > 0.
 */
#ifndef FL_SRV_BODY_H
#define FL_SRV_BODY_H

#include "fleetlease.h"

#include <stddef.h>
#include <stdint.h>

/* POST /v1/leases, validated: every field within the library's limits. */
typedef struct srv_acquire_body {
    char provider[FL_PROVIDER_MAX + 1];
    char holder[FL_TEXT_MAX + 1];
    char purpose[FL_TEXT_MAX + 1];
    fl_mode mode;      /* default FL_EXCLUSIVE */
    int64_t ttl_ms;    /* default 30 s */
    int64_t wait_ms;   /* default 0: answer at once */
} srv_acquire_body;

/* Parse an acquire body (data need not be NUL-terminated; len 0 is a
 * missing body).  who: the authenticated writer's name, or NULL when the
 * server runs without --tokens.  Returns 0 with *out filled, or the status
 * (400, 403) with err set; *out is then unspecified. */
int srv_parse_acquire(const char *data, size_t len, const char *who, srv_acquire_body *out,
                      char *err, size_t errlen);

/* The body of heartbeat and release: nothing, or an empty object.  A field
 * there would be ignored, which is worse than refused.  0 or 400. */
int srv_parse_empty(const char *data, size_t len, char *err, size_t errlen);

/* The caller's name for `field` ("holder" or "writer"): with --tokens (who
 * set) the token's name, and any other name given is refused with 403 (a
 * token must not let one writer pass for another, least of all for the
 * exclusive holder, whom fl_check allows); without, the name given,
 * validated, or "" when absent and not required.  0 or the status. */
int srv_identity(const char *who, const char *field, const char *given, int required,
                 char *out, size_t outlen, char *err, size_t errlen);

#endif
