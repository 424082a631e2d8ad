#!/bin/sh
# pgtmp.sh - a throwaway PostgreSQL cluster for tests.
#
#   t/lib/pgtmp.sh start DIR   creates DIR/data, starts postgres on a free
#                              127.0.0.1 port with trust auth, creates the
#                              database btsso_test and prints APR DBD pgsql
#                              params ("host=127.0.0.1 port=N user=postgres
#                              dbname=btsso_test") on stdout
#   t/lib/pgtmp.sh stop DIR    stops that cluster (by the PID in its
#                              postmaster.pid, via pg_ctl) and removes DIR
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# postgres OS user and DIR is handed to it.  PGBIN overrides the binaries.
set -eu

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

case "$cmd" in
start)
    [ -x "$PGBIN/initdb" ] || { echo "pgtmp: $PGBIN/initdb not found: install the Debian package postgresql" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
    fi
    as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 \
        --no-sync >"$dir/initdb.log" 2>&1 \
        || { echo "pgtmp: initdb failed, see $dir/initdb.log" >&2; exit 1; }
    tries=0
    while :; do
        port=$(free_port)
        if as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        # another process may have taken the port between probe and start
        [ $tries -lt 3 ] || { echo "pgtmp: postgres did not start, see $dir/server.log" >&2; exit 1; }
    done
    echo "$port" >"$dir/port"
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres btsso_test \
        || { echo "pgtmp: createdb failed" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=postgres dbname=btsso_test"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
