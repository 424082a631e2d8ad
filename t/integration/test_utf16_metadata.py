"""IdP metadata in every encoding XML allows is stored so that it reads back
with the same facts (SPEC, security baseline): UTF-16 with a BOM (what
Windows PowerShell's Out-File writes for an ADFS export), UTF-16 declared in
the XML declaration, ISO-8859-1 declared, UTF-8 with and without a BOM.

Each document is uploaded through the admin API (multipart and XML body),
imported with `btssoctl idp import`, or fetched from a URL; afterwards the
admin API's `GET config` and `btssoctl --json idp show` (both parse the
stored copy) show the facts, and a login through the account works.  A
signed document still verifies, with xmlsec1, once stored.

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_utf16_metadata.py
"""
import codecs
import json
import os
import sqlite3
import subprocess

import pytest

import btsso_httpd
from adminlib import (ADMIN_LOCATION, AdminPortal, Client, MetadataServer,
                      idp_metadata, namespace_wrapper, sha256_of,
                      write_htpasswd)
from portal import Portal
from pysaml_idp import KEYS

ORG = "Soci\u00e9t\u00e9 G\u00e9n\u00e9rale"
FRIENDLY = "Pr\u00e9nom"
GIVEN_NAME = "urn:oid:2.5.4.42"
MDNS = "urn:oasis:names:tc:SAML:2.0:metadata"

# What Windows and other tools write.  Every encoding carries the same
# document, with non-ASCII text in an attribute value (FriendlyName) and in
# element content (OrganizationDisplayName).
ENCODINGS = {
    # PowerShell's Out-File: UTF-16LE with a BOM, no XML declaration
    "utf-16le-bom": lambda x: codecs.BOM_UTF16_LE + x.encode("utf-16-le"),
    "utf-16be-bom": lambda x: codecs.BOM_UTF16_BE + x.encode("utf-16-be"),
    # declared, with the BOM the XML spec requires for UTF-16
    "utf-16-declared": lambda x: codecs.BOM_UTF16_LE + (
        '<?xml version="1.0" encoding="UTF-16"?>\r\n' + x
    ).encode("utf-16-le"),
    "utf-16be-declared-no-bom": lambda x: (
        '<?xml version="1.0" encoding="UTF-16"?>\n' + x
    ).encode("utf-16-be"),
    "iso-8859-1": lambda x: (
        "<?xml version='1.0' encoding='ISO-8859-1'?>\n" + x
    ).encode("latin-1"),
    "utf-8-bom": lambda x: codecs.BOM_UTF8 + x.encode("utf-8"),
    "utf-8": lambda x: ('<?xml version="1.0" encoding="UTF-8"?>\n' + x
                        ).encode("utf-8"),
}
MAIN = ("utf-16le-bom", "utf-16be-bom", "iso-8859-1")


def decorate(xml):
    """pysaml2's IdP metadata with non-ASCII facts added."""
    attr = ('<saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:2.0:'
            'assertion" Name="%s" FriendlyName="%s"/>' % (GIVEN_NAME,
                                                         FRIENDLY))
    org = ('<ns0:Organization><ns0:OrganizationName xml:lang="fr">%s'
           '</ns0:OrganizationName><ns0:OrganizationDisplayName '
           'xml:lang="en">%s</ns0:OrganizationDisplayName>'
           '<ns0:OrganizationURL xml:lang="en">https://sg.example.test/'
           '</ns0:OrganizationURL></ns0:Organization>' % (ORG, ORG))
    assert xml.count("</ns0:IDPSSODescriptor>") == 1, xml[:200]
    assert xml.endswith("</ns0:EntityDescriptor>"), xml[-200:]
    xml = xml.replace("</ns0:IDPSSODescriptor>",
                      attr + "</ns0:IDPSSODescriptor>")
    return xml[:-len("</ns0:EntityDescriptor>")] + org + \
        "</ns0:EntityDescriptor>"


class EncodedPortal(Portal):
    """The login portal of test_login.py with the admin API beside it;
    ann is an administrator of acme."""

    def __init__(self, make_httpd, tmp_path):
        super().__init__(make_httpd, tmp_path)
        self.htpasswd = os.path.join(self.httpd.dir, "htpasswd")
        self.httpd.extra_conf += ADMIN_LOCATION.format(
            htpasswd=self.htpasswd)

    def start(self):
        write_htpasswd(self.htpasswd, ["ann@example.com"])
        h = self.httpd
        h.write_config()
        self.ctl("init")
        self.ctl("account", "add", "acme", "--name", "Acme Ltd")
        self.ctl("user", "add", "acme", "100", "ann@example.com", "--admin")
        h.start()
        # the pysaml2 IdP knows the global SP (acme is self-service)
        self.idp = self.make_idp("acme", import_=False)
        return self

    def document(self, encoding):
        return ENCODINGS[encoding](decorate(self.idp.metadata()))

    def admin(self):
        return Client(self, "ann@example.com", "acme")

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        self.httpd.fix_perms()
        return path

    def show(self):
        return json.loads(self.ctl("idp", "show", "acme",
                                   json_out=True).stdout)

    def enable_and_login(self):
        self.ctl("attr", "set", "acme", "mail")
        self.ctl("enable", "acme")
        r = self.login()
        assert r.status_code == 303, (r.status_code, r.text)
        j = self.get("/sso/session", cookies=r.cookies).json()
        assert j["account"] == "acme" and j["email"] == "ann@example.com"
        assert j["idp"] == self.idp.entity_id


def assert_config_facts(idp_json, entity_id):
    """The facts of GET config's "idp" (parsed from the stored copy)."""
    assert "metadata_error" not in idp_json, idp_json
    assert idp_json["entity_id"] == entity_id
    assert [(e["binding"].rsplit(":", 1)[1], e["location"])
            for e in idp_json["sso"]] == [
        ("HTTP-Redirect", entity_id + "/sso"),
        ("HTTP-POST", entity_id + "/sso/post")]
    assert [e["location"] for e in idp_json["slo"]] == [entity_id + "/slo"]
    assert idp_json["signing_certificates"] == [sha256_of("okta")]
    assert idp_json["organization"] == ORG
    assert {"name": GIVEN_NAME, "friendly_name": FRIENDLY} in [
        {"name": a["name"], "friendly_name": a.get("friendly_name")}
        for a in idp_json["attributes"]], idp_json["attributes"]


def assert_show_facts(show, entity_id):
    """The facts of `btssoctl --json idp show` (parsed from the stored
    copy)."""
    assert "metadata_error" not in show, show
    assert show["entity_id"] == entity_id
    assert [e["location"] for e in show.get("sso", [])] == [
        entity_id + "/sso", entity_id + "/sso/post"]
    assert [e["location"] for e in show.get("slo", [])] == [
        entity_id + "/slo"]
    assert [c["sha256"] for c in show["certificates"]] == [sha256_of("okta")]
    assert show["certificates"][0]["role"] == "primary"
    assert {"name": GIVEN_NAME, "friendly_name": FRIENDLY} in \
        show["attributes"]


def stored_xml(h, account="acme"):
    db = sqlite3.connect(h.db)
    try:
        return db.execute("SELECT metadata_xml FROM idp WHERE account = ?",
                          (account,)).fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def portal(make_httpd, tmp_path):
    return EncodedPortal(make_httpd, tmp_path).start()


# ---- admin API --------------------------------------------------------------

@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_admin_upload_reads_back(portal, encoding):
    ann = portal.admin()
    r = ann.post("metadata", files={"file": ("FederationMetadata.xml",
                                             portal.document(encoding),
                                             "text/xml")})
    assert r.status_code == 200, r.text
    assert_config_facts(r.json()["idp"], portal.idp.entity_id)
    assert_config_facts(ann.config()["idp"], portal.idp.entity_id)
    assert_show_facts(portal.show(), portal.idp.entity_id)
    # what is stored is UTF-8 text that says so (or says nothing)
    text = stored_xml(portal.httpd)
    assert ORG in text
    assert "UTF-16" not in text and "ISO-8859-1" not in text
    portal.enable_and_login()


@pytest.mark.parametrize("encoding", MAIN)
def test_admin_xml_body_reads_back(portal, encoding):
    ann = portal.admin()
    r = ann.post("metadata", data=portal.document(encoding),
                 headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 200, r.text
    assert_config_facts(ann.config()["idp"], portal.idp.entity_id)
    assert_show_facts(portal.show(), portal.idp.entity_id)
    portal.enable_and_login()


# ---- btssoctl ----------------------------------------------------------------

@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_btssoctl_import_reads_back(portal, encoding):
    f = portal.write("idp-%s.xml" % encoding, portal.document(encoding))
    out = portal.ctl("idp", "import", "acme", f).stdout
    assert portal.idp.entity_id in out
    assert_show_facts(portal.show(), portal.idp.entity_id)
    assert "metadata_error" not in \
        portal.ctl("idp", "show", "acme").stdout
    assert_config_facts(portal.admin().config()["idp"], portal.idp.entity_id)
    assert ORG in stored_xml(portal.httpd)
    portal.enable_and_login()


# ---- a signed document stays verifiable ----------------------------------------

SIG_TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
    '<ds:SignedInfo>'
    '<ds:CanonicalizationMethod '
    'Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
    '<ds:SignatureMethod '
    'Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
    '<ds:Reference URI="#_md-utf16"><ds:Transforms>'
    '<ds:Transform Algorithm='
    '"http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
    '</ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    '<ds:DigestValue/></ds:Reference></ds:SignedInfo>'
    '<ds:SignatureValue/></ds:Signature>')


def xmlsec(*args):
    return subprocess.run(["/usr/bin/xmlsec1"] + list(args),
                          capture_output=True, timeout=60)


def verify(path):
    return xmlsec("--verify", "--pubkey-cert-pem",
                  os.path.join(KEYS, "okta.crt"), "--id-attr:ID",
                  MDNS + ":EntityDescriptor", path)


def signed_document(portal):
    """pysaml2's metadata, decorated, signed by xmlsec1 (enveloped, exc-c14n)
    with the IdP's key; returned as text without an XML declaration."""
    xml = decorate(portal.idp.metadata())
    xml = xml.replace(" entityID=", ' ID="_md-utf16" entityID=', 1)
    head_end = xml.index(">") + 1
    # a CR, a tab and a character reference: what re-serialization must keep
    xml = (xml[:head_end] + SIG_TEMPLATE + "<!-- r\u00e9sum\u00e9 -->"
           + xml[head_end:])
    tpl = portal.write("signed-template.xml", xml.encode("utf-8"))
    out = os.path.join(portal.tmp, "signed.xml")
    r = xmlsec("--sign", "--privkey-pem", os.path.join(KEYS, "okta.key"),
               "--id-attr:ID", MDNS + ":EntityDescriptor", "--output", out,
               tpl)
    assert r.returncode == 0, r.stderr
    text = open(out, encoding="utf-8").read()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:].lstrip()
    return text


@pytest.mark.parametrize("how", ["btssoctl", "admin"])
def test_signed_utf16_metadata_still_verifies_once_stored(portal, how):
    doc = ENCODINGS["utf-16le-bom"](signed_document(portal))
    f = portal.write("signed-utf16.xml", doc)
    # the document as the IdP published it verifies (in UTF-16)
    r = verify(f)
    assert r.returncode == 0, r.stderr
    if how == "btssoctl":
        portal.ctl("idp", "import", "acme", f)
    else:
        r = portal.admin().post("metadata", data=doc, headers={
            "Content-Type": "application/samlmetadata+xml"})
        assert r.status_code == 200, r.text
    cfg = portal.admin().config()["idp"]
    assert_config_facts(cfg, portal.idp.entity_id)
    assert cfg["signed"] is True
    assert_show_facts(portal.show(), portal.idp.entity_id)
    # the stored UTF-8 copy carries the same canonical form: the signature
    # made over the UTF-16 document verifies over it
    text = stored_xml(portal.httpd)
    assert text.startswith("<?xml") and "UTF-8" in text.split("?>")[0]
    stored = portal.write("stored.xml", text.encode("utf-8"))
    r = verify(stored)
    assert r.returncode == 0, (r.stderr, text[:300])
    # and a changed byte of content does not (the check is real)
    tampered = portal.write("tampered.xml", text.replace(
        ORG, "Soci\u00e9t\u00e9 G\u00e9n\u00e9ralf").encode("utf-8"))
    assert verify(tampered).returncode != 0
    portal.enable_and_login()


# ---- fetched from a URL, then refreshed --------------------------------------------

@pytest.fixture
def mdserver():
    s = MetadataServer()
    yield s
    s.stop()


def test_url_fetch_and_refresh_of_utf16(make_httpd, mdserver, monkeypatch):
    """The admin API's URL fetch stores UTF-16 metadata readably, and
    `btssoctl idp refresh` finds the document unchanged (it compares the
    stored form, not the bytes fetched)."""
    entity = "https://idp.utf16.example.test/adfs"
    admin = AdminPortal(make_httpd, btsso_conf="BTSSOMetadataFetchAllow "
                                               "127.0.0.1/32\n")
    nsdir = os.path.join(admin.tmp, "ns")
    os.makedirs(nsdir)
    monkeypatch.setattr(btsso_httpd, "HTTPD", namespace_wrapper(
        nsdir, btsso_httpd.HTTPD, mdserver.ca_copy))
    runuser = namespace_wrapper(nsdir, "/usr/sbin/runuser", mdserver.ca_copy)
    admin.start()
    xml = idp_metadata(entity, ["okta"], sso=entity + "/ls",
                       attributes=["urn:oid:0.9.2342.19200300.100.1.3"])
    xml = xml.split("?>", 1)[1]
    url = mdserver.put("FederationMetadata.xml",
                       ENCODINGS["utf-16le-bom"](xml))
    ann = admin.client()
    r = ann.post("metadata", json={"url": url})
    assert r.status_code == 200, r.text
    cfg = ann.config()["idp"]
    assert "metadata_error" not in cfg, cfg
    assert cfg["source_url"] == url
    assert [e["location"] for e in cfg["sso"]] == [entity + "/ls"]
    assert cfg["signing_certificates"] == [sha256_of("okta")]
    before = ann.config()

    h = admin.httpd
    h.write_config()
    h.fix_perms()
    cmd = [btsso_httpd.btssoctl_path(), "-c", h.conf_path]
    user = btsso_httpd.run_user()
    if user:
        cmd = [runuser, "-u", user, "--"] + cmd
    r = subprocess.run(cmd + ["idp", "refresh", "acme"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "unchanged" in r.stdout, r.stdout
    r = subprocess.run(cmd + ["--json", "idp", "show", "acme"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    show = json.loads(r.stdout)
    assert "metadata_error" not in show, show
    assert [e["location"] for e in show["sso"]] == [entity + "/ls"]
    after = ann.config()
    assert after["version"] == before["version"]


# ---- the same on PostgreSQL (a UTF-8 database checks what it is given) --------

from test_btssoctl import Store, ctl as store_ctl, jctl, pg_server  # noqa


@pytest.fixture(params=["sqlite3", "pgsql"])
def store(request, tmp_path):
    pg = request.getfixturevalue("pg_server") \
        if request.param == "pgsql" else None
    s = Store(request.param, str(tmp_path), pg)
    yield s
    s.drop()


@pytest.mark.parametrize("encoding", MAIN)
def test_btssoctl_import_on_each_backend(store, tmp_path, encoding):
    entity = "https://idp.encodings.example.test/adfs"
    xml = idp_metadata(entity, ["okta"], sso=entity + "/ls",
                       attributes=[GIVEN_NAME]).split("?>", 1)[1]
    xml = xml.replace('<saml:Attribute Name="%s"/>' % GIVEN_NAME,
                      '<saml:Attribute Name="%s" FriendlyName="%s"/>'
                      % (GIVEN_NAME, FRIENDLY))
    xml = xml.replace("</md:EntityDescriptor>",
                      "<md:Organization><md:OrganizationName xml:lang=\"fr\">"
                      "%s</md:OrganizationName><md:OrganizationDisplayName "
                      "xml:lang=\"fr\">%s</md:OrganizationDisplayName>"
                      "<md:OrganizationURL xml:lang=\"fr\">https://sg.example"
                      ".test/</md:OrganizationURL></md:Organization>"
                      "</md:EntityDescriptor>" % (ORG, ORG))
    f = tmp_path / ("idp-%s.xml" % encoding)
    f.write_bytes(ENCODINGS[encoding](xml))
    store_ctl(store, "init")
    store_ctl(store, "account", "add", "acme")
    store_ctl(store, "idp", "import", "acme", str(f))
    show = jctl(store, "idp", "show", "acme")
    assert "metadata_error" not in show, show
    assert show["entity_id"] == entity
    assert [e["location"] for e in show["sso"]] == [entity + "/ls"]
    assert [c["sha256"] for c in show["certificates"]] == [sha256_of("okta")]
    assert {"name": GIVEN_NAME, "friendly_name": FRIENDLY} in \
        show["attributes"]
    (text,), = store.sql("SELECT metadata_xml FROM idp")
    assert ORG in text and text.startswith("<?xml")
