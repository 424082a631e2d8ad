"""The admin API (SetHandler btsso-admin) through a real httpd: every
endpoint of SPEC, authorization per account, CSRF, version conflicts, audit
rows, hostile uploads, and metadata by URL against a local HTTPS server
with its own CA.

Run: BTSSO_BUILDDIR=<build dir> /usr/bin/python3 -m pytest -q \
     t/integration/test_admin.py
"""
import base64
import json
import os
import re
import socket
import time

import pytest
import requests

import btsso_httpd
from adminlib import (AdminPortal, MetadataServer, MD, KEYS, PASSWORD,
                      idp_metadata, make_cert, namespace_wrapper,
                      sha256_of, sha256_of_pem, write_htpasswd)

ADFS = "http://adfs.example.test/adfs/services/trust"
OKTA = "http://www.okta.com/exk1a2b3c4d5E6F7g8h9"
KEYCLOAK = "https://keycloak.example.test/realms/btsso"
EMAIL_CLAIM = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
               "emailaddress")


@pytest.fixture
def portal(make_httpd):
    return AdminPortal(make_httpd).start()


def fixture(name):
    with open(os.path.join(MD, name), "rb") as f:
        return f.read()


def upload(c, name, how="multipart", **kw):
    data = fixture(name) if isinstance(name, str) and name.endswith(".xml") \
        else name
    if how == "multipart":
        return c.post("metadata", files={"file": ("idp.xml", data,
                                                  "text/xml")}, **kw)
    return c.post("metadata", data=data,
                  headers={"Content-Type": "application/samlmetadata+xml"},
                  **kw)


def state_of(c):
    """The configuration without what changes on every read."""
    j = c.config()
    j.pop("csrf_token")
    return j


def complete(portal, c, name="adfs.xml"):
    r = upload(c, name)
    assert r.status_code == 200, r.text
    r = c.put("email-attribute", json={"attribute": EMAIL_CLAIM})
    assert r.status_code == 200, r.text
    return r.json()


# ---- the page and the state document ------------------------------------------

def test_page_is_self_contained_with_strict_csp(portal):
    c = portal.client()
    r = c.get("")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9+/=]+)'", csp).group(1)
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.text.count('nonce="%s"' % nonce) == 2     # style + script
    assert "@NONCE@" not in r.text
    # no external assets: nothing loaded from another origin or path
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)=', r.text)
    assert "Enable SSO Service" in r.text
    assert r.headers["X-Frame-Options"] == "DENY"
    # a fresh nonce per response
    r2 = c.get("")
    assert r2.headers["Content-Security-Policy"] != csp
    # GET /<account> without the slash is not the page
    assert portal.client().s.get(portal.url + "/admin/sso/acme",
                                 timeout=10).status_code == 404


def test_config_document(portal):
    c = portal.client()
    r = c.get("config")
    assert r.status_code == 200
    j = r.json()
    assert r.headers["ETag"] == '"%d"' % j["version"]
    assert r.headers["Cache-Control"] == "no-store"
    assert j["account"] == "acme" and j["name"] == "Acme Ltd"
    assert j["user"] == "ann@example.com"
    assert j["idp"] is None and j["certificates"] == []
    assert j["enabled"] is False and j["allow_password"] is False
    assert j["missing"] == ["idp", "email_mapping", "usable_certificate"]
    assert j["sp"]["entity_id"] == portal.url + "/sso"
    assert j["sp"]["acs_url"] == portal.url + "/sso/acs"
    assert j["test_url"] == portal.url + "/sso/test/acme"
    assert re.fullmatch(r"v1\.\d+\.[0-9a-f]{64}", j["csrf_token"])
    assert j["email"] == {"attribute": None, "name_id": False}


# ---- authorization -------------------------------------------------------------

def test_authorization(portal):
    h = portal.httpd
    h.expect_log("BTSSO0403")
    url = portal.url + "/admin/sso/acme/config"
    # httpd's authentication comes first
    assert requests.get(url, timeout=10).status_code == 401
    # an authenticated user who is not an admin of acme
    for user in ("bob@example.com", "carol@example.com",
                 "mallory@example.com"):
        r = requests.get(url, auth=(user, PASSWORD), timeout=10)
        assert r.status_code == 403, user
        assert r.json()["error"] == "forbidden"
    # the extension of an admin is not (default BTSSOAdminQuery: the email
    # only; see test_default_admin_query_matches_the_email_only)
    r = requests.get(url, auth=("100", PASSWORD), timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    # an admin of acme asking for another account: 403, and an unknown
    # account looks the same (ids cannot be probed)
    ann = portal.client()
    for other in ("other", "nosuch"):
        r = ann.s.get(portal.url + "/admin/sso/%s/config" % other,
                      timeout=10)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        r = ann.s.get(portal.url + "/admin/sso/%s/" % other, timeout=10)
        assert r.status_code == 403
    # carol administers "other" only: writes to acme are refused too
    carol = portal.client("carol@example.com", "other")
    carol.config()
    r = carol.s.put(portal.url + "/admin/sso/acme/enabled",
                    json={"enabled": False, "version": 1},
                    headers={"X-CSRF-Token": carol.token}, timeout=10)
    assert r.status_code == 403
    # malformed account ids are not routes
    assert ann.s.get(portal.url + "/admin/sso/a%20b/config",
                     timeout=10).status_code == 404
    assert "BTSSO0403" in h.log_text()
    # admin refusals wrote nothing
    assert portal.audit("acme") == []


def test_default_admin_query_matches_the_email_only(make_httpd):
    """Extensions repeat across accounts: with the default BTSSOAdminQuery
    Basic user "101" administers neither account whose extension 101 is an
    admin.  The email matches case-insensitively (and trimmed, as stored);
    an operator may still write a query that accepts extensions."""
    users = (("north", "101", "nora@north.example", True),
             ("south", "101", "sam@south.example", True),
             ("south", "102", " Pat@South.Example ", True))
    portal = AdminPortal(make_httpd, users=users).start()
    portal.httpd.expect_log("BTSSO0403")
    write_htpasswd(portal.htpasswd, ["101", "nora@north.example",
                                     "sam@south.example",
                                     "PAT@south.EXAMPLE"])

    def status(user, account):
        r = requests.get("%s/admin/sso/%s/config" % (portal.url, account),
                         auth=(user, PASSWORD), timeout=10)
        if r.status_code == 403:
            assert r.json()["error"] == "forbidden"
        return r.status_code

    assert status("101", "north") == 403
    assert status("101", "south") == 403
    assert status("nora@north.example", "north") == 200
    assert status("nora@north.example", "south") == 403
    assert status("sam@south.example", "south") == 200
    assert status("PAT@south.EXAMPLE", "south") == 200
    assert status("PAT@south.EXAMPLE", "north") == 403
    # the operator's own choice: extensions administer
    h = portal.httpd
    h.btsso_conf += ('BTSSOAdminQuery "SELECT extension FROM users WHERE '
                     'account = %s AND is_admin = 1 AND extension = %s"\n')
    h.stop()
    h.start()
    assert status("101", "north") == 200
    assert status("101", "south") == 200
    assert status("nora@north.example", "north") == 403


def test_csrf(portal):
    portal.httpd.expect_log("BTSSO0404")
    portal.ctl("user", "add", "acme", "104", "eve@example.com", "--admin")
    write_htpasswd(portal.htpasswd, ["ann@example.com", "eve@example.com",
                                     "carol@example.com"])
    ann = portal.client()
    cfg = ann.config()
    body = {"enabled": False, "allow_password": True}
    # missing, empty, garbage, tampered expiry, tampered MAC
    tok = ann.token
    _, exp, mac = tok.split(".")
    bad_tokens = [None, "", "nonsense", "v1.%d.%s" % (int(exp) + 1, mac),
                  "v1.%s.%s" % (exp, ("0" if mac[0] != "0" else "1")
                                + mac[1:]),
                  "v1.%s.%s" % (exp, mac.upper()),
                  "v1.1.%s" % mac]
    for t in bad_tokens:
        r = ann.put("enabled", json=body, token=t or False)
        assert r.status_code == 403, t
        assert r.json()["error"] == "csrf"
    # a token is bound to user and account
    carol = portal.client("carol@example.com", "other")
    carol.config()
    r = ann.put("enabled", json=body, token=carol.token)
    assert r.status_code == 403
    twin = portal.client("ann@example.com", "twin")
    twin.config()
    r = ann.put("enabled", json=body, token=twin.token)
    assert r.status_code == 403
    eve = portal.client("eve@example.com", "acme")   # same account
    eve.config()
    r = ann.put("enabled", json=body, token=eve.token)
    assert r.status_code == 403
    # nothing changed, no audit row
    assert ann.config()["version"] == cfg["version"]
    assert ann.config()["allow_password"] is False
    assert portal.audit("acme") == []
    # with the right token it works
    r = ann.put("enabled", json=body)
    assert r.status_code == 200 and r.json()["allow_password"] is True


def test_csrf_key_from_the_sp_key_survives_a_restart(make_httpd):
    """With the SP key the token key is derived from it: a token from one
    node (here: before a full restart) verifies after it."""
    portal = AdminPortal(make_httpd).start()
    ann = portal.client()
    ann.config()
    token = ann.token
    portal.httpd.stop()
    portal.httpd.start()
    r = ann.put("enabled", json={"enabled": False}, token=token)
    assert r.status_code == 200, r.text


def test_csrf_token_works_on_every_node_with_the_same_sp_key(make_httpd):
    """Two nodes on one store: a token from node A verifies on node B when
    both have the same SP key, and not on a node with another key."""
    portal = AdminPortal(make_httpd).start()
    ann = portal.client()
    ann.config()
    sp = os.path.join(btsso_httpd.TOP, "t", "fixtures", "sp")

    def node(key):
        conf = portal.conf.replace("sp-current.crt", key + ".crt").replace(
            "sp-current.key", key + ".key")
        h = make_httpd(btsso_conf=conf, extra_conf=portal.httpd.extra_conf,
                       db=portal.httpd.db)
        h.start()
        return h

    same, other = node("sp-current"), node("sp-next")
    assert os.path.exists(os.path.join(sp, "sp-next.key"))
    other.expect_log("BTSSO0404")
    r = ann.s.put("%s/admin/sso/acme/enabled" % same.url,
                  json={"enabled": False, "version": ann.version},
                  headers={"X-CSRF-Token": ann.token}, timeout=10)
    assert r.status_code == 200, r.text
    r = ann.s.put("%s/admin/sso/acme/enabled" % other.url,
                  json={"enabled": False, "version": r.json()["version"]},
                  headers={"X-CSRF-Token": ann.token}, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "csrf"


def test_csrf_random_key_without_sp_key(make_httpd):
    portal = AdminPortal(make_httpd, sp_keys=False).start()
    ann = portal.client()
    ann.config()
    token = ann.token
    portal.httpd.graceful()
    ann.s.close()       # a keep-alive connection does not survive a restart
    r = ann.put("enabled", json={"enabled": False}, token=token)
    assert r.status_code == 200, r.text
    # a new httpd parent has a new random key
    portal.httpd.expect_log("BTSSO0404")
    portal.httpd.stop()
    portal.httpd.start()
    r = ann.put("enabled", json={"enabled": False}, token=token)
    assert r.status_code == 403 and r.json()["error"] == "csrf"


# ---- metadata upload ----------------------------------------------------------------

def test_metadata_multipart_and_xml_body(portal):
    ann = portal.client()
    v0 = ann.config()["version"]
    r = upload(ann, "adfs.xml")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["version"] > v0
    idp = j["idp"]
    assert idp["entity_id"] == ADFS and idp["source_url"] is None
    assert idp["sso"][0]["location"].startswith("https://")
    assert any(a["name"] == EMAIL_CLAIM for a in idp["attributes"])
    assert idp["nameid_formats"]
    assert idp["signing_certificates"] == [sha256_of("adfs-signing")]
    roles = {c["sha256"]: c["role"] for c in j["certificates"]}
    assert roles[sha256_of("adfs-signing")] == "primary"
    assert j["missing"] == ["email_mapping"]
    # the same as a plain XML body replaces the IdP
    r = upload(ann, "keycloak.xml", how="xml")
    assert r.status_code == 200, r.text
    assert r.json()["idp"]["entity_id"] == KEYCLOAK
    assert r.json()["email"]["attribute"] is None
    rows = portal.audit("acme")
    assert [row[2] for row in rows] == ["ann@example.com"] * 2
    assert all(row[3].startswith("idp") for row in rows), rows
    assert rows[-1][0] >= int(time.time()) - 60
    # form fields: url missing, file missing
    r = ann.post("metadata", files={"other": ("x", b"y")})
    assert r.status_code == 400 and r.json()["error"] == "no_file"
    r = ann.post("metadata", data=b"--x\r\nbroken",
                 headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.json()["error"] == "bad_multipart"


def test_email_attribute(portal):
    ann = portal.client()
    r = ann.put("email-attribute", json={"attribute": "mail"})
    assert r.status_code == 409 and r.json()["error"] == "no_idp"
    upload(ann, "adfs.xml")
    r = ann.put("email-attribute", json={"attribute": EMAIL_CLAIM})
    assert r.status_code == 200
    assert r.json()["email"] == {"attribute": EMAIL_CLAIM, "name_id": False}
    r = ann.put("email-attribute", json={"attribute": "urn:custom:mail"})
    assert r.json()["email"]["attribute"] == "urn:custom:mail"
    r = ann.put("email-attribute", json={"name_id": True})
    assert r.json()["email"] == {"attribute": None, "name_id": True}
    for bad in ({}, {"attribute": "x", "name_id": True}, {"attribute": 5},
                {"name_id": False}, {"attribute": " padded "}):
        r = ann.put("email-attribute", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"] == "bad_attribute"
    r = ann.put("email-attribute", data=b"{not json",
                headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
    assert ann.config()["email"]["name_id"] is True
    actions = [row[3] for row in portal.audit("acme")]
    assert actions.count(actions[-1]) >= 3        # three email changes


def test_certificates(portal, tmp_path):
    ann = portal.client()
    upload(ann, "okta.xml")
    okta = sha256_of("okta")
    # add PEM as the body, DER as a form file with a role
    pem = open(os.path.join(KEYS, "google.crt"), "rb").read()
    r = ann.post("certificates", data=pem,
                 headers={"Content-Type": "application/x-pem-file"})
    assert r.status_code == 200, r.text
    google = sha256_of("google")
    roles = {c["sha256"]: c["role"] for c in r.json()["certificates"]}
    assert roles == {okta: "primary", google: "none"}
    der = open(os.path.join(KEYS, "okta.der"), "rb").read()
    r = ann.post("certificates", files={"file": ("c.der", der)},
                 data={"role": "secondary"})
    assert r.status_code == 200        # already stored: only the role moves
    roles = {c["sha256"]: c["role"] for c in r.json()["certificates"]}
    assert roles[okta] == "secondary"
    r = ann.post("certificates?role=primary", data=pem)
    roles = {c["sha256"]: c["role"] for c in r.json()["certificates"]}
    assert roles == {okta: "secondary", google: "primary"}
    # roles: promote, demote; uppercase fingerprints are the same cert
    r = ann.put("certificates/" + okta.upper(), json={"role": "primary"})
    assert r.status_code == 200
    roles = {c["sha256"]: c["role"] for c in r.json()["certificates"]}
    assert roles == {okta: "primary", google: "none"}
    c = {c["sha256"]: c for c in r.json()["certificates"]}[okta]
    assert c["subject"] and c["not_after"].endswith("Z")
    assert c["status"] == "valid" and c["usable"] is True
    # refusals
    assert ann.put("certificates/" + google, json={"role": "boss"}
                   ).status_code == 400
    assert ann.put("certificates/" + google, json={}).status_code == 400
    assert ann.put("certificates/" + "ab" * 32, json={"role": "primary"}
                   ).status_code == 404
    assert ann.put("certificates/xyz", json={"role": "primary"}
                   ).status_code == 404
    r = ann.post("certificates", data=b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                 b"-----END CERTIFICATE-----\n")
    assert r.status_code == 422 and r.json()["error"] == "bad_certificate"
    key = open(os.path.join(KEYS, "okta.key"), "rb").read()
    assert ann.post("certificates", data=key).status_code == 422
    assert ann.post("certificates", data=b"").status_code in (400, 422)
    # remove
    r = ann.delete("certificates/" + google)
    assert r.status_code == 200
    assert [c["sha256"] for c in r.json()["certificates"]] == [okta]
    assert ann.delete("certificates/" + google).status_code == 404
    # an expiring certificate is flagged
    soon = make_cert(str(tmp_path), "soon", 10)
    r = ann.post("certificates", data=open(soon, "rb").read())
    c = {c["sha256"]: c for c in r.json()["certificates"]}[
        sha256_of_pem(soon)]
    assert c["status"] == "expiring" and 8 <= c["days_left"] <= 10
    # methods
    assert ann.s.get(ann.url("certificates/" + okta),
                     timeout=10).status_code == 405
    assert ann.send("GET", "certificates").status_code == 405


def test_sp_metadata_download(portal):
    ann = portal.client()
    r = ann.get("sp-metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(
        "application/samlmetadata+xml")
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="sp-metadata-acme.xml"'
    assert 'entityID="%s/sso"' % portal.url in r.text
    assert "%s/sso/acs" % portal.url in r.text
    assert "X509Certificate" in r.text          # the SP signing key
    # an account of a shared IdP gets its own entityID and ACS
    portal.ctl("idp", "import", "twin", portal.fixture_path("okta.xml"),
               "--shared")
    twin = portal.client("ann@example.com", "twin")
    r = twin.get("sp-metadata")
    assert 'entityID="%s/sso/twin"' % portal.url in r.text
    assert twin.config()["sp"]["acs_url"] == portal.url + "/sso/acs/twin"


# ---- enabling -------------------------------------------------------------------------

def test_duplicates_and_enable_refusals(portal):
    ann = portal.client()
    # incomplete: everything missing, in words
    r = ann.put("enabled", json={"enabled": True})
    assert r.status_code == 409
    j = r.json()
    assert j["error"] == "incomplete"
    assert j["missing"] == ["idp", "email_mapping", "usable_certificate"]
    assert "IdP metadata" in j["message"] and "email" in j["message"]
    complete(portal, ann)
    # duplicate contact emails (case and spaces ignored)
    portal.ctl("user", "add", "acme", "103", " Bob@Example.com ")
    portal.ctl("user", "add", "acme", "Q1", "bob@example.com", "--kind",
               "call_queue")
    r = ann.get("duplicate-emails")
    assert r.status_code == 200
    d = r.json()["duplicates"]
    assert [x["email"] for x in d] == ["bob@example.com"]
    assert {(h["extension"], h["kind"]) for h in d[0]["holders"]} == {
        ("101", "user"), ("103", "user"), ("Q1", "call_queue")}
    v = ann.config()["version"]
    r = ann.put("enabled", json={"enabled": True})
    assert r.status_code == 409
    j = r.json()
    assert j["error"] == "duplicate_emails"
    assert "bob@example.com" in j["message"]
    assert j["duplicates"][0]["email"] == "bob@example.com"
    assert ann.config()["enabled"] is False and ann.version == v
    # the duplicate check alone, for an account without duplicates
    other = portal.client("carol@example.com", "other")
    assert other.get("duplicate-emails").json() == {"duplicates": []}


def test_enable_disable_allow_password(portal):
    ann = portal.client()
    complete(portal, ann)
    # no IdP to sign in through here: the test-login rule has its own tests
    # (test_audit.py)
    r = ann.put("enabled", json={"enabled": True, "confirm_untested": True})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True and r.json()["allow_password"] is False
    assert portal.ctl("account", "show", "acme", json_out=True).stdout
    r = ann.put("enabled", json={"enabled": True, "allow_password": True})
    assert r.json()["allow_password"] is True
    r = ann.put("enabled", json={"enabled": False})
    assert r.json()["enabled"] is False
    for bad in ({}, {"enabled": "yes"}, {"enabled": True,
                                         "allow_password": 1}):
        assert ann.put("enabled", json=bad).status_code == 400
    actions = [row[3] for row in portal.audit("acme")]
    assert actions[-4:] == ["sso.enable", "sso.enable_untested",
                            "sso.enable", "sso.disable"]


def test_expired_only_certificates(portal):
    ann = portal.client()
    xml = idp_metadata("https://expired.example.test/idp", ["expired"],
                       attributes=["mail"])
    r = upload(ann, xml.encode())
    assert r.status_code == 200, r.text
    j = r.json()
    c = j["certificates"][0]
    assert c["status"] == "expired" and c["usable"] is False
    assert c["role"] == "none"
    ann.put("email-attribute", json={"attribute": "mail"})
    # even when an administrator gives it a role, it is not usable
    ann.put("certificates/" + c["sha256"], json={"role": "primary"})
    r = ann.put("enabled", json={"enabled": True})
    assert r.status_code == 409
    assert r.json()["error"] == "incomplete"
    assert r.json()["missing"] == ["usable_certificate"]


# ---- concurrency ------------------------------------------------------------------------

def test_two_admins_conflict(portal):
    """SPEC: If-Match is optional; sent and stale, 412 precondition_failed
    and nothing changes."""
    portal.ctl("user", "add", "acme", "104", "eve@example.com", "--admin")
    write_htpasswd(portal.htpasswd, ["ann@example.com", "eve@example.com"])
    ann, eve = portal.client(), portal.client("eve@example.com")
    complete(portal, ann)
    ann.config()
    eve.config()
    assert ann.version == eve.version
    r = ann.put("email-attribute", json={"attribute": "mail"})
    assert r.status_code == 200
    # eve saves from what she read before: refused, nothing overwritten
    before, audit = state_of(ann), portal.audit("acme")
    r = eve.put("email-attribute", json={"name_id": True})
    assert r.status_code == 412 and r.json()["error"] == "precondition_failed"
    assert "changed meanwhile" in r.json()["message"]
    assert state_of(ann) == before and portal.audit("acme") == audit
    assert eve.config()["email"]["attribute"] == "mail"
    # each change type checks the version
    stale = eve.version
    ann.put("enabled", json={"enabled": False})
    before, audit = state_of(ann), portal.audit("acme")
    for method, path, kw in (
            ("PUT", "enabled", {"json": {"enabled": True}}),
            ("PUT", "email-attribute", {"json": {"name_id": True}}),
            ("POST", "metadata", {"data": fixture("okta.xml")}),
            ("POST", "metadata", {"files": {"file": (
                "idp.xml", fixture("okta.xml"), "text/xml")}}),
            ("POST", "certificates",
             {"data": open(os.path.join(KEYS, "google.crt"), "rb").read()}),
            ("PUT", "certificates/" + sha256_of("adfs-signing"),
             {"json": {"role": "secondary"}}),
            ("DELETE", "certificates/" + sha256_of("adfs-signing"), {})):
        for version in ('"%d"' % stale, 'W/"%d"' % stale, str(stale)):
            r = eve.send(method, path, version=version, **kw)
            assert r.status_code == 412, (method, path, r.text)
            assert r.json()["error"] == "precondition_failed"
    assert state_of(ann) == before and portal.audit("acme") == audit
    # a JSON "version" is the same precondition as If-Match
    r = eve.put("enabled", version=False,
                json={"enabled": True, "version": stale})
    assert r.status_code == 412
    # an If-Match no version can meet: refused too, never ignored
    for bad in ('W/"abc"', '"%d", "%d"' % (stale, stale + 1), '""', "-1"):
        r = eve.put("enabled", version=bad, json={"enabled": True})
        assert r.status_code == 412, (bad, r.text)
    for bad in ("7", 0, -3, True):
        r = eve.put("enabled", version=False,
                    json={"enabled": True, "version": bad})
        assert r.status_code == 412, (bad, r.text)
    # If-Match and "version" naming two versions: one of them is stale
    current = eve.config()["version"]
    r = eve.put("enabled", version='"%d"' % current,
                json={"enabled": True, "version": stale})
    assert r.status_code == 412
    assert state_of(ann) == before and portal.audit("acme") == audit
    # the current version, as If-Match or as "version": applies
    r = eve.put("enabled", json={"enabled": False, "allow_password": True})
    assert r.status_code == 200, r.text
    assert r.json()["allow_password"] is True
    r = eve.put("enabled", version=False,
                json={"enabled": False, "version": r.json()["version"]})
    assert r.status_code == 200 and r.json()["allow_password"] is False
    r = eve.put("enabled", version="*", json={"enabled": False,
                                              "allow_password": True})
    assert r.status_code == 200 and r.json()["allow_password"] is True


def test_write_without_if_match_applies_to_current_settings(portal):
    """A client that never sends If-Match (nor "version") is not refused:
    each change applies to the settings as they are."""
    ann = portal.client()
    other = portal.client()             # a second page, never reloaded
    other.config()
    v0 = other.version
    r = upload(ann, "adfs.xml", version=False)
    assert r.status_code == 200, r.text
    assert r.json()["version"] > v0
    r = other.put("email-attribute", version=False,
                  json={"attribute": EMAIL_CLAIM})
    assert r.status_code == 200, r.text
    assert r.json()["email"]["attribute"] == EMAIL_CLAIM
    assert r.json()["idp"]["entity_id"] == ADFS     # ann's upload kept
    for method, path, kw in (
            ("POST", "certificates",
             {"data": open(os.path.join(KEYS, "google.crt"), "rb").read()}),
            ("PUT", "certificates/" + sha256_of("google"),
             {"json": {"role": "secondary"}}),
            ("DELETE", "certificates/" + sha256_of("google"), {}),
            ("PUT", "enabled", {"json": {"enabled": True,
                                         "confirm_untested": True}}),
            ("POST", "metadata", {"data": fixture("adfs.xml")})):
        r = other.send(method, path, version=False, **kw)
        assert r.status_code == 200, (method, path, r.text)
    assert other.config()["enabled"] is True
    assert [row[3] for row in portal.audit("acme")] == [
        "idp.set", "idp.email", "cert.add", "cert.role", "cert.remove",
        "sso.enable", "sso.enable_untested", "idp.set"]


# ---- hostile input ----------------------------------------------------------------------

@pytest.mark.parametrize("name,status,code", [
    ("not-xml.xml", 400, "not_xml"),
    ("xxe.xml", 400, "dtd_forbidden"),
    ("xxe-utf16.xml", 400, None),
    ("billion-laughs.xml", 400, "dtd_forbidden"),
    ("sp-only.xml", 422, "not_idp"),
    ("truncated.xml", 400, "not_xml"),
    ("wrong-root.xml", 422, "not_metadata"),
    ("aggregate-two-idps.xml", 422, "ambiguous_entity"),
    ("no-sso-endpoint.xml", 422, "no_sso_endpoint"),
])
def test_bad_metadata_keeps_previous(portal, name, status, code):
    ann = portal.client()
    complete(portal, ann)
    before = state_of(ann)
    for how in ("multipart", "xml"):
        t0 = time.time()
        r = upload(ann, name, how=how)
        assert time.time() - t0 < 5
        assert r.status_code == status, (how, r.text)
        if code:
            assert r.json()["error"] == code
        assert set(r.json()) >= {"error", "message"}
    assert state_of(ann) == before
    assert "passwd" not in ann.config().get("idp", {}).get("entity_id", "")


def test_aggregate_with_entity_choice(portal):
    ann = portal.client()
    r = ann.post("metadata", files={
        "file": ("agg.xml", fixture("aggregate-two-idps.xml")),
        "entity_id": (None, "https://idp2.agg.example.test/idp")})
    assert r.status_code == 200, r.text
    assert r.json()["idp"]["entity_id"] == "https://idp2.agg.example.test/idp"


def test_entity_owned_by_another_account(portal):
    portal.ctl("idp", "import", "other", portal.fixture_path("okta.xml"))
    ann = portal.client()
    complete(portal, ann)
    before = state_of(ann)
    r = upload(ann, "okta.xml")
    assert r.status_code == 409
    assert r.json()["error"] == "entity_in_use"
    assert "support" in r.json()["message"]
    assert "held by" not in r.json()["message"]     # no other account named
    assert state_of(ann) == before


def raw_request(port, head, body=b"", read_timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def headers_for(c, extra):
    auth = base64.b64encode(("ann@example.com:" + PASSWORD).encode()
                            ).decode()
    return ("POST /admin/sso/acme/metadata HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nAuthorization: Basic %s\r\n"
            "X-CSRF-Token: %s\r\nIf-Match: \"%d\"\r\n%s\r\n"
            % (auth, c.token, c.version, extra))


def test_oversized_upload_refused_before_reading(make_httpd):
    portal = AdminPortal(make_httpd,
                         btsso_conf="BTSSOMetadataMaxSize 64K\n").start()
    ann = portal.client()
    complete(portal, ann)
    before = state_of(ann)
    # a declared length above the limit: 413 without sending a byte of body
    t0 = time.time()
    resp = raw_request(portal.httpd.port, headers_for(
        ann, "Content-Type: application/xml\r\n"
        "Content-Length: 1073741824\r\n"))
    assert resp.startswith(b"HTTP/1.1 413"), resp[:200]
    assert b'"too_large"' in resp or b"413" in resp
    assert time.time() - t0 < 5
    # the same as a multipart form
    resp = raw_request(portal.httpd.port, headers_for(
        ann, "Content-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 50000000\r\n"))
    assert resp.startswith(b"HTTP/1.1 413"), resp[:200]
    # chunked: refused once it grows past the limit, the rest never sent
    s = socket.create_connection(("127.0.0.1", portal.httpd.port),
                                 timeout=10)
    s.sendall(headers_for(ann, "Content-Type: application/xml\r\n"
                          "Transfer-Encoding: chunked\r\n").encode())
    chunk = b"x" * 8192
    sent = 0
    try:
        while sent < 80 * 1024:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except OSError:
        pass
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            part = s.recv(65536)
            if not part:
                break
            data += part
    except OSError:
        pass
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    # through requests too, as a browser would
    big = b"<x>" + b" " * (70 * 1024) + b"</x>"
    try:
        r = upload(ann, big)
        assert r.status_code == 413
    except requests.exceptions.ConnectionError:
        pass   # the server may close before the client finished sending
    # just under the limit is parsed (and refused for what it is)
    r = upload(ann, b"<x>" + b" " * (60 * 1024) + b"</x>", how="xml")
    assert r.status_code == 422
    assert state_of(ann) == before


# ---- metadata by URL ----------------------------------------------------------------------

@pytest.fixture
def mdserver():
    s = MetadataServer()
    yield s
    s.stop()


def url_portal(make_httpd, mdserver, monkeypatch, conf="", ca=None,
               hosts=""):
    """A portal whose httpd trusts the test CA as its system CA."""
    portal = AdminPortal(make_httpd, btsso_conf=conf)
    wrapper = namespace_wrapper(portal.tmp, btsso_httpd.HTTPD,
                                ca or mdserver.ca_copy, hosts)
    monkeypatch.setattr(btsso_httpd, "HTTPD", wrapper)
    return portal.start()


def fetch(c, url):
    return c.post("metadata", json={"url": url})


def test_url_default_policy(make_httpd, mdserver, monkeypatch):
    portal = url_portal(make_httpd, mdserver, monkeypatch,
                        hosts="127.0.0.1 idp.rebind.test\n"
                              "169.254.169.254 metadata.rebind.test\n"
                              "10.1.2.3 intranet.rebind.test\n")
    portal.httpd.expect_log("BTSSO0411")
    ann = portal.client()
    good = mdserver.put("adfs.xml", fixture("adfs.xml"))
    before = state_of(ann)
    refused = [
        good,                                        # loopback
        mdserver.http("/file/adfs.xml"),             # http and loopback
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://10.0.0.1/md.xml",                   # private
        "https://192.168.1.1/md.xml",
        "https://[fe80::1]/md.xml",                  # link-local
        "https://[::ffff:127.0.0.1]:%d/file/adfs.xml" % mdserver.https_port,
        "https://2130706433:%d/file/adfs.xml" % mdserver.https_port,
        # names are checked on the address they resolve to
        good.replace("127.0.0.1", "idp.rebind.test"),
        "https://metadata.rebind.test/latest/meta-data/",
        "https://intranet.rebind.test/md.xml",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
    ]
    for url in refused:
        r = fetch(ann, url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"] in ("url_not_allowed", "bad_url"), url
    assert fetch(ann, "not a url").status_code == 400
    # the form encoding and multipart field work as well
    r = ann.post("metadata", data={"url": good})
    assert r.status_code == 400 and r.json()["error"] == "url_not_allowed"
    r = ann.post("metadata", files={"url": (None, good)})
    assert r.status_code == 400 and r.json()["error"] == "url_not_allowed"
    r = ann.post("metadata", json={"nourl": 1})
    assert r.status_code == 400 and r.json()["error"] == "no_url"
    assert state_of(ann) == before
    # nothing reached the server
    seen = requests.get(mdserver.http("/seen?path=/file/adfs.xml"),
                        timeout=10).text
    assert seen == "no"
    assert "BTSSO0411" in portal.httpd.log_text()
    assert "loopback" in portal.httpd.log_text()


def test_url_fetch_https_with_own_ca(make_httpd, mdserver, monkeypatch):
    portal = url_portal(make_httpd, mdserver, monkeypatch,
                        conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n"
                             "BTSSOMetadataFetchTimeout 3\n"
                             "BTSSOMetadataMaxSize 256K\n")
    portal.httpd.expect_log("BTSSO0411")
    ann = portal.client()
    url = mdserver.put("adfs.xml", fixture("adfs.xml"))
    r = fetch(ann, url)
    assert r.status_code == 200, r.text
    assert r.json()["idp"]["entity_id"] == ADFS
    assert r.json()["idp"]["source_url"] == url
    before = state_of(ann)
    # a redirect within the allowed address is followed
    r = fetch(ann, mdserver.https("/redirect?to=/file/adfs.xml"))
    assert r.status_code == 200, r.text
    before = state_of(ann)
    # redirects are re-checked: to another loopback address (not allowed),
    # to http, to the cloud metadata address
    for to in (mdserver.https("/file/adfs.xml", host="127.0.0.2"),
               mdserver.http("/file/adfs.xml"),
               "https://169.254.169.254/"):
        r = fetch(ann, mdserver.https("/redirect?to=" +
                                      requests.utils.quote(to, safe="")))
        assert r.status_code == 400, (to, r.text)
        assert r.json()["error"] == "url_not_allowed"
    # bounded redirects, time and size; HTTP errors; not metadata
    for path, status, code in (
            ("/loop", 502, "fetch_failed"),
            ("/chain?n=6", 502, "fetch_failed"),
            ("/slow?delay=6", 502, "fetch_failed"),
            ("/big?size=400000&mode=length", 413, "too_large"),
            ("/big?size=400000&mode=chunked", 413, "too_large"),
            ("/declare?length=99999999", 413, "too_large"),
            ("/status?code=404", 502, "fetch_failed"),
            ("/file/nonexistent.xml", 502, "fetch_failed"),
            ("/chain?n=1", 400, "not_xml")):
        t0 = time.time()
        r = fetch(ann, mdserver.https(path))
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"] == code, path
        assert time.time() - t0 < 8, path
    sp = mdserver.put("sp.xml", fixture("sp-only.xml"))
    r = fetch(ann, sp)
    assert r.status_code == 422 and r.json()["error"] == "not_idp"
    assert state_of(ann) == before


def test_url_fetch_wrong_ca_and_plain_http(make_httpd, mdserver, monkeypatch):
    portal = url_portal(make_httpd, mdserver, monkeypatch,
                        conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n",
                        ca=mdserver.other_ca_copy)
    ann = portal.client()
    url = mdserver.put("adfs.xml", fixture("adfs.xml"))
    r = fetch(ann, url)
    assert r.status_code == 502 and r.json()["error"] == "fetch_failed"
    # http stays refused while BTSSOMetadataFetchHTTP is Off
    portal.httpd.expect_log("BTSSO0411")
    r = fetch(ann, mdserver.http("/file/adfs.xml"))
    assert r.status_code == 400 and r.json()["error"] == "url_not_allowed"
    assert ann.config()["idp"] is None


def test_url_fetch_http_when_allowed(make_httpd, mdserver, monkeypatch):
    portal = url_portal(make_httpd, mdserver, monkeypatch,
                        conf="BTSSOMetadataFetchAllow 127.0.0.1/32\n"
                             "BTSSOMetadataFetchHTTP On\n")
    ann = portal.client()
    mdserver.put("adfs.xml", fixture("adfs.xml"))
    r = fetch(ann, mdserver.http("/file/adfs.xml"))
    assert r.status_code == 200, r.text
    assert r.json()["idp"]["source_url"] == mdserver.http("/file/adfs.xml")


def test_reupload_keeps_support_configured_sharing(portal):
    """An administrator of a shared-IdP account uploads fresh metadata of
    the same IdP: the account stays shared (its own entityID and ACS, which
    the IdP knows); metadata of another IdP makes it self-service."""
    portal.ctl("idp", "import", "other", portal.fixture_path("okta.xml"),
               "--shared")
    portal.ctl("idp", "import", "acme", portal.fixture_path("okta.xml"),
               "--shared")
    ann = portal.client()
    r = upload(ann, "okta.xml")
    assert r.status_code == 200, r.text
    show = portal.httpd.ctl("idp", "show", "acme", json_out=True)
    assert json.loads(show.stdout)["shared"] is True
    r = upload(ann, "google.xml")
    assert r.status_code == 200, r.text
    show = portal.httpd.ctl("idp", "show", "acme", json_out=True)
    assert json.loads(show.stdout)["shared"] is False
