#!/usr/bin/env bash
# tests/http/status_page.sh -- the status page (GET /) in headless Chromium.
#
# While an exclusive lease is held, the page as Chromium renders it (after
# its script fetched /v1/leases and /v1/history) has the provider's row
# with state exclusive, the holder and the purpose -- the purpose holding
# markup, which must show as text and never become elements.  A shared
# lease shows as shared, a provider seen only in the history as free.  A
# screenshot is a non-empty PNG.  With --tokens the page shows the "needs
# a token" state and no lease data; given a token (#token=, moved into
# sessionStorage) it shows the leases again.
#
# usage: status_page.sh sqlite:tmp|env:DATABASE_URL BINARY [CHROMIUM]
# Exit 77 (skipped) without Chromium, unless CI=true: then a failure.
source "$(dirname "$0")/lib.sh"
CHROMIUM=${3:-${CHROMIUM:-$(command -v chromium || command -v chromium-browser || echo chromium)}}
if ! command -v "$CHROMIUM" >/dev/null; then
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: chromium not found (apt-get install chromium), and CI=true requires this test" >&2
        exit 1
    fi
    echo "SKIP: chromium not found (apt-get install chromium)" >&2
    exit 77
fi
setup "$1" "$2"
P=gpu-page.$SFX
PS=gpu-shared.$SFX
PF=gpu-free.$SFX
HOLDER=bench-1
PURPOSE='nightly <b>bench</b> & "eval"'
PURPOSE_HTML='nightly &lt;b&gt;bench&lt;/b&gt; &amp; "eval"'

# chrome URL OUTFILE [ARGS]: run headless Chromium on URL, each run with a
# fresh profile; DOM (or whatever ARGS ask for) to OUTFILE.
chrome() {
    local url=$1 out=$2
    shift 2
    local prof
    prof=$(mktemp -d "$T/chrome.XXXXXX")
    set +e
    timeout -k 5 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --disable-dev-shm-usage --user-data-dir="$prof" \
        --virtual-time-budget=5000 "$@" "$url" >"$out" 2>"$T/chrome.err"
    local rc=$?
    set -e
    rm -rf "$prof"
    if [[ $rc -ne 0 ]]; then
        BODY=$(tail -n 20 "$T/chrome.err")
        fail "chromium exited $rc"
    fi
}

# The provider table's row for $1 (one line: the page builds rows without
# whitespace between elements).
row() {
    grep -oP '<tr data-provider="\Q'"$1"'\E" data-state="[a-z]+"[^>]*>.*?</tr>' "$T/dom.html" |
        head -n1 || true
}

start_daemon

step "leases: exclusive on $P, shared on $PS, $PF released (free)"
req POST /v1/leases -d "$(jq -nc --arg p "$P" --arg h "$HOLDER" --arg u "$PURPOSE" \
    '{provider:$p,holder:$h,purpose:$u,mode:"exclusive",ttl:"60s"}')"
expect_code 201
TOKEN=$(jqb .token)
FENCE=$(jqb .fence)
req POST /v1/leases -d "$(jq -nc --arg p "$PS" '{provider:$p,holder:"eval-1",purpose:"eval",mode:"shared",ttl:"60s"}')"
expect_code 201
req POST /v1/leases -d "$(jq -nc --arg p "$PF" '{provider:$p,holder:"x",purpose:"gone",ttl:"60s"}')"
expect_code 201
req DELETE "/v1/leases/$(jqb .token)"
expect_code 200

step "the page is self-contained, with a strict CSP"
req GET /
expect_code 200
[[ $(hdr Content-Type) == text/html* ]] || fail "Content-Type $(hdr Content-Type)"
csp=$(hdr Content-Security-Policy)
[[ $csp == *"default-src 'none'"* && $csp == *"script-src 'sha256-"* && $csp == *"connect-src 'self'"* ]] ||
    fail "CSP: $csp"
[[ $csp != *unsafe-inline* ]] || fail "CSP allows unsafe-inline: $csp"
if grep -qiE '(src|href)="(https?:)?//' <<<"$BODY"; then fail "the page loads an external asset"; fi

step "Chromium: the row of $P shows exclusive, holder and purpose"
chrome "$U/" "$T/dom.html" --dump-dom
r=$(row "$P")
BODY=$(head -c 4000 "$T/dom.html")
[[ -n $r ]] || fail "no row for $P in the dumped DOM"
[[ $r == *'data-state="exclusive"'* ]] || fail "row state: $r"
[[ $r == *'<span class="badge st-exclusive">exclusive</span>'* ]] || fail "state badge: $r"
[[ $r == *"<td class=\"holder\">$HOLDER</td>"* ]] || fail "holder: $r"
[[ $r == *"<td class=\"purpose\">$PURPOSE_HTML</td>"* ]] || fail "purpose (escaped): $r"
[[ $r == *"<td class=\"num fence\">$FENCE</td>"* ]] || fail "fence: $r"
left=$(grep -oP '<td class="left"[^>]*>\K[^<]*' <<<"$r")
[[ $left =~ ^[0-9]+s$ && ${left%s} -ge 1 && ${left%s} -le 60 ]] || fail "time left \"$left\": $r"
if grep -q '<b>bench</b>' "$T/dom.html"; then fail "the purpose's markup became elements"; fi
r=$(row "$PS")
[[ $r == *'data-state="shared"'* && $r == *'<td class="holder">eval-1</td>'* ]] || fail "shared row: $r"
r=$(row "$PF")
[[ $r == *'data-state="free"'* ]] || fail "free row: $r"
grep -q "<tr data-provider=\"$P\" data-event=\"granted\">" "$T/dom.html" || fail "no history row for $P"
grep -q '<body data-auth="none" data-conn="ok"' "$T/dom.html" || fail "page state: not ok"

step "Chromium: a screenshot is a non-empty PNG"
chrome "$U/" /dev/null --window-size=1200,800 --hide-scrollbars --screenshot="$T/page.png"
[[ -s $T/page.png ]] || fail "no screenshot"
[[ $(head -c 8 "$T/page.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
    fail "the screenshot is not a PNG"
sz=$(stat -c %s "$T/page.png")
[[ $sz -gt 5000 ]] || fail "screenshot of $sz bytes: blank?"

step "--tokens: the page says it needs a token and shows no lease"
stop_daemon
tok=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'ops %s\n' "$(printf %s "$tok" | sha256sum | cut -d' ' -f1)" >"$T/tokens"
start_daemon --tokens "$T/tokens"
chrome "$U/" "$T/dom.html" --dump-dom
BODY=$(head -c 4000 "$T/dom.html")
grep -q '<body data-auth="needed"' "$T/dom.html" || fail "page not in the needs-a-token state"
grep -q '<section id="auth">' "$T/dom.html" || fail "the token form is hidden"
grep -q 'needs a token' "$T/dom.html" || fail "no \"needs a token\" text"
if grep -q "$HOLDER" "$T/dom.html"; then fail "lease data shown without a token"; fi

step "--tokens: with a token (#token=, kept in sessionStorage) the leases show"
chrome "$U/#token=$tok" "$T/dom.html" --dump-dom
BODY=$(head -c 4000 "$T/dom.html")
grep -q '<body data-auth="token" data-conn="ok"' "$T/dom.html" || fail "page state with a token"
r=$(row "$P")
[[ $r == *'data-state="exclusive"'* && $r == *"<td class=\"holder\">$HOLDER</td>"* ]] || fail "row: $r"
if grep -q "$tok" "$T/dom.html"; then fail "the token is in the DOM"; fi

stop_daemon
[[ $STOP_RC == 0 ]] || fail "daemon exit $STOP_RC after SIGTERM"
echo "ok: status page in Chromium" >&2
