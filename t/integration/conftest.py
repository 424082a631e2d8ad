"""pytest wiring: t/lib on sys.path, a throwaway httpd per test, and the
error-log rule (an unexpected [error]/[warn] line fails the test)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

import btsso_httpd  # noqa: E402


def pytest_sessionstart(session):
    """httpd's children and btssoctl run as the httpd user when the suite
    runs as root: say in one line when that user cannot reach the build or
    the fixtures (a clone in a private folder; `sh t/run` stages it)."""
    problem = btsso_httpd.unreadable_by_run_user()
    if problem:
        pytest.exit(problem, returncode=2)


@pytest.fixture
def make_httpd(request):
    """Factory: make_httpd(**kwargs) -> Httpd (not started).  Every instance
    is stopped and its log checked when the test ends."""
    made = []
    request.node.btsso_httpds = made

    def factory(**kwargs):
        h = btsso_httpd.Httpd(**kwargs)
        made.append(h)
        return h

    yield factory
    failed = request.node.rep_call.failed if hasattr(request.node,
                                                      "rep_call") else False
    problems = []
    for h in made:
        h.stop()
        if not failed:
            problems += h.unexpected_log_lines()
        else:
            sys.stderr.write("---- error log of %s ----\n%s\n" % (
                h.dir, h.log_text()[-6000:]))
        h.cleanup()
    if problems:
        pytest.fail("unexpected lines in the error log:\n" +
                    "\n".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """The test's httpds stop before any fixture is torn down: a database
    or cache fixture requested after make_httpd is torn down before it,
    and each child's watchdog may still be writing the sign-in counts of
    the test's last logins (within a second); their log is checked later,
    by make_httpd's own teardown."""
    for h in getattr(item, "btsso_httpds", ()):
        h.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
