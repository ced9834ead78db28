/*
 * src/http/status.c -- GET / : the status page.
 *
 * One self-contained page (inline CSS and JS, no external assets, so it
 * works on an isolated network and cannot be changed by a third party).
 * It is public even with --tokens, so it carries no data at all: the
 * script reads /healthz, /v1/leases and /v1/history every 2 s with the
 * bearer token the operator typed (kept in sessionStorage: per tab, gone
 * when the tab closes, never sent to any other origin), and shows a
 * "needs a token" state on 401.
 *
 * Every value from the API reaches the DOM through textContent or
 * dataset, never as markup: holder and purpose are arbitrary UTF-8 from
 * any writer.  The Content-Security-Policy backs that up: only the exact
 * inline script and style below may run (their SHA-256 hashes), fetch may
 * only reach this origin, and nothing may frame the page or submit a form.
 *
 * Times left count down against the store's clock, estimated from
 * /healthz's store_time_ms, because expiry is decided there (a browser's
 * clock may be minutes off).
 */
#include "serve.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const char page_head[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<title>fleetlease</title>\n"
    "<style>";

/* The exact bytes between <style> and </style>: hashed into the CSP. */
static const char page_style[] =
    ":root{color-scheme:light dark;--fg:#1d1f21;--bg:#fff;--mute:#6b7075;\n"
    "--line:#dde1e4;--head:#f4f6f7;--warn-bg:#fff4d6;--err:#c0262d;\n"
    "--free:#1b7f3b;--shared:#1f5fbf;--draining:#b36200;--exclusive:#c0262d}\n"
    "@media (prefers-color-scheme:dark){:root{--fg:#e3e5e7;--bg:#17191b;--mute:#9aa0a6;\n"
    "--line:#33383c;--head:#212427;--warn-bg:#3a3120;--err:#ff6b70;\n"
    "--free:#4cc27a;--shared:#6ea2ff;--draining:#f0a040;--exclusive:#ff6b70}}\n"
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;\n"
    "color:var(--fg);background:var(--bg)}\n"
    "header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5em 1.5em;\n"
    "padding:.8em 1.5em;border-bottom:1px solid var(--line)}\n"
    "h1{font-size:1.3em;margin:0}\n"
    "h2{font-size:1.05em;margin:1.4em 0 .5em}\n"
    "main,#auth{padding:0 1.5em}\n"
    "#conn{color:var(--mute)}\n"
    "#conn.err{color:var(--err);font-weight:600}\n"
    "#auth{margin:1em 0 0;padding:.8em 1.5em;background:var(--warn-bg);\n"
    "border-bottom:1px solid var(--line)}\n"
    "#auth p{margin:0 0 .5em}\n"
    "#auth input{font:inherit;width:22em;max-width:70vw}\n"
    "#auth button{font:inherit}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.3em .7em;border-bottom:1px solid var(--line);\n"
    "vertical-align:top}\n"
    "th{background:var(--head);font-weight:600;white-space:nowrap}\n"
    "td.num,td.left{font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.purpose,td.detail{overflow-wrap:anywhere}\n"
    "tr.cont td.provider{color:var(--mute)}\n"
    ".badge{display:inline-block;padding:0 .5em;border-radius:.8em;color:#fff;\n"
    "font-size:.9em;font-weight:600}\n"
    ".st-free{background:var(--free)}.st-shared{background:var(--shared)}\n"
    ".st-draining{background:var(--draining)}.st-exclusive{background:var(--exclusive)}\n"
    ".lapsed,.ev-refused,.ev-expired{color:var(--err)}\n"
    ".ev-granted{color:var(--free)}\n"
    ".ev-pending{color:var(--draining)}\n"
    ".empty{color:var(--mute);font-style:italic}\n"
    "footer{color:var(--mute);padding:1.5em;font-size:.9em}\n"
    "code{font-size:.95em}\n";

static const char page_body[] =
    "</style>\n"
    "</head><body data-auth=\"none\" data-conn=\"loading\">\n"
    "<header><h1>fleetlease</h1><span id=\"conn\">loading&hellip;</span></header>\n"
    "<section id=\"auth\" hidden>\n"
    "<p id=\"auth-msg\"></p>\n"
    "<form id=\"auth-form\"><label>Bearer token\n"
    "<input id=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\"></label>\n"
    "<button type=\"submit\">Use token</button>\n"
    "<button type=\"button\" id=\"forget\" hidden>Forget token</button></form>\n"
    "</section>\n"
    "<main>\n"
    "<h2>Providers</h2>\n"
    "<table id=\"providers\"><thead><tr><th>Provider</th><th>State</th><th>Holder</th>\n"
    "<th>Purpose</th><th>Mode</th><th>Lease</th><th>Time left</th><th>Fence</th></tr></thead>\n"
    "<tbody id=\"prov-body\"></tbody></table>\n"
    "<p id=\"prov-empty\" class=\"empty\" hidden>No leases, and no provider in the history.</p>\n"
    "<h2>Recent history</h2>\n"
    "<table id=\"history\"><thead><tr><th>Time (UTC)</th><th>Event</th><th>Provider</th>\n"
    "<th>Holder</th><th>Purpose</th><th>Mode</th><th>Fence</th><th>Detail</th></tr></thead>\n"
    "<tbody id=\"hist-body\"></tbody></table>\n"
    "<p id=\"hist-empty\" class=\"empty\" hidden>No events yet.</p>\n"
    "</main>\n"
    "<footer>Refreshes every 2 s from <code>/v1/leases</code> and <code>/v1/history</code>\n"
    "(docs/api.md); times left follow the store&rsquo;s clock.\n"
    "<code>?provider=ID</code> shows one provider.</footer>\n"
    "<script>";

/* The exact bytes between <script> and </script>: hashed into the CSP.
 * The row markup (tr data-provider/data-state, td.holder, td.purpose) is
 * what tests/http/status_page.sh looks for. */
static const char page_script[] =
    "\"use strict\";\n"
    "(() => {\n"
    "  const KEY = \"fleetlease.token\";\n"
    "  const REFRESH_MS = 2000, TIMEOUT_MS = 5000, HISTORY_LIMIT = 50;\n"
    "  const STATES = [\"free\", \"shared\", \"draining\", \"exclusive\"];\n"
    "  const el = (id) => document.getElementById(id);\n"
    "  const filter = new URLSearchParams(location.search).get(\"provider\") || \"\";\n"
    "  /* The store's clock decides expiry, not this browser's: skew is the\n"
    "   * store clock minus the local one, estimated from /healthz. */\n"
    "  let skew = 0, timer = 0;\n"
    "\n"
    "  const getToken = () => {\n"
    "    try { return sessionStorage.getItem(KEY) || \"\"; } catch (e) { return \"\"; }\n"
    "  };\n"
    "  const setToken = (t) => {\n"
    "    try {\n"
    "      if (t) sessionStorage.setItem(KEY, t);\n"
    "      else sessionStorage.removeItem(KEY);\n"
    "    } catch (e) { /* storage disabled: the token lasts until reload */ }\n"
    "  };\n"
    "  /* A link may carry the token in the fragment (never sent to a server):\n"
    "   * keep it for this tab only and take it out of the address bar. */\n"
    "  const frag = /^#token=([^&]+)$/.exec(location.hash);\n"
    "  if (frag) {\n"
    "    try { setToken(decodeURIComponent(frag[1]).trim()); } catch (e) { }\n"
    "    history.replaceState(null, \"\", location.pathname + location.search);\n"
    "  }\n"
    "\n"
    "  const text = (tag, s, cls) => {\n"
    "    const e = document.createElement(tag);\n"
    "    e.textContent = s == null ? \"\" : String(s);\n"
    "    if (cls) e.className = cls;\n"
    "    return e;\n"
    "  };\n"
    "  const badge = (st) => {\n"
    "    const td = document.createElement(\"td\");\n"
    "    td.appendChild(text(\"span\", st, \"badge st-\" + st));\n"
    "    return td;\n"
    "  };\n"
    "  const left = (ms) => {\n"
    "    if (ms <= 0) return \"lapsed\";\n"
    "    let s = Math.floor(ms / 1000);\n"
    "    const h = Math.floor(s / 3600), mi = Math.floor((s % 3600) / 60);\n"
    "    s %= 60;\n"
    "    if (h) return h + \"h \" + String(mi).padStart(2, \"0\") + \"m\";\n"
    "    if (mi) return mi + \"m \" + String(s).padStart(2, \"0\") + \"s\";\n"
    "    return s + \"s\";\n"
    "  };\n"
    "  const tick = () => {\n"
    "    const now = Date.now() + skew;\n"
    "    for (const td of document.querySelectorAll(\"td.left[data-expires]\")) {\n"
    "      const ms = Number(td.dataset.expires) - now;\n"
    "      td.textContent = left(ms);\n"
    "      td.classList.toggle(\"lapsed\", ms <= 0);\n"
    "    }\n"
    "  };\n"
    "\n"
    "  const get = async (path) => {\n"
    "    const headers = { Accept: \"application/json\" }, t = getToken();\n"
    "    if (t) headers.Authorization = \"Bearer \" + t;\n"
    "    const ac = new AbortController(), to = setTimeout(() => ac.abort(), TIMEOUT_MS);\n"
    "    const t0 = Date.now();\n"
    "    try {\n"
    "      const r = await fetch(path, { headers, cache: \"no-store\", credentials: \"omit\",\n"
    "                                    signal: ac.signal });\n"
    "      const body = await r.json().catch(() => null);\n"
    "      return { status: r.status, body, mid: (t0 + Date.now()) / 2 };\n"
    "    } finally {\n"
    "      clearTimeout(to);\n"
    "    }\n"
    "  };\n"
    "\n"
    "  const setConn = (msg, bad) => {\n"
    "    el(\"conn\").textContent = msg;\n"
    "    el(\"conn\").classList.toggle(\"err\", !!bad);\n"
    "    document.body.dataset.conn = bad ? \"error\" : \"ok\";\n"
    "  };\n"
    "  const showAuth = (needed) => {\n"
    "    const t = getToken();\n"
    "    document.body.dataset.auth = needed ? \"needed\" : t ? \"token\" : \"none\";\n"
    "    el(\"auth\").hidden = !needed && !t;\n"
    "    el(\"forget\").hidden = !t;\n"
    "    el(\"auth-msg\").textContent = !needed ? \"Using the token kept in this tab.\"\n"
    "      : t ? \"The token was refused (401): this daemon needs one from its --tokens file.\"\n"
    "      : \"This daemon needs a token: its JSON API (/v1/leases, /v1/history) requires \" +\n"
    "        \"Authorization: Bearer. Enter a writer token; it is kept in this tab only \" +\n"
    "        \"(sessionStorage).\";\n"
    "  };\n"
    "  const clearTables = () => {\n"
    "    el(\"prov-body\").replaceChildren();\n"
    "    el(\"hist-body\").replaceChildren();\n"
    "    el(\"prov-empty\").hidden = true;\n"
    "    el(\"hist-empty\").hidden = true;\n"
    "  };\n"
    "\n"
    "  /* The provider's state as the daemon computed it (fl_pstate_of):\n"
    "   * every row of /v1/leases carries it; no live row is free. */\n"
    "  const pstate = (rows) => (rows.length ? rows[0].provider_state : \"free\");\n"
    "\n"
    "  const leaseCell = (l) =>\n"
    "    !l ? \"\" : l.state === \"pending\" ? \"pending (waiting to drain)\" : l.state;\n"
    "\n"
    "  const renderProviders = (leases, events) => {\n"
    "    const by = new Map();\n"
    "    for (const l of leases) {\n"
    "      if (!by.has(l.provider)) by.set(l.provider, []);\n"
    "      by.get(l.provider).push(l);\n"
    "    }\n"
    "    /* Providers seen in the recent history but without a live lease are free. */\n"
    "    for (const ev of events) if (!by.has(ev.provider)) by.set(ev.provider, []);\n"
    "    if (filter && !by.has(filter)) by.set(filter, []);\n"
    "    const rows = [];\n"
    "    for (const p of Array.from(by.keys()).sort()) {\n"
    "      const ls = by.get(p), st = pstate(ls);\n"
    "      (ls.length ? ls : [null]).forEach((l, i) => {\n"
    "        const tr = document.createElement(\"tr\");\n"
    "        tr.dataset.provider = p;\n"
    "        tr.dataset.state = st;\n"
    "        if (i) tr.className = \"cont\";\n"
    "        tr.appendChild(text(\"td\", p, \"provider\"));\n"
    "        tr.appendChild(i || !STATES.includes(st) ? text(\"td\", \"\") : badge(st));\n"
    "        tr.appendChild(text(\"td\", l ? l.holder : \"\\u2014\", \"holder\"));\n"
    "        tr.appendChild(text(\"td\", l ? l.purpose : \"\", \"purpose\"));\n"
    "        tr.appendChild(text(\"td\", l ? l.mode : \"\", \"mode\"));\n"
    "        tr.appendChild(text(\"td\", leaseCell(l), \"lease\"));\n"
    "        const td = text(\"td\", \"\", \"left\");\n"
    "        if (l && typeof l.expires_at_ms === \"number\") {\n"
    "          td.dataset.expires = String(l.expires_at_ms);\n"
    "          td.title = \"expires \" + l.expires_at;\n"
    "        }\n"
    "        tr.appendChild(td);\n"
    "        tr.appendChild(text(\"td\", l && l.fence ? l.fence : \"\", \"num fence\"));\n"
    "        rows.push(tr);\n"
    "      });\n"
    "    }\n"
    "    el(\"prov-body\").replaceChildren(...rows);\n"
    "    el(\"prov-empty\").hidden = rows.length > 0;\n"
    "    tick();\n"
    "  };\n"
    "\n"
    "  const renderHistory = (events) => {\n"
    "    const rows = events.map((ev) => {\n"
    "      const tr = document.createElement(\"tr\");\n"
    "      tr.dataset.provider = ev.provider;\n"
    "      tr.dataset.event = ev.event;\n"
    "      const at = typeof ev.at === \"string\" ? ev.at.replace(\"T\", \" \") : \"\";\n"
    "      const cls = /^[a-z]+$/.test(ev.event) ? \"event ev-\" + ev.event : \"event\";\n"
    "      tr.appendChild(text(\"td\", at, \"num at\"));\n"
    "      tr.appendChild(text(\"td\", ev.event, cls));\n"
    "      tr.appendChild(text(\"td\", ev.provider, \"provider\"));\n"
    "      tr.appendChild(text(\"td\", ev.holder, \"holder\"));\n"
    "      tr.appendChild(text(\"td\", ev.purpose, \"purpose\"));\n"
    "      tr.appendChild(text(\"td\", ev.mode, \"mode\"));\n"
    "      tr.appendChild(text(\"td\", ev.fence ? ev.fence : \"\", \"num fence\"));\n"
    "      tr.appendChild(text(\"td\", ev.detail, \"detail\"));\n"
    "      return tr;\n"
    "    });\n"
    "    el(\"hist-body\").replaceChildren(...rows);\n"
    "    el(\"hist-empty\").hidden = rows.length > 0;\n"
    "  };\n"
    "\n"
    "  const why = (r, what) => {\n"
    "    const msg = r.body && typeof r.body.message === \"string\" ? r.body.message : \"\";\n"
    "    return what + \": HTTP \" + r.status + (msg ? \" \\u2014 \" + msg : \"\");\n"
    "  };\n"
    "\n"
    "  const refresh = async () => {\n"
    "    clearTimeout(timer);\n"
    "    const q = filter ? \"provider=\" + encodeURIComponent(filter) : \"\";\n"
    "    try {\n"
    "      const [hz, ls, hs] = await Promise.all([\n"
    "        get(\"/healthz\"),\n"
    "        get(\"/v1/leases\" + (q ? \"?\" + q : \"\")),\n"
    "        get(\"/v1/history?limit=\" + HISTORY_LIMIT + (q ? \"&\" + q : \"\")),\n"
    "      ]);\n"
    "      if (hz.body && typeof hz.body.store_time_ms === \"number\")\n"
    "        skew = hz.body.store_time_ms - hz.mid;\n"
    "      if (ls.status === 401 || hs.status === 401) {\n"
    "        clearTables();\n"
    "        showAuth(true);\n"
    "        setConn(\"needs a token\", true);\n"
    "      } else if (ls.status !== 200 || !Array.isArray(ls.body)) {\n"
    "        showAuth(false);\n"
    "        setConn(why(ls, \"leases\"), true);\n"
    "      } else if (hs.status !== 200 || !Array.isArray(hs.body)) {\n"
    "        showAuth(false);\n"
    "        setConn(why(hs, \"history\"), true);\n"
    "      } else {\n"
    "        showAuth(false);\n"
    "        renderProviders(ls.body, hs.body);\n"
    "        renderHistory(hs.body);\n"
    "        const n = ls.body.length;\n"
    "        const kind = hz.body && hz.body.store ? hz.body.store + \" \" : \"\";\n"
    "        const parts = [\"updated \" + new Date().toLocaleTimeString(), kind + \"store\",\n"
    "                       n + \" live lease\" + (n === 1 ? \"\" : \"s\")];\n"
    "        if (filter) parts.push(\"provider \" + filter);\n"
    "        if (hz.status !== 200) parts.push(why(hz, \"health\"));\n"
    "        setConn(parts.join(\" \\u00b7 \"), hz.status !== 200);\n"
    "      }\n"
    "    } catch (e) {\n"
    "      const msg = e && e.message ? e.message : String(e);\n"
    "      setConn(\"cannot reach the daemon: \" + msg, true);\n"
    "    }\n"
    "    timer = setTimeout(refresh, REFRESH_MS);\n"
    "  };\n"
    "\n"
    "  el(\"auth-form\").addEventListener(\"submit\", (e) => {\n"
    "    e.preventDefault();\n"
    "    const t = el(\"token\").value.trim();\n"
    "    el(\"token\").value = \"\";\n"
    "    /* A header value must be printable ASCII; fetch() would throw. */\n"
    "    if (!/^[\\x21-\\x7e]{1,512}$/.test(t)) {\n"
    "      el(\"auth-msg\").textContent = \"token: must be 1-512 printable ASCII, no spaces\";\n"
    "      return;\n"
    "    }\n"
    "    setToken(t);\n"
    "    refresh();\n"
    "  });\n"
    "  el(\"forget\").addEventListener(\"click\", () => {\n"
    "    setToken(\"\");\n"
    "    refresh();\n"
    "  });\n"
    "  setInterval(tick, 500);\n"
    "  refresh();\n"
    "})();\n";

static const char page_tail[] = "</script>\n</body></html>\n";

/* 'sha256-<base64>' of text, for a CSP source list.  0 or -1. */
static int csp_hash(const char *text, size_t len, char *out, size_t outlen)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    unsigned char b64[48];   /* 4 * ceil(32 / 3) = 44, plus NUL */
    if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof md)
        return -1;
    EVP_EncodeBlock(b64, md, (int)sizeof md);
    int n = snprintf(out, outlen, "'sha256-%s'", (const char *)b64);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

void srv_status_page(srv *s, struct evhttp_request *req)
{
    /* Hashing ~11 KB per request costs tens of microseconds: cheaper than
     * keeping state for a page an operator loads once. */
    char sh[64], ch[64], csp[512];
    if (csp_hash(page_script, sizeof page_script - 1, sh, sizeof sh) != 0 ||
        csp_hash(page_style, sizeof page_style - 1, ch, sizeof ch) != 0) {
        srv_reply_error(s, req, 500, "internal", "status page: cannot compute the CSP hashes");
        return;
    }
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
             "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             sh, ch);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        srv_reply_error(s, req, 500, "nomem", "out of memory");
        return;
    }
    int rc = 0;
    rc |= evbuffer_add_reference(b, page_head, sizeof page_head - 1, NULL, NULL);
    rc |= evbuffer_add_reference(b, page_style, sizeof page_style - 1, NULL, NULL);
    rc |= evbuffer_add_reference(b, page_body, sizeof page_body - 1, NULL, NULL);
    rc |= evbuffer_add_reference(b, page_script, sizeof page_script - 1, NULL, NULL);
    rc |= evbuffer_add_reference(b, page_tail, sizeof page_tail - 1, NULL, NULL);
    if (rc != 0) {
        evbuffer_free(b);
        srv_reply_error(s, req, 500, "nomem", "out of memory");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    srv_reply_buf(s, req, 200, "text/html; charset=utf-8", b);
    evbuffer_free(b);
}
