"""Cross-tenant admin takeover (issue 8 item 3) through a real httpd.

Two self-service accounts, `victim` and `evil`, each with its own pysaml2
IdP.  The admin API is behind `AuthType BTSSO` (the module's own sessions),
so REMOTE_USER is only an email, and an email is unique only within one
account.  Evil's administrator adds the victim administrator's email as an
administrator of `evil`, asserts it from evil's IdP and holds a session of
`evil` with that email.  That session must not read or change `victim`
(SPEC "Admin": the session's account must be the path's account), and an
X-CSRF-Token is bound to the session's account ("-" when the location is
authenticated otherwise).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_sec_admin.py
"""
import os
import sqlite3

import pytest
import requests

from adminlib import SPKEYS, PASSWORD, write_htpasswd
from pysaml_idp import PysamlIdP

VICTIM_ADMIN = "vic@victim.example"
EVIL_ADMIN = "eve@evil.example"

LOCATIONS = """
<Location /admin/sso>
    AuthType BTSSO
    Require valid-user
    SetHandler btsso-admin
</Location>
<Location /admin/basic>
    AuthType Basic
    AuthName "BT Cloud Work portal"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
    SetHandler btsso-admin
</Location>
"""


class Tenants:
    """httpd with the admin handler behind AuthType BTSSO (/admin/sso) and
    behind Basic (/admin/basic); accounts victim and evil, SSO enabled for
    both, each with its own IdP (different entityIDs and signing keys)."""

    IDPS = {"victim": ("https://idp.victim.example/idp", "okta"),
            "evil": ("https://idp.evil.example/idp", "google")}

    def __init__(self, make_httpd):
        conf = ("BTSSOSPCertificate {k}/sp-current.crt\n"
                "BTSSOSPPrivateKey {k}/sp-current.key\n"
                "BTSSOConfigTTL 0\n".format(k=SPKEYS))
        self.httpd = make_httpd(btsso_conf=conf)
        self.htpasswd = os.path.join(self.httpd.dir, "htpasswd")
        self.httpd.extra_conf = LOCATIONS.format(htpasswd=self.htpasswd)
        self.tmp = os.path.join(self.httpd.dir, "t")
        os.makedirs(self.tmp, exist_ok=True)
        self.idps = {}

    @property
    def url(self):
        return self.httpd.url

    def ctl(self, *args, **kw):
        return self.httpd.ctl(*args, **kw)

    def start(self):
        h = self.httpd
        write_htpasswd(self.htpasswd, [VICTIM_ADMIN, EVIL_ADMIN])
        h.write_config()
        self.ctl("init")
        self.ctl("account", "add", "victim", "--name", "Victim Ltd")
        self.ctl("account", "add", "evil", "--name", "Evil Ltd")
        self.ctl("user", "add", "victim", "100", VICTIM_ADMIN, "--admin")
        self.ctl("user", "add", "victim", "101", "bob@victim.example")
        self.ctl("user", "add", "evil", "100", EVIL_ADMIN, "--admin")
        h.start()
        sp_md = requests.get(self.url + "/sso/metadata", timeout=10).text
        for account, (entity, key) in sorted(self.IDPS.items()):
            idp = PysamlIdP(os.path.join(self.tmp, "idp-" + account), sp_md,
                            entity_id=entity, key=key + ".key",
                            cert=key + ".crt")
            f = os.path.join(self.tmp, "idp-%s.xml" % account)
            with open(f, "w") as fh:
                fh.write(idp.metadata())
            h.fix_perms()
            self.ctl("idp", "import", account, f)
            self.ctl("attr", "set", account, "mail")
            self.ctl("enable", account)
            self.idps[account] = idp
        return self

    def sso_session(self, account, email):
        """A browser that signed in to `account` through that account's
        IdP as `email` (SP-initiated, the whole round trip)."""
        s = requests.Session()
        r = s.get(self.url + "/sso/login/" + account, allow_redirects=False,
                  timeout=20)
        assert r.status_code == 302, (r.status_code, r.text)
        idp = self.idps[account]
        req = idp.parse_redirect(r.headers["Location"])
        # the pending sign-in cookie is Secure (SameSite=None), which
        # requests' jar never sends over http: send it as a browser on
        # loopback does
        pending = {}
        for h in r.raw.headers.getlist("Set-Cookie"):
            name, _, rest = h.partition("=")
            if "_pending_" in name:
                pending[name] = rest.split(";", 1)[0]
        r = s.post(self.url + "/sso/acs", allow_redirects=False, timeout=20,
                   data={"SAMLResponse": idp.response(req, email=email),
                         "RelayState": req.relay_state}, cookies=pending)
        assert r.status_code == 303, (r.status_code, r.text)
        j = s.get(self.url + "/sso/session", timeout=10).json()
        assert (j["account"], j["email"]) == (account, email), j
        return s

    def basic(self, email):
        s = requests.Session()
        s.auth = (email, PASSWORD)
        return s

    def snapshot(self, account):
        """Every stored row of the account (settings, IdP, certificates,
        users, audit trail), to show nothing changed."""
        db = sqlite3.connect(self.httpd.db)
        try:
            snap = {t: sorted(db.execute(
                        "SELECT * FROM %s WHERE account = ?" % t,
                        (account,)).fetchall(), key=repr)
                    for t in ("accounts", "idp", "users", "audit")}
            # certificates without last_verified: a login (not an admin
            # write) moves it
            snap["certificates"] = sorted(db.execute(
                "SELECT account, sha256, role, der, not_before, not_after,"
                " source FROM certificates WHERE account = ?",
                (account,)).fetchall(), key=repr)
            return snap
        finally:
            db.close()

    def audit(self, account):
        db = sqlite3.connect(self.httpd.db)
        try:
            return [r for r in db.execute(
                "SELECT actor, action FROM audit WHERE account = ? "
                "ORDER BY id", (account,)) if not r[0].startswith("btssoctl:")]
        finally:
            db.close()


def api(s, method, base, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["X-CSRF-Token"] = token
    kw.setdefault("timeout", 20)
    kw.setdefault("allow_redirects", False)
    return s.request(method, base + path, headers=headers, **kw)


@pytest.fixture
def tenants(make_httpd):
    t = Tenants(make_httpd).start()
    # evil's administrator makes the victim admin's email an admin of evil
    # (nothing stops them: it is their account)
    t.ctl("user", "add", "evil", "102", VICTIM_ADMIN, "--admin")
    return t


def test_session_of_another_account_cannot_administer(tenants):
    t = tenants
    t.httpd.expect_log("BTSSO0405")
    before = t.snapshot("victim")
    assert before["accounts"][0][2] == 1            # SSO enabled
    # a session of evil carrying the victim admin's email
    s = t.sso_session("evil", VICTIM_ADMIN)
    sso = t.url + "/admin/sso/"
    # its own account works: it is an admin of evil
    r = api(s, "GET", sso, "evil/config")
    assert r.status_code == 200, r.text
    evil_token = r.json()["csrf_token"]
    # victim's state is refused, token included
    r = api(s, "GET", sso, "victim/config")
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "forbidden"
    assert "csrf_token" not in r.text
    for path in ("victim/", "victim/sp-metadata", "victim/duplicate-emails"):
        r = api(s, "GET", sso, path)
        assert r.status_code == 403, (path, r.status_code)
        assert "csrf_token" not in r.text
    # writes with the token evil's page gave out: refused
    r = api(s, "PUT", sso, "victim/enabled", token=evil_token,
            json={"enabled": False})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    evil_md = open(os.path.join(t.tmp, "idp-evil.xml"), "rb").read()
    r = api(s, "POST", sso, "victim/metadata", token=evil_token,
            data=evil_md, headers={"Content-Type": "application/xml"})
    assert r.status_code == 403, r.text
    r = api(s, "PUT", sso, "victim/email-attribute", token=evil_token,
            json={"name_id": True})
    assert r.status_code == 403, r.text
    # nothing of victim changed, and no audit row blames its admin
    assert t.snapshot("victim") == before
    assert t.audit("victim") == []
    # victim's users still sign in through victim's own IdP
    t.sso_session("victim", "bob@victim.example")
    assert "BTSSO0405" in t.httpd.log_text()


def test_victim_admin_with_a_session_of_victim_can(tenants):
    t = tenants
    s = t.sso_session("victim", VICTIM_ADMIN)
    sso = t.url + "/admin/sso/"
    # the session of victim cannot administer evil, although its email is
    # an admin of evil too
    t.httpd.expect_log("BTSSO0405")
    r = api(s, "GET", sso, "evil/config")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    # and it administers victim
    r = api(s, "GET", sso, "victim/config")
    assert r.status_code == 200, r.text
    assert r.json()["user"] == VICTIM_ADMIN and r.json()["enabled"] is True
    r = api(s, "PUT", sso, "victim/enabled", token=r.json()["csrf_token"],
            headers={"If-Match": '"%d"' % r.json()["version"]},
            json={"enabled": False, "allow_password": True})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False
    assert t.audit("victim") == [(VICTIM_ADMIN, "sso.disable")]
    # disabling SSO ended victim's sessions, this one included (sessions
    # follow the account): the next request has none
    r = api(s, "GET", sso, "victim/config")
    assert r.status_code == 302, r.status_code


def test_csrf_token_bound_to_the_session_account(tenants):
    t = tenants
    t.httpd.expect_log("BTSSO0404")
    t.httpd.expect_log("BTSSO0405")
    sso, basic = t.url + "/admin/sso/", t.url + "/admin/basic/"
    before = t.snapshot("victim")
    body = {"enabled": True, "allow_password": True}
    victim_s = t.sso_session("victim", VICTIM_ADMIN)
    evil_s = t.sso_session("evil", VICTIM_ADMIN)
    pw = t.basic(VICTIM_ADMIN)              # the same email, by password
    tok_evil = api(evil_s, "GET", sso, "evil/config").json()["csrf_token"]
    tok_victim = api(victim_s, "GET", sso, "victim/config").json()[
        "csrf_token"]
    r = api(pw, "GET", basic, "victim/config")
    assert r.status_code == 200, r.text
    tok_basic = r.json()["csrf_token"]
    assert len({tok_evil, tok_victim, tok_basic}) == 3
    # a token from evil's session, under victim's session
    r = api(victim_s, "PUT", sso, "victim/enabled", token=tok_evil,
            json=body)
    assert r.status_code == 403 and r.json()["error"] == "csrf", r.text
    # ... and under evil's own session on evil's path it would work, but
    # on victim's path evil's session is refused outright
    r = api(evil_s, "PUT", sso, "victim/enabled", token=tok_victim,
            json=body)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    # the same user and account, minted where no session was involved
    # (Basic: session account "-"), refused under victim's session
    r = api(victim_s, "PUT", sso, "victim/enabled", token=tok_basic,
            json=body)
    assert r.status_code == 403 and r.json()["error"] == "csrf", r.text
    # and a token minted under victim's session is refused by password
    r = api(pw, "PUT", basic, "victim/enabled", token=tok_victim, json=body)
    assert r.status_code == 403 and r.json()["error"] == "csrf", r.text
    assert t.snapshot("victim") == before
    # each with its own token: accepted
    r = api(victim_s, "PUT", sso, "victim/enabled", token=tok_victim,
            json=body)
    assert r.status_code == 200, r.text
    assert r.json()["allow_password"] is True
    r = api(pw, "PUT", basic, "victim/enabled", token=tok_basic,
            json={"enabled": True, "allow_password": False})
    assert r.status_code == 200, r.text
    assert t.audit("victim") == [(VICTIM_ADMIN, "sso.enable")] * 2
