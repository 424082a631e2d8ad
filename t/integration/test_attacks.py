"""Hostile responses through a real httpd: XML signature wrapping (XSW1-8),
certificate faking through KeyInfo, RetrievalMethod, comment-split NameIDs
and attributes (CVE-2017-11427 family), crafted with t/lib/samlgen.py
(lxml + xmlsec) at the current time and posted to the ACS."""
import datetime
import os
import urllib.parse

import pytest

import samlgen
from portal import Portal

IDP_MD = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
 <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
   <ds:X509Certificate>{cert}</ds:X509Certificate>
  </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    Location="https://idp.example.test/saml/sso"/>
 </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""


@pytest.fixture
def site(make_httpd, tmp_path, monkeypatch):
    """A portal whose account trusts samlgen's IdP key; samlgen addresses
    its responses to this portal."""
    p = Portal(make_httpd, tmp_path)
    p.httpd.write_config()
    p.ctl("init")
    p.ctl("account", "add", "acme")
    p.ctl("user", "add", "acme", "100", "alice@example.com")
    p.ctl("user", "add", "acme", "101", "ann@example.com")
    p.httpd.start()
    with open(samlgen.DEFAULT_CERT) as f:
        body = "".join(l.strip() for l in f if not l.startswith("-----"))
    md = os.path.join(p.tmp, "samlgen-idp.xml")
    with open(md, "w") as f:
        f.write(IDP_MD.format(entity=samlgen.IDP_ENTITY_ID, cert=body))
    p.httpd.fix_perms()
    p.ctl("idp", "import", "acme", md)
    p.ctl("attr", "set", "acme", "mail")
    p.ctl("enable", "acme")
    monkeypatch.setattr(samlgen, "SP_ENTITY_ID", p.url + "/sso")
    monkeypatch.setattr(samlgen, "ACS_URL", p.url + "/sso/acs")
    p.httpd.expect_log("BTSSO0210")
    return p


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def post(site, xml):
    return site.acs(samlgen.to_b64(xml))


def assert_refused(r, status=403):
    assert r.status_code == status, (r.status_code, r.text[-300:])
    assert not any(h.startswith("btsso_session=")
                   for h in r.raw.headers.getlist("Set-Cookie"))


def test_genuine_samlgen_response_accepted(site):
    r = post(site, samlgen.build_response(now=now(),
                                          attributes={"mail": [
                                              "alice@example.com"]}))
    assert r.status_code == 303, r.text


@pytest.mark.parametrize("n", range(1, 9))
def test_xsw_refused(site, n):
    assert_refused(post(site, samlgen.xsw(n, now())))


def test_certificate_faking_through_keyinfo(site):
    """Signed by the attacker's key, whose certificate rides in KeyInfo:
    keys come only from the account's certificates."""
    xml = samlgen.build_response(
        now=now(), key=samlgen.key_path("resp-attacker.key"),
        cert=samlgen.key_path("resp-attacker.crt"), keyinfo_cert=True)
    assert_refused(post(site, xml))


def test_retrieval_method_refused_and_not_followed(site):
    xml = samlgen.build_response(now=now(),
                                 mutate=samlgen._m_retrieval_method)
    assert_refused(post(site, xml))


def test_comment_split_nameid(site):
    """alice@example.com<!---->.evil.example must read as the whole text,
    never as alice@example.com."""
    site.ctl("attr", "set", "acme", "--name-id")
    xml = samlgen.build_response(
        now=now(), name_id="alice@example.com.evil.example",
        mutate_assertion=lambda a: _split(a, "NameID"))
    assert b"<!---->" in xml
    r = post(site, xml)
    assert_refused(r)
    assert "no such user" in r.text.lower()


def test_comment_split_attribute(site):
    xml = samlgen.build_response(
        now=now(), attributes={"mail": ["alice@example.com.evil.example"]},
        mutate_assertion=lambda a: _split(a, "AttributeValue"))
    assert b"<!---->" in xml
    r = post(site, xml)
    assert_refused(r)
    assert "no such user" in r.text.lower()


def test_two_assertions_refused_whole(site):
    xml = samlgen.build_response(now=now(), mutate=samlgen._m_two_assertions)
    assert_refused(post(site, xml))


def test_tampered_signed_nameid(site):
    xml = samlgen.build_response(now=now(), mutate=samlgen._m_tamper_nameid)
    assert_refused(post(site, xml))


def test_inclusive_c14n_refused(site):
    assert_refused(post(site, samlgen.build_response(now=now(),
                                                     c14n="inclusive")))


def test_expired_assertion_refused(site):
    old = now() - datetime.timedelta(hours=1)
    assert_refused(post(site, samlgen.build_response(now=old)))


def test_clock_skew_tolerated(site):
    """An IdP clock 2 minutes ahead is within the default 180 s."""
    ahead = now() + datetime.timedelta(seconds=120)
    r = post(site, samlgen.build_response(
        now=ahead, attributes={"mail": ["alice@example.com"]}))
    assert r.status_code == 303, r.text


def test_clock_far_ahead_refused(site):
    ahead = now() + datetime.timedelta(seconds=600)
    assert_refused(post(site, samlgen.build_response(now=ahead)))


def test_status_not_success(site):
    r = post(site, samlgen.build_response(now=now(), status="Responder"))
    assert_refused(r)
    assert "did not log you in" in r.text


def _split(assertion, local):
    """Insert an XML comment in the middle of the first element named
    local, after '.com' of its text (before signing)."""
    for el in assertion.iter():
        if el.tag.endswith("}" + local) and el.text and ".evil" in el.text:
            head, tail = el.text.split(".evil", 1)
            el.text = head
            from lxml import etree
            c = etree.Comment("")
            c.tail = ".evil" + tail
            el.insert(0, c)
            return
    raise AssertionError("no %s to split" % local)


def test_acs_form_reading(site):
    """The ACS reads its urlencoded form itself (h_acs.c read_form): a body
    that is not a form has no response, a body above the bound is refused as too large, a
    RelayState with a NUL octet is refused, a second SAMLResponse field
    after a forged first one does not get the forged one accepted, and a
    form with other fields around the genuine response still signs in."""
    good = samlgen.to_b64(samlgen.build_response(
        now=now(), attributes={"mail": ["alice@example.com"]}))
    enc = urllib.parse.quote(good, safe="")
    url = "/sso/acs"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    r = site.post(url, data="SAMLResponse=" + enc,
                  headers={"Content-Type": "text/plain"})
    assert_refused(r, 400)
    assert "missing" in r.text
    r = site.post(url, data="SAMLResponse=" + "A" * (1024 * 1024 + 10),
                  headers=form)
    assert_refused(r, 403)      # the ACS answers 400, 403, 500 or 503
    assert "too large" in r.text
    r = site.post(url, data="SAMLResponse=%s&RelayState=%%2Fa%%00b" % enc,
                  headers=form)
    assert_refused(r, 400)
    forged = samlgen.to_b64(samlgen.xsw(1, now()))
    r = site.post(url, data="SAMLResponse=%s&SAMLResponse=%s" % (
        urllib.parse.quote(forged, safe=""), enc), headers=form)
    assert_refused(r, 403)
    good2 = samlgen.to_b64(samlgen.build_response(
        now=now(), attributes={"mail": ["alice@example.com"]}))
    r = site.post(url, data="x=1&SAMLResponse=%s&RelayState=%%2Fapp%%2Fx&"
                  "y=%%zz" % urllib.parse.quote(good2, safe=""),
                  headers=form)
    assert r.status_code == 303, r.text[-300:]
    assert r.headers["Location"].endswith("/app/x")
