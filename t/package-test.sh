#!/bin/sh
# The Debian package, built and used the way an operator would
# (BTSSO_TEST_PACKAGE=1; t/run sets it; otherwise skipped, exit 77):
#   1. dpkg-buildpackage -us -uc -b on a clean copy of the tree;
#   2. lintian on the result: no error and no warning (overrides only in
#      debian/, each with its reason);
#   3. the maintainer scripts neither enable the module nor start, reload or
#      restart httpd on installation;
#   4. the package, unpacked with dpkg -x into a temporary root, works:
#      a2enmod btsso in a throwaway configuration directory (a copy of
#      mods-available: /etc/apache2 and /var/lib/apache2 are not touched)
#      enables mod_dbd and mod_socache_shmcb too, as btsso.load's
#      "# Depends:" line asks; btssoctl from that root creates an SQLite
#      store; an httpd on a free 127.0.0.1 port running the unpacked module
#      with the packaged btsso.conf answers GET /sso/metadata with 200;
#   5. the man pages render at 80 columns without a warning, and the shipped
#      schema scripts are `btssoctl schema`'s.
# Every process it starts is stopped by its PID.
set -eu
[ "${BTSSO_TEST_PACKAGE:-}" = 1 ] || {
    echo "package-test: skipped (set BTSSO_TEST_PACKAGE=1)"; exit 77; }
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in dpkg-buildpackage dh dh_apache2 lintian man a2enmod; do
    command -v $tool >/dev/null 2>&1 || {
        echo "package-test: $tool missing: sh scripts/deps.sh test" >&2; exit 1; }
done
HTTPD=${HTTPD:-/usr/sbin/apache2}
MODDIR=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)

tmp=$(mktemp -d)
chmod 755 "$tmp"
httpd_pid=""
cleanup() {
    if [ -n "$httpd_pid" ] && kill -0 "$httpd_pid" 2>/dev/null; then
        kill -TERM "$httpd_pid" 2>/dev/null || true
        i=0
        while kill -0 "$httpd_pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -KILL "$httpd_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
die() {
    echo "package-test: $*" >&2
    exit 1
}

# ---- 1. build from a clean copy -----------------------------------------------
# The files git knows (committed or not, minus what .gitignore drops), or
# without .git (t/run's staged copy) the tree minus build products.
mkdir "$tmp/src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z -c -o --exclude-standard \
        | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh \
        | grep -v -E '^(build|build-asan|debian/build|debian/tmp)/' \
        | tar -cf - -T -) | tar -xf - -C "$tmp/src"
else
    (cd "$top" && tar -cf - --exclude=./build --exclude=./build-asan \
        --exclude=./autom4te.cache --exclude=./debian/build \
        --exclude=./debian/tmp --exclude=./debian/.debhelper \
        --exclude=./debian/libapache2-mod-btsso --exclude=./configure \
        --exclude=./config.status --exclude='*.o' --exclude='*.lo' .) \
        | tar -xf - -C "$tmp/src"
fi
[ -f "$tmp/src/debian/rules" ] || die "no debian/rules in the copy"
echo "package-test: dpkg-buildpackage -us -uc -b (log: build.log)"
if ! (cd "$tmp/src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CFLAGS \
        -u BTSSO_BUILDDIR DEB_BUILD_OPTIONS="parallel=$(nproc)" \
        dpkg-buildpackage -us -uc -b) > "$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log" >&2
    die "dpkg-buildpackage failed"
fi
grep -q "check-docs: manuals, help strings and schema scripts agree" \
    "$tmp/build.log" || die "the package build did not run t/check-docs.sh"
deb=$(ls "$tmp"/libapache2-mod-btsso_*.deb)
changes=$(ls "$tmp"/libapache2-mod-btsso_*.changes)

# ---- 2. lintian -----------------------------------------------------------------
lintian --info "$changes" > "$tmp/lintian.log" 2>&1 || true
if grep -E '^(E|W): ' "$tmp/lintian.log" >&2; then
    die "lintian reports errors or warnings (above)"
fi
grep -E '^[A-Z]: ' "$tmp/lintian.log" || true
# lintian must be able to fail here: the same package without its
# copyright file is an error
mkdir "$tmp/broken"
dpkg-deb -R "$deb" "$tmp/broken/pkg"
rm "$tmp/broken/pkg/usr/share/doc/libapache2-mod-btsso/copyright"
sed -i '/usr\/share\/doc\/libapache2-mod-btsso\/copyright/d' \
    "$tmp/broken/pkg/DEBIAN/md5sums"
dpkg-deb -b "$tmp/broken/pkg" "$tmp/broken/broken.deb" >/dev/null
lintian "$tmp/broken/broken.deb" 2>/dev/null | grep -q '^E: .*no-copyright-file' \
    || die "lintian did not flag a package without copyright: is it working?"

# ---- 3. maintainer scripts --------------------------------------------------------
dpkg-deb -e "$deb" "$tmp/control"
if [ -e "$tmp/control/postinst" ]; then
    if grep -nE 'enmod|invoke-rc\.d|systemctl|apache2ctl|restart|reload' \
            "$tmp/control/postinst" >&2; then
        die "postinst enables the module or touches httpd (above)"
    fi
fi
grep -q 'apache2_invoke dismod' "$tmp/control/prerm" \
    && grep -q 'for conf in btsso' "$tmp/control/prerm" \
    || die "prerm does not disable the module before its file goes"

# ---- 4. the unpacked package, run -----------------------------------------------
root="$tmp/root"
dpkg -x "$deb" "$root"
for f in usr/lib/apache2/modules/mod_btsso.so usr/sbin/btssoctl \
         etc/apache2/mods-available/btsso.load \
         etc/apache2/mods-available/btsso.conf \
         usr/share/mod_btsso/schema/btsso-sqlite3.sql \
         usr/share/mod_btsso/schema/btsso-pgsql.sql \
         usr/share/mod_btsso/schema/btsso-mysql.sql \
         usr/share/man/man8/btssoctl.8.gz usr/share/man/man5/mod_btsso.5.gz \
         usr/share/doc/libapache2-mod-btsso/runbook.md.gz \
         usr/share/doc/libapache2-mod-btsso/copyright; do
    [ -e "$root/$f" ] || die "the package lacks /$f"
done
load="$root/etc/apache2/mods-available/btsso.load"
deps=$(sed -n 's/^# Depends:[[:space:]]*//p' "$load")
for m in dbd socache_shmcb; do
    echo " $deps " | grep -q " $m " \
        || die "btsso.load's '# Depends:' line does not name $m ('$deps')"
done
ctl="$root/usr/sbin/btssoctl"
for d in sqlite3 pgsql mysql; do
    "$ctl" schema $d | cmp -s - "$root/usr/share/mod_btsso/schema/btsso-$d.sql" \
        || die "btsso-$d.sql is not the packaged btssoctl's schema $d"
done

# a2enmod on a copy of the machine's mods-available plus the package's files
conf="$tmp/etc"
mkdir -p "$conf/mods-enabled" "$tmp/state"
cp -r /etc/apache2/mods-available "$conf/"
cp "$root/etc/apache2/mods-available/btsso.conf" "$conf/mods-available/"
sed "s#/usr/lib/apache2/modules/mod_btsso.so#$root/usr/lib/apache2/modules/mod_btsso.so#" \
    "$load" > "$conf/mods-available/btsso.load"
grep -q "^LoadModule btsso_module $root/" "$conf/mods-available/btsso.load" \
    || die "btsso.load does not load /usr/lib/apache2/modules/mod_btsso.so"
a2() {
    APACHE_CONFDIR="$conf" APACHE_ENVVARS=/dev/null \
        APACHE_STATE_DIRECTORY="$tmp/state" "$@"
}
a2 a2enmod -q mpm_event authz_core btsso > "$tmp/a2enmod.log" 2>&1 \
    || { cat "$tmp/a2enmod.log" >&2; die "a2enmod btsso failed"; }
for m in btsso.load btsso.conf dbd.load socache_shmcb.load; do
    [ -L "$conf/mods-enabled/$m" ] \
        || die "a2enmod btsso did not enable $m ($(ls "$conf/mods-enabled"))"
done

# the store, made by the packaged btssoctl (as httpd's user when root)
run_as=""
user=""
if [ "$(id -u)" = 0 ]; then
    user=www-data
    run_as="runuser -u $user --"
    chown "$user" "$tmp"
fi
db="$tmp/btsso.db"
$run_as "$ctl" -d sqlite3 -p "$db" init > "$tmp/init.log" 2>&1 \
    || { cat "$tmp/init.log" >&2; die "btssoctl init failed"; }
grep -q "schema upgraded from version 0" "$tmp/init.log" \
    || die "btssoctl init: $(cat "$tmp/init.log")"
$run_as "$ctl" -d sqlite3 -p "$db" account add acme >/dev/null \
    || die "btssoctl account add failed"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$tmp/docroot"
cat > "$tmp/httpd.conf" <<CONF
ServerRoot $tmp
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $tmp/httpd.pid
DefaultRuntimeDir $tmp
ErrorLog $tmp/error.log
LogLevel warn
Mutex file:$tmp default
DocumentRoot $tmp/docroot
${user:+User $user}
${user:+Group $user}
IncludeOptional $conf/mods-enabled/*.load
IncludeOptional $conf/mods-enabled/*.conf
# the packaged btsso.conf is read as is above; this site's values:
DBDriver sqlite3
DBDParams $db
BTSSOBaseURL http://127.0.0.1:$port
BTSSOCookieSecure Off
CONF
"$HTTPD" -t -f "$tmp/httpd.conf" > "$tmp/configtest.log" 2>&1 \
    || { cat "$tmp/configtest.log" >&2; die "configtest failed"; }
"$HTTPD" -f "$tmp/httpd.conf" -DFOREGROUND > "$tmp/httpd.out" 2>&1 &
httpd_pid=$!
python3 - "$port" "$tmp/error.log" <<'PY' || { cat "$tmp/error.log" "$tmp/httpd.out" >&2 || true; die "GET /sso/metadata failed"; }
import sys, time, urllib.request
port, log = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s/sso/metadata" % port
deadline = time.time() + 20
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
            assert r.status == 200, r.status
            assert "EntityDescriptor" in body, body[:200]
            assert 'entityID="http://127.0.0.1:%s/sso"' % port in body, body[:400]
        break
    except (ConnectionError, OSError) as e:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
print("package-test: GET /sso/metadata: 200 from the packaged module")
PY
if grep -E '\[(error|crit|alert|emerg)\]|\] \[[a-z_]*:(error|crit|emerg)\]' \
        "$tmp/error.log" >&2; then
    die "httpd logged errors (above)"
fi
kill -TERM "$httpd_pid"
wait "$httpd_pid" 2>/dev/null || true
httpd_pid=""

# ---- 5. the man pages render ---------------------------------------------------
for page in usr/share/man/man8/btssoctl.8.gz usr/share/man/man5/mod_btsso.5.gz; do
    MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$root/$page" \
        > "$tmp/page.txt" 2> "$tmp/page.err" || die "man -l $page failed"
    [ ! -s "$tmp/page.err" ] || { cat "$tmp/page.err" >&2; die "man warns on $page"; }
    [ -s "$tmp/page.txt" ] || die "$page renders empty"
done
grep -q "EXIT STATUS" "$tmp/page.txt" 2>/dev/null || true
echo "package-test: package built, lintian clean, a2enmod btsso, httpd and btssoctl from the package work"
