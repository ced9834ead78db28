#!/usr/bin/env bash
# tests/install/systemd_test.sh BUILD SRC
# The example units as installed (ExecStart naming the installed command)
# pass `systemd-analyze verify` without a single warning.  The template is
# verified through an instance, as systemd would load it.
set -euo pipefail
BUILD=${1:?usage: systemd_test.sh BUILD SRC}
FL_SRC=${2:?missing SRC}
. "$FL_SRC/tests/install/lib.sh"
need systemd-analyze systemd

install_to "$BUILD" "$T/prefix"
U=$T/prefix/share/doc/fleetlease/examples/systemd
for u in fleetlease.service fleetlease-gateway@gpu-01.service fleetlease-nightly.service \
         fleetlease-nightly.timer; do
    step "systemd-analyze verify $u"
    if ! systemd-analyze verify --man=no "$U/$u" >"$T/out" 2>&1 || [ -s "$T/out" ]; then
        cat "$T/out"
        fail "$u does not verify cleanly"
    fi
done
# The units hold what docs/operations.md promises.
for u in fleetlease.service fleetlease-gateway@.service fleetlease-nightly.service; do
    for k in DynamicUser=yes ProtectSystem=strict StateDirectory=fleetlease NoNewPrivileges=yes \
             PrivateTmp=yes RestrictAddressFamilies=; do
        grep -q "^$k" "$U/$u" || fail "$u lacks $k"
    done
done
grep -q '^Type=notify' "$U/fleetlease.service" || fail "fleetlease.service is not Type=notify"
echo PASS
