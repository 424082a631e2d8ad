"""Single Logout through a real httpd, with pysaml2 as the IdP: our signed
LogoutRequest at GET /sso/logout, the IdP's LogoutResponse at /sso/slo, an
IdP-sent LogoutRequest ending the sessions it names (by NameID and
SessionIndex) answered by our signed LogoutResponse, and every refusal.
Local logout never fails, whatever the IdP does."""
import base64
import datetime
import json
import subprocess
import time
import urllib.parse
import uuid
import zlib

import pytest
import requests
from saml2 import BINDING_HTTP_REDIRECT
from saml2.pack import http_redirect_message
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID

import cachesrv
from portal import Portal, SPKEYS
from pysaml_idp import PysamlIdP

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"


@pytest.fixture
def portal(make_httpd, tmp_path):
    return Portal(make_httpd, tmp_path).start()


def session_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            v = h.split(";", 1)[0].split("=", 1)[1]
            return v or None
    return None


def cookie_cleared(r):
    return any(h.startswith("btsso_session=;") or
               (h.startswith("btsso_session=") and "Max-Age=0" in h)
               for h in r.raw.headers.getlist("Set-Cookie"))


def alive(portal, sid):
    return portal.get("/sso/session",
                      cookies={"btsso_session": sid}).status_code == 200


def login(portal, email="ann@example.com"):
    """A login; returns (session cookie value, SessionIndex asserted)."""
    r, req = portal.start_login()
    b64 = portal.idp.response(req, email=email)
    xml = base64.b64decode(b64).decode()
    si = xml.split('SessionIndex="', 1)[1].split('"', 1)[0]
    a = portal.acs(b64, req.relay_state)
    assert a.status_code == 303, a.text
    return session_of(a), si


def query_of(location):
    return urllib.parse.urlsplit(location).query


def decode(location, param="SAMLRequest"):
    q = urllib.parse.parse_qs(query_of(location))
    return zlib.decompress(base64.b64decode(q[param][0]), -15).decode(), q


def now_iso(delta=0):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def redirect_query(idp, xml, param, relay_state=None, sign=True,
                   sigalg=RSA_SHA256, dest=None):
    """The query string an IdP's browser redirect carries, signed by idp
    (pysaml2) over the exact octets."""
    info = http_redirect_message(xml, dest or "http://sp.invalid/sso/slo",
                                 relay_state=relay_state or "", typ=param,
                                 sigalg=sigalg if sign else None, sign=sign,
                                 backend=idp.server.sec.sec_backend)
    return query_of(dict(info["headers"])["Location"])


def logout_request_xml(portal, name_id, session_indexes=(), issuer=None,
                       destination=None, issue=0, not_on_or_after=300,
                       req_id=None):
    sis = "".join("<samlp:SessionIndex>%s</samlp:SessionIndex>" % s
                  for s in session_indexes)
    dest = destination if destination is not None else \
        portal.url + "/sso/slo"
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:'
        'protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        'ID="%s" Version="2.0" IssueInstant="%s"%s NotOnOrAfter="%s">'
        '<saml:Issuer>%s</saml:Issuer><saml:NameID Format="%s">%s'
        '</saml:NameID>%s</samlp:LogoutRequest>' % (
            req_id or "_" + uuid.uuid4().hex, now_iso(issue),
            ' Destination="%s"' % dest if dest else "",
            now_iso(not_on_or_after), issuer or portal.idp.entity_id,
            NAMEID_FORMAT_EMAILADDRESS, name_id, sis))


def logout_response_xml(portal, in_response_to, status=SUCCESS,
                        destination=None, issuer=None):
    return (
        '<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:'
        'protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        'ID="_%s" Version="2.0" IssueInstant="%s" Destination="%s" '
        'InResponseTo="%s"><saml:Issuer>%s</saml:Issuer><samlp:Status>'
        '<samlp:StatusCode Value="%s"/></samlp:Status>'
        '</samlp:LogoutResponse>' % (
            uuid.uuid4().hex, now_iso(),
            destination or portal.url + "/sso/slo", in_response_to,
            issuer or portal.idp.entity_id, status))


def sp_logout(portal, sid, ret="/app/"):
    """GET /sso/logout with a session; returns (response, LogoutRequest
    parsed by pysaml2, RelayState)."""
    r = portal.get("/sso/logout?return=" + urllib.parse.quote(ret, safe=""),
                   cookies={"btsso_session": sid})
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    assert loc.startswith(portal.idp.slo_url + "?SAMLRequest="), loc
    q = urllib.parse.parse_qs(query_of(loc))
    req = portal.idp.server.parse_logout_request(q["SAMLRequest"][0],
                                                 BINDING_HTTP_REDIRECT)
    return r, req, q["RelayState"][0]


# ---- SP-initiated: our LogoutRequest -------------------------------------

def test_logout_sends_signed_logout_request(portal, tmp_path):
    sid, si = login(portal)
    r, req, relay = sp_logout(portal, sid)
    # the local session ended before the browser left for the IdP
    assert cookie_cleared(r)
    assert not alive(portal, sid)
    msg = req.message
    assert msg.issuer.text == portal.url + "/sso"
    assert msg.destination == portal.idp.slo_url
    assert msg.name_id.text == "ann@example.com"
    assert msg.name_id.format == NAMEID_FORMAT_EMAILADDRESS
    assert [s.text for s in msg.session_index] == [si]
    # RelayState is an opaque key, never the return target
    assert len(relay) == 32 and "/app" not in relay
    # the Redirect signature covers the exact query octets (SP key)
    query = query_of(r.headers["Location"])
    parts = dict(p.split("=", 1) for p in query.split("&"))
    assert urllib.parse.unquote(parts["SigAlg"]) == RSA_SHA256
    signed = "SAMLRequest=%s&RelayState=%s&SigAlg=%s" % (
        parts["SAMLRequest"], parts["RelayState"], parts["SigAlg"])
    (tmp_path / "data").write_bytes(signed.encode())
    (tmp_path / "sig").write_bytes(
        base64.b64decode(urllib.parse.unquote(parts["Signature"])))
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in",
                          SPKEYS + "/sp-current.crt"], capture_output=True,
                         text=True, check=True).stdout
    (tmp_path / "pub.pem").write_text(pub)
    v = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                        str(tmp_path / "pub.pem"), "-signature",
                        str(tmp_path / "sig"), str(tmp_path / "data")],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_logout_response_success_returns_to_target(portal):
    sid, _ = login(portal)
    _, req, relay = sp_logout(portal, sid, ret="/app/bye?x=1")
    # pysaml2 answers as an IdP would
    resp = portal.idp.server.create_logout_response(
        req.message, [BINDING_HTTP_REDIRECT])
    q = redirect_query(portal.idp, str(resp), "SAMLResponse", relay)
    r = portal.get("/sso/slo?" + q)
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == portal.url + "/app/bye?x=1"
    assert not alive(portal, sid)


def test_logout_response_usable_once(portal):
    portal.httpd.expect_log("BTSSO0530")
    sid, _ = login(portal)
    _, req, relay = sp_logout(portal, sid)
    q = redirect_query(portal.idp, logout_response_xml(portal,
                       req.message.id), "SAMLResponse", relay)
    assert portal.get("/sso/slo?" + q).status_code == 302
    r = portal.get("/sso/slo?" + q)
    assert r.status_code == 200
    assert "signed out" in r.text


@pytest.mark.parametrize("case", ["status", "unsigned", "in_response_to",
                                  "destination", "issuer", "wrong_key",
                                  "sha1"])
def test_bad_logout_response_still_signed_out(portal, case):
    """Whatever the IdP answers, the person is signed out here and told the
    IdP did not confirm it."""
    portal.httpd.expect_log("BTSSO0531")
    sid, _ = login(portal)
    _, req, relay = sp_logout(portal, sid, ret="/app/")
    kw = {}
    signer = portal.idp
    sign, sigalg = True, RSA_SHA256
    irt = req.message.id
    if case == "status":
        kw["status"] = RESPONDER
    elif case == "in_response_to":
        irt = "_not_ours"
    elif case == "destination":
        kw["destination"] = "https://elsewhere.example/sso/slo"
    elif case == "issuer":
        kw["issuer"] = "https://other-idp.example/"
    elif case == "unsigned":
        sign = False
    elif case == "sha1":
        sigalg = RSA_SHA1
    elif case == "wrong_key":
        signer = PysamlIdP(portal.tmp + "/attacker", open(
            portal.idp.dir + "/sp-metadata.xml").read(),
            entity_id=portal.idp.entity_id, key="google.key",
            cert="google.crt")
    q = redirect_query(signer, logout_response_xml(portal, irt, **kw),
                       "SAMLResponse", relay, sign=sign, sigalg=sigalg)
    r = portal.get("/sso/slo?" + q)
    assert r.status_code == 200, r.text
    assert "did not confirm" in r.text
    code = {"status": "status_not_success", "unsigned": "unsigned",
            "in_response_to": "in_response_to_mismatch",
            "destination": "destination_mismatch",
            "issuer": "issuer_mismatch", "wrong_key": "sig_invalid",
            "sha1": "sigalg_not_allowed"}[case]
    assert ": %s: " % code in portal.httpd.log_text()
    assert 'href="%s/app/"' % portal.url in r.text
    assert not alive(portal, sid)


def test_logout_when_idp_unreachable(portal):
    """The IdP's SLO endpoint does not answer (nothing listens on its
    host): the browser cannot get there, but the portal session is gone
    and a new visit must sign in again."""
    sid, _ = login(portal)
    r = portal.get("/sso/logout", cookies={"btsso_session": sid})
    assert r.status_code == 302
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(r.headers["Location"], timeout=5)
    assert not alive(portal, sid)
    assert portal.get("/app/", cookies={"btsso_session": sid}) \
        .status_code == 302


def test_logout_without_idp_slo_is_local(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, idp_kwargs={"slo": False}).start()
    sid, _ = login(p)
    r = p.get("/sso/logout?return=/app/x", cookies={"btsso_session": sid})
    assert r.status_code == 302
    assert r.headers["Location"] == p.url + "/app/x"
    assert cookie_cleared(r)
    assert not alive(p, sid)


def test_logout_without_session(portal):
    r = portal.get("/sso/logout?return=/app/x")
    assert r.status_code == 302
    assert r.headers["Location"] == portal.url + "/app/x"


def test_logout_without_sp_key_unsigned(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, sp_keys=False).start()
    sid, _ = login(p)
    r = p.get("/sso/logout", cookies={"btsso_session": sid})
    assert r.status_code == 302
    q = urllib.parse.parse_qs(query_of(r.headers["Location"]))
    assert "Signature" not in q and "SAMLRequest" in q
    assert not alive(p, sid)


# ---- IdP-initiated: the IdP's LogoutRequest --------------------------------

def test_idp_logout_request_ends_matching_session(portal):
    ann1, si1 = login(portal)
    ann2, si2 = login(portal)
    bob, _ = login(portal, "bob@example.com")
    assert si1 != si2
    # made by pysaml2, as the IdP
    _, req = portal.idp.server.create_logout_request(
        portal.url + "/sso/slo", portal.url + "/sso",
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS,
                       text="ann@example.com"), session_indexes=[si1])
    q = redirect_query(portal.idp, str(req), "SAMLRequest", "idp-state-1")
    r = portal.get("/sso/slo?" + q, cookies={"btsso_session": ann1})
    assert r.status_code == 302, r.text
    # the browser that came along is told to forget its cookie
    assert cookie_cleared(r)
    assert not alive(portal, ann1)
    assert alive(portal, ann2)        # another login of Ann: other index
    assert alive(portal, bob)
    # our signed LogoutResponse, read and verified by pysaml2
    loc = r.headers["Location"]
    assert loc.startswith(portal.idp.slo_url + "?SAMLResponse=")
    q = urllib.parse.parse_qs(query_of(loc))
    assert q["RelayState"] == ["idp-state-1"]
    assert q["SigAlg"] == [RSA_SHA256] and "Signature" in q
    xml, _ = decode(loc, "SAMLResponse")
    assert 'InResponseTo="%s"' % req.id in xml
    assert SUCCESS in xml
    resp = portal.idp.server.parse_logout_request_response(
        q["SAMLResponse"][0], BINDING_HTTP_REDIRECT)
    assert resp.response.in_response_to == req.id
    assert resp.response.issuer.text == portal.url + "/sso"


def test_idp_logout_request_without_session_index_ends_all(portal):
    ann1, _ = login(portal)
    ann2, _ = login(portal)
    bob, _ = login(portal, "bob@example.com")
    q = redirect_query(portal.idp, logout_request_xml(
        portal, "ann@example.com"), "SAMLRequest")
    r = portal.get("/sso/slo?" + q)      # back channel: no cookie at all
    assert r.status_code == 302
    assert not alive(portal, ann1)
    assert not alive(portal, ann2)
    assert alive(portal, bob)


def test_idp_logout_request_other_name_id_ends_nothing(portal):
    ann, si = login(portal)
    q = redirect_query(portal.idp, logout_request_xml(
        portal, "bob@example.com", [si]), "SAMLRequest")
    assert portal.get("/sso/slo?" + q).status_code == 302
    assert alive(portal, ann)


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "tampered_relay",
                                  "destination", "no_destination",
                                  "expired", "too_old", "future",
                                  "unknown_idp", "sha1"])
def test_idp_logout_request_refused(portal, case):
    """Nothing is ended, and no LogoutResponse is signed, before the
    request verified."""
    portal.httpd.expect_log("BTSSO0523")
    ann, si = login(portal)
    kw = {}
    signer, sign, sigalg = portal.idp, True, RSA_SHA256
    if case == "unsigned":
        sign = False
    elif case == "wrong_key":
        signer = PysamlIdP(portal.tmp + "/attacker", open(
            portal.idp.dir + "/sp-metadata.xml").read(),
            entity_id=portal.idp.entity_id, key="google.key",
            cert="google.crt")
    elif case == "destination":
        kw["destination"] = "https://elsewhere.example/sso/slo"
    elif case == "no_destination":
        kw["destination"] = ""
    elif case == "expired":
        kw["issue"], kw["not_on_or_after"] = -300, -200
    elif case == "too_old":
        kw["issue"], kw["not_on_or_after"] = -1200, 600
    elif case == "future":
        kw["issue"] = 900
    elif case == "unknown_idp":
        kw["issuer"] = "https://unknown-idp.example/"
    elif case == "sha1":
        sigalg = RSA_SHA1
    q = redirect_query(signer, logout_request_xml(
        portal, "ann@example.com", [si], **kw), "SAMLRequest", "state",
        sign=sign, sigalg=sigalg)
    if case == "tampered_relay":
        q = q.replace("RelayState=state", "RelayState=other")
    r = portal.get("/sso/slo?" + q, cookies={"btsso_session": ann})
    assert r.status_code == 403, r.text
    assert "refused" in r.text
    code = {"unsigned": "unsigned", "wrong_key": "sig_invalid",
            "tampered_relay": "sig_invalid", "sha1": "sigalg_not_allowed",
            "destination": "destination_mismatch",
            "no_destination": "destination_missing",
            "expired": "request_expired", "too_old": "message_too_old",
            "future": "issued_in_future",
            "unknown_idp": "unknown_idp"}[case]
    assert "BTSSO0523: account " in portal.httpd.log_text()
    assert ": %s: " % code in portal.httpd.log_text()
    assert "Location" not in r.headers
    assert alive(portal, ann)


def test_idp_logout_request_replay_refused(portal):
    portal.httpd.expect_log("BTSSO0523")
    ann, _ = login(portal)
    q = redirect_query(portal.idp, logout_request_xml(
        portal, "ann@example.com"), "SAMLRequest")
    assert portal.get("/sso/slo?" + q).status_code == 302
    assert not alive(portal, ann)
    ann2, _ = login(portal)
    r = portal.get("/sso/slo?" + q)
    assert r.status_code == 403
    assert alive(portal, ann2)


def test_idp_logout_request_for_shared_idp_uses_callers_session(
        make_httpd, tmp_path):
    """A shared IdP's Issuer names no single account: the caller's own
    session (from that IdP) says which."""
    p = Portal(make_httpd, tmp_path).start(enable=False, attr=None)
    p.ctl("account", "add", "beta")
    p.ctl("user", "add", "beta", "200", "cat@example.com")
    p.make_idp("acme", shared=True)
    idp = p.make_idp("beta", shared=True)
    p.ctl("attr", "set", "beta", "mail")
    p.ctl("enable", "beta")
    p.idp = idp
    r, req = p.start_login(account="beta")
    a = p.acs(idp.response(req, email="cat@example.com"), req.relay_state,
              path="/sso/acs/beta")
    assert a.status_code == 303, a.text
    sid = session_of(a)
    q = redirect_query(idp, logout_request_xml(p, "cat@example.com",
                                               issuer=idp.entity_id),
                       "SAMLRequest")
    r = p.get("/sso/slo?" + q, cookies={"btsso_session": sid})
    assert r.status_code == 302, r.text
    assert not alive(p, sid)
    # its LogoutResponse is issued by the account's own SP entity
    xml, _ = decode(r.headers["Location"], "SAMLResponse")
    assert ">%s/sso/beta<" % p.url in xml


# ---- what /sso/slo refuses to read --------------------------------------

def test_slo_post_not_logout_refused(portal):
    """POST is read (test_post_binding.py), but "<x>" is no logout."""
    portal.httpd.expect_log("BTSSO0521")
    ann, _ = login(portal)
    r = portal.post("/sso/slo", data={"SAMLRequest": "PHg+"},
                    cookies={"btsso_session": ann})
    assert r.status_code == 400
    assert alive(portal, ann)


@pytest.mark.parametrize("query", [
    "",
    "SAMLRequest=%%%",
    "SAMLRequest=bm90IGRlZmxhdGVk",
    "SAMLRequest=a&SAMLRequest=b",
])
def test_slo_garbage_refused(portal, query):
    portal.httpd.expect_log("BTSSO0521")
    r = portal.get("/sso/slo?" + query)
    assert r.status_code == 400


def test_slo_dtd_refused(portal):
    portal.httpd.expect_log("BTSSO0521")
    xml = ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' +
           logout_request_xml(portal, "&e;"))
    q = redirect_query(portal.idp, xml, "SAMLRequest")
    r = portal.get("/sso/slo?" + q)
    assert r.status_code == 400
    assert "root:" not in r.text


def test_slo_request_in_response_parameter_refused(portal):
    portal.httpd.expect_log("BTSSO0521")
    ann, _ = login(portal)
    q = redirect_query(portal.idp, logout_request_xml(
        portal, "ann@example.com"), "SAMLResponse")
    r = portal.get("/sso/slo?" + q, cookies={"btsso_session": ann})
    assert r.status_code == 400
    assert alive(portal, ann)


def test_slo_methods(portal):
    r = requests.put(portal.url + "/sso/slo", timeout=10)
    assert r.status_code == 405


def test_idp_logout_request_reads_an_older_json_index(make_httpd, tmp_path):
    """A session made before the NameID index took its binary form (its
    index a JSON list, left in memcached across an upgrade) is still ended
    by the IdP's LogoutRequest; the index then holds the other session in
    the binary form."""
    with cachesrv.memcached_server() as port:
        p = Portal(make_httpd, tmp_path, btsso_conf=(
            "BTSSOSessionCache memcache:127.0.0.1:%d\n" % port),
            modules=[("socache_memcache_module",
                      "mod_socache_memcache.so")]).start()
        ann1, si1 = login(p)
        ann2, si2 = login(p)
        mc = cachesrv.Memcache(port)
        index_key = None
        for _ in range(50):     # the LRU crawler lists what it has seen
            for k in mc.keys():
                v = mc.get(k)
                if v and v[:1] == b"\x01":
                    index_key, index = k, v
            if index_key:
                break
            time.sleep(0.1)
        assert index_key is not None
        # the binary index, rewritten as the JSON list of the versions
        # before: [{"k": hex cache key, "si": SessionIndex, "e": expiry}]
        items, at = [], 1
        while at < len(index):
            n = int.from_bytes(index[at + 40:at + 42], "big")
            items.append({"e": int.from_bytes(index[at:at + 8], "big"),
                          "k": index[at + 8:at + 40].hex(),
                          "si": index[at + 42:at + 42 + n].decode()})
            at += 42 + n
        assert sorted(i["si"] for i in items) == sorted([si1, si2])
        mc.set(index_key, json.dumps(items).encode())
        q = redirect_query(p.idp, logout_request_xml(
            p, "ann@example.com", [si1]), "SAMLRequest")
        assert p.get("/sso/slo?" + q).status_code == 302
        assert not alive(p, ann1)
        assert alive(p, ann2)
        left = mc.get(index_key)
        assert left[:1] == b"\x01" and si2.encode() in left
        assert si1.encode() not in left
        mc.close()
