#!/usr/bin/env bash
# tests/install/docs_test.sh CHECK FLEETLEASE SRC VERSION MAN1
#
# The man pages and docs/cli.md against the command they describe:
#   cli-md     the reference block of docs/cli.md is what cmake/gen-docs.sh
#              makes from today's --help texts (a --help changed without
#              `cmake --build B --target cli-doc` fails here);
#   man-help   every command and every long option of every --help is in
#              fleetlease(1), under that command's own section;
#   man-render both pages format without a single groff warning, and
#              man -l reads them;
#   man-api    every FL_EXTERN function of include/fleetlease.h is named in
#              fleetlease(3).
set -euo pipefail
CHECK=${1:?usage: docs_test.sh cli-md|man-help|man-render|man-api FLEETLEASE SRC VERSION MAN1}
BIN=${2:?missing FLEETLEASE}
FL_SRC=${3:?missing SRC}
VERSION=${4:?missing VERSION}
MAN1=${5:?missing MAN1}
MAN3=$FL_SRC/man/fleetlease.3
. "$FL_SRC/tests/install/lib.sh"

commands() { "$BIN" --help | awk '/^Commands:$/ { on = 1; next } on && /^$/ { exit } on { print $1 }'; }
long_opts() { grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }

case $CHECK in
cli-md)
    step "docs/cli.md's reference block is current"
    sh "$FL_SRC/cmake/gen-docs.sh" check-md "$BIN" "$VERSION" "$FL_SRC/docs/cli.md"
    # And the block really is the --help text (the generator is not trusted
    # to have copied it): every line of every --help is in the file.
    for c in "" $(commands); do
        if [ -z "$c" ]; then "$BIN" --help; else "$BIN" "$c" --help; fi | sed 's/[ \t]*$//' | while IFS= read -r l; do
            [ -z "$l" ] || grep -qxF -- "$l" "$FL_SRC/docs/cli.md" || fail "docs/cli.md lacks the --help line of '${c:-fleetlease}': $l"
        done
    done
    ;;
man-help)
    need groff man-db
    # Plain text, wide enough that no option is broken across lines.
    groff -man -Tascii -P-cbou -rLL=250n "$MAN1" 2>/dev/null >"$T/man.txt"
    [ -s "$T/man.txt" ] || fail "groff rendered nothing from $MAN1"
    n=0
    for c in $(commands); do
        # The command's own section: from its .SS heading to the next heading.
        awk -v c="$c" '$0 == "   " c { on = 1; next } on && (/^   [a-z]+$/ || /^[A-Z]/) { exit } on' \
            "$T/man.txt" >"$T/sec.txt"
        [ -s "$T/sec.txt" ] || fail "fleetlease(1) has no section for command '$c'"
        for o in $("$BIN" "$c" --help | long_opts); do
            grep -qF -- "$o" "$T/sec.txt" || fail "fleetlease(1), section $c, lacks $o (in '$c --help')"
            n=$((n + 1))
        done
    done
    for o in $("$BIN" --help | long_opts); do
        grep -qF -- "$o" "$T/man.txt" || fail "fleetlease(1) lacks $o (in fleetlease --help)"
        n=$((n + 1))
    done
    for s in NAME SYNOPSIS DESCRIPTION COMMANDS ENVIRONMENT FILES "EXIT STATUS"; do
        grep -qx "$s" "$T/man.txt" || fail "fleetlease(1) has no $s section"
    done
    echo "PASS: $(commands | wc -l) commands, $n options"
    ;;
man-render)
    need groff man-db
    for m in "$MAN1" "$MAN3"; do
        groff -man -Tutf8 -ww -z "$m" 2>"$T/warn" || fail "groff failed on $m"
        [ ! -s "$T/warn" ] || { cat "$T/warn"; fail "groff warnings for $m"; }
    done
    need man man-db
    for m in "$MAN1" "$MAN3"; do
        MANWIDTH=80 man -l "$m" >"$T/out" 2>"$T/warn" || fail "man -l $m failed"
        [ ! -s "$T/warn" ] || { cat "$T/warn"; fail "man -l $m wrote to stderr"; }
        [ "$(wc -l <"$T/out")" -gt 50 ] || fail "man -l $m rendered $(wc -l <"$T/out") lines"
    done
    echo PASS
    ;;
man-api)
    fns=$(grep -h 'FL_EXTERN' "$FL_SRC/include/fleetlease.h" | grep -v '#' \
          | sed -E 's/.*[ *](fl_[a-z0-9_]+)\(.*/\1/' | sort -u)
    [ "$(echo "$fns" | wc -l)" -gt 30 ] || fail "found only $(echo "$fns" | wc -l) FL_EXTERN functions"
    for f in $fns; do
        grep -qw -- "$f" "$MAN3" || fail "fleetlease(3) does not mention $f (declared FL_EXTERN in fleetlease.h)"
    done
    echo "PASS: $(echo "$fns" | wc -l) functions"
    ;;
*) fail "unknown check $CHECK" ;;
esac
