# tests/install/lib.sh -- sourced by the scripts of tests/install.

T=$(mktemp -d "${TMPDIR:-/tmp}/fleetlease-install.XXXXXX")
trap 'rm -rf "$T"' EXIT

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# A tool the test needs.  Missing: skipped (77), unless CI=true and
# scripts/deps.sh installs the package, in which case its absence is a
# broken CI machine and must fail.
need() { # TOOL DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "${CI:-}" = "true" ] && grep -qw -- "$2" "$FL_SRC/scripts/deps.sh" 2>/dev/null; then
        fail "$1 not found, but scripts/deps.sh installs $2 and CI=true"
    fi
    echo "SKIP: $1 not found (Debian package $2)"
    exit 77
}

# cmake --install BUILD into a fresh prefix; prints the prefix.
install_to() { # BUILD PREFIX
    cmake --install "$1" --prefix "$2" >"$T/install.log" 2>&1 \
        || { cat "$T/install.log" >&2; fail "cmake --install $1 --prefix $2"; }
}
