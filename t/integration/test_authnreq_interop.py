"""Interoperability of the HTTP-Redirect binding with pysaml2.

mod_btsso's core library (driven through t/unit/authnreq_demo, built by
"make check") produces SP metadata, AuthnRequests and LogoutRequests; a
pysaml2 IdP loads the metadata, parses the requests and verifies their
Redirect-binding signatures the way pysaml2's own IdP does.  The other way
round, pysaml2 signs a LogoutRequest and the core library must verify it.

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q t/integration
"""
import os
import subprocess
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.pack import http_redirect_message
from saml2.saml import NameID, NAMEID_FORMAT_EMAILADDRESS
from saml2.server import Server
from saml2.sigver import verify_redirect_signature

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SP_FIXTURES = os.path.join(SRCDIR, "t", "fixtures", "sp")

SP_ENTITY = "https://portal.example.com/sso"
SP_ACS = "https://portal.example.com/sso/acs"
SP_SLO = "https://portal.example.com/sso/slo"
IDP_ENTITY = "https://idp.example.org/idp"
IDP_SSO = "https://idp.example.org/sso"
IDP_SLO = "https://idp.example.org/slo"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"


def fixture(name):
    return os.path.join(SP_FIXTURES, name)


@pytest.fixture(scope="module")
def demo():
    builddir = os.environ.get("BTSSO_BUILDDIR")
    if not builddir:
        pytest.fail("BTSSO_BUILDDIR is not set: run through 'make check'")
    path = os.path.join(builddir, "t", "unit", "authnreq_demo")
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: run 'make check' (it builds "
                    "check_PROGRAMS)" % path)

    def run(*args, expect_ok=True):
        proc = subprocess.run([path] + list(args), capture_output=True,
                              text=True, timeout=60)
        if expect_ok:
            assert proc.returncode == 0, proc.stderr
        return proc
    return run


@pytest.fixture(scope="module")
def idp(demo, tmp_path_factory):
    """A pysaml2 IdP that knows our SP from the metadata we generate."""
    tmp = tmp_path_factory.mktemp("idp")
    md = demo("sp-metadata", SP_ENTITY, SP_ACS, SP_SLO,
              fixture("sp-current.key"), fixture("sp-current.crt")).stdout
    md_file = tmp / "sp-metadata.xml"
    md_file.write_text(md)
    conf = IdPConfig()
    conf.load({
        "entityid": IDP_ENTITY,
        "service": {"idp": {
            "endpoints": {
                "single_sign_on_service": [
                    (IDP_SSO, BINDING_HTTP_REDIRECT),
                    # an SSO URL that carries its own query
                    (IDP_SSO + "?tenant=acme", BINDING_HTTP_REDIRECT),
                ],
                "single_logout_service": [(IDP_SLO, BINDING_HTTP_REDIRECT)],
            },
            # Redirect signatures are checked below with
            # verify_redirect_signature, as pysaml2's example IdP does;
            # this flag is about signatures inside the XML.
            "want_authn_requests_signed": False,
        }},
        "metadata": {"local": [str(md_file)]},
        # The IdP's own key: any key that is not the SP's.
        "key_file": fixture("sp-next.key"),
        "cert_file": fixture("sp-next.crt"),
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "accepted_time_diff": 60,
    })
    return Server(config=conf)


def query_dict(url):
    parsed = parse_qs(urlparse(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


def sp_signature_ok(idp, saml_msg):
    certs = idp.metadata.certs(SP_ENTITY, "any", "signing")
    assert certs, "pysaml2 found no signing certificate in our metadata"
    return any(verify_redirect_signature(saml_msg, idp.sec.sec_backend,
                                         cert=cert) for cert in certs)


def test_metadata_loaded_by_pysaml2(idp):
    acs = idp.metadata.assertion_consumer_service(SP_ENTITY)
    assert [(a["binding"], a["location"]) for a in acs] == [
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", SP_ACS)]
    assert len(idp.metadata.certs(SP_ENTITY, "spsso", "signing")) == 1
    assert len(idp.metadata.certs(SP_ENTITY, "spsso", "encryption")) == 1


def test_signed_authnrequest_accepted(demo, idp):
    url, req_id = demo("authn", IDP_SSO, SP_ENTITY, SP_ACS, "/app/x?y=1",
                       fixture("sp-current.key"),
                       fixture("sp-current.crt")).stdout.split()
    assert url.startswith(IDP_SSO + "?SAMLRequest=")
    saml_msg = query_dict(url)
    assert saml_msg["RelayState"] == "/app/x?y=1"
    assert saml_msg["SigAlg"] == RSA_SHA256

    req = idp.parse_authn_request(saml_msg["SAMLRequest"],
                                  BINDING_HTTP_REDIRECT)
    msg = req.message
    assert msg.id == req_id
    assert msg.issuer.text == SP_ENTITY
    assert msg.destination == IDP_SSO
    assert msg.assertion_consumer_service_url == SP_ACS
    assert msg.protocol_binding == \
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert msg.name_id_policy.format == NAMEID_FORMAT_EMAILADDRESS
    assert msg.name_id_policy.allow_create == "true"
    assert sp_signature_ok(idp, saml_msg)


def test_sha512_signature_accepted(demo, idp):
    url = demo("authn", IDP_SSO, SP_ENTITY, SP_ACS, "",
               fixture("sp-current.key"), fixture("sp-current.crt"),
               RSA_SHA512).stdout.split()[0]
    saml_msg = query_dict(url)
    assert saml_msg["SigAlg"] == RSA_SHA512
    assert "RelayState" not in saml_msg
    assert sp_signature_ok(idp, saml_msg)


def test_tampered_or_foreign_signature_refused(demo, idp):
    url = demo("authn", IDP_SSO, SP_ENTITY, SP_ACS, "/app",
               fixture("sp-current.key"),
               fixture("sp-current.crt")).stdout.split()[0]
    saml_msg = query_dict(url)
    assert sp_signature_ok(idp, saml_msg)
    saml_msg["RelayState"] = "/evil"
    assert not sp_signature_ok(idp, saml_msg)

    # Signed by a key the metadata does not list.
    url = demo("authn", IDP_SSO, SP_ENTITY, SP_ACS, "/app",
               fixture("sp-next.key"),
               fixture("sp-next.crt")).stdout.split()[0]
    assert not sp_signature_ok(idp, query_dict(url))


def test_unsigned_request_and_existing_query(demo, idp):
    url = demo("authn", IDP_SSO + "?tenant=acme", SP_ENTITY, SP_ACS,
               "/").stdout.split()[0]
    assert url.startswith(IDP_SSO + "?tenant=acme&SAMLRequest=")
    saml_msg = query_dict(url)
    assert saml_msg["tenant"] == "acme"
    assert "Signature" not in saml_msg and "SigAlg" not in saml_msg
    req = idp.parse_authn_request(saml_msg["SAMLRequest"],
                                  BINDING_HTTP_REDIRECT)
    assert req.message.issuer.text == SP_ENTITY


def test_logout_request_accepted(demo, idp):
    url, req_id = demo("logout", IDP_SLO, SP_ENTITY, "alice@example.com",
                       "_session-1", fixture("sp-current.key"),
                       fixture("sp-current.crt")).stdout.split()
    saml_msg = query_dict(url)
    req = idp.parse_logout_request(saml_msg["SAMLRequest"],
                                   BINDING_HTTP_REDIRECT)
    msg = req.message
    assert msg.id == req_id
    assert msg.issuer.text == SP_ENTITY
    assert msg.name_id.text == "alice@example.com"
    assert msg.name_id.format == NAMEID_FORMAT_EMAILADDRESS
    assert [s.text for s in msg.session_index] == ["_session-1"]
    assert sp_signature_ok(idp, saml_msg)


def pysaml2_logout_request_query(idp, sigalg=RSA_SHA256):
    _, request = idp.create_logout_request(
        SP_SLO, IDP_ENTITY,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS,
                       text="bob@example.com"),
        session_indexes=["_s2"])
    info = http_redirect_message(str(request), SP_SLO, relay_state="/bye",
                                 typ="SAMLRequest", sigalg=sigalg, sign=True,
                                 backend=idp.sec.sec_backend)
    location = dict(info["headers"])["Location"]
    return urlparse(location).query


def test_pysaml2_signed_logout_request_verified_by_core(demo, idp):
    query = pysaml2_logout_request_query(idp)
    proc = demo("verify", fixture("sp-next.crt"), query)
    assert "LogoutRequest" in proc.stdout
    assert "bob@example.com" in proc.stdout

    # The IdP's signature does not verify with another certificate...
    proc = demo("verify", fixture("sp-current.crt"), query, expect_ok=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("sig_invalid")

    # ...nor once the RelayState is changed.
    fields = parse_qs(query, keep_blank_values=True)
    fields["RelayState"] = ["/evil"]
    tampered = urlencode({k: v[0] for k, v in fields.items()})
    proc = demo("verify", fixture("sp-next.crt"), tampered, expect_ok=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("sig_invalid")
