#!/bin/sh
# mariadbtmp.sh - a throwaway MariaDB server for tests.
#
#   t/lib/mariadbtmp.sh start DIR   creates DIR/data (mariadb-install-db),
#                                   starts mariadbd on 127.0.0.1 and a free
#                                   port below the ephemeral range, creates
#                                   the database btsso_test and the user
#                                   btsso (all privileges: tests create a
#                                   database each) and prints APR DBD mysql
#                                   params ("host=127.0.0.1 port=N
#                                   user=btsso pass=... dbname=btsso_test
#                                   reconnect=0 flags=CLIENT_FOUND_ROWS") on stdout
#   t/lib/mariadbtmp.sh stop DIR    stops that server (SIGTERM to the PID in
#                                   DIR/mariadbd.pid, then SIGKILL after 30 s)
#                                   and removes DIR
#
# The server reads no option file (--no-defaults): its defaults (latin1,
# REPEATABLE READ) are the least friendly a site may have, so the tests show
# that the schema and the store set what they need themselves.  As root the
# server runs as the mysql OS user (or www-data) and DIR is handed to it.
# MARIADB_BIN overrides the folder of mariadbd / mariadb-install-db.
set -eu

usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
PASS=btsso-test-pass

find_bin() {
    for d in ${MARIADB_BIN:-} /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
        if [ -x "$d/$1" ]; then
            echo "$d/$1"
            return 0
        fi
    done
    return 1
}

run_user() {
    if [ "$(id -u)" != 0 ]; then
        return 0
    fi
    for u in mysql www-data; do
        if id "$u" >/dev/null 2>&1; then
            echo "$u"
            return 0
        fi
    done
    echo nobody
}

# Same rule as t/lib/btsso_httpd.py free_port: below the kernel's
# ephemeral range, so no client's local port can take it first.
free_port() {
    /usr/bin/python3 -c 'import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
top = max(min(low, 32768), 12000)
rng = random.SystemRandom()
for _ in range(200):
    port = rng.randrange(10000, top)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break'
}

case "$cmd" in
start)
    mariadbd=$(find_bin mariadbd) || { echo "mariadbtmp: mariadbd not found: install the Debian package mariadb-server" >&2; exit 1; }
    installdb=$(find_bin mariadb-install-db) || { echo "mariadbtmp: mariadb-install-db not found: install the Debian package mariadb-server" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    user=$(run_user)
    if [ -n "$user" ]; then
        chown "$user" "$dir"
        chmod 755 "$dir"
    fi
    userarg=""
    [ -z "$user" ] || userarg="--user=$user"
    # shellcheck disable=SC2086
    "$installdb" --no-defaults --datadir="$dir/data" $userarg \
        --auth-root-authentication-method=socket --skip-test-db \
        --skip-name-resolve >"$dir/install.log" 2>&1 \
        || { echo "mariadbtmp: mariadb-install-db failed, see $dir/install.log" >&2; exit 1; }
    cat >"$dir/init.sql" <<EOF
CREATE DATABASE IF NOT EXISTS btsso_test;
CREATE USER IF NOT EXISTS 'btsso'@'127.0.0.1' IDENTIFIED BY '$PASS';
GRANT ALL PRIVILEGES ON *.* TO 'btsso'@'127.0.0.1';
EOF
    [ -z "$user" ] || chown "$user" "$dir/init.sql"
    tries=0
    while :; do
        port=$(free_port)
        rm -f "$dir/mariadbd.pid"
        # shellcheck disable=SC2086
        "$mariadbd" --no-defaults --datadir="$dir/data" $userarg \
            --bind-address=127.0.0.1 --port="$port" \
            --socket="$dir/mariadbd.sock" --pid-file="$dir/mariadbd.pid" \
            --log-error="$dir/server.log" --init-file="$dir/init.sql" \
            --skip-name-resolve --skip-log-bin --max-connections=300 \
            --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
            --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
            --sync-binlog=0 --skip-innodb-adaptive-hash-index \
            --innodb-file-per-table=0 --innodb-flush-method=fsync \
            </dev/null >/dev/null 2>&1 &
        pid=$!
        echo "$pid" >"$dir/mariadbd.pid.start"
        n=0
        up=""
        while [ $n -lt 300 ]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if [ -S "$dir/mariadbd.sock" ] && /usr/bin/python3 -c "import socket,sys
s = socket.create_connection(('127.0.0.1', $port), 1)
sys.exit(0 if s.recv(1) else 1)" 2>/dev/null \
                && grep -q 'ready for connections' "$dir/server.log" 2>/dev/null; then
                up=1
                break
            fi
            n=$((n + 1))
            sleep 0.1
        done
        [ -z "$up" ] || break
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        tries=$((tries + 1))
        # another process may have taken the port between probe and start
        [ $tries -lt 3 ] || { echo "mariadbtmp: mariadbd did not start, see $dir/server.log" >&2; exit 1; }
    done
    echo "$port" >"$dir/port"
    echo "host=127.0.0.1 port=$port user=btsso pass=$PASS dbname=btsso_test reconnect=0 flags=CLIENT_FOUND_ROWS"
    ;;
stop)
    pid=""
    if [ -f "$dir/mariadbd.pid" ]; then
        pid=$(cat "$dir/mariadbd.pid")
    elif [ -f "$dir/mariadbd.pid.start" ]; then
        pid=$(cat "$dir/mariadbd.pid.start")
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 300 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
