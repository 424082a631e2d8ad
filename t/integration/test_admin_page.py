"""The SSO set-up page in headless Chromium (Debian's chromium and
chromium-driver through python3-selenium), against a real httpd: a test
drives every step an administrator takes and saves screenshots under
t/out/admin-page/ (docs/img/ holds the ones the guide shows).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_admin_page.py
"""
import base64
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.parse

import pytest
import requests

import btsso_httpd
from adminlib import (AdminPortal, MetadataServer, KEYS, MD, PASSWORD,
                      make_cert, namespace_wrapper, sha256_of,
                      sha256_of_pem)

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
OUT = os.path.join(btsso_httpd.TOP, "t", "out", "admin-page")
EMAIL_CLAIM = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
               "emailaddress")


def free_port():
    return btsso_httpd.free_port()


class Browser:
    """Headless Chromium signed in with httpd Basic authentication, the
    way a person is: the first navigation carries the credentials, after
    which the browser's own auth cache sends them with the page's requests
    and downloads.  Downloads land in a directory of ours."""

    def __init__(self, user):
        if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            pytest.skip("install chromium and chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="btsso-chromium-")
        self.downloads = tempfile.mkdtemp(prefix="btsso-downloads-")
        opts = Options()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--disable-dev-shm-usage",
                  "--window-size=1280,1000", "--hide-scrollbars",
                  "--user-data-dir=" + self.profile):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(CHROMEDRIVER, port=free_port())
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(30)
        self.user = user
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": self.downloads})

    def quit(self):
        try:
            self.driver.quit()
        finally:
            # chromedriver is the service's child; stop it by its PID
            proc = getattr(self.service, "process", None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
            shutil.rmtree(self.profile, ignore_errors=True)
            shutil.rmtree(self.downloads, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------
    def open(self, url):
        user = urllib.parse.quote(self.user, safe="")
        self.driver.get(url.replace("http://", "http://%s:%s@" % (
            user, PASSWORD), 1))
        # the page never sees the credentials
        assert "@" not in self.driver.execute_script("return location.href")

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, cond, timeout=15):
        # the page re-renders after every change: elements found a moment
        # ago may be gone
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException)
        ).until(cond)

    def wait_msg(self, box_id, kind, contains=""):
        """Wait until the message box shows an outcome of that kind."""
        def done(d):
            e = d.find_element(By.ID, box_id)
            cls = e.get_attribute("class") or ""
            return (kind in cls.split() and contains in e.text) and e.text
        try:
            return self.wait(done)
        except Exception:
            raise AssertionError("#%s: wanted %s %r, have class %r text %r" % (
                box_id, kind, contains,
                self.find("#" + box_id).get_attribute("class"),
                self.find("#" + box_id).text))

    def shot(self, name, css=None):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, name + ".png")
        if css is None:
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        else:
            el = self.find(css)
            self.driver.execute_script(
                "arguments[0].scrollIntoView({block: 'center'});", el)
            el.screenshot(path)
        assert os.path.getsize(path) > 1000
        return path

    def console_problems(self):
        """Script errors and CSP violations; refused API calls (4xx) are
        the point of several steps and show as network entries."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] in ("SEVERE", "WARNING")
                and e.get("source") != "network"]


@pytest.fixture
def mdserver():
    s = MetadataServer()
    yield s
    s.stop()


@pytest.fixture
def portal(make_httpd, mdserver, monkeypatch):
    p = AdminPortal(make_httpd,
                    btsso_conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n")
    wrapper = namespace_wrapper(p.tmp, btsso_httpd.HTTPD, mdserver.ca_copy)
    monkeypatch.setattr(btsso_httpd, "HTTPD", wrapper)
    return p.start()


@pytest.fixture
def browser():
    b = Browser("ann@example.com")
    yield b
    b.quit()


def cert_row(b, sha256):
    return b.find('#certs tr[data-sha256="%s"]' % sha256)


def role(b, sha256):
    """The role cell of a certificate's row (the row's buttons also say
    'primary' and 'secondary')."""
    return cert_row(b, sha256).find_element(By.CSS_SELECTOR,
                                            "td.role").text.lower()


def test_walk_every_step(portal, mdserver, browser, tmp_path):
    b = browser
    portal.httpd.expect_log("BTSSO0411")
    page = portal.url + "/admin/sso/acme/"
    b.open(page)
    b.wait(lambda d: d.find_element(By.ID, "user").text
           == "ann@example.com")
    assert "Acme Ltd" in b.find("#account-name").text
    assert b.find("#facts-none").is_displayed()
    assert "needs the IdP metadata" in b.find("#missing-help").text
    b.shot("00-empty")

    # step 7 before anything else: refused, in words
    b.find("#enable").click()
    b.find("#enable-save").click()
    text = b.wait_msg("enable-msg", "err", "cannot be enabled yet")
    assert "IdP metadata" in text and "signing certificate" in text

    # step 1: from a URL (refused by policy first, then a good one)
    b.find("#md-url").send_keys("https://169.254.169.254/latest/meta-data/")
    b.find("#md-fetch").click()
    b.wait_msg("md-msg", "err")
    assert "169.254" not in b.find("#md-msg").text   # words, not details
    entra = open(os.path.join(MD, "entra.xml"), "rb").read()
    url = mdserver.put("entra.xml", entra)
    b.find("#md-url").clear()
    b.find("#md-url").send_keys(url)
    b.find("#md-fetch").click()
    b.wait_msg("md-msg", "ok", "Metadata fetched")
    assert "sts.windows.net" in b.find("#facts").text
    assert url in b.find("#facts").text

    # step 1 again: from a file (hostile first: refused, state kept)
    bad = tmp_path / "sp.xml"
    bad.write_bytes(open(os.path.join(MD, "sp-only.xml"), "rb").read())
    b.find("#md-file").send_keys(str(bad))
    b.find("#md-upload").click()
    b.wait_msg("md-msg", "err")
    assert "sts.windows.net" in b.find("#facts").text
    adfs = tmp_path / "FederationMetadata.xml"
    adfs.write_bytes(open(os.path.join(MD, "adfs.xml"), "rb").read())
    b.find("#md-file").send_keys(str(adfs))
    b.find("#md-upload").click()
    b.wait_msg("md-msg", "ok", "Metadata uploaded")
    b.shot("01-upload", "#step-upload")

    # step 2: the parsed facts
    facts = b.find("#facts").text
    assert "http://adfs.example.test/adfs/services/trust" in facts
    assert "HTTP-Redirect: https://" in facts and "HTTP-POST" in facts
    assert "Logout (SLO)" in facts
    assert "E-Mail Address (%s)" % EMAIL_CLAIM in facts
    assert "urn:oasis:names:tc:SAML" in facts              # NameID formats
    assert "1 in this metadata" in facts
    b.shot("02-facts", "#step-facts")

    # step 3: the drop-down lists the attributes, NameID and Custom
    sel = Select(b.find("#email-select"))
    labels = [o.text for o in sel.options]
    assert any(EMAIL_CLAIM in t and "E-Mail Address" in t for t in labels)
    assert labels[-2].startswith("NameID") and labels[-1].startswith("Custom")
    sel.select_by_value("custom")
    custom = b.find("#email-custom")
    assert custom.is_displayed()
    custom.send_keys("urn:oid:0.9.2342.19200300.100.1.3")
    b.find("#email-save").click()
    b.wait_msg("email-msg", "ok", "saved")
    assert "urn:oid:0.9.2342.19200300.100.1.3" in b.find("#email-done").text
    sel = Select(b.find("#email-select"))
    assert sel.first_selected_option.get_attribute("value") == "custom"
    sel.select_by_value("nameid")
    b.find("#email-save").click()
    b.wait(lambda d: "NameID" in d.find_element(By.ID, "email-done").text)
    Select(b.find("#email-select")).select_by_value("attr:" + EMAIL_CLAIM)
    b.find("#email-save").click()
    b.wait(lambda d: EMAIL_CLAIM in d.find_element(By.ID, "email-done").text)
    b.shot("03-email", "#step-email")

    # step 4: certificates: add an expired one, one expiring soon as
    # secondary, promote, remove
    adfs_sha = sha256_of("adfs-signing")
    assert role(b, adfs_sha) == "primary"
    b.find("#cert-file").send_keys(os.path.join(KEYS, "expired.crt"))
    Select(b.find("#cert-role")).select_by_value("none")
    b.find("#cert-add").click()
    b.wait_msg("cert-msg", "ok", "added")
    expired_sha = sha256_of("expired")
    assert "Expired" in cert_row(b, expired_sha).text
    soon = make_cert(str(tmp_path), "idp-next", 12, cn="adfs-next")
    soon_sha = sha256_of_pem(soon)
    b.find("#cert-file").send_keys(soon)
    Select(b.find("#cert-role")).select_by_value("secondary")
    b.find("#cert-add").click()
    b.wait(lambda d: len(d.find_elements(
        By.CSS_SELECTOR, '#certs tr[data-sha256="%s"]' % soon_sha)) == 1)
    row = cert_row(b, soon_sha)
    assert role(b, soon_sha) == "secondary"
    assert "Expires in 1" in row.text            # 11 or 12 days
    flag = row.find_element(By.CSS_SELECTOR, ".flag")
    assert "expiring" in flag.get_attribute("class")
    assert cert_row(b, expired_sha).find_element(
        By.CSS_SELECTOR, ".flag").get_attribute("class") == "flag expired"
    fp = cert_row(b, adfs_sha).find_element(By.CSS_SELECTOR, "td.fp").text
    assert fp.replace(":", "").replace("\n", "").lower() == adfs_sha
    b.shot("04-certificates", "#step-certs")
    cert_row(b, soon_sha).find_element(
        By.CSS_SELECTOR, 'button[data-action="primary"]').click()
    b.wait_msg("cert-msg", "ok", "now primary")
    assert role(b, soon_sha) == "primary"
    assert role(b, adfs_sha) == "none"
    cert_row(b, adfs_sha).find_element(
        By.CSS_SELECTOR, 'button[data-action="primary"]').click()
    b.wait(lambda d: role(b, adfs_sha) == "primary")
    assert role(b, soon_sha) == "none"
    cert_row(b, expired_sha).find_element(
        By.CSS_SELECTOR, 'button[data-action="delete"]').click()
    b.wait(lambda d: not d.find_elements(
        By.CSS_SELECTOR, '#certs tr[data-sha256="%s"]' % expired_sha))

    # step 5: SP metadata download
    assert b.find("#sp-entity").text == portal.url + "/sso"
    assert b.find("#sp-acs").text == portal.url + "/sso/acs"
    b.find("#sp-download").click()
    target = os.path.join(b.downloads, "sp-metadata-acme.xml")
    try:
        b.wait(lambda d: os.path.exists(target)
               and os.path.getsize(target) > 0, timeout=20)
    except Exception:
        raise AssertionError("downloads: %r" % os.listdir(b.downloads))
    time.sleep(0.3)
    xml = open(target).read()
    assert 'entityID="%s/sso"' % portal.url in xml
    b.shot("05-sp-metadata", "#step-sp")

    # step 6: test link, email uniqueness (a user and a call queue that
    # share bob's contact email, spelled differently)
    portal.ctl("user", "add", "acme", "103", " Bob@Example.com ")
    portal.ctl("user", "add", "acme", "Q7", "bob@example.com", "--kind",
               "call_queue")
    # (user changes elsewhere in the portal bump the account's version:
    # the administrator reloads the page)
    b.open(page)
    b.wait(lambda d: d.find_element(By.ID, "sp-entity").text != "")
    link = b.find("#test-link")
    assert link.get_attribute("href") == portal.url + "/sso/test/acme"
    assert link.get_attribute("target") == "_blank"
    # the test login works before SSO is enabled: off to the IdP
    r = requests.get(link.get_attribute("href"), allow_redirects=False,
                     timeout=10)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(
        "https://adfs.example.test/adfs/ls/?SAMLRequest=")
    b.find("#dup-check").click()
    text = b.wait_msg("dup-msg", "err", "more than once")
    assert "bob@example.com" in text and "extension 103" in text
    assert "call queue Q7" in text
    b.shot("06-test", "#step-test")

    # step 7: enabling refused while emails are shared, listing them
    assert b.find("#missing-help").text.startswith("The configuration is "
                                                   "complete")
    if not b.find("#enable").is_selected():
        b.find("#enable").click()
    b.find("#enable-save").click()
    text = b.wait_msg("enable-msg", "err", "share a contact email")
    assert "bob@example.com" in text and "call queue Q7" in text
    b.shot("07-enable-refused", "#step-enable")
    db = sqlite3.connect(portal.httpd.db)
    db.execute("DELETE FROM users WHERE account = 'acme' AND extension IN "
               "('103', 'Q7')")
    db.commit()
    db.close()
    b.find("#dup-check").click()
    b.wait_msg("dup-msg", "ok", "its own contact email")
    # no administrator passed the test login (this IdP is only a fixture):
    # the page walks to the test first, and offers the override with a
    # warning (test_audit.py has the real test logins)
    first = b.find("#test-first")
    assert first.is_displayed()
    assert "Test first" in first.text and "locked out" in first.text
    assert b.find("#test-first-link").get_attribute("href") == \
        portal.url + "/sso/test/acme"
    assert "No administrator" in b.find("#test-status").text
    if not b.find("#enable").is_selected():
        b.find("#enable").click()
    b.find("#enable-save").click()
    b.wait_msg("enable-msg", "err", "Test the login first")
    b.shot("07-test-first", "#step-enable")
    b.find("#confirm-untested").click()
    b.find("#enable-save").click()
    b.wait_msg("enable-msg", "ok", "SSO is enabled")
    assert b.find("#enabled-status").text == "enabled"
    assert not b.find("#test-first").is_displayed()
    b.shot("07-enabled", "#step-enable")
    # the change history: newest first, who did what; the CSV download
    b.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR,
                                         "#audit-rows tr")) > 5)
    first_row = b.find("#audit-rows tr").text
    assert "ann@example.com" in first_row and "sso.enable" in first_row
    assert b.find("#audit-link").get_attribute("href") == \
        portal.url + "/admin/sso/acme/audit?format=csv"
    b.shot("10-audit", "#audit")
    b.driver.execute_script("window.scrollTo(0, 0);")
    b.shot("08-whole-page")

    # what the page did is what the store holds
    c = portal.client()
    cfg = c.config()
    assert cfg["enabled"] and cfg["email"]["attribute"] == EMAIL_CLAIM
    roles = {x["sha256"]: x["role"] for x in cfg["certificates"]}
    # the certificate of the IdP uploaded before stays, without a role
    assert roles == {adfs_sha: "primary", soon_sha: "none",
                     sha256_of("entra"): "none"}
    actions = [row[3] for row in portal.audit("acme")]
    assert actions[-1] == "sso.enable_untested"
    assert actions == ["idp.set"] * 2 + ["idp.email"] * 3 + ["cert.add"] * 2 + [
        "cert.role"] * 2 + ["cert.remove", "sso.enable",
                            "sso.enable_untested"], actions
    assert b.console_problems() == []


def test_conflict_is_shown_not_lost(portal, browser):
    """Another administrator saves while this page is open: the save from
    the stale page is refused and the page shows the current state."""
    b = browser
    c = portal.client()
    c.post("metadata", files={"file": ("a.xml", open(
        os.path.join(MD, "adfs.xml"), "rb").read())})
    b.open(portal.url + "/admin/sso/acme/")
    b.wait(lambda d: "adfs.example.test" in d.find_element(
        By.ID, "facts").text)
    c.config()
    assert c.put("email-attribute", json={"name_id": True}).status_code == 200
    Select(b.find("#email-select")).select_by_value("attr:" + EMAIL_CLAIM)
    b.find("#email-save").click()
    text = b.wait_msg("email-msg", "err", "current settings")
    assert "changed these settings meanwhile" in text
    assert "not saved" in text
    b.wait(lambda d: "NameID" in d.find_element(By.ID, "email-done").text)
    assert c.config()["email"] == {"attribute": None, "name_id": True}
    b.shot("09-conflict", "#step-email")


def test_page_refuses_other_accounts(portal, browser):
    """The page of an account the user does not administer shows the
    refusal, and no data."""
    portal.httpd.expect_log("BTSSO0403")
    b = browser
    b.open(portal.url + "/admin/sso/other/")
    assert "not an administrator" in b.find("body").text
    assert "csrf_token" not in b.driver.page_source


def test_contact_support_after_409(portal, browser, tmp_path):
    """Beside "Set up SSO by yourself" the page offers "Contact Customer
    Support"; when self-service refuses an IdP that another account holds
    (409), that box opens by itself with what support needs filled in:
    the account, the IdP's entityID, the metadata (here a file) and why
    self-service refused; and it says that the administrator enables SSO
    once support has configured it."""
    b = browser
    portal.httpd.expect_log("BTSSO0409")
    portal.ctl("idp", "import", "other", os.path.join(MD, "adfs.xml"))
    b.open(portal.url + "/admin/sso/acme/")
    b.wait(lambda d: d.find_element(By.ID, "user").text == "ann@example.com")
    # the two ways, side by side; support's box closed at first
    assert b.find("#choose-self").text == "Set up SSO by yourself"
    assert b.find("#choose-support").text == "Contact Customer Support"
    assert not b.find("#support").is_displayed()
    # opened by hand, before any attempt: what to send, nothing invented
    b.find("#choose-support").click()
    b.wait(lambda d: d.find_element(By.ID, "support").is_displayed())
    assert b.find("#choose-support").get_attribute("aria-pressed") == "true"
    assert b.find("#support-account").text == "acme (Acme Ltd)"
    assert b.find("#support-user").text == "ann@example.com"
    assert "metadata" in b.find("#support-entity").text
    assert not b.find("#support-refused").is_displayed()
    nxt = b.find("#support-next").text
    assert "enable SSO yourself" in nxt and "Enable SSO Service" in nxt
    b.find("#support-back").click()
    b.wait(lambda d: not d.find_element(By.ID, "support").is_displayed())
    # the refused upload
    f = tmp_path / "FederationMetadata.xml"
    f.write_bytes(open(os.path.join(MD, "adfs.xml"), "rb").read())
    b.find("#md-file").send_keys(str(f))
    b.find("#md-upload").click()
    b.wait_msg("md-msg", "err", "contact support")
    b.wait(lambda d: d.find_element(By.ID, "support").is_displayed())
    assert b.find("#support-refused").is_displayed()
    entity = "http://adfs.example.test/adfs/services/trust"
    assert b.find("#support-entity").text == entity
    assert b.find("#support-metadata").text == \
        "the file FederationMetadata.xml (attached)"
    reason = b.find("#support-reason").text
    assert "already configured for another account" in reason
    assert "409 entity_in_use" in reason
    # never who holds it
    assert "account other" not in reason and "Other Ltd" not in reason
    text = b.find("#support-text").get_attribute("value")
    for want in ("Account: acme (Acme Ltd)", "Administrator: ann@example.com",
                 "IdP entityID: " + entity, "FederationMetadata.xml",
                 "409 entity_in_use"):
        assert want in text, text
    b.shot("10-contact-support", "#support")
    # nothing was stored for acme
    assert portal.client().config()["idp"] is None
    # a later success clears the refusal
    f2 = tmp_path / "entra.xml"
    f2.write_bytes(open(os.path.join(MD, "entra.xml"), "rb").read())
    b.find("#md-file").send_keys(str(f2))
    b.find("#md-upload").click()
    b.wait_msg("md-msg", "ok", "Metadata uploaded")
    b.wait(lambda d: not d.find_element(By.ID, "support-refused")
           .is_displayed())
    assert "sts.windows.net" in b.find("#support-entity").text
    assert b.find("#support-reason").text.startswith("not tried")
    assert b.console_problems() == []
