"""GET <SPPath>/metadata through httpd: the SP metadata an IdP imports,
valid against the OASIS SAML 2.0 metadata schema (checked offline with
xmllint and the schemas Debian's opensaml-schemas ships)."""
import os
import subprocess

from lxml import etree

import btsso_httpd
from portal import Portal, SPKEYS

TOP = btsso_httpd.TOP
XSD = "/usr/share/xml/opensaml/saml-schema-metadata-2.0.xsd"
CATALOG = os.path.join(TOP, "t", "fixtures", "xsd", "catalog.xml")
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def schema_valid(tmp_path, xml):
    f = tmp_path / "md.xml"
    f.write_text(xml)
    p = subprocess.run(["xmllint", "--nonet", "--noout", "--schema", XSD,
                        str(f)], capture_output=True, text=True,
                       env=dict(os.environ, XML_CATALOG_FILES=CATALOG))
    return p.returncode == 0, p.stderr


def test_global_metadata(make_httpd, tmp_path):
    conf = ("BTSSOSPCertificate {k}/sp-current.crt\n"
            "BTSSOSPPrivateKey {k}/sp-current.key\n"
            "BTSSOSPNextCertificate {k}/sp-next.crt\n"
            "BTSSOSPNextPrivateKey {k}/sp-next.key\n").format(k=SPKEYS)
    h = make_httpd(btsso_conf=conf, base_url="https://portal.example.com")
    h.write_config()
    h.ctl("init")
    h.start()
    import requests
    r = requests.get(h.url + "/sso/metadata", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/samlmetadata+xml"
    ok, err = schema_valid(tmp_path, r.text)
    assert ok, err
    doc = etree.fromstring(r.content)
    assert doc.get("entityID") == "https://portal.example.com/sso"
    acs = doc.find(".//{%s}AssertionConsumerService" % MD)
    assert acs.get("Location") == "https://portal.example.com/sso/acs"
    assert acs.get("Binding").endswith("HTTP-POST")
    slo = doc.findall(".//{%s}SingleLogoutService" % MD)
    assert {s.get("Location") for s in slo} == {
        "https://portal.example.com/sso/slo"}
    # both bindings, Redirect first
    assert [s.get("Binding").rsplit(":", 1)[1] for s in slo] == [
        "HTTP-Redirect", "HTTP-POST"]
    sp = doc.find("{%s}SPSSODescriptor" % MD)
    assert sp.get("AuthnRequestsSigned") == "true"
    kds = sp.findall("{%s}KeyDescriptor" % MD)
    uses = [k.get("use") for k in kds]
    assert uses.count("signing") == 2          # current and next
    assert uses.count("encryption") >= 1
    certs = {c.text.strip() for c in doc.iter("{%s}X509Certificate" % DS)}
    for name in ("sp-current.crt", "sp-next.crt"):
        with open(os.path.join(SPKEYS, name)) as f:
            body = "".join(l.strip() for l in f
                           if not l.startswith("-----"))
        assert body in certs
    # HEAD answers like GET, without a body
    r = requests.head(h.url + "/sso/metadata", timeout=10)
    assert r.status_code == 200 and r.text == ""
    assert requests.post(h.url + "/sso/metadata",
                         timeout=10).status_code == 405


def test_metadata_without_sp_key(make_httpd, tmp_path):
    h = make_httpd()
    h.write_config()
    h.ctl("init")
    h.start()
    import requests
    r = requests.get(h.url + "/sso/metadata", timeout=10)
    assert r.status_code == 200
    ok, err = schema_valid(tmp_path, r.text)
    assert ok, err
    assert "KeyDescriptor" not in r.text


def test_account_metadata(make_httpd, tmp_path):
    """Self-service accounts import the global SP; unknown accounts 404;
    an account of a shared IdP gets its own entityID and ACS."""
    p = Portal(make_httpd, tmp_path, account="north").start(enable=False)
    import requests
    g = requests.get(p.url + "/sso/metadata", timeout=10).text
    n = requests.get(p.url + "/sso/metadata/north", timeout=10).text
    assert n == g
    assert requests.get(p.url + "/sso/metadata/nosuch",
                        timeout=10).status_code == 404
    assert requests.get(p.url + "/sso/metadata/a%2Fb",
                        timeout=10).status_code == 404
    p.ctl("account", "add", "south")
    # support turns north's IdP into a shared one, then adds south to it
    p.make_idp("north", shared=True)
    p.make_idp("south", shared=True)
    s = requests.get(p.url + "/sso/metadata/south", timeout=10).text
    ok, err = schema_valid(tmp_path, s)
    assert ok, err
    doc = etree.fromstring(s.encode())
    assert doc.get("entityID") == p.url + "/sso/south"
    acs = doc.find(".//{%s}AssertionConsumerService" % MD)
    assert acs.get("Location") == p.url + "/sso/acs/south"
