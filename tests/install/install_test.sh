#!/usr/bin/env bash
# tests/install/install_test.sh BUILD SRC VERSION CC [CFLAGS]
#
# `cmake --install` of the build into a temporary prefix, then what an
# operator and a C programmer do with it: run the installed command, and
# build and run a program against the installed library with pkg-config
# and with find_package(fleetlease).  Last, a DESTDIR install lands under
# DESTDIR and names the final prefix.  CFLAGS (the sanitizer flags of an
# ASan build) go to the consumer builds: an instrumented library needs an
# instrumented program.
set -euo pipefail
BUILD=${1:?usage: install_test.sh BUILD SRC VERSION CC [CFLAGS]}
FL_SRC=${2:?missing SRC}
VERSION=${3:?missing VERSION}
CC=${4:?missing CC}
CFLAGS=${5:-}
. "$FL_SRC/tests/install/lib.sh"
need pkg-config pkg-config

P=$T/prefix
step "cmake --install into $P"
install_to "$BUILD" "$P"
libso=$(find "$P" -name libfleetlease.so.0 -print -quit)
[ -n "$libso" ] || fail "no libfleetlease.so.0 under $P"
LIBDIR=$(dirname "$libso")
for f in bin/fleetlease include/fleetlease.h share/man/man1/fleetlease.1 share/man/man3/fleetlease.3 \
         share/doc/fleetlease/operations.md share/doc/fleetlease/cli.md \
         share/doc/fleetlease/examples/systemd/fleetlease.service \
         share/doc/fleetlease/examples/systemd/fleetlease-gateway@.service \
         share/doc/fleetlease/examples/systemd/fleetlease-nightly.service \
         share/doc/fleetlease/examples/systemd/fleetlease-nightly.timer; do
    [ -e "$P/$f" ] || fail "not installed: $f"
done
for f in "libfleetlease.so.$VERSION" libfleetlease.so libfleetlease.a pkgconfig/fleetlease.pc \
         cmake/fleetlease/fleetleaseConfig.cmake cmake/fleetlease/fleetleaseConfigVersion.cmake \
         cmake/fleetlease/fleetleaseTargets.cmake; do
    [ -e "$LIBDIR/$f" ] || fail "not installed: $LIBDIR/$f"
done
[ "$(readlink "$LIBDIR/libfleetlease.so.0")" = "libfleetlease.so.$VERSION" ] \
    || fail "libfleetlease.so.0 -> $(readlink "$LIBDIR/libfleetlease.so.0")"
# (Output captured first: with pipefail, grep -q closing a pipe early would
# fail the producer with SIGPIPE.)
dyn=$(readelf -d "$LIBDIR/libfleetlease.so.$VERSION")
grep -q 'SONAME.*\[libfleetlease\.so\.0\]' <<<"$dyn" || fail "SONAME is not libfleetlease.so.0"
# libfleetlease.a must hold the library's objects (not be an empty archive).
syms=$(nm "$LIBDIR/libfleetlease.a" 2>/dev/null)
grep -q ' T fl_acquire$' <<<"$syms" || fail "libfleetlease.a lacks fl_acquire"
grep -q "^prefix=$P\$" "$LIBDIR/pkgconfig/fleetlease.pc" || fail "fleetlease.pc does not name prefix $P"
grep -q "^ExecStart=$P/bin/fleetlease serve" "$P/share/doc/fleetlease/examples/systemd/fleetlease.service" \
    || fail "installed fleetlease.service does not run $P/bin/fleetlease"

step "the installed command finds the installed library, not the build tree's"
rp=$(readelf -d "$P/bin/fleetlease" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
[[ $rp == '$ORIGIN/'* ]] || fail "RUNPATH of the installed command is '$rp', want \$ORIGIN/..."
[[ $rp != *"$BUILD"* ]] || fail "RUNPATH names the build tree: $rp"
resolved=$(ldd "$P/bin/fleetlease" | awk '/libfleetlease\.so/ { print $3 }')
[ "$(realpath "$resolved")" = "$(realpath "$LIBDIR/libfleetlease.so.$VERSION")" ] \
    || fail "installed fleetlease loads $resolved, not $LIBDIR"
out=$("$P/bin/fleetlease" --version)
[ "$out" = "fleetlease $VERSION" ] || fail "installed fleetlease --version: '$out'"
echo "$out"
FLEETLEASE_DB=$T/cli.db "$P/bin/fleetlease" acquire gpu-01 --purpose "install test" --ttl 5s --json >"$T/acq.json" \
    || fail "installed fleetlease acquire"
out=$(FLEETLEASE_DB=$T/cli.db "$P/bin/fleetlease" list) || fail "installed fleetlease list"
grep -q "install test" <<<"$out" || fail "installed fleetlease list: $out"

export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
step "pkg-config: $(pkg-config --cflags --libs fleetlease)"
[ "$(pkg-config --modversion fleetlease)" = "$VERSION" ] || fail "pkg-config --modversion"
static=$(pkg-config --static --libs fleetlease)
[[ $static == *-lsqlite3* && $static == *-lpq* ]] || fail "pkg-config --static lacks sqlite3/libpq: $static"
[[ $static != *-ljansson* && $static != *-levent* ]] \
    || fail "pkg-config --static lists a library libfleetlease does not use: $static"
# shellcheck disable=SC2046,SC2086
"$CC" -std=c11 -Wall -Wextra -Werror $CFLAGS "$FL_SRC/tests/install/consumer.c" -o "$T/consumer_pc" \
    $(pkg-config --cflags --libs fleetlease) -Wl,-rpath,"$(pkg-config --variable=libdir fleetlease)"
"$T/consumer_pc" "$T/pc.db"

step "find_package(fleetlease) with CMAKE_PREFIX_PATH=$P"
cmake -S "$FL_SRC/tests/install/consumer" -B "$T/consumer" -DCMAKE_PREFIX_PATH="$P" \
      -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" >"$T/consumer.log" 2>&1 \
    || { cat "$T/consumer.log"; fail "configuring the find_package consumer"; }
grep "fleetlease $VERSION from $LIBDIR/cmake/fleetlease" "$T/consumer.log" \
    || { cat "$T/consumer.log"; fail "find_package found another fleetlease"; }
cmake --build "$T/consumer" >>"$T/consumer.log" 2>&1 || { cat "$T/consumer.log"; fail "building the consumer"; }
"$T/consumer/consumer_shared" "$T/cmake-shared.db"
"$T/consumer/consumer_static" "$T/cmake-static.db"
dyn=$(readelf -d "$T/consumer/consumer_static")
! grep -q 'NEEDED.*libfleetlease' <<<"$dyn" || fail "consumer_static links libfleetlease.so"
dyn=$(readelf -d "$T/consumer/consumer_shared")
grep -q 'NEEDED.*\[libfleetlease\.so\.0\]' <<<"$dyn" || fail "consumer_shared does not link libfleetlease.so.0"

step "DESTDIR: staged under DESTDIR, naming the final prefix"
final=/opt/fleetlease-install-test-$$
DESTDIR=$T/stage cmake --install "$BUILD" --prefix "$final" >"$T/destdir.log" 2>&1 \
    || { cat "$T/destdir.log"; fail "DESTDIR install"; }
[ -x "$T/stage$final/bin/fleetlease" ] || fail "DESTDIR: no $T/stage$final/bin/fleetlease"
[ ! -e "$final" ] || fail "DESTDIR install wrote to $final itself"
pc=$(find "$T/stage$final" -name fleetlease.pc)
grep -q "^prefix=$final\$" "$pc" || fail "DESTDIR: fleetlease.pc does not name $final"
grep -q "^ExecStart=$final/bin/fleetlease serve" \
    "$T/stage$final/share/doc/fleetlease/examples/systemd/fleetlease.service" || fail "DESTDIR: unit ExecStart"
echo "PASS"
