"""What the admin tests share: an httpd with the btsso-admin handler behind
Basic authentication, accounts and users made with btssoctl, a JSON client
that carries the CSRF token and version the way the set-up page does, the
local HTTPS metadata server (t/lib/https_server.py, its own CA) and a
wrapper that runs a program in a private mount namespace where that CA is
the system trust store (and /etc/hosts is ours), so the fetcher's normal
CA verification is what the tests exercise.

    a = AdminPortal(make_httpd).start()
    c = a.client("ann@example.com")
    cfg = c.config()
    c.put("enabled", json={"enabled": True, "confirm_untested": True})

(Enabling through the API needs a passing test login of an administrator
first, or confirm_untested: test_audit.py holds that rule's tests.)
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import requests

import btsso_httpd

TOP = btsso_httpd.TOP
FIX = os.path.join(TOP, "t", "fixtures")
MD = os.path.join(FIX, "metadata")
KEYS = os.path.join(FIX, "keys")
SPKEYS = os.path.join(FIX, "sp")
HTTPS_SERVER = os.path.join(TOP, "t", "lib", "https_server.py")
PASSWORD = "s3cret-pw"

ADMIN_LOCATION = """
<Location /admin/sso>
    AuthType Basic
    AuthName "BT Cloud Work portal"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
    SetHandler btsso-admin
</Location>
"""


def cert_b64(name):
    pem = open(os.path.join(KEYS, name + ".crt")).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1]
    return "".join(body.split("-----END CERTIFICATE-----")[0].split())


def sha256_of_pem(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout",
                          "-fingerprint", "-sha256"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def sha256_of(name):
    return sha256_of_pem(os.path.join(KEYS, name + ".crt"))


def idp_metadata(entity, certs=(), sso="https://idp.example.test/sso",
                 attributes=(), cert_b64s=()):
    """An IdP EntityDescriptor with fixture signing certificates."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
        '<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data>'
        '</ds:KeyInfo></md:KeyDescriptor>' % b
        for b in [cert_b64(c) for c in certs] + list(cert_b64s))
    attrs = "".join('<saml:Attribute Name="%s"/>' % a for a in attributes)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:'
            'metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            'entityID="%s"><md:IDPSSODescriptor protocolSupportEnumeration='
            '"urn:oasis:names:tc:SAML:2.0:protocol">%s'
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:'
            'bindings:HTTP-Redirect" Location="%s"/>%s</md:IDPSSODescriptor>'
            '</md:EntityDescriptor>' % (entity, keys, sso, attrs))


def make_cert(workdir, name, days, cn=None):
    """A throwaway self-signed certificate valid for `days` from now;
    returns the PEM path."""
    key = os.path.join(workdir, name + ".key")
    crt = os.path.join(workdir, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days",
                    str(days), "-subj", "/CN=%s/O=Test IdP" % (cn or name)],
                   check=True, capture_output=True)
    return crt


def pem_b64(path):
    pem = open(path).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1]
    return "".join(body.split("-----END CERTIFICATE-----")[0].split())


def write_htpasswd(path, users):
    with open(path, "w") as f:
        for u in users:
            digest = base64.b64encode(
                hashlib.sha1(PASSWORD.encode()).digest()).decode()
            f.write("%s:{SHA}%s\n" % (u, digest))


# ---- a private trust store and hosts file ----------------------------------

def namespace_wrapper(workdir, program, ca_file, hosts=""):
    """A script that runs `program` with its arguments in a private mount
    namespace where ca_file replaces the system CA bundle and `hosts` is
    added to a minimal /etc/hosts.  Nothing outside that process tree sees
    either (the process keeps its PID: unshare and sh exec)."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("a private mount namespace needs root")
    trust = os.path.join(workdir, "trust.pem")
    shutil.copy(ca_file, trust)
    os.chmod(trust, 0o644)
    hosts_file = os.path.join(workdir, "hosts")
    with open(hosts_file, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n" + hosts)
    os.chmod(hosts_file, 0o644)
    script = os.path.join(workdir, "ns-" + os.path.basename(program))
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                "exec /usr/bin/unshare -m --propagation private /bin/sh -c "
                "'mount --bind \"$0\" /etc/ssl/certs/ca-certificates.crt && "
                "mount --bind \"$1\" /etc/hosts && shift && "
                "exec %s \"$@\"' %s %s \"$@\"\n"
                % (program, trust, hosts_file))
    os.chmod(script, 0o755)
    return script


class MetadataServer:
    """t/lib/https_server.py: HTTPS and HTTP on 127.0.0.1 with a throwaway
    CA; files under self.files are served at /file/NAME."""

    def __init__(self):
        self.files = tempfile.mkdtemp(prefix="btsso-mdfiles-")
        self.proc = subprocess.Popen(
            [sys.executable, HTTPS_SERVER, "--files", self.files],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.https_port = info["https_port"]
        self.http_port = info["http_port"]
        self.ca_file = info["ca_file"]
        self.other_ca_file = info["other_ca_file"]
        # keep copies: the server removes its directory when it stops
        self.ca_copy = os.path.join(self.files, ".ca.pem")
        shutil.copy(self.ca_file, self.ca_copy)
        self.other_ca_copy = os.path.join(self.files, ".other-ca.pem")
        shutil.copy(self.other_ca_file, self.other_ca_copy)

    def https(self, path, host="127.0.0.1"):
        return "https://%s:%d%s" % (host, self.https_port, path)

    def http(self, path, host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.http_port, path)

    def put(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(self.files, name), "wb") as f:
            f.write(data)
        return self.https("/file/" + name)

    def stop(self):
        # end of stdin is the server's own signal to stop and clean up
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc.stdout.close()
        shutil.rmtree(self.files, ignore_errors=True)


# ---- the portal --------------------------------------------------------------

class Client:
    """One administrator's browser, as the set-up page behaves: GET config
    for the token and version, then changes carrying both (the token is
    required; If-Match is optional in SPEC: version=False sends a change
    without it, which applies to the current settings)."""

    def __init__(self, portal, user, account):
        self.portal = portal
        self.account = account
        self.s = requests.Session()
        self.s.auth = (user, PASSWORD)
        self.token = None
        self.version = None

    def url(self, path=""):
        return "%s/admin/sso/%s/%s" % (self.portal.url, self.account, path)

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        return self.s.get(self.url(path), **kw)

    def config(self):
        r = self.get("config")
        assert r.status_code == 200, (r.status_code, r.text)
        j = r.json()
        self.token = j["csrf_token"]
        self.version = j["version"]
        return j

    def send(self, method, path, token=True, version=True, headers=None,
             **kw):
        if self.token is None:
            self.config()
        h = dict(headers or {})
        if token is True:
            h["X-CSRF-Token"] = self.token
        elif token:
            h["X-CSRF-Token"] = token
        if version is True:
            h["If-Match"] = '"%d"' % self.version
        elif version:
            h["If-Match"] = str(version)
        kw.setdefault("timeout", 30)
        r = self.s.request(method, self.url(path), headers=h, **kw)
        if r.status_code == 200 and r.headers.get(
                "Content-Type", "").startswith("application/json"):
            j = r.json()
            if "csrf_token" in j:
                self.token = j["csrf_token"]
                self.version = j["version"]
        return r

    def post(self, path, **kw):
        return self.send("POST", path, **kw)

    def put(self, path, **kw):
        return self.send("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.send("DELETE", path, **kw)


class AdminPortal:
    USERS = (
        # account, extension, email, admin
        ("acme", "100", "ann@example.com", True),
        ("acme", "101", "bob@example.com", False),
        ("acme", "102", "dan@example.com", False),
        ("other", "200", "carol@example.com", True),
        ("twin", "300", "ann@example.com", True),
    )

    def __init__(self, make_httpd, btsso_conf="", sp_keys=True, users=None,
                 **httpd_kw):
        conf = btsso_conf
        if "BTSSOConfigTTL" not in conf:
            conf = "BTSSOConfigTTL 0\n" + conf
        if sp_keys:
            conf = ("BTSSOSPCertificate {k}/sp-current.crt\n"
                    "BTSSOSPPrivateKey {k}/sp-current.key\n".format(k=SPKEYS)
                    + conf)
        self.users = users or self.USERS
        self.httpd = None
        self.make_httpd = make_httpd
        self.conf = conf
        self.httpd_kw = httpd_kw
        self.httpd = make_httpd(btsso_conf=conf, extra_conf="", **httpd_kw)
        self.htpasswd = os.path.join(self.httpd.dir, "htpasswd")
        self.httpd.extra_conf = ADMIN_LOCATION.format(htpasswd=self.htpasswd)
        self.tmp = os.path.join(self.httpd.dir, "t")
        os.makedirs(self.tmp, exist_ok=True)

    @property
    def url(self):
        return self.httpd.url

    def ctl(self, *args, **kw):
        return self.httpd.ctl(*args, **kw)

    def start(self):
        write_htpasswd(self.htpasswd, sorted({u[2] for u in self.users}
                                             | {"100", "mallory@example.com"}))
        self.httpd.write_config()
        self.ctl("init")
        for acc in sorted({u[0] for u in self.users}):
            self.ctl("account", "add", acc, "--name", acc.title() + " Ltd")
        for acc, ext, email, admin in self.users:
            args = ["user", "add", acc, ext, email]
            if admin:
                args.append("--admin")
            self.ctl(*args)
        self.httpd.start()
        return self

    def client(self, user="ann@example.com", account="acme"):
        return Client(self, user, account)

    def audit(self, account=None):
        """Audit rows (at, account, actor, action, detail) of changes made
        through the web (not by btssoctl while setting up), oldest first."""
        import sqlite3
        db = sqlite3.connect(self.httpd.db)
        try:
            q = "SELECT at, account, actor, action, detail FROM audit"
            args = ()
            if account:
                q += " WHERE account = ?"
                args = (account,)
            return [row for row in db.execute(q + " ORDER BY id", args)
                    if not row[2].startswith("btssoctl:")]
        finally:
            db.close()

    def fixture_path(self, name):
        """A metadata fixture copied where the httpd user can read it."""
        dst = os.path.join(self.tmp, name)
        shutil.copy(os.path.join(MD, name), dst)
        self.httpd.fix_perms()
        return dst
