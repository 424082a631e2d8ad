"""`apache2 -t` with mod_btsso: every directive parsed and validated; a bad
value fails the configuration test with a message naming the directive."""
import os

import pytest

import btsso_httpd

TOP = btsso_httpd.TOP
SP = os.path.join(TOP, "t", "fixtures", "sp")


def configtest(make_httpd, conf, extra="", **kw):
    h = make_httpd(btsso_conf=conf, extra_conf=extra, **kw)
    return h.configtest()


GOOD = """
BTSSOSPPath /saml
BTSSOSPEntityID https://portal.example.com/saml
BTSSOSessionCache shmcb
BTSSOSessionMaxAge 8h
BTSSOSessionIdleTimeout 30mi
BTSSOCookieName portal_sso
BTSSOCookieSecure On
BTSSOCookieSameSite Strict
BTSSOClockSkew 90
BTSSOConfigTTL 5s
BTSSOUserQuery "SELECT extension, email FROM btsso_users WHERE account = %s AND lower(email) = lower(%s)"
BTSSODuplicateEmailQuery "SELECT email, extension, kind FROM btsso_users WHERE account = %s"
BTSSOAdminQuery "SELECT 1 FROM btsso_users WHERE account = %s AND email = %s AND is_admin = 1"
BTSSOAccountByEmailQuery "SELECT account FROM btsso_users WHERE email = %s"
BTSSOMetadataMaxSize 2M
BTSSOMetadataFetchTimeout 5s
BTSSOMetadataFetchHTTP Off
BTSSOMetadataFetchAllow 10.20.0.0/16 192.168.7.8 fd00:1234::/32
BTSSOMetadataRefreshInterval 30mi
BTSSOSignatureAlgorithms rsa-sha256 ecdsa-sha384
BTSSOAllowIdPInitiated Off
BTSSOPasswordLoginURL /login
"""

GOOD_DIR = """
<Location /portal>
    AuthType BTSSO
    BTSSOAccount %{env:PORTAL_ACCOUNT}
    BTSSOSetHeaders On
    Require valid-user
</Location>
<Location /password>
    BTSSOPasswordGuard On
</Location>
"""


def test_every_directive_accepted(make_httpd):
    code, out = configtest(make_httpd, GOOD, GOOD_DIR,
                           base_url="https://portal.example.com")
    assert code == 0, out
    assert "Syntax OK" in out


def test_sp_keys_accepted(make_httpd):
    conf = """
BTSSOSPCertificate {sp}/sp-current.crt
BTSSOSPPrivateKey {sp}/sp-current.key
BTSSOSPNextCertificate {sp}/sp-next.crt
BTSSOSPNextPrivateKey {sp}/sp-next.key
""".format(sp=SP)
    code, out = configtest(make_httpd, conf)
    assert code == 0, out


BAD = [
    # (directive line, words the message must contain)
    ("BTSSOBaseURL ftp://portal.example.com", "BTSSOBaseURL"),
    ("BTSSOBaseURL https://portal.example.com/some/path", "BTSSOBaseURL"),
    ("BTSSOBaseURL portal.example.com", "BTSSOBaseURL"),
    ("BTSSOSPPath sso", "BTSSOSPPath"),
    ("BTSSOSPPath /sso/", "BTSSOSPPath"),
    ("BTSSOSPPath /a//b", "BTSSOSPPath"),
    ("BTSSOSPPath /a/../b", "BTSSOSPPath"),
    ("BTSSOSPEntityID not-a-uri", "BTSSOSPEntityID"),
    ("BTSSOSPCertificate /nonexistent/cert.pem", "BTSSOSPCertificate"),
    ("BTSSOSessionCache nosuchprovider", "BTSSOSessionCache"),
    ("BTSSOSessionMaxAge forever", "BTSSOSessionMaxAge"),
    ("BTSSOSessionMaxAge 0", "BTSSOSessionMaxAge"),
    ("BTSSOSessionIdleTimeout -5", "BTSSOSessionIdleTimeout"),
    ("BTSSOClockSkew 3days", "BTSSOClockSkew"),
    ("BTSSOConfigTTL soon", "BTSSOConfigTTL"),
    ("BTSSOMetadataFetchTimeout x", "BTSSOMetadataFetchTimeout"),
    ("BTSSOMetadataRefreshInterval soon", "BTSSOMetadataRefreshInterval"),
    ("BTSSOMetadataRefreshInterval -1", "BTSSOMetadataRefreshInterval"),
    ("BTSSOCookieName 'bad name'", "BTSSOCookieName"),
    ("BTSSOCookieName a;b", "BTSSOCookieName"),
    ("BTSSOCookieSameSite Sometimes", "BTSSOCookieSameSite"),
    ("BTSSOCookieSecure maybe", "BTSSOCookieSecure"),
    ("BTSSOMetadataFetchHTTP yes", "BTSSOMetadataFetchHTTP"),
    ("BTSSOAllowIdPInitiated 1", "BTSSOAllowIdPInitiated"),
    ("BTSSOMetadataMaxSize 12Q", "BTSSOMetadataMaxSize"),
    ("BTSSOMetadataMaxSize 0", "BTSSOMetadataMaxSize"),
    ("BTSSOMetadataMaxSize 100", "BTSSOMetadataMaxSize"),
    ("BTSSOMetadataFetchAllow 10.0.0.0/33", "BTSSOMetadataFetchAllow"),
    ("BTSSOMetadataFetchAllow nonsense", "BTSSOMetadataFetchAllow"),
    ("BTSSOMetadataFetchAllow 10.1.2.3/8", "BTSSOMetadataFetchAllow"),
    ("BTSSOSignatureAlgorithms rsa-md5", "BTSSOSignatureAlgorithms"),
    ("BTSSOSignatureAlgorithms", "BTSSOSignatureAlgorithms"),
    ('BTSSOUserQuery "DELETE FROM btsso_users"', "BTSSOUserQuery"),
    ('BTSSOUserQuery "SELECT extension, email FROM u WHERE account = %s"',
     "BTSSOUserQuery"),
    ('BTSSOAdminQuery "SELECT 1 FROM u WHERE a = %s AND b = %s; DROP TABLE u"',
     "BTSSOAdminQuery"),
    ('BTSSODuplicateEmailQuery "SELECT email FROM u WHERE a = %d"',
     "BTSSODuplicateEmailQuery"),
    ('BTSSOAccountByEmailQuery "SELECT account FROM u"',
     "BTSSOAccountByEmailQuery"),
    ("BTSSOPasswordLoginURL javascript:alert(1)", "BTSSOPasswordLoginURL"),
    ("BTSSOPasswordLoginURL //evil.example/login", "BTSSOPasswordLoginURL"),
]


@pytest.mark.parametrize("line,words", BAD, ids=[b[0][:40] for b in BAD])
def test_bad_value_fails_configtest(make_httpd, line, words):
    code, out = configtest(make_httpd, line)
    assert code != 0, "accepted: %s\n%s" % (line, out)
    assert words in out, out
    assert "Syntax OK" not in out


BAD_DIR = [
    ("BTSSOAccount %{", "BTSSOAccount"),
    ("BTSSOPasswordGuard perhaps", "BTSSOPasswordGuard"),
    ("BTSSOSetHeaders 2", "BTSSOSetHeaders"),
]


@pytest.mark.parametrize("line,words", BAD_DIR, ids=[b[0] for b in BAD_DIR])
def test_bad_directory_value_fails(make_httpd, line, words):
    code, out = configtest(make_httpd, "", "<Location /x>\n%s\n</Location>"
                           % line)
    assert code != 0, out
    assert words in out, out


def test_server_directive_refused_in_location(make_httpd):
    code, out = configtest(make_httpd, "",
                           "<Location /x>\nBTSSOClockSkew 10\n</Location>")
    assert code != 0
    assert "BTSSOClockSkew" in out


def test_missing_base_url(make_httpd):
    h = make_httpd(btsso_conf="BTSSOBaseURL https://x.example\n")
    h.btsso_conf = ""
    text = h.config_text().replace("BTSSOBaseURL %s" % h.base_url, "")
    with open(h.conf_path, "w") as f:
        f.write(text)
    import subprocess
    p = subprocess.run([btsso_httpd.HTTPD, "-t", "-f", h.conf_path],
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "BTSSOBaseURL is not set" in p.stdout + p.stderr


def test_key_without_certificate(make_httpd):
    code, out = configtest(make_httpd, "BTSSOSPPrivateKey %s/sp-current.key"
                           % SP)
    assert code != 0
    assert "BTSSOSPCertificate" in out


def test_mismatched_key_pair(make_httpd):
    code, out = configtest(make_httpd, """
BTSSOSPCertificate {sp}/sp-current.crt
BTSSOSPPrivateKey {sp}/sp-next.key
""".format(sp=SP))
    assert code != 0
    assert "key_mismatch" in out or "do not match" in out or \
        "does not match" in out, out


def test_samesite_none_needs_secure(make_httpd):
    code, out = configtest(make_httpd, "BTSSOCookieSameSite None\n"
                           "BTSSOCookieSecure Off")
    assert code != 0
    assert "BTSSOCookieSameSite" in out


def test_module_needs_mod_dbd(make_httpd):
    h = make_httpd()
    h.expect_log("BTSSO0002")
    text = h.config_text()
    text = "\n".join(l for l in text.splitlines()
                     if "dbd_module" not in l and not l.startswith("DBD"))
    with open(h.conf_path, "w") as f:
        f.write(text)
    import subprocess
    # -t stops before post_config; a start must fail with a clear message
    p = subprocess.run([btsso_httpd.HTTPD, "-f", h.conf_path, "-k", "start",
                        "-DFOREGROUND"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert "mod_dbd is not loaded" in (p.stdout + p.stderr + h.log_text())


AGREE = [
    ("BTSSOMetadataFetchTimeout 2mi", True),
    ("BTSSOMetadataFetchTimeout 2m", False),
    ("BTSSOMetadataFetchTimeout 1500ms", True),
    ("BTSSOMetadataRefreshInterval 0", True),
    ("BTSSOMetadataRefreshInterval 2s", True),
    ("BTSSOMetadataRefreshInterval 6x", False),
    ("BTSSOMetadataMaxSize 2MiB", True),
    ("BTSSOMetadataMaxSize 100", False),
    ("BTSSOMetadataMaxSize 12Q", False),
    ("BTSSOBaseURL https://portal.example.com/some/path", False),
    ("BTSSOBaseURL https://portal.example.com:8443/", True),
]


@pytest.mark.parametrize("line,ok", AGREE, ids=[a[0] for a in AGREE])
def test_btssoctl_reads_values_like_httpd(make_httpd, line, ok):
    """btssoctl reads the same file as httpd: it must accept and refuse the
    same values (one parser, core/confval.c and core/url.c)."""
    h = make_httpd(btsso_conf=line)
    code, out = h.configtest()
    assert (code == 0) == ok, out
    h.ctl("init", check=False)
    r = h.ctl("account", "list", check=False)
    assert (r.returncode == 0) == ok, r.stderr
    if not ok:
        assert line.split()[0] in r.stderr
