#!/usr/bin/env python3
"""Token server for the registry tests (distribution token-auth spec).

GET /token?service=S&scope=repository:NAME:ACTIONS with optional Basic
credentials.  Issues RS256 JWTs the registry trusts through its
rootcertbundle (header kid = libtrust fingerprint of the signing key).
Signing uses the openssl command so only the standard library is needed.

Test controls, files in --state DIR:
  issued      number of tokens issued so far (rewritten on every issue)
  bad_next    if present: the next token is already expired for the registry
              (exp in the past) while expires_in claims an hour; then removed
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def libtrust_kid(key_path):
    der = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    h = hashlib.sha256(der).digest()[:30]
    s = base64.b32encode(h).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, code, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        cfg = self.server.cfg
        u = urlparse(self.path)
        if u.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = parse_qs(u.query)
        user = None
        auth = self.headers.get("Authorization")
        if auth:
            if not auth.startswith("Basic "):
                return self.reply(401, {"error": "bad auth"})
            try:
                user, pw = base64.b64decode(auth[6:]).decode().split(":", 1)
            except Exception:
                return self.reply(401, {"error": "bad auth"})
            if cfg.users.get(user) != pw:
                return self.reply(401, {"error": "wrong credentials"},
                                  {"WWW-Authenticate": 'Basic realm="registry.test"'})
        access = []
        for sc in q.get("scope", []):
            for one in sc.split(" "):
                parts = one.split(":")
                if len(parts) < 3:
                    continue
                typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if user is None and not cfg.anon_pull:
                    continue
                if user is None:
                    actions = [a for a in actions if a == "pull"]
                access.append({"type": typ, "name": name, "actions": actions})
        now = int(time.time())
        exp = now + cfg.expires
        bad = os.path.join(cfg.state, "bad_next")
        with self.server.lock:
            if os.path.exists(bad):
                os.unlink(bad)
                exp = now - 600
            self.server.issued += 1
            with open(os.path.join(cfg.state, "issued.tmp"), "w") as f:
                f.write(str(self.server.issued))
            os.rename(os.path.join(cfg.state, "issued.tmp"), os.path.join(cfg.state, "issued"))
        header = {"typ": "JWT", "alg": "RS256", "kid": self.server.kid}
        claims = {"iss": cfg.issuer, "sub": user or "", "aud": q.get("service", [""])[0],
                  "exp": exp, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()),
                  "access": access}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", cfg.key],
                             input=signing.encode(), check=True, capture_output=True).stdout
        token = signing + "." + b64url(sig)
        self.reply(200, {"token": token, "access_token": token, "expires_in": cfg.expires,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--users", dest="users_path", required=True, help="file of user:password lines")
    ap.add_argument("--state", required=True)
    ap.add_argument("--issuer", default="token-issuer.test")
    ap.add_argument("--expires", type=int, default=300)
    ap.add_argument("--anon-pull", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    cfg = ap.parse_args()
    cfg.users = {}
    with open(cfg.users_path) as f:
        for line in f:
            if ":" in line:
                u, p = line.rstrip("\n").split(":", 1)
                cfg.users[u] = p
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.cfg = cfg
    srv.kid = libtrust_kid(cfg.key)
    srv.lock = threading.Lock()
    srv.issued = 0
    if cfg.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
