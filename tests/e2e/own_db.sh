# tests/e2e/own_db.sh -- sourced: a PostgreSQL database of the test's own.
#
#   own_db URL     create a fresh database on the server of URL (a
#                  postgresql:// URL) and set DBURL to it; on any trouble
#                  (no psql, no CREATEDB right, a keyword=value conninfo)
#                  DBURL stays URL.  drop_own_db removes it again.
#
# Why: every `fleetlease serve` on a database runs the schedules stored in
# it.  A test with schedules on the shared test database could have its runs
# claimed -- and, when that daemon stops, cut short -- by the daemon of
# another test running at the same time.
OWN_DB=""
OWN_DB_ADMIN=""
OWN_DB_PSQL=""

own_db() {
    local base=$1 rest hostpart after query name
    DBURL=$base
    case $base in postgres://*|postgresql://*) ;; *) return 0 ;; esac
    OWN_DB_PSQL=$(command -v psql 2>/dev/null || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | head -n1) ||
        return 0
    [[ -n $OWN_DB_PSQL ]] || return 0
    rest=${base#*://}
    [[ $rest == */* ]] || return 0
    hostpart=${rest%%/*}
    after=${rest#*/}
    query=""
    [[ $after == *\?* ]] && query="?${after#*\?}"
    name="fl_test_$$_$RANDOM"
    "$OWN_DB_PSQL" "$base" -qAt -c "CREATE DATABASE $name" >/dev/null 2>&1 || return 0
    OWN_DB=$name
    OWN_DB_ADMIN=$base
    DBURL="${base%%://*}://$hostpart/$name$query"
}

drop_own_db() {
    [[ -n $OWN_DB ]] || return 0
    "$OWN_DB_PSQL" "$OWN_DB_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $OWN_DB WITH (FORCE)" \
        >/dev/null 2>&1 || true
    OWN_DB=""
}
