"""Set up and start the mod_btsso demo (called by demo/start.sh after the
build): httpd with the module as the SP on 127.0.0.1 (public base
http://localhost:PORT), an SQLite store with account "demo" and users made
with btssoctl, and SimpleSAMLphp as the IdP on its own apache2.  Both keep
running after this script ends; demo/stop.sh stops them by PID.
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

# user -> password for the guarded password area (portal passwords, not
# the IdP's).  Demo-only values.
PORTAL_PASSWORDS = {"ann@example.com": "ann-portal-pw",
                    "zed@plain.example": "zed-portal-pw"}

SP_CONF = """
BTSSOSPCertificate {keys}/sp.crt
BTSSOSPPrivateKey {keys}/sp.key
BTSSOPasswordLoginURL {base}/password-login.html
BTSSOConfigTTL 2
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
    sys.path.insert(0, os.path.join(TOP, "t", "lib"))
    import btsso_httpd
    from ssp_idp import DEMO_USERS, SimpleSAMLphpIdP

    # a fresh store and fresh keys each start: the demo is always the same
    for d in ("sp", "idp", "keys"):
        shutil.rmtree(os.path.join(args.dir, d), ignore_errors=True)
    keys = os.path.join(args.dir, "keys")
    os.makedirs(keys)
    make_key(keys, "sp", "mod_btsso demo SP")
    make_key(keys, "idp", "SimpleSAMLphp demo IdP")

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
    for d in ("app", "portal", "legacy"):
        os.makedirs(os.path.join(h.docroot, d), exist_ok=True)
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
        ("/sso/logout?return=/", "Sign out (Single Logout at the IdP too)"),
        ("%s/saml2/idp/SingleLogoutService.php?ReturnTo=%s/" % (
            idp_base, base), "Sign out at the IdP (it sends us a "
         "LogoutRequest)"),
    ]
    home = "<p>The portal of the mod_btsso demo.</p><ul>%s</ul>" % "".join(
        '<li><a href="%s">%s</a></li>' % (u, t) for u, t in links)
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
    }
    for name, text in files.items():
        with open(os.path.join(h.docroot, name), "w") as f:
            f.write(text)
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

    # the SP, in its own session so it outlives this script
    h.fix_perms()
    subprocess.Popen([btsso_httpd.HTTPD, "-f", h.conf_path, "-DFOREGROUND"],
                     stdout=subprocess.DEVNULL,
                     stderr=open(os.path.join(h.dir, "stderr.log"), "ab"),
                     start_new_session=True)
    wait_http(h.url + "/sso/metadata", "httpd (SP)", h.error_log)
    with urllib.request.urlopen(h.url + "/sso/metadata", timeout=10) as r:
        sp_md = r.read().decode()

    # the IdP, given our metadata; its metadata imported into the account
    idp = SimpleSAMLphpIdP(os.path.join(args.dir, "idp"), sp_md,
                           port=args.idp_port,
                           trusted_hosts=["localhost:%d" % h.port],
                           key=os.path.join(keys, "idp.key"),
                           cert=os.path.join(keys, "idp.crt"))
    idp.start()
    wait_http(idp.entity_id, "SimpleSAMLphp (IdP)",
              os.path.join(idp.dir, "log"))
    md = os.path.join(h.dir, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(idp.metadata())
    h.ctl("idp", "import", "demo", md)
    h.ctl("attr", "set", "demo", "mail")
    h.ctl("enable", "demo")

    users = "\n".join("    %-4s / %-13s (%s%s)" % (
        u, pw, mail, "" if mail.endswith("@example.com")
        else ": not a user of account demo, refused with the reason")
        for u, (pw, mail, _) in sorted(DEMO_USERS.items()))
    print("""
mod_btsso demo is running.

  Open the portal:  {base}/
  (the SP is httpd with mod_btsso on 127.0.0.1:{sp}; the IdP is
   SimpleSAMLphp at {idp}/ on 127.0.0.1:{ip})

  At the IdP, log in as:
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

  Browser on another machine?  ssh -L {sp}:127.0.0.1:{sp} -L {ip}:127.0.0.1:{ip} this-host
  Logs: {sp_log}  and  {idp_log}/
  Store: {db}   (btssoctl -c {conf} account show demo)
  Stop:  sh demo/stop.sh
""".format(base=base, sp=h.port, idp=idp_base, ip=args.idp_port,
           users=users, sp_log=h.error_log,
           idp_log=os.path.join(idp.dir, "log"), db=h.db,
           conf=h.conf_path))


if __name__ == "__main__":
    main()
