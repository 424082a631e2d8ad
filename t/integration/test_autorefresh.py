"""The module refreshes URL-sourced metadata by itself (SPEC "Metadata
refresh"): a mod_watchdog singleton in httpd, BTSSOMetadataRefreshInterval
short, against a local HTTPS server (t/lib/https_server.py, its own CA)
whose metadata changes between ticks: signed by the key the account
trusts, signed by another key, unsigned, gone, short cacheDuration.  Plus
the upload rules: an expired validUntil is refused and a stored one that
passes is flagged; signed metadata of a trusted IdP must verify.

Metadata is signed here with python3-xmlsec the way t/lib/samlgen.py signs
responses (enveloped, exclusive c14n, Reference "#ID"), and responses are
made by samlgen for its IdP (IDP_ENTITY_ID, resp-idp-rsa, next key
resp-idp-rsa-next).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \\
     t/integration/test_autorefresh.py
"""
import datetime
import os
import re
import subprocess
import time

import pytest
import requests
import xmlsec
from lxml import etree

import btsso_httpd
import samlgen
from adminlib import AdminPortal, MetadataServer, namespace_wrapper, \
    sha256_of_pem

ENTITY = samlgen.IDP_ENTITY_ID
KEYS = os.path.join(btsso_httpd.TOP, "t", "fixtures", "keys")
CUR = os.path.join(KEYS, "resp-idp-rsa")
NEXT = os.path.join(KEYS, "resp-idp-rsa-next")
EVIL = os.path.join(KEYS, "resp-attacker")
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"


def fp(key):
    return sha256_of_pem(key + ".crt")


def b64_of(key):
    pem = open(key + ".crt").read()
    return "".join(pem.split("-----BEGIN CERTIFICATE-----")[1]
                   .split("-----END CERTIFICATE-----")[0].split())


def utc(seconds=0):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(certs, sign=None, valid_until=None, cache_duration=None,
             sso="https://idp.example.test/saml/sso", tamper=False):
    """The IdP's EntityDescriptor (ID="_md1") with the certificates of the
    given fixture keys; sign: the key that signs it (enveloped, exc-c14n,
    rsa-sha256, the certificate in KeyInfo as IdPs do)."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
        '<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data>'
        '</ds:KeyInfo></md:KeyDescriptor>' % b64_of(c) for c in certs)
    attrs = ' ID="_md1"'
    if valid_until:
        attrs += ' validUntil="%s"' % valid_until
    if cache_duration:
        attrs += ' cacheDuration="%s"' % cache_duration
    xml = ('<md:EntityDescriptor xmlns:md="%s" xmlns:ds="%s" entityID="%s"%s>'
           '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:'
           'tc:SAML:2.0:protocol">%s<md:SingleSignOnService Binding="urn:'
           'oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%s"/>'
           '<saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
           ' Name="mail"/></md:IDPSSODescriptor></md:EntityDescriptor>'
           % (NS_MD, NS_DS, ENTITY, attrs, keys, sso))
    root = etree.fromstring(xml.encode())
    if sign:
        sig = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N,
                                     xmlsec.Transform.RSA_SHA256, ns="ds")
        root.insert(0, sig)
        ref = xmlsec.template.add_reference(sig, xmlsec.Transform.SHA256,
                                            uri="#_md1")
        xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
        x509 = xmlsec.template.add_x509_data(
            xmlsec.template.ensure_key_info(sig))
        xmlsec.template.x509_data_add_certificate(x509)
        ctx = xmlsec.SignatureContext()
        k = xmlsec.Key.from_file(sign + ".key", xmlsec.KeyFormat.PEM)
        k.load_cert_from_file(sign + ".crt", xmlsec.KeyFormat.PEM)
        ctx.key = k
        ctx.register_id(root, "ID")
        ctx.sign(sig)
    out = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if tamper:
        out = out.replace(sso.encode(), b"https://evil.example.test/sso")
    return out


class Site:
    """An admin portal whose account acme imports samlgen's IdP from the
    HTTPS server; httpd and btssoctl trust the server's CA."""

    def __init__(self, make_httpd, monkeypatch, interval="2s", extra="",
                 **httpd_kw):
        self.md = MetadataServer()
        self.portal = AdminPortal(
            make_httpd, btsso_conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n"
                                   "BTSSOMetadataFetchTimeout 3\n"
                                   "BTSSOMetadataRefreshInterval %s\n%s"
                                   % (interval, extra), **httpd_kw)
        nsdir = os.path.join(self.portal.tmp, "ns")
        os.makedirs(nsdir)
        monkeypatch.setattr(btsso_httpd, "HTTPD", namespace_wrapper(
            nsdir, btsso_httpd.HTTPD, self.md.ca_copy))
        self.portal.start()
        self.h = self.portal.httpd
        self.ann = self.portal.client()
        monkeypatch.setattr(samlgen, "SP_ENTITY_ID", self.h.url + "/sso")
        monkeypatch.setattr(samlgen, "ACS_URL", self.h.url + "/sso/acs")

    def publish(self, data, name="idp.xml"):
        return self.md.put(name, data)

    def fetches(self, name="idp.xml"):
        return int(requests.get(self.md.https("/count?path=/file/" + name),
                                verify=self.md.ca_copy, timeout=10).text)

    def import_url(self, data):
        url = self.publish(data)
        r = self.ann.post("metadata", json={"url": url})
        assert r.status_code == 200, r.text
        return url

    def roles(self):
        return {c["sha256"]: c["role"]
                for c in self.ann.config()["certificates"]}

    def wait(self, check, timeout=15):
        """Poll GET config until check(config) holds; the config."""
        deadline = time.time() + timeout
        while True:
            cfg = self.ann.config()
            if check(cfg):
                return cfg
            if time.time() > deadline:
                raise AssertionError("timed out; config: %r" % cfg)
            time.sleep(0.3)

    def enable(self):
        self.portal.ctl("attr", "set", "acme", "mail")
        self.portal.ctl("enable", "acme")

    def login(self, key):
        xml = samlgen.build_response(
            now=datetime.datetime.now(datetime.timezone.utc),
            key=key + ".key", cert=key + ".crt",
            attributes=[("mail", ["ann@example.com"])])
        return requests.post(self.h.url + "/sso/acs",
                             data={"SAMLResponse": samlgen.to_b64(xml)},
                             allow_redirects=False, timeout=20)

    def stop(self):
        # httpd first: a refresh against a stopped server would be logged
        self.h.stop()
        self.md.stop()


@pytest.fixture
def site(make_httpd, monkeypatch):
    s = Site(make_httpd, monkeypatch)
    yield s
    s.stop()


def refresh_audit(site):
    return [row for row in site.portal.audit("acme") if row[2] == "refresh"]


# (a) -------------------------------------------------------------------------
def test_signed_rollover_becomes_secondary_and_logins_work(site):
    site.import_url(metadata([CUR], sign=CUR))
    site.enable()
    assert site.roles() == {fp(CUR): "primary"}
    # the IdP's next key is not trusted yet
    r = site.login(NEXT)
    assert r.status_code == 403, r.status_code
    site.h.expect_log("BTSSO0210")
    # the IdP publishes its next certificate, metadata signed by the
    # current key: the module takes it as secondary by itself
    site.publish(metadata([CUR, NEXT], sign=CUR))
    cfg = site.wait(lambda c: {x["sha256"]: x["role"]
                               for x in c["certificates"]}.get(fp(NEXT))
                    == "secondary")
    nxt = [c for c in cfg["certificates"] if c["sha256"] == fp(NEXT)][0]
    assert nxt["source"] == "refresh" and nxt["usable"] is True
    assert cfg["refresh"]["waiting"] == []
    assert cfg["refresh"]["signature"] == "verified"
    assert cfg["refresh"]["last_error"] is None
    actions = [row[3] for row in refresh_audit(site)]
    assert "cert.add" in actions and "cert.role" in actions \
        and "idp.refresh" in actions, actions
    role_row = [row for row in refresh_audit(site) if row[3] == "cert.role"]
    assert fp(NEXT) in role_row[0][4] and "role=secondary" in role_row[0][4]
    # a login signed by the new key works now (BTSSOConfigTTL 0)
    r = site.login(NEXT)
    assert r.status_code == 303, (r.status_code, r.text[-300:])
    assert "BTSSO0603" in site.h.log_text()


# (b) -------------------------------------------------------------------------
def test_metadata_signed_by_another_key_is_refused(site):
    site.import_url(metadata([CUR], sign=CUR))
    before = site.ann.config()
    site.publish(metadata([CUR, EVIL], sign=EVIL))
    site.h.expect_log("BTSSO0606")
    cfg = site.wait(lambda c: c["refresh"]["last_error"] is not None)
    assert cfg["refresh"]["last_error"].startswith(
        "metadata_signature_invalid"), cfg["refresh"]
    assert cfg["refresh"]["failures"] >= 1
    # the old configuration stays in force, untouched
    assert cfg["version"] == before["version"]
    assert [c["sha256"] for c in cfg["certificates"]] == [fp(CUR)]
    assert refresh_audit(site) == []
    # a document altered after the current key signed it: refused too
    site.publish(metadata([CUR, NEXT], sign=CUR, tamper=True))
    time.sleep(3)
    cfg = site.ann.config()
    assert [c["sha256"] for c in cfg["certificates"]] == [fp(CUR)]
    assert cfg["refresh"]["last_error"].startswith(
        "metadata_signature_invalid")
    assert "evil.example.test" not in str(cfg["idp"]["sso"])


# (c) -------------------------------------------------------------------------
def test_unsigned_new_certificate_waits_for_promotion(site):
    site.import_url(metadata([CUR], sign=CUR))
    site.publish(metadata([CUR, NEXT]))
    site.h.expect_log("BTSSO0604")
    cfg = site.wait(lambda c: c["refresh"]["waiting"] == [fp(NEXT)])
    roles = {c["sha256"]: c["role"] for c in cfg["certificates"]}
    assert roles == {fp(CUR): "primary", fp(NEXT): "none"}
    assert cfg["refresh"]["signature"] == "none"
    assert [r[3] for r in refresh_audit(site)] == ["cert.add", "idp.refresh"]
    # the page tells the administrator
    page = site.ann.get("").text
    assert "waits for promotion" in page
    # promoting by hand takes it out of the waiting list
    r = site.ann.put("certificates/" + fp(NEXT), json={"role": "secondary"})
    assert r.status_code == 200, r.text
    assert r.json()["refresh"]["waiting"] == []


def test_btssoctl_refresh_of_unsigned_metadata_gives_no_role(make_httpd,
                                                            monkeypatch):
    """The same rules through `btssoctl idp refresh` (it used to give the
    secondary role on TLS trust alone); the module's own refresh is off."""
    site = Site(make_httpd, monkeypatch, interval="0")
    try:
        btssoctl_refresh(site)
    finally:
        site.stop()


def btssoctl_refresh(site):
    site.import_url(metadata([CUR]))
    site.publish(metadata([CUR, NEXT]))
    runuser = namespace_wrapper(os.path.join(site.portal.tmp, "ns"),
                                "/usr/sbin/runuser", site.md.ca_copy)
    site.h.write_config()
    site.h.fix_perms()
    cmd = [btsso_httpd.btssoctl_path(), "-c", site.h.conf_path, "idp",
           "refresh", "acme"]
    if btsso_httpd.run_user():
        cmd = [runuser, "-u", btsso_httpd.run_user(), "--"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "waiting for promotion" in out.stdout, out.stdout
    assert "secondary is now" not in out.stdout
    assert site.roles() == {fp(CUR): "primary", fp(NEXT): "none"}
    # signed by the trusted key: now it is promoted
    site.publish(metadata([CUR, NEXT], sign=CUR))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "secondary is now " + fp(NEXT) in out.stdout, out.stdout
    assert site.roles() == {fp(CUR): "primary", fp(NEXT): "secondary"}


# (d) -------------------------------------------------------------------------
def test_failing_fetch_backs_off_and_keeps_the_last_good_copy(site):
    site.import_url(metadata([CUR], sign=CUR))
    good = site.ann.config()
    os.remove(os.path.join(site.md.files, "idp.xml"))
    site.h.expect_log("BTSSO0605")
    delays = []
    cfg = site.wait(lambda c: c["refresh"]["failures"] >= 1)
    seen = cfg["refresh"]["failures"]
    for _ in range(2):
        cfg = site.wait(lambda c: c["refresh"]["failures"] > seen,
                        timeout=20)
        seen = cfg["refresh"]["failures"]
        rf = cfg["refresh"]
        delays.append(iso_secs(rf["next"]) - iso_secs(rf["last_attempt"]))
    assert rf["last_error"].startswith("fetch_failed"), rf
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    # the last good copy is in force, unchanged
    assert cfg["version"] == good["version"]
    assert cfg["idp"] == good["idp"]
    assert cfg["certificates"] == good["certificates"]
    # the server answers again: the next refresh works, the count resets
    site.publish(metadata([CUR], sign=CUR))
    cfg = site.wait(lambda c: c["refresh"]["failures"] == 0, timeout=30)
    assert cfg["refresh"]["last_error"] is None


def iso_secs(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# (e) -------------------------------------------------------------------------
def test_cache_duration_shorter_than_interval_is_honoured(make_httpd,
                                                          monkeypatch):
    s = Site(make_httpd, monkeypatch, interval="60s")
    try:
        s.import_url(metadata([CUR], sign=CUR, cache_duration="PT1S"))
        start = s.fetches()
        time.sleep(4.5)
        # every second or so, not once a minute
        assert s.fetches() - start >= 2
        cfg = s.ann.config()
        assert iso_secs(cfg["refresh"]["next"]) - time.time() < 5
        # without cacheDuration the interval rules
        s.publish(metadata([CUR], sign=CUR))
        time.sleep(2.5)
        n = s.fetches()
        time.sleep(3)
        assert s.fetches() == n
    finally:
        s.stop()


# (f) -------------------------------------------------------------------------
def test_expired_valid_until_refused_at_upload_and_flagged(site):
    r = site.ann.post("metadata", files={"file": (
        "idp.xml", metadata([CUR], valid_until=utc(-60)))})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "metadata_expired"
    assert site.ann.config()["idp"] is None
    # stored while valid, it expires later: flagged in config and on the page
    r = site.ann.post("metadata", files={"file": (
        "idp.xml", metadata([CUR], valid_until=utc(3)))})
    assert r.status_code == 200, r.text
    assert r.json()["refresh"]["expired"] is False
    time.sleep(4)
    cfg = site.ann.config()
    assert cfg["refresh"]["expired"] is True
    assert cfg["refresh"]["valid_until"]
    assert "expired on" in site.ann.get("").text
    # through a URL: refused the same way
    url = site.publish(metadata([CUR], valid_until=utc(-60)), "old.xml")
    r = site.ann.post("metadata", json={"url": url})
    assert r.status_code == 422 and r.json()["error"] == "metadata_expired"


# (g) -------------------------------------------------------------------------
def test_upload_with_failing_signature_of_trusted_idp_refused(site):
    r = site.ann.post("metadata", files={"file": (
        "idp.xml", metadata([CUR], sign=CUR))})
    assert r.status_code == 200, r.text
    before = site.ann.config()
    for doc in (metadata([CUR, EVIL], sign=EVIL),
                metadata([CUR, NEXT], sign=CUR, tamper=True)):
        r = site.ann.post("metadata", files={"file": ("idp.xml", doc)})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "metadata_signature_invalid"
        cfg = site.ann.config()
        assert cfg["version"] == before["version"]
        assert cfg["certificates"] == before["certificates"]
    # signed by the trusted key: accepted; unsigned: accepted (uploading
    # is the administrator's act of trust)
    for doc in (metadata([CUR, NEXT], sign=CUR), metadata([CUR, NEXT])):
        r = site.ann.post("metadata", files={"file": ("idp.xml", doc)})
        assert r.status_code == 200, r.text


# (h) -------------------------------------------------------------------------
def test_only_one_process_refreshes(make_httpd, monkeypatch):
    s = Site(make_httpd, monkeypatch, interval="1s",
             extra="StartServers 3\nMinSpareThreads 75\n")
    try:
        s.import_url(metadata([CUR], sign=CUR))
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid",
                               str(s.h.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        assert len(kids) >= 3, kids
        start = s.fetches()
        t0 = time.time()
        time.sleep(4.5)
        n = s.fetches() - start
        elapsed = time.time() - t0
        # one refresh a second, not one per child
        assert 2 <= n <= elapsed / 1.0 + 1, (n, elapsed)
        pids = set(re.findall(r"\[pid (\d+)[^\]]*\][^\n]*BTSSO0610",
                              s.h.log_text()))
        assert len(pids) == 1, pids
    finally:
        s.stop()


def test_two_nodes_share_the_schedule(make_httpd, monkeypatch):
    """A second node on the same store: each due account is claimed by one
    of them, so the IdP is not asked twice as often."""
    s = Site(make_httpd, monkeypatch, interval="1s")
    node2 = make_httpd(btsso_conf=s.portal.conf, db=s.h.db)
    try:
        s.import_url(metadata([CUR], sign=CUR))
        node2.start()
        start = s.fetches()
        t0 = time.time()
        time.sleep(4.5)
        n = s.fetches() - start
        elapsed = time.time() - t0
        assert 2 <= n <= elapsed / 1.0 + 1, (n, elapsed)
    finally:
        node2.stop()
        s.stop()


def test_page_shows_waiting_certificate_and_failed_refresh(site):
    """The set-up page in a real browser: a certificate a refresh added
    without a role says it waits for promotion (in the notice and on its
    row), and a failing refresh says so, with the last good copy in use."""
    from test_admin_page import Browser
    from selenium.webdriver.common.by import By

    site.import_url(metadata([CUR], sign=CUR))
    site.publish(metadata([CUR, NEXT]))
    site.h.expect_log("BTSSO0604")
    site.wait(lambda c: c["refresh"]["waiting"] == [fp(NEXT)])
    b = Browser("ann@example.com")
    try:
        b.open(site.h.url + "/admin/sso/acme/")
        note = b.wait(lambda d: d.find_element(By.ID, "cert-waiting").text)
        assert "waits for promotion" in note and "make it secondary" in note
        row = b.find('#certs tr[data-sha256="%s"]' % fp(NEXT))
        assert "Waits for promotion" in row.text
        b.shot("admin-12-refresh-waiting", "#cert-waiting")
        # the IdP's server goes away: the page says the refresh failed
        site.h.expect_log("BTSSO0605")
        site.md.stop()
        site.wait(lambda c: c["refresh"]["last_error"], timeout=30)
        b.driver.refresh()
        msg = b.wait(lambda d: d.find_element(By.ID, "md-refresh").text)
        assert "failed" in msg and "last good copy stays in use" in msg, msg
        assert not b.console_problems()
    finally:
        b.quit()
