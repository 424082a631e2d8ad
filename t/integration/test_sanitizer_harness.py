"""The sanitizer part of the harness (BTSSO_ASAN=1, `t/run --asan`): httpd
really runs the ASan build with its reports going to the instance
directory, and a report there is flagged as a failure.  Skipped in a
normal build."""
import os
import time

import pytest

import btsso_httpd

pytestmark = pytest.mark.skipif(not btsso_httpd.ASAN,
                                reason="only with BTSSO_ASAN=1")


def test_httpd_runs_with_the_sanitizer_runtime(make_httpd):
    h = make_httpd()
    h.start()
    maps = open("/proc/%d/maps" % h.proc.pid).read()
    assert "libasan.so" in maps
    assert "libubsan.so" in maps
    assert btsso_httpd.sanitizer_reports(h.dir) == []


def test_a_report_fails_the_test(make_httpd, monkeypatch):
    # verbosity=1 makes every ASan process write to its log file: a stand-in
    # for a real report, through the same path (log_path -> instance dir).
    monkeypatch.setenv("BTSSO_ASAN_OPTIONS", "verbosity=1")
    h = make_httpd()
    h.start()
    deadline = time.time() + 10
    while not btsso_httpd.sanitizer_reports(h.dir) and time.time() < deadline:
        time.sleep(0.1)
    bad = h.unexpected_log_lines()
    assert any(line.startswith("sanitizer report %s/asan." % h.dir)
               for line in bad), bad
    # consumed here, so the fixture's own check passes
    h.stop()
    for name, _ in btsso_httpd.sanitizer_reports(h.dir):
        os.unlink(os.path.join(h.dir, name))


def test_btssoctl_report_goes_to_the_instance_dir(make_httpd):
    h = make_httpd()
    h.write_config()
    env = btsso_httpd.sanitizer_env(h.dir)
    assert "detect_leaks=1" in env["ASAN_OPTIONS"]
    assert os.path.join(h.dir, "asan-btssoctl") in env["ASAN_OPTIONS"]
    p = h.ctl("init")
    assert p.returncode == 0
    assert btsso_httpd.sanitizer_reports(h.dir) == []
