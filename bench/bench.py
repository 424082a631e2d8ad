#!/usr/bin/python3
"""bench.py - throughput of mod_btsso in one run (a benchmark, not a test).

    /usr/bin/python3 bench/bench.py [--builddir DIR] [--logins N]
                                    [--concurrency C] [--duration S]

Starts a throwaway httpd with the module (t/lib/btsso_httpd.py, set up like
the login tests by t/integration/portal.py: an SQLite store filled with
btssoctl, a pysaml2 IdP whose metadata the account imported) and measures:

  1. ACS logins/s: N unique IdP-initiated responses, signed with the IdP's
     key (t/fixtures/keys/okta.key) BEFORE the clock starts, POSTed to
     /sso/acs over keep-alive connections by C client threads.  Every answer
     must be a 303 to the RelayState target with a fresh session cookie;
     anything else aborts the run (a benchmark that measures errors is
     worthless).
  2. GET /app/index.html with a live session cookie against the same file
     under /open (no authentication), C connections each, with wrk when it
     is installed (its Lua hook counts every status other than 200), else a
     Python loop (which then is the bottleneck: the ratio is still fair,
     the absolute figures are not).

BTSSOConfigTTL stays at its default (10 s), unlike the tests (0): the point
is that a login reads no IdP configuration rows and parses no metadata.
LogLevel is warn, so the per-login info line is not written.

Loopback only; the run is bounded (about a minute); httpd and wrk are
stopped by PID, the instance directory is removed.  Exit status 0 when every
check held, 1 otherwise.
"""
import argparse
import http.client
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
sys.path.insert(0, os.path.join(TOP, "t", "integration"))

from lxml import etree  # noqa: E402
import xmlsec  # noqa: E402

import btsso_httpd  # noqa: E402
import samlgen  # noqa: E402

sys.path.insert(0, HERE)
import wrkpost  # noqa: E402

COOKIE = "btsso_session"
TARGET = "/app/landing"
SESSION_RE = re.compile(r"^%s=([0-9a-f]{64});" % COOKIE)


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- responses, signed before timing ------------------------------------------

class ResponseSigner:
    """Makes unique signed Responses from one unsigned template: per
    response only the IDs change and the Assertion is signed with a key
    loaded once (samlgen.sign() reloads key and cert from disk each time,
    which costs more than the signature)."""

    def __init__(self, template_xml, user_of=None):
        """user_of(index): the email of response index's person (NameID
        and mail), or None: the template's."""
        self.template = template_xml
        self.user_of = user_of
        self.key = xmlsec.Key.from_file(samlgen.key_path("okta.key"),
                                        xmlsec.KeyFormat.PEM)
        self.key.load_cert_from_file(samlgen.key_path("okta.crt"),
                                     xmlsec.KeyFormat.PEM)

    def make(self, index):
        resp = etree.fromstring(self.template)
        assertion = resp.find(samlgen.q(samlgen.NS_SAML, "Assertion"))
        if self.user_of is not None:
            # each response another person: one person signing in
            # thousands of times is no portal's Monday morning
            email = self.user_of(index)
            assertion.find(".//" + samlgen.q(samlgen.NS_SAML,
                                             "NameID")).text = email
            for attr in assertion.iter(samlgen.q(samlgen.NS_SAML,
                                                 "Attribute")):
                if attr.get("Name") == "mail":
                    attr.find(samlgen.q(samlgen.NS_SAML,
                                        "AttributeValue")).text = email
        resp.set("ID", "_resp-" + secrets.token_hex(16))
        aid = "_assert-" + secrets.token_hex(16)
        assertion.set("ID", aid)
        st = assertion.find(samlgen.q(samlgen.NS_SAML, "AuthnStatement"))
        st.set("SessionIndex", "_session-" + aid[1:])
        sig = xmlsec.template.create(assertion, xmlsec.Transform.EXCL_C14N,
                                     xmlsec.Transform.RSA_SHA256, ns="ds")
        assertion.find(samlgen.q(samlgen.NS_SAML, "Issuer")).addnext(sig)
        ref = xmlsec.template.add_reference(sig, xmlsec.Transform.SHA256,
                                            uri="#" + aid)
        xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
        ki = xmlsec.template.ensure_key_info(sig)
        xmlsec.template.x509_data_add_certificate(
            xmlsec.template.add_x509_data(ki))
        ctx = xmlsec.SignatureContext()
        ctx.key = self.key
        ctx.register_id(assertion, "ID")
        ctx.sign(sig)
        xml = etree.tostring(resp, xml_declaration=True, encoding="UTF-8")
        # base64 needs only three escapes (urlencode quotes per character,
        # which costs more than the signature)
        b64 = samlgen.to_b64(xml).replace("+", "%2B").replace(
            "/", "%2F").replace("=", "%3D")
        return ("SAMLResponse=%s&RelayState=%s" % (
            b64, urllib.parse.quote(TARGET, safe=""))).encode("ascii")


_signer = None


def user_email(index):
    return "u%d@acme.example" % index


def seed_users(db_path, count):
    """count users of acme, user_email(0..count-1), by bulk SQL (btssoctl
    per user would take minutes); before SSO is enabled, so the store's
    duplicate-email trigger has nothing to check."""
    db = sqlite3.connect(db_path, timeout=60)
    db.executemany("INSERT INTO users (account, extension, kind, email,"
                   " is_admin) VALUES ('acme', ?, 'user', ?, 0)",
                   ((str(1000 + i), user_email(i)) for i in range(count)))
    db.commit()
    db.close()


def _init_signer(template):
    global _signer
    # A pool worker is a fork of the benchmark: it must not inherit the
    # SIGTERM handler that stops every httpd and removes its directory
    # (the pool ends its workers with SIGTERM), or each pool shutdown
    # deletes the running instance's SQLite file under it, and every
    # database connection opened afterwards fails (503 store_unavailable).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _signer = ResponseSigner(template, user_email)


def _sign_one(i):
    return _signer.make(i)


def make_bodies(portal, count):
    """count urlencoded ACS form bodies, each a different signed Response
    each for another user of acme (user_email), IdP-initiated (valid for
    5 minutes)."""
    sp = portal.url + "/sso"
    template = samlgen.build_response(
        issuer=portal.idp.entity_id, audience=sp,
        destination=sp + "/acs", recipient=sp + "/acs",
        name_id="ann@example.com",
        attributes=[("mail", ["ann@example.com"]), ("givenName", ["Ann"])],
        sign_assertion=False)
    procs = max(1, os.cpu_count() or 1)
    with multiprocessing.get_context("fork").Pool(
            procs, _init_signer, (template,)) as pool:
        return pool.map(_sign_one, range(count), chunksize=64)


# ---- the ACS load -------------------------------------------------------------------

class LoginResult:
    def __init__(self):
        self.latencies = []
        self.sessions = []
        self.errors = []
        self.lock = threading.Lock()


def post_logins(port, bodies, concurrency, expect_location):
    """POST every body once, `concurrency` keep-alive connections at a
    time.  Returns (LoginResult, elapsed seconds)."""
    res = LoginResult()
    next_index = iter(range(len(bodies)))
    index_lock = threading.Lock()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat, sess, errs = [], [], []
        try:
            while True:
                with index_lock:
                    i = next(next_index, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/sso/acs", bodies[i], headers)
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException) as e:
                    errs.append((i, "transport: %r" % e))
                    conn.close()
                    continue
                lat.append(time.perf_counter() - t0)
                sid = None
                for h in r.headers.get_all("Set-Cookie") or []:
                    m = SESSION_RE.match(h)
                    if m:
                        sid = m.group(1)
                if (r.status != 303 or sid is None
                        or r.headers.get("Location") != expect_location):
                    errs.append((i, "%d %s %s" % (
                        r.status, r.headers.get("Location"),
                        body[:200].decode("utf-8", "replace"))))
                else:
                    sess.append((i, sid))
        finally:
            conn.close()
            with res.lock:
                res.latencies += lat
                res.sessions += sess
                res.errors += errs

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res, time.perf_counter() - t0


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values))) - 1))
    return values[k]


def get_status(port, path, cookie=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": "%s=%s" % (
            COOKIE, cookie)} if cookie else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# ---- static file load ------------------------------------------------------------------

WRK_LUA = """
-- count every answer that is not 200 (wrk itself only counts >= 400)
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
    if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do n = n + t:get("bad") end
    io.write(string.format("BENCH requests=%d bad=%d errors=%d "
        .. "p50_us=%d p99_us=%d\\n", summary.requests, n,
        summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(wrk, url, cookie, concurrency, duration, workdir,
            cookie_header=None):
    """GET url with wrk; cookie: our session cookie's value, or
    cookie_header: a whole "name=value" (bench/mellon.py's)."""
    script = os.path.join(workdir, "count.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    cmd = [wrk, "-t", str(min(2, concurrency)), "-c", str(concurrency),
           "-d", "%ds" % duration, "-s", script, url]
    if cookie:
        cookie_header = "%s=%s" % (COOKIE, cookie)
    if cookie_header:
        cmd[1:1] = ["-H", "Cookie: " + cookie_header]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=duration + 20)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        raise RuntimeError("wrk did not finish")
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    m = re.search(r"BENCH requests=(\d+) bad=(\d+) errors=(\d+) "
                  r"p50_us=(\d+) p99_us=(\d+)", out)
    if p.returncode != 0 or rps is None or m is None:
        raise RuntimeError("wrk failed (%d): %s%s" % (p.returncode, out, err))
    return {"rps": float(rps.group(1)), "requests": int(m.group(1)),
            "bad": int(m.group(2)) + int(m.group(3)),
            "p50": int(m.group(4)) / 1e6, "p99": int(m.group(5)) / 1e6}


def run_python_load(port, path, cookie, concurrency, duration):
    """The fallback without wrk: GET in a loop from `concurrency` threads."""
    headers = {"Cookie": "%s=%s" % (COOKIE, cookie)} if cookie else {}
    stop_at = time.perf_counter() + duration
    lock = threading.Lock()
    lat_all, bad = [], [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        lat, nbad = [], 0
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    nbad += 1
            except (OSError, http.client.HTTPException):
                nbad += 1
                conn.close()
                continue
            lat.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            lat_all.extend(lat)
            bad[0] += nbad

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"rps": len(lat_all) / elapsed, "requests": len(lat_all),
            "bad": bad[0], "p50": percentile(lat_all, 50),
            "p99": percentile(lat_all, 99)}


# ---- the instance ----------------------------------------------------------------------

def baseline_location(portal_mod):
    """/open: the same directory as /app, no authentication, and the same
    Header directives as the protected location, so that the only
    difference measured is AuthType BTSSO."""
    protected = portal_mod.PROTECTED.format(account_expr='"acme"')
    first = protected.split("</Location>", 1)[0]
    headers = [ln for ln in first.splitlines()
               if ln.strip().startswith("Header ")]
    return "<Location /open>\n%s\n</Location>\n" % "\n".join(headers)


def start_instance(portal_mod, make_httpd, instance, users):
    """The benchmark's mod_btsso, started: the login tests' portal with
    the default BTSSOConfigTTL, LogLevel warn, a session cache sized for
    tens of thousands of sessions made in seconds (the default 16 MiB
    holds about 25,000; docs/performance.md), /open beside /app, and
    `users` users of acme (user_email) added by bulk SQL.  bench/mellon.py
    starts the same."""
    p = portal_mod.Portal(
        make_httpd, None, workdir=instance,
        btsso_conf=("# BTSSOConfigTTL: the default (10 s), not the "
                    "tests' 0\nLogLevel warn\n"
                    "BTSSOSessionCache shmcb:%s/sessions(67108864)\n"
                    % instance),
        extra_conf=("Alias /open %s/htdocs/app\n" % instance)
        + baseline_location(portal_mod),
        modules=[("alias_module", "mod_alias.so")])
    p.start(enable=False)
    seed_users(p.httpd.db, users)
    p.ctl("enable", "acme")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builddir", default=os.environ.get(
        "BTSSO_BUILDDIR", os.path.join(TOP, "build")),
        help="build directory holding .libs/mod_btsso.so and btssoctl")
    ap.add_argument("--logins", type=int, default=16000,
                    help="signed responses posted in the timed ACS run, "
                    "each once, each for another user")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds of each static-file row")
    ap.add_argument("--slices", type=int, default=4,
                    help="the static rows in this many alternating parts")
    ap.add_argument("--no-wrk", action="store_true",
                    help="use the Python load loop even if wrk is there")
    args = ap.parse_args()

    btsso_httpd.BUILDDIR = os.path.abspath(args.builddir)
    if not os.path.exists(btsso_httpd.module_path()):
        sys.exit("bench: no %s (build first, or --builddir)"
                 % btsso_httpd.module_path())
    import portal as portal_mod

    made = []

    def make_httpd(**kw):
        h = btsso_httpd.Httpd(**kw)
        made.append(h)
        return h

    def stop_all(*_):
        for h in made:
            h.cleanup()
        if _:
            sys.exit(1)

    signal.signal(signal.SIGTERM, stop_all)
    wrk = None if args.no_wrk else shutil.which("wrk")
    ok = True
    workdir = tempfile.mkdtemp(prefix="btsso-bench-")
    try:
        instance = tempfile.mkdtemp(prefix="btsso-bench-httpd-")
        t_setup = time.perf_counter()
        warm = 32
        p = start_instance(portal_mod, make_httpd, instance,
                           args.logins + warm + 1)
        port = p.httpd.port
        log("httpd pid %d on %s (setup %.1f s)" % (
            p.httpd.proc.pid, p.url, time.perf_counter() - t_setup))

        t_gen = time.perf_counter()
        bodies = make_bodies(p, args.logins + warm + 1)
        log("signed %d responses in %.1f s (not timed)" % (
            len(bodies), time.perf_counter() - t_gen))
        expect = p.url + TARGET

        # warm-up: every child loads the account once, connections open
        res, _ = post_logins(port, bodies[:warm], args.concurrency, expect)
        if res.errors:
            raise RuntimeError("warm-up logins failed: %s" % res.errors[:3])
        live = res.sessions[0][1]
        timed = bodies[warm:warm + args.logins]
        spare = bodies[-1]

        cpu0 = os.times()
        if wrk:
            t0 = time.perf_counter()
            wres = wrkpost.run_wrk_posts(p.url + "/sso/acs", timed,
                                         args.concurrency, expect_status=303,
                                         cookie_name=COOKIE,
                                         expect_location=expect,
                                         workdir=workdir)
            elapsed = time.perf_counter() - t0
        else:
            res, elapsed = post_logins(port, timed, args.concurrency, expect)
        cpu1 = os.times()
        client_cpu = (cpu1.children_user - cpu0.children_user
                      + cpu1.children_system - cpu0.children_system) \
            if wrk else (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        if wrk:
            login_errors = wres["bad"] + wres["errors"]
            if login_errors:
                ok = False
                log("%d logins did not answer 303 to %s with a new session "
                    "cookie, e.g. %s" % (login_errors, expect,
                                         wres["bad_example"]))
            logins_rps = wres["rps"]
            lat50, lat99 = wres["p50"], wres["p99"]
            first_sid = wres["cookies"][0] if wres["cookies"] else None
            login_count = wres["requests"]
            client_span = elapsed
        else:
            login_errors = len(res.errors)
            if res.errors:
                ok = False
                log("%d of %d logins failed, e.g.:" % (len(res.errors),
                                                       len(timed)))
                for i, e in res.errors[:5]:
                    log("  #%d: %s" % (i, e))
            sids = {s for _, s in res.sessions}
            if len(sids) != len(res.sessions):
                ok = False
                log("session ids repeated: %d distinct of %d" % (
                    len(sids), len(res.sessions)))
            logins_rps = len(res.sessions) / elapsed
            lat50 = percentile(res.latencies, 50)
            lat99 = percentile(res.latencies, 99)
            first_sid = dict(res.sessions).get(0)
            login_count = len(res.sessions)
            client_span = elapsed

        # after the run: are the sessions and the replay marks still there?
        checks = []
        st, _ = get_status(port, "/sso/session", first_sid)
        checks.append(("first session of the run still live", st == 200,
                       "GET /sso/session -> %d" % st))
        st, _ = get_status(port, "/sso/session", live)
        checks.append(("warm-up session still live", st == 200,
                       "GET /sso/session -> %d" % st))
        replayed = [timed[0], timed[len(timed) // 2], timed[-1]]
        statuses = []
        for body in replayed:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/sso/acs", body, {
                "Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            r.read()
            conn.close()
            statuses.append(r.status)
        checks.append(("replay of the first responses refused",
                       all(st == 403 for st in statuses),
                       "POST /sso/acs -> %s" % ", ".join(
                           str(st) for st in statuses)))
        p.httpd.expect_log("BTSSO0210")

        # a fresh live session for the static comparison
        res2, _ = post_logins(port, [spare], 1, expect)
        if res2.errors:
            raise RuntimeError("login for the static run failed: %s"
                               % res2.errors)
        sid = res2.sessions[0][1]
        st_auth, body_auth = get_status(port, "/app/index.html", sid)
        st_noauth, _ = get_status(port, "/app/index.html")
        st_open, body_open = get_status(port, "/open/index.html")
        if not (st_auth == 200 and st_open == 200 and st_noauth == 302
                and body_auth == body_open):
            raise RuntimeError(
                "static set-up wrong: /app with cookie %d, without %d, "
                "/open %d" % (st_auth, st_noauth, st_open))

        # the same request to both, cookie included (a browser sends it
        # to every page): the difference is the authentication alone.
        # --slices runs of each, alternating, so that whatever else the
        # machine does falls on both alike
        slices = max(1, args.slices)
        part = max(1, args.duration // slices)
        parts = {"open": [], "app": []}
        log("GET /open and /app, %d x %d s each, alternating" % (slices,
                                                                 part))
        for _ in range(slices):
            for name, path in (("open", "/open/index.html"),
                               ("app", "/app/index.html")):
                if wrk:
                    parts[name].append(run_wrk(wrk, p.url + path, sid,
                                               args.concurrency, part,
                                               workdir))
                else:
                    parts[name].append(run_python_load(
                        port, path, sid, args.concurrency, part))
        runs = {}
        for name, path in (("open", "/open/index.html"),
                           ("app", "/app/index.html")):
            got = parts[name]
            runs[name] = {
                "rps": sum(g["rps"] for g in got) / len(got),
                "requests": sum(g["requests"] for g in got),
                "bad": sum(g["bad"] for g in got),
                "p50": sorted(g["p50"] for g in got)[len(got) // 2],
                "p99": max(g["p99"] for g in got)}
            if runs[name]["bad"]:
                ok = False
                log("%s: %d answers were not 200" % (path,
                                                     runs[name]["bad"]))
        unexpected = p.httpd.unexpected_log_lines()
    except RuntimeError:
        # the server's side of an aborted run, before its directory goes
        for h in made:
            for ln in h.log_text().splitlines()[-12:]:
                log("error log: " + ln[:400])
        raise
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    base = runs["open"]["rps"]
    tool = "wrk" if wrk else "python loop (client-bound)"
    rows = [
        ("GET /open/index.html, no auth, same cookie (baseline) [%s]"
         % tool,
         "%.0f req/s" % base, "1.00",
         "p50 %.2f ms, p99 %.2f ms" % (runs["open"]["p50"] * 1e3,
                                       runs["open"]["p99"] * 1e3)),
        ("GET /app/index.html, live session [%s]" % tool,
         "%.0f req/s" % runs["app"]["rps"],
         "%.2f" % (runs["app"]["rps"] / base),
         "p50 %.2f ms, p99 %.2f ms" % (runs["app"]["p50"] * 1e3,
                                       runs["app"]["p99"] * 1e3)),
        ("POST /sso/acs, %d unique signed responses [%s]" % (
            login_count, "wrk" if wrk else "python threads"),
         "%.0f logins/s" % logins_rps, "%.3f" % (logins_rps / base),
         "p50 %.2f ms, p99 %.2f ms" % (lat50 * 1e3, lat99 * 1e3)),
    ]
    print("mod_btsso benchmark: concurrency %d, %d CPUs, BTSSOConfigTTL "
          "default, loopback" % (args.concurrency, os.cpu_count()))
    w = max(len(r[0]) for r in rows)
    print("%-*s  %16s  %8s  %s" % (w, "metric", "value", "ratio", "latency"))
    for r in rows:
        print("%-*s  %16s  %8s  %s" % (w, r[0], r[1], r[2], r[3]))
    print("client (%s) CPU during the ACS run: %.0f%% of one "
          "core; httpd shares the same %d CPUs" % (
              "wrk" if wrk else "this script",
              100.0 * client_cpu / client_span, os.cpu_count()))
    print("checks:")
    print("  %-45s %s" % ("every timed login 303 + new cookie",
                          "ok" if not login_errors else
                          "FAILED (%d errors)" % login_errors))
    for name, good, detail in checks:
        ok = ok and good
        print("  %-45s %s (%s)" % (name, "ok" if good else "FAILED", detail))
    if unexpected:
        ok = False
        print("  unexpected error-log lines:")
        for ln in unexpected[:10]:
            print("    " + ln)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
