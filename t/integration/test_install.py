"""`make install DESTDIR=...` installs the module the apxs way, btssoctl,
and the Debian-shaped configuration snippets; the installed btsso.load and
btsso.conf make a configuration httpd accepts."""
import os
import subprocess

import btsso_httpd


def apxs(q):
    return subprocess.run(["apxs", "-q", q], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_make_install(tmp_path):
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", btsso_httpd.BUILDDIR, "install",
                        "DESTDIR=%s" % dest], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    libexec = apxs("LIBEXECDIR")
    sysconf = apxs("SYSCONFDIR")
    mod = dest / libexec.lstrip("/") / "mod_btsso.so"
    assert mod.is_file()
    assert not (dest / libexec.lstrip("/") / "mod_btsso.la").exists()
    found = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
             if f == "btssoctl"]
    assert found and os.access(found[0], os.X_OK)
    avail = dest / sysconf.lstrip("/") / "mods-available"
    load = (avail / "btsso.load").read_text()
    assert "LoadModule btsso_module" in load
    assert (avail / "btsso.conf").is_file()
    # btssoctl knows where the installed btsso.conf is (its default -c)
    h = subprocess.run([found[0], "--help"], capture_output=True, text=True)
    assert os.path.join(sysconf, "mods-available", "btsso.conf") in \
        h.stdout + h.stderr


def test_installed_snippets_pass_configtest(make_httpd, tmp_path):
    """The shipped btsso.conf, included as is (with the module path and
    store adjusted), is a valid configuration."""
    top = btsso_httpd.TOP
    conf = open(os.path.join(top, "conf", "btsso.conf")).read()
    conf = conf.replace("/var/lib/btsso/btsso.db", str(tmp_path / "x.db"))
    h = make_httpd(btsso_conf="")
    text = h.config_text()
    # drop the harness's own BTSSO/DBD lines: the snippet must stand alone
    text = "\n".join(l for l in text.splitlines()
                     if not l.startswith(("BTSSO", "DBDriver", "DBDParams")))
    with open(h.conf_path, "w") as f:
        f.write(text + "\n" + conf)
    p = subprocess.run([btsso_httpd.HTTPD, "-t", "-f", h.conf_path],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def run_configure(tmp_path, *args, env_extra=None):
    env = dict(os.environ)
    # make check exports the build's CFLAGS (-Werror), under which
    # configure's own probes of httpd.h would fail
    env.pop("CFLAGS", None)
    env.update(env_extra or {})
    p = subprocess.run([os.path.join(btsso_httpd.TOP, "configure"), "-q"]
                       + list(args), cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def test_configure_names_missing_package(tmp_path):
    """configure stops with the Debian package to install."""
    code, out = run_configure(tmp_path, "--with-apxs=/nonexistent/apxs")
    assert code != 0
    assert "apache2-dev" in out
    # no .pc files at all: the first library check names its package
    code, out = run_configure(tmp_path, env_extra={
        "PKG_CONFIG_LIBDIR": str(tmp_path / "empty")})
    assert code != 0
    assert "install the Debian package libxml2-dev" in out
