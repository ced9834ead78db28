/*
 * fleetlease list [PROVIDER]
 *
 * Live leases (active and pending), never their tokens.  "expires in" is
 * counted on the store's clock, read once for the whole table.
 */
#include "commands.h"

#include <string.h>

const char cmd_list_usage[] =
    "usage: fleetlease list [PROVIDER]\n"
    "\n"
    "Show the live leases (active and pending) of every provider, or of\n"
    "PROVIDER, ordered by provider then acquire time.  Tokens are never shown.\n"
    "With --json: an array of lease objects, each with its provider's state\n"
    "(provider_state: shared, draining or exclusive).\n"
    "\n"
    "Options:\n"
    "  --db URL, --json, -h/--help  as for fleetlease\n"
    "\n"
    "Exit: 0; 64 bad usage; 69 store unreachable; 70 store error.\n"
    "\n"
    "Example:\n"
    "  fleetlease list gpu-01\n";

/* Display columns of a UTF-8 string, counted as code points: close enough
 * to keep the table aligned for the text people put in holder/purpose. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void cell(const char *s, size_t w, int last)
{
    fputs(s, stdout);
    if (last) {
        fputc('\n', stdout);
        return;
    }
    for (size_t i = width(s); i < w + 2; i++)
        fputc(' ', stdout);
}

enum { NCOL = 7 };

static void row_cells(const fl_lease *l, int64_t now_ms, char fence[32], char left[32],
                      const char *out[NCOL])
{
    snprintf(fence, 32, "%lld", (long long)l->fence);
    cli_format_left(l->expires_at_ms - now_ms, left, 32);
    out[0] = l->provider;
    out[1] = cli_lease_state_name(l->state);
    out[2] = fl_mode_name(l->mode);
    out[3] = l->holder;
    out[4] = l->purpose;
    out[5] = fence;
    out[6] = left;
}

static void print_table(const fl_lease *ls, size_t n, int64_t now_ms)
{
    static const char *const head[NCOL] = {"PROVIDER", "STATE", "MODE", "HOLDER",
                                           "PURPOSE", "FENCE", "EXPIRES IN"};
    size_t w[NCOL];
    const char *c[NCOL];
    char fence[32], left[32];
    for (int k = 0; k < NCOL; k++)
        w[k] = width(head[k]);
    for (size_t i = 0; i < n; i++) {
        row_cells(&ls[i], now_ms, fence, left, c);
        for (int k = 0; k < NCOL; k++)
            if (width(c[k]) > w[k])
                w[k] = width(c[k]);
    }
    for (int k = 0; k < NCOL; k++)
        cell(head[k], w[k], k == NCOL - 1);
    for (size_t i = 0; i < n; i++) {
        row_cells(&ls[i], now_ms, fence, left, c);
        for (int k = 0; k < NCOL; k++)
            cell(c[k], w[k], k == NCOL - 1);
    }
}

int cmd_list(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(ctx, argc, argv, "", longopts, NULL, NULL, pos, 1, &npos);
    if (rc != CLI_CONTINUE)
        return rc;
    char err[FL_MESSAGE_MAX];
    const char *provider = npos ? pos[0] : NULL;
    if (provider && fl_validate_provider(provider, err, sizeof err) != FL_OK)
        return cli_bad_value(ctx, err);

    fl_store *st = NULL;
    rc = cli_open(ctx, &st);
    if (rc != 0)
        return rc;
    fl_lease *ls = NULL;
    size_t n = 0;
    int64_t now_ms = 0;
    int code = fl_list(st, provider, &ls, &n);
    if (code == FL_OK && !ctx->json)
        code = fl_store_now(st, &now_ms);
    if (code != FL_OK) {
        rc = cli_store_fail(ctx, st, code, "list failed");
    } else if (ctx->json) {
        cli_print_json(cli_leases_json(ls, n));
    } else if (n == 0) {
        printf(provider ? "no live leases on %s\n" : "no live leases\n", provider);
    } else {
        print_table(ls, n, now_ms);
    }
    fl_free(ls);
    fl_close(st);
    return rc;
}
