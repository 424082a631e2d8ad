#!/usr/bin/python3
"""samlgen - build SAML 2.0 Responses (valid and hostile) for mod_btsso tests.

Library API (import from t/lib; the integration tests use it with current
times, the unit-test fixtures with a fixed clock):

    import samlgen
    xml = samlgen.build_response(**options)        # -> bytes (UTF-8 XML)
    b64 = samlgen.to_b64(xml)                      # -> str, SAMLResponse value
    b64 = samlgen.build_response_b64(**options)    # both at once

build_response() options (all keyword, all optional):
  now                 datetime (UTC) the IdP's clock; default: current time
  issuer              Assertion Issuer (default IDP_ENTITY_ID)
  response_issuer     Response Issuer; default = issuer; None omits it
  audience            SP entityID in AudienceRestriction (default SP_ENTITY_ID);
                      a list gives several Audience elements; None omits
                      the AudienceRestriction
  destination         Response Destination (default ACS_URL); None omits
  recipient           SubjectConfirmationData Recipient (default ACS_URL)
  in_response_to      InResponseTo on Response and SubjectConfirmationData
                      (default None: IdP-initiated)
  name_id, name_id_format, sp_name_qualifier
  attributes          list of (name, [values]) or dict name -> [values];
                      default: mail, givenName, and a 2-valued memberOf
  status              top-level StatusCode (default "Success", short names
                      are expanded to the SAML status URN); sub_status adds a
                      second-level code; status_message adds StatusMessage
  not_before          seconds relative to now for Conditions NotBefore (-60)
  not_on_or_after     seconds for Conditions NotOnOrAfter (+300)
  scd_not_on_or_after seconds for SubjectConfirmationData NotOnOrAfter (+300;
                      None omits it)
  scd_not_before      seconds, or None (default) to omit
  issue_instant       seconds relative to now for IssueInstant (0)
  session_not_on_or_after seconds (+8 h; None omits)
  method              SubjectConfirmation Method (default bearer)
  conditions          False omits the Conditions element
  one_time_use        adds <OneTimeUse/>
  extra_condition     adds an unknown <saml:Condition xsi:type=...>
  authn_statement     False omits the AuthnStatement
  response_id, assertion_id  IDs (default: random, "_resp-<hex>",
                      "_assert-<hex>", so fresh responses never collide in
                      the replay cache)
  sign_response, sign_assertion  booleans (default: assertion only)
  key, cert           PEM paths of the signing key/cert (default resp-idp-rsa)
  sig_alg             "rsa-sha256" (default), rsa-sha1/384/512, ecdsa-sha256...
  digest_alg          "sha256" (default), sha1, sha384, sha512
  c14n                transform used in Reference and SignedInfo:
                      "exc" (default), "exc-comments", "inclusive"
  keyinfo_cert        embed the signing cert in KeyInfo (default True)
  encrypt             None, "aes128-gcm", "aes256-gcm", "aes128-cbc",
                      "aes256-cbc": wrap the (signed) Assertion in an
                      EncryptedAssertion for the SP
  key_transport       "rsa-oaep-mgf1p" (default) or "rsa-1_5"
  sp_cert             PEM path of the SP encryption cert (default
                      t/fixtures/sp/sp-current.crt)
  mutate_assertion    callable(assertion_element) run before signing: signed
                      but semantically hostile content
  mutate_plaintext    callable(bytes) -> bytes on the serialised Assertion
                      just before encryption
  mutate              callable(tree_root) run on the finished document (after
                      signing and encryption): hostile variants use it.

Hostile variants: HOSTILE maps a fixture name to a function returning XML
bytes; XSW1..XSW8 are built by xsw(n, now).

Command line (regenerates the committed unit-test fixtures at FIXED_NOW):
    /usr/bin/python3 t/lib/samlgen.py --out t/fixtures/responses
writes NAME.b64 (the SAMLResponse value) and NAME.xml (readable) for every
fixture, and INDEX listing them.  --pysaml2 also (re)builds the interop set
made by pysaml2's IdP (default on; --no-pysaml2 skips it).
"""

import argparse
import base64
import copy
import datetime
import os
import secrets
import sys

from lxml import etree
import xmlsec

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
KEYS = os.path.join(TOP, "t", "fixtures", "keys")
SP_KEYS = os.path.join(TOP, "t", "fixtures", "sp")

IDP_ENTITY_ID = "https://idp.example.test/saml/metadata"
SP_ENTITY_ID = "https://portal.example.test/sso"
ACS_URL = "https://portal.example.test/sso/acs"
REQUEST_ID = "_req-4f1c2a9e0b7d"
FIXED_NOW = datetime.datetime(2026, 1, 15, 12, 0, 0,
                              tzinfo=datetime.timezone.utc)

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC = "http://www.w3.org/2001/04/xmlenc#"
NS_XS = "http://www.w3.org/2001/XMLSchema"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
FMT_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
FMT_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
ATTR_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
ATTR_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

SIG_ALGS = {
    "rsa-sha1": xmlsec.Transform.RSA_SHA1,
    "rsa-sha256": xmlsec.Transform.RSA_SHA256,
    "rsa-sha384": xmlsec.Transform.RSA_SHA384,
    "rsa-sha512": xmlsec.Transform.RSA_SHA512,
    "ecdsa-sha1": xmlsec.Transform.ECDSA_SHA1,
    "ecdsa-sha256": xmlsec.Transform.ECDSA_SHA256,
    "ecdsa-sha384": xmlsec.Transform.ECDSA_SHA384,
    "ecdsa-sha512": xmlsec.Transform.ECDSA_SHA512,
}
DIGEST_ALGS = {
    "sha1": xmlsec.Transform.SHA1,
    "sha256": xmlsec.Transform.SHA256,
    "sha384": xmlsec.Transform.SHA384,
    "sha512": xmlsec.Transform.SHA512,
}
C14N = {
    "exc": xmlsec.Transform.EXCL_C14N,
    "exc-comments": xmlsec.Transform.EXCL_C14N_COMMENTS,
    "inclusive": xmlsec.Transform.C14N,
}
DATA_ALGS = {
    "aes128-gcm": (xmlsec.Transform.AES128_GCM, 128),
    "aes256-gcm": (xmlsec.Transform.AES256_GCM, 256),
    "aes128-cbc": (xmlsec.Transform.AES128, 128),
    "aes256-cbc": (xmlsec.Transform.AES256, 256),
}
KEY_TRANSPORT = {
    "rsa-oaep-mgf1p": xmlsec.Transform.RSA_OAEP,
    "rsa-1_5": xmlsec.Transform.RSA_PKCS1,
}


def key_path(name):
    """Path of a file in t/fixtures/keys."""
    return os.path.join(KEYS, name)


DEFAULT_KEY = key_path("resp-idp-rsa.key")
DEFAULT_CERT = key_path("resp-idp-rsa.crt")
DEFAULT_SP_CERT = os.path.join(SP_KEYS, "sp-current.crt")


def q(ns, tag):
    return "{%s}%s" % (ns, tag)


def ts(dt):
    """xs:dateTime in UTC with a Z, as IdPs send it."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_b64(xml):
    """The SAMLResponse POST parameter value for XML bytes."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    return base64.b64encode(xml).decode("ascii")


def _status_urn(code):
    if code.startswith("urn:"):
        return code
    return "urn:oasis:names:tc:SAML:2.0:status:" + code


def _default_attributes():
    return [
        ("mail", ["alice@example.com"]),
        ("givenName", ["Alice"]),
        ("memberOf", ["staff", "admins"]),
    ]


def sign(elem, key=DEFAULT_KEY, cert=DEFAULT_CERT, sig_alg="rsa-sha256",
         digest_alg="sha256", c14n="exc", keyinfo_cert=True,
         extra_reference=False):
    """Add an enveloped ds:Signature to elem (after its Issuer) and sign.

    elem must be in its final document position except for later
    encryption.  Returns the ds:Signature element.
    """
    sig = xmlsec.template.create(elem, C14N[c14n], SIG_ALGS[sig_alg],
                                 ns="ds")
    issuer = elem.find(q(NS_SAML, "Issuer"))
    if issuer is not None:
        issuer.addnext(sig)
    else:
        elem.insert(0, sig)
    ref = xmlsec.template.add_reference(sig, DIGEST_ALGS[digest_alg],
                                        uri="#" + elem.get("ID"))
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, C14N[c14n])
    if extra_reference:
        ref2 = xmlsec.template.add_reference(sig, DIGEST_ALGS[digest_alg],
                                             uri="#" + elem.get("ID"))
        xmlsec.template.add_transform(ref2, xmlsec.Transform.ENVELOPED)
        xmlsec.template.add_transform(ref2, C14N[c14n])
    if keyinfo_cert:
        ki = xmlsec.template.ensure_key_info(sig)
        x509 = xmlsec.template.add_x509_data(ki)
        xmlsec.template.x509_data_add_certificate(x509)
    ctx = xmlsec.SignatureContext()
    k = xmlsec.Key.from_file(key, xmlsec.KeyFormat.PEM)
    k.load_cert_from_file(cert, xmlsec.KeyFormat.PEM)
    ctx.key = k
    ctx.register_id(elem, "ID")
    ctx.sign(sig)
    return sig


def encrypt_assertion(assertion_xml, data_alg="aes128-gcm",
                      key_transport="rsa-oaep-mgf1p", sp_cert=DEFAULT_SP_CERT):
    """Return a saml:EncryptedAssertion element holding assertion_xml
    (bytes of a standalone Assertion, namespaces declared on it)."""
    ea = etree.Element(q(NS_SAML, "EncryptedAssertion"),
                       nsmap={"saml": NS_SAML})
    method, bits = DATA_ALGS[data_alg]
    ed = xmlsec.template.encrypted_data_create(
        ea, method, type="http://www.w3.org/2001/04/xmlenc#Element",
        ns="xenc")
    ea.append(ed)
    xmlsec.template.encrypted_data_ensure_cipher_value(ed)
    ki = xmlsec.template.encrypted_data_ensure_key_info(ed, ns="ds")
    ek = xmlsec.template.add_encrypted_key(ki, KEY_TRANSPORT[key_transport])
    xmlsec.template.encrypted_data_ensure_cipher_value(ek)
    mgr = xmlsec.KeysManager()
    mgr.add_key(xmlsec.Key.from_file(sp_cert, xmlsec.KeyFormat.CERT_PEM))
    ctx = xmlsec.EncryptionContext(mgr)
    ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, bits,
                                  xmlsec.KeyDataType.SESSION)
    ctx.encrypt_binary(ed, assertion_xml)
    return ea


def _build_assertion(o, now):
    nsmap = {"saml": NS_SAML, "xs": NS_XS, "xsi": NS_XSI}
    a = etree.Element(q(NS_SAML, "Assertion"), nsmap=nsmap)
    a.set("ID", o["assertion_id"])
    a.set("Version", "2.0")
    a.set("IssueInstant", ts(now + o["issue_instant"]))
    etree.SubElement(a, q(NS_SAML, "Issuer")).text = o["issuer"]
    subj = etree.SubElement(a, q(NS_SAML, "Subject"))
    if o["name_id"] is not None:
        nid = etree.SubElement(subj, q(NS_SAML, "NameID"))
        if o["name_id_format"]:
            nid.set("Format", o["name_id_format"])
        if o["sp_name_qualifier"]:
            nid.set("SPNameQualifier", o["sp_name_qualifier"])
        nid.text = o["name_id"]
    sc = etree.SubElement(subj, q(NS_SAML, "SubjectConfirmation"))
    sc.set("Method", o["method"])
    scd = etree.SubElement(sc, q(NS_SAML, "SubjectConfirmationData"))
    if o["in_response_to"]:
        scd.set("InResponseTo", o["in_response_to"])
    if o["scd_not_before"] is not None:
        scd.set("NotBefore", ts(now + o["scd_not_before"]))
    if o["scd_not_on_or_after"] is not None:
        scd.set("NotOnOrAfter", ts(now + o["scd_not_on_or_after"]))
    if o["recipient"] is not None:
        scd.set("Recipient", o["recipient"])
    if o["conditions"]:
        c = etree.SubElement(a, q(NS_SAML, "Conditions"))
        c.set("NotBefore", ts(now + o["not_before"]))
        c.set("NotOnOrAfter", ts(now + o["not_on_or_after"]))
        if o["audience"] is not None:
            ar = etree.SubElement(c, q(NS_SAML, "AudienceRestriction"))
            auds = o["audience"]
            if isinstance(auds, str):
                auds = [auds]
            for aud in auds:
                etree.SubElement(ar, q(NS_SAML, "Audience")).text = aud
        if o["one_time_use"]:
            etree.SubElement(c, q(NS_SAML, "OneTimeUse"))
        if o["extra_condition"]:
            ec = etree.SubElement(c, q(NS_SAML, "Condition"))
            ec.set(q(NS_XSI, "type"), "xs:anyType")
    if o["authn_statement"]:
        st = etree.SubElement(a, q(NS_SAML, "AuthnStatement"))
        st.set("AuthnInstant", ts(now - datetime.timedelta(seconds=10)))
        st.set("SessionIndex", "_session-" + o["assertion_id"].lstrip("_"))
        if o["session_not_on_or_after"] is not None:
            st.set("SessionNotOnOrAfter",
                   ts(now + o["session_not_on_or_after"]))
        ac = etree.SubElement(st, q(NS_SAML, "AuthnContext"))
        etree.SubElement(ac, q(NS_SAML, "AuthnContextClassRef")).text = PPT
    attrs = o["attributes"]
    if isinstance(attrs, dict):
        attrs = list(attrs.items())
    if attrs:
        ast = etree.SubElement(a, q(NS_SAML, "AttributeStatement"))
        for name, values in attrs:
            at = etree.SubElement(ast, q(NS_SAML, "Attribute"))
            at.set("Name", name)
            at.set("NameFormat", ATTR_BASIC)
            for v in values:
                av = etree.SubElement(at, q(NS_SAML, "AttributeValue"))
                av.set(q(NS_XSI, "type"), "xs:string")
                av.text = v
    return a


def _secs(v):
    return None if v is None else datetime.timedelta(seconds=v)


def build_response(**options):
    """Build one Response; see the module docstring for options.
    Returns UTF-8 XML bytes."""
    now = options.get("now") or datetime.datetime.now(datetime.timezone.utc)
    issuer = options.get("issuer", IDP_ENTITY_ID)
    o = {
        "issuer": issuer,
        "response_issuer": options.get("response_issuer", issuer),
        "audience": options.get("audience", SP_ENTITY_ID),
        "destination": options.get("destination", ACS_URL),
        "recipient": options.get("recipient", ACS_URL),
        "in_response_to": options.get("in_response_to"),
        "name_id": options.get("name_id", "alice@example.com"),
        "name_id_format": options.get("name_id_format", FMT_EMAIL),
        "sp_name_qualifier": options.get("sp_name_qualifier"),
        "attributes": options.get("attributes", _default_attributes()),
        "status": options.get("status", "Success"),
        "sub_status": options.get("sub_status"),
        "status_message": options.get("status_message"),
        "not_before": _secs(options.get("not_before", -60)),
        "not_on_or_after": _secs(options.get("not_on_or_after", 300)),
        "scd_not_on_or_after": _secs(options.get("scd_not_on_or_after", 300)),
        "scd_not_before": _secs(options.get("scd_not_before")),
        "issue_instant": _secs(options.get("issue_instant", 0)),
        "session_not_on_or_after": _secs(
            options.get("session_not_on_or_after", 8 * 3600)),
        "method": options.get("method", BEARER),
        "conditions": options.get("conditions", True),
        "one_time_use": options.get("one_time_use", False),
        "extra_condition": options.get("extra_condition", False),
        "authn_statement": options.get("authn_statement", True),
        "response_id": options.get("response_id",
                                   "_resp-" + secrets.token_hex(16)),
        "assertion_id": options.get("assertion_id",
                                    "_assert-" + secrets.token_hex(16)),
    }
    sign_response = options.get("sign_response", False)
    sign_assertion = options.get("sign_assertion", True)
    sig_opts = {
        "key": options.get("key", DEFAULT_KEY),
        "cert": options.get("cert", DEFAULT_CERT),
        "sig_alg": options.get("sig_alg", "rsa-sha256"),
        "digest_alg": options.get("digest_alg", "sha256"),
        "c14n": options.get("c14n", "exc"),
        "keyinfo_cert": options.get("keyinfo_cert", True),
    }

    resp = etree.Element(q(NS_SAMLP, "Response"),
                         nsmap={"samlp": NS_SAMLP, "saml": NS_SAML})
    resp.set("ID", o["response_id"])
    resp.set("Version", "2.0")
    resp.set("IssueInstant", ts(now + o["issue_instant"]))
    if o["destination"] is not None:
        resp.set("Destination", o["destination"])
    if o["in_response_to"]:
        resp.set("InResponseTo", o["in_response_to"])
    if o["response_issuer"] is not None:
        ri = etree.SubElement(resp, q(NS_SAML, "Issuer"))
        ri.set("Format", FMT_ENTITY)
        ri.text = o["response_issuer"]
    st = etree.SubElement(resp, q(NS_SAMLP, "Status"))
    sc = etree.SubElement(st, q(NS_SAMLP, "StatusCode"))
    sc.set("Value", _status_urn(o["status"]))
    if o["sub_status"]:
        sub = etree.SubElement(sc, q(NS_SAMLP, "StatusCode"))
        sub.set("Value", _status_urn(o["sub_status"]))
    if o["status_message"]:
        etree.SubElement(st, q(NS_SAMLP, "StatusMessage")).text = \
            o["status_message"]

    assertion = _build_assertion(o, now)
    if options.get("mutate_assertion"):
        options["mutate_assertion"](assertion)
    encrypt = options.get("encrypt")
    if encrypt:
        # Sign the Assertion in a document of its own, so its serialised
        # form declares every namespace it uses, then encrypt it.
        adoc = etree.ElementTree(assertion)
        if sign_assertion:
            sign(adoc.getroot(), **sig_opts)
        plain = etree.tostring(adoc.getroot())
        if options.get("mutate_plaintext"):
            plain = options["mutate_plaintext"](plain)
        resp.append(encrypt_assertion(
            plain, encrypt,
            options.get("key_transport", "rsa-oaep-mgf1p"),
            options.get("sp_cert", DEFAULT_SP_CERT)))
    else:
        resp.append(assertion)
        if sign_assertion:
            sign(assertion, **sig_opts)
    if sign_response:
        sign(resp, **sig_opts)
    mutate = options.get("mutate")
    if mutate:
        # Re-parse first: lxml's find() does not see nodes that xmlsec
        # created outside lxml's name dictionary.
        resp = etree.fromstring(etree.tostring(resp))
        mutate(resp)
    return etree.tostring(resp, xml_declaration=True, encoding="UTF-8")


def build_response_b64(**options):
    """build_response() as the base64 SAMLResponse value."""
    return to_b64(build_response(**options))


def _fixed(**options):
    """build_response() with IDs derived from `now`, so that regenerated
    fixtures differ only where the crypto is randomised (ECDSA, AES)."""
    stamp = options["now"].strftime("%Y%m%d%H%M%S")
    options.setdefault("response_id", "_resp-" + stamp)
    options.setdefault("assertion_id", "_assert-" + stamp)
    return build_response(**options)


# ---- hostile layouts ---------------------------------------------------------

def _parse(xml):
    return etree.fromstring(xml)


def _dump(root):
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _assertion(root):
    return root.find(q(NS_SAML, "Assertion"))


def _sig(elem):
    return elem.find(q(NS_DS, "Signature"))


def _evil(assertion, new_id=None):
    """A copy of an Assertion with the subject swapped to the attacker."""
    ev = copy.deepcopy(assertion)
    if new_id:
        ev.set("ID", new_id)
    s = ev.find(q(NS_DS, "Signature"))
    if s is not None:
        ev.remove(s)
    ev.find(".//" + q(NS_SAML, "NameID")).text = "mallory@evil.example"
    for av in ev.iter(q(NS_SAML, "AttributeValue")):
        if av.text == "alice@example.com":
            av.text = "mallory@evil.example"
    return ev


def xsw(n, now):
    """XML signature wrapping layouts XSW1..XSW8 (after the SAML Raider
    catalogue).  1-2 wrap a signed Response, 3-8 a signed Assertion."""
    if n in (1, 2):
        root = _parse(_fixed(now=now, sign_response=True,
                                     sign_assertion=False))
        orig = copy.deepcopy(root)
        orig.remove(_sig(orig))
        root.set("ID", "_evil-response")
        a = _assertion(root)
        root.replace(a, _evil(a, "_evil-assertion"))
        sig = _sig(root)
        if n == 1:
            # original Response, unsigned, inside the Signature (Object)
            obj = etree.SubElement(sig, q(NS_DS, "Object"))
            obj.append(orig)
        else:
            # original Response as a detached sibling before the Signature
            sig.addprevious(orig)
        return _dump(root)
    root = _parse(_fixed(now=now, sign_assertion=True))
    a = _assertion(root)
    sig = _sig(a)
    if n == 3:
        # evil Assertion (new ID) before the signed original
        a.addprevious(_evil(a, "_evil-assertion"))
    elif n == 4:
        # evil Assertion wrapping the signed original
        ev = _evil(a, "_evil-assertion")
        root.replace(a, ev)
        ev.append(a)
    elif n == 5:
        # evil Assertion (same ID) keeps the signature; unsigned original
        # copy appended at the end of the Response
        orig = copy.deepcopy(a)
        orig.remove(_sig(orig))
        ev = _evil(a)
        ev.find(q(NS_SAML, "Issuer")).addnext(copy.deepcopy(sig))
        root.replace(a, ev)
        root.append(orig)
    elif n == 6:
        # evil Assertion (same ID) keeps the signature, the original copy
        # sits inside that signature's Object
        orig = copy.deepcopy(a)
        orig.remove(_sig(orig))
        ev = _evil(a)
        s2 = copy.deepcopy(sig)
        obj = etree.SubElement(s2, q(NS_DS, "Object"))
        obj.append(orig)
        ev.find(q(NS_SAML, "Issuer")).addnext(s2)
        root.replace(a, ev)
    elif n == 7:
        # signed original moved into Extensions, unsigned evil Assertion
        ext = etree.Element(q(NS_SAMLP, "Extensions"))
        root.find(q(NS_SAML, "Issuer")).addnext(ext)
        ev = _evil(a)
        root.replace(a, ev)
        ext.append(a)
    elif n == 8:
        # evil Assertion carries the signature, whose Object holds the
        # original Assertion without its signature
        orig = copy.deepcopy(a)
        orig.remove(_sig(orig))
        ev = _evil(a)
        s2 = copy.deepcopy(sig)
        obj = etree.SubElement(s2, q(NS_DS, "Object"))
        obj.append(orig)
        ev.find(q(NS_SAML, "Issuer")).addnext(s2)
        root.replace(a, ev)
    return _dump(root)


def _with(now, mutate, **kw):
    kw.setdefault("now", now)
    kw["mutate"] = mutate
    return _fixed(**kw)


def _m_doctype(root):
    return None


def _prefix(xml, head):
    body = xml.split(b"?>", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + head + body


def _m_dup_id_wrapper(root):
    """The signed Assertion renamed and hidden in Extensions (same ID),
    an evil Assertion with that ID carries a copy of the signature."""
    a = _assertion(root)
    wrapper = copy.deepcopy(a)
    wrapper.tag = q(NS_SAMLP, "Wrapper")
    wrapper.remove(_sig(wrapper))
    ext = etree.Element(q(NS_SAMLP, "Extensions"))
    root.find(q(NS_SAML, "Issuer")).addnext(ext)
    ext.append(wrapper)
    ev = _evil(a)
    ev.find(q(NS_SAML, "Issuer")).addnext(copy.deepcopy(_sig(a)))
    root.replace(a, ev)


def _m_xml_id(root):
    a = _assertion(root)
    ext = etree.Element(q(NS_SAMLP, "Extensions"))
    root.find(q(NS_SAML, "Issuer")).addnext(ext)
    w = etree.SubElement(ext, q(NS_SAMLP, "Wrapper"))
    w.set("{http://www.w3.org/XML/1998/namespace}id", a.get("ID"))


def _m_ref_to_response(root):
    """The Response's signature moved onto an (evil) Assertion."""
    sig = _sig(root)
    a = _assertion(root)
    ev = _evil(a)
    root.remove(sig)
    ev.find(q(NS_SAML, "Issuer")).addnext(sig)
    root.replace(a, ev)


def _m_ref_empty_uri(root):
    ref = _sig(_assertion(root)).find(".//" + q(NS_DS, "Reference"))
    ref.set("URI", "")


def _m_second_signature(root):
    a = _assertion(root)
    s = _sig(a)
    s.addnext(copy.deepcopy(s))


def _m_signature_in_extensions(root):
    a = _assertion(root)
    ext = etree.Element(q(NS_SAMLP, "Extensions"))
    root.find(q(NS_SAML, "Issuer")).addnext(ext)
    ext.append(copy.deepcopy(_sig(a)))


def _m_signature_object(root):
    s = _sig(_assertion(root))
    obj = etree.SubElement(s, q(NS_DS, "Object"))
    etree.SubElement(obj, q(NS_SAML, "Audience")).text = "x"


def _m_retrieval_method(root):
    ki = _sig(_assertion(root)).find(q(NS_DS, "KeyInfo"))
    rm = etree.SubElement(ki, q(NS_DS, "RetrievalMethod"))
    rm.set("URI", "http://127.0.0.1:9/key.der")
    rm.set("Type", "http://www.w3.org/2000/09/xmldsig#rawX509Certificate")


def _m_xpath_transform(root):
    ref = _sig(_assertion(root)).find(".//" + q(NS_DS, "Reference"))
    tr = ref.find(q(NS_DS, "Transforms"))
    t = etree.SubElement(tr, q(NS_DS, "Transform"))
    t.set("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(t, q(NS_DS, "XPath")).text = \
        "not(ancestor-or-self::ds:Signature)"


def _m_tamper_nameid(root):
    _assertion(root).find(".//" + q(NS_SAML, "NameID")).text = \
        "mallory@evil.example"


def _m_two_assertions(root):
    a = _assertion(root)
    root.append(copy.deepcopy(a))


def _m_nested_in_advice(root):
    a = _assertion(root)
    adv = etree.Element(q(NS_SAML, "Advice"))
    a.find(q(NS_SAML, "Conditions")).addnext(adv)
    inner = _evil(a, "_advice-assertion")
    adv.append(inner)


def _m_remove_assertion(root):
    root.remove(_assertion(root))


def _m_comment_split(root):
    a = _assertion(root)
    nid = a.find(".//" + q(NS_SAML, "NameID"))
    nid.text = "user@evil.com"
    c = etree.Comment("")
    c.tail = ".good.com"
    nid.append(c)
    for av in a.iter(q(NS_SAML, "AttributeValue")):
        if av.text == "user@evil.com.good.com":
            av.text = "user@evil.com"
            c2 = etree.Comment(" split ")
            c2.tail = ".good.com"
            av.append(c2)


def _m_nameid_child(assertion):
    nid = assertion.find(".//" + q(NS_SAML, "NameID"))
    etree.SubElement(nid, q(NS_SAML, "Issuer")).text = "x"


def _m_wrong_root(root):
    root.tag = q(NS_SAMLP, "LogoutResponse")


def _m_signature_by_attacker_plus(root):
    return None


def _m_assertion_in_extensions(root):
    """The only (signed) Assertion hidden in Extensions."""
    a = _assertion(root)
    ext = etree.Element(q(NS_SAMLP, "Extensions"))
    root.find(q(NS_SAML, "Issuer")).addnext(ext)
    ext.append(a)


def _m_hmac_signature_method(root):
    """HMAC with the IdP's public certificate as the shared secret: the
    classic key-confusion forgery."""
    sm = _sig(_assertion(root)).find(".//" + q(NS_DS, "SignatureMethod"))
    sm.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1")


def _m_no_issuer(assertion):
    assertion.remove(assertion.find(q(NS_SAML, "Issuer")))


def _m_empty_nameid(assertion):
    assertion.find(".//" + q(NS_SAML, "NameID")).text = "  "


def _m_enc_sibling_key(root):
    """Move the EncryptedKey out of EncryptedData/KeyInfo to sit beside
    EncryptedData, pointed at by a RetrievalMethod (a layout some IdPs
    use); then sign the Response over it."""
    ea = root.find(q(NS_SAML, "EncryptedAssertion"))
    ed = ea.find(q(NS_XENC, "EncryptedData"))
    ki = ed.find(q(NS_DS, "KeyInfo"))
    ek = ki.find(q(NS_XENC, "EncryptedKey"))
    ki.remove(ek)
    ek.set("Id", "_ek-1")
    ea.append(ek)
    rm = etree.SubElement(ki, q(NS_DS, "RetrievalMethod"))
    rm.set("URI", "#_ek-1")
    rm.set("Type", "http://www.w3.org/2001/04/xmlenc#EncryptedKey")
    sign(root)


def _m_enc_tamper_ciphertext(root):
    ed = root.find(q(NS_SAML, "EncryptedAssertion")).find(
        q(NS_XENC, "EncryptedData"))
    cv = ed.find(q(NS_XENC, "CipherData")).find(q(NS_XENC, "CipherValue"))
    raw = bytearray(base64.b64decode(cv.text))
    raw[len(raw) // 2] ^= 0x01
    cv.text = base64.b64encode(bytes(raw)).decode("ascii")


def _m_xpointer_id(root):
    """An Assertion ID that would rewrite xmlsec's xpointer(id('...'))."""
    a = _assertion(root)
    evil = "x') | id('" + a.get("ID")
    a.set("ID", evil)
    _sig(a).find(".//" + q(NS_DS, "Reference")).set("URI", "#" + evil)


def _m_enc_cipher_reference(root):
    """Ciphertext to be fetched from a URI instead of carried inline."""
    ed = root.find(q(NS_SAML, "EncryptedAssertion")).find(
        q(NS_XENC, "EncryptedData"))
    cd = ed.find(q(NS_XENC, "CipherData"))
    cd.remove(cd.find(q(NS_XENC, "CipherValue")))
    etree.SubElement(cd, q(NS_XENC, "CipherReference")).set(
        "URI", "http://127.0.0.1:9/ciphertext")


def _plaintext_doctype(plain):
    return b'<!DOCTYPE x [<!ENTITY e "boom">]>' + plain


def _plaintext_two_assertions(plain):
    a = etree.fromstring(plain)
    wrap = etree.Element(q(NS_SAML, "Advice"))
    ev = _evil(a, "_inner-evil")
    wrap.append(ev)
    a.find(q(NS_SAML, "Conditions")).addnext(wrap)
    return etree.tostring(a)


def fixtures(now=FIXED_NOW):
    """name -> XML bytes for the unit-test fixture set at `now`."""
    rsa_next = dict(key=key_path("resp-idp-rsa-next.key"),
                    cert=key_path("resp-idp-rsa-next.crt"))
    ec = dict(key=key_path("resp-idp-ec.key"),
              cert=key_path("resp-idp-ec.crt"))
    attacker = dict(key=key_path("resp-attacker.key"),
                    cert=key_path("resp-attacker.crt"))
    irt = dict(in_response_to=REQUEST_ID)
    f = {}
    b = _fixed
    # ---- valid ----
    f["ok_assertion_signed"] = b(now=now)
    f["ok_response_signed"] = b(now=now, sign_response=True,
                                sign_assertion=False)
    f["ok_both_signed"] = b(now=now, sign_response=True, **irt)
    f["ok_sp_initiated"] = b(now=now, **irt)
    f["ok_rsa_sha384"] = b(now=now, sig_alg="rsa-sha384",
                           digest_alg="sha384")
    f["ok_rsa_sha512"] = b(now=now, sig_alg="rsa-sha512",
                           digest_alg="sha512", sign_response=True)
    f["ok_ecdsa_sha256"] = b(now=now, sig_alg="ecdsa-sha256", **ec)
    f["ok_next_cert"] = b(now=now, **rsa_next)
    f["ok_no_keyinfo"] = b(now=now, keyinfo_cert=False)
    f["ok_one_time_use"] = b(now=now, one_time_use=True)
    f["ok_no_response_issuer"] = b(now=now, response_issuer=None)
    f["ok_comment_split"] = _with(
        now, _m_comment_split, name_id="user@evil.com.good.com",
        attributes=[("mail", ["user@evil.com.good.com"])])
    f["ok_enc_aes128_gcm"] = b(now=now, encrypt="aes128-gcm")
    f["ok_enc_aes256_gcm"] = b(now=now, encrypt="aes256-gcm", **irt)
    f["ok_enc_aes128_cbc"] = b(now=now, encrypt="aes128-cbc")
    f["ok_enc_aes256_cbc_response_signed"] = b(
        now=now, encrypt="aes256-cbc", sign_response=True,
        sign_assertion=False)
    # ---- parsing, structure ----
    base = b(now=now)
    f["bad_doctype"] = _prefix(
        base, b'<!DOCTYPE samlp:Response [<!ENTITY e "x">]>\n')
    f["bad_xxe"] = _prefix(
        b(now=now, name_id="&xxe;@example.com"
          ).replace(b"&amp;xxe;", b"&xxe;"),
        b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n')
    f["bad_not_xml"] = b"<samlp:Response xmlns:samlp='" + \
        NS_SAMLP.encode() + b"'><unclosed></samlp:Response>"
    f["bad_wrong_root"] = _with(now, _m_wrong_root)
    f["bad_xml_id"] = _with(now, _m_xml_id)
    f["bad_two_assertions"] = _with(now, _m_two_assertions)
    f["bad_assertion_in_advice"] = _with(now, _m_nested_in_advice)
    f["bad_no_assertion"] = _with(now, _m_remove_assertion,
                                  sign_assertion=False, sign_response=True)
    f["bad_enc_two_assertions"] = b(
        now=now, encrypt="aes128-gcm", sign_response=True,
        sign_assertion=False, mutate_plaintext=_plaintext_two_assertions)
    # ---- signature wrapping ----
    for n in range(1, 9):
        f["xsw%d" % n] = xsw(n, now)
    f["xsw_dup_id_wrapper"] = _with(now, _m_dup_id_wrapper)
    f["xsw_ref_to_response"] = _with(now, _m_ref_to_response,
                                     sign_response=True,
                                     sign_assertion=False)
    # ---- signatures ----
    f["sig_unsigned"] = b(now=now, sign_assertion=False)
    f["sig_enc_unsigned"] = b(now=now, sign_assertion=False,
                              encrypt="aes128-gcm")
    f["sig_tampered_nameid"] = _with(now, _m_tamper_nameid)
    f["sig_tampered_response"] = _with(now, _m_tamper_nameid,
                                       sign_response=True,
                                       sign_assertion=False)
    f["sig_cert_faking"] = b(now=now, **attacker)
    f["sig_response_untrusted_assertion_ok"] = _with(
        now, lambda r: _resign_response(r, attacker))
    f["sig_retrieval_method"] = _with(now, _m_retrieval_method)
    f["sig_rsa_sha1"] = b(now=now, sig_alg="rsa-sha1", digest_alg="sha1")
    f["sig_digest_sha1"] = b(now=now, digest_alg="sha1")
    f["sig_c14n_inclusive"] = b(now=now, c14n="inclusive")
    f["sig_c14n_with_comments"] = b(now=now, c14n="exc-comments")
    f["sig_xpath_transform"] = _with(now, _m_xpath_transform)
    f["sig_two_references"] = _with(
        now, lambda r: _resign_assertion(r, extra_reference=True))
    f["sig_ref_empty_uri"] = _with(now, _m_ref_empty_uri)
    f["sig_two_signatures"] = _with(now, _m_second_signature)
    f["sig_in_extensions"] = _with(now, _m_signature_in_extensions)
    f["sig_object"] = _with(now, _m_signature_object)
    # ---- protocol checks ----
    f["st_responder"] = b(now=now, status="Responder",
                          sub_status="AuthnFailed",
                          status_message="wrong password",
                          sign_response=True, sign_assertion=False,
                          mutate=_m_remove_assertion)
    f["iss_wrong_assertion_issuer"] = b(now=now,
                                        issuer="https://evil.example/idp",
                                        response_issuer=IDP_ENTITY_ID)
    f["iss_wrong_response_issuer"] = b(
        now=now, response_issuer="https://evil.example/idp")
    f["dst_wrong_destination"] = b(now=now,
                                   destination="https://evil.example/acs")
    f["dst_signed_without_destination"] = b(now=now, destination=None,
                                            sign_response=True)
    f["sc_wrong_recipient"] = b(now=now, recipient="https://evil.example/acs")
    f["sc_no_bearer"] = b(now=now, method="urn:oasis:names:tc:SAML:2.0:"
                          "cm:holder-of-key")
    f["sc_no_not_on_or_after"] = b(now=now, scd_not_on_or_after=None)
    f["sc_expired"] = b(now=now, scd_not_on_or_after=-600)
    f["sc_not_yet"] = b(now=now, scd_not_before=600)
    f["cond_wrong_audience"] = b(now=now,
                                 audience="https://other.example/sp")
    f["cond_no_audience"] = b(now=now, audience=None)
    f["cond_missing"] = b(now=now, conditions=False)
    f["cond_unknown"] = b(now=now, extra_condition=True)
    f["irt_wrong"] = b(now=now, in_response_to="_someone-elses-request")
    f["time_issued_in_future"] = b(now=now, issue_instant=3600,
                                   not_before=-60)
    f["subj_no_name_id"] = b(now=now, name_id=None)
    f["subj_name_id_child"] = b(now=now, mutate_assertion=_m_nameid_child)
    f["authn_missing"] = b(now=now, authn_statement=False)
    f["enc_wrong_key"] = b(now=now, encrypt="aes128-gcm",
                           sp_cert=os.path.join(SP_KEYS, "sp-next.crt"))
    f["enc_rsa_1_5"] = b(now=now, encrypt="aes128-cbc",
                         key_transport="rsa-1_5")
    f["cond_not_yet_valid"] = b(now=now, not_before=600)
    f["cond_expired"] = b(now=now, not_on_or_after=-600)
    f["bad_id_xpointer"] = _with(now, _m_xpointer_id)
    f["enc_cipher_reference"] = b(now=now, encrypt="aes128-gcm",
                                  mutate=_m_enc_cipher_reference)
    f["bad_assertion_in_extensions"] = _with(now, _m_assertion_in_extensions)
    f["sig_hmac"] = _with(now, _m_hmac_signature_method)
    f["iss_assertion_without_issuer"] = b(now=now,
                                          mutate_assertion=_m_no_issuer)
    f["subj_empty_name_id"] = b(now=now, mutate_assertion=_m_empty_nameid)
    f["authn_session_expired"] = b(now=now, session_not_on_or_after=-3600)
    f["ok_enc_sibling_key"] = b(now=now, encrypt="aes256-gcm",
                                sign_assertion=False,
                                mutate=_m_enc_sibling_key)
    f["enc_tampered_ciphertext"] = b(now=now, encrypt="aes128-gcm",
                                     mutate=_m_enc_tamper_ciphertext)
    f["enc_doctype_inside"] = b(now=now, encrypt="aes128-cbc",
                                sign_response=True, sign_assertion=False,
                                mutate_plaintext=_plaintext_doctype)
    return f


def _resign_response(root, keys):
    """Sign the Response with `keys` (on top of a validly signed
    Assertion)."""
    sign(root, **keys)


def _resign_assertion(root, extra_reference):
    a = _assertion(root)
    a.remove(_sig(a))
    sign(a, extra_reference=extra_reference)


# ---- pysaml2 interop --------------------------------------------------------

def pysaml2_fixtures(now=FIXED_NOW):
    """Responses produced by pysaml2's IdP (saml2.server.Server), an
    implementation we did not write, at the fixed time."""
    import tempfile
    import saml2
    import saml2.time_util
    from saml2 import BINDING_HTTP_POST
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.server import Server
    import time as _time

    # pysaml2 takes "now" from time.time()/time.gmtime() and
    # datetime.utcnow(): freeze them for the duration of the build.
    frozen = now.timestamp()
    real_time, real_gmtime = _time.time, _time.gmtime
    real_dt = saml2.time_util.datetime

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcfromtimestamp(frozen)

        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(frozen, tz)

    _time.time = lambda: frozen
    _time.gmtime = lambda t=None: real_gmtime(frozen if t is None else t)
    saml2.time_util.datetime = FrozenDatetime
    out = {}
    try:
        sp_cert_pem = open(DEFAULT_SP_CERT).read()
        sp_cert_b64 = "".join(sp_cert_pem.strip().splitlines()[1:-1])
        sp_md = f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP_ENTITY_ID}">
 <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
   <ds:X509Certificate>{sp_cert_b64}</ds:X509Certificate>
  </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:AssertionConsumerService index="0"
      Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
      Location="{ACS_URL}"/>
 </md:SPSSODescriptor>
</md:EntityDescriptor>"""
        with tempfile.TemporaryDirectory() as tmp:
            md_path = os.path.join(tmp, "sp.xml")
            with open(md_path, "w") as fh:
                fh.write(sp_md)
            conf = IdPConfig()
            conf.load({
                "entityid": IDP_ENTITY_ID,
                "service": {"idp": {
                    "endpoints": {"single_sign_on_service": [
                        ("https://idp.example.test/sso",
                         saml2.BINDING_HTTP_REDIRECT)]},
                    "policy": {"default": {
                        "lifetime": {"minutes": 5},
                        "attribute_restrictions": None,
                        "name_form": saml2.saml.NAME_FORMAT_URI}},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                }},
                "key_file": DEFAULT_KEY,
                "cert_file": DEFAULT_CERT,
                "encryption_keypairs": [{"key_file": DEFAULT_KEY,
                                         "cert_file": DEFAULT_CERT}],
                "metadata": {"local": [md_path]},
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "signing_algorithm":
                    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "digest_algorithm":
                    "http://www.w3.org/2001/04/xmlenc#sha256",
            })
            idp = Server(config=conf)
            identity = {"mail": ["alice@example.com"],
                        "givenName": ["Alice"],
                        "memberOf": ["staff", "admins"]}
            name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS,
                             text="alice@example.com")
            authn = {"class_ref": PPT, "authn_auth": IDP_ENTITY_ID}
            variants = {
                "pysaml2_response_signed": dict(sign_response=True,
                                                sign_assertion=False),
                "pysaml2_assertion_signed": dict(sign_response=False,
                                                 sign_assertion=True),
                "pysaml2_both_signed": dict(sign_response=True,
                                            sign_assertion=True),
                "pysaml2_encrypted": dict(sign_response=True,
                                          sign_assertion=True,
                                          encrypt_assertion=True,
                                          encrypted_advice_attributes=False,
                                          encrypt_cert_assertion=sp_cert_pem),
            }
            sha256 = dict(
                sign_alg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                digest_alg="http://www.w3.org/2001/04/xmlenc#sha256")
            for kw in variants.values():
                kw.update(sha256)
            # pysaml2's own defaults (RSA-SHA1): refused unless allowed
            variants["pysaml2_rsa_sha1"] = dict(sign_response=True,
                                                sign_assertion=True)
            # pysaml2 encrypts with 3DES unless told otherwise; the
            # AES-256-CBC variant is what we accept, 3DES must be refused.
            import functools
            import saml2.entity
            from saml2.sigver import pre_encryption_part
            variants["pysaml2_encrypted_3des"] = dict(variants[
                "pysaml2_encrypted"])
            from saml2.sigver import CryptoBackendXmlSec1
            real_encrypt = CryptoBackendXmlSec1.encrypt_assertion

            def aes_encrypt(self, statement, enc_key, template,
                            key_type="des-192", node_xpath=None):
                return real_encrypt(self, statement, enc_key, template,
                                    key_type="aes-256", node_xpath=node_xpath)
            for name, kw in variants.items():
                des = name.endswith("3des")
                saml2.entity.pre_encryption_part = pre_encryption_part \
                    if des else functools.partial(
                        pre_encryption_part,
                        msg_enc="http://www.w3.org/2001/04/xmlenc#aes256-cbc")
                CryptoBackendXmlSec1.encrypt_assertion = real_encrypt \
                    if des else aes_encrypt
                resp = idp.create_authn_response(
                    identity, in_response_to=REQUEST_ID,
                    destination=ACS_URL, sp_entity_id=SP_ENTITY_ID,
                    name_id=name_id, authn=authn, **kw)
                out[name] = str(resp).encode("utf-8") \
                    if not isinstance(resp, bytes) else resp
    finally:
        import saml2.entity
        from saml2.sigver import pre_encryption_part as _pep
        saml2.entity.pre_encryption_part = _pep
        if "real_encrypt" in locals():
            CryptoBackendXmlSec1.encrypt_assertion = real_encrypt
        _time.time, _time.gmtime = real_time, real_gmtime
        saml2.time_util.datetime = real_dt
    return out


def write_fixtures(out_dir, with_pysaml2=True, now=FIXED_NOW):
    os.makedirs(out_dir, exist_ok=True)
    f = fixtures(now)
    if with_pysaml2:
        f.update(pysaml2_fixtures(now))
    for name, xml in sorted(f.items()):
        with open(os.path.join(out_dir, name + ".xml"), "wb") as fh:
            fh.write(xml)
        with open(os.path.join(out_dir, name + ".b64"), "w") as fh:
            fh.write(to_b64(xml) + "\n")
    with open(os.path.join(out_dir, "INDEX"), "w") as fh:
        fh.write("# generated by: /usr/bin/python3 t/lib/samlgen.py "
                 "--out t/fixtures/responses\n")
        fh.write("# FIXED_NOW %s\n" % ts(now))
        for name in sorted(f):
            fh.write(name + "\n")
    return sorted(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the fixture set into this dir")
    ap.add_argument("--no-pysaml2", action="store_true",
                    help="skip the pysaml2 interop fixtures")
    ap.add_argument("--one", action="store_true",
                    help="print one valid response (base64) for now")
    args = ap.parse_args(argv)
    if args.out:
        names = write_fixtures(args.out, with_pysaml2=not args.no_pysaml2)
        print("wrote %d fixtures to %s" % (len(names), args.out))
        return 0
    if args.one:
        print(build_response_b64())
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
