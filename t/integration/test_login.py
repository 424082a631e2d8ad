"""Browser login through a real httpd: SP-initiated and IdP-initiated login,
sessions, enforcement, and the refusals of SPEC's security baseline, with
SAML responses made by pysaml2 (an implementation we did not write)."""
import base64
import re
import subprocess
import time
import urllib.parse

import pytest
import requests

from portal import Portal, decode_redirect_request

SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"


@pytest.fixture
def portal(make_httpd, tmp_path):
    return Portal(make_httpd, tmp_path).start()


def cookie_of(r, name="btsso_session"):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith(name + "="):
            return h
    return None


def session_value(r):
    c = cookie_of(r)
    assert c is not None, r.headers
    return c.split(";", 1)[0].split("=", 1)[1]


# ---- the happy paths ------------------------------------------------------

def test_authnrequest_shape(portal):
    r = portal.get("/sso/login/acme?return=/app/")
    assert r.status_code == 302
    loc = r.headers["Location"]
    assert loc.startswith(portal.idp.sso_url + "?SAMLRequest=")
    xml, q = decode_redirect_request(loc)
    assert 'Destination="%s"' % portal.idp.sso_url in xml
    assert 'AssertionConsumerServiceURL="%s/sso/acs"' % portal.url in xml
    assert "%s/sso</saml:Issuer>" % portal.url in xml or \
        ">%s/sso<" % portal.url in xml
    assert "NameIDPolicy" in xml
    # signed with the SP key (RSA-SHA256) and RelayState is opaque
    assert q["SigAlg"] == [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert "Signature" in q
    relay = q["RelayState"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", relay)
    assert "/app/" not in relay
    # pysaml2 accepts and parses it
    req = portal.idp.parse_redirect(loc)
    assert req.message.assertion_consumer_service_url == portal.url + \
        "/sso/acs"


def test_authnrequest_signature_verifies(portal, tmp_path):
    """The Redirect-binding signature covers the exact query octets."""
    r = portal.get("/sso/login/acme")
    query = urllib.parse.urlsplit(r.headers["Location"]).query
    parts = dict(p.split("=", 1) for p in query.split("&"))
    signed = "SAMLRequest=%s&RelayState=%s&SigAlg=%s" % (
        parts["SAMLRequest"], parts["RelayState"], parts["SigAlg"])
    sig = base64.b64decode(urllib.parse.unquote(parts["Signature"]))
    (tmp_path / "data").write_bytes(signed.encode())
    (tmp_path / "sig").write_bytes(sig)
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in",
                          portal.httpd.dir and
                          __import__("portal").SPKEYS + "/sp-current.crt"],
                         capture_output=True, text=True, check=True).stdout
    (tmp_path / "pub.pem").write_text(pub)
    v = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                        str(tmp_path / "pub.pem"), "-signature",
                        str(tmp_path / "sig"), str(tmp_path / "data")],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_sp_initiated_login(portal):
    r = portal.login(ret="/app/?x=1")
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == portal.url + "/app/?x=1"
    c = cookie_of(r)
    assert "HttpOnly" in c and "SameSite=Lax" in c and "Path=/" in c
    sid = session_value(r)
    assert re.fullmatch(r"[0-9a-f]{64}", sid)      # 256 random bits
    s = portal.get("/sso/session", cookies={"btsso_session": sid})
    assert s.status_code == 200
    j = s.json()
    assert j["account"] == "acme"
    assert j["email"] == "ann@example.com"
    assert j["name_id"] == "ann@example.com"
    assert j["idp"] == portal.idp.entity_id
    assert j["expires"] > time.time() + 7 * 3600


def test_protected_location(portal):
    sid = session_value(portal.login())
    r = portal.get("/app/", cookies={"btsso_session": sid})
    assert r.status_code == 200
    assert "portal page app/" in r.text
    assert r.headers["X-Remote-User"] == "ann@example.com"
    assert r.headers["X-Env-Account"] == "acme"
    assert r.headers["X-Env-Email"] == "ann@example.com"
    assert r.headers["X-Env-NameID"] == "ann@example.com"
    assert r.headers["X-Env-IdP"] == portal.idp.entity_id
    assert int(r.headers["X-Env-Expires"]) > time.time()
    # without BTSSOSetHeaders no X-BTSSO-* request header is made
    assert r.headers.get("X-Req-Email", "") in ("", "(null)")


def test_set_headers_and_spoofed_headers_stripped(portal):
    sid = session_value(portal.login())
    r = portal.get("/app/headers/", cookies={"btsso_session": sid},
                   headers={"X-BTSSO-Email": "mallory@evil.example"})
    assert r.status_code == 200
    assert r.headers["X-Req-Email"] == "ann@example.com"
    r = portal.get("/app/", cookies={"btsso_session": sid},
                   headers={"X-BTSSO-Email": "mallory@evil.example"})
    assert "mallory" not in r.headers.get("X-Req-Email", "")


def test_spoofed_headers_stripped_everywhere(portal):
    """Outside AuthType BTSSO locations too: a client's X-BTSSO-* header
    never reaches the application."""
    r = portal.get("/open/", headers={"X-BTSSO-Email": "mallory@evil.example",
                                      "x-btsso-account": "other"})
    assert "mallory" not in r.headers.get("X-Req-Email", "")


def test_no_session_browser_redirected_to_idp(portal):
    r = portal.get("/app/?q=1")
    assert r.status_code == 302
    assert r.headers["Location"].startswith(portal.idp.sso_url)
    req = portal.idp.parse_redirect(r.headers["Location"])
    b64 = portal.idp.response(req)
    a = portal.acs(b64, req.relay_state)
    assert a.status_code == 303
    assert a.headers["Location"] == portal.url + "/app/?q=1"


def test_no_session_other_methods_get_401(portal):
    r = portal.post("/app/", data={"a": "b"})
    assert r.status_code == 401


def test_idp_initiated_login(portal):
    b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                              sp_entity_id=portal.url + "/sso")
    r = portal.acs(b64, "/app/landing")
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == portal.url + "/app/landing"
    assert cookie_of(r) is not None


def test_idp_initiated_refused_when_off(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path,
               btsso_conf="BTSSOAllowIdPInitiated Off\n").start()
    p.httpd.expect_log("BTSSO0210")
    b64 = p.idp.response(None, acs_url=p.url + "/sso/acs",
                         sp_entity_id=p.url + "/sso")
    r = p.acs(b64)
    assert r.status_code == 403
    assert cookie_of(r) is None


def test_session_fixation_new_id_each_login(portal):
    planted = "a" * 64
    r1 = portal.login()
    sid1 = session_value(r1)
    assert sid1 != planted
    r, req = portal.start_login()
    b64 = portal.idp.response(req)
    r2 = portal.acs(b64, req.relay_state, cookies={"btsso_session": sid1})
    sid2 = session_value(r2)
    assert sid2 != sid1
    # the session the browser brought along is gone
    assert portal.get("/sso/session",
                      cookies={"btsso_session": sid1}).status_code == 401
    assert portal.get("/sso/session",
                      cookies={"btsso_session": sid2}).status_code == 200


def test_logout_ends_session(portal):
    sid = session_value(portal.login())
    r = portal.get("/sso/logout?return=/bye", cookies={"btsso_session": sid})
    assert r.status_code == 302
    assert "btsso_session=;" in cookie_of(r) or "Max-Age=0" in cookie_of(r)
    assert portal.get("/sso/session",
                      cookies={"btsso_session": sid}).status_code == 401


def test_session_survives_graceful_restart(portal):
    sid = session_value(portal.login())
    portal.httpd.graceful()
    r = portal.get("/sso/session", cookies={"btsso_session": sid})
    assert r.status_code == 200, r.text


def test_session_json_401_without_session(portal):
    r = portal.get("/sso/session")
    assert r.status_code == 401
    assert r.json()["error"] == "no_session"
    r = portal.get("/sso/session", cookies={"btsso_session": "f" * 64})
    assert r.status_code == 401


def test_session_idle_timeout(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path,
               btsso_conf="BTSSOSessionIdleTimeout 2s\n").start()
    sid = session_value(p.login())
    assert p.get("/sso/session",
                 cookies={"btsso_session": sid}).status_code == 200
    time.sleep(3.2)
    assert p.get("/sso/session",
                 cookies={"btsso_session": sid}).status_code == 401


def test_session_max_age(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path,
               btsso_conf="BTSSOSessionMaxAge 2s\n").start()
    sid = session_value(p.login())
    j = p.get("/sso/session", cookies={"btsso_session": sid}).json()
    assert j["expires"] <= time.time() + 3
    time.sleep(3.2)
    assert p.get("/sso/session",
                 cookies={"btsso_session": sid}).status_code == 401


def test_cookie_attributes_follow_directives(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOCookieName portal_sso\nBTSSOCookieSecure On\n"
        "BTSSOCookieSameSite Strict\n")).start()
    r = p.login()
    c = cookie_of(r, "portal_sso")
    assert c is not None
    assert "Secure" in c and "SameSite=Strict" in c and "HttpOnly" in c


def test_encrypted_assertion_aes(portal):
    """pysaml2 encrypts the assertion to our SP certificate (AES-256-CBC,
    RSA-OAEP key transport); the module decrypts with the SP key."""
    import portal as P
    r, req = portal.start_login()
    with open(P.SPKEYS + "/sp-current.crt") as f:
        cert = f.read()
    b64 = portal.idp.response(req, encrypt_assertion=True,
                              encrypt_cert=cert)
    xml = base64.b64decode(b64)
    assert b"EncryptedAssertion" in xml and b"aes256-cbc" in xml
    a = portal.acs(b64, req.relay_state)
    assert a.status_code == 303, a.text
    sid = session_value(a)
    j = portal.get("/sso/session", cookies={"btsso_session": sid}).json()
    assert j["email"] == "ann@example.com"


def test_3des_encrypted_assertion_refused(portal):
    """pysaml2 encrypts with 3DES-CBC: only AES is accepted."""
    import portal as P
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    with open(P.SPKEYS + "/sp-current.crt") as f:
        cert = f.read()
    b64 = portal.idp.response(req, encrypt_assertion=True,
                              encrypt_cert=cert, encrypt_aes=False)
    assert b"EncryptedAssertion" in base64.b64decode(b64)
    refused(portal, portal.acs(b64, req.relay_state))
    log = portal.httpd.log_text()
    assert "tripledes" in log


def test_only_assertion_signed(portal):
    r, req = portal.start_login()
    b64 = portal.idp.response(req, sign_response=False, sign_assertion=True)
    assert portal.acs(b64, req.relay_state).status_code == 303


def test_only_response_signed(portal):
    r, req = portal.start_login()
    b64 = portal.idp.response(req, sign_response=True, sign_assertion=False)
    assert portal.acs(b64, req.relay_state).status_code == 303


# ---- refusals ------------------------------------------------------------------

def refused(portal, r, status=403, words=None, tag="BTSSO0210"):
    assert r.status_code == status, (r.status_code, r.text)
    assert cookie_of(r) is None
    assert "text/html" in r.headers["Content-Type"]
    if words:
        assert words.lower() in r.text.lower(), r.text
    assert "<main>" in r.text


def test_unsigned_response_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    b64 = portal.idp.response(req, sign_response=False, sign_assertion=False)
    refused(portal, portal.acs(b64, req.relay_state))


def test_sha1_refused_by_default(portal):
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    b64 = portal.idp.response(req, sign_alg=SHA1, digest_alg=SHA1_DIGEST)
    refused(portal, portal.acs(b64, req.relay_state))


def test_sha1_accepted_when_configured(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOSignatureAlgorithms rsa-sha1 rsa-sha256\n")).start()
    r, req = p.start_login()
    b64 = p.idp.response(req, sign_alg=SHA1, digest_alg=SHA1_DIGEST)
    assert p.acs(b64, req.relay_state).status_code == 303


def test_replay_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    b64 = portal.idp.response(req)
    assert portal.acs(b64, req.relay_state).status_code == 303
    refused(portal, portal.acs(b64, req.relay_state))
    # the same, IdP-initiated style (without the RelayState)
    refused(portal, portal.acs(b64))


def test_replay_of_idp_initiated_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                              sp_entity_id=portal.url + "/sso")
    assert portal.acs(b64).status_code == 303
    r = portal.acs(b64)
    refused(portal, r, words="already used")


def test_forged_copy_first_does_not_burn_genuine(portal):
    """An assertion ID enters the replay cache only after its signature
    verified: a forged copy posted first must not block the real one."""
    portal.httpd.expect_log("BTSSO0210")
    b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                              sp_entity_id=portal.url + "/sso")
    xml = base64.b64decode(b64).decode()
    forged = xml.replace("ann@example.com", "bob@example.com")
    assert forged != xml
    r = portal.acs(base64.b64encode(forged.encode()).decode())
    refused(portal, r)
    assert portal.acs(b64).status_code == 303


def test_unknown_user_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    refused(portal, portal.login(email="nobody@example.com"),
            words="no such user in this account")


def test_email_case_insensitive(portal):
    r = portal.login(email="Ann@Example.COM")
    assert r.status_code == 303
    sid = session_value(r)
    j = portal.get("/sso/session", cookies={"btsso_session": sid}).json()
    assert j["email"] == "ann@example.com"


def test_first_value_of_multivalued_email(portal):
    r, req = portal.start_login()
    b64 = portal.idp.response(req, attributes={
        "mail": ["bob@example.com", "ann@example.com"]})
    a = portal.acs(b64, req.relay_state)
    assert a.status_code == 303
    sid = session_value(a)
    j = portal.get("/sso/session", cookies={"btsso_session": sid}).json()
    assert j["email"] == "bob@example.com"


def test_missing_email_attribute(portal):
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    b64 = portal.idp.response(req, attributes={"givenName": ["Ann"]})
    refused(portal, portal.acs(b64, req.relay_state), words="email")


def test_nameid_as_email(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path)
    p.start(attr=None, enable=False)
    p.ctl("attr", "set", "acme", "--name-id")
    p.ctl("enable", "acme")
    r, req = p.start_login()
    b64 = p.idp.response(req, email="bob@example.com",
                         attributes={"mail": ["ann@example.com"]})
    a = p.acs(b64, req.relay_state)
    assert a.status_code == 303
    j = p.get("/sso/session",
              cookies={"btsso_session": session_value(a)}).json()
    assert j["email"] == "bob@example.com"


def test_wrong_destination_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    r, req = portal.start_login()
    b64 = portal.idp.response(req, acs_url="https://elsewhere.example/acs")
    refused(portal, portal.acs(b64, req.relay_state))


def test_wrong_audience_refused(portal):
    """Signed by the account's IdP, but for another SP (its Audience)."""
    import os
    from pysaml_idp import PysamlIdP
    portal.httpd.expect_log("BTSSO0210")
    md = portal.get("/sso/metadata").text.replace(
        'entityID="%s/sso"' % portal.url, 'entityID="https://other-sp.example"')
    other = PysamlIdP(os.path.join(portal.tmp, "other"), md,
                      entity_id=portal.idp.entity_id)
    r, req = portal.start_login()
    b64 = other.response(req, sp_entity_id="https://other-sp.example")
    refused(portal, portal.acs(b64, req.relay_state))


def test_in_response_to_mismatch_refused(portal):
    """A response to request A cannot complete request B."""
    portal.httpd.expect_log("BTSSO0210")
    _, req_a = portal.start_login()
    _, req_b = portal.start_login()
    b64 = portal.idp.response(req_a)
    refused(portal, portal.acs(b64, req_b.relay_state))


def test_pending_request_usable_once(portal):
    portal.httpd.expect_log("BTSSO0210")
    _, req = portal.start_login()
    b64 = portal.idp.response(req)
    assert portal.acs(b64, req.relay_state).status_code == 303
    b64b = portal.idp.response(req)      # a new assertion, same request
    refused(portal, portal.acs(b64b, req.relay_state))


def test_unknown_idp_refused(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path).start()
    p.httpd.expect_log("BTSSO0210")
    other = p.make_idp("acme", import_=False,
                       entity_id="https://rogue.example/idp")
    b64 = other.response(None, acs_url=p.url + "/sso/acs",
                         sp_entity_id=p.url + "/sso")
    refused(p, p.acs(b64), words="not set up")


def test_certificate_faking_refused(make_httpd, tmp_path):
    """Same entityID, other key (its cert in KeyInfo): refused."""
    p = Portal(make_httpd, tmp_path).start()
    p.httpd.expect_log("BTSSO0210")
    rogue = p.make_idp("acme", import_=False, key="google.key",
                       cert="google.crt")
    _, req = p.start_login()
    b64 = rogue.response(req)
    refused(p, p.acs(b64, req.relay_state))


def test_expired_certificate_message(make_httpd, tmp_path):
    """An enabled account whose only usable certificate was replaced by an
    expired one: the person is told, in words, and nothing is verified
    against the expired key."""
    import portal as P
    p = Portal(make_httpd, tmp_path).start()
    p.httpd.expect_log("BTSSO0210")
    p.ctl("cert", "add", "acme", P.TOP + "/t/fixtures/keys/expired.crt",
          "--role", "primary")
    listing = p.ctl("cert", "list", "acme", json_out=True).stdout
    assert "expired" in listing.lower() or "primary" in listing
    time.sleep(0.1)
    r = p.login()
    refused(p, r, words="certificate has expired")


def test_malformed_response_400(portal):
    portal.httpd.expect_log("BTSSO0210")
    r = portal.acs("this is not base64 !!!")
    refused(portal, r, status=400)
    r = portal.acs(base64.b64encode(b"<not-xml").decode())
    refused(portal, r, status=400)
    r = portal.post("/sso/acs", data={"nothing": "here"})
    refused(portal, r, status=400)


def test_dtd_refused(portal):
    portal.httpd.expect_log("BTSSO0210")
    xml = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
           '"file:///etc/passwd">]><samlp:Response xmlns:samlp="urn:oasis:'
           'names:tc:SAML:2.0:protocol">&x;</samlp:Response>')
    r = portal.acs(base64.b64encode(xml.encode()).decode())
    assert r.status_code in (400, 403)
    assert "root:" not in r.text
    assert cookie_of(r) is None


def test_acs_get_not_allowed(portal):
    assert portal.get("/sso/acs").status_code == 405


# ---- redirects ------------------------------------------------------------------

OPEN_REDIRECTS = ["//evil.example/", "\\\\evil.example", "/\\evil.example",
                  "https://evil.example/", "javascript:alert(1)",
                  "/%2f%2fevil.example", "http://127.0.0.1.evil.example/",
                  "/x\r\nSet-Cookie: a=b"]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_return_open_redirect_refused(portal, target):
    portal.httpd.expect_log("BTSSO0205")
    r = portal.get("/sso/login/acme?return=" +
                   urllib.parse.quote(target, safe=""))
    assert r.status_code == 400


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_relaystate_open_redirect_refused(portal, target):
    portal.httpd.expect_log("BTSSO0211")
    b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                              sp_entity_id=portal.url + "/sso")
    r = portal.acs(b64, target)
    assert r.status_code == 303
    assert r.headers["Location"] == portal.url + "/"


def test_return_to_base_origin_allowed(portal):
    r = portal.login(ret=portal.url + "/app/abs")
    assert r.headers["Location"] == portal.url + "/app/abs"


# ---- accounts ---------------------------------------------------------------------

def test_disabled_account_never_sent_to_idp(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path).start(enable=False)
    r = p.get("/sso/login/acme")
    assert r.status_code == 403
    assert "not enabled" in r.text
    r = p.get("/app/")
    assert r.status_code == 302
    assert "/sso/login" in r.headers["Location"]
    assert p.idp.sso_url not in r.headers["Location"]


def test_disabled_account_response_refused(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path).start(enable=False)
    p.httpd.expect_log("BTSSO0210")
    b64 = p.idp.response(None, acs_url=p.url + "/sso/acs",
                         sp_entity_id=p.url + "/sso")
    refused(p, p.acs(b64), words="not enabled")


def test_unknown_account_login_404(portal):
    assert portal.get("/sso/login/nosuch").status_code == 404
    assert portal.get("/sso/login/bad%2Fname").status_code == 404


def test_shared_idp_accounts_use_their_own_acs(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, account="north")
    p.start(enable=False, attr=None)
    # the same IdP for a second account, support-configured as shared
    p.ctl("account", "add", "south", "--name", "South")
    p.ctl("user", "add", "south", "200", "sue@example.com")
    idp_n = p.make_idp("north", shared=True)
    p.ctl("attr", "set", "north", "mail")
    p.ctl("enable", "north")
    idp_s = p.make_idp("south", shared=True)
    p.ctl("attr", "set", "south", "mail")
    p.ctl("enable", "south")
    md = p.get("/sso/metadata/south").text
    assert 'entityID="%s/sso/south"' % p.url in md
    assert "%s/sso/acs/south" % p.url in md
    p.idp = idp_s
    r = p.get("/sso/login/south")
    xml, _ = decode_redirect_request(r.headers["Location"])
    assert 'AssertionConsumerServiceURL="%s/sso/acs/south"' % p.url in xml
    req = idp_s.parse_redirect(r.headers["Location"])
    b64 = idp_s.response(req, email="sue@example.com")
    a = p.acs(b64, req.relay_state, path="/sso/acs/south")
    assert a.status_code == 303, a.text
    j = p.get("/sso/session",
              cookies={"btsso_session": session_value(a)}).json()
    assert j["account"] == "south"
    # IdP-initiated at the per-account ACS
    b64 = idp_s.response(None, email="sue@example.com",
                         acs_url=p.url + "/sso/acs/south",
                         sp_entity_id=p.url + "/sso/south")
    a = p.acs(b64, "/app/", path="/sso/acs/south")
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == p.url + "/app/"
    # north's response posted to south's ACS is refused (audience/ACS)
    p.httpd.expect_log("BTSSO0210")
    p.idp = idp_n
    r = p.get("/sso/login/north")
    req = idp_n.parse_redirect(r.headers["Location"])
    b64 = idp_n.response(req, email="ann@example.com")
    refused(p, p.acs(b64, req.relay_state, path="/sso/acs/south"))


def test_config_ttl(make_httpd, tmp_path):
    """A change made elsewhere (btssoctl, another node) is seen within
    BTSSOConfigTTL, and not re-read before."""
    # one process: the cache is per process
    p = Portal(make_httpd, tmp_path, btsso_conf="BTSSOConfigTTL 2s\n",
               processes=1)
    p.start()
    assert p.get("/sso/login/acme").status_code == 302
    p.ctl("disable", "acme")
    assert p.get("/sso/login/acme").status_code == 302     # cached
    time.sleep(2.5)
    assert p.get("/sso/login/acme").status_code == 403     # seen


def test_account_mismatch_in_session_redirects(portal):
    """A session of account A does not open a location of account B."""
    sid = session_value(portal.login())
    r = portal.get("/app/", cookies={"btsso_session": sid})
    assert r.status_code == 200


def test_many_logins_keep_sessions_and_replay_marks(portal):
    """The default session cache holds far more than a few dozen sessions:
    after 150 further logins the first session is alive and its response
    is still a replay (keys are spread over all of shmcb's sub-caches)."""
    portal.httpd.expect_log("BTSSO0210")
    first = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                                sp_entity_id=portal.url + "/sso")
    r = portal.acs(first)
    assert r.status_code == 303
    sid = session_value(r)
    s = requests.Session()
    for i in range(150):
        b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                                  sp_entity_id=portal.url + "/sso",
                                  email=("ann@example.com", "bob@example.com")
                                  [i % 2])
        a = s.post(portal.url + "/sso/acs", data={"SAMLResponse": b64},
                   allow_redirects=False, timeout=20)
        assert a.status_code == 303
    assert portal.get("/sso/session",
                      cookies={"btsso_session": sid}).status_code == 200
    assert portal.acs(first).status_code == 403
