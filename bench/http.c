/*
 * bench/http.c -- one kept-alive HTTP/1.1 connection per client, for the
 * etcd JSON gateway and the fleetlease HTTP API.  libcurl reuses the
 * connection of an easy handle across requests, so after the warm-up no
 * request pays a TCP handshake: what is timed is one request and its
 * answer on an open connection.
 */
#include "bench.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct bn_http {
    CURL *curl;
    struct curl_slist *headers;
    char base[256];
    char *buf;
    size_t len, cap;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    bn_http *h = arg;
    size_t n = size * nmemb;
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        while (cap < h->len + n + 1)
            cap *= 2;
        char *b = realloc(h->buf, cap);
        if (!b)
            return 0; /* libcurl reports a write error */
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, ptr, n);
    h->len += n;
    h->buf[h->len] = '\0';
    return n;
}

bn_http *bn_http_new(const char *base)
{
    bn_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (snprintf(h->base, sizeof h->base, "%s", base) >= (int)sizeof h->base ||
        !(h->curl = curl_easy_init())) {
        free(h);
        return NULL;
    }
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    /* Loopback only: never a proxy from the environment. */
    curl_easy_setopt(h->curl, CURLOPT_NOPROXY, "*");
    return h;
}

void bn_http_free(bn_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->buf);
    free(h);
}

int bn_http_do(bn_http *h, const char *method, const char *path, const char *body,
               long *status, const char **resp, char *err, size_t errlen)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", h->base, path);
    h->len = 0;
    if (h->buf)
        h->buf[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST,
                         strcmp(method, "POST") == 0 ? NULL : method);
    }
    CURLcode rc = curl_easy_perform(h->curl);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
    *resp = h->buf ? h->buf : "";
    return 0;
}

void bn_token(char out[33])
{
    unsigned char raw[16] = {0};
    static const char hex[] = "0123456789abcdef";
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        abort(); /* the kernel's CSPRNG does not fail after boot */
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}
