#!/usr/bin/env python3
"""tests/interop/register_contacts.py - register one AOR with several contacts at once (RFC 3261
section 10.2.1: one REGISTER, one Contact header value per binding), answering the registrar's
digest challenge when it sends one, and print each Contact of the 200 on a line.

usage: register_contacts.py HOST PORT AOR EXPIRES CONTACT... [--user USER --password PASSWORD]
                           [--route URI]
  AOR       e.g. sip:bob@example.test (To and From of the REGISTER; the Request-URI is
            sip:DOMAIN of the AOR, sent to HOST:PORT)
  EXPIRES   the Expires of the bindings (0 removes them)
  CONTACT   e.g. sip:bob@127.0.0.1:5621 (repeatable; each gets its own q-value when written
            as "sip:...;q=0.5" - it is copied as given inside <>)
  --route URI  a pre-loaded Route header (RFC 3261 8.1.2: a UA with an outbound proxy),
            e.g. sip:127.0.0.1:5600;lr
  --user/--password  credentials for a 401 (the first challenge whose algorithm this knows:
            MD5, SHA-256, SHA-512-256; qop=auth when offered)
Exit 0 when the REGISTER got its 200, 1 otherwise (a second 401, 403, no answer in 4 s).
UDP, loopback; scripts/interop-proxy.sh uses it to give one AOR two contacts (the fork check).
"""
import hashlib
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_query import HASHES, challenges, headers  # noqa: E402


def main():
    args = sys.argv[1:]
    user = password = route = None
    if "--user" in args:
        i = args.index("--user")
        user = args[i + 1]
        del args[i:i + 2]
    if "--route" in args:
        i = args.index("--route")
        route = args[i + 1]
        del args[i:i + 2]
    if "--password" in args:
        i = args.index("--password")
        password = args[i + 1]
        del args[i:i + 2]
    if len(args) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, aor, expires, contacts = args[0], int(args[1]), args[2], int(args[3]), args[4:]
    domain = aor.split("@", 1)[-1]
    ruri = "sip:" + domain
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(4)
    lport = sock.getsockname()[1]
    tag = os.urandom(6).hex()

    def exchange(cseq, auth):
        lines = ["REGISTER %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s-%d;rport" % (lport, tag, cseq),
                 "Max-Forwards: 70"]
        if route:
            lines.append("Route: <%s>" % route)
        lines += ["From: <%s>;tag=%s" % (aor, tag),
                 "To: <%s>" % aor,
                 "Call-ID: contacts-%s@127.0.0.1" % tag,
                 "CSeq: %d REGISTER" % cseq]
        lines += ["Contact: <%s>" % c for c in contacts]
        lines.append("Expires: %d" % expires)
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
        if code == 401 and user is not None:
            known = [c for c in challenges(msg) if c.get("algorithm", "MD5").upper() in HASHES]
            if not known:
                print("register_contacts: no challenge with a known algorithm", file=sys.stderr)
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
        print("register_contacts: no answer", file=sys.stderr)
        return 1
    if code != 200:
        print("register_contacts: " + msg.split("\r\n")[0], file=sys.stderr)
        return 1
    for contact in headers(msg, ("contact", "m")):
        print(contact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
