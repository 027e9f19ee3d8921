#!/usr/bin/env python3
"""A small stateless forking SIP relay over UDP, for scripts/interop-dialog.sh (the "fork" check).

    fork_relay.py --listen 127.0.0.1:15300 --fork 127.0.0.1:5070 --fork 127.0.0.1:5071
                  [--record-route] [--lifetime SECONDS] [--log FILE]

Written for this project's interop tests; loopback only (every address must be in 127.0.0.0/8),
bounded (it exits after --lifetime seconds, default 30), deterministic (no timers, no state but
the sockets; the same input gives the same output).

Requests (RFC 3261 16.11, a stateless proxy):
  * a Route naming the relay is removed first (loose routing, 16.4);
  * the next hop is the first remaining Route, else the Request-URI; when that is the relay
    itself (the caller's INVITE to sip:fork@RELAY), the request is copied to every --fork
    target: parallel forking. The relay never cancels a branch and never answers itself, so
    every UAS that answers 200 sends it through to the caller;
  * the relay adds its own Via on top, with a branch derived from the request's branch and the
    target (16.11: the same request always gets the same branch), fills rport/received into the
    Via below it when asked for (RFC 3581), decrements Max-Forwards, and with --record-route
    adds Record-Route: <sip:RELAY;lr> to requests that start a dialog (no To tag), so that
    in-dialog requests (ACK, BYE, re-INVITE) come back through it both ways.
Responses: the top Via must be the relay's; it is removed and the response goes to the address
of the next Via (received/rport when present, else its sent-by, port 5060 by default).
Anything else (a response whose top Via is not ours, unparsable data) is dropped and logged.
"""
import argparse
import hashlib
import ipaddress
import re
import select
import socket
import sys
import time

COMPACT = {"v": "via", "t": "to", "f": "from", "i": "call-id", "m": "contact", "l": "content-length"}


def addr(text):
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{text}: not a loopback address")
    return host, int(port)


class Message:
    """Start line, headers (name, value) in order, body; enough of RFC 3261 7 for a relay."""

    def __init__(self, data):
        head, sep, self.body = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("no end of headers")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:  # folded line
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"bad header line {line!r}")
            self.headers.append((name.strip(), value.strip()))
        self.is_request = not self.start.startswith("SIP/2.0 ")

    @staticmethod
    def key(name):
        n = name.lower()
        return COMPACT.get(n, n)

    def get(self, name):
        for n, v in self.headers:
            if self.key(n) == name:
                return v
        return None

    def index(self, name):
        for i, (n, _) in enumerate(self.headers):
            if self.key(n) == name:
                return i
        return None

    def top_value(self, name):
        """The first comma-separated value of the first header `name` (Via, Route)."""
        i = self.index(name)
        if i is None:
            return None, None
        return i, split_values(self.headers[i][1])

    def pop_top_value(self, name):
        i, values = self.top_value(name)
        if i is None:
            return None
        first = values.pop(0)
        if values:
            self.headers[i] = (self.headers[i][0], ", ".join(values))
        else:
            del self.headers[i]
        return first

    def encode(self):
        head = "\r\n".join([self.start] + [f"{n}: {v}" for n, v in self.headers])
        return head.encode() + b"\r\n\r\n" + self.body


def split_values(value):
    """Splits a header value at commas outside <...> and quotes."""
    out, cur, depth, quoted = [], "", 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def uri_hostport(uri):
    """(host, port) of a SIP URI, or of the URI inside <...>; port 5060 when absent."""
    m = re.search(r"<([^>]*)>", uri)
    if m:
        uri = m.group(1)
    m = re.match(r"sips?:(?:[^@;]*@)?(\[[^\]]+\]|[^:;?>]+)(?::(\d+))?", uri.strip())
    if not m:
        raise ValueError(f"not a SIP URI: {uri!r}")
    return m.group(1).strip("[]"), int(m.group(2) or 5060)


def via_params(via):
    sent_by = via.split(None, 1)[1] if " " in via else via
    parts = sent_by.split(";")
    host, _, port = parts[0].strip().rpartition(":")
    if not host:
        host, port = parts[0].strip(), ""
    params = {}
    for p in parts[1:]:
        k, _, v = p.strip().partition("=")
        params[k.lower()] = v
    return host.strip("[]"), int(port or 5060), params


class Relay:
    def __init__(self, listen, targets, record_route, log):
        self.listen, self.targets, self.record_route, self.log = listen, targets, record_route, log
        self.me = f"{listen[0]}:{listen[1]}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)

    def note(self, text):
        print(f"{time.monotonic():.3f} {text}", file=self.log, flush=True)

    def ours(self, hostport):
        return hostport == self.listen

    def send(self, msg, dest, why):
        if not ipaddress.ip_address(dest[0]).is_loopback:
            self.note(f"drop (not loopback: {dest}) {msg.start}")
            return
        self.sock.sendto(msg.encode(), dest)
        self.note(f"-> {dest[0]}:{dest[1]} {msg.start} ({why})")

    def handle(self, data, source):
        if not data.strip():
            return  # keep-alive
        try:
            msg = Message(data)
        except ValueError as e:
            self.note(f"drop from {source}: {e}")
            return
        self.note(f"<- {source[0]}:{source[1]} {msg.start}")
        try:
            (self.request if msg.is_request else self.response)(msg, source)
        except (ValueError, IndexError) as e:
            self.note(f"drop {msg.start}: {e}")

    def request(self, msg, source):
        method = msg.start.split(" ", 1)[0]
        # loose routing: our own Route goes (RFC 3261 16.4)
        i, routes = msg.top_value("route")
        if routes and self.ours(uri_hostport(routes[0])):
            msg.pop_top_value("route")
        mf = msg.index("max-forwards")
        if mf is not None:
            left = int(msg.headers[mf][1]) - 1
            if left < 0:
                self.note(f"drop {msg.start}: Max-Forwards 0")
                return
            msg.headers[mf] = (msg.headers[mf][0], str(left))
        # RFC 3581: the caller asked for rport
        vi, vias = msg.top_value("via")
        if vi is None:
            raise ValueError("no Via")
        host, port, params = via_params(vias[0])
        if "rport" in params and not params["rport"]:
            vias[0] = re.sub(r";rport(?=;|$)", f";rport={source[1]}", vias[0]) + f";received={source[0]}"
            msg.headers[vi] = (msg.headers[vi][0], ", ".join(vias))
        branch = params.get("branch", "") or f"{msg.get('call-id')}{msg.get('cseq')}"
        _, routes = msg.top_value("route")
        uri = msg.start.split(" ")[1]
        hop = uri_hostport(routes[0]) if routes else uri_hostport(uri)
        if self.ours(hop):
            dests = list(enumerate(self.targets))
            why = "fork"
        else:
            dests = [(0, hop)]
            why = "route" if routes else "request-URI"
        to = msg.get("to") or ""
        starts_dialog = ";tag=" not in to.replace(" ", "") and method not in ("ACK", "CANCEL")
        if self.record_route and starts_dialog and method == "INVITE":
            msg.headers.insert(0, ("Record-Route", f"<sip:{self.me};lr>"))
        for n, dest in dests:
            copy = Message(msg.encode())
            ours = "z9hG4bK" + hashlib.sha1(f"{branch}/{n}/{method == 'ACK'}".encode()).hexdigest()[:20]
            copy.headers.insert(0, ("Via", f"SIP/2.0/UDP {self.me};branch={ours}"))
            self.send(copy, dest, why)

    def response(self, msg, source):
        top = msg.pop_top_value("via")
        if top is None:
            raise ValueError("no Via")
        host, port, _ = via_params(top)
        if not self.ours((host, port)):
            self.note(f"drop {msg.start}: top Via {top!r} is not ours")
            return
        _, vias = msg.top_value("via")
        if not vias:
            self.note(f"drop {msg.start}: no Via left")
            return
        host, port, params = via_params(vias[0])
        dest = (params.get("received") or host, int(params.get("rport") or port))
        self.send(msg, dest, "response")

    def run(self, lifetime):
        end = time.monotonic() + lifetime
        self.note(f"listening on {self.me}, forking to {self.targets}, record-route {self.record_route}")
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if ready:
                data, source = self.sock.recvfrom(65535)
                self.handle(data, source)
        self.note("lifetime over")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=addr, required=True, help="HOST:PORT on 127.0.0.0/8")
    p.add_argument("--fork", type=addr, action="append", required=True, help="a UAS, repeatable")
    p.add_argument("--record-route", action="store_true")
    p.add_argument("--lifetime", type=float, default=30.0, help="seconds before it exits (30)")
    p.add_argument("--log", type=argparse.FileType("a"), default=sys.stderr)
    a = p.parse_args()
    Relay(a.listen, a.fork, a.record_route, a.log).run(a.lifetime)


if __name__ == "__main__":
    main()
