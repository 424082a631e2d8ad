"""A portal for the login tests: httpd with mod_btsso, an SQLite store set up
with btssoctl, and a pysaml2 IdP whose metadata the account imported.

    p = Portal(make_httpd, tmp_path).start()
    r = p.login()                        # the whole SP-initiated round trip
    p.get("/app/", cookies=r.cookies)
"""
import base64
import os
import urllib.parse
import zlib

import requests

import btsso_httpd
from pysaml_idp import PysamlIdP

TOP = btsso_httpd.TOP
SPKEYS = os.path.join(TOP, "t", "fixtures", "sp")

PROTECTED = """
<Location /app>
    AuthType BTSSO
    BTSSOAccount {account_expr}
    Require valid-user
    Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
    Header always set X-Env-Account "%{{BTSSO_ACCOUNT}}e"
    Header always set X-Env-Email "%{{BTSSO_EMAIL}}e"
    Header always set X-Env-NameID "%{{BTSSO_NAME_ID}}e"
    Header always set X-Env-IdP "%{{BTSSO_IDP}}e"
    Header always set X-Env-Expires "%{{BTSSO_SESSION_EXPIRES}}e"
    Header always set X-Req-Email "expr=%{{req:X-BTSSO-Email}}"
</Location>
<Location /open>
    Header always set X-Req-Email "expr=%{{req:X-BTSSO-Email}}"
</Location>
<Location /app/headers>
    BTSSOSetHeaders On
</Location>
"""


class Portal:
    def __init__(self, make_httpd, tmp_path, account="acme", sp_keys=True,
                 btsso_conf="", extra_conf="", idp_kwargs=None,
                 account_expr='"acme"', **httpd_kw):
        self.account = account
        # btssoctl changes are seen at once (the TTL has its own test)
        conf = btsso_conf
        if "BTSSOConfigTTL" not in conf:
            conf = "BTSSOConfigTTL 0\n" + conf
        if sp_keys:
            conf = ("BTSSOSPCertificate {k}/sp-current.crt\n"
                    "BTSSOSPPrivateKey {k}/sp-current.key\n".format(k=SPKEYS)
                    + conf)
        self.httpd = make_httpd(
            btsso_conf=conf,
            extra_conf=PROTECTED.format(account_expr=account_expr)
            + extra_conf, **httpd_kw)
        # inside the httpd directory, which the httpd user can read
        self.tmp = os.path.join(self.httpd.dir, "t")
        os.makedirs(self.tmp, exist_ok=True)
        self.idp_kwargs = idp_kwargs or {}
        # the pending sign-in cookies this "browser" holds (name -> value):
        # a sign-in finishes only in the browser that started it
        self.pending = {}
        self.idp = None
        os.makedirs(os.path.join(self.httpd.docroot, "app", "headers"),
                    exist_ok=True)
        for d in ("", "app/", "app/headers/"):
            with open(os.path.join(self.httpd.docroot, d, "index.html"),
                      "w") as f:
                f.write("<p>portal page %s</p>\n" % d)

    @property
    def url(self):
        return self.httpd.url

    def ctl(self, *args, **kw):
        return self.httpd.ctl(*args, **kw)

    def start(self, users=(("100", "ann@example.com"),
                           ("101", "bob@example.com")),
              enable=True, attr="mail"):
        h = self.httpd
        h.write_config()
        self.ctl("init")
        self.ctl("account", "add", self.account, "--name", "Acme Ltd")
        for ext, email in users:
            self.ctl("user", "add", self.account, ext, email)
        h.start()
        self.idp = self.make_idp(self.account)
        if attr:
            self.ctl("attr", "set", self.account, attr)
        if enable:
            self.ctl("enable", self.account)
        return self

    def make_idp(self, account, shared=False, import_=True, **kw):
        """A pysaml2 IdP knowing our SP metadata (the account's), imported
        into the account with btssoctl."""
        path = "/sso/metadata/%s" % account if shared else "/sso/metadata"
        if shared:
            md = None   # fetched after import, once the account is shared
        else:
            md = requests.get(self.url + path, timeout=10).text
        args = dict(self.idp_kwargs)
        args.update(kw)
        if md is None:
            # placeholder SP metadata until the account exists as shared
            md = requests.get(self.url + "/sso/metadata", timeout=10).text
        idp = PysamlIdP(os.path.join(self.tmp, "idp-" + account), md, **args)
        if import_:
            f = os.path.join(self.tmp, "idp-%s.xml" % account)
            with open(f, "w") as fh:
                fh.write(idp.metadata())
            self.httpd.fix_perms()
            cmd = ["idp", "import", account, f]
            if shared:
                cmd.append("--shared")
            self.ctl(*cmd)
        if shared:
            md = requests.get(self.url + path, timeout=10).text
            idp = PysamlIdP(os.path.join(self.tmp, "idp2-" + account), md,
                            **args)
        return idp

    # -- HTTP --------------------------------------------------------------
    def remember_pending(self, r):
        """Keep (or forget) the pending sign-in cookies r sets, as a browser
        would (they are Secure, which requests' jar never sends over
        http; Chromium does on loopback)."""
        for h in r.raw.headers.getlist("Set-Cookie"):
            name, _, rest = h.partition("=")
            if "_pending_" not in name:
                continue
            if "Max-Age=0" in h:
                self.pending.pop(name, None)
            else:
                self.pending[name] = rest.split(";", 1)[0]
        return r

    def get(self, path, **kw):
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 20)
        return self.remember_pending(requests.get(self.url + path, **kw))

    def post(self, path, **kw):
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 20)
        return self.remember_pending(requests.post(self.url + path, **kw))

    def start_login(self, account=None, ret=None, path=None):
        """GET /sso/login/<account>; returns (response, pysaml2 request)."""
        path = path or "/sso/login/%s" % (account or self.account)
        if ret is not None:
            path += "?return=" + urllib.parse.quote(ret, safe="")
        r = self.get(path)
        assert r.status_code == 302, (r.status_code, r.text)
        return r, self.idp.parse_redirect(r.headers["Location"])

    def acs(self, saml_response, relay_state=None, path="/sso/acs",
            cookies=None):
        """POST to the ACS from this browser: with the pending sign-in
        cookies it holds (and `cookies`)."""
        data = {"SAMLResponse": saml_response}
        if relay_state is not None:
            data["RelayState"] = relay_state
        jar = dict(self.pending)
        jar.update(cookies or {})
        return self.post(path, data=data, cookies=jar)

    def login(self, email="ann@example.com", ret=None, **resp_kw):
        """The full SP-initiated round trip; returns the ACS response."""
        r, req = self.start_login(ret=ret)
        b64 = self.idp.response(req, email=email, **resp_kw)
        return self.acs(b64, req.relay_state)


def decode_redirect_request(location):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    raw = base64.b64decode(q["SAMLRequest"][0])
    return zlib.decompress(raw, -15).decode(), q
