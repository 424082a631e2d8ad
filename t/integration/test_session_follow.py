"""Sessions follow the account (SPEC "Enforcement and the admin table").

Within BTSSOConfigTTL, on every node, a session ends once SSO is disabled
for its account, the account's IdP entityID changes, or it is revoked
(admin API POST sessions/revoke, btssoctl session revoke); within
BTSSOUserRecheck once its user is removed from the account or no longer has
its email.  An ended session stays ended.  While the account's cached entry
is fresh, a protected request reads no store at all."""
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest
import requests

import btsso_httpd
import cachesrv
from adminlib import ADMIN_LOCATION, PASSWORD, write_htpasswd
from portal import Portal, SPKEYS

TTL = 1.0           # BTSSOConfigTTL of these tests
ADMIN = "carl@example.com"


def sid_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1]
    return None


def session_status(url, sid):
    return requests.get(url + "/sso/session", timeout=10,
                        cookies={"btsso_session": sid}).status_code


def app_status(url, sid):
    return requests.get(url + "/app/", timeout=10, allow_redirects=False,
                        cookies={"btsso_session": sid}).status_code


def ended_within(urls, sid, seconds):
    """Seconds until the session is refused on every node (or None)."""
    start = time.time()
    while True:
        if all(session_status(u, sid) == 401 for u in urls):
            return time.time() - start
        if time.time() - start > seconds:
            return None
        time.sleep(0.1)


def make_portal(make_httpd, tmp_path, conf="", **kw):
    conf = ("BTSSOConfigTTL 1\n" if "BTSSOConfigTTL" not in conf else "") \
        + conf
    p = Portal(make_httpd, tmp_path, btsso_conf=conf,
               extra_conf=ADMIN_LOCATION.format(
                   htpasswd="{dir}/htpasswd"), **kw)
    p.httpd.extra_conf = p.httpd.extra_conf.replace("{dir}", p.httpd.dir)
    write_htpasswd(os.path.join(p.httpd.dir, "htpasswd"), [ADMIN])
    return p


def start(p):
    p.start(users=(("100", "ann@example.com"), ("101", "bob@example.com"),
                   ("102", ADMIN)))
    p.ctl("user", "list", "acme")
    db = sqlite3.connect(p.httpd.db)
    db.execute("UPDATE users SET is_admin = 1 WHERE email = ?", (ADMIN,))
    db.commit()
    db.close()
    return p


class Admin:
    def __init__(self, url):
        self.url = url + "/admin/sso/acme/"
        self.s = requests.Session()
        self.s.auth = (ADMIN, PASSWORD)

    def token(self):
        r = self.s.get(self.url + "config", timeout=20)
        assert r.status_code == 200, r.text
        return r.json()["csrf_token"]

    def send(self, method, path, body, token=True):
        h = {"X-CSRF-Token": self.token()} if token else {}
        return self.s.request(method, self.url + path, json=body, headers=h,
                              timeout=20)


def login(p, email="ann@example.com", url=None):
    r, req = p.start_login(ret="/app/")
    b64 = p.idp.response(req, email=email)
    if url is None:
        r = p.acs(b64, req.relay_state)
    else:
        r = requests.post(url + "/sso/acs", data={
            "SAMLResponse": b64, "RelayState": req.relay_state},
            cookies=p.pending, allow_redirects=False, timeout=20)
    assert r.status_code == 303, r.text
    sid = sid_of(r)
    assert sid
    assert session_status(p.url, sid) == 200
    return sid


def sql(p, statement, *args):
    db = sqlite3.connect(p.httpd.db, timeout=10)
    db.execute(statement, args)
    db.commit()
    db.close()


# ---- one node ------------------------------------------------------------------

def test_disable_by_admin_api_ends_sessions_for_good(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    sid = login(p)
    assert app_status(p.url, sid) == 200
    r = Admin(p.url).send("PUT", "enabled", {"enabled": False})
    assert r.status_code == 200, r.text
    assert ended_within([p.url], sid, TTL + 1) is not None
    assert app_status(p.url, sid) == 302
    # enabling again revives nothing
    p.ctl("enable", "acme")
    time.sleep(TTL + 0.2)
    assert session_status(p.url, sid) == 401
    assert app_status(p.url, sid) == 302
    # but a new login works
    sid2 = login(p)
    assert app_status(p.url, sid2) == 200


def test_disable_by_btssoctl_ends_sessions(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    sid = login(p)
    p.ctl("disable", "acme")
    took = ended_within([p.url], sid, TTL + 1)
    assert took is not None
    p.ctl("enable", "acme")
    time.sleep(TTL + 0.2)
    assert session_status(p.url, sid) == 401


def test_new_idp_entity_ends_sessions(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    sid = login(p)
    # the IdP is replaced (say after a compromise): a new metadata upload
    # with another entityID
    p.idp = p.make_idp("acme", entity_id="https://idp2.test.example/idp")
    assert ended_within([p.url], sid, TTL + 1) is not None
    sid2 = login(p)             # through the new IdP
    assert app_status(p.url, sid2) == 200


def test_same_idp_metadata_again_keeps_sessions(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    sid = login(p)
    f = os.path.join(p.tmp, "idp-acme.xml")
    p.ctl("idp", "import", "acme", f)
    time.sleep(TTL + 0.3)
    assert session_status(p.url, sid) == 200


def test_revoke_all_by_admin_api(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    ann = login(p)
    bob = login(p, "bob@example.com")
    admin = Admin(p.url)
    # a change: CSRF token required
    p.httpd.expect_log("BTSSO0404")
    r = admin.send("POST", "sessions/revoke", {}, token=False)
    assert r.status_code == 403
    assert session_status(p.url, ann) == 200
    r = admin.send("POST", "sessions/revoke", {})
    assert r.status_code == 200, r.text
    assert r.json() == {"revoked": "account"}
    assert ended_within([p.url], ann, TTL + 1) is not None
    assert ended_within([p.url], bob, TTL + 1) is not None
    db = sqlite3.connect(p.httpd.db)
    rows = db.execute("SELECT actor, action FROM audit WHERE action LIKE "
                      "'sessions.%'").fetchall()
    db.close()
    assert rows == [(ADMIN, "sessions.revoke_all")]
    # a session made afterwards is not affected
    ann2 = login(p)
    time.sleep(TTL + 0.2)
    assert session_status(p.url, ann2) == 200


def test_revoke_one_user_leaves_the_others(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    ann = login(p)
    bob = login(p, "bob@example.com")
    r = Admin(p.url).send("POST", "sessions/revoke",
                          {"email": " Ann@Example.com"})
    assert r.status_code == 200, r.text
    assert r.json() == {"revoked": "user"}
    assert ended_within([p.url], ann, TTL + 1) is not None
    time.sleep(TTL + 0.2)
    assert session_status(p.url, bob) == 200
    # ann may sign in again; the new session lives
    ann2 = login(p)
    time.sleep(TTL + 0.2)
    assert session_status(p.url, ann2) == 200
    assert session_status(p.url, ann) == 401
    # btssoctl does the same
    p.ctl("session", "revoke", "acme", "bob@example.com")
    assert ended_within([p.url], bob, TTL + 1) is not None
    assert session_status(p.url, ann2) == 200


def test_btssoctl_revoke_all_and_errors(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path))
    ann = login(p)
    out = p.ctl("session", "revoke", "acme")
    assert "every session" in out.stdout
    assert ended_within([p.url], ann, TTL + 1) is not None
    r = p.ctl("session", "revoke", "nosuch", check=False)
    assert r.returncode == 1
    r = p.ctl("session", "revoke", "acme", "not-an-email", check=False)
    assert r.returncode == 1
    r = p.ctl("session", "revoke", check=False)
    assert r.returncode == 2


def test_user_removed_ends_within_recheck(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path,
                          conf="BTSSOUserRecheck 1\n"))
    ann = login(p)
    bob = login(p, "bob@example.com")
    # the portal's own users table: no btssoctl, no version bump
    sql(p, "DELETE FROM users WHERE account = 'acme' AND email = ?",
        "ann@example.com")
    assert ended_within([p.url], ann, 2.5) is not None
    assert session_status(p.url, bob) == 200
    # the user back: the ended session stays ended
    sql(p, "INSERT INTO users (account, extension, kind, email, is_admin)"
        " VALUES ('acme', '100', 'user', 'ann@example.com', 0)")
    time.sleep(1.2)
    assert session_status(p.url, ann) == 401


def test_user_email_changed_ends_within_recheck(make_httpd, tmp_path):
    p = start(make_portal(make_httpd, tmp_path,
                          conf="BTSSOUserRecheck 2\n"))
    ann = login(p)
    sql(p, "UPDATE users SET email = 'ann.new@example.com'"
        " WHERE account = 'acme' AND extension = '100'")
    assert ended_within([p.url], ann, 3.5) is not None


def test_fresh_entry_reads_no_store(make_httpd, tmp_path):
    """While the account's entry is fresh, a protected request with a valid
    session queries nothing: with every table the check could read renamed
    away, it still succeeds; once the entry is stale it cannot."""
    # One process: the entry is per process, and a request that reached a
    # child which never loaded it (or loaded it at the login, earlier than
    # the clock below on a slow machine) would rightly need the store.
    p = start(make_portal(make_httpd, tmp_path,
                          conf="BTSSOConfigTTL 4\nBTSSOUserRecheck 1h\n",
                          processes=1))
    loaded = time.time()        # at or before the entry's load (the login)
    ann = login(p)
    assert app_status(p.url, ann) == 200
    # the login's success counts are in the store before the tables go
    deadline = time.time() + 5
    while time.time() < deadline:
        db = sqlite3.connect(p.httpd.db)
        try:
            if db.execute("SELECT ok FROM sign_in_days").fetchall():
                break
        finally:
            db.close()
        time.sleep(0.1)
    tables = ("accounts", "idp", "certificates", "users",
              "session_revocations")
    for t in tables:
        sql(p, "ALTER TABLE %s RENAME TO moved_%s" % (t, t))
    try:
        while time.time() - loaded < 2.5:
            assert app_status(p.url, ann) == 200
            assert session_status(p.url, ann) == 200
            time.sleep(0.2)
        time.sleep(max(0, loaded + 4.5 - time.time()))
        p.httpd.expect_log("BTSSO0330")
        p.httpd.expect_log("BTSSO0312")
        p.httpd.expect_log("AH00")    # mod_dbd's complaints
        assert session_status(p.url, ann) != 200
    finally:
        for t in tables:
            sql(p, "ALTER TABLE moved_%s RENAME TO %s" % (t, t))
    # a store that could not answer did not end the session (new
    # connections: the old ones' statements failed for good; shmcb
    # survives a graceful restart)
    p.httpd.graceful()
    deadline = time.time() + 10
    while session_status(p.url, ann) != 200 and time.time() < deadline:
        time.sleep(0.3)
    assert session_status(p.url, ann) == 200


# ---- two nodes sharing memcached (or redis) and the store ----------------------

def wait_port(port, proc):
    import socket
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("memcached exited")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("memcached did not listen")


@pytest.fixture
def memcached():
    with cachesrv.memcached_server() as port:
        yield "memcache:127.0.0.1:%d" % port


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
    wait_port(port, proc)
    yield "redis:127.0.0.1:%d" % port
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def two_nodes(make_httpd, tmp_path, spec, extra=""):
    name = spec.split(":", 1)[0]
    mods = [("socache_%s_module" % name, "mod_socache_%s.so" % name)]
    a = make_portal(make_httpd, tmp_path, conf="BTSSOSessionCache %s\n%s"
                    % (spec, extra), modules=mods)
    start(a)
    b = make_httpd(
        btsso_conf=("BTSSOConfigTTL 1\nBTSSOSessionCache {spec}\n{extra}"
                    "BTSSOSPCertificate {k}/sp-current.crt\n"
                    "BTSSOSPPrivateKey {k}/sp-current.key\n").format(
                        spec=spec, k=SPKEYS, extra=extra),
        extra_conf="<Location /app>\nAuthType BTSSO\nBTSSOAccount \"acme\"\n"
                   "Require valid-user\n</Location>\n",
        modules=mods, base_url=a.url, db=a.httpd.db)
    os.makedirs(os.path.join(b.docroot, "app"), exist_ok=True)
    with open(os.path.join(b.docroot, "app", "index.html"), "w") as f:
        f.write("<p>node b</p>\n")
    b.start()
    return a, b


@pytest.mark.parametrize("cache_name", ["memcached", "redis"])
def test_two_nodes_revocation_and_disable(make_httpd, tmp_path, request,
                                          cache_name):
    a, b = two_nodes(make_httpd, tmp_path,
                     request.getfixturevalue(cache_name))
    urls = [a.url, b.url]
    ann = login(a)
    bob = login(a, "bob@example.com", url=b.url)   # made on node B
    for u in urls:
        assert session_status(u, ann) == 200 and app_status(u, ann) == 200
        assert session_status(u, bob) == 200
    # one user revoked through node A's admin API: ended on both nodes
    r = Admin(a.url).send("POST", "sessions/revoke",
                          {"email": "ann@example.com"})
    assert r.status_code == 200, r.text
    assert ended_within(urls, ann, TTL + 1.5) is not None
    assert all(session_status(u, bob) == 200 for u in urls)
    # SSO disabled with btssoctl: every session ends on both nodes
    carl = login(a, ADMIN)
    a.ctl("disable", "acme")
    for sid in (bob, carl):
        assert ended_within(urls, sid, TTL + 1.5) is not None
    a.ctl("enable", "acme")
    time.sleep(TTL + 0.3)
    assert all(session_status(u, bob) == 401 for u in urls)
    # revoke every session through btssoctl
    dan = login(a, "bob@example.com", url=b.url)
    a.ctl("session", "revoke", "acme")
    assert ended_within(urls, dan, TTL + 1.5) is not None


def test_two_nodes_idp_change_and_user_removed(make_httpd, tmp_path,
                                               memcached):
    a, b = two_nodes(make_httpd, tmp_path, memcached,
                     extra="BTSSOUserRecheck 1\n")
    urls = [a.url, b.url]
    ann = login(a)
    bob = login(a, "bob@example.com")
    sql(a, "DELETE FROM users WHERE account = 'acme' AND email = ?",
        "bob@example.com")
    assert ended_within([b.url], bob, 2.5) is not None
    assert session_status(a.url, bob) == 401
    assert all(session_status(u, ann) == 200 for u in urls)
    a.idp = a.make_idp("acme", entity_id="https://idp2.test.example/idp")
    assert ended_within(urls, ann, TTL + 1.5) is not None
