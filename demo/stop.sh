#!/bin/sh
# Stop the demo started by demo/start.sh: both apache2 instances (the SP
# and SimpleSAMLphp), by PID: the pid files httpd writes and the ones
# demo.py writes as it starts each server (so a demo that failed half-way
# is stopped too).  A PID is signalled only while its command line still
# names this demo's directory (a recycled PID is left alone).  Nothing else
# is touched.  The demo directory is kept (its store, logs); remove
# $BTSSO_DEMO_DIR to start from scratch.
set -u
DEMO_DIR=${BTSSO_DEMO_DIR:-/var/tmp/btsso-demo}
[ -d "$DEMO_DIR" ] && DEMO_DIR=$(cd "$DEMO_DIR" && pwd)
quiet=${1:-}
stopped=0

ours() {            # is PID $1 a live process of this demo?
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF "$DEMO_DIR/"
}

for server in "$DEMO_DIR/sp/httpd.pid $DEMO_DIR/sp/demo.pid" \
              "$DEMO_DIR/idp/run/httpd.pid $DEMO_DIR/idp/run/demo.pid"; do
    pids=""
    for pidfile in $server; do
        [ -f "$pidfile" ] || continue
        pid=$(tr -cd 0-9 < "$pidfile")
        case " $pids " in *" $pid "*) ;; *) ours "$pid" && pids="$pids $pid";; esac
    done
    [ -n "$pids" ] && stopped=$((stopped + 1))
    for pid in $pids; do
        kill -TERM "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
            sleep 0.1; i=$((i + 1))
        done
        # prefork/event stop their children themselves; a parent that did
        # not stop within 15 s is killed
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    for pidfile in $server; do
        rm -f "$pidfile"
    done
done
[ "$quiet" = --quiet ] || echo "demo: stopped $stopped server(s)"
exit 0
