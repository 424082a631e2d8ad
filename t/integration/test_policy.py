"""Per-account policy (SPEC "Per-account policy", issue 12 items 2 and 3):
PUT <account>/policy sets the AuthnContextClassRef values one of which
every assertion must carry (else 403 authn_context, the class received in
the detail and the log), ForceAuthn on every login, RequestedAuthnContext
only when the administrator opts in, and a session lifetime below
BTSSOSessionMaxAge; lowering it ends older sessions within BTSSOConfigTTL.
/sso/test/<account> always asks for ForceAuthn.  All through httpd, with
pysaml2 as the IdP (it writes the AuthnStatement)."""
import html
import json
import os
import re
import sqlite3
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from adminlib import ADMIN_LOCATION, PASSWORD, write_htpasswd
from portal import Portal, decode_redirect_request

ADMIN = "carl@example.com"
TTL = 1.0
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
MFA = "http://schemas.microsoft.com/claims/multipleauthn"
X509 = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
      "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}


# ---- helpers ------------------------------------------------------------------

def make_portal(make_httpd, tmp_path, ttl=0):
    """httpd runs several processes: a policy saved through one is seen by
    the others within BTSSOConfigTTL, so tests that log in right after a
    change use 0 (a store read per request); those about the TTL, TTL."""
    conf = "BTSSOConfigTTL %g\n" % ttl
    p = Portal(make_httpd, tmp_path, btsso_conf=conf,
               extra_conf=ADMIN_LOCATION.format(htpasswd="{dir}/htpasswd"))
    p.httpd.extra_conf = p.httpd.extra_conf.replace("{dir}", p.httpd.dir)
    write_htpasswd(os.path.join(p.httpd.dir, "htpasswd"), [ADMIN])
    p.start(users=(("100", "ann@example.com"), ("101", "bob@example.com"),
                   ("102", ADMIN)))
    sql(p, "UPDATE users SET is_admin = 1 WHERE email = ?", ADMIN)
    return p


def sql(p, statement, *args):
    db = sqlite3.connect(p.httpd.db, timeout=10)
    rows = db.execute(statement, args).fetchall()
    db.commit()
    db.close()
    return rows


class Admin:
    def __init__(self, p):
        self.url = p.url + "/admin/sso/acme/"
        self.s = requests.Session()
        self.s.auth = (ADMIN, PASSWORD)

    def config(self):
        r = self.s.get(self.url + "config", timeout=20)
        assert r.status_code == 200, r.text
        return r

    def put_policy(self, body, token=True, if_match=None, raw=None):
        h = {}
        if token:
            h["X-CSRF-Token"] = self.config().json()["csrf_token"]
        if if_match is not None:
            h["If-Match"] = if_match
        if raw is not None:
            h["Content-Type"] = "application/json"
            return self.s.put(self.url + "policy", data=raw, headers=h,
                              timeout=20)
        return self.s.put(self.url + "policy", json=body, headers=h,
                          timeout=20)


def set_policy(p, **policy):
    r = Admin(p).put_policy(policy)
    assert r.status_code == 200, r.text
    return r.json()


def respond(p, req, email="ann@example.com", class_ref=PPT,
            session_not_on_or_after=None):
    """pysaml2's signed Response to req, whose AuthnStatement carries
    class_ref (PysamlIdP always writes ...:Password) and, when given (unix
    time), SessionNotOnOrAfter."""
    server = p.idp.server
    real = server.create_authn_response

    def with_class(**kw):
        kw["authn"] = {"class_ref": class_ref, "authn_auth": p.idp.entity_id}
        if session_not_on_or_after is not None:
            kw["session_not_on_or_after"] = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(session_not_on_or_after))
        return real(**kw)
    server.create_authn_response = with_class
    try:
        return p.idp.response(req, email=email)
    finally:
        server.create_authn_response = real


def login(p, class_ref=PPT, email="ann@example.com"):
    r, req = p.start_login(ret="/app/")
    return p.acs(respond(p, req, email, class_ref), req.relay_state)


def sid_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session=") and not h.startswith(
                "btsso_session=;"):
            return h.split(";", 1)[0].split("=", 1)[1]
    return None


def session(p, sid):
    return requests.get(p.url + "/sso/session", timeout=10,
                        cookies={"btsso_session": sid})


def authn_request(location):
    """The AuthnRequest of a Redirect-binding URL, decoded by hand."""
    xml, _ = decode_redirect_request(location)
    return ET.fromstring(xml)


def page_field(text, ident):
    m = re.search(r'id="%s">(.*?)</' % ident, text, re.S)
    return html.unescape(m.group(1)) if m else None


# ---- the required authentication context ------------------------------------

def test_without_policy_every_class_passes(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    cfg = Admin(p).config().json()
    assert cfg["policy"] == {
        "authn_context": [], "request_authn_context": False,
        "force_authn": False, "session_max_age": None,
        "server_session_max_age": 8 * 3600,
        "effective_session_max_age": 8 * 3600}
    for cls in (PPT, MFA, X509):
        r = login(p, cls)
        assert r.status_code == 303, (cls, r.text)
        assert sid_of(r)


def test_required_class_refuses_others(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    cfg = set_policy(p, authn_context=[MFA, X509])
    assert cfg["policy"]["authn_context"] == [MFA, X509]
    # password only: refused, no session, the class named in the log
    p.httpd.expect_log("BTSSO0210")
    r = login(p, PPT)
    assert r.status_code == 403, r.text
    assert sid_of(r) is None
    assert "stronger sign-in" in html.unescape(r.text)
    log = p.httpd.log_text()
    line = [ln for ln in log.splitlines() if "BTSSO0210" in ln][-1]
    assert "authn_context" in line
    assert '"%s"' % PPT in line
    assert MFA in line
    # the classes listed pass, exactly as listed
    r = login(p, MFA)
    assert r.status_code == 303, r.text
    sid = sid_of(r)
    assert session(p, sid).status_code == 200
    assert login(p, X509, "bob@example.com").status_code == 303
    r = login(p, MFA.upper())           # URIs compare exactly
    assert r.status_code == 403


def test_test_page_names_the_class(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    set_policy(p, authn_context=[MFA])
    p.httpd.expect_log("BTSSO0210")
    r = p.get("/sso/test/acme")
    req = p.idp.parse_redirect(r.headers["Location"])
    r = p.acs(respond(p, req, class_ref=PPT), req.relay_state)
    assert r.status_code == 200
    assert page_field(r.text, "code") == "authn_context"
    assert PPT in page_field(r.text, "detail")
    assert page_field(r.text, "authn_context") == PPT
    # and the class the IdP sends is on the page when all is well too
    r = p.get("/sso/test/acme")
    req = p.idp.parse_redirect(r.headers["Location"])
    r = p.acs(respond(p, req, class_ref=MFA), req.relay_state)
    assert "Success" in r.text
    assert page_field(r.text, "authn_context") == MFA


# ---- what the AuthnRequest asks for -----------------------------------------

def test_force_authn_and_requested_context(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    r = p.get("/sso/login/acme")
    root = authn_request(r.headers["Location"])
    assert root.get("ForceAuthn") is None
    assert root.find("samlp:RequestedAuthnContext", NS) is None
    # a required class alone is verified, never requested (Entra refuses
    # passkey and Windows Hello users asked for another class)
    set_policy(p, authn_context=[MFA], force_authn=True)
    r = p.get("/sso/login/acme")
    root = authn_request(r.headers["Location"])
    assert root.get("ForceAuthn") == "true"
    assert root.find("samlp:RequestedAuthnContext", NS) is None
    # pysaml2 reads it the same way
    assert p.idp.parse_redirect(r.headers["Location"]).message.force_authn \
        == "true"
    # opted in: requested, Comparison exact, the listed classes in order
    set_policy(p, authn_context=[MFA, X509], request_authn_context=True)
    r = p.get("/sso/login/acme")
    root = authn_request(r.headers["Location"])
    assert root.get("ForceAuthn") is None
    rac = root.find("samlp:RequestedAuthnContext", NS)
    assert rac is not None and rac.get("Comparison") == "exact"
    assert [c.text for c in rac.findall("saml:AuthnContextClassRef", NS)] \
        == [MFA, X509]
    req = p.idp.parse_redirect(r.headers["Location"])
    assert [c.text for c in req.message.requested_authn_context
            .authn_context_class_ref] == [MFA, X509]
    # and the answer is still checked
    p.httpd.expect_log("BTSSO0210")
    assert p.acs(respond(p, req, class_ref=PPT),
                 req.relay_state).status_code == 403


def test_sso_test_always_forces_authn(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    r = p.get("/sso/test/acme")
    assert r.status_code == 302
    assert authn_request(r.headers["Location"]).get("ForceAuthn") == "true"
    # also before SSO is enabled
    p.ctl("disable", "acme")
    r = p.get("/sso/test/acme")
    assert authn_request(r.headers["Location"]).get("ForceAuthn") == "true"


# ---- the session cap -----------------------------------------------------------

def test_session_cap_bounds_new_sessions(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    r = login(p)
    exp = session(p, sid_of(r)).json()["expires"]
    assert abs(exp - (time.time() + 8 * 3600)) < 30
    cfg = set_policy(p, session_max_age=600)
    assert cfg["policy"]["session_max_age"] == 600
    assert cfg["policy"]["effective_session_max_age"] == 600
    before = time.time()
    r = login(p)
    assert r.status_code == 303
    exp = session(p, sid_of(r)).json()["expires"]
    assert before + 600 - 5 <= exp <= time.time() + 600 + 1
    # the soonest of the server's, the policy's and the IdP's end
    for idp_end, want in ((time.time() + 120, 120), (time.time() + 3600, 600)):
        r, req = p.start_login()
        before = time.time()
        r = p.acs(respond(p, req, session_not_on_or_after=int(idp_end)),
                  req.relay_state)
        assert r.status_code == 303, r.text
        exp = session(p, sid_of(r)).json()["expires"]
        assert before + want - 5 <= exp <= time.time() + want + 1, want


def test_lowering_the_cap_ends_older_sessions(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path, ttl=TTL)
    old = sid_of(login(p))
    time.sleep(4.2)
    young = sid_of(login(p, email="bob@example.com"))
    set_policy(p, session_max_age=4)
    start = time.time()
    while session(p, old).status_code == 200:
        assert time.time() - start < TTL + 1.5, "older session not ended"
        time.sleep(0.1)
    # the younger one lives on, and says when it now ends
    r = session(p, young)
    assert r.status_code == 200, r.text
    assert r.json()["expires"] <= time.time() + 4
    assert "session cap" in p.httpd.log_text()
    # an ended session stays ended when the cap goes again
    set_policy(p)
    time.sleep(TTL + 0.2)
    assert session(p, old).status_code == 401


# ---- the admin write -------------------------------------------------------------

def test_policy_validation(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    a = Admin(p)
    version = a.config().json()["version"]
    bad = [
        {"authn_context": MFA},                     # not a list
        {"authn_context": [MFA, 7]},
        {"authn_context": ["multipleauthn"]},       # not a URI
        {"authn_context": ["urn:a b"]},
        {"authn_context": ["urn:a\nb"]},
        {"authn_context": ["urn:a\u0000b"]},
        {"authn_context": ["urn:\u00e9"]},
        {"authn_context": ["urn:" + "x" * 1100]},
        {"authn_context": ["urn:x:%d" % i for i in range(17)]},
        {"force_authn": "yes"},
        {"request_authn_context": 1},
        {"request_authn_context": True},            # nothing to request
        {"session_max_age": 0},
        {"session_max_age": -5},
        {"session_max_age": "3600"},
        {"session_max_age": 1.5},
        {"session_max_age": 8 * 3600 + 1},          # above BTSSOSessionMaxAge
    ]
    for body in bad:
        r = a.put_policy(body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] in ("bad_policy", "bad_json"), body
        assert r.json()["message"]
    r = a.put_policy(None, raw=b"[1, 2]")
    assert r.status_code == 400
    cfg = a.config().json()
    assert cfg["version"] == version
    assert cfg["policy"]["authn_context"] == []
    # the upper bound itself, and unknown fields: kept out, logged
    r = a.put_policy({"session_max_age": 8 * 3600, "forceAuthn": True,
                      "authn_context": [MFA, MFA], "force_authn": None})
    assert r.status_code == 200, r.text
    pol = r.json()["policy"]
    assert pol["session_max_age"] == 8 * 3600
    assert pol["authn_context"] == [MFA]
    assert pol["force_authn"] is False
    assert "BTSSO0450" in p.httpd.log_text()
    assert "forceAuthn" in p.httpd.log_text()


def test_policy_write_csrf_if_match_audit(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path)
    a = Admin(p)
    r = a.config()
    version = r.json()["version"]
    assert r.headers["ETag"] == '"%d"' % version
    p.httpd.expect_log("BTSSO0404")
    r = a.put_policy({"force_authn": True}, token=False)
    assert r.status_code == 403
    assert r.json()["error"] == "csrf"
    r = a.put_policy({"force_authn": True}, if_match='"%d"' % (version + 5))
    assert r.status_code == 412
    assert r.json()["error"] == "precondition_failed"
    assert a.config().json()["policy"]["force_authn"] is False
    r = a.put_policy({"force_authn": True, "authn_context": [MFA],
                      "session_max_age": 900}, if_match='"%d"' % version)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == version + 1
    assert r.headers["ETag"] == '"%d"' % (version + 1)
    assert r.json()["policy"]["force_authn"] is True
    # the version it was made from is gone now
    r = a.put_policy({}, if_match='"%d"' % version)
    assert r.status_code == 412
    rows = sql(p, "SELECT actor, detail FROM audit WHERE action = "
                  "'policy.set'")
    assert rows == [(ADMIN, "authn_context=%s request_authn_context=0 "
                            "force_authn=1 session_max_age=900" % MFA)]
    # btssoctl account show prints it
    shown = p.ctl("account", "show", "acme", json_out=True)
    assert json.loads(shown.stdout)["policy"] == {
        "authn_context": [MFA], "request_authn_context": False,
        "force_authn": True, "session_max_age": 900}
    assert "force_authn=on" in p.ctl("account", "show", "acme").stdout
    # someone who does not administer the account: 403, nothing changes
    write_htpasswd(os.path.join(p.httpd.dir, "htpasswd"),
                   [ADMIN, "ann@example.com"])
    s = requests.Session()
    s.auth = ("ann@example.com", PASSWORD)
    p.httpd.expect_log("BTSSO0403")
    r = s.put(a.url + "policy", json={}, timeout=20,
              headers={"X-CSRF-Token": a.config().json()["csrf_token"]})
    assert r.status_code == 403
    assert a.config().json()["policy"]["force_authn"] is True
    # other methods
    r = a.s.get(a.url + "policy", timeout=20)
    assert r.status_code == 405
    # the page has a Policy section
    page = a.s.get(a.url, timeout=20).text
    assert 'id="policy"' in page


def test_policy_section_of_the_page(make_httpd, tmp_path):
    """The page's Policy section in headless Chromium: what is saved is
    what the API then shows, and it is shown again after a reload."""
    pytest.importorskip("selenium", reason="install python3-selenium")
    from selenium.webdriver.common.by import By
    from test_admin_page import Browser
    p = make_portal(make_httpd, tmp_path)
    b = Browser(ADMIN)
    try:
        b.open(p.url + "/admin/sso/acme/")
        b.wait(lambda d: d.find_element(By.ID, "user").text == ADMIN)
        assert b.find("#policy-max-age").get_attribute("placeholder") == "480"
        b.find("#policy-classes").send_keys(MFA + "\n" + X509 + "\n")
        b.find("#policy-force").click()
        b.find("#policy-max-age").send_keys("10")
        b.find("#policy-save").click()
        b.wait_msg("policy-msg", "ok", "Policy saved")
        pol = Admin(p).config().json()["policy"]
        assert pol["authn_context"] == [MFA, X509]
        assert pol["force_authn"] is True
        assert pol["request_authn_context"] is False
        assert pol["session_max_age"] == 600
        # a refusal is shown where the change was made
        b.find("#policy-classes").clear()
        b.find("#policy-request").click()
        b.find("#policy-save").click()
        b.wait_msg("policy-msg", "err", "classes")
        b.open(p.url + "/admin/sso/acme/")
        b.wait(lambda d: d.find_element(By.ID, "policy-classes")
               .get_attribute("value") == MFA + "\n" + X509)
        assert b.find("#policy-force").is_selected()
        assert not b.find("#policy-request").is_selected()
        assert b.find("#policy-max-age").get_attribute("value") == "10"
        assert "ForceAuthn" in b.find("#policy-done").text
        assert not b.console_problems()
    finally:
        b.quit()


def test_lowered_cap_ends_sessions_on_every_node(make_httpd, tmp_path,
                                                 memcached):
    """Two nodes sharing memcached and the store (test_session_follow's
    set-up): a cap lowered through node A ends an older session made on
    node B, on both nodes, within BTSSOConfigTTL."""
    import test_session_follow as tsf
    a, b = tsf.two_nodes(make_httpd, tmp_path, memcached)
    urls = [a.url, b.url]
    sid = tsf.login(a, url=b.url)                   # made on node B
    assert all(tsf.session_status(u, sid) == 200 for u in urls)
    time.sleep(2.2)
    r = tsf.Admin(a.url).send("PUT", "policy", {"session_max_age": 2})
    assert r.status_code == 200, r.text
    assert tsf.ended_within(urls, sid, TTL + 1.5) is not None


from test_session_follow import memcached  # noqa: E402,F401  (fixture)
