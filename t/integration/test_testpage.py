"""Test before enforce: GET /sso/test/<account> is a real round trip to the
IdP, before and after SSO is enabled; the result page shows the NameID,
every attribute received and the user the email maps to, or exactly why
validation failed; no session is ever created."""
import html
import re

import pytest

from portal import Portal


def page_field(text, ident):
    m = re.search(r'id="%s">(.*?)</' % ident, text, re.S)
    return html.unescape(m.group(1)) if m else None


def no_session(r):
    return not any(h.startswith("btsso_session=") and
                   not h.startswith("btsso_session=;")
                   for h in r.raw.headers.getlist("Set-Cookie"))


def round_trip(p, account="acme", **resp_kw):
    r = p.get("/sso/test/%s" % account)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(p.idp.sso_url + "?")
    req = p.idp.parse_redirect(r.headers["Location"])
    return p.acs(p.idp.response(req, **resp_kw), req.relay_state)


@pytest.fixture
def before(make_httpd, tmp_path):
    """An account with its IdP and email mapping set up, SSO not enabled."""
    return Portal(make_httpd, tmp_path).start(enable=False)


def test_before_enforce_success(before):
    p = before
    # the real login is not offered yet...
    r = p.get("/sso/login/acme")
    assert r.status_code == 403
    # ...but the test round trip is
    r = round_trip(p, attributes={
        "mail": ["ann@example.com", "ann.alias@example.com"],
        "givenName": ["Ann"], "sn": ["Example"],
        "memberOf": ["sales", "<b>staff</b>"]})
    assert r.status_code == 200, r.text
    assert "Success" in r.text
    assert page_field(r.text, "nameid") == "ann@example.com"
    assert page_field(r.text, "email") == "ann@example.com"
    assert "ann@example.com (extension 100)" in html.unescape(r.text)
    attrs = r.text.split('id="attributes"', 1)[1]
    for value in ("ann.alias@example.com", "Ann", "Example", "sales",
                  "givenName", "sn", "memberOf", "mail"):
        assert value in html.unescape(attrs), value
    # values are escaped, never markup
    assert "<b>staff</b>" not in attrs
    assert "&lt;b&gt;staff&lt;/b&gt;" in attrs
    assert no_session(r)
    assert "No session was created" in r.text
    assert r.headers["Cache-Control"] == "no-store"


def test_after_enforce_still_no_session(before):
    p = before
    p.ctl("enable", "acme")
    r = round_trip(p, email="bob@example.com")
    assert r.status_code == 200
    assert "bob@example.com (extension 101)" in html.unescape(r.text)
    assert no_session(r)
    # and a real login still works next to it
    assert p.login().status_code == 303


def test_unknown_user_named(before):
    r = round_trip(before, email="carol@example.com")
    assert r.status_code == 200
    assert page_field(r.text, "code") == "no_such_user"
    assert "carol@example.com" in page_field(r.text, "detail")
    assert page_field(r.text, "nameid") == "carol@example.com"
    assert no_session(r)


def test_missing_email_attribute_named(before):
    r = round_trip(before, attributes={"uid": ["ann"]})
    assert r.status_code == 200
    assert page_field(r.text, "code") == "no_email"
    assert "attribute 'mail'" in page_field(r.text, "detail")
    # what did arrive is still shown, so the administrator can pick it
    assert "uid" in r.text.split('id="attributes"', 1)[1]
    assert no_session(r)


@pytest.mark.parametrize("kw,code", [
    ({"sign_response": False, "sign_assertion": False}, "not_signed"),
    ({"sign_alg": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
      "digest_alg": "http://www.w3.org/2000/09/xmldsig#sha1"},
     "sig_algorithm"),
    ({"acs_url": "https://elsewhere.example/acs"}, "destination_mismatch"),
])
def test_validation_failure_shows_exact_reason(before, kw, code):
    before.httpd.expect_log("BTSSO0210")
    r = round_trip(before, **kw)
    assert r.status_code == 200
    assert page_field(r.text, "code") == code
    assert page_field(r.text, "detail")
    assert "Sign-in would fail" in r.text
    assert no_session(r)


def test_no_usable_certificate_named(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path).start(enable=False)
    p.httpd.expect_log("BTSSO0210")
    listing = p.ctl("cert", "list", "acme", json_out=True).stdout
    for sha in set(re.findall(r'"sha256":\s*"([0-9a-f]{64})"', listing)):
        p.ctl("cert", "role", "acme", sha, "none")
    r = round_trip(p)
    assert page_field(r.text, "code") == "no_usable_certificate"
    assert no_session(r)


def test_test_response_cannot_become_a_login(before):
    """A response answering a test request, posted again, is a replay;
    the test never makes a session, even once SSO is enabled."""
    before.httpd.expect_log("BTSSO0210")
    p = before
    r = p.get("/sso/test/acme")
    req = p.idp.parse_redirect(r.headers["Location"])
    b64 = p.idp.response(req)
    p.ctl("enable", "acme")
    first = p.acs(b64, req.relay_state)
    assert "Success" in first.text and no_session(first)
    again = p.acs(b64, req.relay_state)
    assert again.status_code == 403
    assert no_session(again)


def test_unknown_account(before):
    assert before.get("/sso/test/nosuch").status_code == 404
    assert before.get("/sso/test/..").status_code in (400, 404)


def test_account_without_idp(before):
    before.httpd.expect_log("BTSSO0201")
    before.ctl("account", "add", "bare")
    r = before.get("/sso/test/bare")
    assert r.status_code == 409
    assert "not set up" in r.text
