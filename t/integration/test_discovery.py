"""Email discovery at GET /sso/login: the page, the way to the account's IdP
(keeping `return`), the password login for everything else, and that the
answer tells no more than the redirect itself."""
import urllib.parse

import pytest

from portal import Portal

PWLOGIN = "https://portal.example.invalid/password-login"

OPEN = """
<Location /open>
    AuthType BTSSO
    Require valid-user
</Location>
"""


def make(make_httpd, tmp_path, pw_url=PWLOGIN, **kw):
    conf = "BTSSOPasswordLoginURL %s\n" % pw_url if pw_url else ""
    p = Portal(make_httpd, tmp_path, btsso_conf=conf, extra_conf=OPEN, **kw)
    p.start()
    # a second account without SSO, and one with an IdP but not enabled
    p.ctl("account", "add", "plain", "--name", "Plain Ltd")
    p.ctl("user", "add", "plain", "300", "zed@plain.example")
    return p


@pytest.fixture
def portal(make_httpd, tmp_path):
    return make(make_httpd, tmp_path)


def login_q(email, ret=None):
    q = {"email": email}
    if ret is not None:
        q["return"] = ret
    return "/sso/login?" + urllib.parse.urlencode(q)


def test_form(portal):
    r = portal.get("/sso/login?return=/app/x%3Fy%3D1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-store"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # a form-action limit would stop browsers from following the redirect
    # to the IdP that answers the form
    assert "form-action" not in csp
    assert 'name="email"' in r.text and 'type="email"' in r.text
    assert 'action="%s/sso/login"' % portal.url in r.text
    assert 'name="return" value="/app/x?y=1"' in r.text


def test_form_escapes_return(portal):
    r = portal.get("/sso/login?return=" + urllib.parse.quote(
        '/app/"><script>alert(1)</script>', safe=""))
    # a local path may hold quotes and brackets: it is escaped, not refused
    assert r.status_code == 200
    assert "<script>alert" not in r.text
    assert "&quot;&gt;&lt;script&gt;" in r.text


def test_sso_account_goes_to_its_idp_keeping_return(portal):
    r = portal.get(login_q("Ann@Example.COM", "/app/deep?x=1"))
    assert r.status_code == 302
    assert r.headers["Location"].startswith(portal.idp.sso_url + "?")
    req = portal.idp.parse_redirect(r.headers["Location"])
    a = portal.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303
    assert a.headers["Location"] == portal.url + "/app/deep?x=1"


def test_other_user_of_sso_account(portal):
    r = portal.get(login_q("bob@example.com"))
    assert r.status_code == 302
    assert r.headers["Location"].startswith(portal.idp.sso_url + "?")


def test_unknown_and_non_sso_answer_alike(portal):
    """An unknown address and a user of an account without SSO get the same
    answer, so the page reveals no more than where the redirect goes."""
    a = portal.get(login_q("nobody@nowhere.example", "/app/"))
    b = portal.get(login_q("zed@plain.example", "/app/"))
    for r in (a, b):
        assert r.status_code == 302
        assert r.headers["Location"] == PWLOGIN + "?return=%2Fapp%2F"
    strip = ("Date",)
    ha = {k: v for k, v in a.headers.items() if k not in strip}
    hb = {k: v for k, v in b.headers.items() if k not in strip}
    assert ha == hb
    assert a.text == b.text


def test_disabled_account_goes_to_password_login(portal):
    portal.ctl("disable", "acme")
    r = portal.get(login_q("ann@example.com"))
    assert r.status_code == 302
    assert r.headers["Location"] == PWLOGIN


def test_password_url_with_query_keeps_it(make_httpd, tmp_path):
    p = make(make_httpd, tmp_path, pw_url=PWLOGIN + "?lang=en")
    r = p.get(login_q("zed@plain.example", "/app/"))
    assert r.headers["Location"] == PWLOGIN + "?lang=en&return=%2Fapp%2F"


def test_without_password_login_url(make_httpd, tmp_path):
    p = make(make_httpd, tmp_path, pw_url=None)
    a = p.get(login_q("nobody@nowhere.example"))
    b = p.get(login_q("zed@plain.example"))
    assert a.status_code == b.status_code == 200
    assert "sign in with your password" in a.text.lower()
    assert a.text == b.text


def test_not_an_email_shows_form_again(portal):
    r = portal.get(login_q("not-an-address", "/app/"))
    assert r.status_code == 200
    assert "Enter your work email address." in r.text
    assert 'name="return" value="/app/"' in r.text
    r = portal.get(login_q("a" * 250 + "@example.com"))
    assert r.status_code == 200
    assert "Enter your work email address." in r.text


@pytest.mark.parametrize("target", ["https://evil.example/",
                                    "//evil.example/", "/\\evil.example"])
def test_foreign_return_refused(portal, target):
    portal.httpd.expect_log("BTSSO0205")
    r = portal.get(login_q("ann@example.com", target))
    assert r.status_code == 400
    assert "Location" not in r.headers


def test_post_not_allowed(portal):
    r = portal.post("/sso/login", data={"email": "ann@example.com"})
    assert r.status_code == 405


def test_authtype_without_account_sends_browsers_here(portal):
    r = portal.get("/open/page?x=1")
    assert r.status_code == 302
    assert r.headers["Location"] == \
        portal.url + "/sso/login?return=%2Fopen%2Fpage%3Fx%3D1"
    # and from there, through the IdP, back to the page
    r = portal.get(login_q("ann@example.com", "/open/page?x=1"))
    req = portal.idp.parse_redirect(r.headers["Location"])
    a = portal.acs(portal.idp.response(req), req.relay_state)
    assert a.headers["Location"] == portal.url + "/open/page?x=1"
    # other methods are not redirected
    assert portal.post("/open/page", data={"a": "b"}).status_code == 401
