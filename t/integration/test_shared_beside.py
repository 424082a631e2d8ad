"""Support adds a shared-IdP account beside a working self-service one
(SPEC, Addressing and Command line): `btssoctl idp import b X --shared`
works whatever else holds X.  The self-service holder `a` keeps the global
SP entityID and ACS (the Issuer still names exactly one self-service
account) and is not touched; `b` uses its own entityID and ACS.  The
self-service admin API, and btssoctl without --shared, still refuse an
entityID another account holds.

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_shared_beside.py
"""
import json
import os
import subprocess

import pytest

from adminlib import ADMIN_LOCATION, Client, write_htpasswd
from portal import Portal, decode_redirect_request
from pysaml_idp import PysamlIdP


class TwoAccounts(Portal):
    """httpd with the login routes and the admin API; account a (ann, an
    administrator) and b (sue), c (carl, an administrator)."""

    def __init__(self, make_httpd, tmp_path):
        super().__init__(make_httpd, tmp_path, account="a",
                         account_expr='"a"')
        self.htpasswd = os.path.join(self.httpd.dir, "htpasswd")
        self.httpd.extra_conf += ADMIN_LOCATION.format(
            htpasswd=self.htpasswd)

    def start(self):
        write_htpasswd(self.htpasswd, ["ann@example.com", "carl@example.com"])
        h = self.httpd
        h.write_config()
        self.ctl("init")
        for acc, ext, email in (("a", "100", "ann@example.com"),
                                ("b", "200", "sue@example.com"),
                                ("c", "300", "carl@example.com")):
            self.ctl("account", "add", acc, "--name", acc.upper() + " Ltd")
            self.ctl("user", "add", acc, ext, email, "--admin")
        h.start()
        return self

    def admin(self, account, user):
        return Client(self, user, account)

    def show(self, account):
        return json.loads(self.ctl("idp", "show", account,
                                   json_out=True).stdout)

    def session_of(self, r):
        assert r.status_code == 303, (r.status_code, r.text)
        return self.get("/sso/session", cookies=r.cookies).json()


@pytest.fixture
def two(make_httpd, tmp_path):
    return TwoAccounts(make_httpd, tmp_path).start()


def login(p, idp, account, email, acs):
    """SP-initiated login of `account` through `idp`; returns (the ACS
    answer, the AuthnRequest XML)."""
    r = p.get("/sso/login/%s" % account)
    assert r.status_code == 302, (r.status_code, r.text)
    xml, _ = decode_redirect_request(r.headers["Location"])
    req = idp.parse_redirect(r.headers["Location"])
    b64 = idp.response(req, email=email)
    return p.acs(b64, req.relay_state, path=acs), xml, req


def refused_403(p, post, code):
    """post() is refused with 403, no session, and one more log line
    naming code."""
    before = p.httpd.log_text().count(code)
    r = post()
    assert r.status_code == 403, (r.status_code, r.text)
    assert "btsso_session" not in r.headers.get("Set-Cookie", "")
    assert p.httpd.log_text().count(code) > before


def settings_of(cfg):
    """GET config without what changes on its own: the token, and the
    sign-in records (a login in between moves them)."""
    cfg.pop("csrf_token")
    cfg.pop("sign_ins")
    for c in cfg["certificates"]:
        c.pop("last_verified")
    return cfg


def test_shared_account_beside_a_self_service_one(two):
    p = two
    base = p.url
    # a: self-service, its administrator uploads the IdP X's metadata
    sp_md = p.get("/sso/metadata").text
    idp_a = PysamlIdP(os.path.join(p.tmp, "idp-a"), sp_md)
    x_md = idp_a.metadata()
    x_file = os.path.join(p.tmp, "x.xml")
    with open(x_file, "w") as f:
        f.write(x_md)
    p.httpd.fix_perms()
    ann = p.admin("a", "ann@example.com")
    r = ann.post("metadata", data=x_md.encode(),
                 headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 200, r.text
    r = ann.put("email-attribute", json={"attribute": "mail"})
    assert r.status_code == 200, r.text
    p.ctl("enable", "a")
    show_a = p.show("a")
    assert show_a["shared"] is False
    assert show_a["sp_entity_id"] == base + "/sso"
    assert show_a["sp_acs_url"] == base + "/sso/acs"
    cfg_a = settings_of(ann.config())
    r, _, _ = login(p, idp_a, "a", "ann@example.com", "/sso/acs")
    assert p.session_of(r)["account"] == "a"

    # b: support adds the same IdP X, shared
    out = p.ctl("idp", "import", "b", x_file, "--shared")
    assert idp_a.entity_id in out.stdout
    show_b = p.show("b")
    assert show_b["shared"] is True
    assert show_b["entity_id"] == idp_a.entity_id
    assert show_b["sp_entity_id"] == base + "/sso/b"
    assert show_b["sp_acs_url"] == base + "/sso/acs/b"
    p.ctl("attr", "set", "b", "mail")
    p.ctl("enable", "b")
    show_b = p.show("b")

    # a is untouched: same configuration, same addresses
    assert p.show("a") == show_a
    again = settings_of(ann.config())
    assert again == cfg_a
    md = p.get("/sso/metadata/b").text
    assert 'entityID="%s/sso/b"' % base in md
    assert "%s/sso/acs/b" % base in md

    # both sign in: a at the global ACS with the global SP entityID ...
    r, req_xml, _ = login(p, idp_a, "a", "ann@example.com", "/sso/acs")
    assert 'AssertionConsumerServiceURL="%s/sso/acs"' % base in req_xml
    assert ">%s/sso</" % base in req_xml
    assert p.session_of(r)["account"] == "a"
    # ... and IdP-initiated, the Issuer X still names a
    b64 = idp_a.response(None, email="ann@example.com",
                         acs_url=base + "/sso/acs", sp_entity_id=base + "/sso")
    j = p.session_of(p.acs(b64, "/app/"))
    assert j["account"] == "a" and j["email"] == "ann@example.com"
    # b at its own ACS with its own SP entityID (the IdP's application
    # for b knows b's SP metadata)
    idp_b = PysamlIdP(os.path.join(p.tmp, "idp-b"), md)
    assert idp_b.entity_id == idp_a.entity_id
    r, req_xml, req_b = login(p, idp_b, "b", "sue@example.com",
                              "/sso/acs/b")
    assert 'AssertionConsumerServiceURL="%s/sso/acs/b"' % base in req_xml
    assert ">%s/sso/b</" % base in req_xml
    j = p.session_of(r)
    assert j["account"] == "b" and j["email"] == "sue@example.com"

    # neither can sign in as the other: b's response at the global ACS goes
    # to a (by its Issuer) and fails a's audience; a's at b's ACS fails b's
    p.httpd.expect_log("BTSSO0210")
    b64 = idp_b.response(None, email="sue@example.com",
                         acs_url=base + "/sso/acs",
                         sp_entity_id=base + "/sso/b")
    refused_403(p, lambda: p.acs(b64, "/app/"), "audience_mismatch")
    b64 = idp_a.response(None, email="ann@example.com",
                         acs_url=base + "/sso/acs/b",
                         sp_entity_id=base + "/sso")
    refused_403(p, lambda: p.acs(b64, "/app/", path="/sso/acs/b"),
                "audience_mismatch")

    # self-service still refuses X to any other account: c's administrator
    # (409), and btssoctl without --shared
    carl = p.admin("c", "carl@example.com")
    cfg_c = carl.config()
    r = carl.post("metadata", data=x_md.encode(),
                  headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "entity_in_use"
    assert carl.config()["idp"] is None and cfg_c["idp"] is None
    r = p.ctl("idp", "import", "c", x_file, check=False)
    assert r.returncode != 0
    assert "entity_in_use" in r.stderr
    assert p.show("a") == show_a and p.show("b") == show_b

    # a's administrator keeps managing a's own IdP: fresh metadata of X is
    # accepted, a stays self-service on the global addresses, b is
    # untouched, and both still sign in
    r = ann.post("metadata", data=x_md.encode(),
                 headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 200, r.text
    now_a = p.show("a")
    assert now_a["shared"] is False
    assert now_a["sp_acs_url"] == base + "/sso/acs"
    assert now_a["email_attribute"] == "mail"
    assert now_a["certificates"] == show_a["certificates"]
    assert p.show("b") == show_b
    r, _, _ = login(p, idp_a, "a", "ann@example.com", "/sso/acs")
    assert p.session_of(r)["account"] == "a"
    r, _, _ = login(p, idp_b, "b", "sue@example.com", "/sso/acs/b")
    assert p.session_of(r)["account"] == "b"


def test_second_self_service_account_still_refused(two):
    """Without --shared, btssoctl refuses X for a second account, whether
    the holder is self-service or shared; a shared account cannot turn
    self-service while others hold X."""
    p = two
    idp = PysamlIdP(os.path.join(p.tmp, "idp"), p.get("/sso/metadata").text)
    x_file = os.path.join(p.tmp, "x.xml")
    with open(x_file, "w") as f:
        f.write(idp.metadata())
    p.httpd.fix_perms()
    p.ctl("idp", "import", "a", x_file)
    r = p.ctl("idp", "import", "b", x_file, check=False)
    assert r.returncode != 0 and "entity_in_use" in r.stderr
    assert "held by account a" in r.stderr
    p.ctl("idp", "import", "b", x_file, "--shared")
    p.ctl("idp", "import", "c", x_file, "--shared")
    # b cannot become a second self-service holder
    r = p.ctl("idp", "import", "b", x_file, check=False)
    assert r.returncode != 0 and "entity_in_use" in r.stderr
    assert p.show("b")["shared"] is True
    # the Issuer names exactly one self-service account
    import sqlite3
    db = sqlite3.connect(p.httpd.db)
    try:
        rows = db.execute("SELECT account, shared FROM idp WHERE entity_id = ?"
                          " ORDER BY account", (idp.entity_id,)).fetchall()
    finally:
        db.close()
    assert rows == [("a", 0), ("b", 1), ("c", 1)]
    # a itself, re-imported by support without --shared, stays the holder
    p.ctl("idp", "import", "a", x_file)
    assert p.show("a")["shared"] is False


def test_idp_logout_of_shared_account_beside_self_service(two):
    """The IdP X's LogoutRequest to the shared account b (through b's
    browser) ends b's session and is answered as b's SP, although X's
    Issuer names the self-service account a on the global endpoints; a's
    sessions are untouched.  Without b's session it is a's."""
    from test_slo import decode, logout_request_xml, redirect_query
    p = two
    base = p.url
    idp_a = PysamlIdP(os.path.join(p.tmp, "idp-a"),
                      p.get("/sso/metadata").text)
    x_file = os.path.join(p.tmp, "x.xml")
    with open(x_file, "w") as f:
        f.write(idp_a.metadata())
    p.httpd.fix_perms()
    p.ctl("idp", "import", "a", x_file)
    p.ctl("idp", "import", "b", x_file, "--shared")
    for acc in ("a", "b"):
        p.ctl("attr", "set", acc, "mail")
        p.ctl("enable", acc)
    idp_b = PysamlIdP(os.path.join(p.tmp, "idp-b"),
                      p.get("/sso/metadata/b").text)
    # the same person in both accounts
    p.ctl("user", "add", "a", "101", "sue@example.com")
    ra, _, _ = login(p, idp_a, "a", "sue@example.com", "/sso/acs")
    rb, _, _ = login(p, idp_b, "b", "sue@example.com", "/sso/acs/b")
    sid_a = ra.cookies["btsso_session"]
    sid_b = rb.cookies["btsso_session"]

    def alive(sid):
        return p.get("/sso/session", cookies={"btsso_session": sid}
                     ).status_code == 200

    q = redirect_query(idp_b, logout_request_xml(p, "sue@example.com",
                                                 issuer=idp_b.entity_id),
                       "SAMLRequest")
    r = p.get("/sso/slo?" + q, cookies={"btsso_session": sid_b})
    assert r.status_code == 302, r.text
    assert not alive(sid_b)
    assert alive(sid_a)
    xml, _ = decode(r.headers["Location"], "SAMLResponse")
    assert ">%s/sso/b<" % base in xml
    # without a session the Issuer names a
    q = redirect_query(idp_a, logout_request_xml(p, "sue@example.com",
                                                 issuer=idp_a.entity_id),
                       "SAMLRequest")
    r = p.get("/sso/slo?" + q)
    assert r.status_code == 302, r.text
    assert not alive(sid_a)
    xml, _ = decode(r.headers["Location"], "SAMLResponse")
    assert ">%s/sso<" % base in xml
