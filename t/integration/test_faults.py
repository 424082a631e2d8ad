"""Faults under load (issue 13 item 3), each mounted through a real httpd
while a bounded load (a few seconds, a few hundred requests, 127.0.0.1
only) of logins and protected-page requests runs:

- PostgreSQL stopped for some seconds, then started again: clean 503
  pages of the module's own while it is down (no internals), no 500, no
  crash, no leaked connection (pg_stat_activity), full service back
  without restarting httpd;
- one of two memcached servers (the session cache) killed, then started
  again: sessions on the other server go on, the rest sign in again, never
  a 500 or a crash;
- the session cache full: the oldest sessions go, logins go on, and a used
  assertion stays refused;
- an IdP metadata URL that accepts the connection and never answers (or
  drips a byte at a time): the admin API answers 502 within
  BTSSOMetadataFetchTimeout saying it timed out, the old configuration
  stays in force, logins go on meanwhile;
- SQLite on a full filesystem (a small tmpfs in httpd's own mount
  namespace; needs root): every write refused with a clear error, nothing
  half-written, reads and logins go on, writes work again once there is
  room;
- a graceful restart (SIGUSR1 to httpd's parent) under login load: no
  request fails, no session is lost;
- a child killed while it holds the session cache lock: the next child
  takes it, sessions and logins go on.

A crash shows as an "exit signal" line in the error log (checked here) or
as httpd's own exit status (the harness).
"""
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

import btsso_httpd
import cachesrv
import samlgen
from adminlib import Client, write_htpasswd
from portal import Portal

TOP = btsso_httpd.TOP
PGTMP = os.path.join(TOP, "t", "lib", "pgtmp.sh")
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")

IDP_MD = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
 <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
   <ds:X509Certificate>{cert}</ds:X509Certificate>
  </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    Location="https://idp.example.test/saml/sso"/>
{extra} </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""

ADMIN = """
<Location /admin/sso>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
    SetHandler btsso-admin
</Location>
"""

USERS = ["u%02d@example.com" % i for i in range(6)]

# what a page for people must never show: driver messages, addresses,
# internals (the detail goes to the error log only)
INTERNALS = re.compile(r"db_error|apr_dbd|PQ|libpq|postgres|sqlite|"
                       r"127\.0\.0\.1|memcache|socache|errno|"
                       r"connection refused|server closed", re.I)

EXIT_SIGNAL = re.compile(r"exit signal|child pid \d+ exit signal|"
                         r"seg(mentation)? ?fault|AH00052", re.I)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def cert_body(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


def idp_metadata(extra=""):
    return IDP_MD.format(entity=samlgen.IDP_ENTITY_ID,
                         cert=cert_body(samlgen.DEFAULT_CERT), extra=extra)


def sid_of(r):
    for h in r.raw.headers.getlist("Set-Cookie"):
        if h.startswith("btsso_session="):
            return h.split(";", 1)[0].split("=", 1)[1] or None
    return None


def assert_no_crash(h):
    """No child died on a signal (httpd's parent logs it as AH00052
    "child pid N exit signal ..."), and httpd still runs."""
    bad = [l for l in h.log_text().splitlines() if EXIT_SIGNAL.search(l)]
    assert not bad, "crash in the error log:\n" + "\n".join(bad[:10])
    assert h.proc is not None and h.proc.poll() is None, "httpd exited"


REFERENCE = re.compile(r'<code id="reference">[2-9A-HJ-NP-Z]{4}-'
                       r'[2-9A-HJ-NP-Z]{4}</code>')


def settings_of(cfg):
    """GET config without what changes on its own: the CSRF token, and the
    sign-in records (logins in between move them)."""
    cfg = dict(cfg)
    cfg.pop("csrf_token", None)
    cfg.pop("sign_ins", None)
    cfg["certificates"] = [{k: v for k, v in c.items()
                            if k != "last_verified"}
                           for c in cfg.get("certificates", [])]
    return cfg


def without_reference(body):
    """The page without its reference code (random letters could spell
    what INTERNALS looks for)."""
    return REFERENCE.sub("", body)


def assert_clean_503(r):
    """A 503 page of the module's own, for people: HTML, no internals, not
    httpd's default error document."""
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("text/html"), \
        r.headers
    body = r.text
    assert "<main>" in body and "Apache" not in body, body[:400]
    assert "temporarily unavailable" in body, body[:400]
    assert not INTERNALS.search(without_reference(body)), body
    # the reference code the person can quote, also in the log line
    assert REFERENCE.search(body), body[:600]


class Site:
    """httpd with mod_btsso, one account 'acme' whose IdP is samlgen's
    (IdP-initiated responses signed with the fixture key: cheap enough to
    make a few hundred for a load), optionally the admin API."""

    def __init__(self, make_httpd, tmp_path, admin=False, **httpd_kw):
        self.p = Portal(make_httpd, tmp_path, **httpd_kw)
        h = self.p.httpd
        self.htpasswd = os.path.join(h.dir, "htpasswd")
        if admin:
            h.extra_conf += ADMIN.format(htpasswd=self.htpasswd)
        write_htpasswd(self.htpasswd, ["u00@example.com"])

    @property
    def url(self):
        return self.p.url

    @property
    def httpd(self):
        return self.p.httpd

    def ctl(self, *args, **kw):
        return self.p.ctl(*args, **kw)

    def setup_store(self, users=USERS):
        """The account, its users (u00 is an admin), its IdP, enabled."""
        self.httpd.write_config()
        self.ctl("init")
        self.ctl("account", "add", "acme")
        for i, email in enumerate(users):
            args = ["user", "add", "acme", str(100 + i), email]
            if i == 0:
                args.append("--admin")
            self.ctl(*args)
        md = os.path.join(self.p.tmp, "samlgen-idp.xml")
        with open(md, "w") as f:
            f.write(idp_metadata())
        self.httpd.fix_perms()
        self.ctl("idp", "import", "acme", md)
        self.ctl("attr", "set", "acme", "mail")
        self.ctl("enable", "acme")

    def start(self, users=USERS):
        self.setup_store(users)
        self.httpd.start()
        return self

    def response(self, email="u00@example.com", **kw):
        acs = self.url + "/sso/acs"
        kw.setdefault("attributes", {"mail": [email]})
        return samlgen.build_response_b64(
            now=now(), audience=self.url + "/sso", destination=acs,
            recipient=acs, name_id=email, **kw)

    def acs(self, b64, session=None, timeout=30):
        return (session or requests).post(
            self.url + "/sso/acs", data={"SAMLResponse": b64},
            allow_redirects=False, timeout=timeout)

    def login(self, email="u00@example.com"):
        """A session id for email (IdP-initiated login)."""
        r = self.acs(self.response(email))
        assert r.status_code == 303, (r.status_code, r.text[:500])
        sid = sid_of(r)
        assert sid
        return sid

    def page(self, sid, session=None, timeout=30):
        return (session or requests).get(
            self.url + "/app/", cookies={"btsso_session": sid},
            allow_redirects=False, timeout=timeout)

    def admin(self):
        return Client(self, "u00@example.com", "acme")


class Load:
    """A bounded load in threads: each worker calls job(session, n) until
    stop(), the time limit or max_requests; job returns a tuple that is
    recorded with the time.  Exceptions (a hang past the client timeout, a
    reset) are recorded too: they are failures the tests judge."""

    def __init__(self, job, workers=4, seconds=10.0, max_requests=400,
                 think=0.0):
        self.job = job
        self.think = think
        self.workers = workers
        self.deadline = time.time() + seconds
        self.max_requests = max_requests
        self.results = []
        self.lock = threading.Lock()
        self.count = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(workers)]

    def _next(self):
        with self.lock:
            if self.stopping.is_set() or self.count >= self.max_requests \
                    or time.time() >= self.deadline:
                return None
            self.count += 1
            return self.count

    def _run(self):
        s = requests.Session()
        while True:
            n = self._next()
            if n is None:
                return
            t0 = time.time()
            # keep-alive, but no cookie carried from one request to the
            # next: each request says who it is
            s.cookies.clear()
            try:
                out = self.job(s, n)
            except Exception as e:  # recorded, judged by the test
                out = ("exception", repr(e))
            with self.lock:
                self.results.append((t0, time.time() - t0) + tuple(out))
            if self.think:
                self.stopping.wait(self.think)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def wait(self):
        """Until the time limit or max_requests."""
        for t in self.threads:
            t.join(self.deadline - time.time() + 60)
        return self.results

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60)
        return self.results


def statuses(results):
    out = {}
    for r in results:
        out[r[3]] = out.get(r[3], 0) + 1
    return out


# ---- PostgreSQL stopped and started again ------------------------------------

class PgCluster:
    """t/lib/pgtmp.sh's throwaway cluster, which this test stops and starts
    again on the same port."""

    def __init__(self):
        if not os.path.exists(os.path.join(PGBIN, "pg_ctl")):
            pytest.skip("PostgreSQL is not installed (%s)" % PGBIN)
        self.dir = tempfile.mkdtemp(prefix="btsso-pg-")
        r = subprocess.run(["sh", PGTMP, "start", self.dir],
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["sh", PGTMP, "stop", self.dir])
            pytest.fail("pgtmp.sh start failed: " + r.stderr.strip())
        self.params = r.stdout.strip().splitlines()[-1]
        with open(os.path.join(self.dir, "port")) as f:
            self.port = int(f.read())

    def _pg_ctl(self, *args):
        cmd = [os.path.join(PGBIN, "pg_ctl"), "-D",
               os.path.join(self.dir, "data")] + list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def stop(self):
        # fast: the server ends every backend, as a crash or an
        # operator's restart does
        self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")

    def start(self):
        self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-w",
                     "-t", "30", "-o",
                     "-c listen_addresses=127.0.0.1 -p %d "
                     "-c unix_socket_directories=%s -c fsync=off "
                     "-c full_page_writes=off" % (self.port, self.dir),
                     "start")

    def backends(self):
        """Client connections to the test database, ours excluded."""
        import psycopg2
        conn = psycopg2.connect(self.params)
        try:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                        "datname = 'btsso_test' AND "
                        "backend_type = 'client backend' AND "
                        "pid <> pg_backend_pid()")
            return cur.fetchone()[0]
        finally:
            conn.close()

    def destroy(self):
        subprocess.run(["sh", PGTMP, "stop", self.dir], check=False)


@pytest.fixture
def pg():
    c = PgCluster()
    yield c
    c.destroy()


def login_and_page_job(site, sids, responses):
    """Alternately a login (a fresh signed response) and a protected page
    of one of the sessions made before the load."""
    def job(s, n):
        if n % 2 == 0 and responses:
            b64 = responses.pop()
            r = site.acs(b64, session=s, timeout=30)
            return ("acs", r.status_code, r.text[:2000],
                    r.headers.get("Content-Type", ""))
        sid = sids[n % len(sids)]
        r = site.page(sid, session=s, timeout=30)
        return ("page", r.status_code, r.text[:2000],
                r.headers.get("Content-Type", ""), sid)
    return job


def debug_dump(name, results, h=None):
    """With BTSSO_FAULTS_DEBUG=DIR: the load's answers and the error log
    kept there for a look after the test."""
    d = os.environ.get("BTSSO_FAULTS_DEBUG")
    if not d:
        return
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".results"), "w") as f:
        for r in sorted(results):
            f.write("%.3f %.3f %s %s %s\n" % (r[0], r[1], r[2], r[3],
                                             r[4][-300:].replace("\n", " ")))
    if h is not None:
        shutil.copy(h.error_log, os.path.join(d, name + ".error.log"))


def judge(results, allowed):
    """Every answer's status among allowed; every 503 a clean page."""
    bad = [r for r in results if r[3] not in allowed]
    assert not bad, "unexpected answers: %r" % [
        (r[2], r[3], r[4][:300]) for r in bad[:5]]
    for r in results:
        if r[3] == 503:
            body = r[4]
            assert r[5].startswith("text/html"), r
            assert "<main>" in body and "Apache" not in body, body[:400]
            assert "temporarily unavailable" in body, body[:400]
            assert not INTERNALS.search(without_reference(body)), body


def test_postgresql_down_under_load(make_httpd, tmp_path, pg):
    # one process: the "database down" state that spares the workers the
    # retry rounds is per process
    site = Site(make_httpd, tmp_path, dbdriver="pgsql", dbdparams=pg.params,
                processes=1)
    site.start()
    h = site.httpd
    # mod_dbd's own lines while the database is down
    for tag in ("AH00629", "AH00633", "AH00635", "AH00631", "AH00632",
                "AH00639", "AH02655", "BTSSO0101", "BTSSO0330",
                "BTSSO0312", "BTSSO0210", "BTSSO0351",
                "BTSSO0253"):   # sign-in counts not written while down
        h.expect_log(tag)
    sids = [site.login(u) for u in USERS[:8]]
    for sid in sids:
        assert site.page(sid).status_code == 200

    # warm: the connections a load of this shape holds
    resp = [site.response(USERS[i % len(USERS)]) for i in range(30)]
    warm = Load(login_and_page_job(site, sids, resp), workers=3,
                seconds=2, max_requests=80, think=0.05).start().wait()
    judge(warm, {200, 303})
    before = pg.backends()
    assert 0 < before <= 8, before

    resp = [site.response(USERS[i % len(USERS)]) for i in range(200)]
    load = Load(login_and_page_job(site, sids, resp), workers=3,
                seconds=20, max_requests=600, think=0.1).start()
    time.sleep(1)
    pg.stop()
    t_down = time.time()    # down from here on (stop waits for it)
    time.sleep(5)
    t_up = time.time()      # up from here on, for all the test knows
    pg.start()
    time.sleep(3.5)
    results = load.stop()
    debug_dump("pg", results, h)
    print("down %.3f up %.3f" % (t_down, t_up))
    judge(results, {200, 303, 503})
    # every answer given while it was down is a 503 (a request may also
    # wait out a short outage in the connection retries and succeed);
    # after one round of retries failed, the 503s come at once instead of
    # each request holding a worker for the whole round
    down = [r for r in results if t_down < r[0] + r[1] < t_up]
    assert down and all(r[3] == 503 for r in down), statuses(down)
    assert sum(1 for r in down if r[1] < 1) >= 5, \
        [round(r[1], 2) for r in down]
    # no request hung: each answered well within the client timeout
    assert max(r[1] for r in results) < 10, max(r[1] for r in results)

    # full service back without restarting httpd: every session, a login
    deadline = time.time() + 15
    while True:
        codes = [site.page(sid).status_code for sid in sids]
        r = site.acs(site.response("u03@example.com"))
        if all(c == 200 for c in codes) and r.status_code == 303:
            break
        assert time.time() < deadline, (codes, r.status_code, r.text[:300])
        time.sleep(0.5)
    after_ok = [r for r in results if r[0] > t_up + 2]
    assert after_ok and all(r[3] in (200, 303) for r in after_ok), \
        statuses(after_ok)
    # no leaked connection: as many as the same load held before (each
    # process keeps what it used, at most DBDMax), none left over from
    # the outage
    after = pg.backends()
    print("backends before %d after %d" % (before, after))
    assert after <= max(before, 2) + 2 and after <= 8, (before, after)

    # A quick restart while httpd is idle: the connections it keeps were
    # ended by the server without httpd noticing.  The next requests may
    # get a 503 each while those are found dead, then every one works
    # again, with no connection left that lost its prepared statements.
    pg.stop()
    pg.start()
    answers = []
    t0 = time.time()
    for i in range(12):
        answers.append(site.page(sids[i % len(sids)]).status_code)
        answers.append(site.acs(site.response(USERS[i % len(USERS)])).status_code)
    print("idle restart: %.1f s: %r" % (time.time() - t0, answers))
    assert set(answers) <= {200, 303, 503}, answers
    tail = answers[-10:]
    assert all(c in (200, 303) for c in tail), answers
    assert_no_crash(h)


# ---- memcached killed and started again ----------------------------------------

wait_port = cachesrv.wait_port


class Memcached:
    def __init__(self, port=None, megabytes=16):
        if shutil.which("memcached") is None:
            pytest.fail("memcached is not installed (scripts/deps.sh test)")
        self.port = port or btsso_httpd.free_port()
        self.megabytes = megabytes
        self.proc = None
        self.start()

    def start(self):
        cmd = ["memcached", "-l", "127.0.0.1", "-p", str(self.port),
               "-U", "0", "-m", str(self.megabytes)]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "memcached")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def two_memcached():
    a, b = Memcached(), Memcached()
    yield a, b
    a.stop()
    b.stop()


def test_memcached_killed_under_load(make_httpd, tmp_path, two_memcached):
    """Sessions spread over two memcached servers; one is killed under
    load and started again (empty).  Sessions on the other go on; the
    rest sign in again; never a 500, never a crash."""
    m1, m2 = two_memcached
    site = Site(make_httpd, tmp_path, processes=2,
                modules=[("socache_memcache_module",
                          "mod_socache_memcache.so")],
                btsso_conf="BTSSOSessionCache memcache:127.0.0.1:%d,"
                           "127.0.0.1:%d\n" % (m1.port, m2.port))
    site.start()
    h = site.httpd
    for tag in ("BTSSO0301", "BTSSO0302", "BTSSO0303", "BTSSO0304",
                "BTSSO0210", "socache_memcache:"):
        h.expect_log(tag)
    sids = [site.login(USERS[i % len(USERS)]) for i in range(16)]
    assert all(site.page(sid).status_code == 200 for sid in sids)

    resp = [site.response(USERS[i % len(USERS)]) for i in range(120)]
    load = Load(login_and_page_job(site, sids, resp), workers=3,
                seconds=15, max_requests=240, think=0.07).start()
    time.sleep(1)
    t_kill = time.time()
    m2.kill()
    time.sleep(3)
    m2.start()
    t_up = time.time()
    time.sleep(3)
    results = load.stop()
    debug_dump("memcached", results, h)
    # a lost session is a sign-in again (302 to the IdP), a cache that
    # cannot vouch for an assertion a 503: never a 500
    judge(results, {200, 302, 303, 503})
    assert_no_crash(h)
    # logins go on on the surviving server: a 503 at most for the first
    # requests that found a server gone (each process then skips it)
    during = [r for r in results if r[2] == "acs" and r[0] > t_kill]
    assert sum(1 for r in during if r[3] == 303) > 5, statuses(during)
    assert sum(1 for r in during if r[3] == 503) <= 4, statuses(during)
    assert all(r[3] == 303 for r in results
               if r[2] == "acs" and r[0] > t_up + 1), statuses(results)

    final = {sid: site.page(sid).status_code for sid in sids}
    kept = [sid for sid, c in final.items() if c == 200]
    lost = [sid for sid, c in final.items() if c != 200]
    assert kept and lost, final     # both servers held some
    assert all(final[sid] == 302 for sid in lost), final
    # the sessions on the surviving server were never refused
    refused = [r for r in results if r[2] == "page" and r[3] != 200
               and r[6] in kept]
    assert not refused, refused[:3]
    # full service: a login works, and its session holds.  For a few
    # seconds after a server returns, httpd's processes may disagree on
    # whether it is back (each pings a dead server again after 5 s), and a
    # new session written by one is looked for elsewhere by another: the
    # person signs in again.  Then it settles.
    deadline = time.time() + 15
    while True:
        r = site.acs(site.response("u01@example.com"))
        assert r.status_code in (303, 503), (r.status_code, r.text[:300])
        if r.status_code == 303 and all(
                site.page(sid_of(r)).status_code == 200 for _ in range(4)):
            break
        assert time.time() < deadline, "no full service after the restart"
        time.sleep(0.5)


# ---- the session cache full ----------------------------------------------------

def test_session_cache_full(make_httpd, tmp_path):
    """A session cache far too small for the logins it gets: the oldest
    sessions go, logins go on, and an assertion that was used stays
    refused while it is valid (its replay mark must not be the first thing
    evicted)."""
    site = Site(make_httpd, tmp_path, processes=1)
    h = site.httpd
    # 2 subcaches of 15 entries: a login writes 2 or 3 (session, replay
    # mark, NameID index)
    h.btsso_conf += "BTSSOSessionCache shmcb:%s/sessions(16384)\n" % h.dir
    site.start()
    h.expect_log("BTSSO0210")   # the replays below
    first = site.response("u00@example.com")
    r = site.acs(first)
    assert r.status_code == 303, r.text
    sid_first = sid_of(r)
    early = [site.response(USERS[i % len(USERS)]) for i in range(5)]
    early_sids = [sid_of(site.acs(b)) for b in early]
    assert all(early_sids)

    resp = [site.response(USERS[i % len(USERS)]) for i in range(60)]

    def job(s, n):
        r = site.acs(resp[n - 1], session=s)
        return ("acs", r.status_code, r.text[:2000],
                r.headers.get("Content-Type", ""), sid_of(r))
    results = Load(job, workers=3, seconds=20,
                   max_requests=len(resp)).start().wait()
    debug_dump("full", results, h)
    judge(results, {303})
    assert_no_crash(h)
    # the oldest sessions went, the newest hold
    oldest = [sid_first] + early_sids
    gone = [site.page(sid).status_code for sid in oldest]
    print("oldest sessions:", gone)
    assert gone.count(302) >= 4, gone
    newest = [r[6] for r in sorted(results)[-5:]]
    assert all(site.page(sid).status_code == 200 for sid in newest)
    # logins go on
    assert site.acs(site.response("u02@example.com")).status_code == 303
    # every used assertion is still refused, the oldest included
    for b64 in [first] + early + resp[:10] + resp[-10:]:
        r = site.acs(b64)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert "replay" in r.text.lower() or "already" in r.text.lower(), \
            r.text[:500]


def test_sessions_not_pushed_out_by_marks_and_indexes(make_httpd, tmp_path):
    """On shmcb a login's NameID index and replay mark live in a shmcb of
    their own beside the session cache, so a session cache of 32 KiB keeps
    30 logins' sessions; with the two other entries of each login beside
    them (90 entries) the fullest sub-caches evicted sessions: on the
    version before, most of the 30 were gone.  A used assertion is still
    refused."""
    site = Site(make_httpd, tmp_path, processes=1)
    h = site.httpd
    h.btsso_conf += "BTSSOSessionCache shmcb:%s/sessions(32768)\n" % h.dir
    site.start()
    h.expect_log("BTSSO0210")   # the replay below
    used = [site.response(USERS[i % len(USERS)]) for i in range(30)]
    sids = [sid_of(site.acs(b)) for b in used]
    assert all(sids)
    kept = [site.page(sid).status_code for sid in sids]
    assert kept == [200] * len(sids), kept
    r = site.acs(used[0])
    assert r.status_code == 403, r.text[:300]
    assert "replay" in r.text.lower() or "already" in r.text.lower(), \
        r.text[:500]


# ---- an IdP metadata URL that never answers ---------------------------------------

class StuckServer:
    """127.0.0.1 HTTP servers that accept a connection and then never
    answer ('silent'), or answer a byte at a time, forever ('drip')."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.accepted = 0
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/federationmetadata.xml" % self.port

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        try:
            conn.recv(65536)
            if self.mode == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                             b"application/samlmetadata+xml\r\n\r\n")
                while not self.stopping.wait(0.3):
                    conn.sendall(b" ")
            else:
                self.stopping.wait(120)
        except OSError:
            pass

    def stop(self):
        self.stopping.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.mark.parametrize("mode", ["silent", "drip"])
def test_metadata_url_never_answers(make_httpd, tmp_path, mode):
    timeout = 2
    site = Site(make_httpd, tmp_path, admin=True, processes=1,
                btsso_conf="BTSSOMetadataFetchHTTP On\n"
                           "BTSSOMetadataFetchAllow 127.0.0.1/32\n"
                           "BTSSOMetadataFetchTimeout %d\n" % timeout)
    site.start()
    stuck = StuckServer(mode)
    try:
        admin = site.admin()
        before = settings_of(admin.config())
        assert before["idp"]["entity_id"] == samlgen.IDP_ENTITY_ID

        # logins go on while the fetch waits
        resp = [site.response(USERS[i % len(USERS)]) for i in range(24)]

        def job(s, n):
            r = site.acs(resp[n - 1], session=s)
            return ("acs", r.status_code, r.text[:2000],
                    r.headers.get("Content-Type", ""))
        load = Load(job, workers=2, seconds=timeout + 4,
                    max_requests=len(resp), think=0.15).start()
        t0 = time.time()
        r = admin.post("metadata", json={"url": stuck.url()}, timeout=30)
        took = time.time() - t0
        results = load.wait()
        assert stuck.accepted >= 1
        assert r.status_code == 502, (r.status_code, r.text)
        j = r.json()
        assert j["error"] == "fetch_failed", j
        # within the limit (plus what a busy machine adds), and it says so
        assert timeout - 0.5 <= took < timeout + 4, took
        assert re.search(r"did not answer within %d s" % timeout,
                         j["message"]), j
        assert not INTERNALS.search(j["message"]), j
        # the old configuration stays in force
        after = settings_of(admin.config())
        assert after == before
        judge(results, {303})
        assert max(x[1] for x in results) < timeout, \
            "a login waited for the fetch"
        assert site.acs(site.response("u05@example.com")).status_code == 303
    finally:
        stuck.stop()


# ---- a graceful restart under login load -----------------------------------------

def test_graceful_restart_under_login_load(make_httpd, tmp_path):
    """SIGUSR1 to httpd's parent (apachectl graceful) twice while logins
    and protected pages run: every request is answered as usual, and every
    session, those made during the restarts included, still holds."""
    site = Site(make_httpd, tmp_path, processes=2)
    site.start()
    h = site.httpd
    # the event MPM's own complaint while the old generation's children
    # still finish their requests in the small scoreboard of the test
    h.expect_log("AH03490")
    sids = [site.login(USERS[i % len(USERS)]) for i in range(6)]
    resp = [site.response(USERS[i % len(USERS)]) for i in range(70)]
    made = []

    def job(s, n):
        # a new connection each time: a browser retries a request on a
        # kept-alive connection the old generation closed, requests does
        # not, and that is not what this test is about
        hdr = {"Connection": "close"}
        if n % 2 == 0 and resp:
            r = requests.post(site.url + "/sso/acs",
                              data={"SAMLResponse": resp.pop()},
                              headers=hdr, allow_redirects=False, timeout=30)
            if r.status_code == 303:
                made.append(sid_of(r))
            return ("acs", r.status_code, r.text[:2000],
                    r.headers.get("Content-Type", ""))
        sid = sids[n % len(sids)]
        r = requests.get(site.url + "/app/", headers=hdr,
                         cookies={"btsso_session": sid},
                         allow_redirects=False, timeout=30)
        return ("page", r.status_code, r.text[:2000],
                r.headers.get("Content-Type", ""), sid)

    load = Load(job, workers=3, seconds=12, max_requests=240,
                think=0.02).start()
    time.sleep(1)
    h.graceful()
    time.sleep(1)
    h.graceful()
    time.sleep(1)
    results = load.stop()
    debug_dump("graceful", results, h)
    judge(results, {200, 303})
    assert_no_crash(h)
    assert h.log_text().count("resuming normal operations") >= 3
    # no session lost
    for sid in sids + made:
        assert site.page(sid).status_code == 200, sid
    assert len(made) > 10, len(made)


# ---- a child killed holding the session cache lock -------------------------------

def child_pids(parent):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)],
                         capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def kill_holding_the_lock(pid, request):
    """Stop httpd child `pid` (gdb) right after it took the session cache
    lock for `request` (called in a thread once the breakpoint is set),
    then SIGKILL it there.  gdb's output."""
    gdb = subprocess.Popen(
        ["gdb", "-nx", "-batch", "-p", str(pid),
         "-ex", "set pagination off",
         "-ex", "break btsso_cache_lock_take",
         "-ex", "continue",
         "-ex", "finish",          # back in the caller: the lock is held
         "-ex", "kill"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    out = []
    sent = None
    for line in gdb.stdout:
        out.append(line)
        if sent is None and line.startswith("Breakpoint 1 at"):
            sent = threading.Thread(target=request, daemon=True)
            sent.start()
    gdb.wait(60)
    return "".join(out)


@pytest.mark.parametrize("mechanism", ["pthread", "fcntl"])
def test_child_killed_holding_the_session_lock(make_httpd, tmp_path,
                                               mechanism):
    """A child that dies while it holds the session cache lock (killed
    there through gdb) must not leave every other process waiting for it
    for ever: the next child takes the lock, sessions are read and logins
    written again.  "pthread" is the module's own robust mutex (BTSSO0014
    says it recovered), "fcntl" is APR's file lock, which the kernel
    releases with the process."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed (scripts/deps.sh test installs it)")
    site = Site(make_httpd, tmp_path, processes=1)
    h = site.httpd
    if mechanism != "pthread":
        h.btsso_conf += "Mutex %s:%s btsso-session\n" % (mechanism, h.dir)
    site.start()
    h.expect_log("AH00052")      # the child's death: ours, on purpose
    h.expect_log("BTSSO0014")
    said = {"pthread": "session cache lock: pthread (robust, without "
                       "priority inheritance)",
            "fcntl": "session cache lock: fcntl"}[mechanism]
    assert said in h.log_text(), h.log_text()[-2000:]
    sid = site.login()
    assert site.page(sid).status_code == 200
    victims = child_pids(h.proc.pid)
    assert len(victims) == 1, victims
    victim = victims.pop()

    def request():
        try:
            site.page(sid, timeout=30)
        except requests.RequestException:
            pass                # its child dies under it
    out = kill_holding_the_lock(victim, request)
    if "ptrace" in out and "not permitted" in out:
        pytest.skip("this machine forbids ptrace: " + out[-300:])
    assert "hit Breakpoint 1" in out and "killed" in out, out
    deadline = time.time() + 20
    while os.path.exists("/proc/%d" % victim) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists("/proc/%d" % victim), out
    # the parent starts another child; it must get the lock
    while not child_pids(h.proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    r = site.page(sid, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert site.acs(site.response("u01@example.com"),
                    timeout=10).status_code == 303
    assert site.page(site.login("u02@example.com"),
                     timeout=10).status_code == 200
    if mechanism == "pthread":
        assert "BTSSO0014" in h.log_text(), h.log_text()[-2000:]


# ---- SQLite on a full filesystem ---------------------------------------------------

def tmpfs_wrapper(workdir, program, store_dir, size="4m"):
    """A script that runs `program` in a private mount namespace where
    store_dir is a small tmpfs holding a copy of what store_dir held on
    disk (the process keeps its PID: unshare and sh exec).  Nothing
    outside that process tree sees the tmpfs; nsenter -t PID -m does."""
    user = btsso_httpd.run_user() or "root"
    script = os.path.join(workdir, "tmpfs-" + os.path.basename(program))
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                "exec /usr/bin/unshare -m --propagation private /bin/sh -c "
                "'set -e; cp -a \"$0\"/. \"$0.disk\"; "
                "mount -t tmpfs -o size=%s,mode=0755 btsso-full \"$0\"; "
                "cp -a \"$0.disk\"/. \"$0\"/; chown -R %s \"$0\"; "
                "exec %s \"$@\"' %s \"$@\"\n"
                % (size, user, program, store_dir))
    os.chmod(script, 0o755)
    return script


def in_ns(pid, *cmd, check=True):
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--"]
                          + list(cmd), capture_output=True, text=True,
                          timeout=60, check=check)


ATTRS = "".join('  <saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:'
                '2.0:assertion" Name="urn:example:attribute:%04d:%s"/>\n'
                % (i, "x" * 200) for i in range(300))


def test_sqlite_full_filesystem(make_httpd, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("a tmpfs in a private mount namespace needs root "
                    "(run the suite as root, e.g. in CI's container)")
    workdir = tempfile.mkdtemp(prefix="btsso-httpd-")
    store_dir = os.path.join(workdir, "store")
    os.makedirs(store_dir)
    db = os.path.join(store_dir, "btsso.db")
    site = Site(make_httpd, tmp_path, admin=True, processes=1,
                workdir=workdir, db=db)
    h = site.httpd
    site.setup_store()
    monkeypatch.setattr(btsso_httpd, "HTTPD",
                        tmpfs_wrapper(workdir, btsso_httpd.HTTPD, store_dir))
    h.start()
    pid = h.proc.pid
    h.expect_log("BTSSO0401")       # the refused writes, for the operator
    h.expect_log("BTSSO0253")       # sign-in counts not written while full
    admin = site.admin()
    sids = [site.login(u) for u in USERS[:3]]
    before = settings_of(admin.config())

    # fill the filesystem to the last block
    in_ns(pid, "sh", "-c",
          "dd if=/dev/zero of=%s/filler bs=64k 2>/dev/null; "
          "dd if=/dev/zero of=%s/filler2 bs=512 2>/dev/null; "
          "df %s; true" % (store_dir, store_dir, store_dir))
    df = in_ns(pid, "df", "--output=avail", store_dir).stdout.split()
    assert df[-1] == "0", df

    big_md = idp_metadata(extra=ATTRS)
    writes = [
        ("PUT", "email-attribute", {"json": {"attribute": "email"}}),
        ("POST", "metadata", {"data": big_md.encode(), "headers": {
            "Content-Type": "application/samlmetadata+xml"}}),
        ("POST", "certificates", {"data": open(os.path.join(
            TOP, "t", "fixtures", "keys", "okta.crt")).read()}),
        ("PUT", "enabled", {"json": {"enabled": False}}),
    ]
    for method, path, kw in writes:
        r = admin.send(method, path, version=False, timeout=30, **kw)
        # refused, with a clear error for the administrator, no internals
        assert r.status_code == 507, (path, r.status_code, r.text)
        j = r.json()
        assert j["error"] == "store_full", (path, j)
        assert "nothing was changed" in j["message"], j
        assert not INTERNALS.search(j["message"]), j
        # nothing half-written: the configuration reads back the same
        now_cfg = settings_of(admin.config())
        assert now_cfg == before, path
    # reads and logins go on
    for sid in sids:
        assert site.page(sid).status_code == 200
    for u in USERS[3:6]:
        assert site.page(site.login(u)).status_code == 200
    # the database is whole
    check = in_ns(pid, "/usr/bin/python3", "-c",
                  "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                  "print(c.execute('PRAGMA integrity_check').fetchone()[0])",
                  db)
    assert check.stdout.strip() == "ok", check

    # room again: writes work, without a restart
    in_ns(pid, "rm", "-f", os.path.join(store_dir, "filler"),
          os.path.join(store_dir, "filler2"))
    r = admin.put("email-attribute", json={"attribute": "email"},
                  version=False)
    assert r.status_code == 200, r.text
    assert admin.config()["email"]["attribute"] == "email"
    assert_no_crash(h)


@pytest.mark.parametrize("named", [True, False], ids=["file", "anonymous"])
def test_sessions_spread_over_shmcb_shards(make_httpd, tmp_path, named):
    """A shmcb session cache of 64 MiB is ten segments, each with 64
    sub-caches of its own (shmcb walks every entry of a sub-cache to find
    one, and makes at most 256 in one segment: one segment of 64 MiB would
    have 256), named after its file or anonymous as the cache is.  Every
    session is found in its shard by both processes and after a graceful
    restart; a sign-out ends the session it names and no other; attributes
    of 32 KiB still fit a sub-cache of a shard."""
    site = Site(make_httpd, tmp_path, processes=2)
    h = site.httpd
    h.btsso_conf += ("BTSSOSessionCache shmcb:%s(67108864)\n"
                     "LogLevel socache_shmcb:debug\n"
                     % (h.dir + "/sessions" if named else ""))
    site.start()
    shards = re.findall(r"AH00822: for \d+ bytes \(6710886 including "
                        r"header\), recommending (\d+) subcaches", h.log_text())
    assert shards == ["64"] * 10, shards
    sids = [site.login(USERS[i % len(USERS)]) for i in range(40)]
    big = {"mail": ["u01@example.com"]}
    big.update({"big%d" % i: [str(i) * 8000] for i in range(1, 5)})
    sids += [sid_of(site.acs(site.response("u01@example.com",
                                           attributes=big)))
             for _ in range(10)]
    assert all(sids)
    # keep-alive connections land on either process
    with requests.Session() as s:
        kept = [site.page(sid, session=s).status_code for sid in sids]
    assert kept == [200] * len(sids), kept
    r = requests.get(site.url + "/sso/logout", cookies={"btsso_session":
                                                        sids[3]},
                     allow_redirects=False, timeout=30)
    assert r.status_code in (302, 303), r.status_code
    h.graceful()
    kept = [site.page(sid).status_code for sid in sids]
    assert kept == [200] * 3 + [302] + [200] * (len(sids) - 4), kept
