/*
 * src/http/auth.c -- bearer tokens for `fleetlease serve --tokens FILE`.
 *
 * The file holds one `name sha256hex` per line (blank lines and lines
 * starting with '#' are skipped): the server never sees a token at rest,
 * only its SHA-256.  A presented token is hashed and compared with EVERY
 * entry with CRYPTO_memcmp, and the match is selected with a mask rather
 * than a branch, so the time taken does not depend on which entry (if
 * any) matched or on how many leading bytes agreed.  The hash of a wrong
 * token is as unpredictable as any other, so the comparison of hashes
 * leaks nothing useful about the tokens themselves.
 *
 * The name is the writer's identity: the default holder and writer of its
 * requests.  It must be valid as both (fl_validate_text).
 */
#include "serve.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AUTH_FILE_MAX (1024 * 1024)   /* bytes: far beyond any real fleet */
#define AUTH_LINE_MAX 1024
#define AUTH_TOKEN_MAX 512            /* bytes of a presented token */

typedef struct auth_entry {
    char name[FL_TEXT_MAX + 1];
    unsigned char hash[32];
} auth_entry;

struct srv_auth {
    auth_entry *e;
    size_t n;
};

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int olen = 0;
    if (EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) != 1 || olen != 32)
        return -1;
    return 0;
}

/* One line: "name hash".  0, or -1 with err set. */
static int parse_line(char *line, size_t lineno, const char *path, auth_entry *e, char *err,
                      size_t errlen)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *hex = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    char verr[FL_MESSAGE_MAX];
    if (!name || !hex || extra) {
        snprintf(err, errlen, "tokens: %s line %zu: must be `name sha256hex` (2 fields), got %d",
                 path, lineno, !name ? 0 : !hex ? 1 : 3);
        return -1;
    }
    if (fl_validate_text("name", name, verr, sizeof verr) != FL_OK) {
        snprintf(err, errlen, "tokens: %s line %zu: %s", path, lineno, verr);
        return -1;
    }
    size_t hl = strlen(hex);
    if (hl != 64) {
        snprintf(err, errlen,
                 "tokens: %s line %zu: hash must be 64 hex digits (SHA-256 of the token), got %zu "
                 "characters",
                 path, lineno, hl);
        return -1;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errlen, "tokens: %s line %zu: hash must be 64 hex digits, got a '%c'",
                     path, lineno, hi < 0 ? hex[2 * i] : hex[2 * i + 1]);
            return -1;
        }
        e->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    return 0;
}

int srv_auth_load(const char *path, srv_auth **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "tokens: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > AUTH_FILE_MAX) {
        snprintf(err, errlen, "tokens: %s must be a regular file of at most %d bytes", path,
                 AUTH_FILE_MAX);
        fclose(f);
        return -1;
    }
    srv_auth *a = calloc(1, sizeof *a);
    size_t cap = 0;
    char line[AUTH_LINE_MAX + 2];
    size_t lineno = 0;
    int rc = a ? 0 : -1;
    if (!a)
        snprintf(err, errlen, "tokens: out of memory");
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "tokens: %s line %zu: longer than %d bytes", path, lineno,
                     AUTH_LINE_MAX);
            rc = -1;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (a->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            auth_entry *ne = realloc(a->e, ncap * sizeof *ne);
            if (!ne) {
                snprintf(err, errlen, "tokens: out of memory");
                rc = -1;
                break;
            }
            a->e = ne;
            cap = ncap;
        }
        if (parse_line(p, lineno, path, &a->e[a->n], err, errlen) != 0) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < a->n; i++) {
            if (memcmp(a->e[i].hash, a->e[a->n].hash, 32) == 0) {
                snprintf(err, errlen,
                         "tokens: %s line %zu: the same hash is already on an earlier line "
                         "(each token must name one writer)",
                         path, lineno);
                rc = -1;
                break;
            }
        }
        if (rc == 0)
            a->n++;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "tokens: error reading %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    if (rc == 0 && a->n == 0) {
        snprintf(err, errlen, "tokens: %s holds no tokens (lines of `name sha256hex`)", path);
        rc = -1;
    }
    if (rc != 0) {
        srv_auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void srv_auth_free(srv_auth *a)
{
    if (!a)
        return;
    if (a->e)
        OPENSSL_cleanse(a->e, a->n * sizeof *a->e);
    free(a->e);
    free(a);
}

size_t srv_auth_count(const srv_auth *a)
{
    return a ? a->n : 0;
}

const char *srv_auth_check(const srv_auth *a, const char *authorization)
{
    if (!a || !authorization)
        return NULL;
    /* "Bearer" is case-insensitive (RFC 7235), then one or more spaces. */
    if (strncasecmp(authorization, "Bearer", 6) != 0 || authorization[6] != ' ')
        return NULL;
    const char *tok = authorization + 6;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ')
        len--;
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return NULL;
    unsigned char h[32];
    if (sha256(tok, len, h) != 0)
        return NULL;
    size_t found = (size_t)-1;
    for (size_t i = 0; i < a->n; i++) {
        size_t eq = (size_t)(CRYPTO_memcmp(h, a->e[i].hash, 32) == 0);
        size_t mask = (size_t)0 - eq;
        found = (found & ~mask) | (i & mask);
    }
    OPENSSL_cleanse(h, sizeof h);
    return found == (size_t)-1 ? NULL : a->e[found].name;
}
