"""Issue 11 items 2 and 4, through a real httpd.

Audit trail: GET /admin/sso/<account>/audit (JSON, newest first, paged with
before/limit, ?format=csv as a download safe to open in a spreadsheet),
authorized like every admin endpoint; btssoctl audit ACCOUNT [--since]
[--json]; every admin write and btssoctl change leaves a row with its actor.

Enable only after a passing test: PUT enabled {"enabled": true} is 409
untested unless an administrator's /sso/test/<account> login succeeded
since the IdP, its certificates or the email mapping last changed;
confirm_untested overrides (audited); btssoctl enable does not ask.
"""
import csv
import io
import json
import os
import re
import time

import pytest

from adminlib import ADMIN_LOCATION, Client, write_htpasswd
from portal import Portal

ANN = "ann@example.com"          # admin of acme
BOB = "bob@example.com"          # user of acme, no admin
CAROL = "carol@example.com"      # admin of other
FORMULA = "=2+3@example.com"     # admin of acme whose email is a formula
DASH = "-dash@example.com"       # admin of acme


class AuditPortal(Portal):
    """A Portal (pysaml2 IdP imported into acme, mapping "mail") whose
    admin API sits behind Basic authentication, with admins."""

    USERS = (("acme", "100", ANN, True), ("acme", "101", BOB, False),
             ("acme", "102", FORMULA, True), ("acme", "103", DASH, True),
             ("other", "200", CAROL, True))

    def __init__(self, make_httpd, tmp_path, **kw):
        super().__init__(make_httpd, tmp_path, **kw)
        self.htpasswd = os.path.join(self.httpd.dir, "htpasswd")
        self.httpd.extra_conf += ADMIN_LOCATION.format(
            htpasswd=self.htpasswd)

    def start(self):
        h = self.httpd
        write_htpasswd(self.htpasswd, sorted({u[2] for u in self.USERS}))
        h.write_config()
        h.fix_perms()
        self.ctl("init")
        self.ctl("account", "add", "acme", "--name", "Acme Ltd")
        self.ctl("account", "add", "other", "--name", "Other Ltd")
        for acc, ext, email, admin in self.USERS:
            self.ctl("user", "add", acc, ext, email,
                     *(["--admin"] if admin else []))
        h.start()
        self.idp = self.make_idp("acme")
        self.ctl("attr", "set", "acme", "mail")
        return self

    @staticmethod
    def cert_sha(path):
        from adminlib import sha256_of_pem
        return sha256_of_pem(path)

    def client(self, user=ANN, account="acme"):
        return Client(self, user, account)

    def test_login(self, email):
        """The /sso/test/acme round trip as email; returns the result
        page."""
        r = self.get("/sso/test/acme")
        assert r.status_code == 302, r.text
        req = self.idp.parse_redirect(r.headers["Location"])
        r = self.acs(self.idp.response(req, email=email), req.relay_state)
        assert r.status_code == 200 and "Success" in r.text, r.text
        return r.text


@pytest.fixture
def portal(make_httpd, tmp_path):
    return AuditPortal(make_httpd, tmp_path).start()


def audit(c, **params):
    r = c.get("audit", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def ctl_audit(p, *args, check=True):
    return p.ctl("audit", "acme", *args, json_out=True, check=check)


# ---- the trail ---------------------------------------------------------------

def test_audit_json_newest_first_with_actors(portal):
    ann = portal.client()
    assert ann.put("email-attribute", json={"attribute": "email"}) \
        .status_code == 200
    assert ann.put("email-attribute", json={"name_id": True}) \
        .status_code == 200
    assert ann.post("sessions/revoke", json={}).status_code == 200
    j = audit(ann)
    rows = j["audit"]
    assert j["next"] is None
    ids = [a["id"] for a in rows]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    for a in rows:
        assert set(a) == {"id", "at", "actor", "action", "detail"}
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", a["at"])
    # the web's changes, newest first, in REMOTE_USER's name
    assert [(a["actor"], a["action"], a["detail"]) for a in rows[:3]] == [
        (ANN, "sessions.revoke_all", ""),
        (ANN, "idp.email", "name_id"),
        (ANN, "idp.email", "attribute=email")]
    # the set-up made with btssoctl, in the name of its unix user
    older = rows[3:]
    assert [a["action"] for a in older][-1] == "account.add"
    assert {"user.add", "idp.set", "idp.email"} <= {a["action"]
                                                    for a in older}
    assert all(re.match(r"^btssoctl:\S+$", a["actor"]) for a in older)
    # other accounts' rows stay out
    assert not any("carol" in a["detail"] for a in rows)


def test_audit_pages_with_before_and_limit(portal):
    ann = portal.client()
    for i in range(5):
        assert ann.put("email-attribute",
                       json={"attribute": "a%d" % i}).status_code == 200
    everything = audit(ann, limit=500)["audit"]
    assert len(everything) > 6
    seen, before, pages = [], None, 0
    while True:
        params = {"limit": 3}
        if before is not None:
            params["before"] = before
        j = audit(ann, **params)
        assert len(j["audit"]) <= 3
        seen += j["audit"]
        pages += 1
        if j["next"] is None:
            break
        assert j["next"] == j["audit"][-1]["id"]
        before = j["next"]
    assert seen == everything and pages == -(-len(everything) // 3)
    # a page that ends exactly on the oldest row has no next
    j = audit(ann, limit=len(everything))
    assert j["next"] is None and j["audit"] == everything
    j = audit(ann, limit=1)
    assert j["audit"] == everything[:1] and j["next"] == everything[0]["id"]
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "x"},
                {"before": "-1"}, {"before": "1 OR 1=1"},
                {"format": "xml"}):
        r = ann.get("audit", params=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"] == "bad_request"
    assert ann.post("audit", json={}).status_code == 405


def test_audit_csv_download_is_quoted_and_formula_safe(portal):
    ann = portal.client()
    ann.put("email-attribute", json={"attribute": 'odd, "quoted" name'})
    formula = portal.client(FORMULA)
    formula.put("email-attribute", json={"attribute": "mail"})
    dash = portal.client(DASH)
    dash.post("sessions/revoke", json={"email": BOB})
    r = ann.get("audit", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="audit-acme.csv"'
    text = r.content.decode("utf-8")
    # every cell quoted, CRLF rows
    lines = text.split("\r\n")
    assert lines[0] == '"id","at","actor","action","detail"'
    assert lines[-1] == ""
    for line in lines[1:-1]:
        assert line.startswith('"') and line.endswith('"'), line
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "at", "actor", "action", "detail"]
    body = rows[1:]
    # the same rows as the JSON, newest first
    j = audit(ann, limit=500)["audit"]
    assert [int(row[0]) for row in body] == [a["id"] for a in j]
    # a cell a spreadsheet would run as a formula starts with a quote mark
    assert body[0][2:4] == ["'" + DASH, "sessions.revoke_user"]
    assert body[1][2:5] == ["'" + FORMULA, "idp.email", "attribute=mail"]
    assert body[2][2:5] == [ANN, "idp.email",
                            'attribute=odd, "quoted" name']
    for row in body:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row
    # paging works for the download too
    r = ann.get("audit", params={"format": "csv", "limit": 2,
                                 "before": j[0]["id"]})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert [int(x[0]) for x in rows[1:]] == [a["id"] for a in j[1:3]]


def test_audit_authorization(portal):
    portal.httpd.expect_log("BTSSO0403")
    import requests
    url = portal.url + "/admin/sso/acme/audit"
    # no credentials: httpd's own 401
    assert requests.get(url, timeout=10).status_code == 401
    # another account's admin, a user who is no admin: 403 as everywhere
    for who, account in ((CAROL, "acme"), (BOB, "acme"), (ANN, "other"),
                         (CAROL, "nosuch")):
        c = portal.client(who, account)
        for params in ({}, {"format": "csv"}):
            r = c.get("audit", params=params)
            assert r.status_code == 403, (who, account, r.status_code)
            assert r.json()["error"] == "forbidden"
    # carol's own account: only its rows
    rows = audit(portal.client(CAROL, "other"))["audit"]
    assert rows and not any(ANN in a["detail"] for a in rows)


def test_btssoctl_audit_since_and_json(portal):
    ann = portal.client()
    ann.put("email-attribute", json={"attribute": "email"})
    j = json.loads(ctl_audit(portal).stdout)
    assert j["account"] == "acme"
    web = audit(ann, limit=500)["audit"]
    assert j["audit"] == web
    # --since: unix seconds, ISO 8601 dates and times (UTC)
    future = int(time.time()) + 3600
    assert json.loads(ctl_audit(portal, "--since", str(future)).stdout) \
        == {"account": "acme", "audit": []}
    assert json.loads(ctl_audit(portal, "--since", "2000-01-01").stdout) \
        ["audit"] == web
    newest = web[0]["at"]
    only = json.loads(ctl_audit(portal, "--since", newest).stdout)["audit"]
    assert only and all(a["at"] >= newest for a in only)
    assert only[0] == web[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(future))
    assert json.loads(ctl_audit(portal, "--since", stamp).stdout)["audit"] \
        == []
    # text: one tab-separated line per row, newest first
    out = portal.ctl("audit", "acme").stdout.splitlines()
    assert len(out) == len(web)
    assert out[0].split("\t") == [web[0]["at"], ANN, "idp.email",
                                  "attribute=email"]
    for bad in ("yesterday", "2026-13-01", "2026-01-01T25:00", "12abc",
                "2026-01-01+01:00"):
        r = ctl_audit(portal, "--since", bad, check=False)
        assert r.returncode == 2 and "--since" in r.stderr, (bad, r.stderr)
    r = portal.ctl("audit", "nosuch", check=False)
    assert r.returncode == 1 and "not_found" in r.stderr


def test_every_admin_write_is_audited(portal):
    """Each write of the admin API leaves one row more, in the admin's
    name; a refused write leaves none."""
    ann = portal.client()
    cfg = ann.config()
    sha = cfg["certificates"][0]["sha256"]
    md = portal.idp.metadata()
    writes = [
        (lambda: ann.put("email-attribute", json={"attribute": "email"}),
         "idp.email"),
        (lambda: ann.put("certificates/" + sha, json={"role": "secondary"}),
         "cert.role"),
        (lambda: ann.put("certificates/" + sha, json={"role": "primary"}),
         "cert.role"),
        (lambda: ann.post("metadata", data=md + "\n<!-- uploaded again -->\n",
                          headers={"Content-Type": "application/xml"}),
         "idp.set"),
        (lambda: ann.put("email-attribute", json={"attribute": "mail"}),
         "idp.email"),
        (lambda: ann.put("enabled", json={"enabled": True,
                                          "confirm_untested": True}),
         "sso.enable"),
        (lambda: ann.put("enabled", json={"enabled": False}),
         "sso.disable"),
        (lambda: ann.post("sessions/revoke", json={"email": BOB}),
         "sessions.revoke_user"),
    ]
    for do, action in writes:
        before = audit(ann)["audit"][0]["id"]
        r = do()
        assert r.status_code == 200, (action, r.text)
        new = [a for a in audit(ann)["audit"] if a["id"] > before]
        assert new and new[-1]["action"] == action, (action, new)
        assert all(a["actor"] == ANN for a in new)
    # a btssoctl change in its unix user's name; a refused change: nothing
    portal.ctl("enable", "acme")
    before = audit(ann)["audit"]
    assert before[0]["action"] == "sso.enable"
    assert before[0]["actor"].startswith("btssoctl:")
    ann.config()
    r = ann.put("certificates/" + sha, json={"role": "none"})
    assert r.status_code == 409, r.text
    r = ann.delete("certificates/" + sha)
    assert r.status_code == 409, r.text
    assert audit(ann)["audit"] == before


# ---- enable only after a passing test ----------------------------------------

def enable(c, **extra):
    body = {"enabled": True}
    body.update(extra)
    return c.put("enabled", json=body)


def test_enable_needs_a_passing_admin_test(portal):
    ann = portal.client()
    cfg = ann.config()
    assert cfg["missing"] == []
    assert cfg["sso_test"] == {"passed": False, "by": None, "at": None,
                               "outdated": False}
    r = enable(ann)
    assert r.status_code == 409, r.text
    j = r.json()
    assert j["error"] == "untested"
    assert j["test_url"] == portal.url + "/sso/test/acme"
    assert "Test the login first" in j["message"]
    assert ann.config()["enabled"] is False
    # a user who is no administrator passes the test: it does not count
    page = portal.test_login(BOB)
    assert 'id="counts" class="bad"' in page
    assert "not an administrator" in page
    assert ann.config()["sso_test"]["passed"] is False
    assert enable(ann).json()["error"] == "untested"
    # an administrator's passing test does
    page = portal.test_login(ANN)
    assert 'id="counts" class="ok"' in page
    t = ann.config()["sso_test"]
    assert t["passed"] is True and t["by"] == ANN and not t["outdated"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", t["at"])
    r = enable(ann)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    rows = audit(ann)["audit"]
    assert (rows[0]["actor"], rows[0]["action"]) == (ANN, "sso.enable")
    assert (rows[1]["actor"], rows[1]["action"]) == (ANN, "sso.test_passed")
    assert not any(a["actor"] == BOB for a in rows)
    # changing allow_password of an enabled account needs no new test
    ann.put("certificates/" + ann.config()["certificates"][0]["sha256"],
            json={"role": "secondary"})
    r = enable(ann, allow_password=True)
    assert r.status_code == 200 and r.json()["allow_password"] is True


def test_a_later_change_makes_it_untested(portal):
    ann = portal.client()
    portal.test_login(ANN)
    assert ann.config()["sso_test"]["passed"] is True
    # what changes nothing of who may sign in keeps the test
    portal.ctl("user", "add", "acme", "104", "eve@example.com")
    portal.ctl("idp", "import", "acme", os.path.join(portal.tmp,
                                                     "idp-acme.xml"))
    ann.post("sessions/revoke", json={})
    assert ann.config()["sso_test"]["passed"] is True
    sha = ann.config()["certificates"][0]["sha256"]
    md = portal.idp.metadata()
    from adminlib import make_cert
    crt = make_cert(portal.tmp, "extra", 30)
    changes = [
        ("cert_role", lambda: ann.put("certificates/" + sha,
                                      json={"role": "secondary"})),
        ("cert_add", lambda: ann.post("certificates",
                                      data=open(crt, "rb").read())),
        ("cert_remove", lambda: ann.delete(
            "certificates/" + portal.cert_sha(crt))),
        ("mapping", lambda: ann.put("email-attribute",
                                    json={"attribute": "mail"})),
        ("idp", lambda: ann.post("metadata",
                                 data=md + "\n<!-- uploaded again -->\n",
                                 headers={"Content-Type":
                                          "application/xml"})),
        ("btssoctl", lambda: portal.ctl("cert", "role", "acme", sha,
                                        "primary")),
    ]
    for name, change in changes:
        r = change()
        assert getattr(r, "status_code", 200) == 200, (name, r.text)
        t = ann.config()["sso_test"]
        assert t["passed"] is False and t["outdated"] is True, name
        assert t["by"] == ANN
        assert enable(ann).json()["error"] == "untested", name
        # and a new test counts again
        portal.test_login(ANN)
        assert ann.config()["sso_test"]["passed"] is True, name
    assert enable(ann).status_code == 200


def test_a_test_checked_with_older_settings_does_not_count(make_httpd,
                                                           tmp_path):
    """A node that validated the test with settings cached from before the
    last change proves nothing about the current ones."""
    p = AuditPortal(make_httpd, tmp_path, btsso_conf="BTSSOConfigTTL 300",
                    processes=1).start()
    ann = p.client()
    r = p.get("/sso/test/acme")       # the node caches acme's settings now
    req = p.idp.parse_redirect(r.headers["Location"])
    p.ctl("attr", "set", "acme", "mail")    # elsewhere: a mapping change
    r = p.acs(p.idp.response(req, email=ANN), req.relay_state)
    assert "Success" in r.text and 'id="counts" class="bad"' in r.text
    assert "settings changed" in r.text
    assert ann.config()["sso_test"]["passed"] is False
    assert enable(ann).json()["error"] == "untested"


def test_confirm_untested_enables_and_is_audited(portal):
    ann = portal.client()
    for bad in ("yes", 1, None):
        r = enable(ann, confirm_untested=bad)
        assert r.status_code == 400, (bad, r.text)
    r = enable(ann, confirm_untested=False)
    assert r.status_code == 409 and r.json()["error"] == "untested"
    before = audit(ann)["audit"][0]["id"]
    r = enable(ann, confirm_untested=True)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    new = [(a["actor"], a["action"]) for a in audit(ann)["audit"]
           if a["id"] > before]
    assert new == [(ANN, "sso.enable_untested"), (ANN, "sso.enable")]
    assert "confirm_untested" in audit(ann)["audit"][0]["detail"]
    # the override is not remembered: after disabling, the rule holds again
    assert ann.put("enabled", json={"enabled": False}).status_code == 200
    assert enable(ann).json()["error"] == "untested"


def test_incomplete_comes_before_untested(portal):
    ann = portal.client()
    portal.ctl("user", "add", "acme", "105", BOB.upper())
    r = enable(ann)
    assert r.status_code == 409 and r.json()["error"] == "duplicate_emails"
    r = enable(ann, confirm_untested=True)
    assert r.status_code == 409 and r.json()["error"] == "duplicate_emails"


def test_btssoctl_enable_needs_no_test(portal):
    ann = portal.client()
    assert ann.config()["sso_test"]["passed"] is False
    r = portal.ctl("enable", "acme")
    assert "SSO enabled" in r.stdout
    assert ann.config()["enabled"] is True
    j = json.loads(ctl_audit(portal).stdout)["audit"]
    assert j[0]["action"] == "sso.enable"
    assert j[0]["actor"].startswith("btssoctl:")
    assert not any(a["action"] == "sso.enable_untested" for a in j)


def test_every_btssoctl_change_is_audited(portal):
    """Each btssoctl change leaves a row in the name of its unix user."""
    import pwd
    actor = "btssoctl:" + pwd.getpwuid(os.stat(portal.httpd.db).st_uid) \
        .pw_name
    from adminlib import make_cert, sha256_of_pem
    crt = make_cert(portal.tmp, "ctl", 30)
    portal.httpd.fix_perms()
    sha = sha256_of_pem(crt)
    md = os.path.join(portal.tmp, "idp-acme.xml")
    with open(md) as f:
        doc = f.read()
    with open(md, "w") as f:
        f.write(doc + "\n<!-- again -->\n")
    steps = [
        (("account", "add", "third"), "third", "account.add"),
        (("user", "add", "acme", "110", "zed@example.com"), "acme",
         "user.add"),
        (("idp", "import", "acme", md), "acme", "idp.set"),
        (("attr", "set", "acme", "email"), "acme", "idp.email"),
        (("cert", "add", "acme", crt), "acme", "cert.add"),
        (("cert", "role", "acme", sha, "secondary"), "acme", "cert.role"),
        (("cert", "remove", "acme", sha), "acme", "cert.remove"),
        (("enable", "acme"), "acme", "sso.enable"),
        (("session", "revoke", "acme", BOB), "acme",
         "sessions.revoke_user"),
        (("session", "revoke", "acme"), "acme", "sessions.revoke_all"),
        (("account", "domain", "add", "acme", "example.com"), "acme",
         "domain.add"),
        (("account", "domain", "remove", "acme", "example.com"), "acme",
         "domain.remove"),
        (("disable", "acme"), "acme", "sso.disable"),
    ]
    for args, account, action in steps:
        portal.ctl(*args)
        row = json.loads(portal.ctl("audit", account, json_out=True)
                         .stdout)["audit"][0]
        assert (row["actor"], row["action"]) == (actor, action), args
