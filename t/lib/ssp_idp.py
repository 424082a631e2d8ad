"""A real IdP for browser tests and the demo: Debian's simplesamlphp served
by its own throwaway apache2 (prefork + mod_php) on 127.0.0.1.

    idp = SimpleSAMLphpIdP(workdir, sp_metadata_xml, users=DEMO_USERS)
    idp.start()                       # free port unless port= is given
    open(f, "w").write(idp.metadata())   # import with btssoctl idp import
    ...
    idp.stop()

Everything lives in workdir: a private SimpleSAMLphp config directory
(config.php, authsources.php with exampleauth:UserPass users, the hosted
IdP metadata and our SP metadata as an XML metadata source), the IdP key,
sessions, logs.  /etc is never touched: apache finds the directory through
SetEnv SIMPLESAMLPHP_CONFIG_DIR.  The apache2 runs in the foreground and is
stopped by PID.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEYS = os.path.join(TOP, "t", "fixtures", "keys")
SSP_ROOT = "/usr/share/simplesamlphp"
HTTPD = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"

# user -> (password, mail, display name).  Test-only credentials.
DEMO_USERS = {
    "ann": ("ann-password", "ann@example.com", "Ann Example"),
    "bob": ("bob-password", "bob@example.com", "Bob Example"),
    "eve": ("eve-password", "eve@elsewhere.example", "Eve Outsider"),
}

EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def free_port():
    """As the httpd harness picks its ports (below the ephemeral range)."""
    import btsso_httpd
    return btsso_httpd.free_port()


def php_str(s):
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_user():
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


class SimpleSAMLphpIdP:
    def __init__(self, workdir, sp_metadata_xml, users=None, port=None,
                 trusted_hosts=(),
                 key=os.path.join(KEYS, "simplesamlphp.key"),
                 cert=os.path.join(KEYS, "simplesamlphp.crt"),
                 post_only=False):
        # post_only: the IdP publishes SingleSignOnService and
        # SingleLogoutService over HTTP-POST only
        self.binding = ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
                        if post_only else
                        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
        self.dir = os.path.abspath(workdir)
        self.port = port or free_port()
        self.base = "http://127.0.0.1:%d/simplesaml" % self.port
        self.entity_id = self.base + "/saml2/idp/metadata.php"
        self.sso_url = self.base + "/saml2/idp/SSOService.php"
        self.slo_url = self.base + "/saml2/idp/SingleLogoutService.php"
        self.users = users or DEMO_USERS
        # hosts (with a non-standard port: "localhost:8080") the IdP may
        # send a browser back to after logout
        self.trusted_hosts = list(trusted_hosts)
        self.key, self.cert = key, cert
        self.proc = None
        self.confdir = os.path.join(self.dir, "config")
        for d in ("config", "metadata", "cert", "data", "tmp", "log",
                  "sessions", "run"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        shutil.copy(key, os.path.join(self.dir, "cert", "idp.key"))
        shutil.copy(cert, os.path.join(self.dir, "cert", "idp.crt"))
        self.set_sp_metadata(sp_metadata_xml)
        self._write_config()

    # -- configuration -----------------------------------------------------
    def set_sp_metadata(self, xml):
        """Our SP metadata, read by SimpleSAMLphp at each request (no
        restart needed)."""
        with open(os.path.join(self.dir, "metadata", "sp.xml"), "w") as f:
            f.write(xml)

    def _write(self, name, text):
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def _write_config(self):
        d = self.dir
        self._write("config.php", """<?php
$config = [
    'baseurlpath' => {base},
    'certdir' => {cert},
    'loggingdir' => {log},
    'datadir' => {data},
    'tempdir' => {tmp},
    'metadatadir' => {md},
    'attributenamemapdir' => '/usr/share/simplesamlphp/attributemap/',
    'technicalcontact_name' => 'Test',
    'technicalcontact_email' => 'na@example.org',
    'timezone' => 'UTC',
    'secretsalt' => 'btsso-test-salt-not-secret-0123456789',
    'auth.adminpassword' => 'btsso-test-admin',
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [{trusted}],
    'enable.http_post' => false,
    'assertion.allowed_clock_skew' => 180,
    'debug' => ['saml' => false, 'backtraces' => true,
                'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'logging.level' => SimpleSAML\\Logger::INFO,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'statistics.out' => [],
    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true,
                        'saml' => true, 'admin' => true],
    'session.duration' => 8 * 3600,
    'session.datastore.timeout' => 4 * 3600,
    'session.state.timeout' => 3600,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => {sessions},
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'session.rememberme.enable' => false,
    'language.default' => 'en',
    'theme.use' => 'default',
    'store.type' => 'phpsession',
    'metadata.sources' => [
        ['type' => 'flatfile'],
        ['type' => 'xml', 'file' => {spxml}],
    ],
    'metadata.sign.enable' => false,
];
""".format(base=php_str("simplesaml/"), cert=php_str(d + "/cert/"),
           log=php_str(d + "/log/"), data=php_str(d + "/data/"),
           tmp=php_str(d + "/tmp"), md=php_str(d + "/metadata/"),
           sessions=php_str(d + "/sessions"),
           spxml=php_str(d + "/metadata/sp.xml"),
           trusted=", ".join(php_str(h) for h in self.trusted_hosts)))
        users = []
        for name, (password, mail, display) in sorted(self.users.items()):
            users.append("        %s => ['uid' => [%s], 'mail' => [%s], "
                         "'displayName' => [%s], "
                         "'eduPersonAffiliation' => ['member', 'staff']],"
                         % (php_str(name + ":" + password), php_str(name),
                            php_str(mail), php_str(display)))
        self._write("authsources.php", """<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
%s
    ],
];
""" % "\n".join(users))
        with open(os.path.join(self.dir, "metadata",
                               "saml20-idp-hosted.php"), "w") as f:
            f.write("""<?php
$metadata[%s] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'example-userpass',
    'NameIDFormat' => %s,
    'simplesaml.nameidattribute' => 'mail',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'sign.logout' => true,
    'redirect.sign' => true,
    'validate.authnrequest' => true,
    'validate.logout' => true,
    'SingleSignOnServiceBinding' => [%s],
    'SingleLogoutServiceBinding' => [%s],
    'logouttype' => 'traditional',
];
""" % (php_str(self.entity_id), php_str(EMAIL_FORMAT),
       php_str(self.binding), php_str(self.binding)))
        # the IdP's remote-SP list comes from sp.xml; an empty flat file
        # keeps SimpleSAMLphp from complaining about a missing set
        for name in ("saml20-sp-remote.php", "saml20-idp-remote.php"):
            with open(os.path.join(self.dir, "metadata", name), "w") as f:
                f.write("<?php\n")
        with open(os.path.join(self.dir, "httpd.conf"), "w") as f:
            f.write(self._httpd_conf())

    def _httpd_conf(self):
        user = run_user()
        return """
LoadModule mpm_prefork_module {mods}/mod_mpm_prefork.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule dir_module {mods}/mod_dir.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule env_module {mods}/mod_env.so
LoadModule php_module {mods}/libphp8.2.so
{userline}
ServerName 127.0.0.1
ServerRoot {dir}
Listen 127.0.0.1:{port}
PidFile {dir}/run/httpd.pid
DefaultRuntimeDir {dir}/run
Mutex file:{dir}/run default
ErrorLog {dir}/log/error.log
CustomLog {dir}/log/access.log "%h %t \\"%r\\" %>s"
LogLevel warn
TypesConfig /etc/mime.types
StartServers 2
MinSpareServers 2
MaxSpareServers 4
MaxRequestWorkers 10
DocumentRoot {dir}/run
SetEnv SIMPLESAMLPHP_CONFIG_DIR {dir}/config
Alias /simplesaml {root}/www
<Directory {root}/www>
    Require all granted
    DirectoryIndex index.php
    <FilesMatch \\.php$>
        SetHandler application/x-httpd-php
    </FilesMatch>
</Directory>
<Directory {dir}/run>
    Require all denied
</Directory>
""".format(mods=MODDIR, dir=self.dir, port=self.port, root=SSP_ROOT,
           userline=("User %s\nGroup %s" % (user, user)) if user else "")

    # -- lifecycle ---------------------------------------------------------
    def _fix_perms(self):
        user = run_user()
        if not user:
            return
        pw = pwd.getpwnam(user)
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(os.path.join(self.dir, "cert", "idp.key"), 0o600)

    def start(self):
        self._fix_perms()
        self.proc = subprocess.Popen(
            [HTTPD, "-f", os.path.join(self.dir, "httpd.conf"),
             "-DFOREGROUND"], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "log", "stderr.log"), "ab"),
            # prefork's parent signals its whole process group when it
            # stops: that group must not be ours
            start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("SimpleSAMLphp's apache2 exited:\n"
                                   + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("SimpleSAMLphp's apache2 did not listen")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        out = []
        for name in ("error.log", "stderr.log", "simplesamlphp.log"):
            try:
                with open(os.path.join(self.dir, "log", name),
                          errors="replace") as f:
                    out.append("== %s ==\n%s" % (name, f.read()[-6000:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def requests_seen(self, containing=""):
        """How many requests (whose log line holds `containing`) this IdP
        has answered so far."""
        try:
            with open(os.path.join(self.dir, "log", "access.log")) as f:
                return sum(1 for line in f if containing in line)
        except FileNotFoundError:
            return 0

    # -- what tests and the demo use ---------------------------------------
    def metadata(self):
        """The IdP's SAML 2.0 metadata as SimpleSAMLphp publishes it."""
        with urllib.request.urlopen(self.entity_id + "?output=xml",
                                    timeout=20) as r:
            return r.read().decode()

    def idp_initiated_url(self, sp_entity_id, relay_state=None):
        """Unsolicited login at the IdP for one SP (SimpleSAMLphp's
        SSOService.php?spentityid=...)."""
        from urllib.parse import urlencode
        q = {"spentityid": sp_entity_id}
        if relay_state:
            q["RelayState"] = relay_state
        return self.sso_url + "?" + urlencode(q)

    def idp_logout_url(self, return_to):
        """Logout started at the IdP: it sends LogoutRequests to every SP
        of the session, then returns to return_to."""
        from urllib.parse import urlencode
        return self.base + "/saml2/idp/SingleLogoutService.php?" + \
            urlencode({"ReturnTo": return_to})
