/*
 * src/cli/quote.c -- cli_quote (commands.h): hostile input made safe to echo
 * in an error message.  A file of its own because the HTTP body parsers
 * (src/http/body.c) use it too, and their fuzz target links it without the
 * rest of the command.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (2-4; RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    for (size_t k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* Bytes a terminal could act on are escaped as \xNN: C0 controls, DEL, the
 * C1 controls (U+0080-U+009F, which some terminals obey, CSI among them),
 * and bytes that are not well-formed UTF-8; the backslash too, so that an
 * escape is never ambiguous.  Well-formed text passes as it is. */
const char *cli_quote(char *buf, size_t len, const char *s, size_t max)
{
    size_t o = 0, i = 0;
    if (len == 0)
        return "";
    buf[0] = '\0';
    if (!s)
        return buf;
    /* Reserve room for the longest escape (a 4-byte sequence is copied as
     * it is; an escape is 4 bytes per byte) plus "..." and the NUL. */
    while (s[i] && i < max && o + 12 < len) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t n = u[0] < 0x80 ? 1 : utf8_len(u);
        int c1 = n == 2 && u[0] == 0xc2 && u[1] <= 0x9f;
        if (n == 1 && u[0] >= 0x20 && u[0] != 0x7f && u[0] != '\\') {
            buf[o++] = (char)u[0];
            buf[o] = '\0';
            i++;
        } else if (n > 1 && !c1 && i + n <= max) {
            memcpy(buf + o, u, n);
            o += n;
            buf[o] = '\0';
            i += n;
        } else {
            size_t k = c1 ? 2 : 1;
            for (size_t j = 0; j < k; j++)
                o += (size_t)snprintf(buf + o, len - o, "\\x%02x", u[j]);
            i += k;
        }
    }
    if (s[i])
        snprintf(buf + o, len - o, "...");
    return buf;
}
