#!/usr/bin/python3
"""Local HTTPS + HTTP test server for the metadata fetcher.

Creates a throwaway CA and a server certificate (SAN IP:127.0.0.1 and
IP:127.0.0.2, no DNS name) with the openssl command line in a private
temporary directory, plus a second, unrelated CA for "wrong CA" tests.
Listens on 127.0.0.1 only, on free ports (port 0), one HTTPS and one plain
HTTP listener serving the same routes.

Prints one JSON line on stdout once both listeners accept connections:
    {"https_port": N, "http_port": N, "ca_file": "...",
     "other_ca_file": "...", "pid": N}
and serves until SIGTERM/SIGINT, or until its stdin reaches end of file
(so it never outlives a test runner that dies without killing it).  The
temporary directory is removed on exit.

Routes (GET):
  /file/NAME              a file from --files DIR (no subdirectories)
  /redirect?to=URL&code=C&delay=S
                          after S seconds (default 0), redirect (default
                          302) to URL, which may be relative
  /loop                   redirects to itself, forever
  /chain?n=N              N redirects, then a small body "chain end"
  /slow?delay=S           waits S seconds, then answers 200
  /stall-body             200 with Content-Length 100, sends 10 bytes, stalls
  /big?size=N&mode=M      N bytes of 'x'; M: length (Content-Length),
                          close (no length, ends by closing), chunked
  /declare?length=N       headers with Content-Length N, then no body for
                          10 s (only a client honouring the header is fast)
  /status?code=C          that status with a small body
  /seen?path=P            "yes" if a request for path P (with query) has
                          been received before, else "no"
  /count?path=P           how many requests for path P (with query) have
                          been received, as a decimal number
"""
import argparse
import http.server
import json
import os
import shutil
import signal
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

OPENSSL = "/usr/bin/openssl"


def run_openssl(args, cwd):
    subprocess.run([OPENSSL] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(workdir, name, cn):
    run_openssl(["req", "-x509", "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", name + ".key", "-out", name + ".pem",
                 "-days", "2", "-subj", "/CN=" + cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                workdir)
    return os.path.join(workdir, name + ".pem")


def make_pki(workdir):
    ca_file = make_ca(workdir, "ca", "mod_btsso fetch test CA")
    other_ca_file = make_ca(workdir, "other-ca", "mod_btsso unrelated CA")
    with open(os.path.join(workdir, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:127.0.0.2\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    run_openssl(["req", "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=127.0.0.1"], workdir)
    run_openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", "server.ext", "-out", "server.pem"], workdir)
    return (ca_file, other_ca_file, os.path.join(workdir, "server.pem"),
            os.path.join(workdir, "server.key"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "btsso-test"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, code, location):
        body = b"moved\n"
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        seen = self.server.seen_paths
        with self.server.seen_lock:
            seen.add(self.path)
            counts = self.server.seen_counts
            counts[self.path] = counts.get(self.path, 0) + 1

        def arg(name, default=None):
            return query.get(name, [default])[0]

        path = url.path
        if path.startswith("/file/"):
            name = path[len("/file/"):]
            full = os.path.join(self.server.files_dir, name)
            if "/" in name or name.startswith(".") or not os.path.isfile(full):
                self.send_body(404, b"no such file\n")
                return
            with open(full, "rb") as f:
                self.send_body(200, f.read(), "application/samlmetadata+xml")
        elif path == "/redirect":
            time.sleep(float(arg("delay", "0")))
            self.redirect(int(arg("code", "302")), arg("to", "/"))
        elif path == "/loop":
            self.redirect(302, "/loop")
        elif path == "/chain":
            n = int(arg("n", "0"))
            if n > 0:
                self.redirect(302, "/chain?n=%d" % (n - 1))
            else:
                self.send_body(200, b"chain end\n")
        elif path == "/slow":
            time.sleep(float(arg("delay", "3")))
            self.send_body(200, b"slow\n")
        elif path == "/stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(10)
            self.close_connection = True
        elif path == "/big":
            self.send_big(int(arg("size", "0")), arg("mode", "length"))
        elif path == "/declare":
            self.send_response(200)
            self.send_header("Content-Length", arg("length", "0"))
            self.end_headers()
            self.wfile.flush()
            time.sleep(10)
            self.close_connection = True
        elif path == "/status":
            self.send_body(int(arg("code", "500")), b"status page\n")
        elif path == "/count":
            with self.server.seen_lock:
                n = self.server.seen_counts.get(arg("path", ""), 0)
            self.send_body(200, str(n).encode())
        elif path == "/seen":
            with self.server.seen_lock:
                answer = b"yes" if arg("path", "") in seen else b"no"
            self.send_body(200, answer)
        else:
            self.send_body(404, b"no such route\n")

    def send_big(self, size, mode):
        self.send_response(200)
        if mode == "length":
            self.send_header("Content-Length", str(size))
        elif mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        block = b"x" * 4096
        sent = 0
        try:
            while sent < size:
                part = block[:min(len(block), size - sent)]
                if mode == "chunked":
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                else:
                    self.wfile.write(part)
                sent += len(part)
            if mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, files_dir, seen_paths, seen_lock, tls_context=None,
                 seen_counts=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files_dir = files_dir
        self.seen_paths = seen_paths
        self.seen_lock = seen_lock
        self.seen_counts = seen_counts if seen_counts is not None else {}
        self.tls_context = tls_context

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_context is not None:
            # Handshake in the handler thread, so a client that refuses our
            # certificate cannot hold up the accept loop.
            sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        # Clients that reject the certificate or hang up early are the
        # point of several tests: not worth a traceback.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ssl.SSLError, ConnectionError, OSError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", required=True,
                    help="directory served under /file/")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="btsso-fetch-pki-")
    servers = []

    def stop(*_):
        # Closing stdin and a SIGTERM often come together: a second signal
        # must not interrupt the clean-up below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        ca_file, other_ca_file, cert, key = make_pki(workdir)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert, key)
        seen_paths = set()
        seen_lock = threading.Lock()
        seen_counts = {}
        https = Server(os.path.abspath(args.files), seen_paths, seen_lock, tls,
                       seen_counts)
        plain = Server(os.path.abspath(args.files), seen_paths, seen_lock,
                       seen_counts=seen_counts)
        servers = [https, plain]
        for s in servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()

        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os.kill(os.getpid(), signal.SIGTERM)

        print(json.dumps({"https_port": https.server_address[1],
                          "http_port": plain.server_address[1],
                          "ca_file": ca_file,
                          "other_ca_file": other_ca_file,
                          "pid": os.getpid()}), flush=True)
        threading.Thread(target=watch_stdin, daemon=True).start()
        while True:
            signal.pause()
    finally:
        for s in servers:
            s.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
