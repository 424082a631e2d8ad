"""Set up and start the mod_btsso demo (called by demo/start.sh after the
build): httpd with the module as the SP on 127.0.0.1 (public base
http://localhost:PORT), an SQLite store made with btssoctl, and
SimpleSAMLphp on its own apache2.  Both keep running after this script
ends; demo/stop.sh stops them by PID.

Two accounts show the two halves of the product:

- "demo" is ready-made: its IdP (SimpleSAMLphp at http://127.0.0.1:IDP)
  is imported and SSO is enabled.
- "newco" has users (nina is its administrator) and no SSO: nina signs in
  to the Admin portal with her portal password and walks Tools > Single
  Sign-on herself, against New Co's IdP: the same SimpleSAMLphp, whose
  second hosted IdP answers on the host name localhost
  (http://localhost:IDP), with its own key and users.
"""
import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
from ssp_idp import (DEMO_USERS, EMAIL_FORMAT, SimpleSAMLphpIdP,  # noqa
                     php_str)

# user -> password for the guarded password area (portal passwords, not
# the IdP's).  Demo-only values.
PORTAL_PASSWORDS = {"ann@example.com": "ann-portal-pw",
                    "zed@plain.example": "zed-portal-pw",
                    "nina@newco.example": "nina-portal-pw",
                    "ned@newco.example": "ned-portal-pw"}

# New Co's IdP users: user -> (password, mail, display name).  Demo-only.
NEWCO_USERS = {
    "nina": ("nina-password", "nina@newco.example", "Nina Newco"),
    "ned": ("ned-password", "ned@newco.example", "Ned Newco"),
}

# What New Co's IdP sends (SimpleSAMLphp's metadata does not list it; the
# demo publishes it with this list so step 3's drop-down shows it)
NEWCO_ATTRIBUTES = [("mail", "Email address"), ("uid", "User id"),
                    ("displayName", "Display name"),
                    ("eduPersonAffiliation", "Affiliation")]

SP_CONF = """
BTSSOSPCertificate {keys}/sp.crt
BTSSOSPPrivateKey {keys}/sp.key
BTSSOPasswordLoginURL {base}/password-login.html
BTSSOConfigTTL 2
# the demo's IdP is on this machine: let the set-up page fetch its
# metadata over plain HTTP from loopback (never do this in production)
BTSSOMetadataFetchHTTP On
BTSSOMetadataFetchAllow 127.0.0.1/32
"""

LOCATIONS = """
<Location /app>
    AuthType BTSSO
    BTSSOAccount "demo"
    Require valid-user
</Location>
<Location /portal>
    AuthType BTSSO
    Require valid-user
</Location>
<Location /legacy>
    AuthType Basic
    AuthName "Portal password"
    AuthBasicProvider file
    AuthUserFile {dir}/htpasswd
    Require valid-user
    BTSSOPasswordGuard On
</Location>
# The Admin portal, signed in with a portal password: refused (with a link
# to SSO) for users of an account that enforces SSO
<Location "/admin/">
    AuthType Basic
    AuthName "Admin portal"
    AuthBasicProvider file
    AuthUserFile {dir}/htpasswd
    Require valid-user
    BTSSOPasswordGuard On
</Location>
<Location "/admin/sso/">
    SetHandler btsso-admin
</Location>
# The same Admin portal, signed in through single sign-on
<Location "/admin-sso/">
    AuthType BTSSO
    Require valid-user
</Location>
<Location "/admin-sso/sso/">
    SetHandler btsso-admin
</Location>
"""

STYLE = ("body{font-family:system-ui,sans-serif;max-width:46rem;"
         "margin:3rem auto;color:#1d1d1f;line-height:1.5}"
         "a{color:#5514b4}code{background:#eee;padding:0 .2rem}"
         "li{margin:.4rem 0}")


def page(title, body):
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>%s</title><style>%s</style></head><body><h1>%s</h1>%s"
            "</body></html>\n" % (title, STYLE, title, body))


def make_key(keys, name, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-sha256", "-days", "3650", "-subj",
                    "/CN=" + cn, "-keyout", os.path.join(keys, name + ".key"),
                    "-out", os.path.join(keys, name + ".crt")], check=True,
                   capture_output=True)


class DemoIdP(SimpleSAMLphpIdP):
    """The demo's SimpleSAMLphp: the IdP of account demo on
    http://127.0.0.1:PORT (the tests' IdP, unchanged) and, on the host
    name localhost, a second hosted IdP for New Co, with its own key and
    users.  SimpleSAMLphp picks the hosted IdP by the Host of the request;
    both trust the same SP metadata (the portal's /sso/metadata, fetched at
    start): a self-service account uses the global SP entityID and ACS."""

    def __init__(self, workdir, sp_metadata_xml, newco_key, newco_cert,
                 **kw):
        self.newco_key, self.newco_cert = newco_key, newco_cert
        super().__init__(workdir, sp_metadata_xml, **kw)
        shutil.copy(newco_key, os.path.join(self.dir, "cert",
                                            "newco-idp.key"))
        shutil.copy(newco_cert, os.path.join(self.dir, "cert",
                                             "newco-idp.crt"))

    @property
    def newco_base(self):
        return "http://localhost:%d/simplesaml" % self.port

    @property
    def newco_entity_id(self):
        return self.newco_base + "/saml2/idp/metadata.php"

    @property
    def newco_published_url(self):
        """New Co's IdP metadata, with the attributes it releases."""
        return "http://localhost:%d/newco/idp-metadata.xml" % self.port

    def _write_config(self):
        super()._write_config()
        users = []
        for name, (password, mail, display) in sorted(NEWCO_USERS.items()):
            users.append("    %s => ['uid' => [%s], 'mail' => [%s], "
                         "'displayName' => [%s], "
                         "'eduPersonAffiliation' => ['member']],"
                         % (php_str(name + ":" + password), php_str(name),
                            php_str(mail), php_str(display)))
        with open(os.path.join(self.confdir, "authsources.php"), "a") as f:
            f.write("$config['newco-userpass'] = [\n"
                    "    'exampleauth:UserPass',\n%s\n];\n"
                    % "\n".join(users))
        with open(os.path.join(self.dir, "metadata",
                               "saml20-idp-hosted.php"), "a") as f:
            f.write("""
// New Co's IdP: requests whose Host is localhost
$metadata[%s] = [
    'host' => 'localhost',
    'privatekey' => 'newco-idp.key',
    'certificate' => 'newco-idp.crt',
    'auth' => 'newco-userpass',
    'OrganizationName' => ['en' => 'New Co Ltd'],
    'OrganizationURL' => ['en' => 'http://localhost/'],
    'NameIDFormat' => %s,
    'simplesaml.nameidattribute' => 'mail',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'sign.logout' => true,
    'redirect.sign' => true,
    'validate.authnrequest' => true,
    'validate.logout' => true,
    'SingleSignOnServiceBinding' => [
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect'],
    'SingleLogoutServiceBinding' => [
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect'],
    'logouttype' => 'traditional',
];
""" % (php_str(self.newco_entity_id), php_str(EMAIL_FORMAT)))
        os.makedirs(os.path.join(self.dir, "published"), exist_ok=True)
        with open(os.path.join(self.dir, "httpd.conf"), "a") as f:
            f.write("""
# New Co's IdP metadata as the demo publishes it (demo.py writes it at start)
Alias /newco/idp-metadata.xml {d}/published/newco-idp-metadata.xml
<Directory {d}/published>
    Require all granted
</Directory>
<Files newco-idp-metadata.xml>
    ForceType application/samlmetadata+xml
</Files>
""".format(d=self.dir))

    def publish_newco_metadata(self):
        """SimpleSAMLphp's own metadata of New Co's IdP, plus the
        attributes it releases (IdPs such as Shibboleth list them; step 3's
        drop-down offers what the metadata lists)."""
        req = urllib.request.Request(
            "http://127.0.0.1:%d/simplesaml/saml2/idp/metadata.php"
            "?output=xml" % self.port,
            headers={"Host": "localhost:%d" % self.port})
        with urllib.request.urlopen(req, timeout=20) as r:
            xml = r.read().decode()
        if self.newco_entity_id not in xml:
            sys.exit("demo: SimpleSAMLphp did not serve New Co's IdP on "
                     "the host localhost:\n" + xml[:2000])
        attrs = "".join(
            '<saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:2.0:'
            'assertion" Name="%s" FriendlyName="%s"/>' % a
            for a in NEWCO_ATTRIBUTES)
        closing = xml.rindex("</md:IDPSSODescriptor>")
        xml = xml[:closing] + attrs + xml[closing:]
        path = os.path.join(self.dir, "published", "newco-idp-metadata.xml")
        with open(path, "w") as f:
            f.write(xml)
        os.chmod(path, 0o644)
        return xml


def wait_http(url, what, proc_log):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return          # it answers
        except OSError:
            time.sleep(0.2)
    sys.exit("demo: %s did not answer at %s; see %s" % (what, url,
                                                          proc_log))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--sp-port", type=int, default=8080)
    ap.add_argument("--idp-port", type=int, default=8081)
    args = ap.parse_args()

    os.environ["BTSSO_BUILDDIR"] = args.builddir
    import btsso_httpd

    # a fresh store and fresh keys each start: the demo is always the same
    for d in ("sp", "idp", "keys"):
        shutil.rmtree(os.path.join(args.dir, d), ignore_errors=True)
    keys = os.path.join(args.dir, "keys")
    os.makedirs(keys)
    make_key(keys, "sp", "mod_btsso demo SP")
    make_key(keys, "idp", "SimpleSAMLphp demo IdP")
    make_key(keys, "newco-idp", "New Co IdP (SimpleSAMLphp)")
    make_key(keys, "newco-idp-next", "New Co IdP, next (SimpleSAMLphp)")

    os.makedirs(os.path.join(args.dir, "sp"))
    h = btsso_httpd.Httpd(workdir=os.path.join(args.dir, "sp"))
    h.port = args.sp_port
    h.url = "http://127.0.0.1:%d" % h.port
    h.base_url = base = "http://localhost:%d" % h.port
    h.btsso_conf = SP_CONF.format(keys=keys, base=base)
    h.extra_conf = LOCATIONS.format(dir=h.dir)
    idp_base = "http://127.0.0.1:%d/simplesaml" % args.idp_port
    sp_entity = base + "/sso"

    # pages to click through
    for d in ("app", "portal", "legacy", "admin", "admin-sso"):
        os.makedirs(os.path.join(h.docroot, d), exist_ok=True)
    newco_idp_base = "http://localhost:%d/simplesaml" % args.idp_port
    newco_md_url = "http://localhost:%d/newco/idp-metadata.xml" % (
        args.idp_port)
    demo_md_url = idp_base + "/saml2/idp/metadata.php"
    links = [
        ("/app/", "Sign in with SSO (account <code>demo</code>): "
         "SP-initiated login at the IdP"),
        ("/sso/login?return=/portal/", "Sign in by email: discovery page "
         "(try <code>ann@example.com</code>, then "
         "<code>zed@plain.example</code>, whose account has no SSO)"),
        ("%s/saml2/idp/SSOService.php?spentityid=%s&amp;RelayState=/app/"
         % (idp_base, sp_entity), "IdP-initiated login (starts at the IdP)"),
        ("/sso/test/demo", "Test the SSO set-up (what the IdP sends; no "
         "session is created)"),
        ("/sso/session", "Your session (JSON)"),
        ("/legacy/", "Password area with BTSSOPasswordGuard (Basic auth: "
         "<code>ann@example.com</code> / <code>ann-portal-pw</code> is "
         "refused, <code>zed@plain.example</code> / "
         "<code>zed-portal-pw</code> passes)"),
        ("/admin-sso/", "Admin portal, signed in with SSO (as ann): Tools "
         "&gt; Single Sign-on of account demo, configured and enabled"),
        ("/sso/logout?return=/", "Sign out (Single Logout at the IdP too)"),
        ("%s/saml2/idp/SingleLogoutService.php?ReturnTo=%s/" % (
            idp_base, base), "Sign out at the IdP (it sends us a "
         "LogoutRequest)"),
    ]
    newco_steps = [
        '<a href="/admin/" id="newco-admin">Admin portal</a> &gt; Tools &gt; '
        'Single Sign-on: the browser asks for the portal password, '
        '<code>nina@newco.example</code> / <code>nina-portal-pw</code> '
        '(Nina is New Co\'s administrator).',
        '<b>Step 1</b>, <i>From a URL</i>: <code id="newco-md-url">%s</code> '
        '(New Co\'s IdP: SimpleSAMLphp\'s own metadata, <code>%s/saml2/idp/'
        'metadata.php</code> on the host name localhost, published with the '
        'attributes it releases, which SimpleSAMLphp does not list), '
        '<i>Fetch from URL</i>. <br>Try the demo account\'s IdP first, '
        '<code>%s</code>: it is refused (409), because account '
        '<code>demo</code> holds that IdP; the page then opens '
        '<i>Contact Customer Support</i> with what to send support.'
        % (newco_md_url, newco_idp_base, demo_md_url),
        '<b>Step 2</b>: check what the metadata says (entityID, endpoints, '
        'NameID format, attributes, one signing certificate).',
        '<b>Step 3</b>: pick <code>Email address &mdash; mail</code> from '
        'the drop-down, <i>Save</i>.',
        '<b>Step 4</b>: New Co\'s IdP certificate is already primary. To '
        'try a rollover, <a href="/newco-idp-next.crt" download>download '
        'its next certificate</a> and add it <i>as secondary</i>.',
        '<b>Step 5</b>: <i>Download SP metadata</i> and import it into the '
        'IdP. <b>In this demo there is nothing to import, and here is '
        'why:</b> <code>newco</code> is a self-service account, so it uses '
        'the portal\'s global SP entityID <code>%s</code> and ACS '
        '<code>%s/acs</code>: the file you download is the same document '
        'as <a href='
        '"/sso/metadata">/sso/metadata</a>, which the demo\'s '
        'SimpleSAMLphp loaded when it started: its <a href="%s/module.php/'
        'core/frontpage_federation.php">federation page</a>, after <i>Login '
        'as administrator</i> (password <code>btsso-test-admin</code>), '
        'lists it under <i>SAML 2.0 SP Metadata</i>. With your own IdP '
        'you import the '
        'downloaded file there (Entra, ADFS, Okta: see the guide).'
        % (sp_entity, sp_entity, newco_idp_base),
        '<b>Step 6</b>: <i>Test SSO login</i> (<a href="/sso/test/newco">'
        '/sso/test/newco</a>): sign in at New Co\'s IdP as <code>nina'
        '</code> / <code>nina-password</code>; the result names the user '
        'of the account the email maps to.',
        '<b>Step 7</b>: tick <i>Enable SSO Service</i>, <i>Save</i> (it '
        'needs the passing test of step 6 by Nina, an administrator of the '
        'account: without one the page asks you to test first).',
    ]
    newco_after = (
        '<p>From then on New Co\'s users sign in through their IdP: <a '
        'href="/sso/login?return=/portal/">sign in by email</a> as <code>'
        'ned@newco.example</code> (IdP: <code>ned</code> / <code>'
        'ned-password</code>). Their portal passwords are refused: the <a '
        'href="/legacy/">password area</a> with <code>ned@newco.example'
        '</code> / <code>ned-portal-pw</code>, or the password <a href='
        '"/admin/">Admin portal</a> with Nina\'s, answer <i>Use single '
        'sign-on</i>. Nina now administers SSO through the <a href='
        '"/admin-sso/">Admin portal with single sign-on</a>. Before step '
        '7, the same email sign-in sends New Co\'s users to the password '
        'login instead.</p>')
    home = (
        "<p>The portal of the mod_btsso demo. Two accounts: "
        "<code>newco</code>, which you set up yourself, and "
        "<code>demo</code>, ready-made.</p>"
        "<div id=\"newco-section\">"
        "<h2 id=\"newco\">Set up SSO yourself: account <code>newco</code> "
        "(New Co Ltd)</h2><p>New Co has two users and no SSO. Do what its "
        "administrator does:</p><ul>%s</ul>%s</div>"
        "<h2>Ready-made: account <code>demo</code> (Demo Ltd)</h2>"
        "<p>Its IdP is SimpleSAMLphp at <code>%s</code>; SSO is enabled. "
        "Log in there as <code>ann</code> / <code>ann-password</code> or "
        "<code>bob</code> / <code>bob-password</code>.</p><ul>%s</ul>"
        % ("".join("<li>%s</li>" % t for t in newco_steps), newco_after,
           idp_base, "".join('<li><a href="%s">%s</a></li>' % (u, t)
                             for u, t in links)))
    tools = ('<h2>Tools</h2><ul>'
             '<li><a href="sso/newco/">Single Sign-on</a> &mdash; account '
             '<code>newco</code> (New Co Ltd)</li>'
             '<li><a href="sso/demo/">Single Sign-on</a> &mdash; account '
             '<code>demo</code> (Demo Ltd)</li></ul>'
             '<p>Only an administrator of the account gets past the '
             'link.</p><p><a href="/">Portal home</a></p>')
    files = {
        "index.html": page("mod_btsso demo portal", home),
        "app/index.html": page("Signed in", "<p>This page is behind "
                               "<code>AuthType BTSSO</code> for account "
                               "demo.</p><p><a href=\"/sso/session\">Your "
                               "session</a> &middot; <a href=\"/sso/logout"
                               "?return=/\">Sign out</a> &middot; <a href="
                               "\"/\">Home</a></p>"),
        "portal/index.html": page("Signed in", "<p>Reached through the "
                                  "email discovery page.</p><p><a href="
                                  "\"/sso/session\">Your session</a> "
                                  "&middot; <a href=\"/sso/logout?return=/"
                                  "\">Sign out</a></p>"),
        "legacy/index.html": page("Password area", "<p>Signed in with a "
                                  "portal password: allowed for accounts "
                                  "without SSO.</p><p><a href=\"/\">Home"
                                  "</a></p>"),
        "password-login.html": page("Password login", "<p>Accounts "
                                    "without SSO sign in with a password "
                                    "here (the demo's stand-in for "
                                    "<code>BTSSOPasswordLoginURL</code>)."
                                    "</p><p><a href=\"/legacy/\">Password "
                                    "area</a> &middot; <a href=\"/\">Home"
                                    "</a></p>"),
        "admin/index.html": page("Admin portal", "<p>Signed in with your "
                                 "portal password (users of an account "
                                 "that enforces SSO are refused: they use "
                                 "the <a href=\"/admin-sso/\">Admin portal "
                                 "with single sign-on</a>).</p>" + tools),
        "admin-sso/index.html": page("Admin portal", "<p>Signed in through "
                                     "single sign-on: open the Single "
                                     "Sign-on page of your own account "
                                     "(another account's refuses you)."
                                     "</p>"
                                     + tools),
    }
    for name, text in files.items():
        with open(os.path.join(h.docroot, name), "w") as f:
            f.write(text)
    shutil.copy(os.path.join(keys, "newco-idp-next.crt"),
                os.path.join(h.docroot, "newco-idp-next.crt"))
    with open(os.path.join(h.dir, "htpasswd"), "w") as f:
        for user, pw in PORTAL_PASSWORDS.items():
            f.write("%s:{SHA}%s\n" % (user, base64.b64encode(
                hashlib.sha1(pw.encode()).digest()).decode()))

    # the store, through btssoctl as an operator would
    h.write_config()
    h.ctl("init")
    h.ctl("account", "add", "demo", "--name", "Demo Ltd")
    h.ctl("user", "add", "demo", "100", "ann@example.com", "--admin")
    h.ctl("user", "add", "demo", "101", "bob@example.com")
    h.ctl("account", "add", "plain", "--name", "Plain Ltd (no SSO)")
    h.ctl("user", "add", "plain", "300", "zed@plain.example")
    # the account you set up yourself: users, one admin, no SSO
    h.ctl("account", "add", "newco", "--name", "New Co Ltd")
    h.ctl("user", "add", "newco", "200", "nina@newco.example", "--admin")
    h.ctl("user", "add", "newco", "201", "ned@newco.example")

    # the SP, in its own session so it outlives this script
    h.fix_perms()
    sp = subprocess.Popen([btsso_httpd.HTTPD, "-f", h.conf_path,
                           "-DFOREGROUND"],
                          stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(h.dir, "stderr.log"),
                                      "ab"),
                          start_new_session=True)
    # stop.sh's own record of what to stop, before httpd writes its pid
    # file (a demo that fails half-way is still stopped)
    write_pid(os.path.join(h.dir, "demo.pid"), sp.pid)
    wait_http(h.url + "/sso/metadata", "httpd (SP)", h.error_log)
    with urllib.request.urlopen(h.url + "/sso/metadata", timeout=10) as r:
        sp_md = r.read().decode()

    # the IdP, given our metadata; its metadata imported into the account
    idp = DemoIdP(os.path.join(args.dir, "idp"), sp_md,
                  os.path.join(keys, "newco-idp.key"),
                  os.path.join(keys, "newco-idp.crt"),
                  port=args.idp_port,
                  trusted_hosts=["localhost:%d" % h.port],
                  key=os.path.join(keys, "idp.key"),
                  cert=os.path.join(keys, "idp.crt"))
    try:
        idp.start()
    finally:
        if idp.proc is not None:
            write_pid(os.path.join(idp.dir, "run", "demo.pid"), idp.proc.pid)
    wait_http(idp.entity_id, "SimpleSAMLphp (IdP)",
              os.path.join(idp.dir, "log"))
    idp.publish_newco_metadata()
    md = os.path.join(h.dir, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(idp.metadata())
    h.ctl("idp", "import", "demo", md)
    h.ctl("attr", "set", "demo", "mail")
    h.ctl("enable", "demo")

    def user_lines(users, suffix, account):
        return "\n".join("    %-4s / %-13s (%s%s)" % (
            u, pw, mail, "" if mail.endswith(suffix)
            else ": not a user of account %s, refused with the reason"
            % account) for u, (pw, mail, _) in sorted(users.items()))
    print("""
mod_btsso demo is running.

  Open the portal:  {base}/
  (the SP is httpd with mod_btsso on 127.0.0.1:{sp}; the IdPs are
   SimpleSAMLphp on 127.0.0.1:{ip}: {idp}/ for account demo and
   {nidp}/ for account newco)

A. Account "demo", ready-made (its IdP imported, SSO enabled).
  At the IdP {idp}/, log in as:
{users}

  Things to click, all linked from the portal's home page:
    {base}/app/
        SP-initiated login for account "demo"
    {base}/sso/login
        email discovery: ann@example.com goes to the IdP;
        zed@plain.example (account without SSO) to the password page
    {base}/sso/test/demo
        test the set-up: NameID, attributes, the user it maps to
    {base}/legacy/
        password area with BTSSOPasswordGuard (Basic auth):
        ann@example.com / ann-portal-pw is refused (SSO enforced),
        zed@plain.example / zed-portal-pw passes
    {base}/sso/logout?return=/
        sign out, here and at the IdP (Single Logout)

B. Account "newco": set up SSO yourself, as its administrator
  (the portal's home page walks you through it, under "Set up SSO
  yourself"):
    1. {base}/admin/  (Admin portal > Tools > Single Sign-on)
       portal password: nina@newco.example / nina-portal-pw
    2. Step 1, From a URL: {nmd}
       (first try {dmd}:
        refused with 409, it belongs to account demo: the page offers
        Contact Customer Support with what to send)
    3. Step 3: pick "mail" from the drop-down; step 4: certificates;
       step 5: Download SP metadata; at the IdP there is nothing to
       import: newco uses the global SP entityID {sp_entity},
       which the IdP loaded at start (see {nidp}/module.php/core/frontpage_federation.php,
       Login as administrator: btsso-test-admin)
    4. Step 6: Test SSO login, at the IdP as nina / nina-password
    5. Step 7: tick Enable SSO Service, Save (after step 6's passing
       test login of an administrator: without one, "Test first")
  Then New Co's users sign in through the IdP at {nidp}/:
{nusers}
  and their portal passwords are refused ({base}/legacy/, {base}/admin/);
  Nina administers SSO at {base}/admin-sso/ (signed in with SSO).

  Browser on another machine?  ssh -L {sp}:127.0.0.1:{sp} -L {ip}:127.0.0.1:{ip} this-host
  Logs: {sp_log}  and  {idp_log}/
  Store: {db}   (btssoctl -c {conf} account show newco)
  Stop:  {stop}sh demo/stop.sh
""".format(stop="" if os.path.abspath(args.dir) == "/var/tmp/btsso-demo"
           else "BTSSO_DEMO_DIR=%s " % os.path.abspath(args.dir),
           base=base, sp=h.port, idp=idp_base, ip=args.idp_port,
           nidp=newco_idp_base, nmd=newco_md_url, dmd=demo_md_url,
           sp_entity=sp_entity,
           users=user_lines(DEMO_USERS, "@example.com", "demo"),
           nusers=user_lines(NEWCO_USERS, "@newco.example", "newco"),
           sp_log=h.error_log,
           idp_log=os.path.join(idp.dir, "log"), db=h.db,
           conf=h.conf_path))


def write_pid(path, pid):
    with open(path, "w") as f:
        f.write("%d\n" % pid)


if __name__ == "__main__":
    main()
