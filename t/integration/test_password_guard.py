"""BTSSOPasswordGuard on locations authenticated otherwise: Basic with
mod_authn_file and with mod_authn_dbd, and Form (mod_auth_form).  A user of
an SSO-enabled account is refused with 403 and a link to the SSO login,
unless the account allows passwords; users of accounts without SSO pass."""
import base64
import hashlib
import os
import subprocess

import pytest
import requests

from portal import Portal

PASSWORDS = {"ann@example.com": "ann-pw", "zed@plain.example": "zed-pw",
             "loner@nowhere.example": "loner-pw"}


def sha_hash(pw):
    return "{SHA}" + base64.b64encode(hashlib.sha1(pw.encode())
                                      .digest()).decode()


GUARDED = """
<Location /basic>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {d}/htpasswd
    Require valid-user
    BTSSOPasswordGuard On
</Location>
<Location /basic/unguarded>
    BTSSOPasswordGuard Off
</Location>
<Location /dbd>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider dbd
    AuthDBDUserPWQuery "SELECT password FROM portal_passwords WHERE email = %s"
    Require valid-user
    BTSSOPasswordGuard On
</Location>
<Location /form>
    AuthType Form
    AuthName "portal"
    AuthFormProvider file
    AuthUserFile {d}/htpasswd
    Session On
    SessionCookieName formsession path=/
    Require valid-user
    BTSSOPasswordGuard On
</Location>
<Location /dologin>
    SetHandler form-login-handler
    AuthType Form
    AuthName "portal"
    AuthFormProvider file
    AuthUserFile {d}/htpasswd
    AuthFormLoginSuccessLocation /form/
    Session On
    SessionCookieName formsession path=/
</Location>
"""

MODULES = [("authn_dbd_module", "mod_authn_dbd.so"),
           ("session_module", "mod_session.so"),
           ("session_cookie_module", "mod_session_cookie.so"),
           ("request_module", "mod_request.so"),
           ("auth_form_module", "mod_auth_form.so")]


@pytest.fixture
def portal(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, modules=MODULES)
    h = p.httpd
    h.extra_conf += GUARDED.format(d=h.dir)
    with open(os.path.join(h.dir, "htpasswd"), "w") as f:
        for user, pw in PASSWORDS.items():
            f.write("%s:%s\n" % (user, sha_hash(pw)))
    for d in ("basic", "basic/unguarded", "dbd", "form"):
        os.makedirs(os.path.join(h.docroot, d), exist_ok=True)
        with open(os.path.join(h.docroot, d, "index.html"), "w") as f:
            f.write("<p>password area %s</p>\n" % d)
    p.start()
    p.ctl("account", "add", "plain", "--name", "Plain Ltd")
    p.ctl("user", "add", "plain", "300", "zed@plain.example")
    # the portal's own password table, next to the store, for mod_authn_dbd
    rows = ";".join("INSERT INTO portal_passwords VALUES('%s', '%s')" % (
        u, sha_hash(pw)) for u, pw in PASSWORDS.items())
    subprocess.run(["sqlite3", h.db, "CREATE TABLE portal_passwords "
                    "(email TEXT PRIMARY KEY, password TEXT NOT NULL);"
                    + rows], check=True)
    h.fix_perms()
    return p


def basic(portal, path, user):
    return portal.get(path, auth=(user, PASSWORDS[user]))


def assert_refused(r, portal):
    assert r.status_code == 403, r.text
    assert "single sign-on" in r.text
    assert 'href="%s/sso/login/acme"' % portal.url in r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert "password area" not in r.text


@pytest.mark.parametrize("path", ["/basic/", "/dbd/"])
def test_sso_user_refused(portal, path):
    assert_refused(basic(portal, path, "ann@example.com"), portal)
    assert "BTSSO0322" in portal.httpd.log_text()


@pytest.mark.parametrize("path", ["/basic/", "/dbd/"])
def test_user_of_account_without_sso_passes(portal, path):
    r = basic(portal, path, "zed@plain.example")
    assert r.status_code == 200
    assert "password area" in r.text


@pytest.mark.parametrize("path", ["/basic/", "/dbd/"])
def test_user_of_no_account_passes(portal, path):
    r = basic(portal, path, "loner@nowhere.example")
    assert r.status_code == 200


def test_wrong_password_is_401_not_403(portal):
    portal.httpd.expect_log("AH01617")     # mod_auth_basic's mismatch
    r = portal.get("/basic/", auth=("ann@example.com", "wrong"))
    assert r.status_code == 401
    assert portal.get("/basic/").status_code == 401


def test_allow_password_relaxes_the_guard(portal):
    portal.ctl("enable", "acme", "--allow-password")
    for path in ("/basic/", "/dbd/"):
        r = basic(portal, path, "ann@example.com")
        assert r.status_code == 200, (path, r.text)
    portal.ctl("enable", "acme")
    assert_refused(basic(portal, "/basic/", "ann@example.com"), portal)


def test_disabled_account_passes(portal):
    portal.ctl("disable", "acme")
    assert basic(portal, "/basic/", "ann@example.com").status_code == 200


def test_guard_off_in_nested_location(portal):
    r = basic(portal, "/basic/unguarded/", "ann@example.com")
    assert r.status_code == 200


def test_email_case_does_not_bypass(portal):
    """The portal's password table may hold the address in another case:
    the account is still found."""
    h = portal.httpd
    with open(os.path.join(h.dir, "htpasswd"), "a") as f:
        f.write("ANN@Example.COM:%s\n" % sha_hash("ann-pw"))
    r = portal.get("/basic/", auth=("ANN@Example.COM", "ann-pw"))
    assert_refused(r, portal)


def form_login(portal, user, password):
    s = requests.Session()
    r = s.post(portal.url + "/dologin", data={
        "httpd_username": user, "httpd_password": password},
        allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), (r.status_code, r.text)
    return s


def test_form_login_sso_user_refused(portal):
    s = form_login(portal, "ann@example.com", "ann-pw")
    r = s.get(portal.url + "/form/", allow_redirects=False, timeout=10)
    assert_refused(r, portal)


def test_form_login_non_sso_user_passes(portal):
    s = form_login(portal, "zed@plain.example", "zed-pw")
    r = s.get(portal.url + "/form/", allow_redirects=False, timeout=10)
    assert r.status_code == 200
    assert "password area form" in r.text


def test_sso_session_not_affected(portal):
    """The guard is for password logins: a location using AuthType BTSSO
    with the guard on still admits the SSO session."""
    portal.httpd.extra_conf += ("<Location /app/guarded>\n"
                                "    BTSSOPasswordGuard On\n"
                                "</Location>\n")
    os.makedirs(os.path.join(portal.httpd.docroot, "app", "guarded"))
    with open(os.path.join(portal.httpd.docroot, "app", "guarded",
                           "index.html"), "w") as f:
        f.write("<p>guarded sso area</p>\n")
    portal.httpd.graceful()
    r = portal.login()
    sid = r.cookies.get("btsso_session")
    r = portal.get("/app/guarded/", cookies={"btsso_session": sid})
    assert r.status_code == 200
    assert "guarded sso area" in r.text


def test_store_unavailable_fails_closed(portal):
    """Without the store the guard cannot tell: 503, not a pass."""
    portal.httpd.expect_log("BTSSO0101")   # no store connection
    portal.httpd.expect_log("AH02655")     # mod_dbd: no connection
    portal.httpd.expect_log("AH00632")     # mod_dbd cannot prepare
    portal.httpd.stop()
    os.rename(portal.httpd.db, portal.httpd.db + ".away")
    open(portal.httpd.db, "w").close()
    portal.httpd.fix_perms()
    portal.httpd.start()
    r = basic(portal, "/basic/", "ann@example.com")
    assert r.status_code == 503
    assert "password area" not in r.text
