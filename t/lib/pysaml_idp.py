"""An IdP we did not write: Debian's python3-pysaml2 acting as the identity
provider of the integration tests.

    idp = PysamlIdP(tmpdir, sp_metadata_xml)        # signing key from fixtures
    open(f, "w").write(idp.metadata())              # import with btssoctl
    req = idp.parse_redirect(location_url)          # our AuthnRequest
    b64 = idp.response(req, email="ann@example.com") # signed SAMLResponse

Messages are made by pysaml2 (which signs through the xmlsec1 binary), so
the module is tested against somebody else's reading of the SAML specs.
"""
import base64
import os
import urllib.parse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAME_FORMAT_URI, NameID
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary  # noqa: F401  (checks xmlsec1)

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEYS = os.path.join(TOP, "t", "fixtures", "keys")


class PysamlIdP:
    def __init__(self, workdir, sp_metadata_xml,
                 entity_id="https://idp.test.example/idp",
                 key="okta.key", cert="okta.crt", slo=True, post_only=False):
        """post_only: SingleSignOnService and SingleLogoutService over
        HTTP-POST only (as some IdPs publish them), and AuthnRequests must
        be signed."""
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.entity_id = entity_id
        self.sso_url = entity_id + "/sso"
        self.slo_url = entity_id + "/slo"
        self.key_file = os.path.join(KEYS, key)
        self.cert_file = os.path.join(KEYS, cert)
        sp_md = os.path.join(workdir, "sp-metadata.xml")
        with open(sp_md, "w") as f:
            f.write(sp_metadata_xml)
        endpoints = {
            "single_sign_on_service": [
                (self.sso_url, BINDING_HTTP_REDIRECT),
                (self.sso_url + "/post", BINDING_HTTP_POST)],
        }
        if slo:
            endpoints["single_logout_service"] = [
                (self.slo_url, BINDING_HTTP_REDIRECT)]
        if post_only:
            endpoints["single_sign_on_service"] = [
                (self.sso_url, BINDING_HTTP_POST)]
            if slo:
                endpoints["single_logout_service"] = [
                    (self.slo_url, BINDING_HTTP_POST)]
        conf = {
            "entityid": entity_id,
            "service": {"idp": {
                "endpoints": endpoints,
                "policy": {"default": {
                    "lifetime": {"minutes": 15},
                    "attribute_restrictions": None,
                    "name_form": NAME_FORMAT_URI}},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "want_authn_requests_signed": post_only,
            }},
            "key_file": self.key_file,
            "cert_file": self.cert_file,
            "encryption_keypairs": [{"key_file": self.key_file,
                                     "cert_file": self.cert_file}],
            "metadata": {"local": [sp_md]},
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "allow_unknown_attributes": True,
        }
        self.config = IdPConfig()
        self.config.load(conf)
        self.server = Server(config=self.config)

    def metadata(self):
        """This IdP's metadata, as an administrator would download it."""
        return str(entity_descriptor(self.config))

    def parse_redirect(self, location):
        """Parse an HTTP-Redirect AuthnRequest URL; returns pysaml2's
        request object (with .message and .relay_state added)."""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        req = self.server.parse_authn_request(q["SAMLRequest"][0],
                                              BINDING_HTTP_REDIRECT)
        req.relay_state = q.get("RelayState", [None])[0]
        req.query = q
        return req

    def response(self, req=None, email="ann@example.com", attributes=None,
                 acs_url=None, sp_entity_id=None, sign_response=True,
                 sign_assertion=True, encrypt_assertion=False,
                 encrypt_cert=None, encrypt_aes=True, name_id=None,
                 sign_alg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                 digest_alg="http://www.w3.org/2001/04/xmlenc#sha256"):
        """A base64 SAMLResponse answering req (None: IdP-initiated)."""
        identity = {"mail": [email], "givenName": ["Ann"],
                    "sn": ["Example"]}
        if attributes is not None:
            identity = attributes
        in_response_to = req.message.id if req is not None else None
        if acs_url is None:
            acs_url = req.message.assertion_consumer_service_url
        if sp_entity_id is None:
            sp_entity_id = req.message.issuer.text
        nid = NameID(format=NAMEID_FORMAT_EMAILADDRESS,
                     text=name_id if name_id is not None else email)
        kwargs = {}
        if encrypt_assertion:
            kwargs["encrypt_assertion"] = True
            kwargs["encrypt_cert_assertion"] = encrypt_cert
            kwargs["encrypted_advice_attributes"] = False
        with _aes_encryption(encrypt_assertion and encrypt_aes):
            resp = self.server.create_authn_response(
                identity=identity, in_response_to=in_response_to,
                destination=acs_url, sp_entity_id=sp_entity_id, name_id=nid,
                authn={"class_ref":
                       "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
                       "authn_auth": self.entity_id},
                sign_response=sign_response, sign_assertion=sign_assertion,
                sign_alg=sign_alg, digest_alg=digest_alg, **kwargs)
        return base64.b64encode(str(resp).encode()).decode()


class _aes_encryption:
    """pysaml2 7 encrypts assertions with 3DES and offers no option for
    another cipher: switch its template and xmlsec1 key type to AES-256-CBC
    for the duration of one call (what its newer releases do by default)."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        if not self.on:
            return
        import functools
        import saml2.entity
        from saml2.sigver import CryptoBackendXmlSec1, pre_encryption_part
        self.saved = (saml2.entity.pre_encryption_part,
                      CryptoBackendXmlSec1.encrypt_assertion)
        real = CryptoBackendXmlSec1.encrypt_assertion

        def aes(self_, statement, enc_key, template, key_type="des-192",
                node_xpath=None):
            return real(self_, statement, enc_key, template,
                        key_type="aes-256", node_xpath=node_xpath)
        saml2.entity.pre_encryption_part = functools.partial(
            pre_encryption_part,
            msg_enc="http://www.w3.org/2001/04/xmlenc#aes256-cbc")
        CryptoBackendXmlSec1.encrypt_assertion = aes

    def __exit__(self, *exc):
        if not self.on:
            return False
        import saml2.entity
        from saml2.sigver import CryptoBackendXmlSec1
        saml2.entity.pre_encryption_part = self.saved[0]
        CryptoBackendXmlSec1.encrypt_assertion = self.saved[1]
        return False
