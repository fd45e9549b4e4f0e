#!/usr/bin/env python3
"""Two halves of a server-side request forgery test.

  redirect --bind ADDR --port P --to URL [--realm]
      a hostile "registry": every GET and HEAD gets 307 Location: URL, or
      with --realm a 401 whose Bearer challenge names URL as token realm.
  listen --port P --record FILE
      a local service (say Redis) that must never hear from the fetcher:
      each accepted connection appends one line, with the first bytes it
      sent, to FILE.
"""
import argparse
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def redirect(args):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self):
            if args.realm:
                self.send_response(401)
                self.send_header("WWW-Authenticate",
                                 'Bearer realm="%s",service="evil"' % args.to)
            else:
                self.send_response(307)
                self.send_header("Location", args.to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = answer

    ThreadingHTTPServer.address_family = (
        socket.AF_INET6 if ":" in args.bind else socket.AF_INET)
    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


def listen(args):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(16)
    lock = threading.Lock()

    def one(conn):
        conn.settimeout(1)
        try:
            data = conn.recv(256)
        except OSError:
            data = b""
        conn.close()
        with lock, open(args.record, "a") as f:
            f.write(repr(data) + "\n")

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("redirect")
    r.add_argument("--bind", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--to", required=True)
    r.add_argument("--realm", action="store_true")
    s = sub.add_parser("listen")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--record", required=True)
    args = ap.parse_args()
    redirect(args) if args.cmd == "redirect" else listen(args)


if __name__ == "__main__":
    main()
