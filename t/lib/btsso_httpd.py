"""Throwaway httpd instances with mod_btsso for the integration tests.

Each instance lives in its own temporary directory: a generated httpd.conf,
an SQLite store, logs.  It listens on a free 127.0.0.1 port, runs
/usr/sbin/apache2 in the foreground (never the system service) and is
stopped by PID.  The error log is checked after each test: an [error] or
[warn] line fails the test unless the test declared its tag as expected
(pyhttpd's rule).
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("BTSSO_BUILDDIR", TOP)
HTTPD = os.environ.get("BTSSO_HTTPD", "/usr/sbin/apache2")
MODDIR = "/usr/lib/apache2/modules"


def module_path():
    return os.path.join(BUILDDIR, ".libs", "mod_btsso.so")


def btssoctl_path():
    return os.path.join(BUILDDIR, "btssoctl")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_user():
    """The user httpd's children run as (and the one that must be able to
    write the SQLite store)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


BASE_MODULES = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_user_module", "mod_authz_user.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("authn_file_module", "mod_authn_file.so"),
    ("auth_basic_module", "mod_auth_basic.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("env_module", "mod_env.so"),
    ("headers_module", "mod_headers.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("dbd_module", "mod_dbd.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
]


class Httpd:
    """One httpd.  `btsso_conf` is inserted at server scope, `extra_conf`
    after it (locations etc.)."""

    def __init__(self, workdir=None, btsso_conf="", extra_conf="",
                 modules=None, base_url=None, db=None, dbdriver="sqlite3",
                 dbdparams=None, load_btsso=True, mpm="event",
                 processes=4):
        self.dir = workdir or tempfile.mkdtemp(prefix="btsso-httpd-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.base_url = base_url or self.url
        self.conf_path = os.path.join(self.dir, "httpd.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.docroot = os.path.join(self.dir, "htdocs")
        os.makedirs(self.docroot, exist_ok=True)
        self.db = db or os.path.join(self.dir, "btsso.db")
        self.dbdriver = dbdriver
        self.dbdparams = dbdparams or self.db
        self.btsso_conf = btsso_conf
        self.extra_conf = extra_conf
        self.modules = list(modules or [])
        self.load_btsso = load_btsso
        self.mpm = mpm
        self.processes = processes
        self.proc = None
        self.expected_log = []
        self.log_offset = 0

    # -- configuration -------------------------------------------------------
    def config_text(self):
        lines = []
        mods = [m for m in BASE_MODULES]
        if self.mpm != "event":
            mods[0] = ("mpm_%s_module" % self.mpm, "mod_mpm_%s.so" % self.mpm)
        for name, so in mods + self.modules:
            lines.append("LoadModule %s %s/%s" % (name, MODDIR, so))
        if self.load_btsso:
            lines.append("LoadModule btsso_module %s" % module_path())
        user = run_user()
        if user:
            lines.append("User %s\nGroup %s" % (user, user))
        lines.append("""
ServerName 127.0.0.1
ServerRoot {dir}
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/error.log
LogLevel warn btsso:debug
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
TypesConfig /etc/mime.types
DocumentRoot {docroot}
Mutex file:{dir} default
StartServers 1
ServerLimit {procs}
ThreadsPerChild 25
MaxRequestWorkers {workers}
MinSpareThreads {minspare}
MaxSpareThreads {workers}
<Directory {docroot}>
    Require all granted
</Directory>
DBDriver {driver}
DBDParams "{params}"
DBDMin 0
DBDKeep 2
DBDMax 8
""".format(procs=self.processes, workers=25 * self.processes,
           minspare=1 if self.processes == 1 else 25,
           dir=self.dir, port=self.port, docroot=self.docroot,
           driver=self.dbdriver, params=self.dbdparams))
        if self.load_btsso:
            lines.append("BTSSOBaseURL %s" % self.base_url
                         if "BTSSOBaseURL" not in self.btsso_conf else "")
            lines.append("BTSSOCookieSecure Off"
                         if "BTSSOCookieSecure" not in self.btsso_conf
                         and self.base_url.startswith("http:") else "")
        lines.append(self.btsso_conf)
        lines.append(self.extra_conf)
        return "\n".join(lines) + "\n"

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())

    def configtest(self):
        """(exit code, combined output) of `apache2 -t`."""
        self.write_config()
        p = subprocess.run([HTTPD, "-t", "-f", self.conf_path],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr

    # -- lifecycle -------------------------------------------------------------
    def fix_perms(self):
        """Let the httpd user write the store and the run directory."""
        user = run_user()
        if not user:
            return
        pw = pwd.getpwnam(user)
        for root, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                try:
                    os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
                except FileNotFoundError:
                    pass
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def start(self):
        self.write_config()
        self.fix_perms()
        if os.path.exists(self.error_log):
            self.log_offset = os.path.getsize(self.error_log)
        self.proc = subprocess.Popen(
            [HTTPD, "-f", self.conf_path, "-DFOREGROUND"],
            stdout=subprocess.DEVNULL, stderr=open(
                os.path.join(self.dir, "stderr.log"), "ab"))
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("httpd exited at start:\n" + self.log_text()
                                   + self.stderr_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("httpd did not listen:\n" + self.log_text())

    def graceful(self):
        """Graceful restart (SIGUSR1) and wait until it serves again."""
        self.write_config()
        gen = self.log_text().count("resuming normal operations")
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.log_text().count("resuming normal operations") > gen:
                return
            time.sleep(0.05)
        raise RuntimeError("graceful restart did not finish")

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

    # -- logs --------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        try:
            with open(os.path.join(self.dir, "stderr.log"),
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def expect_log(self, tag):
        """Declare a log tag (e.g. 'BTSSO0203') that may appear as a
        warning or error in this test."""
        self.expected_log.append(tag)

    def unexpected_log_lines(self):
        bad = []
        text = self.log_text()[self.log_offset:]
        for line in text.splitlines():
            if not re.search(r"\[[a-z_]*:(error|warn|crit|alert|emerg)\]",
                             line):
                continue
            if any(tag in line for tag in self.expected_log):
                continue
            # httpd's own notices about shutdown are not ours to judge, nor
            # the event MPM's complaint about a keep-alive socket the test
            # client closed while the server was stopping (AH03093)
            if "caught SIGTERM" in line or "AH00491" in line \
                    or "AH03093" in line:
                continue
            bad.append(line)
        return bad

    # -- the command-line tool ----------------------------------------------------
    def ctl(self, *args, check=True, json_out=False, input=None):
        """Run btssoctl against this instance's store (as the httpd user,
        as an operator would, so the SQLite file stays writable by httpd)."""
        cmd = [btssoctl_path(), "-c", self.conf_path]
        if json_out:
            cmd.append("--json")
        cmd += list(args)
        self.write_config()
        user = run_user()
        if user:
            self.fix_perms()
            cmd = ["runuser", "-u", user, "--"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           input=input)
        if check and p.returncode != 0:
            raise AssertionError("btssoctl %s failed (%d): %s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p
