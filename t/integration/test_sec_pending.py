"""Pending sign-in state and return targets under attack (issue 8, items 2,
5, 7 and 9), each mounted through a real httpd:

- a flood of unauthenticated /sso/login requests must not evict sessions or
  replay marks (the pending state lives in the browser, not in the cache);
- an absolute-form request line, or a return target too long, never sends
  the browser off BTSSOBaseURL's origin;
- a session (and a pending sign-in) made by one SP (virtual host) is not
  honoured by another;
- a sign-in started in one browser finishes only in that browser (login
  CSRF), and a tampered pending cookie is refused.
"""
import base64
import hashlib
import hmac
import http.client
import os
import re
import socket
import time
import types
import urllib.parse

import pytest
import requests

import btsso_httpd
from portal import Portal, SPKEYS, decode_redirect_request

PENDING_RE = re.compile(r"^([A-Za-z0-9_]+_pending_([0-9a-f]{32}))=([^;]*)(;.*)?$")
PENDING_KEY_LABEL = b"mod_btsso pending sign-in cookie key v1"


class Browser:
    """A cookie jar that behaves like a browser for one host: it keeps what
    Set-Cookie says (also Secure cookies over http on loopback, as Chromium
    does) and sends every cookie back (the module's cookies use Path=/)."""

    def __init__(self, base):
        self.base = base
        self.jar = {}

    def absorb(self, r):
        for h in r.raw.headers.getlist("Set-Cookie"):
            name, _, rest = h.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in h:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return r

    def cookie_header(self):
        return "; ".join("%s=%s" % kv for kv in self.jar.items())

    def request(self, method, path, **kw):
        url = path if path.startswith("http") else self.base + path
        headers = kw.pop("headers", {})
        if self.jar:
            headers["Cookie"] = self.cookie_header()
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.absorb(requests.request(method, url, headers=headers,
                                            **kw))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def acs(self, saml_response, relay_state=None, path="/sso/acs"):
        data = {"SAMLResponse": saml_response}
        if relay_state is not None:
            data["RelayState"] = relay_state
        return self.request("POST", path, data=data)

    def pending(self):
        return {n: v for n, v in self.jar.items() if "_pending_" in n}


def pending_set_cookies(r):
    """[(name, relay, value, attributes)] of the pending cookies r sets."""
    out = []
    for h in r.raw.headers.getlist("Set-Cookie"):
        m = PENDING_RE.match(h)
        if m and "Max-Age=0" not in h:
            out.append((m.group(1), m.group(2), m.group(3), m.group(4) or ""))
    return out


def session_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1]
    return None


def start(portal, browser, path="/sso/login/acme"):
    """Start a sign-in in browser; (response, pysaml2 request)."""
    r = browser.get(path)
    assert r.status_code == 302, (r.status_code, r.text)
    return r, portal.idp.parse_redirect(r.headers["Location"])


def refusal_logged(portal, code):
    return any("BTSSO0210" in line and code in line
               for line in portal.httpd.log_text().splitlines())


@pytest.fixture
def portal(make_httpd, tmp_path):
    return Portal(make_httpd, tmp_path).start()


# ---- item 2: an unauthenticated flood evicts nothing -------------------------

def test_login_flood_keeps_sessions_and_replay_marks(make_httpd, tmp_path):
    """4000 GET /sso/login/acme?return=/AAAA...(2 KB) through a small
    session cache: an already-used response is still a replay and the
    session made before is still alive."""
    p = Portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOSessionCache shmcb:btsso-small(262144)\n")).start()
    p.httpd.expect_log("BTSSO0210")
    used = p.idp.response(None, acs_url=p.url + "/sso/acs",
                          sp_entity_id=p.url + "/sso")
    r = p.acs(used)
    assert r.status_code == 303, r.text
    sid = session_of(r)
    ret = urllib.parse.quote("/" + "A" * 2040, safe="")
    path = "/sso/login/acme?return=" + ret
    sent = 0
    for _ in range(8):
        conn = http.client.HTTPConnection("127.0.0.1", p.httpd.port,
                                          timeout=30)
        for _ in range(500):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 302
            sent += 1
        conn.close()
    assert sent == 4000
    assert p.get("/sso/session",
                 cookies={"btsso_session": sid}).status_code == 200
    again = p.acs(used)
    assert again.status_code == 403, again.text
    assert session_of(again) is None
    assert refusal_logged(p, "replay")


def test_replay_check_refuses_without_a_cache(make_httpd, tmp_path):
    """A replay check that cannot record the assertion refuses it."""
    dead = btsso_httpd.free_port()
    p = Portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOSessionCache memcache:127.0.0.1:%d\n" % dead),
        modules=[("socache_memcache_module", "mod_socache_memcache.so")]
    ).start()
    for tag in ("BTSSO0210", "BTSSO0302", "BTSSO0303", "AH"):
        p.httpd.expect_log(tag)
    b64 = p.idp.response(None, acs_url=p.url + "/sso/acs",
                         sp_entity_id=p.url + "/sso")
    r = p.acs(b64)
    assert r.status_code == 503, r.text
    assert session_of(r) is None
    assert refusal_logged(p, "replay_cache")


# ---- the pending cookie --------------------------------------------------------

def test_pending_cookie_shape(portal):
    b = Browser(portal.url)
    r, req = start(portal, b, "/sso/login/acme?return=%2Fapp%2F")
    assert re.fullmatch(r"[0-9a-f]{32}", req.relay_state)
    cookies = pending_set_cookies(r)
    assert len(cookies) == 1
    name, relay, value, attrs = cookies[0]
    assert relay == req.relay_state
    assert "HttpOnly" in attrs and "Path=/" in attrs
    # the ACS POST is cross-site: SameSite=None, which needs Secure (and
    # Chromium keeps Secure cookies of http://localhost and 127.0.0.1)
    assert "SameSite=None" in attrs and "Secure" in attrs
    age = int(re.search(r"Max-Age=(\d+)", attrs).group(1))
    assert 0 < age <= 600
    assert "/app/" not in req.relay_state
    a = b.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == portal.url + "/app/"
    # the pending cookie is gone once used
    assert b.pending() == {}


def test_two_sign_ins_in_flight(portal):
    """Two tabs of one browser: each sign-in finishes with its target."""
    b = Browser(portal.url)
    _, req1 = start(portal, b, "/sso/login/acme?return=%2Fapp%2Fone")
    _, req2 = start(portal, b, "/sso/login/acme?return=%2Fapp%2Ftwo")
    assert len(b.pending()) == 2
    a2 = b.acs(portal.idp.response(req2), req2.relay_state)
    assert a2.status_code == 303, a2.text
    assert a2.headers["Location"] == portal.url + "/app/two"
    a1 = b.acs(portal.idp.response(req1), req1.relay_state)
    assert a1.status_code == 303, a1.text
    assert a1.headers["Location"] == portal.url + "/app/one"


def test_pending_cookies_are_bounded(portal):
    """Many sign-ins started in one browser keep a bounded number of
    pending cookies (the oldest go), and the newest still finishes."""
    b = Browser(portal.url)
    ret = urllib.parse.quote("/app/" + "x" * 1500, safe="")
    for i in range(12):
        _, req = start(portal, b, "/sso/login/acme?return=" + ret)
        assert len(b.pending()) <= 4
        assert len(b.cookie_header()) < 7000
    # the 6 KiB budget holds two of these 2.2 KiB cookies, the newest
    assert len(b.pending()) == 2
    assert any(n.endswith(req.relay_state) for n in b.pending())
    a = b.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303, a.text


def test_pending_cookies_at_most_four(portal):
    b = Browser(portal.url)
    relays = []
    for i in range(7):
        _, req = start(portal, b, "/sso/login/acme?return=%%2Fapp%%2F%d" % i)
        relays.append(req.relay_state)
    held = sorted(n[-32:] for n in b.pending())
    assert held == sorted(relays[-4:])       # the four newest


# ---- item 9: login CSRF ---------------------------------------------------------

def test_login_csrf_response_from_other_browser_refused(portal):
    """The attacker starts a sign-in in browser 1 and has the victim's
    browser 2 post the attacker's response: refused.  The same response
    in browser 1 is accepted."""
    portal.httpd.expect_log("BTSSO0210")
    attacker, victim = Browser(portal.url), Browser(portal.url)
    _, req = start(portal, attacker)
    b64 = portal.idp.response(req, email="bob@example.com")
    r = victim.acs(b64, req.relay_state)
    assert r.status_code == 403, r.text
    assert session_of(r) is None
    assert refusal_logged(portal, "other_browser")
    # a response with InResponseTo and no RelayState at all: refused too
    r = victim.acs(portal.idp.response(req, email="bob@example.com"))
    assert r.status_code == 403
    assert session_of(r) is None
    ok = attacker.acs(b64, req.relay_state)
    assert ok.status_code == 303, ok.text


def test_login_csrf_refused_with_idp_initiated_off(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path,
               btsso_conf="BTSSOAllowIdPInitiated Off\n").start()
    p.httpd.expect_log("BTSSO0210")
    attacker, victim = Browser(p.url), Browser(p.url)
    _, req = start(p, attacker)
    b64 = p.idp.response(req, email="bob@example.com")
    r = victim.acs(b64, req.relay_state)
    assert r.status_code == 403, r.text
    assert session_of(r) is None
    assert attacker.acs(b64, req.relay_state).status_code == 303


def test_idp_initiated_still_accepted_without_cookie(portal):
    b = Browser(portal.url)
    b64 = portal.idp.response(None, acs_url=portal.url + "/sso/acs",
                              sp_entity_id=portal.url + "/sso")
    r = b.acs(b64, "/app/landing")
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == portal.url + "/app/landing"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pending_key():
    """The pending-cookie key as every node holding the SP key derives it:
    HKDF-SHA256 (salt "mod_btsso") over the private key's DER."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    with open(os.path.join(SPKEYS, "sp-current.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    der = key.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    return HKDF(hashes.SHA256(), 32, b"mod_btsso",
                PENDING_KEY_LABEL).derive(der)


def forge(value, change):
    """Decode a genuine cookie value, change its fields, MAC it again."""
    version, payload, _mac = value.split(".")
    fields = unb64url(payload).decode().split("\n")
    names = ["relay", "request_id", "account", "return", "test", "expires",
             "sp"]
    rec = dict(zip(names, fields))
    rec.update(change)
    text = "%s.%s" % (version, b64url("\n".join(rec[n] for n in names)
                                      .encode()))
    mac = hmac.new(pending_key(), text.encode(), hashlib.sha256).digest()
    return "%s.%s" % (text, b64url(mac))


def flip_bit(value, index):
    version, payload, mac = value.split(".")
    raw = bytearray(unb64url(payload))
    raw[index] ^= 1
    return "%s.%s.%s" % (version, b64url(bytes(raw)), mac)


TAMPERS = {
    "bit_flipped": lambda v: flip_bit(v, 40),
    "other_account": lambda v: v.split(".")[0] + "." + b64url(
        unb64url(v.split(".")[1]).replace(b"\nacme\n", b"\nevil\n")) + "."
        + v.split(".")[2],
    "expired": lambda v: forge(v, {"expires": str(int(time.time()) - 5)}),
    "other_sp": lambda v: forge(v, {"sp": "0" * 32}),
    "truncated_mac": lambda v: v[:-4],
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampered_pending_cookie_refused(portal, case):
    portal.httpd.expect_log("BTSSO0210")
    b = Browser(portal.url)
    _, req = start(portal, b, "/sso/login/acme?return=%2Fapp%2F")
    (name, value), = b.pending().items()
    b.jar[name] = TAMPERS[case](value)
    assert b.jar[name] != value
    r = b.acs(portal.idp.response(req), req.relay_state)
    assert r.status_code == 403, r.text
    assert session_of(r) is None
    assert refusal_logged(portal, "pending_invalid")


def test_forged_cookie_with_the_key_is_accepted(portal):
    """Control for the cases above: the test derives the key the module
    uses, so a record re-MACed unchanged (here with another target) is
    accepted -- 'expired' and 'other_sp' are refused for what they say."""
    b = Browser(portal.url)
    _, req = start(portal, b, "/sso/login/acme?return=%2Fapp%2F")
    (name, value), = b.pending().items()
    b.jar[name] = forge(value, {"return": "/app/forged"})
    r = b.acs(portal.idp.response(req), req.relay_state)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == portal.url + "/app/forged"


def test_cookie_of_other_sign_in_refused(portal):
    """The cookie named by RelayState must hold that RelayState's record:
    another sign-in's cookie under its name is refused."""
    portal.httpd.expect_log("BTSSO0210")
    b = Browser(portal.url)
    _, req1 = start(portal, b)
    _, req2 = start(portal, b)
    (n1, v1), (n2, v2) = sorted(b.pending().items(),
                                key=lambda kv: kv[0].endswith(
                                    req2.relay_state))
    b.jar[n2] = v1
    r = b.acs(portal.idp.response(req2), req2.relay_state)
    assert r.status_code == 403, r.text
    assert refusal_logged(portal, "pending_invalid")


# ---- item 5: return targets ---------------------------------------------------

def raw_request(port, request_bytes):
    """Send raw octets, return (status, {header: [values]})."""
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(request_bytes)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers


def absorb_raw(browser, headers):
    for h in headers.get("set-cookie", []):
        name, _, rest = h.partition("=")
        browser.jar[name] = rest.split(";", 1)[0]


def test_absolute_form_request_line_lands_on_base_origin(portal):
    """GET http://evil.example/app/x matches <Location /app>; after sign-in
    the 303 stays on BTSSOBaseURL's origin."""
    b = Browser(portal.url)
    status, headers = raw_request(
        portal.httpd.port,
        b"GET http://evil.example/app/x?y=1 HTTP/1.1\r\n"
        b"Host: evil.example\r\nConnection: close\r\n\r\n")
    assert status == 302, headers
    absorb_raw(b, headers)
    req = portal.idp.parse_redirect(headers["location"][0])
    a = b.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == portal.url + "/app/x?y=1"


def test_absolute_form_to_discovery_keeps_a_local_return(make_httpd,
                                                        tmp_path):
    p = Portal(make_httpd, tmp_path, extra_conf=(
        "<Location /portal>\n    AuthType BTSSO\n    Require valid-user\n"
        "</Location>\n")).start()
    status, headers = raw_request(
        p.httpd.port,
        b"GET http://evil.example/portal/x HTTP/1.1\r\n"
        b"Host: evil.example\r\nConnection: close\r\n\r\n")
    assert status == 302
    loc = headers["location"][0]
    assert loc.startswith(p.url + "/sso/login?return=")
    ret = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["return"]
    assert ret == ["/portal/x"]


def test_return_too_long_lands_on_root(portal):
    b = Browser(portal.url)
    long_ret = "/app/" + "a" * 3000
    r = b.get("/sso/login/acme?return=" + urllib.parse.quote(long_ret,
                                                              safe=""))
    assert r.status_code == 302, r.text
    req = portal.idp.parse_redirect(r.headers["Location"])
    a = b.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == portal.url + "/"


def test_protected_url_too_long_lands_on_root(portal):
    b = Browser(portal.url)
    r = b.get("/app/?q=" + "a" * 3000)
    assert r.status_code == 302, r.text
    req = portal.idp.parse_redirect(r.headers["Location"])
    a = b.acs(portal.idp.response(req), req.relay_state)
    assert a.status_code == 303, a.text
    assert a.headers["Location"] == portal.url + "/"


# ---- item 7: one SP's session is not another's -------------------------------

def two_vhosts(make_httpd, tmp_path):
    port2 = btsso_httpd.free_port()
    p = Portal(make_httpd, tmp_path, extra_conf=(
        "Listen 127.0.0.1:{port}\n"
        "<VirtualHost 127.0.0.1:{port}>\n"
        "    BTSSOBaseURL http://127.0.0.1:{port}\n"
        "</VirtualHost>\n").format(port=port2))
    # mod_dbd's complaint when a virtual host inherits the main server's
    # prepared statements (not ours to judge)
    p.httpd.expect_log("AH02653")
    p.start()
    return p, "http://127.0.0.1:%d" % port2


def test_session_of_one_vhost_not_honoured_by_another(make_httpd, tmp_path):
    p, other = two_vhosts(make_httpd, tmp_path)
    sid = session_of(p.login())
    assert sid is not None
    assert p.get("/sso/session",
                 cookies={"btsso_session": sid}).status_code == 200
    r = requests.get(other + "/sso/session", cookies={"btsso_session": sid},
                     timeout=10)
    assert r.status_code == 401, r.text


def test_pending_of_one_vhost_not_honoured_by_another(make_httpd, tmp_path):
    """Both virtual hosts hold the same SP key (so the same cookie key):
    the SP identity in the record is what keeps B's sign-in out of A."""
    p, other = two_vhosts(make_httpd, tmp_path)
    p.httpd.expect_log("BTSSO0210")
    b = Browser(other)
    r = b.get("/sso/login/acme")
    assert r.status_code == 302, r.text
    # B's AuthnRequest, answered as if for A (the IdP knows only A)
    xml, q = decode_redirect_request(r.headers["Location"])
    req = types.SimpleNamespace(
        message=types.SimpleNamespace(id=re.search(r' ID="([^"]+)"',
                                                   xml).group(1)),
        relay_state=q["RelayState"][0])
    b64 = p.idp.response(req, acs_url=p.url + "/sso/acs",
                         sp_entity_id=p.url + "/sso")
    b.base = p.url          # same host, other port: the browser sends it
    a = b.acs(b64, req.relay_state)
    assert a.status_code == 403, a.text
    assert session_of(a) is None


def test_request_answered_once_even_with_a_kept_cookie(portal):
    """A browser that kept a copy of the pending cookie cannot finish the
    same AuthnRequest twice (its ID is burnt once the first response
    verified), even with a new assertion."""
    portal.httpd.expect_log("BTSSO0210")
    b = Browser(portal.url)
    _, req = start(portal, b)
    kept = dict(b.pending())
    assert b.acs(portal.idp.response(req), req.relay_state).status_code == 303
    b.jar.update(kept)
    r = b.acs(portal.idp.response(req), req.relay_state)
    assert r.status_code == 403, r.text
    assert session_of(r) is None
    assert refusal_logged(portal, "replay")
