"""The HTTP-POST binding through a real httpd, with pysaml2 as an IdP that
publishes its SingleSignOnService and SingleLogoutService over HTTP-POST
only: our AuthnRequest in an auto-submitting form under a nonce CSP, signed
in the XML; the IdP's POSTed LogoutRequest ending sessions and answered by a
POSTed LogoutResponse; our POSTed LogoutRequest and the IdP's POSTed
LogoutResponse accepted.  And every forged POST logout message refused:
unsigned, signed by another key, wrapped, for another Destination,
replayed, with a KeyInfo RetrievalMethod (never followed)."""
import base64
import datetime
import html.parser
import re
import socket
import subprocess
import threading
import uuid

import pytest
from saml2 import BINDING_HTTP_POST
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS
from saml2.sigver import pre_signature_part

from portal import Portal, SPKEYS
from pysaml_idp import PysamlIdP

NS_LR = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest"
NS_LRESP = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


@pytest.fixture
def portal(make_httpd, tmp_path):
    return Portal(make_httpd, tmp_path,
                  idp_kwargs={"post_only": True}).start()


# ---- helpers ---------------------------------------------------------------

class _Form(html.parser.HTMLParser):
    """The auto-submitting page: its form, its fields, its scripts."""

    def __init__(self):
        super().__init__()
        self.forms, self.fields, self.scripts = [], {}, []
        self.noscript_button = False
        self._in_script = self._in_noscript = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(a)
        elif tag == "input":
            assert a["name"] not in self.fields
            self.fields[a["name"]] = a.get("value")
        elif tag == "script":
            self.scripts.append({"nonce": a.get("nonce"), "src": a.get("src"),
                                 "text": ""})
            self._in_script = True
        elif tag == "noscript":
            self._in_noscript = True
        elif tag == "button" and self._in_noscript:
            self.noscript_button = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        elif tag == "noscript":
            self._in_noscript = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1]["text"] += data


def post_page(r, action, sp_url=None):
    """Check the auto-submitting page r and return its fields."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert "no-store" in r.headers["Cache-Control"]
    f = _Form()
    f.feed(r.text)
    assert len(f.forms) == 1
    assert f.forms[0]["method"].lower() == "post"
    assert f.forms[0]["action"] == action
    assert f.noscript_button
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9+/=]{20,})'",
                         directives["script-src"]).group(1)
    # the one script is inline and carries the nonce of this response
    assert len(f.scripts) == 1
    assert f.scripts[0]["nonce"] == nonce and f.scripts[0]["src"] is None
    assert "submit()" in f.scripts[0]["text"]
    # form-action: the IdP endpoint's origin, and ours (where the IdP may
    # redirect the browser back after the POST)
    origin = re.match(r"(https?://[^/?#]+)", action).group(1).lower()
    sources = directives["form-action"].split()
    assert sources[0] == origin
    if sp_url is not None:
        sp = re.match(r"(https?://[^/?#]+)", sp_url).group(1).lower()
        assert sources == [origin] + ([sp] if sp != origin else [])
    return f.fields, nonce


def session_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1] or None
    return None


def alive(portal, sid):
    return portal.get("/sso/session",
                      cookies={"btsso_session": sid}).status_code == 200


def login(portal, email="ann@example.com"):
    """A login over a POST AuthnRequest; returns (session, SessionIndex)."""
    r = portal.get("/sso/login/" + portal.account)
    fields, _ = post_page(r, portal.idp.sso_url, portal.url)
    req = portal.idp.server.parse_authn_request(fields["SAMLRequest"],
                                                BINDING_HTTP_POST)
    req.relay_state = fields.get("RelayState")
    b64 = portal.idp.response(req, email=email)
    si = base64.b64decode(b64).decode().split('SessionIndex="', 1)[1] \
        .split('"', 1)[0]
    a = portal.acs(b64, req.relay_state)
    assert a.status_code == 303, a.text
    return session_of(a), si


def now_iso(delta=0):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def logout_request_xml(portal, name_id, session_indexes=(), req_id=None,
                       destination=None, extra=""):
    sis = "".join("<samlp:SessionIndex>%s</samlp:SessionIndex>" % s
                  for s in session_indexes)
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:'
        'protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        'ID="%s" Version="2.0" IssueInstant="%s" Destination="%s" '
        'NotOnOrAfter="%s"><saml:Issuer>%s</saml:Issuer>%s'
        '<saml:NameID Format="%s">%s</saml:NameID>%s'
        '</samlp:LogoutRequest>' % (
            req_id or "_" + uuid.uuid4().hex, now_iso(),
            destination or portal.url + "/sso/slo", now_iso(300),
            portal.idp.entity_id, extra, NAMEID_FORMAT_EMAILADDRESS,
            name_id, sis))


def sign(idp, xml, node=NS_LR):
    """pysaml2 (through the xmlsec1 binary) signs xml's root element with
    idp's key: an enveloped signature right after the Issuer."""
    ident = re.search(r' ID="([^"]+)"', xml).group(1)
    tmpl = pre_signature_part(ident, sign_alg=RSA_SHA256,
                              digest_alg=SHA256).to_string().decode()
    xml = xml.replace("</saml:Issuer>", "</saml:Issuer>" + tmpl, 1)
    return idp.server.sec.sign_statement(xml, node, node_id=ident)


def b64(xml):
    return base64.b64encode(xml.encode()).decode()


def post_slo(portal, xml, param="SAMLRequest", relay=None, cookies=None):
    data = {param: b64(xml)}
    if relay is not None:
        data["RelayState"] = relay
    return portal.post("/sso/slo", data=data, cookies=cookies or {})


def attacker(portal):
    """Another key under the IdP's name."""
    return PysamlIdP(portal.tmp + "/attacker",
                     open(portal.idp.dir + "/sp-metadata.xml").read(),
                     entity_id=portal.idp.entity_id, key="google.key",
                     cert="google.crt", post_only=True)


def xmlsec_verify(tmp_path, xml, node, cert):
    f = tmp_path / "msg.xml"
    f.write_text(xml)
    return subprocess.run(
        ["xmlsec1", "--verify", "--enabled-reference-uris", "same-doc",
         "--pubkey-cert-pem", cert, "--id-attr:ID", node, str(f)],
        capture_output=True, text=True)


# ---- AuthnRequest over POST ------------------------------------------------

def test_login_over_post_authnrequest(portal, tmp_path):
    r = portal.get("/sso/login/%s?return=/app/x" % portal.account)
    fields, nonce = post_page(r, portal.idp.sso_url, portal.url)
    # a fresh nonce per response
    _, nonce2 = post_page(portal.get("/sso/login/" + portal.account),
                          portal.idp.sso_url)
    assert nonce != nonce2
    assert set(fields) == {"SAMLRequest", "RelayState"}
    xml = base64.b64decode(fields["SAMLRequest"]).decode()
    assert xml.startswith("<samlp:AuthnRequest")
    assert 'Destination="%s"' % portal.idp.sso_url in xml
    # signed in the XML, and the signature verifies with the SP certificate
    # (xmlsec1) -- and with pysaml2, which wants AuthnRequests signed
    v = xmlsec_verify(tmp_path, xml,
                      "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
                      SPKEYS + "/sp-current.crt")
    assert v.returncode == 0, v.stderr
    assert "exc-c14n" in xml and "rsa-sha256" in xml
    v = xmlsec_verify(tmp_path, xml,
                      "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
                      SPKEYS + "/sp-next.crt")
    assert v.returncode != 0
    req = portal.idp.server.parse_authn_request(fields["SAMLRequest"],
                                                BINDING_HTTP_POST)
    assert req.message.assertion_consumer_service_url == \
        portal.url + "/sso/acs"
    # the pending sign-in cookie is made for a cross-site POST back
    assert portal.pending
    assert any("SameSite=None" in h and "Secure" in h
               for h in r.raw.headers.getlist("Set-Cookie")
               if "_pending_" in h)
    a = portal.acs(portal.idp.response(req), fields["RelayState"])
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == portal.url + "/app/x"
    sid = session_of(a)
    assert portal.get("/app/", cookies={"btsso_session": sid}) \
        .status_code == 200


def test_protected_page_sends_post_form(portal):
    """AuthType BTSSO without a session: the same form, not a 302."""
    r = portal.get("/app/")
    fields, _ = post_page(r, portal.idp.sso_url, portal.url)
    assert "SAMLRequest" in fields


# ---- IdP-initiated logout over POST ------------------------------------

def test_idp_post_logout_request_ends_session_and_answers(portal, tmp_path):
    ann, si = login(portal)
    bob, _ = login(portal, "bob@example.com")
    xml = sign(portal.idp, logout_request_xml(portal, "ann@example.com",
                                              [si]))
    # RelayState is echoed as the IdP sent it, escaped in our page (one
    # script only: post_page checks it)
    relay = 'st"><script>alert(1)</script>&amp;'
    r = post_slo(portal, xml, relay=relay, cookies={"btsso_session": ann})
    fields, _ = post_page(r, portal.idp.slo_url, portal.url)
    assert "<script>alert" not in r.text
    assert not alive(portal, ann)
    assert alive(portal, bob)
    assert fields["RelayState"] == relay
    resp_xml = base64.b64decode(fields["SAMLResponse"]).decode()
    in_resp = re.search(r' ID="([^"]+)"', xml).group(1)
    assert 'InResponseTo="%s"' % in_resp in resp_xml
    # pysaml2 reads and verifies our POSTed, XML-signed LogoutResponse
    resp = portal.idp.server.parse_logout_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST)
    assert resp.response.status.status_code.value == SUCCESS
    assert resp.response.in_response_to == in_resp
    v = xmlsec_verify(tmp_path, resp_xml, NS_LRESP,
                      SPKEYS + "/sp-current.crt")
    assert v.returncode == 0, v.stderr


# ---- SP-initiated logout over POST ----------------------------------------

def test_sp_logout_over_post(portal):
    ann, si = login(portal)
    r = portal.get("/sso/logout?return=/app/bye", cookies={"btsso_session":
                                                           ann})
    fields, _ = post_page(r, portal.idp.slo_url, portal.url)
    assert not alive(portal, ann)
    req = portal.idp.server.parse_logout_request(fields["SAMLRequest"],
                                                 BINDING_HTTP_POST)
    assert req.message.name_id.text == "ann@example.com"
    assert [s.text for s in req.message.session_index] == [si]
    assert "<ds:Signature" in base64.b64decode(fields["SAMLRequest"]).decode()
    # pysaml2 answers over POST, signed in the XML
    resp = portal.idp.server.create_logout_response(
        req.message, [BINDING_HTTP_POST], sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256)
    r = post_slo(portal, str(resp), "SAMLResponse", fields["RelayState"])
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == portal.url + "/app/bye"
    # once only
    portal.httpd.expect_log("BTSSO0530")
    r = post_slo(portal, str(resp), "SAMLResponse", fields["RelayState"])
    assert r.status_code == 200 and "signed out" in r.text


@pytest.mark.parametrize("case", ["unsigned", "other_key", "destination",
                                  "in_response_to"])
def test_bad_post_logout_response_not_confirmed(portal, case):
    portal.httpd.expect_log("BTSSO0531")
    ann, _ = login(portal)
    r = portal.get("/sso/logout", cookies={"btsso_session": ann})
    fields, _ = post_page(r, portal.idp.slo_url, portal.url)
    req = portal.idp.server.parse_logout_request(fields["SAMLRequest"],
                                                 BINDING_HTTP_POST)
    xml = (
        '<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:'
        'protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        'ID="_%s" Version="2.0" IssueInstant="%s" Destination="%s" '
        'InResponseTo="%s"><saml:Issuer>%s</saml:Issuer><samlp:Status>'
        '<samlp:StatusCode Value="%s"/></samlp:Status>'
        '</samlp:LogoutResponse>' % (
            uuid.uuid4().hex, now_iso(),
            "https://elsewhere.example/slo" if case == "destination"
            else portal.url + "/sso/slo",
            "_not_ours" if case == "in_response_to" else req.message.id,
            portal.idp.entity_id, SUCCESS))
    if case != "unsigned":
        xml = sign(attacker(portal) if case == "other_key" else portal.idp,
                   xml, NS_LRESP)
    r = post_slo(portal, xml, "SAMLResponse", fields["RelayState"])
    assert r.status_code == 200, r.text
    assert "did not confirm" in r.text
    code = {"unsigned": "not_signed", "other_key": "sig_invalid",
            "destination": "destination_mismatch",
            "in_response_to": "in_response_to_mismatch"}[case]
    assert ": %s: " % code in portal.httpd.log_text()


# ---- attacks on the IdP-sent LogoutRequest --------------------------------

def refused(portal, r, sid, code):
    assert r.status_code == 403, (r.status_code, r.text)
    assert ": %s: " % code in portal.httpd.log_text(), \
        portal.httpd.log_text()[-2000:]
    assert alive(portal, sid)


def test_unsigned_post_logout_request_refused(portal):
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    r = post_slo(portal, logout_request_xml(portal, "ann@example.com"))
    refused(portal, r, ann, "not_signed")


def test_post_logout_request_other_key_refused(portal):
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    r = post_slo(portal, sign(attacker(portal), logout_request_xml(
        portal, "ann@example.com")))
    refused(portal, r, ann, "sig_invalid")


@pytest.mark.parametrize("case", ["same_id", "signature_moved",
                                  "second_signed_element"])
def test_post_logout_request_wrapped_refused(portal, case):
    """A genuine signed LogoutRequest (for nobody in particular) wrapped
    inside a forged one that names the victim (XML signature wrapping)."""
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    genuine = sign(portal.idp, logout_request_xml(
        portal, "nobody@example.com", req_id="_genuine"))
    genuine = re.sub(r"^<\?xml[^>]*\?>\s*", "", genuine)
    sig = re.search(r"<(\w+:)?Signature\b.*?</\1Signature>", genuine,
                    re.S).group(0)
    unsigned = genuine.replace(sig, "")
    if case == "same_id":
        # the forged root and the genuine element inside share the ID
        forged = logout_request_xml(
            portal, "ann@example.com", req_id="_genuine",
            extra="<samlp:Extensions>%s</samlp:Extensions>" % genuine)
        code = "duplicate_id"
    elif case == "signature_moved":
        # the forged root carries the genuine signature, which references
        # the genuine element (as signed) hidden inside
        forged = logout_request_xml(
            portal, "ann@example.com", req_id="_forged",
            extra=sig + "<samlp:Extensions>%s</samlp:Extensions>" % unsigned)
        code = "sig_reference"
    else:
        # the forged root is unsigned; the genuine signed element inside
        # is a second signed element, whose signature verifies
        forged = logout_request_xml(
            portal, "ann@example.com", req_id="_forged",
            extra="<samlp:Extensions>%s</samlp:Extensions>" % genuine)
        code = "sig_misplaced"
    refused(portal, post_slo(portal, forged), ann, code)


def test_post_logout_request_wrong_destination_refused(portal):
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    xml = sign(portal.idp, logout_request_xml(
        portal, "ann@example.com",
        destination="https://other-sp.example/sso/slo"))
    refused(portal, post_slo(portal, xml), ann, "destination_mismatch")


def test_post_logout_request_replay_refused(portal):
    """A LogoutRequest without SessionIndex ends every session of its
    NameID: replayed later it must not end the next login."""
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    xml = sign(portal.idp, logout_request_xml(portal, "ann@example.com"))
    r = post_slo(portal, xml)
    assert r.status_code == 200
    assert not alive(portal, ann)
    ann2, _ = login(portal)
    refused(portal, post_slo(portal, xml), ann2, "replay")


def test_post_logout_request_keyinfo_retrieval_refused(portal):
    """A RetrievalMethod in KeyInfo (outside SignedInfo, so the signature
    stays valid) is refused and never fetched."""
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    hits = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                hits.append(1)
                c.close()
            except OSError:
                pass
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d/key" % srv.getsockname()[1]
        xml = sign(portal.idp, logout_request_xml(portal, "ann@example.com"))
        xml = re.sub(r"</(\w+:)?Signature>",
                     r'<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/'
                     r'xmldsig#"><ds:RetrievalMethod URI="%s" Type="http://'
                     r'www.w3.org/2000/09/xmldsig#X509Data"/></ds:KeyInfo>'
                     r'</\1Signature>' % url, xml, count=1)
        assert "RetrievalMethod" in xml
        refused(portal, post_slo(portal, xml), ann, "sig_keyinfo_forbidden")
    finally:
        stop.set()
        t.join(2)
        srv.close()
    assert hits == []


def test_post_slo_form_refusals(portal):
    portal.httpd.expect_log("BTSSO0521")
    ann, _ = login(portal)
    xml = sign(portal.idp, logout_request_xml(portal, "ann@example.com"))
    for data in ({"SAMLRequest": b64(xml), "SAMLResponse": b64(xml)},
                 {"RelayState": "x"},
                 {"SAMLRequest": "***"},
                 {"SAMLResponse": b64(xml)}):
        r = portal.post("/sso/slo", data=data)
        assert r.status_code == 400, (data.keys(), r.status_code)
    r = portal.post("/sso/slo", data=[("SAMLRequest", b64(xml)),
                                      ("SAMLRequest", b64(xml))])
    assert r.status_code == 400
    r = portal.post("/sso/slo", data={"SAMLRequest": "A" * (300 * 1024)})
    assert r.status_code == 413
    assert alive(portal, ann)
