"""btssoctl, the real binary, on SQLite and on PostgreSQL.

Every command and every refusal: the exit status, exactly one line on
stderr, and nothing changed afterwards (compared through show/list --json).
PostgreSQL runs in a throwaway cluster made by t/lib/pgtmp.sh for the
session; each test gets a fresh database (or SQLite file).

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_btssoctl.py
"""
import base64
import http.server
import json
import os
import pwd
import re
import sqlite3
import subprocess
import tempfile
import threading
import uuid

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("BTSSO_BUILDDIR", TOP)
BTSSOCTL = os.path.join(BUILDDIR, "btssoctl")
FIX = os.path.join(TOP, "t", "fixtures")
KEYS = os.path.join(FIX, "keys")
MD = os.path.join(FIX, "metadata")
SP = os.path.join(FIX, "sp")
PGTMP = os.path.join(TOP, "t", "lib", "pgtmp.sh")

OKTA_ENTITY = "http://www.okta.com/exk1a2b3c4d5E6F7g8h9"


def sha256_of(name):
    """Fingerprint of a fixture certificate, as openssl prints it."""
    out = subprocess.run(["openssl", "x509", "-in",
                          os.path.join(KEYS, name + ".crt"), "-noout",
                          "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def sp_cert_b64(name):
    pem = open(os.path.join(SP, name)).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1]
    return "".join(body.split("-----END CERTIFICATE-----")[0].split())


def cert_b64(name):
    pem = open(os.path.join(KEYS, name + ".crt")).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1]
    return "".join(body.split("-----END CERTIFICATE-----")[0].split())


def idp_metadata(entity, certs, sso="https://idp.example.test/sso"):
    """An IdP EntityDescriptor with the given fixture signing certs."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
        '<ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data>'
        '</ds:KeyInfo></md:KeyDescriptor>' % cert_b64(c) for c in certs)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:'
            'metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
            'entityID="%s"><md:IDPSSODescriptor protocolSupportEnumeration='
            '"urn:oasis:names:tc:SAML:2.0:protocol">%s'
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:'
            'bindings:HTTP-Redirect" Location="%s"/></md:IDPSSODescriptor>'
            '</md:EntityDescriptor>' % (entity, keys, sso))


# ---- backends ---------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL cluster for the whole session."""
    d = tempfile.mkdtemp(prefix="btsso-pg-")
    r = subprocess.run(["sh", PGTMP, "start", d], capture_output=True,
                       text=True)
    if r.returncode != 0:
        subprocess.run(["sh", PGTMP, "stop", d])
        pytest.fail("pgtmp.sh start failed: " + r.stderr.strip())
    params = r.stdout.strip().splitlines()[-1]
    yield params
    subprocess.run(["sh", PGTMP, "stop", d], check=False)


def pg_params_with_db(params, dbname):
    return re.sub(r"dbname=\S+", "dbname=" + dbname, params)


class Store:
    """One empty database and a btssoctl configuration pointing at it."""

    def __init__(self, kind, workdir, pg_params=None):
        self.kind = kind
        self.dir = workdir
        if kind == "sqlite3":
            self.params = os.path.join(workdir, "btsso.db")
        else:
            import psycopg2
            self.dbname = "t_" + uuid.uuid4().hex[:12]
            self.admin_params = pg_params
            conn = psycopg2.connect(pg_params)
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE " + self.dbname)
            conn.close()
            self.params = pg_params_with_db(pg_params, self.dbname)
        self.conf = os.path.join(workdir, "btsso.conf")
        self.write_conf()

    def write_conf(self, extra=""):
        with open(self.conf, "w") as f:
            f.write('<IfModule mod_btsso.c>\n'
                    '    DBDriver %s\n'
                    '    DBDParams "%s"\n'
                    '    BTSSOBaseURL https://portal.example.test/\n'
                    '    BTSSOSPCertificate %s\n'
                    '    BTSSOSPNextCertificate %s\n'
                    '%s'
                    '</IfModule>\n' % (self.kind, self.params,
                                       os.path.join(SP, "sp-current.crt"),
                                       os.path.join(SP, "sp-next.crt"),
                                       extra))

    def sql(self, query):
        """Rows of a query run directly against the store."""
        if self.kind == "sqlite3":
            conn = sqlite3.connect(self.params)
            try:
                return conn.execute(query).fetchall()
            finally:
                conn.close()
        import psycopg2
        conn = psycopg2.connect(self.params)
        try:
            cur = conn.cursor()
            cur.execute(query)
            return cur.fetchall()
        finally:
            conn.close()

    def drop(self):
        if self.kind == "pgsql":
            import psycopg2
            conn = psycopg2.connect(self.admin_params)
            conn.autocommit = True
            conn.cursor().execute("DROP DATABASE IF EXISTS " + self.dbname)
            conn.close()


@pytest.fixture(params=["sqlite3", "pgsql"])
def store(request, tmp_path):
    if not os.access(BTSSOCTL, os.X_OK):
        pytest.fail("btssoctl not built at %s (set BTSSO_BUILDDIR)" %
                    BTSSOCTL)
    pg = request.getfixturevalue("pg_server") \
        if request.param == "pgsql" else None
    s = Store(request.param, str(tmp_path), pg)
    yield s
    s.drop()


# ---- running btssoctl -----------------------------------------------------------

def ctl(store, *args, rc=0, conf=True, stdin=None):
    cmd = [BTSSOCTL] + (["-c", store.conf] if conf else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       input=stdin)
    if r.returncode != rc:
        pytest.fail("%s: exit %d (want %d)\nstdout: %s\nstderr: %s" %
                    (" ".join(args), r.returncode, rc, r.stdout, r.stderr))
    if rc != 0:
        lines = r.stderr.splitlines()
        assert len(lines) == 1, "stderr must be one line: %r" % r.stderr
        assert lines[0].startswith("btssoctl: ")
    else:
        assert r.stderr == "", r.stderr
    return r


def refused(store, code, *args, rc=1):
    """A refused command: exit rc, one line naming code, nothing changed."""
    before = snapshot(store)
    r = ctl(store, *args, rc=rc)
    assert code in r.stderr, r.stderr
    assert snapshot(store) == before
    return r.stderr.strip()


def jctl(store, *args):
    return json.loads(ctl(store, "--json", *args).stdout)


def snapshot(store):
    """Everything btssoctl can show, for before/after comparisons."""
    state = {"accounts": jctl(store, "account", "list")}
    for a in state["accounts"]:
        name = a["account"]
        # account list already carries each version and update time,
        # which every change bumps
        state[name] = {
            "users": jctl(store, "user", "list", name),
            "certs": jctl(store, "cert", "list", name),
        }
        r = subprocess.run([BTSSOCTL, "-c", store.conf, "--json", "idp",
                            "show", name], capture_output=True, text=True)
        state[name]["idp"] = json.loads(r.stdout) if r.returncode == 0 \
            else r.stderr
    return state


def ready(store, account="acme", metadata=None):
    ctl(store, "init")
    ctl(store, "account", "add", account)
    ctl(store, "idp", "import", account, metadata or
        os.path.join(MD, "okta.xml"))
    ctl(store, "attr", "set", account, "mail")


# ---- usage ------------------------------------------------------------------------

def test_usage(store):
    r = ctl(store, "--help", conf=False)
    for line in ("init", "account add ACCOUNT [--name NAME]",
                 "idp import ACCOUNT FILE|URL [--entity ENTITYID] [--shared]",
                 "idp refresh ACCOUNT|--all", "cert expiring [--days N]",
                 "enable ACCOUNT [--allow-password] | disable ACCOUNT",
                 "sp-metadata ACCOUNT", "session revoke ACCOUNT [EMAIL]"):
        assert line in r.stdout
    ctl(store, rc=2)
    ctl(store, "frobnicate", rc=2)
    ctl(store, "-x", "init", rc=2)
    ctl(store, "account", rc=2)
    ctl(store, "account", "add", rc=2)
    ctl(store, "account", "add", "a", "b", rc=2)
    ctl(store, "account", "add", "a", "--bogus", rc=2)
    ctl(store, "account", "add", "a", "--name", rc=2)
    ctl(store, "cert", "role", "a", "f" * 64, "tertiary", rc=2)
    ctl(store, "cert", "expiring", "--days", "soon", rc=2)
    ctl(store, "attr", "set", "a", rc=2)
    ctl(store, "attr", "set", "a", "mail", "--name-id", rc=2)
    ctl(store, "idp", "refresh", rc=2)
    ctl(store, "idp", "refresh", "a", "--all", rc=2)
    ctl(store, "disable", "a", "--allow-password", rc=2)
    ctl(store, "session", rc=2)
    ctl(store, "session", "revoke", rc=2)
    ctl(store, "session", "revoke", "a", "b@c.d", "e", rc=2)


# ---- init and accounts ------------------------------------------------------------------

def test_init_idempotent(store):
    assert "from version 0 to 4" in ctl(store, "init").stdout
    assert "nothing to do" in ctl(store, "init").stdout
    assert store.sql("SELECT version FROM btsso_schema_version"
                     " ORDER BY version") == [(1,), (2,), (3,), (4,)]


def test_accounts(store):
    ctl(store, "init")
    assert jctl(store, "account", "list") == []
    ctl(store, "account", "add", "zeta", "--name", "Zeta Ltd")
    ctl(store, "account", "add", "acme")
    refused(store, "exists", "account", "add", "acme")
    refused(store, "bad_account", "account", "add", "no/slash")
    refused(store, "bad_account", "account", "add", "..")
    refused(store, "not_found", "account", "show", "nope")
    accounts = jctl(store, "account", "list")
    assert [a["account"] for a in accounts] == ["acme", "zeta"]
    assert accounts[1]["name"] == "Zeta Ltd"
    assert accounts[0]["sso_enabled"] is False
    show = jctl(store, "account", "show", "acme")
    assert show["version"] == 1
    assert show["idp_entity_id"] is None
    assert show["missing"] == ["idp", "email_mapping", "usable_certificate"]
    text = ctl(store, "account", "show", "zeta").stdout
    assert "Zeta Ltd" in text and "disabled" in text
    assert "zeta" in ctl(store, "account", "list").stdout
    # the audit trail names the invoking OS user
    actor = "btssoctl:" + pwd.getpwuid(os.getuid()).pw_name
    rows = store.sql("SELECT actor, action FROM audit ORDER BY id")
    assert rows == [(actor, "account.add"), (actor, "account.add")]


def test_users(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    ctl(store, "user", "add", "acme", "100", "Alice@Example.com", "--admin")
    ctl(store, "user", "add", "acme", "q1", "queue@example.com", "--kind",
        "call_queue")
    ctl(store, "user", "add", "acme", "101", " alice@example.COM ")
    refused(store, "exists", "user", "add", "acme", "100", "x@example.com")
    refused(store, "bad_email", "user", "add", "acme", "102", "not-an-email")
    refused(store, "bad_kind", "user", "add", "acme", "102", "x@example.com",
            "--kind", "robot")
    refused(store, "not_found", "user", "add", "nope", "1", "x@example.com")
    refused(store, "not_found", "user", "list", "nope")
    users = jctl(store, "user", "list", "acme")
    assert users == [
        {"extension": "100", "kind": "user", "email": "Alice@Example.com",
         "is_admin": True},
        {"extension": "101", "kind": "user", "email": "alice@example.COM",
         "is_admin": False},
        {"extension": "q1", "kind": "call_queue",
         "email": "queue@example.com", "is_admin": False},
    ]
    assert "call_queue" in ctl(store, "user", "list", "acme").stdout


# ---- IdP ------------------------------------------------------------------------------

def test_idp_import_file(store):
    ctl(store, "init")
    for a in ("acme", "beta", "gamma"):
        ctl(store, "account", "add", a)
    refused(store, "not_metadata", "idp", "import", "acme",
            os.path.join(MD, "wrong-root.xml"))
    refused(store, "not_idp", "idp", "import", "acme",
            os.path.join(MD, "sp-only.xml"))
    refused(store, "dtd_forbidden", "idp", "import", "acme",
            os.path.join(MD, "xxe.xml"))
    refused(store, "no_file", "idp", "import", "acme",
            os.path.join(MD, "does-not-exist.xml"))
    refused(store, "not_found", "idp", "import", "nope",
            os.path.join(MD, "okta.xml"))
    refused(store, "ambiguous_entity", "idp", "import", "acme",
            os.path.join(MD, "aggregate-two-idps.xml"))

    out = ctl(store, "idp", "import", "acme",
              os.path.join(MD, "okta.xml")).stdout
    assert OKTA_ENTITY in out and "primary" in out
    assert "email_mapping" in out
    idp = jctl(store, "idp", "show", "acme")
    assert idp["entity_id"] == OKTA_ENTITY
    assert idp["shared"] is False and idp["source_url"] is None
    assert idp["sp_entity_id"] == "https://portal.example.test/sso"
    assert idp["sp_acs_url"] == "https://portal.example.test/sso/acs"
    assert [c["sha256"] for c in idp["certificates"]] == [sha256_of("okta")]
    assert idp["certificates"][0]["role"] == "primary"
    assert idp["sso"][0]["location"].startswith("https://example-test.okta")
    assert "NameID:" in ctl(store, "idp", "show", "acme").stdout
    refused(store, "no_idp", "idp", "show", "beta")

    # the entityID belongs to acme: refused without --shared
    msg = refused(store, "entity_in_use", "idp", "import", "beta",
                  os.path.join(MD, "okta.xml"))
    assert "support" in msg
    # support shares it beside the self-service holder, which keeps the
    # global SP entityID and ACS and is not touched
    acme = jctl(store, "idp", "show", "acme")
    ctl(store, "idp", "import", "beta", os.path.join(MD, "okta.xml"),
        "--shared")
    beta = jctl(store, "idp", "show", "beta")
    assert beta["shared"] is True
    assert beta["sp_entity_id"] == "https://portal.example.test/sso/beta"
    assert beta["sp_acs_url"] == "https://portal.example.test/sso/acs/beta"
    assert jctl(store, "idp", "show", "acme") == acme
    # a third account: refused without --shared (shared holders count too)
    refused(store, "entity_in_use", "idp", "import", "gamma",
            os.path.join(MD, "okta.xml"))
    # acme can still be made shared by support
    ctl(store, "idp", "import", "acme", os.path.join(MD, "okta.xml"),
        "--shared")
    assert jctl(store, "idp", "show", "acme")["shared"] is True

    # one IdP out of an aggregate
    ctl(store, "idp", "import", "gamma",
        os.path.join(MD, "aggregate-two-idps.xml"), "--entity",
        "https://idp1.agg.example.test/idp")
    assert jctl(store, "idp", "show", "gamma")["entity_id"] == \
        "https://idp1.agg.example.test/idp"
    refused(store, "entity_not_found", "idp", "import", "gamma",
            os.path.join(MD, "aggregate-two-idps.xml"), "--entity",
            "https://nobody.example.test")


def test_idp_import_size_bound(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    store.write_conf("    BTSSOMetadataMaxSize 1K\n")
    refused(store, "too_large", "idp", "import", "acme",
            os.path.join(MD, "okta.xml"))
    store.write_conf("    BTSSOMetadataMaxSize 64K\n")
    ctl(store, "idp", "import", "acme", os.path.join(MD, "okta.xml"))


class MetadataServer:
    """Serves changeable bytes at /md.xml on 127.0.0.1."""

    def __init__(self):
        self.body = b""
        self.status = 200
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d/md.xml" % self.httpd.server_port

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def md_server():
    s = MetadataServer()
    yield s
    s.stop()


def test_idp_url_import_and_refresh(store, md_server):
    entity = "https://idp.refresh.example.test"
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    ctl(store, "account", "add", "file")
    ctl(store, "idp", "import", "file", os.path.join(MD, "okta.xml"))
    md_server.body = idp_metadata(entity, ["keycloak"]).encode()

    # the default policy refuses plain http and loopback addresses
    refused(store, "url_not_allowed", "idp", "import", "acme",
            md_server.url)
    store.write_conf("    BTSSOMetadataFetchHTTP On\n")
    refused(store, "url_not_allowed", "idp", "import", "acme",
            md_server.url)
    store.write_conf("    BTSSOMetadataFetchHTTP On\n"
                     "    BTSSOMetadataFetchAllow 127.0.0.1/32\n")
    ctl(store, "idp", "import", "acme", md_server.url)
    idp = jctl(store, "idp", "show", "acme")
    assert idp["source_url"] == md_server.url
    roles = {c["sha256"]: c["role"] for c in idp["certificates"]}
    assert roles == {sha256_of("keycloak"): "primary"}

    # unchanged metadata: nothing written
    before = snapshot(store)
    assert "acme: unchanged" in ctl(store, "idp", "refresh", "acme").stdout
    assert snapshot(store) == before

    # a new signing certificate fills the empty secondary slot
    md_server.body = idp_metadata(entity, ["keycloak", "google"]).encode()
    out = ctl(store, "idp", "refresh", "acme").stdout
    assert sha256_of("google") in out and "secondary is now" in out
    roles = {c["sha256"]: c["role"]
             for c in jctl(store, "cert", "list", "acme")}
    assert roles == {sha256_of("keycloak"): "primary",
                     sha256_of("google"): "secondary"}

    # another new one does not take a valid secondary's place
    md_server.body = idp_metadata(entity, ["keycloak", "google",
                                           "entra"]).encode()
    out = ctl(store, "idp", "refresh", "acme").stdout
    assert sha256_of("entra") in out and "secondary is now" not in out
    roles = {c["sha256"]: c["role"]
             for c in jctl(store, "cert", "list", "acme")}
    assert roles[sha256_of("entra")] == "none"

    # failures keep the last good copy
    good = snapshot(store)
    md_server.body = b"<not metadata"
    refused(store, "not_xml", "idp", "refresh", "acme")
    md_server.status = 500
    refused(store, "fetch_failed", "idp", "refresh", "acme")
    r = ctl(store, "idp", "refresh", "--all", rc=1)
    assert "acme: failed, kept the last good metadata" in r.stdout
    assert "1 of 1" in r.stderr
    assert snapshot(store) == good
    md_server.status = 200
    md_server.body = idp_metadata(entity, ["keycloak", "google",
                                           "entra"]).encode()
    out = ctl(store, "idp", "refresh", "--all").stdout
    assert "acme: unchanged" in out and "file" not in out

    refused(store, "not_from_url", "idp", "refresh", "file")
    refused(store, "not_found", "idp", "refresh", "nope")


# ---- email mapping, certificates -------------------------------------------------------

def test_attr(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    refused(store, "no_idp", "attr", "set", "acme", "mail")
    ctl(store, "idp", "import", "acme", os.path.join(MD, "okta.xml"))
    ctl(store, "attr", "set", "acme", "http://schemas.xmlsoap.org/ws/2005/"
        "05/identity/claims/emailaddress")
    idp = jctl(store, "idp", "show", "acme")
    assert idp["email_attribute"].endswith("/emailaddress")
    assert idp["email_from_name_id"] is False
    ctl(store, "attr", "set", "acme", "--name-id")
    idp = jctl(store, "idp", "show", "acme")
    assert idp["email_attribute"] is None and idp["email_from_name_id"]
    refused(store, "not_found", "attr", "set", "nope", "mail")


def test_certs(store, tmp_path):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    ctl(store, "account", "add", "old")
    okta, entra, google = (sha256_of(n) for n in ("okta", "entra",
                                                   "google"))
    out = ctl(store, "cert", "add", "acme", os.path.join(KEYS, "okta.der"),
              "--role", "primary").stdout
    assert okta in out and "primary" in out
    ctl(store, "cert", "add", "acme", os.path.join(KEYS, "entra.crt"),
        "--role", "secondary")
    ctl(store, "cert", "add", "acme", os.path.join(KEYS, "google.crt"))
    certs = jctl(store, "cert", "list", "acme")
    assert [(c["sha256"], c["role"], c["source"]) for c in certs] == [
        (okta, "primary", "upload"), (entra, "secondary", "upload"),
        (google, "none", "upload")]
    assert certs[0]["status"] == "valid"
    assert "SHA256" in ctl(store, "cert", "list", "acme").stdout

    # a role moves from its holder; at most one primary and one secondary
    ctl(store, "cert", "role", "acme", google.upper(), "primary")
    roles = {c["sha256"]: c["role"] for c in jctl(store, "cert", "list",
                                                  "acme")}
    assert roles == {okta: "none", entra: "secondary", google: "primary"}

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    refused(store, "bad_certificate", "cert", "add", "acme", str(garbage))
    refused(store, "bad_certificate", "cert", "add", "acme",
            os.path.join(KEYS, "okta.key"))
    refused(store, "no_file", "cert", "add", "acme", str(tmp_path / "none"))
    refused(store, "not_found", "cert", "add", "nope",
            os.path.join(KEYS, "okta.crt"))
    refused(store, "bad_fingerprint", "cert", "role", "acme", "abcd",
            "primary")
    refused(store, "not_found", "cert", "role", "acme", sha256_of("expired"),
            "primary")
    refused(store, "not_found", "cert", "list", "nope")

    ctl(store, "cert", "remove", "acme", okta)
    assert okta not in [c["sha256"] for c in jctl(store, "cert", "list",
                                                  "acme")]
    refused(store, "not_found", "cert", "remove", "acme", okta)
    refused(store, "bad_fingerprint", "cert", "remove", "acme", "xyz")

    # expiring: the expired one now; the rest (valid until 2046) later
    ctl(store, "cert", "add", "old", os.path.join(KEYS, "expired.crt"),
        "--role", "primary")
    soon = jctl(store, "cert", "expiring")
    assert [(e["account"], e["sha256"]) for e in soon] == [
        ("old", sha256_of("expired"))]
    assert soon[0]["not_after"] == "2021-01-01T00:00:00Z"
    assert "expired.example.test" in soon[0]["subject"]
    text = ctl(store, "cert", "expiring", "--days", "30").stdout
    assert "old" in text and sha256_of("expired") in text
    later = jctl(store, "cert", "expiring", "--days", "8000")
    assert {e["sha256"] for e in later} == {sha256_of("expired"), entra,
                                            google}


# ---- enabling ---------------------------------------------------------------------------

def test_enable_refusals_and_success(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    msg = refused(store, "incomplete", "enable", "acme")
    assert "idp, email_mapping, usable_certificate" in msg

    ctl(store, "idp", "import", "acme", os.path.join(MD, "okta.xml"))
    msg = refused(store, "incomplete", "enable", "acme")
    assert msg.endswith("missing: email_mapping")
    ctl(store, "attr", "set", "acme", "mail")

    ctl(store, "user", "add", "acme", "100", "alice@example.com")
    ctl(store, "user", "add", "acme", "q7", "ALICE@example.com ", "--kind",
        "call_queue")
    ctl(store, "user", "add", "acme", "200", "bob@example.com")
    ctl(store, "user", "add", "acme", "201", "Bob@Example.com")
    msg = refused(store, "duplicate_emails", "enable", "acme")
    assert "alice@example.com held by 100, q7 (call queue)" in msg
    assert "bob@example.com held by 200, 201" in msg

    # an account whose users have unique emails
    ctl(store, "account", "add", "beta")
    ready_users = [("1", "a@example.com"), ("2", "b@example.com")]
    ctl(store, "idp", "import", "beta", write_tmp(store, idp_metadata(
        "https://idp.beta.example.test", ["keycloak"])))
    ctl(store, "attr", "set", "beta", "--name-id")
    for ext, email in ready_users:
        ctl(store, "user", "add", "beta", ext, email)
    out = ctl(store, "enable", "beta").stdout
    assert "SSO enabled" in out and "password login refused" in out
    show = jctl(store, "account", "show", "beta")
    assert show["sso_enabled"] is True and show["allow_password"] is False
    assert show["missing"] == []

    # while enabled, a duplicate contact email is refused
    refused(store, "duplicate_email", "user", "add", "beta", "3",
            " A@EXAMPLE.com")
    ctl(store, "user", "add", "beta", "3", "c@example.com")
    ctl(store, "enable", "beta", "--allow-password")
    assert jctl(store, "account", "show", "beta")["allow_password"] is True
    ctl(store, "disable", "beta")
    show = jctl(store, "account", "show", "beta")
    assert show["sso_enabled"] is False
    ctl(store, "user", "add", "beta", "4", "a@example.com")
    refused(store, "not_found", "enable", "nope")
    refused(store, "not_found", "disable", "nope")
    actions = [r[0] for r in store.sql(
        "SELECT action FROM audit WHERE account = 'beta' ORDER BY id")]
    assert actions.count("sso.enable") == 2
    assert actions[-2:] == ["sso.disable", "user.add"]


def test_expired_only_certificate_is_not_usable(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    ctl(store, "idp", "import", "acme", write_tmp(store, idp_metadata(
        "https://idp.old.example.test", ["expired", "notyet"])))
    ctl(store, "attr", "set", "acme", "mail")
    ctl(store, "cert", "role", "acme", sha256_of("expired"), "primary")
    ctl(store, "cert", "role", "acme", sha256_of("notyet"), "secondary")
    statuses = {c["role"]: c["status"]
                for c in jctl(store, "cert", "list", "acme")}
    assert statuses == {"primary": "expired", "secondary": "not_yet_valid"}
    msg = refused(store, "incomplete", "enable", "acme")
    assert msg.endswith("missing: usable_certificate")


def write_tmp(store, text):
    path = os.path.join(store.dir, "md-%s.xml" % uuid.uuid4().hex[:8])
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- SP metadata -----------------------------------------------------------------------

def test_sp_metadata(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    ctl(store, "account", "add", "shared1")
    xml = ctl(store, "sp-metadata", "acme").stdout
    assert 'entityID="https://portal.example.test/sso"' in xml
    assert 'Location="https://portal.example.test/sso/acs"' in xml
    ctl(store, "idp", "import", "shared1", os.path.join(MD, "okta.xml"),
        "--shared")
    xml = ctl(store, "sp-metadata", "shared1").stdout
    assert 'entityID="https://portal.example.test/sso/shared1"' in xml
    assert 'Location="https://portal.example.test/sso/acs/shared1"' in xml
    # the SP certificates named by BTSSOSPCertificate and
    # BTSSOSPNextCertificate are published for signing, the current one
    # for encryption too
    current = sp_cert_b64("sp-current.crt")
    assert xml.count(current) == 2
    assert xml.count(sp_cert_b64("sp-next.crt")) == 1
    assert 'AuthnRequestsSigned="true"' in xml
    refused(store, "not_found", "sp-metadata", "nope")
    store.write_conf("    BTSSOSPPath /saml\n"
                     "    BTSSOSPEntityID urn:example:sp\n")
    xml = ctl(store, "sp-metadata", "acme").stdout
    assert 'entityID="urn:example:sp"' in xml
    assert "https://portal.example.test/saml/acs" in xml


def test_sp_metadata_needs_base_url(store):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    with open(store.conf, "w") as f:
        f.write('DBDriver %s\nDBDParams "%s"\n' % (store.kind, store.params))
    refused(store, "no_base_url", "sp-metadata", "acme")


# ---- configuration reader -----------------------------------------------------------------

def test_config_reader(store, tmp_path):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-store.conf").write_text(
        "# the store, split over a continued line\n"
        "DBDriver \\\n    %s\n"
        "DBDParams '%s'\n" % (store.kind, store.params))
    (conf_d / "20-sp.conf").write_text(
        "BTSSOBaseURL https://sso.example.test\n"
        "<Location /admin>\n"
        "    BTSSOBaseURL https://per-dir-is-ignored.example.test\n"
        "</Location>\n")
    main = tmp_path / "main.conf"
    main.write_text("ServerName test\n"
                    "Include conf.d/*.conf\n"
                    "IncludeOptional missing.d/*.conf\n"
                    "IncludeOptional /nonexistent/file.conf\n")
    r = subprocess.run([BTSSOCTL, "-c", str(main), "--json", "account",
                        "list"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [a["account"] for a in json.loads(r.stdout)] == ["acme"]
    r = subprocess.run([BTSSOCTL, "-c", str(main), "sp-metadata", "acme"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'entityID="https://sso.example.test/sso"' in r.stdout

    # Include of a missing file is an error, IncludeOptional is not
    bad = tmp_path / "bad.conf"
    bad.write_text("Include nothing-here.conf\n")
    r = subprocess.run([BTSSOCTL, "-c", str(bad), "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "conf_syntax" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    # a bad value names file, line and directive
    bad.write_text("DBDriver sqlite3\nBTSSOMetadataMaxSize lots\n")
    r = subprocess.run([BTSSOCTL, "-c", str(bad), "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "conf_value" in r.stderr and "bad.conf:2" in r.stderr
    assert "BTSSOMetadataMaxSize" in r.stderr
    bad.write_text('DBDParams "unterminated\n')
    r = subprocess.run([BTSSOCTL, "-c", str(bad), "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "unterminated quote" in r.stderr
    # a loop of includes is cut off
    bad.write_text("Include bad.conf\n")
    r = subprocess.run([BTSSOCTL, "-c", str(bad), "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "nested too deeply" in r.stderr
    # a missing -c file
    r = subprocess.run([BTSSOCTL, "-c", str(tmp_path / "none.conf"),
                        "account", "list"], capture_output=True, text=True)
    assert r.returncode == 1 and "conf_missing" in r.stderr
    # an operator query with the wrong parameters is refused up front
    store.write_conf('    BTSSOUserQuery "SELECT extension, email FROM users'
                     ' WHERE account = %s"\n')
    refused_conf = subprocess.run([BTSSOCTL, "-c", store.conf, "account",
                                   "list"], capture_output=True, text=True)
    assert refused_conf.returncode == 1
    assert "bad_query" in refused_conf.stderr


def test_d_and_p_override_the_config(store, tmp_path):
    ctl(store, "init")
    ctl(store, "account", "add", "acme")
    other = tmp_path / "other.db"
    elsewhere = tmp_path / "elsewhere.conf"
    elsewhere.write_text("DBDriver sqlite3\nDBDParams %s\n" % other)
    # -d/-p win over the file's DBDriver/DBDParams
    r = subprocess.run([BTSSOCTL, "-c", str(elsewhere), "-d", store.kind,
                        "-p", store.params, "--json", "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [a["account"] for a in json.loads(r.stdout)] == ["acme"]
    assert not other.exists()
    # no configuration at all: -d/-p alone
    r = subprocess.run([BTSSOCTL, "-c", str(elsewhere), "-d", "mysql", "-p",
                        "x", "account", "list"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "bad_driver" in r.stderr
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing\n")
    r = subprocess.run([BTSSOCTL, "-c", str(empty), "account", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no_store" in r.stderr


def test_last_usable_certificate_kept_while_enforced(store):
    """While SSO is enforced, neither removing nor demoting the last usable
    certificate is allowed (nobody could sign in); after a successor is
    promoted, or with SSO off, it is."""
    ready(store)
    ctl(store, "user", "add", "acme", "100", "alice@example.com")
    ctl(store, "enable", "acme")
    okta = sha256_of("okta")
    refused(store, "last_usable_certificate", "cert", "remove", "acme", okta)
    refused(store, "last_usable_certificate", "cert", "role", "acme", okta,
            "none")
    # rollover: the successor as secondary, then the old one may go
    ctl(store, "cert", "add", "acme", os.path.join(FIX, "keys", "entra.crt"),
        "--role", "secondary")
    ctl(store, "cert", "remove", "acme", okta)
    refused(store, "last_usable_certificate", "cert", "remove", "acme",
            sha256_of("entra"))
    ctl(store, "disable", "acme")
    ctl(store, "cert", "remove", "acme", sha256_of("entra"))
