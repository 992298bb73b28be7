# Prepares the annotation platform's test dependencies; CI sources it before pytest:
#   source .ci/annotate.sh
# - installs Debian's chromium and postgresql packages when missing (apt-get, needs root);
# - starts a private PostgreSQL cluster on 127.0.0.1 (as the postgres user when run as root),
#   creates the test database and exports IMREWARD_TEST_PG_URL for the PostgreSQL tests;
# - exports IMREWARD_TEST_ARTIFACTS (browser-test screenshots) unless already set.
# Safe to source again: an installed package, a cluster already running, an existing
# database are left as they are. It changes no shell options of the sourcing shell.

_annotate_ci_main() {
    local port="${IMREWARD_PG_PORT:-55432}"
    local data_dir="${IMREWARD_PG_DIR:-/var/tmp/imreward-annotate-pg}"
    local database="imreward_annotate_test"
    local password="imreward-test"
    local as_db_user=()

    _annotate_ci_apt() {
        local missing=()
        command -v chromium >/dev/null 2>&1 || missing+=(chromium)
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
        [ "${#missing[@]}" -eq 0 ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
            echo "annotate.sh: missing ${missing[*]} and not root; cannot apt-get install" >&2
            return 1
        fi
        echo "annotate.sh: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" </dev/null >/dev/null
    }

    _annotate_ci_apt || return 1

    local pg_bin
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [ "$(id -u)" -eq 0 ]; then
        as_db_user=(runuser -u postgres --)
    fi

    if [ ! -s "$data_dir/PG_VERSION" ]; then
        mkdir -p "$data_dir"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data_dir"
        chmod 700 "$data_dir"
        local pwfile="$data_dir.pw"
        printf '%s\n' "$password" >"$pwfile"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pwfile"
        "${as_db_user[@]}" "$pg_bin/initdb" -D "$data_dir" -U postgres --pwfile="$pwfile" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 >/dev/null </dev/null ||
            { echo "annotate.sh: initdb failed" >&2; rm -f "$pwfile"; return 1; }
        rm -f "$pwfile"
    fi

    if ! "${as_db_user[@]}" "$pg_bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; then
        "${as_db_user[@]}" "$pg_bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $data_dir" start >/dev/null </dev/null ||
            { echo "annotate.sh: PostgreSQL did not start; see $data_dir/server.log" >&2; return 1; }
    fi

    local psql=(env PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$database'" </dev/null)" != "1" ]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE $database" </dev/null ||
            { echo "annotate.sh: could not create $database" >&2; return 1; }
    fi

    export IMREWARD_TEST_PG_URL="postgresql+psycopg://postgres:$password@127.0.0.1:$port/$database"
    export IMREWARD_TEST_ARTIFACTS="${IMREWARD_TEST_ARTIFACTS:-$PWD/test-artifacts/annotate}"
    mkdir -p "$IMREWARD_TEST_ARTIFACTS"
    echo "annotate.sh: PostgreSQL ready at 127.0.0.1:$port/$database; screenshots in $IMREWARD_TEST_ARTIFACTS"
}

_annotate_ci_main
_annotate_ci_status=$?
unset -f _annotate_ci_main _annotate_ci_apt
if [ "$_annotate_ci_status" -ne 0 ]; then
    unset _annotate_ci_status
    return 1 2>/dev/null || exit 1
fi
unset _annotate_ci_status
