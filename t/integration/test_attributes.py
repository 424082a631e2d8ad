"""Attributes kept with the session (issue 12 item 1), through a real httpd
with an IdP we did not write (pysaml2):

- every attribute of the assertion is exported to a CGI script as
  BTSSO_ATTR_<NAME>, _N and _<i> (NAME: the FriendlyName, else the Name,
  upper-cased, every other character '_'), several values, non-ASCII
  values as UTF-8 data; two attributes mapping to one NAME: the first keeps
  it (BTSSO0341 logged at the login);
- with BTSSOSetHeaders On, X-BTSSO-Attributes is base64url of the JSON
  object {Name: [values]} (decoded and compared here); a client's own
  X-BTSSO-Attributes / X_BTSSO_ATTRIBUTES never reaches the CGI script or a
  proxied back end;
- the bounds (64 attributes, 100 values each, 32 KiB in all): the rest is
  dropped and logged (BTSSO0340), the login still works;
- `Require btsso-attr NAME VALUE...` and `Require btsso-account ACCOUNT...`
  alone and inside <RequireAll>/<RequireAny>: allowed, 403, and without a
  session the browser is sent to sign in (AUTHZ_DENIED_NO_USER);
- the session keeps its attributes across requests, and when it is written
  back (BTSSOUserRecheck 0 writes it on every request), in shmcb and in
  memcached; an old JSON record left in memcached after the upgrade, or a
  record altered there, is no session.
"""
import base64
import http.client
import http.server
import json
import os
import socket
import threading
import time

import pytest
import requests

import cachesrv
from portal import Portal

CGI_SCRIPT = r"""#!/usr/bin/python3
import base64, json, os
print("Content-Type: application/json")
print()
print(json.dumps({k.decode(): base64.b64encode(v).decode()
                  for k, v in os.environb.items()
                  if b"BTSSO" in k.upper()}))
"""

EXTRA = """
ScriptSock {dir}/cgid.sock
# a careless rule that lets a request header name BTSSO_ATTR_* variables
SetEnvIf X-Forge "(.+)" BTSSO_ATTR_GROUPS=$1 BTSSO_ATTR_ADMIN=$1 btsso_attr_x=$1 BTSSO_EMAIL=$1 BTSSO_ROLE=$1
<Location /app/cgi>
    SetHandler cgi-script
    Options +ExecCGI
</Location>
<Location /app/hcgi>
    BTSSOSetHeaders On
    SetHandler cgi-script
    Options +ExecCGI
</Location>
<Location /app/proxy>
    BTSSOSetHeaders On
    ProxyPass http://127.0.0.1:{backend}/app
</Location>
<Location /app/z>
    AuthzSendForbiddenOnFailure On
</Location>
<Location /app/z/sales>
    Require btsso-attr groups Sales
</Location>
<Location /app/z401>
    Require btsso-attr groups Finance
</Location>
<Location /app/z/sales-support>
    Require btsso-attr groups Sales Support
</Location>
<Location /app/z/finance>
    Require btsso-attr groups Finance "Finance Team"
</Location>
<Location /app/z/friendly>
    Require btsso-attr eduPersonAffiliation staff
</Location>
<Location /app/z/byname>
    Require btsso-attr urn:oid:1.3.6.1.4.1.5923.1.1.1.1 staff
</Location>
<Location /app/z/spaced>
    Require btsso-attr groups "Finance Team"
</Location>
<Location /app/z/acme>
    Require btsso-account other acme
</Location>
<Location /app/z/other>
    Require btsso-account other
</Location>
<Location /app/z/all>
    <RequireAll>
        Require btsso-account acme
        Require btsso-attr groups Sales
    </RequireAll>
</Location>
<Location /app/z/all-deny>
    <RequireAll>
        Require btsso-account acme
        Require btsso-attr groups Finance
    </RequireAll>
</Location>
<Location /app/z/any>
    <RequireAny>
        Require btsso-attr groups Finance
        Require btsso-account acme
    </RequireAny>
</Location>
<Location /app/z/any-deny>
    <RequireAny>
        Require btsso-attr groups Finance
        Require btsso-account other
    </RequireAny>
</Location>
<Location /app/z/not>
    <RequireAll>
        Require valid-user
        Require not btsso-attr groups Support
    </RequireAll>
</Location>
"""

MODULES = [("cgid_module", "mod_cgid.so"),
           ("proxy_module", "mod_proxy.so"),
           ("proxy_http_module", "mod_proxy_http.so")]

MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY = "urn:oid:2.16.840.1.113730.3.1.241"
AFFIL = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"
MS_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"

IDENTITY = {
    "mail": ["ann@example.com"],                    # FriendlyName mail
    "displayName": ["J\u00fcrgen M\u00fcller \u2013 \u65e5\u672c"],
    "eduPersonAffiliation": ["staff", "member"],    # FriendlyName, 2 values
    "groups": ["Sales", "Support", "a \"quoted\" & <b>"],  # Name only
    MS_GROUPS: ["5f1c"],
    "Abteilung-\u00e4": ["Vertrieb"],
}


class Backend:
    """A proxied back end on 127.0.0.1 that records the headers of every
    request it is sent (as mod_proxy_http sent them)."""

    def __init__(self):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(list(self.headers.items()))
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def make_portal(make_httpd, tmp_path, btsso_conf="", modules=()):
    backend = Backend()
    p = Portal(make_httpd, tmp_path, btsso_conf=btsso_conf,
               modules=MODULES + list(modules))
    h = p.httpd
    h.extra_conf += EXTRA.format(dir=h.dir, backend=backend.port)
    for d in ("cgi", "hcgi"):
        cgi_dir = os.path.join(h.docroot, "app", d)
        os.makedirs(cgi_dir, exist_ok=True)
        script = os.path.join(cgi_dir, "env.cgi")
        with open(script, "w") as f:
            f.write(CGI_SCRIPT)
        os.chmod(script, 0o755)
    zdir = os.path.join(h.docroot, "app", "z")
    for name in ("sales", "sales-support", "finance", "friendly", "byname",
                 "spaced", "acme", "other", "all", "all-deny", "any",
                 "any-deny", "not"):
        os.makedirs(os.path.join(zdir, name), exist_ok=True)
        with open(os.path.join(zdir, name, "index.html"), "w") as f:
            f.write("<p>%s</p>\n" % name)
    os.makedirs(os.path.join(h.docroot, "app", "z401"), exist_ok=True)
    with open(os.path.join(h.docroot, "app", "z401", "index.html"), "w") as f:
        f.write("<p>z401</p>\n")
    p.backend = backend
    return p


@pytest.fixture
def portal(make_httpd, tmp_path):
    p = make_portal(make_httpd, tmp_path).start()
    yield p
    p.backend.stop()


def login(p, identity=IDENTITY):
    r = p.login(attributes=identity)
    assert r.status_code == 303, (r.status_code, r.text[-500:])
    return {"btsso_session": r.cookies["btsso_session"]}


def cgi_env(p, cookies, path="/app/cgi/env.cgi", headers=None):
    r = p.get(path, cookies=cookies, headers=headers or {})
    assert r.status_code == 200, (r.status_code, r.text[-500:])
    return {k: base64.b64decode(v).decode("utf-8")
            for k, v in r.json().items()}


def attrs_header(value):
    assert "=" not in value and "+" not in value and "/" not in value
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return json.loads(raw.decode("utf-8"))


# ---- the environment ---------------------------------------------------------

def test_env_names_values_counts(portal):
    env = cgi_env(portal, login(portal))
    assert env["BTSSO_ACCOUNT"] == "acme"
    assert env["BTSSO_ATTR_MAIL"] == "ann@example.com"
    assert env["BTSSO_ATTR_MAIL_N"] == "1"
    assert env["BTSSO_ATTR_MAIL_1"] == "ann@example.com"
    # FriendlyName first, several values in document order
    assert env["BTSSO_ATTR_EDUPERSONAFFILIATION"] == "staff"
    assert env["BTSSO_ATTR_EDUPERSONAFFILIATION_N"] == "2"
    assert env["BTSSO_ATTR_EDUPERSONAFFILIATION_1"] == "staff"
    assert env["BTSSO_ATTR_EDUPERSONAFFILIATION_2"] == "member"
    assert "BTSSO_ATTR_EDUPERSONAFFILIATION_3" not in env
    # no FriendlyName: the Name; values are data, quotes and all
    assert env["BTSSO_ATTR_GROUPS_N"] == "3"
    assert env["BTSSO_ATTR_GROUPS_3"] == 'a "quoted" & <b>'
    assert env["BTSSO_ATTR_HTTP___SCHEMAS_MICROSOFT_COM_WS_2008_06_"
               "IDENTITY_CLAIMS_GROUPS"] == "5f1c"
    # non-ASCII: values as UTF-8; one '_' per character of the name
    assert env["BTSSO_ATTR_DISPLAYNAME"] == IDENTITY["displayName"][0]
    assert env["BTSSO_ATTR_ABTEILUNG__"] == "Vertrieb"
    # the session's own variables are untouched, nothing else is exported
    names = {k for k in env if k.startswith("BTSSO_ATTR_")}
    bases = {"MAIL", "EDUPERSONAFFILIATION", "GROUPS", "DISPLAYNAME",
             "ABTEILUNG__", "HTTP___SCHEMAS_MICROSOFT_COM_WS_2008_06_"
             "IDENTITY_CLAIMS_GROUPS"}
    for n in names:
        base = n[len("BTSSO_ATTR_"):]
        stem = base.rsplit("_", 1)[0]
        assert base in bases or stem in bases, n
    # without BTSSOSetHeaders, no header
    assert "HTTP_X_BTSSO_ATTRIBUTES" not in env


def test_same_env_name_first_keeps_it(portal):
    portal.httpd.expect_log("BTSSO0341")
    ident = {"mail": ["ann@example.com"], "e-mail": ["first"],
             "e_mail": ["second"], "E.MAIL": ["third"],
             "dept": ["x", "y"], "dept_N": ["7"]}
    cookies = login(portal, ident)
    env = cgi_env(portal, cookies)
    assert env["BTSSO_ATTR_E_MAIL"] == "first"
    assert env["BTSSO_ATTR_E_MAIL_N"] == "1"
    # an attribute whose variables would overwrite another's is not set
    assert env["BTSSO_ATTR_DEPT_N"] == "2"
    assert "BTSSO_ATTR_DEPT_N_N" not in env
    log = portal.httpd.log_text()
    assert log.count("BTSSO0341") == 3, log[-3000:]
    # logged at the login, not on every request
    cgi_env(portal, cookies)
    assert portal.httpd.log_text().count("BTSSO0341") == 3


def test_header_is_base64url_json(portal):
    cookies = login(portal)
    env = cgi_env(portal, cookies, "/app/hcgi/env.cgi",
                  headers={"X-BTSSO-Attributes": "eyJmb3JnZWQiOlsieCJdfQ"})
    got = attrs_header(env["HTTP_X_BTSSO_ATTRIBUTES"])
    assert got == {
        MAIL: ["ann@example.com"],
        DISPLAY: IDENTITY["displayName"],
        AFFIL: ["staff", "member"],
        "groups": IDENTITY["groups"],
        MS_GROUPS: ["5f1c"],
        "Abteilung-\u00e4": ["Vertrieb"],
    }
    assert env["BTSSO_ATTR_GROUPS_2"] == "Support"


def test_spoofed_attribute_headers_stripped(portal):
    forged = base64.urlsafe_b64encode(
        b'{"groups":["Finance"]}').decode().rstrip("=")
    spoof = {"X-BTSSO-Attributes": forged, "X_BTSSO_ATTRIBUTES": forged,
             "x-btsso_attributes": forged, "X-BTSSO-ATTR-GROUPS": "Finance"}
    cookies = login(portal, {"mail": ["ann@example.com"],
                             "groups": ["Sales"]})
    # without BTSSOSetHeaders: none at all reaches the script
    env = cgi_env(portal, cookies, headers=spoof)
    assert not [k for k in env if k.startswith("HTTP_")], env
    # with it: ours only
    env = cgi_env(portal, cookies, "/app/hcgi/env.cgi", headers=spoof)
    assert attrs_header(env["HTTP_X_BTSSO_ATTRIBUTES"]) == {
        MAIL: ["ann@example.com"], "groups": ["Sales"]}
    # through a proxy, where '_' spellings are passed on as sent
    portal.backend.seen.clear()
    s = socket.create_connection(("127.0.0.1", portal.httpd.port), 10)
    req = ("GET /app/proxy/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Cookie: btsso_session=%s\r\n" % cookies["btsso_session"]
           + "".join("%s: %s\r\n" % kv for kv in spoof.items())
           + "Connection: close\r\n\r\n")
    s.sendall(req.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    (headers,) = portal.backend.seen
    attr_headers = [(k, v) for k, v in headers
                    if "btsso" in k.lower() and "attr" in k.lower()]
    assert len(attr_headers) == 1, headers
    assert attr_headers[0][0] == "X-BTSSO-Attributes"
    assert attrs_header(attr_headers[0][1])["groups"] == ["Sales"]
    # and a request without a session cannot smuggle one in either
    r = portal.get("/app/cgi/env.cgi", headers=spoof)
    assert r.status_code == 302


def test_spoofed_attribute_variables_removed(portal):
    """A BTSSO_* variable set before the module exports the session's
    (here by a SetEnvIf on a request header) does not reach the script:
    the session's value replaces it, and one the session lacks is gone."""
    cookies = login(portal, {"mail": ["ann@example.com"],
                             "groups": ["Sales"]})
    env = cgi_env(portal, cookies, headers={"X-Forge": "Finance"})
    assert env["BTSSO_ATTR_GROUPS"] == "Sales"
    assert env["BTSSO_ATTR_GROUPS_N"] == "1"
    assert "BTSSO_ATTR_ADMIN" not in env
    assert "btsso_attr_x" not in env
    assert env["BTSSO_ATTR_MAIL"] == "ann@example.com"
    assert env["BTSSO_EMAIL"] == "ann@example.com"
    assert "BTSSO_ROLE" not in env


# ---- bounds -----------------------------------------------------------------

def test_bounds_attributes(portal):
    portal.httpd.expect_log("BTSSO0340")
    ident = {"mail": ["ann@example.com"]}
    for i in range(1, 65):            # with mail: 65 attributes
        ident["a%02d" % i] = ["v%d" % i]
    env = cgi_env(portal, login(portal, ident))
    assert env["BTSSO_ATTR_A63"] == "v63"
    assert "BTSSO_ATTR_A64" not in env
    assert env["BTSSO_ATTR_MAIL"] == "ann@example.com"
    assert "BTSSO0340" in portal.httpd.log_text()


def test_bounds_values(portal):
    portal.httpd.expect_log("BTSSO0340")
    ident = {"mail": ["ann@example.com"],
             "groups": ["g%03d" % i for i in range(1, 102)],
             "after": ["kept"]}
    env = cgi_env(portal, login(portal, ident))
    assert env["BTSSO_ATTR_GROUPS_N"] == "100"
    assert env["BTSSO_ATTR_GROUPS_100"] == "g100"
    assert "BTSSO_ATTR_GROUPS_101" not in env
    assert env["BTSSO_ATTR_AFTER"] == "kept"
    assert "BTSSO0340" in portal.httpd.log_text()


def test_bounds_total_size(portal):
    portal.httpd.expect_log("BTSSO0340")
    ident = {"mail": ["ann@example.com"]}
    for i in range(1, 6):             # 5 x 8000 octets > 32 KiB
        ident["big%d" % i] = [("%d" % i) * 8000]
    cookies = login(portal, ident)
    env = cgi_env(portal, cookies)
    assert env["BTSSO_ATTR_BIG4"] == "4" * 8000
    assert "BTSSO_ATTR_BIG5" not in env
    assert "BTSSO0340" in portal.httpd.log_text()
    env = cgi_env(portal, cookies, "/app/hcgi/env.cgi")
    got = attrs_header(env["HTTP_X_BTSSO_ATTRIBUTES"])
    assert got["big4"] == ["4" * 8000] and "big5" not in got
    assert portal.get("/sso/session", cookies=cookies).status_code == 200


# ---- Require btsso-attr / btsso-account --------------------------------------

AUTHZ = [("sales", 200), ("sales-support", 200), ("finance", 403),
         ("friendly", 200), ("byname", 200), ("spaced", 403),
         ("acme", 200), ("other", 403), ("all", 200), ("all-deny", 403),
         ("any", 200), ("any-deny", 403), ("not", 403)]


def test_require_providers(portal):
    # httpd logs every refusal of an authenticated user
    portal.httpd.expect_log("AH01631")
    cookies = login(portal)
    # httpd's own default for a refusal after authentication is 401;
    # AuthzSendForbiddenOnFailure On (as under /app/z) makes it 403
    r = portal.get("/app/z401/", cookies=cookies)
    assert r.status_code == 401, r.status_code
    assert "WWW-Authenticate" not in r.headers
    for name, status in AUTHZ:
        r = portal.get("/app/z/%s/" % name, cookies=cookies)
        assert r.status_code == status, (name, r.status_code)
    # one value of several matches; values match exactly (case, spaces)
    cookies = login(portal, {"mail": ["ann@example.com"],
                             "groups": ["Support", "sales", "Finance Team"]})
    for name, status in [("sales", 403), ("sales-support", 200),
                         ("finance", 200), ("spaced", 200), ("not", 403),
                         ("all", 403), ("friendly", 403), ("any", 200)]:
        r = portal.get("/app/z/%s/" % name, cookies=cookies)
        assert r.status_code == status, (name, r.status_code)
    # no groups at all
    cookies = login(portal, {"mail": ["ann@example.com"]})
    assert portal.get("/app/z/not/", cookies=cookies).status_code == 200
    assert portal.get("/app/z/sales/", cookies=cookies).status_code == 403


def test_require_without_session_asks_to_sign_in(portal):
    # AUTHZ_DENIED_NO_USER: httpd runs authentication, which sends a
    # browser to the account's IdP and answers other methods 401
    for name in ("sales", "acme", "all", "any-deny"):
        r = portal.get("/app/z/%s/" % name)
        assert r.status_code == 302, (name, r.status_code)
        assert r.headers["Location"].startswith(portal.idp.sso_url), name
        r = portal.post("/app/z/%s/" % name, data={"a": "b"})
        assert r.status_code == 401, (name, r.status_code)


def test_require_keeps_sp_endpoints_reachable(make_httpd, tmp_path):
    """A site that requires a group everywhere must still let people sign
    in: the module's own endpoints under it are not refused."""
    p = Portal(make_httpd, tmp_path, extra_conf="""
<Location />
    AuthType BTSSO
    BTSSOAccount acme
    Require btsso-attr groups Sales
    AuthzSendForbiddenOnFailure On
</Location>
""").start()
    p.httpd.expect_log("AH01631")
    r = p.login(attributes={"mail": ["ann@example.com"], "groups": ["Sales"]})
    assert r.status_code == 303, r.text
    assert p.get("/", cookies=r.cookies).status_code == 200
    r = p.login(attributes={"mail": ["ann@example.com"], "groups": ["HR"]})
    assert r.status_code == 303, r.text
    assert p.get("/", cookies=r.cookies).status_code == 403


@pytest.mark.parametrize("line,word", [
    ("Require btsso-attr groups", "btsso-attr needs"),
    ("Require btsso-attr", "btsso-attr needs"),
    ("Require btsso-account", "btsso-account needs"),
    ("Require btsso-account acme bad/account",
     "'bad/account' is not an account id"),
])
def test_require_bad_lines_fail_configtest(make_httpd, line, word):
    h = make_httpd(extra_conf="<Location /x>\n AuthType BTSSO\n %s\n"
                   "</Location>\n" % line)
    rc, out = h.configtest()
    assert rc != 0, out
    assert word in out, out


# ---- the session record -------------------------------------------------------

def test_session_keeps_attributes_when_written_back(make_httpd, tmp_path):
    """BTSSOUserRecheck 0: every request re-checks the user and writes the
    session back; the attributes survive every rewrite."""
    p = make_portal(make_httpd, tmp_path,
                    btsso_conf="BTSSOUserRecheck 0\n").start()
    try:
        cookies = login(p)
        for _ in range(3):
            env = cgi_env(p, cookies)
            assert env["BTSSO_ATTR_GROUPS_N"] == "3"
            assert env["BTSSO_ATTR_DISPLAYNAME"] == \
                IDENTITY["displayName"][0]
        assert p.get("/app/z/sales/", cookies=cookies).status_code == 200
    finally:
        p.backend.stop()


@pytest.fixture
def memcached():
    with cachesrv.memcached_server() as port:
        yield port


def test_memcached_session_record(make_httpd, tmp_path, memcached):
    p = make_portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOSessionCache memcache:127.0.0.1:%d\n" % memcached),
        modules=[("socache_memcache_module",
                  "mod_socache_memcache.so")]).start()
    try:
        cookies = login(p)
        for _ in range(2):
            env = cgi_env(p, cookies)
            assert env["BTSSO_ATTR_EDUPERSONAFFILIATION_2"] == "member"
        assert p.get("/app/z/all/", cookies=cookies).status_code == 200
        # find the session record through the NameID index (session.c):
        # the octet 0x01, then per session 8 octets of expiry, the 32 of
        # its cache key, 2 of SessionIndex length and the SessionIndex
        mc = cachesrv.Memcache(memcached)
        for _ in range(50):     # the LRU crawler lists what it has seen
            index = [v for v in (mc.get(k) for k in mc.keys())
                     if v and v[:1] == b"\x01"
                     and len(v) == 43 + int.from_bytes(v[41:43], "big")]
            if index:
                break
            time.sleep(0.1)
        assert len(index) == 1, index
        key = "btsso:" + index[0][9:41].hex()
        record = mc.get(key)
        assert record is not None and b"Sales" in record, record
        assert not record.startswith(b"{"), record[:80]   # not JSON
        # an altered record (one length byte off) is no session, and
        # nothing crashes
        for i in (3, len(record) // 2, len(record) - 1):
            bad = bytearray(record)
            bad[i] ^= 0x01 if i == len(record) - 1 else 0x40
            mc.set(key, bytes(bad))
            r = p.get("/sso/session", cookies=cookies)
            if r.status_code == 200:
                # a flipped byte inside a value is still a record; never
                # another person's
                assert r.json()["account"] == "acme"
        mc.set(key, record + b"x")          # trailing garbage
        assert p.get("/sso/session", cookies=cookies).status_code == 401
        # an old JSON record (made by the module before the upgrade) is
        # treated as no session: one new sign-in
        old = json.dumps({"sp": "x", "account": "acme",
                          "email": "ann@example.com",
                          "name_id": "ann@example.com",
                          "idp": p.idp.entity_id, "created": 1,
                          "expires": 4102444800, "last": int(time.time()),
                          "ep": 1, "rs": 0, "uc": int(time.time())}).encode()
        mc.set(key, old)
        assert p.get("/sso/session", cookies=cookies).status_code == 401
        r = p.get("/app/cgi/env.cgi", cookies=cookies)
        assert r.status_code == 302
        mc.close()
    finally:
        p.backend.stop()


def session_records(mc, emails):
    """{email: (cache key, record)} of the sessions in memcached, found
    through their NameID indexes (see test_memcached_session_record)."""
    found = {}
    for _ in range(50):     # the LRU crawler lists what it has seen
        for k in mc.keys():
            v = mc.get(k)
            if v and v[:1] == b"\x01" \
                    and len(v) == 43 + int.from_bytes(v[41:43], "big"):
                key = "btsso:" + v[9:41].hex()
                rec = mc.get(key)
                for e in emails:
                    if rec is not None and e.encode() in rec:
                        found[e] = (key, rec)
        if len(found) == len(emails):
            return found
        time.sleep(0.1)
    raise AssertionError("session records not found: %r" % found)


def test_keepalive_connection_reads_its_session_each_request(
        make_httpd, tmp_path, memcached):
    """A keep-alive connection keeps the session it decoded last (and the
    variables it exported) only for as long as the cache gives the very
    same record: another cookie on the connection is another session, a
    record rewritten in the cache is read again, one removed is no
    session, on the next request of the same connection."""
    p = make_portal(make_httpd, tmp_path, btsso_conf=(
        "BTSSOSessionCache memcache:127.0.0.1:%d\n" % memcached),
        modules=[("socache_memcache_module",
                  "mod_socache_memcache.so")]).start()
    bob = dict(IDENTITY, mail=["bob@example.com"], groups=["Finance"])
    conn = http.client.HTTPConnection("127.0.0.1", p.httpd.port, timeout=20)
    mc = cachesrv.Memcache(memcached)
    try:
        ann_c = login(p)["btsso_session"]
        r = p.login(email="bob@example.com", attributes=bob)
        assert r.status_code == 303, r.text[-500:]
        bob_c = r.cookies["btsso_session"]

        socks = []

        def env(cookie):
            conn.request("GET", "/app/cgi/env.cgi", headers={
                "Cookie": "btsso_session=%s" % cookie} if cookie else {})
            r = conn.getresponse()
            body = r.read()
            # one connection for all (http.client would open another)
            socks.append(conn.sock)
            assert conn.sock is not None and conn.sock is socks[0]
            if r.status != 200:
                return r.status
            return {k: base64.b64decode(v).decode("utf-8")
                    for k, v in json.loads(body).items()}

        for _ in range(2):
            e = env(ann_c)
            assert e["BTSSO_EMAIL"] == "ann@example.com"
            assert e["BTSSO_ATTR_GROUPS_1"] == "Sales"
        e = env(bob_c)
        assert e["BTSSO_EMAIL"] == "bob@example.com"
        assert e["BTSSO_ATTR_GROUPS_N"] == "1"
        assert e["BTSSO_ATTR_GROUPS_1"] == "Finance"
        assert env(None) == 302
        assert env(ann_c)["BTSSO_ATTR_GROUPS_1"] == "Sales"

        recs = session_records(mc, ["ann@example.com", "bob@example.com"])
        ann_key, ann_rec = recs["ann@example.com"]
        # the record rewritten (same length, one value changed): read anew
        mc.set(ann_key, ann_rec.replace(b"Sales", b"Sabes"))
        e = env(ann_c)
        assert e["BTSSO_EMAIL"] == "ann@example.com"
        assert e["BTSSO_ATTR_GROUPS_1"] == "Sabes"
        # bob's record under ann's key: bob's session, not ann's kept one
        mc.set(ann_key, recs["bob@example.com"][1])
        e = env(ann_c)
        assert e["BTSSO_EMAIL"] == "bob@example.com"
        assert "BTSSO_ATTR_GROUPS_2" not in e
        # the record gone (logged out on another node): no session now
        mc.set(ann_key, ann_rec)
        assert env(ann_c)["BTSSO_ATTR_GROUPS_1"] == "Sales"
        mc.delete(ann_key)
        assert env(ann_c) == 302
        assert env(bob_c)["BTSSO_EMAIL"] == "bob@example.com"
    finally:
        conn.close()
        mc.close()
        p.backend.stop()
