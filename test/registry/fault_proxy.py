#!/usr/bin/env python3
"""HTTP fault injector in front of a registry, for the fetcher's failure
tests.  Forwards every request to --upstream and misbehaves as the control
file --control says (re-read on every request):

  ok            forward faithfully
  500 N         answer the next N requests with 500
  429 N         answer the next N requests with 429 and Retry-After: 1
  slow MS       delay every response by MS milliseconds
  reset N       for the next N ranged reads send the headers and half the
                body, then reset the connection
  short N       for the next N ranged reads send half the body, then close
                cleanly (a short body)
Counts in --state DIR: requests, faults.
"""
import argparse
import http.client
import os
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.up = None

    def mode(self):
        """Take one fault from the control file, if any: (kind, arg)."""
        srv = self.server
        with srv.lock:
            srv.requests += 1
            try:
                with open(srv.control) as f:
                    words = f.read().split()
            except OSError:
                words = []
            kind = words[0] if words else "ok"
            arg = int(words[1]) if len(words) > 1 else 0
            if kind in ("500", "429", "reset", "short"):
                ranged = self.headers.get("Range") is not None
                if arg <= 0 or (kind in ("reset", "short") and not ranged):
                    kind = "ok"
                else:
                    with open(srv.control, "w") as f:
                        f.write("%s %d\n" % (kind, arg - 1))
                    srv.faults += 1
            for name, val in (("requests", srv.requests), ("faults", srv.faults)):
                with open(os.path.join(srv.state, name), "w") as f:
                    f.write(str(val))
            return kind, arg

    def plain(self, code, extra=None):
        body = b'{"errors":[{"code":"UNAVAILABLE"}]}'
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        kind, arg = self.mode()
        if kind == "slow":
            time.sleep(arg / 1000.0)
        if kind == "500":
            return self.plain(500)
        if kind == "429":
            return self.plain(429, {"Retry-After": "1"})
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        for attempt in (0, 1):
            if self.up is None:
                self.up = http.client.HTTPConnection(self.server.upstream_host,
                                                     self.server.upstream_port, timeout=30)
            try:
                self.up.request(self.command, self.path, headers=headers)
                resp = self.up.getresponse()
                break
            except (OSError, http.client.HTTPException):
                self.up.close()
                self.up = None
                if attempt:
                    self.close_connection = True
                    return self.plain(502)
        body = resp.read() if self.command != "HEAD" else b""
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        clen = resp.getheader("Content-Length")
        self.send_header("Content-Length", clen if self.command == "HEAD" and clen
                         else str(len(body)))
        self.end_headers()
        if kind in ("reset", "short") and len(body) > 1:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(body)

    do_GET = forward
    do_HEAD = forward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="host:port")
    ap.add_argument("--control", required=True)
    ap.add_argument("--state", required=True)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    host, port = a.upstream.rsplit(":", 1)
    srv.upstream_host, srv.upstream_port = host, int(port)
    srv.control, srv.state = a.control, a.state
    srv.lock = threading.Lock()
    srv.requests = srv.faults = 0
    srv.serve_forever()


if __name__ == "__main__":
    main()
