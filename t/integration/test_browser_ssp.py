"""A real IdP in a real browser: Debian's SimpleSAMLphp as the IdP on
127.0.0.1 (its metadata imported with btssoctl, ours given to it) and
Debian's Chromium driven through chromedriver + Selenium, against httpd
with mod_btsso serving the SP on http://localhost - so the POST from the
IdP to the ACS is cross-site, as in production.

Screenshots of every step land in t/out/browser-*.png.

One httpd, one SimpleSAMLphp and one browser serve the whole module; each
test starts from a browser without cookies.
"""
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

import btsso_httpd  # noqa: E402
from ssp_idp import DEMO_USERS, SimpleSAMLphpIdP  # noqa: E402

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OUT = os.path.join(btsso_httpd.TOP, "t", "out")
SPKEYS = os.path.join(btsso_httpd.TOP, "t", "fixtures", "sp")

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER) and
        os.path.isdir("/usr/share/simplesamlphp")):
    pytest.skip("needs the Debian packages chromium, chromium-driver, "
                "python3-selenium and simplesamlphp", allow_module_level=True)

PASSWORDS = {"ann@example.com": "ann-portal-pw",
             "zed@nosso.example": "zed-portal-pw"}

SP_CONF = """
BTSSOSPCertificate {k}/sp-current.crt
BTSSOSPPrivateKey {k}/sp-current.key
BTSSOConfigTTL 0
BTSSOPasswordLoginURL {base}/password-login.html
"""

LOCATIONS = """
<Location /app>
    AuthType BTSSO
    BTSSOAccount "acme"
    Require valid-user
</Location>
<Location /portal>
    AuthType BTSSO
    Require valid-user
</Location>
<Location /legacy>
    AuthType Basic
    AuthName "Portal password"
    AuthBasicProvider file
    AuthUserFile {dir}/htpasswd
    Require valid-user
    BTSSOPasswordGuard On
</Location>
"""


def post_slo_only(sp_md):
    """Our SP metadata with its HTTP-Redirect SingleLogoutService removed,
    as an IdP administrator who wants POST for this SP would set it up:
    SimpleSAMLphp then sends its LogoutRequest and LogoutResponse to us
    over HTTP-POST."""
    import re
    out = re.sub(r"<(\w+:)?SingleLogoutService [^>]*HTTP-Redirect[^>]*/>",
                 "", sp_md)
    assert out != sp_md and "HTTP-POST" in out
    return out


class Demo:
    """httpd + SimpleSAMLphp + SQLite store, set up the way the README's
    demo sets them up."""

    def __init__(self, post_only=False):
        self.h = btsso_httpd.Httpd()
        h = self.h
        h.base_url = "http://localhost:%d" % h.port
        h.btsso_conf = SP_CONF.format(k=SPKEYS, base=h.base_url)
        h.extra_conf = LOCATIONS.format(dir=h.dir)
        self.base = h.base_url
        for d in ("app", "legacy", "portal"):
            os.makedirs(os.path.join(h.docroot, d), exist_ok=True)
        pages = {"index.html": "<h1>Portal home</h1>",
                 "app/index.html": "<h1>Portal app</h1><p>signed in</p>",
                 "app/idp.html": "<h1>Arrived from the IdP</h1>",
                 "legacy/index.html": "<h1>Password area</h1>",
                 "portal/index.html": "<h1>Portal (any account)</h1>",
                 "password-login.html": "<h1>Password login</h1>"}
        for name, body in pages.items():
            with open(os.path.join(h.docroot, name), "w") as f:
                f.write("<!DOCTYPE html><title>%s</title>%s\n" % (name,
                                                                    body))
        with open(os.path.join(h.dir, "htpasswd"), "w") as f:
            for user, pw in PASSWORDS.items():
                f.write("%s:{SHA}%s\n" % (user, base64.b64encode(
                    hashlib.sha1(pw.encode()).digest()).decode()))
        h.write_config()
        h.ctl("init")
        h.ctl("account", "add", "acme", "--name", "Acme Ltd")
        h.ctl("user", "add", "acme", "100", "ann@example.com")
        h.ctl("user", "add", "acme", "101", "bob@example.com")
        h.ctl("account", "add", "nosso", "--name", "No SSO Ltd")
        h.ctl("user", "add", "nosso", "300", "zed@nosso.example")
        h.start()
        sp_md = requests.get(self.base.replace("localhost", "127.0.0.1")
                             + "/sso/metadata", timeout=10).text
        if post_only:
            sp_md = post_slo_only(sp_md)
        self.idp = SimpleSAMLphpIdP(os.path.join(h.dir, "ssp"), sp_md,
                                    trusted_hosts=["localhost:%d" % h.port],
                                    post_only=post_only)
        self.idp.start()
        md = os.path.join(h.dir, "ssp-metadata.xml")
        with open(md, "w") as f:
            f.write(self.idp.metadata())
        h.ctl("idp", "import", "acme", md)
        h.ctl("attr", "set", "acme", "mail")
        # SSO is enabled by the test of "test before enforce"

    def stop(self):
        self.idp.stop()
        self.h.stop()

    def cleanup(self):
        self.idp.cleanup()
        self.h.cleanup()


@pytest.fixture(scope="module")
def demo():
    d = Demo()
    yield d
    d.stop()
    bad = d.h.unexpected_log_lines()
    logs = d.h.log_text()[-8000:] + "\n" + d.idp.log_text()
    d.cleanup()
    assert not bad, "unexpected lines in the error log:\n" + \
        "\n".join(bad) + "\n" + logs


@pytest.fixture(scope="module")
def browser():
    os.makedirs(OUT, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="btsso-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-quic", "--window-size=1100,800",
              "--user-data-dir=" + profile):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def b(browser, demo):
    """The browser with no cookies anywhere, and SSO enabled."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    if not demo.__dict__.get("enabled"):
        demo.h.ctl("enable", "acme")
        demo.enabled = True
    return browser


def shot(drv, name):
    drv.save_screenshot(os.path.join(OUT, "browser-%s.png" % name))


def wait_url(drv, prefix, timeout=30):
    try:
        WebDriverWait(drv, timeout).until(
            lambda d: d.current_url.startswith(prefix))
    except Exception:
        shot(drv, "FAILED-waiting")
        raise AssertionError("browser at %s, not %s: %s" % (
            drv.current_url, prefix,
            drv.find_element(By.TAG_NAME, "body").text[:500]))
    return drv.current_url


def wait_text(drv, text, timeout=30):
    try:
        WebDriverWait(drv, timeout).until(
            lambda d: text in d.find_element(By.TAG_NAME, "body").text)
    except Exception:
        shot(drv, "FAILED-waiting")
        raise AssertionError("no '%s' at %s: %s" % (
            text, drv.current_url,
            drv.find_element(By.TAG_NAME, "body").text[:500]))


def idp_login(drv, demo, user, password, name):
    """Fill SimpleSAMLphp's login form."""
    wait_url(drv, demo.idp.base)
    WebDriverWait(drv, 30).until(
        EC.presence_of_element_located((By.NAME, "username")))
    shot(drv, name + "-idp-form")
    drv.find_element(By.NAME, "username").send_keys(user)
    drv.find_element(By.NAME, "password").send_keys(password)
    drv.find_element(By.NAME, "password").submit()


def sp_session_cookie(drv):
    c = drv.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    return [x for x in c if x["name"] == "btsso_session"]


def session_json(drv, demo):
    drv.get(demo.base + "/sso/session")
    return drv.find_element(By.TAG_NAME, "body").text


# ---- the tests ----------------------------------------------------------

def test_test_page_before_enforce(browser, demo):
    """Before SSO is enabled, the administrator's test round trip works,
    shows what the IdP sent and creates no session."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.get(demo.base + "/sso/test/acme")
    idp_login(browser, demo, "ann", DEMO_USERS["ann"][0], "testpage")
    wait_url(browser, demo.base + "/sso/acs")
    wait_text(browser, "Single sign-on test")
    shot(browser, "testpage-result")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Success" in body
    assert "ann@example.com" in body
    assert browser.find_element(By.ID, "nameid").text == "ann@example.com"
    attrs = browser.find_element(By.ID, "attributes").text
    for name in ("mail", "uid", "displayName", "eduPersonAffiliation"):
        assert name in attrs
    assert "Ann Example" in attrs and "staff" in attrs
    assert "extension 100" in body
    assert sp_session_cookie(browser) == []


def test_sp_initiated_login_and_second_visit(b, demo):
    b.get(demo.base + "/app/")
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "login")
    wait_url(b, demo.base + "/app/")
    wait_text(b, "Portal app")
    shot(b, "login-landed")
    # the pending sign-in cookie went with the IdP's cross-site POST and
    # was cleared by the ACS
    assert not [x for x in b.execute_cdp_cmd("Network.getAllCookies", {})[
        "cookies"] if "_pending_" in x["name"]]
    # SameSite=Lax was enough: the cookie is set by the ACS response to
    # the cross-site POST, not needed on it
    c = sp_session_cookie(b)
    assert len(c) == 1
    assert c[0]["httpOnly"] and c[0]["sameSite"] == "Lax"
    assert c[0]["domain"] == "localhost"
    assert '"email":"ann@example.com"' in session_json(b, demo).replace(
        " ", "")
    # a second visit: no trip to the IdP (its SAML endpoints; the
    # browser may still fetch the IdP's favicon late)
    seen = demo.idp.requests_seen("/saml2/")
    b.get(demo.base + "/app/")
    wait_text(b, "Portal app")
    assert b.current_url == demo.base + "/app/"
    shot(b, "second-visit")
    assert demo.idp.requests_seen("/saml2/") == seen


def test_wrong_password_stays_at_idp(b, demo):
    b.get(demo.base + "/sso/login/acme?return=/app/")
    idp_login(b, demo, "ann", "not-the-password", "wrong-password")
    WebDriverWait(b, 30).until(
        EC.presence_of_element_located((By.NAME, "password")))
    time.sleep(0.3)
    shot(b, "wrong-password")
    assert b.current_url.startswith(demo.idp.base)
    body = b.find_element(By.TAG_NAME, "body").text.lower()
    assert "incorrect" in body or "wrong" in body
    assert sp_session_cookie(b) == []
    # the sign-in in flight is kept by the browser: SameSite=None (the ACS
    # POST is cross-site), so Secure, which Chromium keeps for
    # http://localhost
    pending = [x for x in b.execute_cdp_cmd("Network.getAllCookies", {})[
        "cookies"] if x["name"].startswith("btsso_session_pending_")]
    assert len(pending) == 1
    assert pending[0]["secure"] and pending[0]["httpOnly"]
    assert pending[0]["sameSite"] == "None"


def test_idp_initiated_login(b, demo):
    b.get(demo.idp.idp_initiated_url(demo.base + "/sso", "/app/idp.html"))
    idp_login(b, demo, "bob", DEMO_USERS["bob"][0], "idp-initiated")
    wait_url(b, demo.base + "/app/idp.html")
    wait_text(b, "Arrived from the IdP")
    shot(b, "idp-initiated-landed")
    assert '"email":"bob@example.com"' in session_json(b, demo).replace(
        " ", "")


def test_sp_initiated_single_logout(b, demo):
    b.get(demo.base + "/app/")
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "slo")
    wait_text(b, "Portal app")
    b.get(demo.base + "/sso/logout?return=/index.html")
    # via the IdP (LogoutRequest, then its signed LogoutResponse) home
    wait_url(b, demo.base + "/index.html")
    wait_text(b, "Portal home")
    shot(b, "slo-done")
    assert sp_session_cookie(b) == []
    assert "no_session" in session_json(b, demo)
    log = demo.h.log_text()
    assert "BTSSO0503" in log          # the IdP confirmed, signature ok
    # the IdP session ended too: the portal sends us to its login form
    b.get(demo.base + "/app/")
    wait_url(b, demo.idp.base)
    WebDriverWait(b, 30).until(
        EC.presence_of_element_located((By.NAME, "password")))
    shot(b, "slo-idp-asks-again")


def test_idp_initiated_single_logout(b, demo):
    b.get(demo.base + "/app/")
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "idp-slo")
    wait_text(b, "Portal app")
    before = demo.h.log_text().count("BTSSO0504")
    b.get(demo.idp.idp_logout_url(demo.base + "/index.html"))
    wait_url(b, demo.base + "/index.html")
    wait_text(b, "Portal home")
    shot(b, "idp-slo-done")
    log = demo.h.log_text()
    assert log.count("BTSSO0504") == before + 1
    assert "ended 1 session(s)" in log.splitlines()[
        [i for i, line in enumerate(log.splitlines())
         if "BTSSO0504" in line][-1]]
    assert "no_session" in session_json(b, demo)


def test_password_guard(b, demo):
    user = urllib.parse.quote("ann@example.com", safe="")
    b.get("http://%s:%s@localhost:%d/legacy/" % (
        user, PASSWORDS["ann@example.com"], demo.h.port))
    wait_text(b, "Use single sign-on")
    shot(b, "password-guard-refused")
    link = b.find_element(By.LINK_TEXT, "Sign in with single sign-on")
    assert link.get_attribute("href") == demo.base + "/sso/login/acme"
    link.click()
    wait_url(b, demo.idp.base)
    # a user of an account without SSO passes
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    user = urllib.parse.quote("zed@nosso.example", safe="")
    b.get("http://%s:%s@localhost:%d/legacy/" % (
        user, PASSWORDS["zed@nosso.example"], demo.h.port))
    wait_text(b, "Password area")
    shot(b, "password-guard-passed")


def test_discovery(b, demo):
    b.get(demo.base + "/portal/")       # no session, no BTSSOAccount
    wait_url(b, demo.base + "/sso/login")
    WebDriverWait(b, 30).until(
        EC.presence_of_element_located((By.ID, "email")))
    shot(b, "discovery-form")
    b.find_element(By.ID, "email").send_keys("Ann@Example.com")
    b.find_element(By.ID, "email").submit()
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "discovery")
    # `return` was kept through the IdP
    wait_url(b, demo.base + "/portal/")
    wait_text(b, "Portal (any account)")
    shot(b, "discovery-landed")
    # an address of an account without SSO goes to the password login
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    b.get(demo.base + "/sso/login")
    b.find_element(By.ID, "email").send_keys("zed@nosso.example")
    b.find_element(By.ID, "email").submit()
    wait_url(b, demo.base + "/password-login.html")
    wait_text(b, "Password login")
    shot(b, "discovery-password")


def test_test_page_after_enforce(b, demo):
    """After enabling, the test page still round-trips and still creates
    no session; an IdP user unknown to the account is named as such."""
    b.get(demo.base + "/sso/test/acme")
    idp_login(b, demo, "eve", DEMO_USERS["eve"][0], "testpage-eve")
    wait_text(b, "Single sign-on test")
    shot(b, "testpage-eve")
    assert b.find_element(By.ID, "code").text == "no_such_user"
    assert "eve@elsewhere.example" in b.find_element(By.ID, "email").text
    assert sp_session_cookie(b) == []


def test_demo_starts_and_stops(browser):
    """demo/demo.py (what demo/start.sh runs after installing and
    building) on free ports: it prints the way in, a person can log in
    through SimpleSAMLphp, and demo/stop.sh stops both servers by PID."""
    sp_port, idp_port = btsso_httpd.free_port(), btsso_httpd.free_port()
    # readable by the httpd user all the way down (pytest's tmp_path is not)
    top = tempfile.mkdtemp(prefix="btsso-demo-test-")
    os.chmod(top, 0o755)
    d = os.path.join(top, "demo")
    env = dict(os.environ, BTSSO_DEMO_DIR=d)
    try:
        p = subprocess.run(
            ["/usr/bin/python3", os.path.join(btsso_httpd.TOP, "demo",
                                              "demo.py"),
             "--dir", d, "--builddir", btsso_httpd.BUILDDIR,
             "--sp-port", str(sp_port), "--idp-port", str(idp_port)],
            capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        base = "http://localhost:%d" % sp_port
        assert "Open the portal:  %s/" % base in p.stdout
        assert "ann  / ann-password" in p.stdout
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        browser.get(base + "/")
        browser.find_element(By.PARTIAL_LINK_TEXT, "Sign in with SSO").click()
        wait_url(browser, "http://127.0.0.1:%d/simplesaml" % idp_port)
        browser.find_element(By.NAME, "username").send_keys("ann")
        browser.find_element(By.NAME, "password").send_keys("ann-password")
        browser.find_element(By.NAME, "password").submit()
        wait_url(browser, base + "/app/")
        wait_text(browser, "Signed in")
        shot(browser, "demo-signed-in")
    finally:
        s = subprocess.run(["sh", os.path.join(btsso_httpd.TOP, "demo",
                                               "stop.sh")],
                           capture_output=True, text=True, env=env,
                           timeout=60)
        shutil.rmtree(top, ignore_errors=True)
    assert "stopped 2 server(s)" in s.stdout
    for port in (sp_port, idp_port):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get("http://127.0.0.1:%d/" % port, timeout=5)


# ---- an IdP that offers HTTP-POST only ---------------------------------

@pytest.fixture(scope="module")
def post_demo():
    d = Demo(post_only=True)
    d.h.ctl("enable", "acme")
    yield d
    d.stop()
    bad = d.h.unexpected_log_lines()
    logs = d.h.log_text()[-8000:] + "\n" + d.idp.log_text()
    d.cleanup()
    assert not bad, "unexpected lines in the error log:\n" + \
        "\n".join(bad) + "\n" + logs


def test_post_only_idp_login_and_single_logout(browser, post_demo):
    """SimpleSAMLphp publishing SSO and SLO over HTTP-POST only: our
    AuthnRequest goes in the auto-submitting form (it wants it signed and
    checks the XML signature), and Single Logout runs over POST both ways,
    started here and started at the IdP."""
    demo, b = post_demo, browser
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    b.get(demo.base + "/app/")
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "post-login")
    wait_url(b, demo.base + "/app/")
    wait_text(b, "Portal app")
    shot(b, "post-login-landed")
    assert demo.idp.requests_seen("POST /simplesaml/saml2/idp/SSOService"
                                  ".php") == 1
    assert demo.idp.requests_seen("GET /simplesaml/saml2/idp/SSOService") \
        == 0
    # SP-initiated: our POSTed LogoutRequest, the IdP's POSTed answer
    b.get(demo.base + "/sso/logout?return=/index.html")
    wait_url(b, demo.base + "/index.html")
    wait_text(b, "Portal home")
    shot(b, "post-slo-done")
    log = demo.h.log_text()
    assert "over HTTP-POST" in [line for line in log.splitlines()
                                if "BTSSO0502" in line][-1]
    assert "over HTTP-POST" in [line for line in log.splitlines()
                                if "BTSSO0503" in line][-1]
    assert "no_session" in session_json(b, demo)
    # the IdP session ended too: sign in again there
    b.get(demo.base + "/app/")
    idp_login(b, demo, "ann", DEMO_USERS["ann"][0], "post-login-again")
    wait_text(b, "Portal app")
    # IdP-initiated: its POSTed LogoutRequest ends the session, our
    # POSTed LogoutResponse goes back, and the IdP returns the browser
    b.get(demo.idp.idp_logout_url(demo.base + "/index.html"))
    wait_url(b, demo.base + "/index.html")
    wait_text(b, "Portal home")
    shot(b, "post-idp-slo-done")
    last = [line for line in demo.h.log_text().splitlines()
            if "BTSSO0504" in line][-1]
    assert "ended 1 session(s) (over HTTP-POST)" in last
    assert "no_session" in session_json(b, demo)
    assert demo.idp.requests_seen("POST /simplesaml/saml2/idp/"
                                  "SingleLogoutService.php") >= 2
