#!/usr/bin/python3
"""mellon.py - mod_btsso beside Debian's mod_auth_mellon, in one run.

    /usr/bin/python3 bench/mellon.py [--builddir DIR] [--logins N]
                                     [--btsso-logins M]
                                     [--concurrency C] [--duration S]
                                     [--slices K] [--rounds R]
                                     [--mellon-ca-bundle empty|system]

Two throwaway httpds on one machine, started from the same template
(t/lib/btsso_httpd.py: event MPM, the same process/thread settings, the
same modules, LogLevel warn):

  btsso   mod_btsso set up as bench/bench.py sets it up (an SQLite store
          filled with btssoctl, account acme, IdP-initiated logins to
          /sso/acs, BTSSOConfigTTL at its default);
  mellon  mod_auth_mellon 0.18 (Debian's libapache2-mod-auth-mellon) in
          the set-up its own documentation recommends: SP key, certificate
          and metadata made by its mellon_create_metadata tool, the IdP's
          metadata with the signing certificate t/fixtures/keys/okta.crt,
          MellonCacheSize large enough to keep every session the run
          makes, MellonCacheEntrySize at its minimum (65536), the lock and
          cache in the instance directory, no diagnostics, no debug log;
          and an empty OpenSSL CA bundle in its environment (every ACS
          request makes mellon build a lasso server, which otherwise
          reads the system's CA bundle: about 65 ms a login; see
          MellonSP.start).

mellon gets N unique IdP-initiated Responses signed with okta.key (the
Assertion signed, as Okta does), mod_btsso M (by default 4 N: it answers
some ten times faster, and a run of a fraction of a second measures
wrk's start and end as much as the logins), all BEFORE any clock starts,
POSTed by the
same wrk driver (bench/wrkpost.py run_wrk_posts: each body exactly once,
-t2 -cC), and the same wrk GET runs for a static file with and without
authentication, in --slices parts alternating between the instances.  The
table gives each figure and the ratio btsso/mellon:

  logins/s, mod_btsso / mod_auth_mellon                        goal >= 10
  protected file req/s with a live session, btsso / mellon     goal >= 1.5

Checks (the run fails when one does not hold): every timed login answered
its expected redirect with a session cookie; the warm-up session and an
early one of the timed run are still live afterwards; a replayed response
is refused; for mellon an unsigned response and one signed by another key
are refused (its signature check is on).

Loopback only; every httpd and wrk is stopped by PID and every directory
removed, also on SIGTERM and errors.  Exit status 0 when every check held.
"""
import argparse
import http.client
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (sets sys.path for t/lib and t/integration)
from wrkpost import run_wrk_posts  # noqa: E402
import btsso_httpd  # noqa: E402
import samlgen  # noqa: E402

log = bench.log

MELLON_SO = os.path.join(btsso_httpd.MODDIR, "mod_auth_mellon.so")
CREATE_METADATA = "/usr/sbin/mellon_create_metadata"
MELLON_COOKIE = "mellon-cookie"          # "mellon-" + MellonVariable
MELLON_ENDPOINT = "/mellon/"
MELLON_IDP = "https://idp.bench.example/mellon"
TARGET = bench.TARGET                    # the RelayState of every login
PAGE = "<p>portal page app/</p>\n"       # portal.py's /app/index.html


def run_wrk_get(url, cookie_header, concurrency, duration, workdir):
    """bench.run_wrk with any cookie (name=value), or none: GET url for
    duration seconds, every answer other than 200 counted as bad."""
    return bench.run_wrk("wrk", url, None, concurrency, duration, workdir,
                         cookie_header=cookie_header)


# ---- signing (before any clock) ---------------------------------------------

def sign_bodies(template, count):
    """count form bodies (SAMLResponse + RelayState=TARGET), each a
    different Response from one template with its Assertion signed by
    okta.key (bench.ResponseSigner, the key loaded once per worker; the
    workers reset SIGTERM, see bench._init_signer)."""
    if isinstance(template, str):
        template = template.encode()
    with multiprocessing.get_context("fork").Pool(
            max(1, os.cpu_count() or 1), bench._init_signer,
            (template,)) as pool:
        return pool.map(bench._sign_one, range(count), chunksize=64)


MELLON_VARS = (("%{BTSSO_ACCOUNT}e", "%{MELLON_IDP}e"),
               ("%{BTSSO_EMAIL}e", "%{MELLON_mail}e"),
               ("%{BTSSO_NAME_ID}e", "%{MELLON_NAME_ID}e"),
               ("%{BTSSO_IDP}e", "%{MELLON_IDP}e"),
               ("%{BTSSO_SESSION_EXPIRES}e", "%{MELLON_givenName}e"),
               ("X-BTSSO-Email", "X-Mellon-Email"))


def mellon_header_lines():
    """The Header directives of mod_btsso's protected location
    (portal.py's, which bench.py also sets on /open) with mellon's
    variables: the same number and kinds of header operations on both
    instances, so that the protected rows differ by the module only."""
    import portal as portal_mod
    protected = portal_mod.PROTECTED.format(account_expr='"acme"')
    first = protected.split("</Location>", 1)[0]
    lines = [ln for ln in first.splitlines()
             if ln.strip().startswith("Header ")]
    text = "\n".join(lines)
    for old, new in MELLON_VARS:
        text = text.replace(old, new)
    if "BTSSO" in text:
        raise RuntimeError("a btsso variable left in mellon's headers: "
                           + text)
    return text


# ---- the mod_auth_mellon instance -------------------------------------------

class PlainHttpd(btsso_httpd.Httpd):
    """btsso_httpd's instance without mod_btsso: its template names the
    module in LogLevel, which httpd refuses when it is not loaded."""

    env = None      # variables added to httpd's environment

    def config_text(self):
        text = super().config_text()
        return text.replace("LogLevel warn btsso:debug\n", "LogLevel warn\n")

    def start(self):
        saved = dict(os.environ)
        os.environ.update(self.env or {})
        try:
            return super().start()
        finally:
            os.environ.clear()
            os.environ.update(saved)


class MellonSP:
    """A throwaway httpd with mod_auth_mellon protecting /app (and /open,
    the same directory without authentication)."""

    def __init__(self, make_httpd, cache_size, ca_bundle="empty"):
        self.cache_size = cache_size
        self.ca_bundle = ca_bundle
        self.httpd = make_httpd(
            PlainHttpd, load_btsso=False,
            workdir=tempfile.mkdtemp(prefix="btsso-mellon-m-"),
            modules=[("alias_module", "mod_alias.so"),
                     ("auth_mellon_module", "mod_auth_mellon.so")])
        h = self.httpd
        self.dir = h.dir
        self.mdir = os.path.join(h.dir, "mellon")
        os.makedirs(self.mdir, exist_ok=True)
        self.endpoint = h.url + MELLON_ENDPOINT.rstrip("/")
        self.acs = self.endpoint + "/postResponse"
        self.entity_id = self.endpoint + "/metadata"
        app = os.path.join(h.docroot, "app")
        os.makedirs(app, exist_ok=True)
        with open(os.path.join(app, "index.html"), "w") as f:
            f.write(PAGE)

    def write_files(self):
        """SP key, certificate and metadata from mellon's own tool; the
        IdP's metadata around okta.crt."""
        p = subprocess.run([CREATE_METADATA, self.entity_id, self.endpoint],
                           cwd=self.mdir, capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mellon_create_metadata failed: %s%s"
                               % (p.stdout, p.stderr))
        base = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z.]", "_",
                                         self.entity_id))
        self.sp_key = os.path.join(self.mdir, base + ".key")
        self.sp_cert = os.path.join(self.mdir, base + ".cert")
        self.sp_md = os.path.join(self.mdir, base + ".xml")
        for f in (self.sp_key, self.sp_cert, self.sp_md):
            if not os.path.exists(f):
                raise RuntimeError("mellon_create_metadata made no %s" % f)
        with open(samlgen.key_path("okta.crt")) as f:
            cert = "".join(ln.strip() for ln in f
                           if ln.strip() and not ln.startswith("-----"))
        self.idp_md = os.path.join(self.mdir, "idp-metadata.xml")
        with open(self.idp_md, "w") as f:
            f.write("""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data>
        <ds:X509Certificate>{cert}</ds:X509Certificate>
      </ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>{email}</md:NameIDFormat>
    <md:SingleSignOnService
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://idp.bench.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""".format(entity=MELLON_IDP, cert=cert,
           email="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"))

    def config(self):
        d = self.dir
        headers = mellon_header_lines()
        # MellonSP*/MellonIdP* cannot be set at server level (they are
        # AuthConfig directives), and a location that names them makes
        # mellon 0.18 build a new lasso server object (both metadata files
        # parsed, the key loaded, and xmlsec's default keys manager, which
        # reads OpenSSL's whole CA bundle) in every request to its
        # endpoints (cfg_can_inherit_lasso_server: the merged per-request
        # configuration never inherits it).  That is mellon's own
        # behaviour with any configuration; what the set-up can change is
        # the CA bundle (see --mellon-ca-bundle).
        server = """
LogLevel warn
# every session of the run stays in the cache (100, the default, would
# evict them); entries at mellon's minimum size
MellonCacheSize {cache}
MellonCacheEntrySize 65536
MellonLockFile {d}/mellon.lock
""".format(cache=self.cache_size, d=d)
        locations = """
Alias /open {docroot}/app
<Location />
    MellonSPMetadataFile {sp_md}
    MellonSPPrivateKeyFile {sp_key}
    MellonSPCertFile {sp_cert}
    MellonIdPMetadataFile {idp_md}
    MellonSecureCookie httponly
    MellonCookieSameSite Lax
    MellonIdP IDP
</Location>
<Location /app>
    AuthType Mellon
    MellonEnable auth
    Require valid-user
{headers}
</Location>
<Location /open>
{headers}
</Location>
""".format(docroot=self.httpd.docroot, sp_md=self.sp_md,
           sp_key=self.sp_key, sp_cert=self.sp_cert, idp_md=self.idp_md,
           headers=headers)
        return server, locations

    def start(self):
        self.write_files()
        self.httpd.btsso_conf, self.httpd.extra_conf = self.config()
        if self.ca_bundle == "empty":
            # mellon's best case: every ACS request makes a lasso server
            # whose xmlsec keys manager loads OpenSSL's default CA paths
            # (Debian: 140-odd certificates, about 65 ms per login with
            # OpenSSL 3).  An IdP's signature is checked against the key
            # in its metadata, not against a CA, so an empty bundle
            # changes nothing but the time (the checks below show that a
            # foreign signature and a missing one are still refused).
            empty = os.path.join(self.mdir, "no-ca.pem")
            open(empty, "w").close()
            os.makedirs(os.path.join(self.mdir, "no-ca.d"), exist_ok=True)
            self.httpd.env = {"SSL_CERT_FILE": empty,
                              "SSL_CERT_DIR": os.path.join(self.mdir,
                                                           "no-ca.d")}
        self.httpd.start()
        return self

    def template(self, **kw):
        """The unsigned Response every login is made from (kw: samlgen
        options, e.g. sign_assertion=True for one signed with samlgen's
        default key, which this IdP does not have)."""
        opts = dict(
            issuer=MELLON_IDP, audience=self.entity_id,
            destination=self.acs, recipient=self.acs,
            name_id="ann@example.com",
            attributes=[("mail", ["ann@example.com"]),
                        ("givenName", ["Ann"])],
            sign_assertion=False)
        opts.update(kw)
        return samlgen.build_response(**opts)


# ---- small HTTP helpers -----------------------------------------------------

def request(port, method, path, body=None, cookie=None):
    """(status, headers list, body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, path, body, headers)
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def cookie_of(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1]
    return None


def set_cookie_count(headers):
    return sum(1 for k, _ in headers if k.lower() == "set-cookie")


def plain_body(template):
    """A form body with the Response as it is (not signed by us)."""
    if isinstance(template, str):
        template = template.encode()
    b64 = samlgen.to_b64(template).replace("+", "%2B").replace(
        "/", "%2F").replace("=", "%3D")
    return ("SAMLResponse=%s&RelayState=%%2Fapp%%2Flanding" % b64).encode()


# ---- one round: both instances, the same loads ------------------------------

def one_round(args, made, workdir):
    import portal as portal_mod

    def make_httpd(cls=btsso_httpd.Httpd, **kw):
        h = cls(**kw)
        made.append(h)
        return h

    warm = 32
    counts = {"btsso": args.btsso_logins or 4 * args.logins,
              "mellon": args.logins}
    sessions = {name: warm + n + 1 for name, n in counts.items()}
    checks = []

    # -- mod_btsso, as bench.py sets it up
    bdir = tempfile.mkdtemp(prefix="btsso-mellon-b-")
    bp = bench.start_instance(portal_mod, make_httpd, bdir,
                              sessions["btsso"])
    log("mod_btsso httpd pid %d on %s" % (bp.httpd.proc.pid, bp.url))

    # -- mod_auth_mellon
    # mellon's cache for its own sessions only: it searches the cache
    # entry by entry, so a bigger one would slow it down
    ms = MellonSP(make_httpd, cache_size=sessions["mellon"] + 64,
                  ca_bundle=args.mellon_ca_bundle)
    ms.start()
    log("mod_auth_mellon httpd pid %d on %s (MellonCacheSize %d, %s CA "
        "bundle)" % (ms.httpd.proc.pid, ms.httpd.url, ms.cache_size,
                     ms.ca_bundle))

    t0 = time.perf_counter()
    b_bodies = bench.make_bodies(bp, sessions["btsso"])
    m_template = ms.template()
    m_bodies = sign_bodies(m_template, sessions["mellon"])
    log("signed %d + %d responses in %.1f s (not timed)" % (
        len(b_bodies), len(m_bodies), time.perf_counter() - t0))

    sides = {
        "btsso": {"url": bp.url, "port": bp.httpd.port,
                  "acs": bp.url + "/sso/acs", "acs_path": "/sso/acs",
                  "cookie": bench.COOKIE,
                  "location": bp.url + TARGET, "bodies": b_bodies,
                  "httpd": bp.httpd},
        "mellon": {"url": ms.httpd.url, "port": ms.httpd.port,
                   "acs": ms.acs, "acs_path": MELLON_ENDPOINT + "postResponse",
                   "cookie": MELLON_COOKIE,
                   "location": TARGET, "bodies": m_bodies,
                   "httpd": ms.httpd},
    }

    # the first answer of each: a redirect with exactly one Set-Cookie,
    # the session (the wrk driver sees only an answer's last Set-Cookie)
    for name, s in sides.items():
        st, hdrs, body = request(s["port"], "POST", s["acs_path"],
                                 s["bodies"][0])
        sid = cookie_of(hdrs, s["cookie"])
        if st != 303 or not sid or set_cookie_count(hdrs) != 1:
            raise RuntimeError("%s: first login answered %d %s %s" % (
                name, st, hdrs, body[:300]))
        s["warm_sid"] = sid

    # warm-up: the rest of the warm bodies, same driver
    for name, s in sides.items():
        r = run_wrk_posts(s["acs"], s["bodies"][1:warm], args.concurrency,
                          expect_status=303, cookie_name=s["cookie"],
                          expect_location=s["location"], workdir=workdir)
        if r["bad"] or r["errors"]:
            raise RuntimeError("%s warm-up logins failed: %s" % (
                name, r["bad_example"]))

    # the timed logins: the same driver, in --slices chunks that alternate
    # between the instances (a shared machine's load drifts; alternating
    # gives both the same share of it)
    res = {}
    parts = {name: [] for name in sides}
    chunks = max(1, min(args.slices, args.logins))
    for k in range(chunks):
        for name, s in sides.items():
            lo = warm + k * counts[name] // chunks
            hi = warm + (k + 1) * counts[name] // chunks
            parts[name].append(run_wrk_posts(
                s["acs"], s["bodies"][lo:hi], args.concurrency,
                expect_status=303, cookie_name=s["cookie"],
                expect_location=s["location"], workdir=workdir))
    for name, s in sides.items():
        r = combine_posts(parts[name])
        res[name + "_logins"] = r
        good = not r["bad"] and not r["errors"]
        checks.append(("%s: every timed login 303 + session cookie" % name,
                       good, "%d answers, %d bad, %d socket errors%s" % (
                           r["requests"], r["bad"], r["errors"],
                           ", e.g. " + r["bad_example"]
                           if r["bad_example"] else "")))
        s["timed_first"] = s["bodies"][warm]
        # the first session thread 0 made in the first chunk
        s["timed_sid"] = r["cookies"][0] if r["cookies"] else None
        log("%s: %d logins in %.2f s" % (name, r["requests"],
                                         r["elapsed"]))

    # after the logins: sessions still live, replays refused
    b, m = sides["btsso"], sides["mellon"]
    for name, s, path in (("btsso", b, "/sso/session"),
                          ("mellon", m, "/app/index.html")):
        for which in ("warm_sid", "timed_sid"):
            st, _, _ = request(s["port"], "GET", path,
                               cookie="%s=%s" % (s["cookie"], s[which]))
            checks.append(("%s: %s session still live" % (
                name, "warm-up" if which == "warm_sid" else
                "an early timed"), st == 200, "GET %s -> %d" % (path, st)))
    b["httpd"].expect_log("BTSSO0210")
    st, _, _ = request(b["port"], "POST", "/sso/acs", b["timed_first"])
    checks.append(("btsso: replayed response refused", st == 403,
                   "-> %d" % st))
    m["httpd"].expect_log("has already been used")
    st, _, _ = request(m["port"], "POST", m["acs_path"],
                       m["timed_first"])
    checks.append(("mellon: replayed response refused", st == 400,
                   "-> %d" % st))
    m["httpd"].expect_log("Error processing authn response")
    st, _, _ = request(m["port"], "POST", m["acs_path"],
                       plain_body(m_template))
    checks.append(("mellon: unsigned response refused", 400 <= st < 500,
                   "-> %d" % st))
    st, _, _ = request(m["port"], "POST", m["acs_path"],
                       plain_body(ms.template(sign_assertion=True)))
    checks.append(("mellon: response signed by another key refused",
                   400 <= st < 500, "-> %d" % st))

    # a fresh live session each for the static runs
    for name, s in sides.items():
        st, hdrs, body = request(s["port"], "POST", s["acs_path"],
                                 s["bodies"][-1])
        sid = cookie_of(hdrs, s["cookie"])
        if st != 303 or not sid:
            raise RuntimeError("%s: login for the static run answered %d"
                               % (name, st))
        s["sid"] = "%s=%s" % (s["cookie"], sid)
        st_auth, h_auth, body_auth = request(
            s["port"], "GET", "/app/index.html", cookie=s["sid"])
        st_no, _, _ = request(s["port"], "GET", "/app/index.html")
        st_open, _, body_open = request(s["port"], "GET", "/open/index.html")
        # the module handed the user's attributes to the request
        email = dict((k.lower(), v) for k, v in h_auth).get("x-env-email")
        if not (st_auth == 200 and st_open == 200 and st_no in (302, 303)
                and body_auth == body_open
                and email == bench.user_email(len(s["bodies"]) - 1)):
            raise RuntimeError(
                "%s static set-up wrong: /app with cookie %d (X-Env-Email "
                "%s), without %d, /open %d" % (name, st_auth, email, st_no,
                                                st_open))

    # static runs: --slices runs of duration/slices seconds each,
    # alternating between the instances
    slice_s = max(1, args.duration // max(1, args.slices))
    # the cookie goes to /open too, as a browser sends it (bench.py does)
    for row, path, use_cookie in (("open", "/open/index.html", True),
                                  ("app", "/app/index.html", True)):
        got = {name: [] for name in sides}
        for _ in range(max(1, args.slices)):
            for name, s in sides.items():
                got[name].append(run_wrk_get(
                    s["url"] + path, s["sid"] if use_cookie else None,
                    args.concurrency, slice_s, workdir))
        for name, s in sides.items():
            r = combine_gets(got[name])
            res["%s_%s" % (name, row)] = r
            checks.append(("%s: %s all 200" % (name, path), r["bad"] == 0,
                           "%d requests, %d not 200" % (r["requests"],
                                                        r["bad"])))

    for name, s in sides.items():
        s["httpd"].stop()
        for ln in s["httpd"].unexpected_log_lines():
            checks.append(("%s: error log" % name, False, ln[:300]))
    return res, checks


def combine_posts(parts):
    """One result of run_wrk_posts from the results of its chunks."""
    n = sum(p["requests"] for p in parts)
    t = sum(p["elapsed"] for p in parts)
    return {"rps": n / t if t > 0 else 0.0, "requests": n, "elapsed": t,
            "bad": sum(p["bad"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "p50": statistics.median(p["p50"] for p in parts),
            "p99": max(p["p99"] for p in parts),
            "cookies": parts[0]["cookies"],
            "bad_example": next((p["bad_example"] for p in parts
                                 if p["bad_example"]), "")}


def combine_gets(parts):
    """One result of run_wrk_get from the results of its slices."""
    n = sum(p["requests"] for p in parts)
    t = sum(p["requests"] / p["rps"] for p in parts if p["rps"] > 0)
    return {"rps": n / t if t > 0 else 0.0, "requests": n,
            "bad": sum(p["bad"] for p in parts),
            "p50": statistics.median(p["p50"] for p in parts),
            "p99": max(p["p99"] for p in parts)}


def ratio(res, row):
    return res["btsso_" + row]["rps"] / res["mellon_" + row]["rps"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builddir", default=os.environ.get(
        "BTSSO_BUILDDIR", os.path.join(bench.TOP, "build")),
        help="build directory holding .libs/mod_btsso.so and btssoctl")
    ap.add_argument("--logins", type=int, default=2000,
                    help="timed logins of mellon")
    ap.add_argument("--btsso-logins", type=int, default=0,
                    help="timed logins of mod_btsso (0: 4 x --logins)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds per static-file run")
    ap.add_argument("--slices", type=int, default=4,
                    help="split the logins and each static run into this "
                    "many parts, alternating between the instances")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the whole comparison with fresh instances")
    ap.add_argument("--mellon-ca-bundle", choices=("empty", "system"),
                    default="empty",
                    help="OpenSSL CA bundle of mellon's httpd: empty (its "
                    "best case, the default) or the system's (stock "
                    "Debian: a login costs about 20 times more)")
    args = ap.parse_args()

    btsso_httpd.BUILDDIR = os.path.abspath(args.builddir)
    if not os.path.exists(btsso_httpd.module_path()):
        sys.exit("mellon: no %s (build first, or --builddir)"
                 % btsso_httpd.module_path())
    if not os.path.exists(MELLON_SO):
        sys.exit("mellon: no %s (sh scripts/deps.sh bench)" % MELLON_SO)
    if not shutil.which("wrk"):
        sys.exit("mellon: no wrk (sh scripts/deps.sh bench)")

    made = []
    workdir = tempfile.mkdtemp(prefix="btsso-mellon-")

    def stop_all(*_):
        for h in made:
            h.cleanup()
        del made[:]
        shutil.rmtree(workdir, ignore_errors=True)
        if _:
            sys.exit(1)

    signal.signal(signal.SIGTERM, stop_all)
    rounds = []
    try:
        for i in range(args.rounds):
            if args.rounds > 1:
                log("round %d of %d" % (i + 1, args.rounds))
            res, checks = one_round(args, made, workdir)
            rounds.append((res, checks))
            for h in made:
                h.cleanup()
            del made[:]
    except RuntimeError:
        for h in made:
            for ln in h.log_text().splitlines()[-12:]:
                log("error log %s: %s" % (os.path.basename(h.dir), ln[:400]))
        raise
    finally:
        stop_all()

    ok = True
    print("mod_btsso vs mod_auth_mellon %s (%s CA bundle): concurrency %d "
          "(wrk -t2), %d logins (mod_btsso %d), %d s static runs, %d CPUs, "
          "loopback" % (
              mellon_version(), args.mellon_ca_bundle, args.concurrency,
              args.logins, args.btsso_logins or 4 * args.logins,
              args.duration, os.cpu_count()))
    print("command: /usr/bin/python3 bench/mellon.py %s" % " ".join(
        sys.argv[1:]))
    rows = [("logins/s", "logins", 10.0),
            ("protected file req/s, live session", "app", 1.5),
            ("static file req/s, no auth (baseline)", "open", None)]
    w = max(len(r[0]) for r in rows) + 2
    print("%-*s %12s %12s %8s  %s" % (w, "", "mod_btsso", "mellon",
                                       "ratio", "goal"))
    for label, key, goal in rows:
        for n, (res, _) in enumerate(rounds):
            rr = ratio(res, key)
            tag = label if n == 0 else "  round %d" % (n + 1)
            print("%-*s %12.0f %12.0f %8.3f  %s" % (
                w, tag, res["btsso_" + key]["rps"],
                res["mellon_" + key]["rps"], rr,
                (">= %.1f %s" % (goal, "ok" if rr >= goal else "MISSED"))
                if goal else "~1 (same httpd)"))
        if len(rounds) > 1:
            rs = [ratio(res, key) for res, _ in rounds]
            print("%-*s %12s %12s %8.3f  min %.3f, max %.3f" % (
                w, "  median ratio", "", "", statistics.median(rs),
                min(rs), max(rs)))
    res = rounds[0][0]
    print("latency p50/p99 ms (round 1): logins btsso %.2f/%.2f, mellon "
          "%.2f/%.2f; protected btsso %.2f/%.2f, mellon %.2f/%.2f" % tuple(
              v * 1e3 for v in (
                  res["btsso_logins"]["p50"], res["btsso_logins"]["p99"],
                  res["mellon_logins"]["p50"], res["mellon_logins"]["p99"],
                  res["btsso_app"]["p50"], res["btsso_app"]["p99"],
                  res["mellon_app"]["p50"], res["mellon_app"]["p99"])))
    print("checks:")
    for n, (_, checks) in enumerate(rounds):
        for name, good, detail in checks:
            ok = ok and good
            if n == 0 or not good:
                print("  %-52s %s (%s)" % (name, "ok" if good else "FAILED",
                                           detail))
    if len(rounds) > 1 and ok:
        print("  (rounds 2-%d: the same checks, all ok)" % len(rounds))
    return 0 if ok else 1


def mellon_version():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}",
                        "libapache2-mod-auth-mellon"], capture_output=True,
                       text=True)
    return p.stdout.strip() or "(version unknown)"


if __name__ == "__main__":
    sys.exit(main())
