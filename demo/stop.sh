#!/bin/sh
# Stop the demo started by demo/start.sh: both apache2 instances, by the
# PIDs in their pid files (nothing else is touched).  The demo directory is
# kept (its store, logs); remove $BTSSO_DEMO_DIR to start from scratch.
set -u
DEMO_DIR=${BTSSO_DEMO_DIR:-/var/tmp/btsso-demo}
quiet=${1:-}
stopped=0
for pidfile in "$DEMO_DIR/sp/httpd.pid" "$DEMO_DIR/idp/run/httpd.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1; i=$((i + 1))
        done
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
[ "$quiet" = --quiet ] || echo "demo: stopped $stopped server(s)"
exit 0
