#!/usr/bin/env python3
"""iscsi_peer: a raw-socket iSCSI initiator for hostile-peer tests (issue 6, and the
login cases of Security round 2 that test/it_hostile_login.sh runs).

Each case misbehaves in one way on its own connection and checks that the
target closes or rejects that connection, and that a well-behaved session
opened next to it still logs in and reads.  Usage:
    iscsi_peer.py PORT TARGET_IQN CASE [CASE...]
Prints "ok CASE" per case; on failure prints expected vs got and exits 1.
"""
import os
import socket
import struct
import sys
import time

PORT = int(sys.argv[1])
TARGET = sys.argv[2]
INITIATOR = "iqn.2026-11.io.overlaybd.test:hostile"


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(b):
    """RFC 7143 13.1 / RFC 3385 CRC32C, as sent on the wire (little-endian)."""
    c = 0xFFFFFFFF
    for x in b:
        c = CRC_TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return struct.pack("<I", c ^ 0xFFFFFFFF)


class Fail(Exception):
    pass


def expect(what, want, got):
    if want != got:
        raise Fail("%s: expected %r, got %r" % (what, want, got))


def bhs(op, flags=0, ahs_words=0, dsl=0, lun=0, itt=0, rest=b""):
    rest = rest.ljust(28, b"\0")
    return (struct.pack(">BBH", op, flags, 0) + struct.pack(">B", ahs_words) +
            dsl.to_bytes(3, "big") + struct.pack(">Q", lun) + struct.pack(">I", itt) + rest)


def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def keys(d):
    return b"".join(("%s=%s" % (k, v)).encode() + b"\0" for k, v in d)


class Conn:
    def __init__(self, src="127.0.0.1"):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.bind((src, 0))
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", PORT))
        self.cmdsn = 1
        self.statsn = 0
        self.itt = 1
        self.hd = self.dd = False

    def send(self, b):
        self.s.sendall(b)

    def send_pdu(self, h, data=b""):
        """Send a header and data with the negotiated digests."""
        out = h + (crc32c(h) if self.hd else b"")
        if data:
            out += pad4(data)
            if self.dd:
                out += crc32c(pad4(data))
        self.s.sendall(out)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_pdu(self, timeout=10):
        self.s.settimeout(timeout)
        try:
            h = self.recv_exact(48)
        except (ConnectionResetError, socket.timeout):
            return None
        if h is None:
            return None
        if self.hd:
            dg = self.recv_exact(4)
            expect("header digest from the target", crc32c(h), dg)
        dsl = int.from_bytes(h[5:8], "big")
        data = self.recv_exact(dsl + (4 - dsl % 4) % 4) if dsl else b""
        if dsl and self.dd:
            dg = self.recv_exact(4)
            expect("data digest from the target", crc32c(data), dg)
        return h, (data or b"")[:dsl]

    def closed_within(self, secs):
        """True once the peer closes; Reject PDUs on the way are kept."""
        self.rejects = []
        end = time.time() + secs
        while time.time() < end:
            self.s.settimeout(max(0.1, end - time.time()))
            try:
                b = self.s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return True
            if not b:
                return True
            if b[0] & 0x3F == 0x3F:
                self.rejects.append(b[2])
        return False

    def login(self, session_type="Normal", extra=(), digests=False, isid=None):
        kv = [("InitiatorName", INITIATOR), ("SessionType", session_type)]
        if session_type == "Normal":
            kv.append(("TargetName", TARGET))
        kv += [("AuthMethod", "None")]
        d = keys(kv)
        isid = isid or os.urandom(6)
        h = bhs(0x43, 0x81, dsl=len(d), itt=self.itt,
                rest=struct.pack(">HHII", 0, 0, self.cmdsn, self.statsn))
        h = h[:8] + isid + b"\0\0" + h[16:]
        self.send(h + pad4(d))
        r = self.recv_pdu()
        if r is None:
            raise Fail("login: connection closed")
        expect("login stage 1 status", (0, 0), (r[0][36], r[0][37]))
        self.statsn = struct.unpack(">I", r[0][24:28])[0] + 1
        dg = "CRC32C,None" if digests else "None"
        kv = [("HeaderDigest", dg), ("DataDigest", dg),
              ("MaxRecvDataSegmentLength", "65536"), ("ImmediateData", "Yes"),
              ("InitialR2T", "No"), ("MaxBurstLength", "262144"),
              ("FirstBurstLength", "65536")] + list(extra)
        if session_type == "Discovery":
            kv = kv[:3]
        d = keys(kv)
        h = bhs(0x43, 0x87, dsl=len(d), itt=self.itt,
                rest=struct.pack(">HHII", 0, 0, self.cmdsn, self.statsn))
        h = h[:8] + isid + b"\0\0" + h[16:]
        self.send(h + pad4(d))
        r = self.recv_pdu()
        if r is None:
            raise Fail("login: closed in the operational stage")
        expect("login status", (0, 0), (r[0][36], r[0][37]))
        expect("login final flags", 0x87, r[0][1])
        self.statsn = struct.unpack(">I", r[0][24:28])[0] + 1
        self.itt += 1
        if digests:
            ans = dict(kv.split("=", 1) for kv in r[1].decode().split("\0") if "=" in kv)
            expect("negotiated digests", ("CRC32C", "CRC32C"),
                   (ans.get("HeaderDigest"), ans.get("DataDigest")))
            self.hd = self.dd = True

    def scsi(self, cdb, edtl, read=True, data=b"", final=True):
        itt = self.itt
        self.itt += 1
        flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if data or not read and edtl else 0) | 1
        h = bhs(0x01, flags, dsl=len(data), itt=itt,
                rest=struct.pack(">III", edtl, self.cmdsn, self.statsn) + cdb.ljust(16, b"\0"))
        self.cmdsn += 1
        self.send_pdu(h, data)
        return itt

    def read10(self, lba, blocks, retry=True):
        itt = self.scsi(struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0), blocks * 512)
        got = b""
        while True:
            r = self.recv_pdu()
            if r is None:
                raise Fail("read10: connection closed")
            h, d = r
            expect("read10 ITT", itt, struct.unpack(">I", h[16:20])[0])
            if h[0] & 0x3F == 0x25:
                got += d
                if h[1] & 0x01:
                    expect("read10 status", 0, h[3])
                    return got
            elif h[0] & 0x3F == 0x21:
                if retry and h[3] == 2:
                    # A new nexus starts with a unit attention.
                    return self.read10(lba, blocks, False)
                raise Fail("read10: SCSI response status 0x%02x" % h[3])


def healthy():
    """A well-behaved session next to the hostile one still works."""
    if os.environ.get("CHAP"):
        c = chap_login(5, *os.environ["CHAP"].split(":"))
    else:
        c = Conn()
        c.login()
    d = c.read10(0, 8)
    expect("healthy read length", 4096, len(d))
    c.s.close()


def logged_in(src="127.0.0.1"):
    c = Conn(src)
    c.login()
    return c


def case_dsl_too_big():
    c = logged_in()
    c.send(bhs(0x40, 0x80, dsl=262144 + 4, itt=0x100, rest=struct.pack(">II", 0xFFFFFFFF, c.cmdsn)))
    expect("closed after DataSegmentLength above the maximum", True, c.closed_within(5))
    expect("reject reason", [0x04], c.rejects)


def case_huge_ahs_cmd():
    c = logged_in()
    h = bhs(0x01, 0xC1, ahs_words=255, dsl=0, itt=0x200,
            rest=struct.pack(">III", 512, c.cmdsn, c.statsn) + b"\x28".ljust(16, b"\0"))
    c.send(h + b"\x01" * 1020)
    r = c.recv_pdu(5)
    expect("answer to a SCSI command with 1020 bytes of AHS", 0x3F, r and r[0][0] & 0x3F)
    # The connection stays usable after the Reject.
    d = c.read10(0, 1)
    expect("read after the reject", 512, len(d))


def case_huge_ahs_nop():
    c = logged_in()
    h = bhs(0x40, 0x80, ahs_words=255, itt=0x300, rest=struct.pack(">II", 0xFFFFFFFF, c.cmdsn))
    c.send(h + b"\x02" * 1020)
    expect("closed after AHS on a NOP-Out", True, c.closed_within(5))


def case_truncated_login():
    c = Conn()
    c.send(bhs(0x43, 0x87)[:20])
    expect("closed after a truncated header (login timeout)", True, c.closed_within(8))


def case_truncated_ffp():
    c = logged_in()
    c.send(bhs(0x40, 0x80)[:20])
    # The target pings (NOP-In) and drops the silent peer.
    expect("closed after a truncated header then silence", True, c.closed_within(12))


def case_login_never_finishes():
    c = Conn()
    kv = keys([("InitiatorName", INITIATOR), ("SessionType", "Normal"),
               ("TargetName", TARGET), ("AuthMethod", "None")])
    # T=0: stays in the security stage forever.
    c.send(bhs(0x43, 0x01, dsl=len(kv), itt=1) + pad4(kv))
    r = c.recv_pdu(5)
    expect("first login answer", 0x23, r and r[0][0] & 0x3F)
    expect("closed when the login never finishes", True, c.closed_within(8))


def case_half_open_flood():
    conns = []
    refused = 0
    for _ in range(40):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", PORT))
        conns.append(s)
    time.sleep(0.5)
    for s in conns:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                refused += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            refused += 1
    if refused < 40 - 8:
        raise Fail("half-open flood: expected at least 32 of 40 refused (per-source limit 8), got %d"
                   % refused)
    healthy()
    for s in conns:
        s.close()


def case_wrong_opcode_login():
    c = Conn()
    c.send(bhs(0x01, 0x81, itt=5, rest=struct.pack(">III", 0, 1, 0)))
    expect("closed after a SCSI command during login", True, c.closed_within(5))


def case_wrong_opcode_ffp():
    c = logged_in()
    # A target opcode (SCSI Response) sent by the initiator.
    c.send(bhs(0x21, 0x80, itt=7))
    r = c.recv_pdu(5)
    expect("answer to opcode 0x21", 0x3F, r and r[0][0] & 0x3F)
    expect("reject reason", 0x05, r[0][2])
    c.send(bhs(0x43, 0x87, itt=8))
    expect("closed after a Login request in full feature phase", True, c.closed_within(5))


def case_wrong_opcode_discovery():
    c = Conn()
    c.login("Discovery")
    c.scsi(b"\x00", 0, read=False)
    r = c.recv_pdu(5)
    expect("answer to a SCSI command in a discovery session", 0x3F, r and r[0][0] & 0x3F)


def case_data_out_unknown_itt():
    c = logged_in()
    c.send(bhs(0x05, 0x80, dsl=512, itt=0xDEAD, rest=struct.pack(">II", 0xFFFFFFFF, 0)) + b"x" * 512)
    r = c.recv_pdu(5)
    expect("answer to Data-Out for an unknown ITT", 0x3F, r and r[0][0] & 0x3F)
    expect("reject reason", 0x09, r[0][2])


def case_cmdsn_far():
    c = logged_in()
    c.cmdsn += 0x40000000
    c.scsi(b"\x00", 0, read=False)
    expect("closed after a CmdSN far outside the window", True, c.closed_within(5))


def case_text_c_no_data():
    c = logged_in()
    c.send(bhs(0x44, 0x40, dsl=0, itt=9, rest=struct.pack(">III", 0xFFFFFFFF, c.cmdsn, c.statsn)))
    expect("closed after Text with C bit and no data", True, c.closed_within(5))


def case_data_digest_garbage():
    c = logged_in()
    # Garbage bytes that parse as an absurd header.
    c.send(b"\xff" * 48)
    expect("closed after a garbage header", True, c.closed_within(5))


def write_read(digests):
    c = Conn()
    c.login(digests=digests)
    c.read10(0, 1)  # takes the unit attention
    data = os.urandom(8192)
    # WRITE(10) 16 blocks: 4 KiB immediate, the rest unsolicited Data-Out.
    itt = c.scsi(struct.pack(">BBIBHB", 0x2A, 0, 100, 0, 16, 0), 8192, read=False,
                 data=data[:4096], final=False)
    c.send_pdu(bhs(0x05, 0x80, dsl=4096, itt=itt,
                   rest=struct.pack(">IIIIII", 0xFFFFFFFF, 0, c.statsn, 0, 0, 4096)),
               data[4096:])
    r = c.recv_pdu()
    expect("write response opcode", 0x21, r and r[0][0] & 0x3F)
    expect("write status", 0, r[0][3])
    expect("read back", data, c.read10(100, 16))
    if digests:
        # A corrupted data digest: Reject (reason 2) and the connection ends.
        itt = c.scsi(struct.pack(">BBIBHB", 0x2A, 0, 200, 0, 1, 0), 512, read=False,
                     data=b"", final=False)
        h = bhs(0x05, 0x80, dsl=512, itt=itt,
                rest=struct.pack(">IIIIII", 0xFFFFFFFF, 0, c.statsn, 0, 0, 0))
        c.send(h + crc32c(h) + data[:512] + b"\0\0\0\0")
        expect("closed after a data digest error", True, c.closed_within(5))


def case_write_read():
    write_read(False)


def case_digests():
    write_read(True)


def case_await_async():
    """Stay logged in until the target asks for a logout (11.9), then log out."""
    c = logged_in()
    end = time.time() + 15
    while time.time() < end:
        r = c.recv_pdu(1)
        if r and r[0][0] & 0x3F == 0x32:
            expect("AsyncEvent", 1, r[0][36])
            c.send(bhs(0x46, 0x80, itt=0x77, rest=struct.pack(">III", 0, c.cmdsn, c.statsn)))
            r = c.recv_pdu(5)
            expect("logout response", 0x26, r and r[0][0] & 0x3F)
            expect("logout response code", 0, r[0][2])
            expect("closed after logout", True, c.closed_within(5))
            return
    raise Fail("no Async Message (target requests logout) within 15 s")


def chap_login(alg, user, secret, tuser, tsecret, isid=None):
    """Log in with CHAP_A=ALG (5 MD5, 7 SHA-256), mutual when TUSER is set."""
    import hashlib
    h_of = {5: hashlib.md5, 7: hashlib.sha256}[alg]
    c = Conn()
    isid = isid or os.urandom(6)

    def step(flags, kv):
        d = keys(kv)
        h = bhs(0x43, flags, dsl=len(d), itt=1, rest=struct.pack(">HHII", 0, 0, 1, c.statsn))
        c.send(h[:8] + isid + b"\0\0" + h[16:] + pad4(d))
        r = c.recv_pdu()
        if r is None:
            raise Fail("CHAP login: connection closed")
        c.statsn = struct.unpack(">I", r[0][24:28])[0] + 1
        ans = dict(x.split("=", 1) for x in r[1].decode().split("\0") if "=" in x)
        return r[0], ans

    h, a = step(0x01, [("InitiatorName", INITIATOR), ("SessionType", "Normal"),
                       ("TargetName", TARGET), ("AuthMethod", "CHAP,None")])
    expect("AuthMethod answer", "CHAP", a.get("AuthMethod"))
    h, a = step(0x01, [("CHAP_A", "%d,5" % alg if alg != 5 else "5")])
    expect("CHAP_A answer", str(alg), a.get("CHAP_A"))
    cid = int(a["CHAP_I"])
    chal = bytes.fromhex(a["CHAP_C"][2:])
    resp = h_of(bytes([cid]) + secret.encode() + chal).hexdigest()
    kv = [("CHAP_N", user), ("CHAP_R", "0x" + resp)]
    mychal = os.urandom(len(chal))
    if tuser:
        kv += [("CHAP_I", "77"), ("CHAP_C", "0x" + mychal.hex())]
    h, a = step(0x81, kv)
    expect("CHAP login status", (0, 0), (h[36], h[37]))
    if tuser:
        expect("target CHAP_N", tuser, a.get("CHAP_N"))
        want = h_of(bytes([77]) + tsecret.encode() + mychal).hexdigest()
        expect("target CHAP_R", "0x" + want, a.get("CHAP_R"))
    h, a = step(0x87, [("MaxRecvDataSegmentLength", "65536"), ("ImmediateData", "Yes")])
    expect("CHAP login final status", (0x87, 0, 0), (h[1], h[36], h[37]))
    return c


def case_chap_sha256():
    u, p, tu, tp = os.environ["CHAP"].split(":")
    chap_login(7, u, p, tu, tp)
    chap_login(5, u, p, tu, tp)


def case_chap_reflect():
    """A mutual challenge that reflects ours is refused (RFC 7143 12.1.3)."""
    u, p, tu, tp = os.environ["CHAP"].split(":")
    c = Conn()
    isid = os.urandom(6)

    def send(flags, kv):
        d = keys(kv)
        h = bhs(0x43, flags, dsl=len(d), itt=1, rest=struct.pack(">HHII", 0, 0, 1, 0))
        c.send(h[:8] + isid + b"\0\0" + h[16:] + pad4(d))
        return c.recv_pdu()

    send(0x01, [("InitiatorName", INITIATOR), ("SessionType", "Normal"),
                ("TargetName", TARGET), ("AuthMethod", "CHAP")])
    r = send(0x01, [("CHAP_A", "5")])
    a = dict(x.split("=", 1) for x in r[1].decode().split("\0") if "=" in x)
    import hashlib
    resp = hashlib.md5(bytes([int(a["CHAP_I"])]) + p.encode() +
                       bytes.fromhex(a["CHAP_C"][2:])).hexdigest()
    r = send(0x81, [("CHAP_N", u), ("CHAP_R", "0x" + resp), ("CHAP_I", a["CHAP_I"]),
                    ("CHAP_C", a["CHAP_C"])])
    expect("status for a reflected challenge", (2, 1), r and (r[0][36], r[0][37]))


def case_reinstate():
    """A new login with the same ISID and TSIH 0 replaces the old session."""
    isid = os.urandom(6)
    old = Conn()
    old.login(isid=isid)
    new = Conn()
    new.login(isid=isid)
    expect("old connection closed by reinstatement", True, old.closed_within(5))
    new.read10(0, 1)


def case_queueing():
    """64 commands in flight, completed in any order; a CmdSN gap is held
    back until it fills (RFC 7143 4.2.2.1)."""
    c = logged_in()
    c.read10(0, 1)
    itts = set()
    for i in range(64):
        itts.add(c.scsi(struct.pack(">BBIBHB", 0x28, 0, i * 64, 0, 8, 0), 4096))
    got = set()
    while len(got) < 64:
        r = c.recv_pdu()
        if r is None:
            raise Fail("queueing: closed with %d of 64 answered" % len(got))
        if r[0][0] & 0x3F == 0x25 and r[0][1] & 1:
            got.add(struct.unpack(">I", r[0][16:20])[0])
    expect("answered ITTs", itts, got)
    # CmdSN n+1 first, then n: both run, in order.
    base = c.cmdsn
    c.cmdsn = base + 1
    late = c.scsi(b"\x00", 0, read=False)
    c.cmdsn = base
    first = c.scsi(b"\x00", 0, read=False)
    c.cmdsn = base + 2
    order = []
    for _ in range(2):
        r = c.recv_pdu()
        expect("response to a queued command", 0x21, r and r[0][0] & 0x3F)
        order.append(struct.unpack(">I", r[0][16:20])[0])
    expect("execution order across a CmdSN gap", [first, late], order)


def be32(b):
    return struct.unpack(">I", b)[0]


def write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


TUR = b"\x00"


def next_pdu(c, timeout=5):
    """The next PDU that is not a NOP-In ping, or None."""
    while True:
        r = c.recv_pdu(timeout)
        if r is None or r[0][0] & 0x3F != 0x20:
            return r


def tmf(c, fn, rtt=0xFFFFFFFF, ref=0):
    """An immediate Task Management Function request; returns its response code."""
    itt = c.itt
    c.itt += 1
    c.send_pdu(bhs(0x42, 0x80 | fn, itt=itt, rest=struct.pack(">IIII", rtt, c.cmdsn, c.statsn, ref)))
    r = next_pdu(c)
    expect("answer to task management function %d" % fn, (0x22, itt),
           r and (r[0][0] & 0x3F, be32(r[0][16:20])))
    return r[0][2]


def expect_responses(c, what, itts):
    """SCSI Responses for ITTS, in that order, and nothing else."""
    got = []
    for _ in itts:
        r = next_pdu(c)
        got.append(r and (r[0][0] & 0x3F, be32(r[0][16:20])))
    expect(what, [(0x21, i) for i in itts], got)


def case_reset_mid_data():
    """A reset from another session while this one is halfway through a data
    segment (immediate data, then a Data-Out under an R2T): the aborted write
    gets no answer, its late bytes are dropped, the session goes on
    (RFC 7143 11.5.1)."""
    a = logged_in()
    a.read10(0, 1)
    b = logged_in()
    b.itt = 0x100  # task tags unlike A's
    b.read10(0, 1)
    data = os.urandom(8192)
    itt = b.itt
    b.itt += 1
    b.send(bhs(0x01, 0xA1, dsl=8192, itt=itt,
               rest=struct.pack(">III", 8192, b.cmdsn, b.statsn) + write10(300, 16)) + data[:1024])
    b.cmdsn += 1
    time.sleep(0.3)
    expect("LUN RESET response", 0, tmf(a, 5))
    b.send(data[1024:])
    expect("read after a LUN RESET cut a write's immediate data", 512, len(b.read10(0, 1)))
    itt = b.scsi(write10(400, 16), 8192, read=False)
    r = next_pdu(b)
    expect("R2T for a write without immediate data", (0x31, itt), r and (r[0][0] & 0x3F, be32(r[0][16:20])))
    ttt = be32(r[0][20:24])
    b.send(bhs(0x05, 0x80, dsl=8192, itt=itt,
               rest=struct.pack(">IIIIII", ttt, 0, b.statsn, 0, 0, 0)) + data[:1024])
    time.sleep(0.3)
    expect("TARGET WARM RESET response", 0, tmf(a, 6))
    b.send(data[1024:])
    expect("read after a TARGET WARM RESET cut a Data-Out", 512, len(b.read10(0, 1)))
    # B's write waiting for data has the task tag of A's next LUN RESET:
    # it is aborted all the same, so its Data-Out finds no task.
    b.itt = a.itt
    itt = b.scsi(write10(500, 1), 512, read=False)
    r = next_pdu(b)
    expect("R2T for a write with A's task tag", (0x31, itt), r and (r[0][0] & 0x3F, be32(r[0][16:20])))
    expect("LUN RESET response", 0, tmf(a, 5))
    b.send_pdu(bhs(0x05, 0x80, dsl=512, itt=itt,
                   rest=struct.pack(">IIIIII", be32(r[0][20:24]), 0, b.statsn, 0, 0, 0)), data[:512])
    r = next_pdu(b)
    expect("answer to Data-Out for a write a reset aborted", (0x3F, 0x09), r and (r[0][0] & 0x3F, r[0][2]))
    # A reset, then the peer leaves halfway through the data segment: the
    # connection frees the task (an ASan build reports a leak otherwise).
    c = logged_in()
    c.itt = 0x200
    c.read10(0, 1)
    c.send(bhs(0x01, 0xA1, dsl=8192, itt=c.itt,
               rest=struct.pack(">III", 8192, c.cmdsn, c.statsn) + write10(600, 16)) + data[:1024])
    time.sleep(0.3)
    expect("LUN RESET response", 0, tmf(a, 5))
    c.s.close()
    expect("other session after the resets", 512, len(a.read10(0, 1)))


def case_abort_pending():
    """ABORT TASK of a command held back behind a CmdSN gap, of a command not
    yet received, and a NOP-Out ahead of the gap: each CmdSN still counts
    (RFC 7143 11.5.1, 4.2.2.1), so later commands run."""
    c = logged_in()
    c.read10(0, 1)
    base = c.cmdsn
    c.cmdsn = base + 1
    ahead = c.scsi(TUR, 0, read=False)
    expect("ABORT TASK of a held-back command", 0, tmf(c, 1, ahead, base + 1))
    c.cmdsn = base
    first = c.scsi(TUR, 0, read=False)
    c.cmdsn = base + 2
    after = c.scsi(TUR, 0, read=False)
    expect_responses(c, "commands around an aborted held-back CmdSN", [first, after])

    base = c.cmdsn
    c.cmdsn = base + 2
    expect("ABORT TASK of a command not yet received", 0, tmf(c, 1, 0x7777, base + 1))
    c.cmdsn = base
    first = c.scsi(TUR, 0, read=False)
    c.scsi(TUR, 0, read=False)
    after = c.scsi(TUR, 0, read=False)
    expect_responses(c, "commands around an aborted unseen CmdSN (the late one dropped)",
                     [first, after])

    base = c.cmdsn
    nitt = c.itt
    c.itt += 1
    c.send_pdu(bhs(0x00, 0x80, itt=nitt, rest=struct.pack(">III", 0xFFFFFFFF, base + 1, c.statsn)))
    r = c.recv_pdu(5)
    expect("NOP-In for a NOP-Out ahead of ExpCmdSN", (0x20, nitt), r and (r[0][0] & 0x3F, be32(r[0][16:20])))
    c.cmdsn = base
    first = c.scsi(TUR, 0, read=False)
    c.cmdsn = base + 2
    after = c.scsi(TUR, 0, read=False)
    expect_responses(c, "commands around a NOP-Out's CmdSN", [first, after])


def immediate_writes(c, n, lba=500):
    """N immediate WRITEs without data; returns (R2Ts, Reject reasons)."""
    for i in range(n):
        itt = c.itt
        c.itt += 1
        c.send_pdu(bhs(0x41, 0xA1, itt=itt,
                       rest=struct.pack(">III", 512, c.cmdsn, c.statsn) + write10(lba + i, 1)))
    r2ts, rejects = [], []
    while len(r2ts) + len(rejects) < n:
        r = next_pdu(c)
        if r is None:
            raise Fail("immediate writes: %d of %d answered" % (len(r2ts) + len(rejects), n))
        op = r[0][0] & 0x3F
        if op == 0x31:
            r2ts.append(r[0])
        elif op == 0x3F:
            rejects.append(r[0][2])
        else:
            raise Fail("immediate writes: expected R2T or Reject, got opcode 0x%02x" % op)
    return r2ts, rejects


def answer_r2ts(c, r2ts):
    for h in r2ts:
        c.send_pdu(bhs(0x05, 0x80, dsl=512, itt=be32(h[16:20]),
                       rest=struct.pack(">IIIIII", be32(h[20:24]), 0, c.statsn, 0, 0, 0)),
                   b"w" * 512)
    expect_responses(c, "writes completed by Data-Out", [be32(h[16:20]) for h in r2ts])


IMM_PER_SESSION = 128   # iscsi_testd's queue depth
IMM_TOTAL = 1024        # ISCSI_IMM_TOTAL_MAX


def case_imm_flood():
    """Immediate commands skip the CmdSN window (RFC 7143 4.2.2.1): at most a
    queue depth of them wait per session, the rest get Reject reason 6."""
    c = logged_in()
    c.read10(0, 1)
    r2ts, rejects = immediate_writes(c, 400)
    expect("immediate writes accepted", IMM_PER_SESSION, len(r2ts))
    expect("reject reasons for the rest", [6] * (400 - IMM_PER_SESSION), rejects)
    expect("read while the immediate writes wait", 512, len(c.read10(0, 1)))
    answer_r2ts(c, r2ts)
    r2ts, rejects = immediate_writes(c, 1)
    expect("an immediate write once the others completed", (1, []), (len(r2ts), rejects))
    answer_r2ts(c, r2ts)


def case_imm_total():
    """Immediate commands waiting in all sessions together are bounded too."""
    full = []
    for _ in range(IMM_TOTAL // IMM_PER_SESSION):
        c = logged_in()
        c.read10(0, 1)
        r2ts, rejects = immediate_writes(c, IMM_PER_SESSION)
        expect("immediate writes accepted under the total", IMM_PER_SESSION, len(r2ts))
        full.append(c)
    c = logged_in()
    c.read10(0, 1)
    r2ts, rejects = immediate_writes(c, 1)
    expect("an immediate write over the total", (0, [6]), (len(r2ts), rejects))
    full.pop().s.close()
    time.sleep(0.3)
    r2ts, rejects = immediate_writes(c, 1)
    expect("an immediate write once a full session ended", (1, []), (len(r2ts), rejects))
    answer_r2ts(c, r2ts)
    for f in full:
        f.s.close()
def login_status(kv, flags=0x87, c=None):
    """Send one login request with KV pairs; return (status, answer dict) or None if closed."""
    c = c or Conn()
    if not hasattr(c, "isid"):
        c.isid = os.urandom(6)
    d = keys(kv)
    h = bhs(0x43, flags, dsl=len(d), itt=1, rest=struct.pack(">HHII", 0, 0, 1, 0))
    c.send(h[:8] + c.isid + b"\0\0" + h[16:] + pad4(d))
    r = c.recv_pdu(5)
    if r is None:
        return None
    ans = dict(x.split("=", 1) for x in r[1].decode(errors="replace").split("\0") if "=" in x)
    return struct.unpack(">H", r[0][36:38])[0], ans


def case_bad_values():
    """S1: out-of-range or malformed declarations and repeated names fail
    the login with Initiator error (RFC 7143 6.2, 13.12)."""
    base = [("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET)]
    for v in ("-1", "16777216", "511", "+8192", "0x", "99999999999999999999", " 8192"):
        got = login_status(base + [("MaxRecvDataSegmentLength", v)])
        expect("status for MaxRecvDataSegmentLength=%s" % v, 0x0200, got and got[0])
    got = login_status(base + [("InitiatorName", INITIATOR + "x")])
    expect("status for InitiatorName sent twice", 0x0200, got and got[0])
    got = login_status([("InitiatorName", INITIATOR), ("TargetName", TARGET),
                        ("TargetName", TARGET), ("SessionType", "Normal")])
    expect("status for TargetName sent twice", 0x0200, got and got[0])
    # A negotiated key with a bad value is answered Reject; the login goes on.
    got = login_status(base + [("MaxBurstLength", "+65536"), ("InitialR2T", "yes")])
    expect("status for bad negotiated values", 0, got and got[0])
    expect("answers to bad negotiated values", ("Reject", "Reject"),
           (got[1].get("MaxBurstLength"), got[1].get("InitialR2T")))
    got = login_status(base + [("MaxRecvDataSegmentLength", "0x2000")])
    expect("status for MaxRecvDataSegmentLength=0x2000 (6.1 hex)", 0, got and got[0])


def text(c, body, itt):
    d = body.encode() + b"\0"
    c.send_pdu(bhs(0x44, 0x80, dsl=len(d), itt=itt,
                   rest=struct.pack(">IIII", 0xFFFFFFFF, c.cmdsn, c.statsn, 0)), d)
    return c.recv_pdu(5)


def case_sendtargets_all():
    """S2: SendTargets=All is refused in a normal session (Appendix C); the
    empty value and the session's own name still answer."""
    c = logged_in()
    r = text(c, "SendTargets=All", 0x501)
    expect("answer to SendTargets=All in a normal session (opcode, reason)", (0x3F, 0x04),
           r and (r[0][0] & 0x3F, r[0][2]))
    for itt, body in ((0x502, "SendTargets="), (0x503, "SendTargets=" + TARGET)):
        r = text(c, body, itt)
        expect("answer opcode to " + body, 0x24, r and r[0][0] & 0x3F)
        expect("TargetName answered to " + body, True, ("TargetName=" + TARGET).encode() in r[1])
    d = Conn()
    d.login("Discovery")
    r = text(d, "SendTargets=All", 0x504)
    expect("SendTargets=All in a discovery session lists the target", True,
           r is not None and ("TargetName=" + TARGET).encode() in r[1])


def case_bad_names():
    """S5: names with control characters or of no iSCSI type are refused
    (RFC 7143 4.2.7) before they reach the log."""
    forged = "FORGED-LOG-LINE login ok"
    for name in (INITIATOR + "\n" + forged, INITIATOR + "\r" + forged,
                 INITIATOR + "\x1b[2K" + forged, "not-an-iqn", "iqn.2026-13.x:y",
                 "iqn.2026-11.io.x:" + "a" * 210):
        got = login_status([("InitiatorName", name), ("SessionType", "Discovery")])
        expect("status for InitiatorName %r" % name[:40], 0x0200, got and got[0])
    got = login_status([("InitiatorName", INITIATOR), ("SessionType", "Normal"),
                        ("TargetName", TARGET + "\n" + forged)])
    expect("status for a TargetName with a newline", 0x0200, got and got[0])


def case_half_open_lockout():
    """S3: 64 silent connections from 127.0.0.1 (the per-source limit) do
    not lock out a login from the same address: the oldest silent ones give
    way, the newest stay."""
    conns = []
    for _ in range(64):
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", PORT))
        conns.append(s)
    time.sleep(0.3)
    t0 = time.time()
    try:
        c = Conn()
        c.login()
        c.read10(0, 1)
    except (Fail, OSError) as e:
        raise Fail("login next to 64 half-open connections: expected it to work, got %s" % e)
    expect("login next to 64 half-open connections took under 2 s", True, time.time() - t0 < 2)

    def closed(s):
        s.setblocking(False)
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
    expect("oldest half-open connection dropped", True, closed(conns[0]))
    expect("newest half-open connection kept", False, closed(conns[-1]))
    for s in conns:
        s.close()


def chap_guess(name, secret="not-the-secret", wait=True):
    """One CHAP login to TARGET as NAME; returns (seconds to the answer, status)."""
    u = os.environ["CHAP"].split(":")[0]
    c = Conn()
    got = login_status([("InitiatorName", name), ("SessionType", "Normal"),
                        ("TargetName", TARGET), ("AuthMethod", "CHAP")], 0x01, c)
    expect("AuthMethod answer", "CHAP", got and got[1].get("AuthMethod"))
    got = login_status([("CHAP_A", "5")], 0x01, c)
    import hashlib
    resp = hashlib.md5(bytes([int(got[1]["CHAP_I"])]) + secret.encode() +
                       bytes.fromhex(got[1]["CHAP_C"][2:])).hexdigest()
    if not wait:
        return c, resp
    t0 = time.time()
    got = login_status([("CHAP_N", u), ("CHAP_R", "0x" + resp)], 0x81, c)
    return time.time() - t0, got and got[0]


def case_chap_rotate_names():
    """S4: a new InitiatorName per wrong guess does not reset the slow-down
    of CHAP failures from one source."""
    times = []
    for i in range(4):
        dt, st = chap_guess("iqn.2026-11.io.overlaybd.test:rotate-%d-%d" % (os.getpid(), i))
        expect("status of wrong guess %d" % i, 0x0201, st)
        times.append(dt)
    if times[2] < 0.8 or times[3] < 1.6:
        raise Fail("wrong guesses under fresh names: expected the 3rd and 4th answers held "
                   "back >= 0.8 s and >= 1.6 s, got %s" % ["%.2f" % t for t in times])


def case_chap_parallel():
    """S4: at most 4 CHAP exchanges at once from one source to one target;
    the 5th is told to retry later (0x0301)."""
    held = [chap_guess(INITIATOR, wait=False)[0] for _ in range(4)]
    got = login_status([("InitiatorName", INITIATOR), ("SessionType", "Normal"),
                        ("TargetName", TARGET), ("AuthMethod", "CHAP")], 0x01)
    expect("status of a 5th CHAP exchange in parallel", 0x0301, got and got[0])
    for c in held:
        c.s.close()


def case_chap_reload():
    """Item 9: a reload that drops discoveryAuth (the shell command in
    RELOAD) while a discovery login sits between CHAP_A and CHAP_R: the
    login ends against the secrets it started with, the daemon lives on."""
    import hashlib
    import subprocess
    u, p = os.environ["CHAP"].split(":")[:2]
    c = Conn()
    got = login_status([("InitiatorName", INITIATOR), ("SessionType", "Discovery"),
                        ("AuthMethod", "CHAP")], 0x01, c)
    expect("AuthMethod answer", "CHAP", got and got[1].get("AuthMethod"))
    got = login_status([("CHAP_A", "5")], 0x01, c)
    expect("CHAP_A answer", "5", got and got[1].get("CHAP_A"))
    subprocess.run(["bash", "-c", os.environ["RELOAD"]], check=True)
    time.sleep(1)
    resp = hashlib.md5(bytes([int(got[1]["CHAP_I"])]) + p.encode() +
                       bytes.fromhex(got[1]["CHAP_C"][2:])).hexdigest()
    got = login_status([("CHAP_N", u), ("CHAP_R", "0x" + resp)], 0x81, c)
    expect("status of the CHAP answer after the reload", 0, got and got[0])
    d = Conn()
    d.login("Discovery")


def case_global_half_open():
    """S3 at the global limit (the target runs with maxConnections 8): 8
    silent connections from 8 addresses give way to a login, oldest first."""
    conns = []
    for i in range(8):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (i + 2), 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", PORT))
        conns.append(s)
        time.sleep(0.02)
    time.sleep(0.3)
    try:
        c = Conn()
        c.login()
        c.read10(0, 1)
    except (Fail, OSError) as e:
        raise Fail("login with maxConnections filled by silent peers: expected it to work, "
                   "got %s" % e)
    c.s.close()
    conns[0].setblocking(False)
    try:
        gone = conns[0].recv(1) == b""
    except BlockingIOError:
        gone = False
    except ConnectionResetError:
        gone = True
    expect("oldest silent connection dropped", True, gone)
    for s in conns:
        s.close()
    time.sleep(0.3)


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

rc = 0
for name in sys.argv[3:]:
    try:
        CASES[name]()
        if name != "await_async" and not os.environ.get("NO_HEALTHY"):
            healthy()
        print("ok", name)
    except Fail as e:
        print("FAIL %s: %s" % (name, e))
        rc = 1
    except OSError as e:
        print("FAIL %s: %s" % (name, e))
        rc = 1
sys.exit(rc)
