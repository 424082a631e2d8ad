"""Two nodes behind one BTSSOBaseURL, sharing the store and a memcached
session cache (the scale issue's cluster rows): an administrator's change
made through node A is enforced by node B within BTSSOConfigTTL, and node A
stopped in the middle of a login load loses no session: every session made
on either node is still honoured by node B, and B goes on signing users in.
"""
import threading
import time

import requests

from test_session_follow import (TTL, Admin, login, memcached,  # noqa: F401
                                 session_status, sid_of, two_nodes)


def login_via(p, node_url):
    """SP-initiated login started and finished on node_url; the session id,
    or the failing answer."""
    s = requests.Session()
    r = s.get(node_url + "/sso/login/acme?return=/app/",
              allow_redirects=False, timeout=20)
    if r.status_code != 302:
        return None, r
    req = p.idp.parse_redirect(r.headers["Location"])
    pending = {c.name: c.value for c in s.cookies
               if "_pending_" in c.name}
    b64 = p.idp.response(req, email="ann@example.com")
    r = requests.post(node_url + "/sso/acs", data={
        "SAMLResponse": b64, "RelayState": req.relay_state},
        cookies=pending, allow_redirects=False, timeout=20)
    if r.status_code != 303:
        return None, r
    return sid_of(r), r


def refused_within(fn, seconds):
    start = time.time()
    while time.time() - start <= seconds:
        if fn():
            return True
        time.sleep(0.1)
    return False


def test_admin_change_on_a_enforced_on_b(make_httpd, tmp_path, memcached):
    a, b = two_nodes(make_httpd, tmp_path, memcached)
    sid, r = login_via(a, b.url)
    assert sid, (r.status_code, r.text)
    b.expect_log("BTSSO0210")
    # the email mapping changed through A's admin API: B's next logins
    # look for the new attribute (which this IdP does not send)
    r = Admin(a.url).send("PUT", "email-attribute",
                          {"attribute": "urn:example:not-sent"})
    assert r.status_code == 200, r.text
    assert refused_within(lambda: login_via(a, b.url)[0] is None, TTL + 2)
    r = Admin(a.url).send("PUT", "email-attribute", {"attribute": "mail"})
    assert r.status_code == 200, r.text
    assert refused_within(lambda: login_via(a, b.url)[0] is not None,
                          TTL + 2)
    # SSO disabled through A: B refuses new logins and ends the session
    r = Admin(a.url).send("PUT", "enabled", {"enabled": False})
    assert r.status_code == 200, r.text
    assert refused_within(
        lambda: login_via(a, b.url)[1].status_code == 403, TTL + 2)
    assert session_status(b.url, sid) == 401


def test_node_a_stopped_under_login_load_loses_no_session(
        make_httpd, tmp_path, memcached):
    a, b = two_nodes(make_httpd, tmp_path, memcached)
    made = {"a": [], "b": []}
    failures = []
    a_down = threading.Event()
    stop = threading.Event()

    def worker(n):
        i = 0
        while not stop.is_set() and i < 200:
            i += 1
            node = "a" if (i + n) % 2 == 0 and not a_down.is_set() else "b"
            url = a.url if node == "a" else b.url
            try:
                sid, r = login_via(a, url)
            except requests.ConnectionError:
                if node == "a" and a_down.is_set():
                    continue        # the balancer's job: A is gone
                raise
            if sid is None:
                if node == "a" and a_down.is_set():
                    continue        # A died while answering this one
                failures.append((node, r.status_code, r.text[:200]))
                continue
            made[node].append(sid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(made["a"]) < 10 and time.time() < deadline:
        time.sleep(0.05)
    assert len(made["a"]) >= 10, "node A made no sessions"
    a_down.set()
    a.httpd.stop()                  # SIGTERM to A's parent, by PID
    n_b_before = len(made["b"])
    deadline = time.time() + 60
    while len(made["b"]) < n_b_before + 10 and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    assert len(made["b"]) >= n_b_before + 10, "node B stopped signing in"
    # every session made on either node is still honoured by B
    lost = [sid for sid in made["a"] + made["b"]
            if session_status(b.url, sid) != 200]
    assert not lost, "%d of %d sessions lost" % (
        len(lost), len(made["a"]) + len(made["b"]))
