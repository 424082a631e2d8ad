"""`btssoctl idp refresh ACCOUNT|--all` against a local HTTPS server (its own
CA) whose metadata changes between runs, on the store a running httpd
uses: metadata first fetched through the admin API, refreshed by the tool
(as cron would run it), the result seen through the admin API again.

Both httpd and btssoctl run in a private mount namespace whose system CA
bundle is the test CA, so the fetcher's normal verification is exercised.

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_refresh.py
"""
import os
import re
import sqlite3
import subprocess
import urllib.parse

import pytest
import xmlsec
from lxml import etree

import btsso_httpd
from adminlib import (AdminPortal, MetadataServer, MD, KEYS, idp_metadata,
                      namespace_wrapper, sha256_of)

ENTITY = "https://idp.refresh.example.test/idp"


def signed(xml, key):
    """xml (an EntityDescriptor) signed by fixture key `key` the way IdPs
    sign metadata: enveloped, exclusive c14n, Reference to its ID."""
    root = etree.fromstring(xml.encode())
    root.set("ID", "_md")
    sig = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N,
                                 xmlsec.Transform.RSA_SHA256, ns="ds")
    root.insert(0, sig)
    ref = xmlsec.template.add_reference(sig, xmlsec.Transform.SHA256,
                                        uri="#_md")
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_file(os.path.join(KEYS, key + ".key"),
                                   xmlsec.KeyFormat.PEM)
    ctx.register_id(root, "ID")
    ctx.sign(sig)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def mdserver():
    s = MetadataServer()
    yield s
    s.stop()


class Refresh:
    def __init__(self, make_httpd, mdserver, monkeypatch):
        self.md = mdserver
        self.portal = AdminPortal(
            make_httpd, btsso_conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n"
                                   "BTSSOMetadataFetchTimeout 3\n")
        self.nsdir = os.path.join(self.portal.tmp, "ns")
        os.makedirs(self.nsdir)
        monkeypatch.setattr(btsso_httpd, "HTTPD", namespace_wrapper(
            self.nsdir, btsso_httpd.HTTPD, mdserver.ca_copy))
        self.runuser = namespace_wrapper(self.nsdir, "/usr/sbin/runuser",
                                         mdserver.ca_copy)
        self.portal.start()
        self.ann = self.portal.client()

    def ctl(self, *args, rc=0):
        """btssoctl as the httpd user, trusting the test CA."""
        h = self.portal.httpd
        h.write_config()
        h.fix_perms()
        user = btsso_httpd.run_user()
        cmd = [btsso_httpd.btssoctl_path(), "-c", h.conf_path] + list(args)
        if user:
            cmd = [self.runuser, "-u", user, "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
        if rc:
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("btssoctl: "), \
                r.stderr
        return r

    def publish(self, name, certs, sign=None, **kw):
        xml = idp_metadata(ENTITY if "entity" not in kw else kw.pop("entity"),
                           certs, **kw)
        return self.md.put(name, signed(xml, sign) if sign else xml)

    def state(self, client=None):
        """The configuration (the refresh schedule, which every run
        updates, left out)."""
        j = (client or self.ann).config()
        j.pop("csrf_token")
        j.pop("refresh", None)
        return j

    def roles(self, client=None):
        return {c["sha256"]: c["role"]
                for c in (client or self.ann).config()["certificates"]}


@pytest.fixture
def rf(make_httpd, mdserver, monkeypatch):
    return Refresh(make_httpd, mdserver, monkeypatch)


def test_new_certificates_added_and_reported(rf):
    url = rf.publish("idp.xml", ["keycloak"], attributes=["mail"])
    r = rf.ann.post("metadata", json={"url": url})
    assert r.status_code == 200, r.text
    assert r.json()["idp"]["source_url"] == url
    keycloak, google, entra = (sha256_of("keycloak"), sha256_of("google"),
                               sha256_of("entra"))
    assert rf.roles() == {keycloak: "primary"}

    # unchanged: nothing written, not even the version
    before = rf.state()
    out = rf.ctl("idp", "refresh", "acme").stdout
    assert out.strip() == "acme: unchanged"
    assert rf.state() == before

    # the IdP publishes its next certificate in unsigned metadata: added
    # and reported, but TLS alone gives it no role: it waits
    rf.publish("idp.xml", ["keycloak", "google"], attributes=["mail"])
    out = rf.ctl("idp", "refresh", "acme").stdout
    assert google in out and "new signing certificates" in out
    assert "secondary is now" not in out and "waiting for promotion" in out
    assert rf.roles() == {keycloak: "primary", google: "none"}
    assert rf.ann.config()["refresh"]["waiting"] == [google]
    # the same metadata signed by the trusted key: it fills the empty
    # secondary slot
    rf.publish("idp.xml", ["keycloak", "google"], attributes=["mail"],
               sign="keycloak")
    out = rf.ctl("idp", "refresh", "acme").stdout
    assert "secondary is now " + google in out
    assert rf.roles() == {keycloak: "primary", google: "secondary"}
    # the running module sees it at once (BTSSOConfigTTL 0 in the tests)
    certs = {c["sha256"]: c for c in rf.ann.config()["certificates"]}
    assert certs[google]["usable"] is True

    # a third one while the secondary is valid: added without a role
    rf.publish("idp.xml", ["keycloak", "google", "entra"],
               attributes=["mail"], sign="keycloak")
    out = rf.ctl("idp", "refresh", "acme").stdout
    assert entra in out and "secondary is now" not in out
    assert rf.roles() == {keycloak: "primary", google: "secondary",
                          entra: "none"}
    # the audit trail names the tool's run
    assert any(row[3].startswith("idp") for row in rf.portal.audit("acme"))


def test_expired_secondary_is_replaced(rf):
    url = rf.publish("idp.xml", ["keycloak", "expired"])
    assert rf.ann.post("metadata", json={"url": url}).status_code == 200
    keycloak, expired, google = (sha256_of("keycloak"), sha256_of("expired"),
                                 sha256_of("google"))
    # an administrator had put the (now expired) certificate in the slot
    r = rf.ann.put("certificates/" + expired, json={"role": "secondary"})
    assert r.status_code == 200, r.text
    assert rf.roles() == {keycloak: "primary", expired: "secondary"}
    rf.publish("idp.xml", ["keycloak", "expired", "google"], sign="keycloak")
    out = rf.ctl("idp", "refresh", "acme").stdout
    assert "secondary is now " + google in out
    assert rf.roles() == {keycloak: "primary", expired: "none",
                          google: "secondary"}


def test_last_good_metadata_survives(rf, mdserver):
    url = rf.publish("idp.xml", ["keycloak"])
    assert rf.ann.post("metadata", json={"url": url}).status_code == 200
    rf.ann.put("email-attribute", json={"name_id": True})
    good = rf.state()
    # parse failures, fetch failures, and what the fetch policy refuses
    # SP metadata under the IdP's own entityID
    with open(os.path.join(MD, "sp-only.xml"), "rb") as f:
        sp_only = f.read().replace(b"https://sp.agg.example.test/shibboleth",
                                   ENTITY.encode())
    for body, code in ((b"<not metadata", "not_xml"),
                       (b"", "empty"),
                       (sp_only, "not_idp"),
                       (open(os.path.join(MD, "xxe.xml"), "rb").read(),
                        "dtd_forbidden"),
                       (idp_metadata("https://someone.else.test/idp",
                                     ["google"]).encode(), "entity_not_found")):
        mdserver.put("idp.xml", body)
        err = rf.ctl("idp", "refresh", "acme", rc=1).stderr
        assert code in err, (code, err)
        assert rf.state() == good
    os.remove(os.path.join(mdserver.files, "idp.xml"))
    err = rf.ctl("idp", "refresh", "acme", rc=1).stderr
    assert "fetch_failed" in err
    assert rf.state() == good
    # the schedule says so, and backs off
    refresh = rf.ann.config()["refresh"]
    assert refresh["failures"] == 6
    assert refresh["last_error"].startswith("fetch_failed")


def test_refresh_rechecks_redirects(rf, mdserver):
    # metadata published behind a redirect, first to an allowed address
    rf.publish("real.xml", ["keycloak"])
    url = mdserver.https("/redirect?to=/file/real.xml")
    assert rf.ann.post("metadata", json={"url": url}).status_code == 200
    good = rf.state()
    assert good["idp"]["source_url"] == url
    # the redirect now points at a loopback address that is not in
    # BTSSOMetadataFetchAllow (the source URL is rewritten in the store to
    # a redirect there): refused on that hop, nothing changed
    db_url = mdserver.https("/redirect?to=" + urllib.parse.quote(
        mdserver.https("/file/real.xml", host="127.0.0.2"), safe=""))
    db = sqlite3.connect(rf.portal.httpd.db)
    db.execute("UPDATE idp SET source_url = ? WHERE account = 'acme'",
               (db_url,))
    db.commit()
    db.close()
    err = rf.ctl("idp", "refresh", "acme", rc=1).stderr
    assert "url_not_allowed" in err and "127.0.0.2" in err
    good["idp"]["source_url"] = db_url
    assert rf.state() == good


def test_refresh_all(rf, mdserver):
    a = rf.publish("a.xml", ["keycloak"])
    b_url = rf.publish("b.xml", ["entra"], entity="https://other.idp.test/")
    assert rf.ann.post("metadata", json={"url": a}).status_code == 200
    other = rf.portal.client("carol@example.com", "other")
    assert other.post("metadata", json={"url": b_url}).status_code == 200
    # an account whose metadata was uploaded is not refreshed
    twin = rf.portal.client("ann@example.com", "twin")
    r = twin.post("metadata", files={"file": ("x.xml", open(
        os.path.join(MD, "okta.xml"), "rb").read())})
    assert r.status_code == 200
    out = rf.ctl("idp", "refresh", "--all").stdout
    assert out.splitlines() == ["acme: unchanged", "other: unchanged"]
    err = rf.ctl("idp", "refresh", "twin", rc=1).stderr
    assert "not_from_url" in err

    # one account's IdP breaks, the other rolls its certificate
    mdserver.put("a.xml", b"garbage")
    rf.publish("b.xml", ["entra", "google"], entity="https://other.idp.test/",
               sign="entra")
    acme_before = rf.state()
    r = rf.ctl("idp", "refresh", "--all", rc=1)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("acme: failed, kept the last good metadata")
    assert "not_xml" in lines[0]
    assert re.match(r"other: refreshed; new signing certificates: %s"
                    % sha256_of("google"), lines[1])
    assert "1 of 2" in r.stderr and "acme (not_xml)" in r.stderr
    assert rf.state() == acme_before
    assert rf.roles(other)[sha256_of("google")] == "secondary"
