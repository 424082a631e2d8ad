"""One machine becomes many: two httpd nodes behind one BTSSOBaseURL share
the store and a memcached or redis session cache.  A login started on one
node completes on the other, a session made on one is honoured by the
other, a response used on one is a replay on the other, and a logout on
one ends the session everywhere.  The store is a shared SQLite file, or a
throwaway MariaDB (t/lib/mariadbtmp.sh), the cluster store SPEC names."""
import shutil
import signal
import subprocess

import pytest
import requests

import btsso_httpd
import cachesrv
from mariadbtmp import mariadb_server, mariadb  # noqa: F401 (fixtures)
from portal import Portal, SPKEYS


wait_port = cachesrv.wait_port


@pytest.fixture
def memcached():
    with cachesrv.memcached_server() as port:
        yield ("socache_memcache_module", "mod_socache_memcache.so",
               "memcache:127.0.0.1:%d" % port)


@pytest.fixture
def redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (scripts/deps.sh test)")
    port = btsso_httpd.free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1",
                             "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc, "redis-server")
    yield ("socache_redis_module", "mod_socache_redis.so",
           "redis:127.0.0.1:%d" % port)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def two_nodes(make_httpd, tmp_path, cache, **store):
    """store: nothing (a shared SQLite file) or dbdriver=, dbdparams=."""
    module, so, spec = cache
    conf = "BTSSOSessionCache %s\n" % spec
    a = Portal(make_httpd, tmp_path, btsso_conf=conf,
               modules=[(module, so)], **store).start()
    if not store:
        store = {"db": a.httpd.db}
    b = make_httpd(
        btsso_conf=("BTSSOConfigTTL 0\nBTSSOSessionCache {spec}\n"
                    "BTSSOSPCertificate {k}/sp-current.crt\n"
                    "BTSSOSPPrivateKey {k}/sp-current.key\n").format(
                        spec=spec, k=SPKEYS),
        modules=[(module, so)], base_url=a.url, **store)
    b.start()
    return a, b


def sid_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1]
    return None


@pytest.mark.parametrize("cache_name", ["memcached", "redis"])
def test_two_nodes_share_sessions(make_httpd, tmp_path, request, cache_name):
    cache = request.getfixturevalue(cache_name)
    a, b = two_nodes(make_httpd, tmp_path, cache)
    share_sessions(a, b)


def test_two_nodes_on_mariadb(make_httpd, tmp_path, memcached, mariadb):
    """Both nodes on one MariaDB (DBDriver mysql through mod_dbd's prepared
    statements) and memcached: the whole sign-in reads the store (account,
    IdP, certificates, users by email), and a change btssoctl makes
    through node A's configuration reaches node B through the database."""
    a, b = two_nodes(make_httpd, tmp_path, memcached, dbdriver="mysql",
                     dbdparams=mariadb)
    share_sessions(a, b)
    # a new session, then SSO disabled by support: sessions follow the
    # account (its sessions_epoch in the store) on every node
    sid = sid_of(a.login())
    assert sid
    s = requests.get(b.url + "/sso/session", timeout=10,
                     cookies={"btsso_session": sid})
    assert s.status_code == 200
    a.ctl("disable", a.account)
    s = requests.get(b.url + "/sso/session", timeout=10,
                     cookies={"btsso_session": sid})
    assert s.status_code == 401


def share_sessions(a, b):
    # a login started on node A completes on node B: the browser brings
    # the pending-request cookie of A, which B verifies with the key both
    # derive from the shared SP key
    _, req = a.start_login(ret="/app/")
    assert len(a.pending) == 1
    b64 = a.idp.response(req)
    r = requests.post(b.url + "/sso/acs", data={
        "SAMLResponse": b64, "RelayState": req.relay_state},
        cookies=a.pending, allow_redirects=False, timeout=20)
    assert r.status_code == 303, r.text
    sid = sid_of(r)
    # the session is honoured on both nodes
    for node in (a.url, b.url):
        s = requests.get(node + "/sso/session", timeout=10,
                         cookies={"btsso_session": sid})
        assert s.status_code == 200, node
        assert s.json()["email"] == "ann@example.com"
    # the same response on node A is a replay
    a.httpd.expect_log("BTSSO0210")
    r = a.acs(b64, req.relay_state)
    assert r.status_code == 403
    # logout on A ends the session on B
    requests.get(a.url + "/sso/logout", cookies={"btsso_session": sid},
                 allow_redirects=False, timeout=10)
    s = requests.get(b.url + "/sso/session", timeout=10,
                     cookies={"btsso_session": sid})
    assert s.status_code == 401
