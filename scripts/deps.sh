#!/usr/bin/env bash
# Install what fleetlease needs to build and test, from Debian's packages.
# Idempotent and quick when everything is present (no apt-get update then).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libsqlite3-dev libpq-dev libevent-dev
      libjansson-dev libcmocka-dev libssl-dev sqlite3 jq)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(postgresql-15 procps psmisc curl chromium nginx clang libclang-rt-14-dev man-db systemd wrk)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
