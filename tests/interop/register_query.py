#!/usr/bin/env python3
"""tests/interop/register_query.py - ask a registrar which bindings an AOR has (RFC 3261
section 10.2.3: a REGISTER without Contact), answering its digest challenge, and print each
Contact of the 200 on a line (nothing when there is no binding).

usage: register_query.py HOST PORT USER PASSWORD AOR_HOST [LOCAL_PORT]
  The AOR is sip:USER@AOR_HOST (AOR_HOST may carry a port). Of the challenges of the 401 the
  first whose algorithm it knows (MD5, SHA-256, SHA-512-256) is answered, as RFC 8760
  section 2.4 asks of a client; qop=auth when offered. LOCAL_PORT: the UDP port it sends
  from (default: any).
Exit 0 when the query got its 200, 1 otherwise (401 again, 403, no answer in 4 s). UDP,
loopback; used by scripts/interop-register.sh to see a client's binding while it is
registered and none after it un-registered.
"""
import hashlib
import os
import re
import socket
import sys

HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def challenges(msg):
    """Every Digest challenge of every WWW-Authenticate header, in order, as dicts."""
    out = []
    for line in msg.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() != "www-authenticate":
            continue
        for part in re.split(r"(?i)(?:^|,)\s*Digest\s+", value.strip()):
            if part.strip():
                out.append({k.lower(): v or w for k, v, w in
                            re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', part)})
    return out


def headers(msg, names):
    out = []
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        n, _, v = line.partition(":")
        if n.strip().lower() in names:
            out.append(v.strip())
    return out


def main():
    if len(sys.argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, user, password, aor_host = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(sys.argv[6]) if len(sys.argv) > 6 else 0))
    sock.settimeout(4)
    lport = sock.getsockname()[1]
    ruri = "sip:%s:%d" % (host, port)
    tag = os.urandom(6).hex()

    def exchange(cseq, auth):
        lines = ["REGISTER %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s-%d;rport" % (lport, tag, cseq),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s" % (user, aor_host, tag),
                 "To: <sip:%s@%s>" % (user, aor_host),
                 "Call-ID: query-%s@127.0.0.1" % tag,
                 "CSeq: %d REGISTER" % cseq]
        if auth:
            lines.append("Authorization: " + auth)
        lines += ["Content-Length: 0", "", ""]
        sock.sendto("\r\n".join(lines).encode(), (host, port))
        while True:
            msg = sock.recv(65535).decode("utf-8", "replace")
            if msg.startswith("SIP/2.0 ") and int(msg[8:11]) >= 200:
                return int(msg[8:11]), msg

    try:
        code, msg = exchange(1, None)
        if code == 401:
            known = [c for c in challenges(msg) if c.get("algorithm", "MD5").upper() in HASHES]
            if not known:
                print("register_query: no challenge with a known algorithm", file=sys.stderr)
                return 1
            c = known[0]
            alg = c.get("algorithm", "MD5").upper()
            h = lambda s: hashlib.new(HASHES[alg], s.encode()).hexdigest()  # noqa: E731
            ha1, ha2 = h("%s:%s:%s" % (user, c["realm"], password)), h("REGISTER:" + ruri)
            auth = 'Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s' % (
                user, c["realm"], c["nonce"], ruri, alg)
            if "auth" in [q.strip() for q in c.get("qop", "").split(",")]:
                cnonce = os.urandom(8).hex()
                auth += ', qop=auth, nc=00000001, cnonce="%s", response="%s"' % (
                    cnonce, h("%s:%s:00000001:%s:auth:%s" % (ha1, c["nonce"], cnonce, ha2)))
            else:
                auth += ', response="%s"' % h("%s:%s:%s" % (ha1, c["nonce"], ha2))
            if "opaque" in c:
                auth += ', opaque="%s"' % c["opaque"]
            code, msg = exchange(2, auth)
    except socket.timeout:
        print("register_query: no answer", file=sys.stderr)
        return 1
    if code != 200:
        print("register_query: " + msg.split("\r\n")[0], file=sys.stderr)
        return 1
    for contact in headers(msg, ("contact", "m")):
        print(contact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
