"""Sign-in records (issue 11 item 1) through a real httpd.

- every refusal page of a sign-in shows a short reference code, the same
  code is in the error log line and in GET <account>/sign-ins (and
  btssoctl sign-ins), with the refusal's code and operator detail, never a
  SAML message;
- a refusal whose account is unknown (unknown Issuer) still gets a code
  in page and log, and no record;
- successes are counted per day, with the last one, and per certificate
  the time it last verified a login (GET config); when the secondary has
  verified logins since the primary last did, config says promote it;
- filters, limit and paging;
- an unauthenticated flood of bad responses for one account writes at
  most the token bucket's rows (so neither fills the store nor queues
  logins behind store writes), every refusal is still counted, and a
  genuine login during and after the flood succeeds.

Responses are made by t/lib/samlgen.py (IdP-initiated), signed with the
fixture keys resp-idp-rsa (the account's primary certificate) and
resp-idp-rsa-next (its secondary).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_signins.py
"""
import datetime
import http.client
import json
import os
import re
import shutil
import sqlite3
import time
import urllib.parse

import pytest

import btsso_httpd
import samlgen
from adminlib import Client, write_htpasswd
from portal import Portal

KEYS = os.path.join(btsso_httpd.TOP, "t", "fixtures", "keys")
PRIMARY = (os.path.join(KEYS, "resp-idp-rsa.key"),
           os.path.join(KEYS, "resp-idp-rsa.crt"))
SECONDARY = (os.path.join(KEYS, "resp-idp-rsa-next.key"),
             os.path.join(KEYS, "resp-idp-rsa-next.crt"))
ATTACKER = (os.path.join(KEYS, "resp-attacker.key"),
            os.path.join(KEYS, "resp-attacker.crt"))
REF = re.compile(r'<code id="reference">([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})'
                 r'</code>')

# the module's bucket (signin_record.c): ROW_BURST rows, then one per
# ROW_REFILL seconds, per account and kind of refusal, in each process
ROW_BURST = 20
ROW_REFILL = 3

IDP_MD = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
 <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  {keys}
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    Location="https://idp.example.test/saml/sso"/>
 </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""
KEY = """<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
   <ds:X509Certificate>{cert}</ds:X509Certificate>
  </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"""

ADMIN_CONF = """
<Location /admin/sso>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
    SetHandler btsso-admin
</Location>
"""


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def cert_body(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


def fingerprint(path):
    import subprocess
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout",
                          "-fingerprint", "-sha256"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


class Site:
    """httpd with one account (acme: ann admin, bob user), samlgen's IdP
    with a primary and a secondary certificate, and the admin API."""

    def __init__(self, make_httpd, tmp_path, processes=1, **kw):
        self.p = Portal(make_httpd, tmp_path, processes=processes, **kw)
        h = self.p.httpd
        self.htpasswd = os.path.join(h.dir, "htpasswd")
        h.extra_conf += ADMIN_CONF.format(htpasswd=self.htpasswd)
        write_htpasswd(self.htpasswd, ["ann@example.com"])

    @property
    def url(self):
        return self.p.url

    @property
    def httpd(self):
        return self.p.httpd

    def ctl(self, *args, **kw):
        return self.p.ctl(*args, **kw)

    def start(self):
        h = self.httpd
        h.write_config()
        self.ctl("init")
        self.ctl("account", "add", "acme", "--name", "Acme Ltd")
        self.ctl("user", "add", "acme", "100", "ann@example.com", "--admin")
        self.ctl("user", "add", "acme", "101", "bob@example.com")
        h.start()
        md = os.path.join(self.p.tmp, "samlgen-idp.xml")
        with open(md, "w") as f:
            f.write(IDP_MD.format(entity=samlgen.IDP_ENTITY_ID, keys="".join(
                KEY.format(cert=cert_body(c)) for c in (PRIMARY[1],
                                                        SECONDARY[1]))))
        h.fix_perms()
        self.ctl("idp", "import", "acme", md)
        self.ctl("attr", "set", "acme", "mail")
        self.ctl("enable", "acme")
        h.expect_log("BTSSO0210")
        return self

    def response(self, email="ann@example.com", keys=PRIMARY, **kw):
        kw.setdefault("attributes", {"mail": [email]})
        kw.setdefault("name_id", email)
        return samlgen.to_b64(samlgen.build_response(
            now=now(), key=keys[0], cert=keys[1], **kw))

    def acs(self, b64):
        return self.p.acs(b64)

    def login(self, email="ann@example.com", keys=PRIMARY, **kw):
        return self.acs(self.response(email, keys, **kw))

    def admin(self):
        return Client(self, "ann@example.com", "acme")

    def rows(self, where="1 = 1"):
        db = sqlite3.connect(self.httpd.db)
        try:
            return db.execute("SELECT reference, result, email, detail FROM "
                              "sign_ins WHERE " + where).fetchall()
        finally:
            db.close()

    def log_lines(self, text):
        return [l for l in self.httpd.log_text().splitlines() if text in l]


@pytest.fixture
def site(make_httpd, tmp_path, monkeypatch):
    s = Site(make_httpd, tmp_path)
    monkeypatch.setattr(samlgen, "SP_ENTITY_ID", s.url + "/sso")
    monkeypatch.setattr(samlgen, "ACS_URL", s.url + "/sso/acs")
    return s.start()


def written_soon(db_path, sql, want, seconds=5):
    """Whether `sql` gives `want` within `seconds` (the store is read by
    another process than the one that wrote it)."""
    deadline = time.time() + seconds
    while True:
        db = sqlite3.connect(db_path)
        try:
            got = db.execute(sql).fetchall()
        finally:
            db.close()
        if got == want or time.time() > deadline:
            return got == want
        time.sleep(0.1)


def reference_of(r):
    m = REF.search(r.text)
    assert m, r.text[-600:]
    return m.group(1)


def sign_ins(site, query=""):
    r = site.admin().get("sign-ins" + query)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


# ---- the code on the page, in the log, in the records ----------------------

def test_refusal_code_in_page_log_and_sign_ins(site):
    r = site.login(keys=ATTACKER)
    assert r.status_code == 403, r.text
    code = reference_of(r)
    lines = site.log_lines("reference " + code)
    assert len(lines) == 1, site.httpd.log_text()[-2000:]
    assert "BTSSO0210" in lines[0] and ": sig_invalid: " in lines[0]

    j = sign_ins(site, "?reference=" + code)
    assert len(j["sign_ins"]) == 1 and j["next"] is None
    rec = j["sign_ins"][0]
    assert rec["reference"] == code
    assert rec["result"] == "sig_invalid"
    assert rec["idp"] == samlgen.IDP_ENTITY_ID
    assert "does not verify" in rec["detail"]
    # an unverified response's claims are not taken for facts
    assert rec["email"] is None and rec["name_id"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["at"])
    # the code as a person types it
    j = sign_ins(site, "?reference=" + code.lower().replace("-", ""))
    assert [s["reference"] for s in j["sign_ins"]] == [code]

    # a refusal after the signature verified names the person
    r = site.login("carol@example.com")
    assert r.status_code == 403
    code2 = reference_of(r)
    assert code2 != code
    rec = sign_ins(site, "?reference=" + code2)["sign_ins"][0]
    assert rec["result"] == "no_such_user"
    assert rec["email"] == "carol@example.com"
    assert rec["name_id"] == "carol@example.com"
    assert "reference " + code2 in site.httpd.log_text()

    # never a SAML message or a secret in what is stored
    for ref, result, email, detail in site.rows():
        assert "<" not in (detail or "") and "PHNhbWxw" not in (detail or "")
        assert "BEGIN" not in (detail or "")

    # btssoctl finds it too
    out = site.ctl("sign-ins", "acme", "--reference", code).stdout
    assert code in out and "sig_invalid" in out
    j = json.loads(site.ctl("sign-ins", "acme", "--failed",
                            json_out=True).stdout)
    assert {s["reference"] for s in j["sign_ins"]} == {code2, code}
    assert {s["email"] for s in j["sign_ins"]} == {"carol@example.com",
                                                   None}


def test_unknown_issuer_gets_a_code_and_no_record(site):
    r = site.acs(samlgen.to_b64(samlgen.build_response(
        now=now(), issuer="https://nobody.example/idp")))
    assert r.status_code == 403
    code = reference_of(r)
    assert "reference " + code in site.httpd.log_text()
    assert site.rows() == []
    # and the pages before the IdP: an unknown account, a bad target
    site.httpd.expect_log("BTSSO0205")
    r = site.p.get("/sso/login/nosuch")
    assert r.status_code == 404
    assert "reference " + reference_of(r) in site.httpd.log_text()
    r = site.p.get("/sso/login/acme?return=https://evil.example/")
    assert r.status_code == 400
    assert "reference " + reference_of(r) in site.httpd.log_text()
    r = site.p.get("/sso/login?return=https://evil.example/")
    assert r.status_code == 400
    reference_of(r)
    assert site.rows() == []
    # a success page carries no code
    r = site.login()
    assert r.status_code == 303 and "reference" not in r.text


# ---- successes: counts per day, the last one, per certificate ----------------

def cert_of(cfg, path):
    sha = fingerprint(path)
    return [c for c in cfg["certificates"] if c["sha256"] == sha][0]


def test_successes_counted_and_certificates_last_verified(site):
    cfg = site.admin().config()
    assert cfg["sign_ins"]["last"] is None
    assert cfg["sign_ins"]["days"] == []
    assert cert_of(cfg, PRIMARY[1])["role"] == "primary"
    assert cert_of(cfg, SECONDARY[1])["role"] == "secondary"
    assert cert_of(cfg, PRIMARY[1])["last_verified"] is None

    assert site.login().status_code == 303
    # the first success of an account is written at once (straight from
    # the store, not through the admin API's own flush)
    assert written_soon(site.httpd.db, "SELECT ok FROM sign_in_days",
                        [(1,)])
    assert written_soon(site.httpd.db, "SELECT email FROM sign_ins WHERE "
                        "result = 'ok'", [("ann@example.com",)])
    assert site.login("bob@example.com").status_code == 303
    cfg = site.admin().config()
    si = cfg["sign_ins"]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert si["days"][0]["day"] == today
    assert si["days"][0]["ok"] == 2 and si["days"][0]["failed"] == 0
    assert si["last"]["email"] == "bob@example.com"
    assert si["last"]["result"] == "ok"
    assert si["last"]["idp"] == samlgen.IDP_ENTITY_ID
    assert cert_of(cfg, PRIMARY[1])["last_verified"] is not None
    assert cert_of(cfg, SECONDARY[1])["last_verified"] is None
    assert si["promote_secondary"] is False

    # the IdP rolls its key over: logins are now verified by the secondary
    time.sleep(1.1)
    assert site.login(keys=SECONDARY).status_code == 303
    cfg = site.admin().config()
    assert cert_of(cfg, SECONDARY[1])["last_verified"] is not None
    assert cert_of(cfg, SECONDARY[1])["last_verified"] > \
        cert_of(cfg, PRIMARY[1])["last_verified"]
    assert cfg["sign_ins"]["promote_secondary"] is True
    assert cfg["sign_ins"]["days"][0]["ok"] == 3
    # a refusal counts too, and is the last failure
    r = site.login(keys=ATTACKER)
    cfg = site.admin().config()
    assert cfg["sign_ins"]["days"][0]["failed"] == 1
    assert cfg["sign_ins"]["last_failed"]["reference"] == reference_of(r)
    # the list holds the last success beside the refusals
    j = sign_ins(site)
    # (newest first to the second; within one second in no fixed order)
    assert sorted(s["result"] for s in j["sign_ins"]) == ["ok", "sig_invalid"]


def test_successes_counted_at_log_level_warn(make_httpd, tmp_path,
                                             monkeypatch):
    """At LogLevel warn (production's level) a success is still counted:
    the count must not ride on the info line that logs it (httpd's
    ap_log_rerror does not evaluate its arguments below the level)."""
    s = Site(make_httpd, tmp_path, btsso_conf="LogLevel warn\n")
    monkeypatch.setattr(samlgen, "SP_ENTITY_ID", s.url + "/sso")
    monkeypatch.setattr(samlgen, "ACS_URL", s.url + "/sso/acs")
    s.start()
    assert s.login().status_code == 303
    assert s.log_lines("BTSSO0212") == []
    assert written_soon(s.httpd.db, "SELECT ok FROM sign_in_days", [(1,)])
    assert written_soon(s.httpd.db, "SELECT email FROM sign_ins WHERE "
                        "result = 'ok'", [("ann@example.com",)])
    assert s.login("bob@example.com").status_code == 303
    cfg = s.admin().config()
    assert cfg["sign_ins"]["days"][0]["ok"] == 2
    assert cfg["sign_ins"]["last"]["email"] == "bob@example.com"
    assert cert_of(cfg, PRIMARY[1])["last_verified"] is not None


def test_login_waiting_for_a_writer_holds_up_no_other_request(site):
    """A sign-in whose record waits for another writer of the SQLite store
    (btssoctl, another process) must not hold up the store reads of the
    other requests of its process: APR-util's sqlite3 driver holds one
    mutex per process around every call into SQLite, and the wait for the
    writer used to sleep inside it (PRAGMA busy_timeout), 10 s at worst,
    and as long between two writers of the same process."""
    import threading

    db = sqlite3.connect(site.httpd.db, isolation_level=None, timeout=0)
    out = {}

    def refused_login():
        out["login"] = site.login(keys=ATTACKER)

    try:
        db.execute("BEGIN IMMEDIATE")           # the store's write lock
        t = threading.Thread(target=refused_login)
        t.start()
        time.sleep(1.0)         # the refusal is waiting for the lock now
        assert t.is_alive(), "the refusal did not wait for the writer"
        # another request of the same process reads the store meanwhile
        r = site.p.get("/sso/login/acme", timeout=5)
        assert r.status_code == 302
        assert t.is_alive(), "the refusal did not wait for the writer"
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
    t.join(20)
    assert out["login"].status_code == 403
    ref = reference_of(out["login"])
    assert written_soon(site.httpd.db, "SELECT reference FROM sign_ins "
                        "WHERE result = 'sig_invalid'", [(ref,)])


def clone_acme(site, names):
    """More accounts like acme straight in SQLite, each with its own IdP
    entityID (https://<name>.idp.example) and user ann@<name>.example."""
    db = sqlite3.connect(site.httpd.db)
    entity = samlgen.IDP_ENTITY_ID
    with db:
        for n in names:
            db.execute("INSERT INTO accounts (account, name, sso_enabled,"
                       " allow_password, version, created, updated)"
                       " SELECT ?, name, sso_enabled, allow_password,"
                       " version, created, updated FROM accounts"
                       " WHERE account = 'acme'", (n,))
            db.execute("INSERT INTO idp (account, entity_id, shared,"
                       " metadata_xml, source_url, email_attribute,"
                       " email_from_name_id, updated)"
                       " SELECT ?, ?, shared, replace(metadata_xml, ?, ?),"
                       " source_url, email_attribute, email_from_name_id,"
                       " updated FROM idp WHERE account = 'acme'",
                       (n, "https://%s.idp.example" % n, entity,
                        "https://%s.idp.example" % n))
            db.execute("INSERT INTO certificates (account, sha256, role,"
                       " der, subject, issuer, not_before, not_after,"
                       " source, added) SELECT ?, sha256, role, der,"
                       " subject, issuer, not_before, not_after, source,"
                       " added FROM certificates WHERE account = 'acme'",
                       (n,))
            db.execute("INSERT INTO users (account, extension, kind, email,"
                       " is_admin) VALUES (?, '100', 'user', ?, 0)",
                       (n, "ann@%s.example" % n))
    db.close()
    site.httpd.fix_perms()


def login_as(site, name):
    """ann of a clone_acme account, through its own IdP."""
    return site.login("ann@%s.example" % name,
                      issuer="https://%s.idp.example" % name)


def while_first_writes(site, names, before_commit=None):
    """The first sign-in of names[0] in a process while the test holds the
    store's write lock (it waits to write its counts), then one of each
    other name, each timed; before_commit(db) then runs in the test's
    transaction, and the lock is let go.  The seconds each other sign-in
    took, once the first has answered 303."""
    import threading

    db = sqlite3.connect(site.httpd.db, isolation_level=None, timeout=0)
    db.execute("PRAGMA foreign_keys = ON")
    out, took = {}, {}

    def first():
        out["first"] = login_as(site, names[0])

    t = threading.Thread(target=first)
    try:
        db.execute("BEGIN IMMEDIATE")           # the store's write lock
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the first sign-in did not wait to write"
        for n in names[1:]:
            t0 = time.monotonic()
            r = login_as(site, n)
            took[n] = time.monotonic() - t0
            assert r.status_code == 303, (n, r.status_code, r.text[-300:])
        assert t.is_alive(), "the first sign-in did not wait to write"
        if before_commit is not None:
            before_commit(db)
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
        t.join(20)
    assert out["first"].status_code == 303
    return took


def test_first_sign_ins_of_many_accounts_wait_for_no_commit(site):
    """The first success of an account in a process is written at once,
    but a sign-in must not wait for the store on behalf of its account
    while another sign-in of the process is already writing: it leaves
    its counts to that writer, which writes them all in one transaction
    after its own (a cold start, a Monday morning: one commit, and on
    SQLite one sync to disk, per batch instead of one per sign-in, each
    under the database's one write lock).  The store's write lock is
    held here while a first sign-in writes; the first sign-ins of three
    more accounts answer meanwhile, and every count is in the store once
    the lock is free."""
    names = ["beta", "gamma", "delta", "eps"]
    clone_acme(site, names)
    took = while_first_writes(site, names)
    for n, secs in took.items():
        assert secs < 2.0, "%s waited %.1f s for the store" % (n, secs)
    got = sorted(names)
    assert written_soon(site.httpd.db, "SELECT account, ok FROM sign_in_days"
                        " WHERE account <> 'acme' ORDER BY account",
                        [(n, 1) for n in got])
    assert written_soon(site.httpd.db, "SELECT account, email FROM sign_ins"
                        " WHERE result = 'ok' AND account <> 'acme'"
                        " ORDER BY account",
                        [(n, "ann@%s.example" % n) for n in got])
    # the admin API still reads its own account's counts at once
    assert site.login().status_code == 303
    assert site.admin().config()["sign_ins"]["days"][0]["ok"] == 1
    assert not site.log_lines("BTSSO0253")


def test_account_gone_or_failing_while_its_counts_wait_costs_no_other(site):
    """Counts waiting in the queue of a process go into one transaction.
    An account deleted meanwhile gets no row (httpd's SQLite connections
    do not enforce the schema's foreign keys: an orphan row would be
    inherited by a new account of the same ID).  An account whose write
    fails makes the transaction fail: the other accounts of the batch are
    then written one by one, and the warning names only that account."""
    names = ["beta", "gamma", "delta", "eps"]
    clone_acme(site, names)

    def meanwhile(db):
        # queued behind beta's write: gamma is deleted, delta's write fails
        db.execute("DELETE FROM accounts WHERE account = 'gamma'")
        db.execute("CREATE TRIGGER refuse_delta BEFORE INSERT ON sign_in_days"
                   " WHEN NEW.account = 'delta'"
                   " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")

    while_first_writes(site, names, meanwhile)
    assert written_soon(site.httpd.db, "SELECT account, ok FROM sign_in_days"
                        " WHERE account <> 'acme' ORDER BY account",
                        [("beta", 1), ("eps", 1)])
    assert written_soon(site.httpd.db, "SELECT account FROM sign_ins"
                        " WHERE account <> 'acme' ORDER BY account",
                        [("beta",), ("eps",)])
    site.httpd.expect_log("BTSSO0253")
    lines = site.log_lines("BTSSO0253")
    assert lines and all("account delta:" in l for l in lines), lines


@pytest.mark.parametrize("change", ["VACUUM", "CREATE INDEX"])
def test_schema_change_while_httpd_runs_breaks_no_request(site, change):
    """apr_dbd_sqlite3 prepares with the legacy sqlite3_prepare: after any
    change of the schema (btssoctl init upgrading it, an operator's
    VACUUM, ANALYZE or CREATE INDEX) a statement httpd prepared before
    failed once with "database schema has changed" and then for ever
    with "not an error": every login answered 500 until httpd restarted.
    Logins, refusals, the admin API's reads and changes, and the counts
    a process writes all work across such a change."""
    assert site.login().status_code == 303      # statements prepared
    a = site.admin()
    assert a.config()["sign_ins"]["days"][0]["ok"] == 1
    assert site.login("eve@example.com").status_code == 403   # a refusal
    db = sqlite3.connect(site.httpd.db)
    if change == "VACUUM":
        db.execute("VACUUM")
    else:
        db.execute("CREATE INDEX test_by_email ON users (email)")
    db.commit()
    db.close()
    for _ in range(3):
        r = site.login()
        assert r.status_code == 303, (r.status_code, r.text[-300:])
    r = site.login("eve@example.com")
    assert r.status_code == 403, (r.status_code, r.text[-300:])
    # a change (a transaction) and a read of the admin API
    r = a.put("email-attribute", json={"attribute": "email"})
    assert r.status_code == 200, (r.status_code, r.text)
    assert site.ctl("attr", "set", "acme", "mail") is not None
    days = a.config()["sign_ins"]["days"][0]
    assert (days["ok"], days["failed"]) == (4, 2), days
    assert len(site.rows("result <> 'ok'")) == 2
    assert not site.log_lines("BTSSO0253")
    assert not site.log_lines("schema has changed")


# ---- filters, limit, paging --------------------------------------------------

def test_filters_limit_and_paging(site):
    codes = []
    for i in range(5):
        r = site.login(keys=ATTACKER) if i % 2 == 0 else \
            site.login("nobody%d@example.com" % i)
        assert r.status_code == 403
        codes.append(reference_of(r))
    assert site.login().status_code == 303
    j = sign_ins(site, "?result=failed")
    got = [s["reference"] for s in j["sign_ins"]]
    assert sorted(got) == sorted(codes) and len(got) == 5
    ats = [s["at"] for s in j["sign_ins"]]
    assert ats == sorted(ats, reverse=True)
    assert all(s["result"] != "ok" for s in j["sign_ins"])
    assert len(sign_ins(site)["sign_ins"]) == 6

    seen, query, pages = [], "?limit=2", 0
    while True:
        j = sign_ins(site, query)
        assert len(j["sign_ins"]) <= 2
        seen += [s["reference"] for s in j["sign_ins"]]
        pages += 1
        if j["next"] is None:
            break
        query = "?limit=2&before=" + urllib.parse.quote(j["next"])
    assert pages == 3 and len(seen) == 6 and len(set(seen)) == 6
    assert set(codes) <= set(seen)

    c = site.admin()
    for q in ("?limit=0", "?limit=501", "?limit=x", "?reference=NOPE",
              "?result=maybe", "?before=junk"):
        r = c.get("sign-ins" + q)
        assert r.status_code == 400, (q, r.text)
        assert r.json()["error"] == "bad_request"
    assert len(sign_ins(site, "?limit=500")["sign_ins"]) == 6
    assert c.post("sign-ins").status_code == 405

    # btssoctl pages the same way
    out = site.ctl("sign-ins", "acme", "--limit", "2").stdout
    assert "more: btssoctl sign-ins acme --before " in out
    nxt = out.rsplit("--before ", 1)[1].split()[0]
    out2 = site.ctl("sign-ins", "acme", "--limit", "2", "--before",
                    nxt).stdout
    assert not set(re.findall(r"[2-9A-Z]{4}-[2-9A-Z]{4}", out)) & \
        set(re.findall(r"[2-9A-Z]{4}-[2-9A-Z]{4}", out2))
    r = site.ctl("sign-ins", "acme", "--reference", "0OIL", check=False)
    assert r.returncode == 2
    r = site.ctl("sign-ins", "nosuch", check=False)
    assert r.returncode == 1 and "not_found" in r.stderr


# ---- a flood -------------------------------------------------------------------

FLOOD = 2000


def test_flood_is_bounded_and_logins_still_work(site):
    """FLOOD forged responses for acme (one unauthenticated client): at most
    the bucket's rows are written, every refusal is counted, and genuine
    logins during and after it succeed and are counted."""
    bad = site.response(keys=ATTACKER)
    body = urllib.parse.urlencode({"SAMLResponse": bad})
    conn = http.client.HTTPConnection("127.0.0.1", site.httpd.port,
                                      timeout=30)
    start = time.monotonic()
    sent = 0
    midway_ok = None
    try:
        for i in range(FLOOD):
            conn.request("POST", "/sso/acs", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 403
            sent += 1
            if i == FLOOD // 2:
                midway_ok = site.login().status_code
            assert time.monotonic() - start < 300, "flood too slow"
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    assert midway_ok == 303
    assert site.login("bob@example.com").status_code == 303

    # the store got at most the bucket's rows (the bound of what a flood
    # can make the logins wait for), far fewer than the refusals
    unverified = site.rows("result <> 'ok'")
    bound = ROW_BURST + int(elapsed / ROW_REFILL) + 1
    assert 0 < len(unverified) <= bound, (len(unverified), bound, elapsed)
    assert len(unverified) < sent / 10
    # a real person's refusal (signature verified) still gets its row: the
    # flood used up only the bucket of unverified responses
    r = site.login("carol@example.com")
    code = reference_of(r)
    assert [x[1] for x in site.rows("reference = '%s'" % code)] == \
        ["no_such_user"]
    # every refusal counted; those without a row as "unrecorded"
    day = site.admin().config()["sign_ins"]["days"][0]
    assert day["failed"] == sent + 1
    assert day["unrecorded"] == sent - len(unverified)
    assert day["ok"] == 2
    # and every page carried a code in the log
    assert len(site.log_lines("BTSSO0210")) >= sent


# ---- the page --------------------------------------------------------------------

def test_page_lists_failures_and_says_promote(site):
    """The set-up page's 'Recent failed sign-ins' (code, time, user,
    reason in words), each certificate's last login, and the note to
    promote the secondary once it verifies the logins (headless
    Chromium, as t/integration/test_admin_page.py)."""
    pytest.importorskip("selenium",
                        reason="install python3-selenium, chromium, "
                               "chromium-driver")
    from test_admin_page import Browser, OUT
    from selenium.webdriver.common.by import By

    r = site.login("carol@example.com")
    carol = reference_of(r)
    r = site.login(keys=ATTACKER)
    forged = reference_of(r)
    assert site.login().status_code == 303
    time.sleep(1.1)
    assert site.login(keys=SECONDARY).status_code == 303

    b = Browser("ann@example.com")
    try:
        b.open(site.url + "/admin/sso/acme/")
        b.wait(lambda d: len(d.find_elements(
            By.CSS_SELECTOR, "#signins-table tr[data-reference]")) == 2)
        rows = b.driver.find_elements(By.CSS_SELECTOR,
                                      "#signins-table tr[data-reference]")
        text = {x.get_attribute("data-reference"): x.text for x in rows}
        assert set(text) == {forged, carol}
        assert "signature did not verify" in text[forged]
        assert "carol@example.com" in text[carol]
        assert "No such user in this account" in text[carol]
        note = b.find("#promote-note")
        assert note.is_displayed()
        assert "verified by the secondary certificate: promote it" in \
            note.text
        sec = fingerprint(SECONDARY[1])
        cell = b.find('#certs tr[data-sha256="%s"] td.verified' % sec)
        assert cell.text != "never"
        assert "Last successful sign-in" in b.find("#signins-summary").text
        path = b.shot("10-sign-ins", "#signins")
        b.shot("11-promote-note", "#step-certs")
        assert not b.console_problems(), b.console_problems()
    finally:
        b.quit()
    # the guide shows them (docs/img), as the other set-up page shots
    docs = os.path.join(btsso_httpd.TOP, "docs", "img")
    if os.environ.get("BTSSO_UPDATE_DOCS_IMG") == "1":
        shutil.copy(path, os.path.join(docs, "admin-10-sign-ins.png"))
        shutil.copy(os.path.join(OUT, "11-promote-note.png"),
                    os.path.join(docs, "admin-11-promote-note.png"))


# ---- btssoctl sign-ins on SQLite and PostgreSQL -------------------------------

from test_btssoctl import mariadb_server, pg_server, store  # noqa: E402,F401  (fixtures)
from test_btssoctl import ctl as run_ctl, ready  # noqa: E402


def store_exec(st, sql, args):
    """Write rows straight into the store (what the module records)."""
    if st.kind == "sqlite3":
        db = sqlite3.connect(st.params)
        try:
            db.executemany(sql.replace("%s", "?"), args)
            db.commit()
        finally:
            db.close()
        return
    if st.kind == "mysql":
        import mariadbtmp

        def lit(v):
            if v is None:
                return "NULL"
            if isinstance(v, int):
                return str(v)
            return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"
        for row in args:
            mariadbtmp.sql(st.params, sql % tuple(lit(v) for v in row))
        return
    import psycopg2
    conn = psycopg2.connect(st.params)
    try:
        conn.cursor().executemany(sql, args)
        conn.commit()
    finally:
        conn.close()


def test_btssoctl_sign_ins_on_both_stores(store):
    ready(store)
    rows = [("acme", "K7QX-M2PA", 1764633600 + i, "sig_invalid", None,
             None, "https://idp.example.test", "Response ID=\"_r%d\": the "
             "signature does not verify" % i) for i in range(3)]
    rows.append(("acme", "OKOK-2345", 1764633700, "ok", "ann@example.com",
                 "ann", "https://idp.example.test", None))
    rows[1] = ("acme", "N9PQ-RS34", 1764633601, "no_such_user",
               "carol@example.com", "carol", "https://idp.example.test",
               "email carol@example.com")
    rows[2] = ("acme", "W5XY-Z678", 1764633602, "expired", None, None,
               "https://idp.example.test", "expired 400 s ago")
    store_exec(store, "INSERT INTO sign_ins (account, reference, at, result,"
               " email, name_id, idp, detail) VALUES (%s, %s, %s, %s, %s, "
               "%s, %s, %s)", rows)
    j = json.loads(run_ctl(store, "--json", "sign-ins", "acme").stdout)
    assert [s["reference"] for s in j["sign_ins"]] == [
        "OKOK-2345", "W5XY-Z678", "N9PQ-RS34", "K7QX-M2PA"]
    assert j["next"] is None
    assert j["sign_ins"][0]["result"] == "ok"
    assert j["sign_ins"][0]["at"] == "2025-12-02T00:01:40Z"
    j = json.loads(run_ctl(store, "--json", "sign-ins", "acme",
                           "--failed").stdout)
    assert len(j["sign_ins"]) == 3
    j = json.loads(run_ctl(store, "--json", "sign-ins", "acme",
                           "--reference", "n9pqrs34").stdout)
    assert [s["email"] for s in j["sign_ins"]] == ["carol@example.com"]
    out = run_ctl(store, "sign-ins", "acme", "--limit", "2").stdout
    assert "W5XY-Z678" in out and "K7QX-M2PA" not in out
    nxt = out.rsplit("--before ", 1)[1].split()[0]
    out = run_ctl(store, "sign-ins", "acme", "--limit", "2", "--before",
                  nxt).stdout
    assert "N9PQ-RS34" in out and "K7QX-M2PA" in out
    assert "more:" not in out
    r = run_ctl(store, "sign-ins", "acme", "--limit", "501", rc=2)
    assert "--limit" in r.stderr
    r = run_ctl(store, "sign-ins", "nosuch", rc=1)
    assert "not_found" in r.stderr


# ---- /sso/test: the result page of a failed test carries its code too ---------

def test_test_login_failure_shows_its_reference(make_httpd, tmp_path):
    p = Portal(make_httpd, tmp_path, processes=1).start(enable=False)
    r = p.get("/sso/test/acme")
    assert r.status_code == 302
    req = p.idp.parse_redirect(r.headers["Location"])
    r = p.acs(p.idp.response(req, email="carol@example.com"),
              req.relay_state)
    assert r.status_code == 200 and "Sign-in would fail" in r.text
    code = reference_of(r)
    assert "reference " + code in p.httpd.log_text()
    db = sqlite3.connect(p.httpd.db)
    try:
        rows = db.execute("SELECT result, email, detail FROM sign_ins WHERE "
                          "reference = ?", (code,)).fetchall()
    finally:
        db.close()
    assert len(rows) == 1
    assert rows[0][0] == "no_such_user" and rows[0][1] == "carol@example.com"
    assert rows[0][2].startswith("test sign-in: ")
    # the real login, not offered before SSO is enabled, says why with a code
    r = p.get("/sso/login/acme")
    assert r.status_code == 403
    assert "reference " + reference_of(r) in p.httpd.log_text()
