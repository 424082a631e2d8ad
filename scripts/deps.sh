#!/bin/sh
# Install the Debian 12 packages mod_btsso needs to build, test and run its
# demo -- only those missing, so a prepared machine is left alone.
#   scripts/deps.sh build    compiler, autotools, -dev packages
#   scripts/deps.sh test     + httpd, databases, caches, IdPs, browser
#   scripts/deps.sh bench    + mod_auth_mellon (bench/mellon.py compares)
set -eu
BUILD="build-essential autoconf automake libtool pkg-config apache2 apache2-dev
  libxml2-dev libxmlsec1-dev libxmlsec1-openssl libssl-dev libcurl4-openssl-dev
  libjansson-dev zlib1g-dev libcmocka-dev libsqlite3-dev libaprutil1-dbd-sqlite3
  libaprutil1-dbd-pgsql sqlite3 xmlsec1 libxml2-utils opensaml-schemas openssl"
TEST="python3 python3-pytest python3-pysaml2 python3-lxml python3-xmlsec
  python3-requests python3-psycopg2 python3-pytest-xdist postgresql gdb
  mariadb-server libaprutil1-dbd-mysql memcached redis-server valgrind wrk
  simplesamlphp php8.2-xml php8.2-mbstring libapache2-mod-php8.2
  chromium chromium-driver python3-selenium
  debhelper dh-autoreconf lintian man-db"
BENCH="libapache2-mod-auth-mellon"
want="$BUILD"
[ "${1:-build}" = test ] && want="$BUILD $TEST"
[ "${1:-build}" = demo ] && want="$BUILD $TEST"
[ "${1:-build}" = bench ] && want="$BUILD $TEST $BENCH"
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    # A package's own service must not grab ports or start at install time
    # on a CI machine; tests start their own instances.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
