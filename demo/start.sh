#!/bin/sh
# Start the mod_btsso demo on a fresh Debian 12 machine, as root:
#   - installs the Debian packages it needs (only the missing ones),
#   - builds the module and btssoctl out of tree,
#   - starts httpd with mod_btsso on 127.0.0.1:8080 (the SP is
#     http://localhost:8080, an SQLite store with account "demo", ready
#     with SSO enabled, and account "newco", users but no SSO: its
#     administrator sets SSO up in the Admin portal, /admin/),
#   - starts SimpleSAMLphp on 127.0.0.1:8081 (its own apache2): the IdP of
#     "demo" at http://127.0.0.1:8081, New Co's at http://localhost:8081,
#   - prints where to click and who to log in as, for both.
# Ports: BTSSO_DEMO_SP_PORT, BTSSO_DEMO_IDP_PORT; an existing build
# directory to reuse: BTSSO_DEMO_BUILDDIR.
# Stop it with demo/stop.sh.  Everything lives in $BTSSO_DEMO_DIR
# (default /var/tmp/btsso-demo); /etc and the system apache2 are untouched.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
DEMO_DIR=${BTSSO_DEMO_DIR:-/var/tmp/btsso-demo}
SP_PORT=${BTSSO_DEMO_SP_PORT:-8080}
IDP_PORT=${BTSSO_DEMO_IDP_PORT:-8081}

if [ "$(id -u)" != 0 ]; then
    echo "demo/start.sh: run as root (it installs Debian packages and" \
         "starts two apache2 instances on 127.0.0.1)" >&2
    exit 1
fi

# 1. packages: the build set, then what the demo itself runs
sh "$TOP/scripts/deps.sh" build
DEMO_PKGS="python3 python3-requests simplesamlphp php8.2-xml php8.2-mbstring
  libapache2-mod-php8.2"
missing=""
for p in $DEMO_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "demo: installing$missing"
    apt-get update -qq
    # no package service may start or grab a port at install time
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

# 2. a running demo is replaced (stop.sh finds it by its absolute path)
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)
export BTSSO_DEMO_DIR="$DEMO_DIR"
sh "$HERE/stop.sh" --quiet || true

# 3. build out of tree (the source tree stays clean); BTSSO_DEMO_BUILDDIR
#    names a build directory to use instead (the tests pass their own)
BUILD=${BTSSO_DEMO_BUILDDIR:-$DEMO_DIR/build}
mkdir -p "$BUILD"
if [ ! -x "$TOP/configure" ] || [ "$TOP/Makefile.am" -nt "$TOP/Makefile.in" ]
then
    echo "demo: autoreconf"
    (cd "$TOP" && autoreconf -fi >/dev/null 2>&1)
fi
if [ ! -f "$BUILD/Makefile" ]; then
    echo "demo: configure"
    (cd "$BUILD" && "$TOP/configure" -q)
fi
echo "demo: make"
(cd "$BUILD" && make -s -j"$(nproc)" >/dev/null)

# 4. set up and start both servers, print the way in
exec /usr/bin/python3 "$HERE/demo.py" --dir "$DEMO_DIR" --builddir "$BUILD" \
    --sp-port "$SP_PORT" --idp-port "$IDP_PORT"
