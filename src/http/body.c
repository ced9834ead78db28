/*
 * src/http/body.c -- request bodies and caller identity (see body.h).
 *
 * Limits: the daemon bounds the body (--max-body) before it gets here;
 * jansson refuses invalid UTF-8, \u0000 and nesting deeper than
 * JSON_PARSER_MAX_DEPTH (2048).  Each accepted string is then held to the
 * library's own limits by its validators, so nothing is truncated: a copy
 * into a fixed buffer below happens only after the validator accepted the
 * length.
 */
#include "body.h"

#include "../cli/commands.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(int status, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int status, char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "?";
    }
}

/* A fl_code from a validator or parser becomes a 400 with its message. */
static int lib(int rc, const char *msg, char *err, size_t errlen)
{
    return rc == FL_OK ? 0 : fail(400, err, errlen, "%s", msg);
}

int srv_identity(const char *who, const char *field, const char *given, int required,
                 char *out, size_t outlen, char *err, size_t errlen)
{
    char m[FL_MESSAGE_MAX], q[160];
    if (who) {
        if (given && strcmp(given, who) != 0)
            return fail(403, err, errlen,
                        "%s: must be the name of your token, \"%s\", or left out; got \"%s\"",
                        field, who, cli_quote(q, sizeof q, given, 64));
        snprintf(out, outlen, "%s", who);
        return 0;
    }
    if (!given) {
        if (required)
            return fail(400, err, errlen,
                        "%s: missing (required when the server runs without --tokens)", field);
        out[0] = '\0';
        return 0;
    }
    int st = lib(fl_validate_text(field, given, m, sizeof m), m, err, errlen);
    if (!st)
        snprintf(out, outlen, "%s", given);
    return st;
}

int srv_parse_empty(const char *data, size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return 0;
    json_error_t e;
    json_t *root = data ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &e) : NULL;
    int ok = root && json_is_object(root) && json_object_size(root) == 0;
    json_decref(root);
    return ok ? 0 : fail(400, err, errlen, "body: this request takes no fields (send no body, or {})");
}

static const char *const acquire_fields[] = {"provider", "holder", "purpose", "mode",
                                             "ttl",      "wait",   NULL};
enum { F_PROVIDER, F_HOLDER, F_PURPOSE, F_MODE, F_TTL, F_WAIT, F_COUNT };

/* The fields of the object, each a string; vals[] point into root. */
static int acquire_fields_of(json_t *root, const char *vals[F_COUNT], char *err, size_t errlen)
{
    char q[160];
    const char *key;
    json_t *val;
    if (!json_is_object(root))
        return fail(400, err, errlen, "body: must be a JSON object, got %s",
                    json_type_name(root));
    json_object_foreach(root, key, val)
    {
        int idx = -1;
        for (int i = 0; acquire_fields[i]; i++)
            if (strcmp(acquire_fields[i], key) == 0)
                idx = i;
        if (idx < 0)
            return fail(400, err, errlen,
                        "body: unknown field \"%s\" (allowed: provider, holder, purpose, mode, "
                        "ttl, wait)",
                        cli_quote(q, sizeof q, key, 64));
        if (!json_is_string(val))
            return fail(400, err, errlen, "%s: must be a string%s, got %s", key,
                        idx >= F_TTL ? " (a duration such as \"30s\")" : "",
                        json_type_name(val));
        /* jansson refuses \u0000, so a string is never cut at a NUL here. */
        vals[idx] = json_string_value(val);
    }
    if (!vals[F_PROVIDER])
        return fail(400, err, errlen, "provider: missing");
    if (!vals[F_PURPOSE])
        return fail(400, err, errlen,
                    "purpose: missing; say why you need the host (refused writers see it)");
    return 0;
}

int srv_parse_acquire(const char *data, size_t len, const char *who, srv_acquire_body *out,
                      char *err, size_t errlen)
{
    char m[FL_MESSAGE_MAX];
    if (len == 0 || !data)
        return fail(400, err, errlen,
                    "body: missing; send a JSON object with provider and purpose");
    json_error_t je;
    /* No JSON_DECODE_ANY: the top level must be an object or an array. */
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        const char *what = "invalid JSON";
        switch (json_error_code(&je)) {
        case json_error_invalid_utf8: what = "not valid UTF-8"; break;
        case json_error_stack_overflow: what = "JSON nested too deep (depth limit 2048)"; break;
        case json_error_duplicate_key: what = "invalid JSON (a field given twice)"; break;
        case json_error_null_character: what = "invalid JSON (\\u0000 is not allowed)"; break;
        default: break;
        }
        return fail(400, err, errlen, "body: %s at line %d column %d: %s", what, je.line,
                    je.column, je.text);
    }
    const char *vals[F_COUNT] = {NULL};
    int st = acquire_fields_of(root, vals, err, errlen);
    if (!st)
        st = lib(fl_validate_provider(vals[F_PROVIDER], m, sizeof m), m, err, errlen);
    if (!st)
        st = lib(fl_validate_text("purpose", vals[F_PURPOSE], m, sizeof m), m, err, errlen);
    if (!st) {
        snprintf(out->provider, sizeof out->provider, "%s", vals[F_PROVIDER]);
        snprintf(out->purpose, sizeof out->purpose, "%s", vals[F_PURPOSE]);
        st = srv_identity(who, "holder", vals[F_HOLDER], 1, out->holder, sizeof out->holder,
                          err, errlen);
    }
    out->mode = FL_EXCLUSIVE;
    out->ttl_ms = 30000;
    out->wait_ms = 0;
    if (!st && vals[F_MODE])
        st = lib(fl_parse_mode(vals[F_MODE], &out->mode, m, sizeof m), m, err, errlen);
    if (!st && vals[F_TTL])
        st = lib(fl_parse_ttl("ttl", vals[F_TTL], &out->ttl_ms, m, sizeof m), m, err, errlen);
    if (!st && vals[F_WAIT])
        st = lib(fl_parse_wait("wait", vals[F_WAIT], &out->wait_ms, m, sizeof m), m, err,
                 errlen);
    json_decref(root);
    return st;
}
