# Start a throw-away PostgreSQL server for the ledger tests and export its URL.
#
#     source .ci/postgres.sh        # exports P2PMARKET_TEST_POSTGRES_URL
#
# - Installs Debian's `postgresql` package when no PostgreSQL server binaries are found.
# - Initialises a cluster in $P2PMARKET_PG_DIR (default: $TMPDIR/p2pmarket-ci-postgres), starts
#   it on 127.0.0.1 on a free port (as the `postgres` user when run as root: the server refuses
#   to run as root), creates the database `p2pmarket_test`, and exports
#   P2PMARKET_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/p2pmarket_test
#   (also written to $P2PMARKET_PG_DIR/url).
# - Idempotent: sourcing it again reuses a running server, restarts a stopped one, and
#   re-initialises a cluster left half-made.
# - When this call started the server, it exports P2PMARKET_PG_STOP, a script that stops it:
#   `bash "$P2PMARKET_PG_STOP"` (.ci/run does so on exit, also when the tests fail).
# Meant to be sourced (it exports a variable); executed, it prints the URL instead.

_p2pm_pg_main() {
    local dir="${P2PMARKET_PG_DIR:-${TMPDIR:-/tmp}/p2pmarket-ci-postgres}"
    local data="$dir/data" bindir="" user="" port

    # 1. Server binaries: on PATH, in Debian's versioned directory, or installed now.
    _p2pm_pg_bindir() {
        if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
            dirname "$(readlink -f "$(command -v pg_ctl)")"
            return
        fi
        local d
        d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
        fi
    }
    bindir="$(_p2pm_pg_bindir)"
    if [ -z "$bindir" ]; then
        echo "postgres.sh: installing Debian's postgresql package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bindir="$(_p2pm_pg_bindir)"
        if [ -z "$bindir" ]; then
            echo "postgres.sh: no initdb/pg_ctl after installing postgresql" >&2
            return 1
        fi
    fi

    # 2. The server may not run as root: run it as `postgres` (created by the Debian package).
    if [ "$(id -u)" = "0" ]; then
        user=postgres
        if ! id "$user" >/dev/null 2>&1; then
            useradd --system --home-dir "$dir" --shell /usr/sbin/nologin "$user"
        fi
    fi
    _p2pm_pg_as() {
        if [ -n "$user" ]; then
            runuser -u "$user" -- "$@"
        else
            "$@"
        fi
    }

    mkdir -p "$dir"
    if [ -n "$user" ]; then
        chown "$user" "$dir"
    fi

    # 3. A cluster: reuse a complete one, start afresh from a half-made one.
    if [ ! -f "$data/PG_VERSION" ]; then
        if [ -f "$data/postmaster.pid" ]; then # a server of the half-made cluster: stop it
            kill -QUIT "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null || true
            sleep 1
        fi
        rm -rf "$data" "$dir/port" "$dir/url"
        _p2pm_pg_as "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { rm -rf "$data" && _p2pm_pg_as "$bindir/initdb" -D "$data" -U postgres \
                --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; } || {
            echo "postgres.sh: initdb failed, see $dir/initdb.log" >&2
            return 1
        }
    fi

    # 4. Start it unless it is running, on a free loopback port (a stale postmaster.pid is
    #    handled by pg_ctl).
    if ! _p2pm_pg_as "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 || [ ! -f "$dir/port" ]; then
        _p2pm_pg_as "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
            >"$dir/port"
        _p2pm_pg_as "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$(cat "$dir/port") -c unix_socket_directories='$dir'" \
            start >/dev/null || {
            echo "postgres.sh: the server did not start, see $dir/server.log" >&2
            return 1
        }
        # This call started the server: say how to stop it (`bash "$P2PMARKET_PG_STOP"`).
        if [ -n "$user" ]; then
            printf 'runuser -u %q -- %q -D %q -m fast -w stop >/dev/null\n' \
                "$user" "$bindir/pg_ctl" "$data" >"$dir/stop.sh"
        else
            printf '%q -D %q -m fast -w stop >/dev/null\n' "$bindir/pg_ctl" "$data" >"$dir/stop.sh"
        fi
        P2PMARKET_PG_STOP="$dir/stop.sh"
        export P2PMARKET_PG_STOP
    fi
    port="$(cat "$dir/port")"

    # 5. The test database.
    if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'p2pmarket_test'" | grep -q 1; then
        "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres p2pmarket_test
    fi

    P2PMARKET_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/p2pmarket_test"
    export P2PMARKET_TEST_POSTGRES_URL
    echo "$P2PMARKET_TEST_POSTGRES_URL" >"$dir/url"
    echo "postgres.sh: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') at" \
        "$P2PMARKET_TEST_POSTGRES_URL"
}

if (return 0 2>/dev/null); then
    _p2pm_pg_main
    _p2pm_pg_status=$?
    unset -f _p2pm_pg_main _p2pm_pg_bindir _p2pm_pg_as
    # shellcheck disable=SC2317  # `return` when sourced, `exit` otherwise
    return "$_p2pm_pg_status" 2>/dev/null || exit "$_p2pm_pg_status"
else
    set -euo pipefail
    _p2pm_pg_main
fi
