#!/bin/sh
# tests/conformance/run-store.sh STORE PROGRAM [ARGS...]
#
# Run a store-parameterized test program against one store, with the store's
# URL in FL_TEST_DB.  The same binary runs for every store; only this URL
# differs (issue 3: one conformance suite, no copies per store).
#   sqlite      a fresh database file in a temporary directory, removed after
#   postgresql  $DATABASE_URL at test time; exit 77 (ctest: skipped, never
#               passed) when it is unset -- unless CI=true, where a missing
#               PostgreSQL must fail the run.
set -u
store=${1:?usage: run-store.sh sqlite|postgresql PROGRAM [ARGS...]}
shift
case $store in
sqlite)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/fl-test.XXXXXX") || exit 1
    FL_TEST_DB="sqlite:$dir/leases.db" "$@"
    rc=$?
    rm -rf "$dir"
    exit $rc
    ;;
postgresql)
    if [ -z "${DATABASE_URL:-}" ]; then
        if [ "${CI:-}" = true ]; then
            echo "run-store.sh: CI=true but DATABASE_URL is not set: PostgreSQL must be tested in CI" >&2
            exit 1
        fi
        echo "run-store.sh: DATABASE_URL is not set: skipping the PostgreSQL store" >&2
        exit 77
    fi
    FL_TEST_DB=$DATABASE_URL exec "$@"
    ;;
*)
    echo "run-store.sh: unknown store '$store' (sqlite, postgresql)" >&2
    exit 2
    ;;
esac
