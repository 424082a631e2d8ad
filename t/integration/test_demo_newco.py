"""The demo's newcomer path, in a real browser, through the demo's own
start script: `sh demo/start.sh` (with BTSSO_DEMO_DIR in a temporary
directory, free ports and this suite's build) starts the portal and
SimpleSAMLphp; headless Chromium then does what the demo's home page tells
a person to do for account newco:

  Admin portal (portal password) > Tools > Single Sign-on, step 1 with the
  demo account's IdP (refused, 409: the page opens Contact Customer Support
  with the facts filled in), then New Co's IdP by URL; the facts; the email
  attribute from the drop-down; certificates (the next one added as
  secondary); the SP metadata download (the same SP the IdP already
  trusts: step 6 at the IdP has nothing to import, and the IdP's
  federation page shows it); the test login at the IdP; Enable SSO.  Then
  New Co's users sign in through the IdP, their portal passwords are
  refused, and the administrator reaches the page again through SSO.

`sh demo/stop.sh` stops both servers by PID, also when a step fails.
Screenshots: t/out/demo-newco/; with BTSSO_UPDATE_DOCS_IMG=1 the few the
README and the administrator's guide show are copied to docs/img/demo-*.png
(so a normal run leaves the source tree alone).
"""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests

import btsso_httpd

selenium = pytest.importorskip(
    "selenium", reason="install python3-selenium, chromium, chromium-driver")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException, StaleElementReferenceException)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOP = btsso_httpd.TOP
OUT = os.path.join(TOP, "t", "out", "demo-newco")
DOCS_IMG = os.path.join(TOP, "docs", "img")
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
SSP_ADMIN_PASSWORD = "btsso-test-admin"      # t/lib/ssp_idp.py's

if os.geteuid() != 0:
    pytest.skip("demo/start.sh runs as root", allow_module_level=True)
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER) and
        os.path.isdir("/usr/share/simplesamlphp")):
    pytest.skip("needs the Debian packages chromium, chromium-driver, "
                "python3-selenium and simplesamlphp", allow_module_level=True)


class Demo:
    """The demo as demo/start.sh starts it, on free ports."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="btsso-demo-newco-")
        os.chmod(self.top, 0o755)       # the httpd user reads below it
        self.dir = os.path.join(self.top, "demo")
        self.sp_port = btsso_httpd.free_port()
        self.idp_port = btsso_httpd.free_port()
        while self.idp_port == self.sp_port:
            self.idp_port = btsso_httpd.free_port()
        self.env = dict(os.environ, BTSSO_DEMO_DIR=self.dir,
                        BTSSO_DEMO_SP_PORT=str(self.sp_port),
                        BTSSO_DEMO_IDP_PORT=str(self.idp_port),
                        BTSSO_DEMO_BUILDDIR=btsso_httpd.BUILDDIR)
        self.base = "http://localhost:%d" % self.sp_port
        self.demo_idp = "http://127.0.0.1:%d/simplesaml" % self.idp_port
        self.newco_idp = "http://localhost:%d/simplesaml" % self.idp_port
        self.output = ""
        self.stop_output = None

    def start(self):
        p = subprocess.run(["sh", os.path.join(TOP, "demo", "start.sh")],
                           capture_output=True, text=True, timeout=600,
                           env=self.env)
        self.output = p.stdout + p.stderr
        assert p.returncode == 0, self.output

    def stop(self):
        p = subprocess.run(["sh", os.path.join(TOP, "demo", "stop.sh")],
                           capture_output=True, text=True, timeout=120,
                           env=self.env)
        self.stop_output = p.stdout + p.stderr

    def sp_log(self):
        try:
            with open(os.path.join(self.dir, "sp", "error.log"),
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture(scope="module")
def demo():
    d = Demo()
    try:
        d.start()
        yield d
    finally:
        # stopped by PID whatever happened above
        d.stop()
        log = d.sp_log()
        d.cleanup()
    assert "stopped 2 server(s)" in d.stop_output, d.stop_output
    for port in (d.sp_port, d.idp_port):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get("http://127.0.0.1:%d/" % port, timeout=5)
    # nothing went wrong inside the SP: no error line, no crashed child
    bad = [line for line in log.splitlines()
           if ":error]" in line or "exit signal" in line]
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="btsso-chromium-")
    downloads = tempfile.mkdtemp(prefix="btsso-downloads-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-quic", "--disable-dev-shm-usage",
              "--window-size=1200,900", "--hide-scrollbars",
              "--user-data-dir=" + profile):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, port=btsso_httpd.free_port())
    drv = None
    try:
        drv = webdriver.Chrome(service=service, options=opts)
        drv.set_page_load_timeout(30)
        drv.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": downloads})
        drv.downloads = downloads
        yield drv
    finally:
        try:
            if drv is not None:
                drv.quit()
        finally:
            # chromedriver is the service's child: stop it by its PID
            proc = getattr(service, "process", None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
            shutil.rmtree(profile, ignore_errors=True)
            shutil.rmtree(downloads, ignore_errors=True)


# ---- helpers ----------------------------------------------------------------

def shot(drv, name, css=None, docs=False):
    """Screenshot into t/out/demo-newco/ (and, with docs, docs/img/)."""
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".png")
    if css is None:
        drv.save_screenshot(path)
    else:
        el = drv.find_element(By.CSS_SELECTOR, css)
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});",
                           el)
        el.screenshot(path)
    assert os.path.getsize(path) > 1000
    if docs and os.environ.get("BTSSO_UPDATE_DOCS_IMG") == "1":
        shutil.copy(path, os.path.join(DOCS_IMG, name + ".png"))
    return path


def body(drv):
    return drv.find_element(By.TAG_NAME, "body").text


def wait(drv, cond, timeout=30, what="condition"):
    try:
        return WebDriverWait(drv, timeout, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException)
        ).until(cond)
    except Exception:
        shot(drv, "FAILED")
        raise AssertionError("waited for %s at %s: %s" % (
            what, drv.current_url, body(drv)[:1500]))


def url_of(drv):
    """The address, without the credentials of a with_password() one."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1", drv.current_url)


def wait_url(drv, prefix):
    wait(drv, lambda d: url_of(d).startswith(prefix), what="URL " + prefix)
    return url_of(drv)


def wait_text(drv, text):
    wait(drv, lambda d: text in body(d), what=repr(text))


def wait_msg(drv, box, kind, contains=""):
    def done(d):
        e = d.find_element(By.ID, box)
        cls = (e.get_attribute("class") or "").split()
        return kind in cls and contains in e.text and e.text
    return wait(drv, done, what="#%s %s %r" % (box, kind, contains))


def find(drv, css):
    return drv.find_element(By.CSS_SELECTOR, css)


def with_password(url, user, password):
    """The first navigation carries the credentials (Basic); the browser's
    auth cache sends them on the page's own requests afterwards."""
    return url.replace("http://", "http://%s:%s@" % (
        urllib.parse.quote(user, safe=""), password), 1)


def idp_login(drv, idp_base, user, password):
    wait_url(drv, idp_base)
    wait(drv, lambda d: d.find_element(By.NAME, "username"),
         what="the IdP's login form")
    drv.find_element(By.NAME, "username").send_keys(user)
    drv.find_element(By.NAME, "password").send_keys(password)
    drv.find_element(By.NAME, "password").submit()


def discovery(drv, demo, email):
    drv.get(demo.base + "/sso/login?return=/portal/")
    wait(drv, lambda d: d.find_element(By.ID, "email"), what="discovery")
    drv.find_element(By.ID, "email").send_keys(email)
    drv.find_element(By.ID, "email").submit()


def sp_of(xml):
    """(entityID, [ACS locations]) of SP metadata."""
    root = ET.fromstring(xml)
    ed = root if root.tag == "{%s}EntityDescriptor" % MD_NS else \
        root.find(".//{%s}EntityDescriptor" % MD_NS)
    acs = [e.get("Location") for e in ed.iter(
        "{%s}AssertionConsumerService" % MD_NS)]
    return ed.get("entityID"), acs


# ---- the path --------------------------------------------------------------

def test_newcomer_sets_up_sso_in_the_demo(demo, browser):
    b = browser
    out = demo.output
    # the start script prints the way in, for both accounts
    assert "Open the portal:  %s/" % demo.base in out
    assert 'Account "demo", ready-made' in out
    assert "%s/admin/" % demo.base in out
    assert "nina@newco.example / nina-portal-pw" in out
    newco_md_url = "http://localhost:%d/newco/idp-metadata.xml" % \
        demo.idp_port
    demo_md_url = demo.demo_idp + "/saml2/idp/metadata.php"
    assert newco_md_url in out and demo_md_url in out

    # the home page explains the path, step 6 included
    b.get(demo.base + "/")
    wait_text(b, "Set up SSO yourself")
    home = body(b)
    assert newco_md_url in home
    assert "nothing to import" in home
    assert find(b, "#newco-md-url").text == newco_md_url
    shot(b, "demo-00-home", "#newco-section", docs=True)

    # before SSO: New Co's users go to the password login
    discovery(b, demo, "ned@newco.example")
    wait_url(b, demo.base + "/password-login.html")

    # Admin portal > Tools > Single Sign-on, with the portal password
    b.get(with_password(demo.base + "/admin/", "nina@newco.example",
                        "nina-portal-pw"))
    wait_text(b, "Tools")
    shot(b, "demo-01-admin-portal", "body", docs=True)
    b.find_element(By.CSS_SELECTOR, 'a[href="sso/newco/"]').click()
    wait_url(b, demo.base + "/admin/sso/newco/")
    wait(b, lambda d: d.find_element(By.ID, "user").text
         == "nina@newco.example", what="the set-up page")
    assert "New Co Ltd" in find(b, "#account-name").text
    assert "@" not in b.execute_script("return location.href")

    # step 1 with the demo account's IdP: refused, 409, and the page opens
    # Contact Customer Support with the facts filled in
    find(b, "#md-url").send_keys(demo_md_url)
    find(b, "#md-fetch").click()
    wait_msg(b, "md-msg", "err", "another account")
    wait(b, lambda d: d.find_element(By.ID, "support").is_displayed(),
         what="the support box")
    assert find(b, "#support-account").text == "newco (New Co Ltd)"
    assert find(b, "#support-user").text == "nina@newco.example"
    assert find(b, "#support-entity").text == demo_md_url   # its entityID
    assert find(b, "#support-metadata").text == "from the URL " + demo_md_url
    assert "409 entity_in_use" in find(b, "#support-reason").text
    text = find(b, "#support-text").get_attribute("value")
    assert "IdP entityID: " + demo_md_url in text
    assert "enable SSO ourselves" in text
    shot(b, "demo-02-contact-support", "#support", docs=True)

    # back to self-service: New Co's own IdP, by URL
    find(b, "#choose-self").click()
    wait(b, lambda d: not d.find_element(By.ID, "support").is_displayed(),
         what="the support box to close")
    find(b, "#md-url").clear()
    find(b, "#md-url").send_keys(newco_md_url)
    find(b, "#md-fetch").click()
    wait_msg(b, "md-msg", "ok", "Metadata fetched")
    facts = find(b, "#facts").text
    newco_entity = demo.newco_idp + "/saml2/idp/metadata.php"
    assert newco_entity in facts and newco_md_url in facts
    assert "HTTP-Redirect: %s/saml2/idp/SSOService.php" % demo.newco_idp \
        in facts
    assert "Email address (mail)" in facts
    assert "1 in this metadata" in facts
    shot(b, "demo-03-facts", "#step-facts")

    # step 3: the email attribute from the drop-down
    sel = Select(find(b, "#email-select"))
    labels = [o.text for o in sel.options]
    assert "Email address \u2014 mail" in labels, labels
    sel.select_by_visible_text("Email address \u2014 mail")
    find(b, "#email-save").click()
    wait_msg(b, "email-msg", "ok", "saved")
    assert "mail" in find(b, "#email-done").text

    # step 4: the IdP's certificate is primary; its next one added by hand
    # as secondary (the file the home page links to)
    rows = b.find_elements(By.CSS_SELECTOR, "#certs tbody tr[data-sha256]")
    assert len(rows) == 1
    assert rows[0].find_element(By.CSS_SELECTOR, "td.role").text.lower() \
        == "primary"
    assert "New Co IdP" in rows[0].text
    r = requests.get(demo.base.replace("localhost", "127.0.0.1")
                     + "/newco-idp-next.crt", timeout=10)
    assert r.status_code == 200 and b"BEGIN CERTIFICATE" in r.content
    nxt = os.path.join(b.downloads, "newco-idp-next.crt")
    with open(nxt, "wb") as f:
        f.write(r.content)
    find(b, "#cert-file").send_keys(nxt)
    Select(find(b, "#cert-role")).select_by_value("secondary")
    find(b, "#cert-add").click()
    wait_msg(b, "cert-msg", "ok", "added")
    wait(b, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "#certs tbody tr[data-sha256]")) == 2,
        what="two certificates")
    roles = sorted(e.text.lower() for e in b.find_elements(
        By.CSS_SELECTOR, "#certs tbody td.role"))
    assert roles == ["primary", "secondary"]
    shot(b, "demo-04-certificates", "#step-certs")

    # step 5: the SP metadata download ...
    sp_entity = demo.base + "/sso"
    assert find(b, "#sp-entity").text == sp_entity
    assert find(b, "#sp-acs").text == sp_entity + "/acs"
    find(b, "#sp-download").click()
    target = os.path.join(b.downloads, "sp-metadata-newco.xml")
    wait(b, lambda d: os.path.exists(target) and os.path.getsize(target) > 0,
         timeout=20, what="the download: %r" % os.listdir(b.downloads))
    time.sleep(0.3)
    downloaded = sp_of(open(target).read())
    # ... is the SP the IdP already trusts: the document it loaded at
    # start (a self-service account uses the global SP entityID and ACS),
    # so step 6 at the IdP has nothing to import ...
    trusted = sp_of(open(os.path.join(demo.dir, "idp", "metadata",
                                      "sp.xml")).read())
    assert downloaded[0] == trusted[0] == sp_entity
    assert sp_entity + "/acs" in downloaded[1]
    assert set(downloaded[1]) == set(trusted[1])
    # ... and the IdP's federation page shows it to its administrator
    b.get(demo.newco_idp + "/module.php/core/frontpage_federation.php")
    b.find_element(By.PARTIAL_LINK_TEXT, "Login as administrator").click()
    wait(b, lambda d: d.find_element(By.NAME, "password"),
         what="the IdP's administrator login")
    user = b.find_element(By.NAME, "username")
    if not user.get_attribute("value"):
        user.send_keys("admin")
    b.find_element(By.NAME, "password").send_keys(SSP_ADMIN_PASSWORD)
    b.find_element(By.NAME, "password").submit()
    wait_url(b, demo.newco_idp + "/module.php/core/frontpage_federation.php")
    wait_text(b, sp_entity)
    shot(b, "demo-05-idp-trusts-sp", docs=True)
    b.get(demo.base + "/admin/sso/newco/")     # (Basic, remembered)
    wait(b, lambda d: d.find_element(By.ID, "user").text
         == "nina@newco.example", what="the set-up page again")

    # step 6: the test login, in a new tab, at New Co's IdP
    link = find(b, "#test-link")
    assert link.get_attribute("href") == demo.base + "/sso/test/newco"
    page_tab = b.current_window_handle
    link.click()
    wait(b, lambda d: len(d.window_handles) == 2, what="the test tab")
    b.switch_to.window([h for h in b.window_handles if h != page_tab][0])
    idp_login(b, demo.newco_idp, "nina", "nina-password")
    wait_text(b, "Single sign-on test")
    result = body(b)
    assert "Success" in result and "nina@newco.example" in result
    assert "extension 200" in result
    # Nina administers newco: her passing test lets step 7 enable SSO
    assert "This test counts" in result
    assert not [c for c in b.get_cookies() if c["name"] == "btsso_session"]
    shot(b, "demo-06-test-login", docs=True)
    b.close()
    b.switch_to.window(page_tab)

    # step 7: enable
    b.refresh()
    wait(b, lambda d: d.find_element(By.ID, "user").text
         == "nina@newco.example", what="the set-up page")
    assert find(b, "#missing-help").text.startswith(
        "The configuration is complete")
    assert "Test passed: nina@newco.example" in find(b, "#test-status").text
    assert not find(b, "#test-first").is_displayed()
    if not find(b, "#enable").is_selected():
        find(b, "#enable").click()
    find(b, "#enable-save").click()
    wait_msg(b, "enable-msg", "ok", "SSO is enabled")
    assert find(b, "#enabled-status").text == "enabled"
    shot(b, "demo-07-enabled", "#step-enable", docs=True)
    problems = [e["message"] for e in b.get_log("browser")
                if e["level"] in ("SEVERE", "WARNING")
                and e.get("source") != "network"]
    assert problems == []

    # New Co's users now sign in through their IdP
    b.delete_all_cookies()
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    discovery(b, demo, "ned@newco.example")
    idp_login(b, demo.newco_idp, "ned", "ned-password")
    wait_url(b, demo.base + "/portal/")
    wait_text(b, "Signed in")
    b.get(demo.base + "/sso/session")
    session = body(b).replace(" ", "")
    assert '"account":"newco"' in session
    assert '"email":"ned@newco.example"' in session

    # ... and their portal passwords are refused, with a way to SSO
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    b.get(with_password(demo.base + "/legacy/", "ned@newco.example",
                        "ned-portal-pw"))
    wait_text(b, "Use single sign-on")
    sso = b.find_element(By.LINK_TEXT, "Sign in with single sign-on")
    assert sso.get_attribute("href") == demo.base + "/sso/login/newco"
    b.get(with_password(demo.base + "/admin/", "nina@newco.example",
                        "nina-portal-pw"))
    wait_text(b, "Use single sign-on")
    shot(b, "demo-08-password-refused", "main", docs=True)

    # the administrator now reaches the page through SSO
    b.get(demo.base + "/admin-sso/sso/newco/")
    wait_url(b, demo.base + "/sso/login")
    b.find_element(By.ID, "email").send_keys("nina@newco.example")
    b.find_element(By.ID, "email").submit()
    idp_login(b, demo.newco_idp, "nina", "nina-password")
    wait_url(b, demo.base + "/admin-sso/sso/newco/")
    wait(b, lambda d: d.find_element(By.ID, "enabled-status").text
         == "enabled", what="the page, signed in with SSO")
    assert find(b, "#user").text == "nina@newco.example"


def test_docs_show_the_screenshots():
    """README and the administrator's guide show the demo's path with the
    screenshots this test takes (and only ones that exist)."""
    readme = open(os.path.join(TOP, "README.md")).read()
    guide = open(os.path.join(TOP, "docs", "admin-guide.md")).read()
    assert "    sh demo/start.sh\n" in readme and "    sh t/run\n" in readme
    shown = set(re.findall(r"\((docs/img/demo-[\w-]+\.png)\)", readme)) | {
        "docs/" + p for p in re.findall(r"\((img/demo-[\w-]+\.png)\)",
                                        guide)}
    assert len(shown) >= 4, shown
    for p in shown:
        assert os.path.exists(os.path.join(TOP, p)), p
    on_disk = {os.path.relpath(p, TOP) for p in
               glob.glob(os.path.join(DOCS_IMG, "demo-*.png"))}
    assert shown <= on_disk
