/*
 * src/cli/quote.c -- cli_quote (commands.h): hostile input made safe to echo
 * in an error message.  A file of its own because the HTTP body parsers
 * (src/http/body.c) use it too, and their fuzz target links it without the
 * rest of the command.
 */
#include "commands.h"

#include <stdio.h>

const char *cli_quote(char *buf, size_t len, const char *s, size_t max)
{
    size_t o = 0, i = 0;
    if (len == 0)
        return "";
    buf[0] = '\0';
    if (!s)
        return buf;
    /* Reserve room for the longest escape plus "..." and the NUL. */
    for (; s[i] && i < max && o + 8 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
            buf[o] = '\0';
        }
    }
    if (s[i])
        snprintf(buf + o, len - o, "...");
    return buf;
}
