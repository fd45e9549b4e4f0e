#!/usr/bin/env python3
"""Range-capable static file server standing in for a storage back end
(S3-like) behind the registry's redirect middleware.

Serves ROOT/<path> for GET and HEAD with single byte ranges (206 / 416) and
rejects any request carrying Authorization with 400, as S3 does when given
two auth mechanisms: a client that forwards registry credentials to the
storage fails here.  Counts requests in STATE/requests.
"""
import argparse
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def simple(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def count(self):
        srv = self.server
        with srv.lock:
            srv.requests += 1
            with open(os.path.join(srv.state, "requests"), "w") as f:
                f.write(str(srv.requests))

    def serve(self):
        self.count()
        if self.headers.get("Authorization"):
            return self.simple(400, "InvalidArgument: Only one auth mechanism allowed")
        path = os.path.normpath(self.path.split("?", 1)[0]).lstrip("/")
        full = os.path.join(self.server.root, path)
        if path.startswith("..") or not os.path.isfile(full):
            return self.simple(404, "NoSuchKey")
        size = os.path.getsize(full)
        start, end, code = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self.simple(400, "bad range")
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 206
        self.send_response(code)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(full, "rb") as f:
            self.wfile.flush()
            os.sendfile(self.connection.fileno(), f.fileno(), start, end - start + 1)

    do_GET = serve
    do_HEAD = serve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--state", required=True)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.root = a.root
    srv.state = a.state
    srv.lock = threading.Lock()
    srv.requests = 0
    srv.serve_forever()


if __name__ == "__main__":
    main()
