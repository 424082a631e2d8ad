"""The module on a MySQL/MariaDB store (DBDriver mysql through mod_dbd):
what the driver does differently from sqlite3 and pgsql, through a real
httpd and a throwaway MariaDB (t/lib/mariadbtmp.sh).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_mysql_store.py
"""
import time

import requests

import mariadbtmp
from mariadbtmp import mariadb_server, mariadb  # noqa: F401 (fixtures)
from portal import Portal


def sid_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1]
    return None


def kill_connections(params):
    """What a database restart or a failover does to mod_dbd's pool: every
    connection to the store's database is closed by the server."""
    db = mariadbtmp.parse(params)["dbname"]
    ids = [r[0] for r in mariadbtmp.sql(
        params, "SELECT ID FROM information_schema.PROCESSLIST"
        " WHERE DB = '%s' AND ID <> CONNECTION_ID()" % db)]
    for i in ids:
        try:
            mariadbtmp.sql(params, "KILL CONNECTION %s" % i)
        except AssertionError:
            pass    # gone meanwhile
    return len(ids)


def test_connections_dropped_by_the_server(make_httpd, tmp_path, mariadb):
    """With reconnect=0 (what the guide says), a connection the server
    dropped is thrown away by mod_dbd and the next one is made with the
    statements prepared and the session set up again: requests work again
    at once.  (With the driver's default reconnect=1 the client library
    reconnected under mod_dbd's feet, without the prepared statements, and
    logins answered 500 "The account database failed" from then on: see
    the next test.)"""
    p = Portal(make_httpd, tmp_path, dbdriver="mysql",
               dbdparams=mariadb).start()
    r = p.login()
    assert r.status_code == 303, r.text
    sid = sid_of(r)
    for _ in range(6):
        s = requests.get(p.url + "/sso/session", timeout=10,
                         cookies={"btsso_session": sid})
        assert s.status_code == 200
    assert kill_connections(mariadb) >= 1
    time.sleep(0.2)
    # a pooled connection found dead fails the request that found it (503,
    # never anything else), not the ones after it
    p.httpd.expect_log("AH00639")       # mod_dbd: lost connection
    codes = []
    for _ in range(12):
        r = p.login()
        codes.append(r.status_code)
    assert set(codes) <= {303, 503}, codes
    assert codes[-4:] == [303] * 4, codes
    # and what the store says is still right after the reconnect
    assert p.ctl("--json", "account", "show", p.account).returncode == 0


def test_reconnect_default_refused(make_httpd, tmp_path, mariadb):
    """DBDParams for mysql without reconnect=0 (the driver then defaults to
    1) fails configtest with the reason, and never shows the password."""
    for params in (mariadb.replace(" reconnect=0", ""),
                   mariadb.replace("reconnect=0", "reconnect=1"),
                   mariadb.replace("reconnect=0", "ReConnect = 2")):
        h = make_httpd(dbdriver="mysql", dbdparams=params)
        code, out = h.configtest()
        assert code != 0, out
        assert "reconnect=0" in out, out
        assert mariadbtmp.parse(mariadb)["pass"] not in out
    h = make_httpd(dbdriver="mysql",
                   dbdparams=mariadb.replace("reconnect=0", "reconnect = 0"))
    code, out = h.configtest()
    assert code == 0, out


def test_found_rows_flag_required(make_httpd, tmp_path, mariadb):
    """DBDParams for mysql without flags=CLIENT_FOUND_ROWS fails configtest:
    MySQL would count an UPDATE that changes nothing as matching no row,
    and "update, else insert" (the refresh schedule, the sign-in counts)
    would insert a duplicate."""
    h = make_httpd(dbdriver="mysql",
                   dbdparams=mariadb.replace(" flags=CLIENT_FOUND_ROWS", ""))
    code, out = h.configtest()
    assert code != 0, out
    assert "flags=CLIENT_FOUND_ROWS" in out, out
    assert mariadbtmp.parse(mariadb)["pass"] not in out

