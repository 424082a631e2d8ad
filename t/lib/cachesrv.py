"""Throwaway memcached for the tests: started on a free loopback port,
stopped by PID; and just enough of its text protocol to read and overwrite
what the module stored."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

import btsso_httpd


def wait_port(port, proc, what="memcached"):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited" % what)
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen" % what)


@contextlib.contextmanager
def memcached_server():
    """A memcached of 16 MiB; yields its port."""
    if shutil.which("memcached") is None:
        raise RuntimeError("memcached is not installed (scripts/deps.sh test)")
    port = btsso_httpd.free_port()
    cmd = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
           "-m", "16"]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


class Memcache:
    """A client of memcached's text protocol (keys, get, set)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.f = self.s.makefile("rb")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")

    def keys(self):
        self.cmd("lru_crawler metadump all")
        out = []
        while True:
            line = self.f.readline().strip()
            if line == b"END" or not line:
                return out
            for part in line.split():
                if part.startswith(b"key="):
                    out.append(urllib.parse.unquote(part[4:].decode()))

    def get(self, key):
        self.cmd("get %s" % key)
        head = self.f.readline().split()
        if head[0] == b"END":
            return None
        n = int(head[3])
        data = self.f.read(n + 2)[:-2]
        assert self.f.readline().strip() == b"END"
        return data

    def set(self, key, value):
        self.s.sendall(b"set %s 0 600 %d\r\n%s\r\n"
                       % (key.encode(), len(value), value))
        assert self.f.readline().strip() == b"STORED"

    def delete(self, key):
        self.cmd("delete %s" % key)
        assert self.f.readline().strip() in (b"DELETED", b"NOT_FOUND")

    def close(self):
        self.f.close()
        self.s.close()
