"""Injection through what the IdP asserts, and the glue that exports it
(audit issue 8, items 1, 10 and 11), mounted through a real httpd:

- CR/LF (any control character) in a NameID, an attribute value, an Issuer
  or a metadata entityID: refused at the ACS and at metadata import, and
  never exported into the environment or the request headers that a CGI
  script or a proxied backend sees (header injection, request smuggling on
  the keep-alive backend connection);
- client-sent X-BTSSO-* headers in any spelling ('-' or '_', any case)
  never reach a CGI script or a proxied backend;
- weak IdP keys (RSA-1024) refused at upload and never used to verify;
- an email with a non-ASCII character that SQL lower() folds onto ASCII
  (U+212A KELVIN SIGN -> 'k') does not log in as the ASCII user, on SQLite
  and on PostgreSQL;
- an Issuer whose Format is not ...:nameid-format:entity is refused.

The backend is a raw socket server in this process that records the exact
bytes mod_proxy_http sends it; the CGI script prints its environment.
"""
import datetime
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading

import pytest
import requests

import btsso_httpd
import samlgen
from adminlib import Client, write_htpasswd
from portal import Portal

TOP = btsso_httpd.TOP
PGTMP = os.path.join(TOP, "t", "lib", "pgtmp.sh")
ENTITY_FMT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

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

CGI_SCRIPT = """#!/usr/bin/python3
import json, os
print("Content-Type: application/json")
print()
print(json.dumps(dict(os.environ)))
"""

EXTRA_CONF = """
<Location /app/cgi>
    BTSSOSetHeaders On
    SetHandler cgi-script
    Options +ExecCGI
</Location>
<Location /app/proxy>
    BTSSOSetHeaders On
    ProxyPass http://127.0.0.1:{backend}/app
</Location>
<Location /open/proxy>
    ProxyPass http://127.0.0.1:{backend}/open
</Location>
<Location /admin/sso>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
    SetHandler btsso-admin
</Location>
ScriptSock {dir}/cgid.sock
"""

MODULES = [("proxy_module", "mod_proxy.so"),
           ("proxy_http_module", "mod_proxy_http.so"),
           ("cgid_module", "mod_cgid.so")]


# ---- a backend that records the raw bytes it is sent ------------------------

class RawBackend:
    """HTTP/1.1 on 127.0.0.1: answers every request 200 and keeps, per
    connection, every byte received (whatever follows the first request on
    the connection too: a smuggled second request shows there)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        data = b""
        conn.settimeout(5)
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            # whatever else arrives right behind it
            conn.settimeout(0.3)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
            with self.lock:
                self.received.append(data)
            body = b"backend ok\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
        except OSError:
            pass
        finally:
            conn.close()

    def take(self):
        with self.lock:
            out, self.received = self.received, []
        return out

    def stop(self):
        self.stopping = True
        self.sock.close()


def request_headers(raw):
    """(request line, [(name, value)]) of the first request in raw bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    out = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out.append((name, value.strip()))
    return lines[0], out


# ---- the site ----------------------------------------------------------------

def now():
    return datetime.datetime.now(datetime.timezone.utc)


def cert_body(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


class Site:
    def __init__(self, make_httpd, tmp_path, dbdriver="sqlite3",
                 dbdparams=None):
        self.backend = RawBackend()
        kw = {}
        if dbdriver != "sqlite3":
            kw = {"dbdriver": dbdriver, "dbdparams": dbdparams}
        # the Portal's httpd, with a CGI script, a proxy and the admin API
        self.p = Portal(make_httpd, tmp_path, modules=MODULES, **kw)
        h = self.p.httpd
        self.htpasswd = os.path.join(h.dir, "htpasswd")
        h.extra_conf += EXTRA_CONF.format(backend=self.backend.port,
                                          htpasswd=self.htpasswd, dir=h.dir)
        cgi_dir = os.path.join(h.docroot, "app", "cgi")
        os.makedirs(cgi_dir, exist_ok=True)
        script = os.path.join(cgi_dir, "env.cgi")
        with open(script, "w") as f:
            f.write(CGI_SCRIPT)
        os.chmod(script, 0o755)
        write_htpasswd(self.htpasswd, ["ann@example.com"])

    @property
    def url(self):
        return self.p.url

    @property
    def httpd(self):
        return self.p.httpd

    def ctl(self, *args, **kw):
        return self.p.ctl(*args, **kw)

    def start(self, users=(("100", "ann@example.com"),
                           ("101", "kate@example.com"))):
        h = self.httpd
        h.write_config()
        self.ctl("init")
        self.ctl("account", "add", "acme")
        self.ctl("account", "add", "victim")
        for ext, email in users:
            self.ctl("user", "add", "acme", ext, email, "--admin")
        self.ctl("user", "add", "victim", "900", "admin@victim.example",
                 "--admin")
        h.start()
        md = os.path.join(self.p.tmp, "samlgen-idp.xml")
        with open(md, "w") as f:
            f.write(IDP_MD.format(entity=samlgen.IDP_ENTITY_ID,
                                  cert=cert_body(samlgen.DEFAULT_CERT)))
        h.fix_perms()
        self.ctl("idp", "import", "acme", md)
        self.ctl("attr", "set", "acme", "mail")
        self.ctl("enable", "acme")
        h.expect_log("BTSSO0210")
        return self

    def acs(self, xml):
        return self.p.acs(samlgen.to_b64(xml))

    def login(self, **kw):
        kw.setdefault("attributes", {"mail": ["ann@example.com"]})
        return self.acs(samlgen.build_response(now=now(), **kw))

    def admin(self):
        return Client(self, "ann@example.com", "acme")

    def raw_get(self, path, headers=(), cookie=None):
        """GET with exactly these header lines (names spelled as given)."""
        c = http.client.HTTPConnection("127.0.0.1", self.httpd.port,
                                       timeout=20)
        c.putrequest("GET", path)
        for name, value in headers:
            c.putheader(name, value)
        if cookie:
            c.putheader("Cookie", cookie)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def stop(self):
        self.backend.stop()


@pytest.fixture
def site(make_httpd, tmp_path, monkeypatch):
    s = Site(make_httpd, tmp_path)
    monkeypatch.setattr(samlgen, "SP_ENTITY_ID", s.url + "/sso")
    monkeypatch.setattr(samlgen, "ACS_URL", s.url + "/sso/acs")
    s.start()
    yield s
    s.stop()


def session_cookie(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0]
    return None


def assert_refused(site, r, code, status=403):
    assert r.status_code == status, (r.status_code, r.text[-400:])
    assert session_cookie(r) is None
    assert (": %s: " % code) in site.httpd.log_text(), \
        site.httpd.log_text()[-2000:]


def has_control(s):
    return any(ord(c) < 0x20 or ord(c) == 0x7f for c in s)


def check_exports(site, cookie):
    """With whatever session `cookie` names, the CGI environment and the
    backend's request carry no control character in any BTSSO value, at
    most one of each X-BTSSO-* header, none naming another account, and
    no second (smuggled) request."""
    site.backend.take()
    status, body = site.raw_get("/app/proxy/x", cookie=cookie)
    for raw in site.backend.take():
        line, headers = request_headers(raw)
        assert b"GET /smuggled" not in raw, raw
        assert b"victim" not in raw, raw
        names = [n.lower() for n, _ in headers]
        for n in set(names):
            if n.startswith("x-btsso"):
                assert names.count(n) == 1, (n, headers)
        # exactly one request on the connection
        assert raw.count(b"HTTP/1.1\r\n") == 1, raw
    status, body = site.raw_get("/app/cgi/env.cgi", cookie=cookie)
    if status == 200:
        env = json.loads(body)
        for k, v in env.items():
            if "BTSSO" in k.upper():
                assert not has_control(v), (k, v)
                assert "victim" not in v, (k, v)


# ---- item 1: control characters in what the IdP asserts ----------------------

INJECT_NAME_ID = ("ann@example.com\r\nX-BTSSO-Account: victim\r\n"
                  "X-BTSSO-Email: admin@victim.example")
SMUGGLE_NAME_ID = ("ann@example.com\r\n\r\nGET /smuggled HTTP/1.1\r\n"
                   "Host: victim\r\nX: ")


def test_genuine_login_exports_clean_headers(site):
    """The control case: a clean login reaches CGI and backend with our
    headers, once each."""
    r = site.login(name_id="ann@example.com")
    assert r.status_code == 303, r.text
    cookie = session_cookie(r)
    status, body = site.raw_get("/app/cgi/env.cgi", cookie=cookie)
    assert status == 200
    env = json.loads(body)
    assert env["BTSSO_ACCOUNT"] == "acme"
    assert env["BTSSO_NAME_ID"] == "ann@example.com"
    assert env["HTTP_X_BTSSO_ACCOUNT"] == "acme"
    site.backend.take()
    status, _ = site.raw_get("/app/proxy/x", cookie=cookie)
    assert status == 200
    (raw,) = site.backend.take()
    _, headers = request_headers(raw)
    assert ("X-BTSSO-Account", "acme") in headers
    assert ("X-BTSSO-Email", "ann@example.com") in headers
    check_exports(site, cookie)


@pytest.mark.parametrize("name_id", [INJECT_NAME_ID, SMUGGLE_NAME_ID,
                                     "ann@example.com\x00x",
                                     "ann@example.com\tx",
                                     "ann@example.com\x7fx"],
                         ids=["crlf_header", "crlf_smuggle", "nul", "tab",
                              "del"])
def test_nameid_control_chars_refused(site, name_id):
    if "\x00" in name_id:
        # XML cannot carry NUL, not even as &#0;: the parser refuses it
        xml = samlgen.build_response(now=now(), name_id="ann@example.comNULx",
                                     attributes={"mail": ["ann@example.com"]})
        xml = xml.replace(b"NUL", b"&#0;")
        r = site.acs(xml)
        assert r.status_code in (400, 403), r.status_code
        assert session_cookie(r) is None
        return
    r = site.login(name_id=name_id)
    assert_refused(site, r, "bad_name_id")
    check_exports(site, session_cookie(r))


@pytest.mark.parametrize("name_id", [INJECT_NAME_ID, SMUGGLE_NAME_ID])
def test_nameid_injection_never_reaches_cgi_or_backend(site, name_id):
    """Whatever the ACS decides, the headers and environment the CGI and
    the proxied backend see hold no injected line (the glue's own check
    stands even if a bad value made it into a session: then it logs
    BTSSO0313 and exports nothing of that value)."""
    site.httpd.expect_log("BTSSO0313")
    r = site.login(name_id=name_id)
    check_exports(site, session_cookie(r))


def test_attribute_value_control_chars_refused(site):
    r = site.login(name_id="ann@example.com",
                   attributes={"mail": ["ann@example.com"],
                               "displayName": ["Ann\r\nX-BTSSO-Account: "
                                               "victim"]})
    assert_refused(site, r, "bad_attribute")


def test_email_attribute_with_newline_refused(site):
    r = site.login(name_id="ann@example.com",
                   attributes={"mail": ["ann@example.com\nx"]})
    assert_refused(site, r, "bad_attribute")


def test_attribute_name_control_chars_refused(site):
    r = site.login(name_id="ann@example.com",
                   attributes={"mail": ["ann@example.com"],
                               "dept\nX-Evil": ["x"]})
    assert_refused(site, r, "bad_attribute")


def _set_issuer(assertion, text):
    assertion.find(samlgen.q(samlgen.NS_SAML, "Issuer")).text = text


def test_assertion_issuer_control_chars_refused(site):
    bad = samlgen.IDP_ENTITY_ID + "\r\nX-BTSSO-Account: victim"
    xml = samlgen.build_response(
        now=now(), attributes={"mail": ["ann@example.com"]},
        response_issuer=None,
        mutate_assertion=lambda a: _set_issuer(a, bad))
    assert b"&#13;" in xml
    assert_refused(site, site.acs(xml), "bad_issuer")


def test_response_issuer_control_chars_refused(site):
    # the Response is not signed: the raw text can be edited
    xml = samlgen.build_response(now=now(),
                                 attributes={"mail": ["ann@example.com"]},
                                 response_issuer=samlgen.IDP_ENTITY_ID
                                 + "LFHERE")
    xml = xml.replace(b"LFHERE", b"&#10;X-BTSSO-Account: victim")
    assert_refused(site, site.acs(xml), "bad_issuer")


# ---- item 1: entityID with control characters at metadata import -----------

BAD_ENTITY = "https://idp.example.test/x&#13;&#10;X-BTSSO-Account: victim"


def _bad_md():
    return IDP_MD.format(entity=BAD_ENTITY,
                         cert=cert_body(samlgen.DEFAULT_CERT))


def test_entity_id_control_chars_refused_by_admin_api(site):
    c = site.admin()
    c.config()
    r = c.post("metadata", data=_bad_md().encode(),
               headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "bad_entity_id"
    # the account still has the good IdP
    assert c.config()["idp"]["entity_id"] == samlgen.IDP_ENTITY_ID


def test_entity_id_control_chars_refused_by_btssoctl(site):
    md = os.path.join(site.p.tmp, "bad-entity.xml")
    with open(md, "w") as f:
        f.write(_bad_md())
    site.httpd.fix_perms()
    p = site.ctl("idp", "import", "victim", md, check=False)
    assert p.returncode != 0
    assert "bad_entity_id" in p.stderr or "entityID" in p.stderr, p.stderr
    p = site.ctl("idp", "show", "victim", check=False, json_out=True)
    assert "victim" not in p.stdout.replace('"victim"', "")


# ---- item 10: client X-BTSSO-* headers in any spelling ----------------------

SPOOFS = [("X_BTSSO_Email", "evil1@example.com"),
          ("x-btsso-email", "evil2@example.com"),
          ("X-Btsso_Account", "evil3"),
          ("x_btsso_name_id", "evil4"),
          ("X-BTSSO-Attributes", "evil5")]


def _assert_no_spoof(raw_or_env):
    text = raw_or_env if isinstance(raw_or_env, str) else \
        raw_or_env.decode("latin-1")
    for _, v in SPOOFS:
        assert v not in text, text


def test_spoofed_headers_never_reach_cgi(site):
    r = site.login(name_id="ann@example.com")
    cookie = session_cookie(r)
    status, body = site.raw_get("/app/cgi/env.cgi", headers=SPOOFS,
                                cookie=cookie)
    assert status == 200
    env = json.loads(body)
    assert env["HTTP_X_BTSSO_EMAIL"] == "ann@example.com"
    _assert_no_spoof(json.dumps(env))


def test_spoofed_headers_never_reach_backend(site):
    r = site.login(name_id="ann@example.com")
    cookie = session_cookie(r)
    site.backend.take()
    status, _ = site.raw_get("/app/proxy/x", headers=SPOOFS, cookie=cookie)
    assert status == 200
    (raw,) = site.backend.take()
    _assert_no_spoof(raw)
    _, headers = request_headers(raw)
    assert ("X-BTSSO-Email", "ann@example.com") in headers
    # and on a location without any authentication
    status, _ = site.raw_get("/open/proxy/y", headers=SPOOFS)
    assert status == 200
    (raw,) = site.backend.take()
    _assert_no_spoof(raw)
    assert b"btsso" not in raw.lower()


# ---- item 11a: weak IdP keys -----------------------------------------------

def _weak_cert(tmp):
    key = os.path.join(tmp, "weak.key")
    crt = os.path.join(tmp, "weak.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "30",
                    "-subj", "/CN=weak/O=Test IdP"], check=True,
                   capture_output=True)
    return key, crt


def test_weak_certificate_refused_at_upload(site):
    key, crt = _weak_cert(site.p.tmp)
    c = site.admin()
    c.config()
    with open(crt, "rb") as f:
        r = c.post("certificates", data=f.read(),
                   headers={"Content-Type": "application/x-pem-file"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "weak_key"
    site.httpd.fix_perms()
    p = site.ctl("cert", "add", "acme", crt, "--role", "secondary",
                 check=False)
    assert p.returncode != 0
    assert "weak_key" in p.stderr or "weak" in p.stderr.lower(), p.stderr
    # from metadata, by the admin API and by btssoctl
    md = IDP_MD.format(entity="https://weak.example.test/idp",
                       cert=cert_body(crt))
    r = c.post("metadata", data=md.encode(),
               headers={"Content-Type": "application/samlmetadata+xml"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "weak_key"
    mdf = os.path.join(site.p.tmp, "weak-md.xml")
    with open(mdf, "w") as f:
        f.write(md)
    site.httpd.fix_perms()
    p = site.ctl("idp", "import", "victim", mdf, check=False)
    assert p.returncode != 0, p.stdout
    assert "weak" in p.stderr.lower(), p.stderr


def test_response_signed_with_weak_key_refused(site):
    """A weak certificate already in the store (from before the rule) is
    never used to verify."""
    key, crt = _weak_cert(site.p.tmp)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    import base64
    import hashlib
    db = sqlite3.connect(site.httpd.db)
    try:
        db.execute("UPDATE certificates SET role = 'primary'"
                   " WHERE account = 'acme'")
        db.execute(
            "INSERT INTO certificates (account, sha256, role, der, subject,"
            " issuer, not_before, not_after, source, added) VALUES"
            " ('acme', ?, 'secondary', ?, 'CN=weak', 'CN=weak', ?, ?,"
            " 'upload', ?)",
            (hashlib.sha256(der).hexdigest(),
             base64.b64encode(der).decode(), 0, 2 ** 40, 0))
        db.execute("UPDATE accounts SET version = version + 1"
                   " WHERE account = 'acme'")
        db.commit()
    finally:
        db.close()
    r = site.login(name_id="ann@example.com", key=key, cert=crt)
    assert r.status_code == 403, (r.status_code, r.text[-300:])
    assert session_cookie(r) is None
    # the strong one still works
    r = site.login(name_id="ann@example.com")
    assert r.status_code == 303, r.text


# ---- item 11b: non-ASCII case folding ---------------------------------------

KELVIN_KATE = "\u212Aate@example.com"


def test_kelvin_sign_email_refused_sqlite(site):
    r = site.login(name_id="x", attributes={"mail": [KELVIN_KATE]})
    assert_refused(site, r, "no_such_user")
    # the ASCII one, in another case, logs in
    r = site.login(name_id="x", attributes={"mail": ["KATE@Example.com"]})
    assert r.status_code == 303, r.text


@pytest.fixture
def pg_params():
    if not os.path.exists("/usr/lib/postgresql"):
        pytest.skip("PostgreSQL is not installed")
    d = tempfile.mkdtemp(prefix="btsso-pg-")
    r = subprocess.run(["sh", PGTMP, "start", d], capture_output=True,
                       text=True)
    if r.returncode != 0:
        subprocess.run(["sh", PGTMP, "stop", d])
        pytest.fail("pgtmp.sh start failed: " + r.stderr.strip())
    yield r.stdout.strip().splitlines()[-1]
    subprocess.run(["sh", PGTMP, "stop", d], check=False)


def test_kelvin_sign_email_refused_pgsql(make_httpd, tmp_path, monkeypatch,
                                         pg_params):
    s = Site(make_httpd, tmp_path, dbdriver="pgsql", dbdparams=pg_params)
    monkeypatch.setattr(samlgen, "SP_ENTITY_ID", s.url + "/sso")
    monkeypatch.setattr(samlgen, "ACS_URL", s.url + "/sso/acs")
    try:
        s.start()
        # PostgreSQL's lower() really does fold it (else this test would
        # prove nothing)
        p = subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-At", "-d",
             pg_params.replace(" ", " ").split("dbname=")[1].split()[0],
             "-h", "127.0.0.1", "-p", pg_params.split("port=")[1].split()[0],
             "-U", "postgres", "-c",
             "SELECT lower('%s') = 'kate@example.com'" % KELVIN_KATE]
            if os.geteuid() == 0 else
            ["psql", "-At", pg_params, "-c",
             "SELECT lower('%s') = 'kate@example.com'" % KELVIN_KATE],
            capture_output=True, text=True)
        assert p.stdout.strip() == "t", (p.stdout, p.stderr)
        r = s.login(name_id="x", attributes={"mail": [KELVIN_KATE]})
        assert_refused(s, r, "no_such_user")
        r = s.login(name_id="x", attributes={"mail": ["KATE@Example.com"]})
        assert r.status_code == 303, r.text
    finally:
        s.stop()


# ---- item 11c: Issuer Format ------------------------------------------------

def _issuer_format(assertion, fmt):
    assertion.find(samlgen.q(samlgen.NS_SAML, "Issuer")).set("Format", fmt)


def test_assertion_issuer_wrong_format_refused(site):
    xml = samlgen.build_response(
        now=now(), attributes={"mail": ["ann@example.com"]},
        mutate_assertion=lambda a: _issuer_format(
            a, "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"))
    assert_refused(site, site.acs(xml), "issuer_format")


def test_response_issuer_wrong_format_refused(site):
    def mutate(root):
        root.find(samlgen.q(samlgen.NS_SAML, "Issuer")).set(
            "Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    xml = samlgen.build_response(now=now(),
                                 attributes={"mail": ["ann@example.com"]},
                                 mutate=mutate)
    assert_refused(site, site.acs(xml), "issuer_format")


def test_issuer_entity_format_accepted(site):
    xml = samlgen.build_response(
        now=now(), attributes={"mail": ["ann@example.com"]},
        mutate_assertion=lambda a: _issuer_format(a, ENTITY_FMT))
    r = site.acs(xml)
    assert r.status_code == 303, r.text
