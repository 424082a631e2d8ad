"""A throwaway MariaDB for the integration tests (t/lib/mariadbtmp.sh).

One server per test session (per xdist worker), or none at all when
BTSSO_TEST_MYSQL already names one (t/run starts one for the whole suite
run, the C store suite uses it too); each test gets a database of its own.

In a test module:  from mariadbtmp import mariadb_server, mariadb  # noqa
and take `mariadb` (APR DBD mysql params of a new, empty database).
"""
import os
import re
import subprocess
import tempfile
import uuid

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(TOP, "t", "lib", "mariadbtmp.sh")


def parse(params):
    """APR DBD mysql params ("host=... port=...") as a dict."""
    return dict(kv.split("=", 1) for kv in params.split())


def with_db(params, dbname):
    return re.sub(r"dbname=\S+", "dbname=" + dbname, params)


def client(params, *extra, db=True):
    """The mariadb command-line client on the database of params."""
    p = parse(params)
    cmd = ["mariadb", "--no-defaults", "-h", p["host"], "-P", p["port"],
           "-u", p["user"], "--password=" + p.get("pass", ""), "-N", "-B",
           "--default-character-set=utf8mb4"] + list(extra)
    if db:
        cmd.append(p["dbname"])
    return cmd


def sql(params, query, db=True):
    """Rows (tuples of text, NULL as None) of query on params' database."""
    r = subprocess.run(client(params, "-e", query, db=db),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("mariadb %r: %s" % (query, r.stderr.strip()))
    rows = []
    for line in r.stdout.splitlines():
        rows.append(tuple(None if v == "NULL" else v
                          for v in line.split("\t")))
    return rows


def new_database(params):
    name = "t_" + uuid.uuid4().hex[:12]
    sql(params, "CREATE DATABASE " + name, db=False)
    return with_db(params, name)


def drop_database(params):
    sql(params, "DROP DATABASE IF EXISTS " + parse(params)["dbname"],
        db=False)


@pytest.fixture(scope="session")
def mariadb_server():
    """APR DBD mysql params of a running MariaDB whose user may create
    databases."""
    given = os.environ.get("BTSSO_TEST_MYSQL", "").strip()
    if given:
        yield given
        return
    # on tmpfs when there is one: InnoDB's DDL syncs files, and each test
    # creates a schema (an init takes 0.15 s there, 1 s on a disk)
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="btsso-mariadb-", dir=shm)
    os.chmod(d, 0o755)
    r = subprocess.run(["sh", SCRIPT, "start", d], capture_output=True,
                       text=True)
    if r.returncode != 0:
        subprocess.run(["sh", SCRIPT, "stop", d], check=False)
        pytest.fail("mariadbtmp.sh start failed: " + r.stderr.strip())
    params = r.stdout.strip().splitlines()[-1]
    yield params
    subprocess.run(["sh", SCRIPT, "stop", d], check=False)


@pytest.fixture
def mariadb(mariadb_server):
    """APR DBD mysql params of a new, empty database, dropped afterwards."""
    params = new_database(mariadb_server)
    yield params
    drop_database(params)
