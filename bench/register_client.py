#!/usr/bin/env python3
"""bench/register_client.py - authenticated REGISTERs at a fixed rate over UDP, for
bench/register-load.sh when SIPp cannot answer a server's challenge.

SIPp 3.6.1 answers only the first WWW-Authenticate of a 401 and only with MD5; a registrar
that offers SHA-256 first (RFC 8760 section 2.4, as sipd does) gets "createAuthHeader:
authentication must use MD5 or AKAv1-MD5" from it. This client does what the SIPp scenario
bench/sipp/register_auth_uac.xml does (REGISTER -> 401 -> REGISTER with Authorization ->
200; same AOR, Contact and Expires each time, a new Call-ID per registration) but picks,
among the challenges of the 401, the first whose algorithm is ALGORITHM (default MD5, the
one Kamailio offers, so both servers check the same digest).

usage: register_client.py HOST PORT RATE COUNT USER PASSWORD [ALGORITHM [TICK_MS]]
New registrations start in batches, every TICK_MS milliseconds (default 10, how SIPp paces
its calls: a server then reads several datagrams per wake-up; TICK_MS=1 spreads them out,
which costs a server more CPU per registration).
Prints one line: "ok=N failed=N challenged=N retransmissions=N wall_s=S"; exit 0 when every
registration got its 200. Loopback only; bounded: a registration unanswered for 8 s fails
(after retransmissions at 0.5, 1, 2 and 4 s), and the run ends 10 s after the last one
started.
"""
import hashlib
import os
import re
import select
import socket
import sys
import time

HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def h(alg, text):
    return hashlib.new(HASHES[alg], text.encode()).hexdigest()


def challenges(msg):
    """Every Digest challenge of every WWW-Authenticate header, in order, as dicts."""
    out = []
    for line in msg.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() != "www-authenticate":
            continue
        for part in re.split(r"(?i)(?:^|,)\s*Digest\s+", value.strip()):
            if not part.strip():
                continue
            params = dict(
                (k.lower(), v if v else w)
                for k, v, w in re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', part)
            )
            out.append(params)
    return out


def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        n, _, v = line.partition(":")
        if n.strip().lower() == name:
            return v.strip()
    return ""


def main():
    if len(sys.argv) < 7:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, rate, count = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    user, password = sys.argv[5], sys.argv[6]
    want = sys.argv[7] if len(sys.argv) > 7 else "MD5"
    tick = (float(sys.argv[8]) if len(sys.argv) > 8 else 10.0) / 1000
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    lport = sock.getsockname()[1]
    dest = (host, port)
    ruri = "sip:%s:%d" % (host, port)
    tag = os.urandom(4).hex()

    def request(i, cseq, auth):
        branch = "z9hG4bK-%s-%d-%d" % (tag, i, cseq)
        lines = [
            "REGISTER %s SIP/2.0" % ruri,
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (lport, branch),
            "Max-Forwards: 70",
            "From: <sip:%s@%s>;tag=%s%d" % (user, host, tag, i),
            "To: <sip:%s@%s>" % (user, host),
            "Call-ID: %d-%s@127.0.0.1" % (i, tag),
            "CSeq: %d REGISTER" % cseq,
            "Contact: <sip:%s@127.0.0.1:%d;transport=UDP>" % (user, lport),
        ]
        if auth:
            lines.append("Authorization: " + auth)
        lines += ["Expires: 3600", "User-Agent: register_client.py", "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    # per registration: [sent bytes, cseq, next retransmission time, interval, started]
    pending = {}
    ok = failed = challenged = retrans = 0
    start = time.monotonic()
    started = 0
    deadline = None
    while True:
        now = time.monotonic()
        due = int((now - start) // tick + 1) * tick  # starts of the current tick are all due
        while started < count and due > started / rate:
            data = request(started, 1, None)
            sock.sendto(data, dest)
            pending[started] = [data, 1, now + 0.5, 0.5, now]
            started += 1
        if started == count and deadline is None:
            deadline = now + 10
        if not pending and started == count:
            break
        if deadline is not None and now > deadline:
            break
        next_send = start + (int((now - start) // tick) + 1) * tick if started < count else now + 0.05
        timeout = max(0.0, min(next_send - now, 0.05))
        r, _, _ = select.select([sock], [], [], timeout)
        if r:
            for _ in range(64):
                try:
                    msg = sock.recv(65535, socket.MSG_DONTWAIT).decode("utf-8", "replace")
                except BlockingIOError:
                    break
                if not msg.startswith("SIP/2.0 "):
                    continue
                code = int(msg[8:11])
                callid = header(msg, "call-id") or header(msg, "i")
                cseq = header(msg, "cseq").split()
                try:
                    i = int(callid.split("-", 1)[0])
                except ValueError:
                    continue
                p = pending.get(i)
                if p is None or not cseq or int(cseq[0]) != p[1] or code < 200:
                    continue
                if code == 401 and p[1] == 1:
                    ch = [c for c in challenges(msg) if c.get("algorithm", "MD5").upper() == want]
                    if not ch:
                        failed += 1
                        del pending[i]
                        continue
                    c = ch[0]
                    challenged += 1
                    alg = want
                    ha1 = h(alg, "%s:%s:%s" % (user, c["realm"], password))
                    ha2 = h(alg, "REGISTER:%s" % ruri)
                    qops = [q.strip() for q in c.get("qop", "").split(",") if q.strip()]
                    if "auth" in qops:
                        cnonce = os.urandom(8).hex()
                        resp = h(alg, "%s:%s:00000001:%s:auth:%s" % (ha1, c["nonce"], cnonce, ha2))
                        auth = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                                'algorithm=%s, qop=auth, nc=00000001, cnonce="%s"'
                                % (user, c["realm"], c["nonce"], ruri, resp, alg, cnonce))
                    else:
                        resp = h(alg, "%s:%s:%s" % (ha1, c["nonce"], ha2))
                        auth = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                                'algorithm=%s' % (user, c["realm"], c["nonce"], ruri, resp, alg))
                    if "opaque" in c:
                        auth += ', opaque="%s"' % c["opaque"]
                    data = request(i, 2, auth)
                    sock.sendto(data, dest)
                    pending[i] = [data, 2, now + 0.5, 0.5, p[4]]
                elif code == 200 and p[1] == 2:
                    ok += 1
                    del pending[i]
                else:
                    failed += 1
                    del pending[i]
        now = time.monotonic()
        for i, p in list(pending.items()):
            if now - p[4] > 8:
                failed += 1
                del pending[i]
            elif now >= p[2]:
                sock.sendto(p[0], dest)
                retrans += 1
                p[3] = min(p[3] * 2, 4.0)
                p[2] = now + p[3]
    failed += len(pending) + (count - started)
    print("ok=%d failed=%d challenged=%d retransmissions=%d wall_s=%.2f"
          % (ok, failed, challenged, retrans, time.monotonic() - start))
    return 0 if ok == count else 1


if __name__ == "__main__":
    sys.exit(main())
