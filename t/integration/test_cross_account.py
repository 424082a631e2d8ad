"""No account reaches another's users.

Account "alpha" is kate@corp.example's real account: she signs in to the
portal with her password (Basic, mod_authn_file).  Account "mallory" adds
kate@corp.example as one of its own users and enables SSO with its own IdP.
That must neither lock kate out of password login to alpha
(BTSSOPasswordGuard) nor send her to mallory's IdP from the discovery page
(a phishing route).  A domain that support claimed for an account
(`btssoctl account domain add`) decides both for the claimant."""
import base64
import hashlib
import json
import os
import urllib.parse

import pytest

from adminlib import ADMIN_LOCATION, Client, write_htpasswd
from portal import Portal

PWLOGIN = "https://portal.example.invalid/password-login"
KATE = "kate@corp.example"
KATE_PW = "kate-pw"
MALLORY_IDP = "https://idp.mallory.example/idp"

GUARDED = """
<Location /basic>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {d}/kate.htpasswd
    Require valid-user
    BTSSOPasswordGuard On
</Location>
<Location /basic-alpha>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {d}/kate.htpasswd
    Require valid-user
    BTSSOPasswordGuard On
    BTSSOAccount "alpha"
</Location>
<Location /basic-mallory>
    AuthType Basic
    AuthName "portal"
    AuthBasicProvider file
    AuthUserFile {d}/kate.htpasswd
    Require valid-user
    BTSSOPasswordGuard On
    BTSSOAccount "mallory"
</Location>
"""


def sha_hash(pw):
    return "{SHA}" + base64.b64encode(hashlib.sha1(pw.encode())
                                      .digest()).decode()


def make_portal(make_httpd, tmp_path, btsso_conf=""):
    p = Portal(make_httpd, tmp_path, account="alpha",
               account_expr='"alpha"',
               btsso_conf="BTSSOPasswordLoginURL %s\n" % PWLOGIN
               + btsso_conf)
    h = p.httpd
    htpasswd = os.path.join(h.dir, "admin.htpasswd")
    h.extra_conf += GUARDED.format(d=h.dir)
    h.extra_conf += ADMIN_LOCATION.format(htpasswd=htpasswd)
    with open(os.path.join(h.dir, "kate.htpasswd"), "w") as f:
        f.write("%s:%s\n" % (KATE, sha_hash(KATE_PW)))
    write_htpasswd(htpasswd, ["admin@corp.example", "eve@mallory.example"])
    for d in ("basic", "basic-alpha", "basic-mallory"):
        os.makedirs(os.path.join(h.docroot, d), exist_ok=True)
        with open(os.path.join(h.docroot, d, "index.html"), "w") as f:
            f.write("<p>password area %s</p>\n" % d)
    # alpha: kate's real account, with an IdP but SSO off to begin with
    p.start(users=(("100", KATE), ("900", "boss@corp.example")),
            enable=False)
    p.ctl("user", "add", "alpha", "901", "admin@corp.example", "--admin")
    # mallory: adds kate to itself, enables SSO with its own IdP
    p.ctl("account", "add", "mallory", "--name", "Mallory Ltd")
    p.ctl("user", "add", "mallory", "1", "eve@mallory.example", "--admin")
    p.ctl("user", "add", "mallory", "2", KATE)
    p.mallory_idp = p.make_idp("mallory", entity_id=MALLORY_IDP)
    p.ctl("attr", "set", "mallory", "mail")
    p.ctl("enable", "mallory")
    h.fix_perms()
    return p


@pytest.fixture
def portal(make_httpd, tmp_path):
    return make_portal(make_httpd, tmp_path)


def kate(portal, path):
    return portal.get(path, auth=(KATE, KATE_PW))


def assert_passes(r, where):
    assert r.status_code == 200, (where, r.status_code, r.text)
    assert "password area" in r.text


def assert_refused(r, portal, account):
    assert r.status_code == 403, (r.status_code, r.text)
    assert "single sign-on" in r.text
    assert "password area" not in r.text
    if account is not None:
        assert 'href="%s/sso/login/%s"' % (portal.url, account) in r.text


def discover(portal, email, ret="/app/x"):
    return portal.get("/sso/login?" + urllib.parse.urlencode(
        {"email": email, "return": ret}))


def set_alpha(portal, state):
    if state == "off":
        portal.ctl("disable", "alpha")
    elif state == "allow_password":
        portal.ctl("enable", "alpha", "--allow-password")
    else:
        portal.ctl("enable", "alpha")


# ---- the password guard ----------------------------------------------------

@pytest.mark.parametrize("alpha", ["off", "allow_password"])
def test_other_account_cannot_lock_kate_out(portal, alpha):
    set_alpha(portal, alpha)
    # the portal does not tell the account: mallory's claim on her email
    # does not decide
    assert_passes(kate(portal, "/basic/"), "/basic/")
    # the portal says she signs in to alpha
    assert_passes(kate(portal, "/basic-alpha/"), "/basic-alpha/")
    # signing in to mallory's account, mallory's SSO does decide
    assert_refused(kate(portal, "/basic-mallory/"), portal, "mallory")
    assert "BTSSO0322" in portal.httpd.log_text()


def test_every_holder_enforcing_refuses(portal):
    """When all accounts that hold the email enforce SSO there is no
    password way in, and naming the account decides by that account."""
    set_alpha(portal, "enforce")
    assert_refused(kate(portal, "/basic/"), portal, None)
    assert_refused(kate(portal, "/basic-alpha/"), portal, "alpha")
    portal.ctl("enable", "mallory", "--allow-password")
    assert_passes(kate(portal, "/basic-mallory/"), "/basic-mallory/")
    assert_passes(kate(portal, "/basic/"), "/basic/")
    assert_refused(kate(portal, "/basic-alpha/"), portal, "alpha")


def test_named_account_decides_even_for_sole_holder(portal):
    """BTSSOAccount names alpha: alpha decides, though mallory alone would
    otherwise hold the email."""
    portal.ctl("user", "add", "mallory", "3", "solo@corp.example")
    with open(os.path.join(portal.httpd.dir, "kate.htpasswd"), "a") as f:
        f.write("solo@corp.example:%s\n" % sha_hash("solo-pw"))
    r = portal.get("/basic-alpha/", auth=("solo@corp.example", "solo-pw"))
    assert_passes(r, "/basic-alpha/")
    r = portal.get("/basic/", auth=("solo@corp.example", "solo-pw"))
    assert_refused(r, portal, "mallory")


# ---- discovery -------------------------------------------------------------

@pytest.mark.parametrize("alpha", ["off", "allow_password", "enforce"])
def test_discovery_never_sends_kate_to_other_idp(portal, alpha):
    set_alpha(portal, alpha)
    r = discover(portal, KATE)
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    assert not loc.startswith(MALLORY_IDP), loc
    assert not loc.startswith(portal.idp.entity_id), loc
    assert loc == PWLOGIN + "?return=" + urllib.parse.quote("/app/x",
                                                            safe="")
    # an email held by two accounts answers like an unknown one
    u = discover(portal, "nobody@corp.example")
    assert (u.status_code, u.headers.get("Location")) == \
        (r.status_code, r.headers.get("Location"))
    assert r.text == u.text
    # mallory's own sole user still goes to mallory's IdP
    m = discover(portal, "eve@mallory.example")
    assert m.status_code == 302
    assert m.headers["Location"].startswith(MALLORY_IDP + "/sso?")


def test_discovery_sole_holder_with_sso(portal):
    """boss is in alpha only: with alpha's SSO on, to alpha's IdP."""
    set_alpha(portal, "enforce")
    r = discover(portal, "boss@corp.example")
    assert r.status_code == 302
    assert r.headers["Location"].startswith(portal.idp.sso_url + "?")


# ---- domain claims ---------------------------------------------------------

def test_claimed_domain_wins(portal):
    p = portal
    out = p.ctl("account", "domain", "add", "alpha", "Corp.Example")
    assert "corp.example" in out.stdout
    # alpha without SSO: not to mallory's IdP, the password way
    r = discover(p, KATE)
    assert r.status_code == 302
    assert r.headers["Location"].startswith(PWLOGIN)
    assert_passes(kate(p, "/basic/"), "/basic/")
    # alpha enforcing: discovery to alpha's IdP, the guard decides by alpha
    set_alpha(p, "enforce")
    r = discover(p, KATE)
    assert r.status_code == 302
    assert r.headers["Location"].startswith(p.idp.sso_url + "?"), \
        r.headers["Location"]
    req = p.idp.parse_redirect(r.headers["Location"])
    a = p.acs(p.idp.response(req, email=KATE), req.relay_state)
    assert a.status_code == 303, a.text
    assert_refused(kate(p, "/basic/"), p, "alpha")
    # alpha allowing passwords: mallory's enforcement does not matter
    set_alpha(p, "allow_password")
    assert_passes(kate(p, "/basic/"), "/basic/")
    # naming mallory, mallory still decides for its own sign-in
    assert_refused(kate(p, "/basic-mallory/"), p, "mallory")


def test_claim_of_a_domain_alpha_does_not_hold_the_user_in(portal):
    """A claim only ranks the claimant among the accounts that hold the
    email: a user only mallory holds is still mallory's."""
    p = portal
    p.ctl("account", "domain", "add", "alpha", "corp.example")
    p.ctl("user", "add", "mallory", "3", "solo@corp.example")
    r = discover(p, "solo@corp.example")
    assert r.status_code == 302
    assert r.headers["Location"].startswith(MALLORY_IDP + "/sso?")


def test_domain_belongs_to_one_account(portal):
    p = portal
    p.ctl("account", "domain", "add", "alpha", "corp.example")
    before = p.ctl("account", "domain", "list", "mallory", json_out=True)
    r = p.ctl("account", "domain", "add", "mallory", "corp.example",
              check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "corp.example" in r.stderr and r.stderr.count("\n") == 1
    assert p.ctl("account", "domain", "list", "mallory",
                 json_out=True).stdout == before.stdout
    assert json.loads(before.stdout) == []
    # the claim did not move: still alpha's, the guard still by alpha's
    # rule (SSO off: kate passes)
    assert_passes(kate(p, "/basic/"), "/basic/")
    lst = json.loads(p.ctl("account", "domain", "list", "alpha",
                           json_out=True).stdout)
    assert [d["domain"] for d in lst] == ["corp.example"]
    # claiming again for the same account: refused too, nothing changed
    r = p.ctl("account", "domain", "add", "alpha", "corp.example",
              check=False)
    assert r.returncode == 1
    # invalid names and unknown accounts
    for bad in ("corp", "-corp.example", "corp..example", "c%rp.example",
                "corp_x.example", "*.corp.example", "a" * 64 + ".example"):
        r = p.ctl("account", "domain", "add", "alpha", bad, check=False)
        assert r.returncode == 1, bad
    r = p.ctl("account", "domain", "add", "nosuch", "other.example",
              check=False)
    assert r.returncode == 1
    # usage
    r = p.ctl("account", "domain", "add", "alpha", check=False)
    assert r.returncode == 2


def test_domain_list_and_remove(portal):
    p = portal
    p.ctl("account", "domain", "add", "alpha", "corp.example")
    p.ctl("account", "domain", "add", "alpha", "corp2.example")
    text = p.ctl("account", "domain", "list", "alpha").stdout
    assert "corp.example" in text and "corp2.example" in text
    lst = json.loads(p.ctl("account", "domain", "list", "alpha",
                           json_out=True).stdout)
    assert [d["domain"] for d in lst] == ["corp.example", "corp2.example"]
    assert all(d["account"] == "alpha" and d["added"] for d in lst)
    r = p.ctl("account", "domain", "remove", "mallory", "corp.example",
              check=False)
    assert r.returncode == 1          # not mallory's to remove
    p.ctl("account", "domain", "remove", "alpha", "corp.example")
    lst = json.loads(p.ctl("account", "domain", "list", "alpha",
                           json_out=True).stdout)
    assert [d["domain"] for d in lst] == ["corp2.example"]
    r = p.ctl("account", "domain", "remove", "alpha", "corp.example",
              check=False)
    assert r.returncode == 1          # no longer claimed
    # now free for mallory
    p.ctl("account", "domain", "add", "mallory", "corp.example")
    set_alpha(p, "off")
    r = discover(p, KATE)
    assert r.headers["Location"].startswith(MALLORY_IDP + "/sso?")
    # audit rows for the claims
    import sqlite3
    db = sqlite3.connect(p.httpd.db)
    try:
        actions = [a for (a,) in db.execute(
            "SELECT action FROM audit WHERE action LIKE 'domain.%'"
            " ORDER BY id")]
    finally:
        db.close()
    assert actions == ["domain.add", "domain.add", "domain.remove",
                       "domain.add"]


def test_config_json_shows_domains(portal):
    p = portal
    p.ctl("account", "domain", "add", "alpha", "corp.example")
    c = Client(p, "admin@corp.example", "alpha")
    cfg = c.config()
    assert cfg["domains"] == ["corp.example"]
    m = Client(p, "eve@mallory.example", "mallory").config()
    assert m["domains"] == []
    # the set-up page shows them, read-only
    page = c.get("")
    assert page.status_code == 200, page.text
    assert "Claimed domains" in page.text
    assert 'id="domains"' in page.text


def test_account_by_email_query_is_what_decides(make_httpd, tmp_path):
    """BTSSOAccountByEmailQuery stays the operator's: rows of every account
    holding the email.  Here it leaves out mallory's rows of users it did
    not verify (extension 2), so kate is alpha's alone again."""
    q = ("BTSSOAccountByEmailQuery \"SELECT account FROM users WHERE"
         " lower(trim(email)) = lower(trim(%s)) AND NOT (account = 'mallory'"
         " AND extension = '2')\"\n")
    p = make_portal(make_httpd, tmp_path, btsso_conf=q)
    set_alpha(p, "enforce")
    r = discover(p, KATE)
    assert r.headers["Location"].startswith(p.idp.sso_url + "?")
    assert_refused(kate(p, "/basic/"), p, "alpha")
    set_alpha(p, "off")
    assert_passes(kate(p, "/basic/"), "/basic/")
