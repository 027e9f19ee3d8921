#!/usr/bin/env python3
"""Attack clients for bench/adversarial.sh (issue 9): one subcommand per attack.

Each subcommand talks to a running sipd on 127.0.0.1, bounds its own duration, reads sipd's
memory and CPU from /proc/PID, and prints one line: the attack's name and its figures.
Standard library only; loopback only. Client sockets are bound to chosen 127.x.y.z source
addresses (Linux accepts any address of 127.0.0.0/8) so that one run can look like many peers.
Sockets are closed with SO_LINGER 0 (a reset), so runs leave no TIME_WAIT behind.
"""

import argparse
import multiprocessing
import os
import select
import selectors
import socket
import struct
import sys
import threading
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- sipd's memory and CPU ------------------------------------------------------------------

def status_kb(pid, field):
    """VmRSS, VmHWM, ... of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mem(pid):
    return status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")


def cpu_seconds(pid):
    """utime + stime of the process (all threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def settle(pid, most=20.0):
    """Waits until sipd has stopped spending CPU (it has read what the kernel buffered for
    it), at most `most` seconds."""
    end = time.monotonic() + most
    last = cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


def mb(kb):
    return f"{kb / 1024:.0f} MB"


# --- sockets --------------------------------------------------------------------------------

def sources(prefix, count):
    """`count` distinct source addresses under 127.`prefix`.0.0/16."""
    return [f"127.{prefix}.{i // 250}.{i % 250 + 1}" for i in range(count)]


def tcp_connect(source, port, timeout=2.0):
    """A TCP connection from `source` (port chosen by the kernel) to 127.0.0.1:`port`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((source, 0))
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def is_open(s):
    """Has the peer left this connection open (no FIN, no reset)? Data waiting counts as open."""
    p = select.poll()
    p.register(s, select.POLLIN)
    if not p.poll(0):
        return True
    s.setblocking(False)
    try:
        return len(s.recv(1, socket.MSG_PEEK)) > 0
    except BlockingIOError:
        return True
    except OSError:
        return False


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def padding_headers(size, line=250):
    """Header lines ("X-Pad-N: aaa...\\r\\n") of `line` bytes each, about `size` bytes in all:
    under the parser's limits on line length (16,384) and header count (256)."""
    out = []
    n = 0
    total = 0
    while total + line <= size:
        name = f"X-Pad-{n}: ".encode()
        out.append(name + b"a" * (line - len(name) - 2) + b"\r\n")
        total += line
        n += 1
    return b"".join(out)


def request(method, port, source, sport, transport, n, body=b"", ctype=None, extra=b"",
            via_extra=""):
    """A SIP request from `source`:`sport` to sipd on 127.0.0.1:`port`."""
    head = (
        f"{method} sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {source}:{sport};branch=z9hG4bK-adv-{n}{via_extra}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@{source}>;tag=adv{n}\r\n"
        f"To: <sip:bob@127.0.0.1:{port}>\r\n"
        f"Call-ID: adv-{n}@{source}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:alice@{source}:{sport};transport={transport.lower()}>\r\n"
    ).encode() + extra
    if ctype:
        head += f"Content-Type: {ctype}\r\n".encode()
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    return head + body


class Framer:
    """Splits a received byte stream into SIP messages (Content-Length framing)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip() or 0)
            total = end + 4 + length
            if len(self.buf) < total:
                return out
            out.append(head)
            self.buf = self.buf[total:]


def status_of(head):
    """The status code of a response head, or None for a request."""
    first = head.split(b"\r\n", 1)[0]
    if first.startswith(b"SIP/2.0 "):
        return int(first[8:11])
    return None


def has_header(head, name):
    name = name.lower()
    return any(line.lower().startswith(name + b":") for line in head.split(b"\r\n")[1:])


# --- 1. partial headers ---------------------------------------------------------------------

def open_partial(port, srcs, per_source, count, size, deadline):
    """Opens `count` connections, per_source from each source, and sends `size` bytes of an
    unfinished header on each. Returns (connections still open, connections refused or closed while
    connecting or sending)."""
    head = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    partial = head + padding_headers(size - len(head))
    socks = []
    lost = 0
    for src in srcs:
        for _ in range(per_source):
            if time.monotonic() > deadline or len(socks) + lost >= count:
                return socks, lost
            try:
                s = tcp_connect(src, port)
                s.settimeout(5.0)
                s.sendall(partial)
                socks.append(s)
            except OSError:
                lost += 1
    return socks, lost


def cmd_partial(a):
    rss0, _ = mem(a.pid)
    start = time.monotonic()
    per = a.per_source
    nsrc = (a.conns + per - 1) // per
    socks, lost = open_partial(a.port, sources(a.prefix, nsrc), per, a.conns, a.bytes,
                               start + a.max_seconds)
    took = time.monotonic() - start
    settle(a.pid)
    rss1, hwm = mem(a.pid)
    kept = sum(1 for s in socks if is_open(s))
    attempted = len(socks) + lost
    close_all(socks)
    print(f"partial-headers: {attempted} connections x {a.bytes} B from {nsrc} sources "
          f"in {took:.1f}s: open at the end {kept}, closed/refused {attempted - kept}; "
          f"RSS {mb(rss0)} -> {mb(rss1)}, peak (VmHWM) {mb(hwm)}")
    if a.single:
        time.sleep(1.0)
        start = time.monotonic()
        socks, lost = open_partial(a.port, [f"127.{a.prefix + 1}.0.1"], a.single, a.single,
                                   a.bytes,
                                   start + a.max_seconds)
        settle(a.pid)
        kept = sum(1 for s in socks if is_open(s))
        rss2, hwm2 = mem(a.pid)
        close_all(socks)
        print(f"partial-headers-one-source: {len(socks) + lost} connections x {a.bytes} B "
              f"from one source: open at the end {kept}; RSS {mb(rss2)}, peak {mb(hwm2)}")


# --- 2. idle connections --------------------------------------------------------------------

def cmd_idle(a):
    rss0, _ = mem(a.pid)
    per = a.per_source
    nsrc = (a.conns + per - 1) // per
    socks = []
    failed = 0
    start = time.monotonic()
    for src in sources(a.prefix, nsrc):
        for _ in range(per):
            if len(socks) + failed >= a.conns or time.monotonic() - start > a.max_seconds:
                break
            try:
                socks.append(tcp_connect(src, a.port))
            except OSError:
                failed += 1
    took = time.monotonic() - start
    settle(a.pid)
    rss1, hwm = mem(a.pid)
    kept = sum(1 for s in socks if is_open(s))
    close_all(socks)
    print(f"idle-connections: {len(socks) + failed} connections from {nsrc} sources in "
          f"{took:.1f}s: open at the end {kept}, closed/refused {len(socks) + failed - kept}; "
          f"RSS {mb(rss0)} -> {mb(rss1)}, peak {mb(hwm)}, "
          f"{(rss1 - rss0) * 1024 / max(kept, 1):.0f} B per open connection")


# --- 3. ringing INVITEs with large bodies ---------------------------------------------------

def cmd_invites(a):
    rss0, _ = mem(a.pid)
    body = b"v=0\r\n" + b"a=x-pad:" + b"p" * (a.body - 18) + b"\r\n" + b"s=-\r\n"
    body = body[:a.body]
    srcs = sources(a.prefix, a.conns)
    counts = {"100": 0, "180": 0, "503": 0, "503ra": 0, "other": 0}
    lock = threading.Lock()
    sent = [0]
    connections = [0]
    closed = [0]
    socks = []
    stop = threading.Event()

    def reader(s):
        fr = Framer()
        while not stop.is_set():
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            for head in fr.feed(data):
                code = status_of(head)
                with lock:
                    if code == 100:
                        counts["100"] += 1
                    elif code == 180:
                        counts["180"] += 1
                    elif code == 503:
                        counts["503"] += 1
                        if has_header(head, b"retry-after"):
                            counts["503ra"] += 1
                    else:
                        counts["other"] += 1

    def writer(i, src):
        # INVITEs i, i + conns, i + 2*conns, ... pipelined; a new connection when sipd
        # closes this one
        n = i
        while n < a.count and not stop.is_set():
            try:
                s = tcp_connect(src, a.port)
            except OSError:
                time.sleep(0.1)
                continue
            s.settimeout(0.5)
            with lock:
                connections[0] += 1
                socks.append(s)
            threading.Thread(target=reader, args=(s,), daemon=True).start()
            sport = s.getsockname()[1]
            while n < a.count and not stop.is_set():
                msg = request("INVITE", a.port, src, sport, "TCP", n, body=body,
                              ctype="application/sdp")
                try:
                    s.sendall(msg)
                except socket.timeout:
                    continue  # sipd is not reading; try again unless told to stop
                except OSError:
                    with lock:
                        closed[0] += 1
                    break
                with lock:
                    sent[0] += 1
                n += a.conns

    start = time.monotonic()
    for i, src in enumerate(srcs):
        threading.Thread(target=writer, args=(i, src), daemon=True).start()
    # Every INVITE gets a 180 (a transaction) or a 503 (none), unless its connection is
    # closed first: wait for all of them, within the ring time so that the held INVITEs are
    # all still pending.
    while time.monotonic() - start < a.max_seconds:
        time.sleep(0.5)
        with lock:
            if counts["180"] + counts["503"] + counts["other"] >= a.count:
                break
    took = time.monotonic() - start
    rss1, hwm = mem(a.pid)
    stop.set()
    with lock:
        c = dict(counts)
        nsent, nconn, nclosed = sent[0], connections[0], closed[0]
        close_all(socks)
    print(f"ringing-invites: {nsent} of {a.count} INVITEs x {len(body)} B body sent over "
          f"{nconn} TCP connections ({a.conns} at a time; {nclosed} closed by sipd) in "
          f"{took:.1f}s: 180 {c['180']}, 503 {c['503']} ({c['503ra']} with Retry-After), "
          f"other {c['other']}, no answer {nsent - c['180'] - c['503'] - c['other']}; "
          f"RSS {mb(rss0)} -> {mb(rss1)}, peak {mb(hwm)}")


# --- 4. TCP lockout -------------------------------------------------------------------------

def probe_loop(port, source, duration, every, timeout, out):
    """A new client: OPTIONS over a new TCP connection every `every` seconds."""
    asked = answered = 0
    end = time.monotonic() + duration
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        asked += 1
        n += 1
        try:
            s = tcp_connect(source, port, timeout)
            s.settimeout(timeout)
            sport = s.getsockname()[1]
            s.sendall(request("OPTIONS", port, source, sport, "TCP", 900000 + n))
            fr = Framer()
            got = False
            while not got and time.monotonic() - t0 < timeout:
                data = s.recv(65536)
                if not data:
                    break
                got = any(status_of(h) == 200 for h in fr.feed(data))
            answered += got
            s.close()
        except OSError:
            pass
        time.sleep(max(0.0, every - (time.monotonic() - t0)))
    out.put((asked, answered))


def cmd_lockout(a):
    out = multiprocessing.Queue()
    sel = selectors.DefaultSelector()
    srcs = sources(a.prefix, a.sources)
    targets = {src: a.per_source for src in srcs}
    open_by_src = {src: 0 for src in srcs}
    dribble = b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" * 1000
    at = {}  # socket -> next byte offset
    opened = 0
    closed_by_peer = 0

    def refill(deadline):
        """Opens connections up to the targets, until `deadline`."""
        nonlocal opened
        for src in srcs:
            while open_by_src[src] < targets[src] and time.monotonic() < deadline:
                try:
                    s = tcp_connect(src, a.port, 0.5)
                except OSError:
                    break
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, src)
                at[s] = 0
                open_by_src[src] += 1
                opened += 1

    def drop(s, src):
        sel.unregister(s)
        del at[s]
        open_by_src[src] -= 1
        s.close()

    start = time.monotonic()
    refill(start + 30.0)
    print(f"# lockout: attacker holds {sum(open_by_src.values())} connections "
          f"after {time.monotonic() - start:.1f}s", file=sys.stderr)
    time.sleep(1.0)
    probe = multiprocessing.Process(
        target=probe_loop,
        args=(a.port, f"127.{a.prefix + 1}.0.1", a.duration, a.probe_every, 2.0, out))
    probe.start()
    end = time.monotonic() + a.duration
    held = []
    while time.monotonic() < end:
        tick = time.monotonic()
        # closed by sipd?
        for key, _ in sel.select(timeout=0):
            s = key.fileobj
            try:
                data = s.recv(4096)
                if data:
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            closed_by_peer += 1
            drop(s, key.data)
        # one byte on every connection
        for key in list(sel.get_map().values()):
            s = key.fileobj
            try:
                s.send(dribble[at[s]:at[s] + 1])
                at[s] += 1
            except BlockingIOError:
                pass
            except OSError:
                closed_by_peer += 1
                drop(s, key.data)
        held.append(sum(open_by_src.values()))
        # open new ones in place of the closed ones, as many as can be opened in a second
        refill(tick + 1.0)
        time.sleep(max(0.0, a.dribble_every - (time.monotonic() - tick)))
    probe.join(timeout=10)
    asked, answered = out.get(timeout=5) if probe.exitcode == 0 else (0, 0)
    rss, hwm = mem(a.pid)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(f"tcp-lockout: attacker {a.sources} source(s) x {a.per_source} wanted, one byte "
          f"every {a.dribble_every:g}s: opened {opened}, closed by sipd {closed_by_peer}, "
          f"held {min(held) if held else 0}-{max(held) if held else 0}; "
          f"probes from a new source answered {answered} of {asked} over {a.duration:g}s; "
          f"RSS {mb(rss)}, peak {mb(hwm)}")


# --- 5. reflection --------------------------------------------------------------------------

def cmd_reflect(a):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sport = sender.getsockname()[1]
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.mode == "maddr":
        # sent-by is the sender itself; maddr names another address (RFC 3261 18.2.2: the
        # response goes to maddr, at the sent-by port)
        victim_addr = (a.victim, sport)
        via_host, via_port, via_extra = "127.0.0.1", sport, f";maddr={a.victim}"
    else:
        # sent-by names another port and there is no rport (18.2.2: the response goes to
        # the source address, `received`, at the sent-by port)
        victim_addr = ("127.0.0.1", a.victim_port)
        via_host, via_port, via_extra = "127.0.0.1", a.victim_port, ""
    victim.bind(victim_addr)
    msg = request("INVITE", a.port, via_host, via_port, "UDP", int(time.time()) % 100000,
                  body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                       b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
                  ctype="application/sdp", via_extra=via_extra)
    sender.sendto(msg, ("127.0.0.1", a.port))
    sel = selectors.DefaultSelector()
    sel.register(victim, selectors.EVENT_READ, "victim")
    sel.register(sender, selectors.EVENT_READ, "source")
    got = {"victim": [0, 0], "source": [0, 0]}
    codes = {"victim": [], "source": []}
    start = last = time.monotonic()
    while time.monotonic() - last < a.quiet and time.monotonic() - start < a.max_seconds:
        for key, _ in sel.select(timeout=0.5):
            data, _ = key.fileobj.recvfrom(65536)
            got[key.data][0] += 1
            got[key.data][1] += len(data)
            codes[key.data].append(status_of(data.split(b"\r\n\r\n", 1)[0]))
            last = time.monotonic()
    took = time.monotonic() - start
    v, s = got["victim"], got["source"]
    print(f"reflection-{a.mode}: one INVITE of {len(msg)} B over UDP, Via "
          f"{via_host}:{via_port}{via_extra}, no rport: to {victim_addr[0]}:{victim_addr[1]} "
          f"{v[0]} datagrams {v[1]} B ({v[1] / len(msg):.1f}x) {codes['victim']}; "
          f"to the source 127.0.0.1:{sport} {s[0]} datagrams {s[1]} B ({s[1] / len(msg):.1f}x) "
          f"{codes['source']}; watched {took:.0f}s")


# --- 6. dribbled message --------------------------------------------------------------------

def cmd_dribble(a):
    src = f"127.{a.prefix}.0.1"
    s = tcp_connect(src, a.port)
    sport = s.getsockname()[1]
    probe = request("MESSAGE", a.port, src, sport, "TCP", 1, body=b"", ctype="text/plain")
    body = b"x" * (a.size - len(probe))
    msg = request("MESSAGE", a.port, src, sport, "TCP", 1, body=body, ctype="text/plain")
    body = body[:len(body) - (len(msg) - a.size)]
    msg = request("MESSAGE", a.port, src, sport, "TCP", 1, body=body, ctype="text/plain")
    cpu0 = cpu_seconds(a.pid)
    t0 = time.monotonic()
    pace = a.pace_us / 1e6
    for i in range(len(msg)):
        s.send(msg[i:i + 1])
        if pace:
            time.sleep(pace)
    s.settimeout(10.0)
    fr = Framer()
    code = None
    try:
        while code is None:
            data = s.recv(65536)
            if not data:
                break
            for h in fr.feed(data):
                code = status_of(h)
    except OSError:
        pass
    took = time.monotonic() - t0
    cpu1 = cpu_seconds(a.pid)
    s.close()
    how = f", {a.pace_us} us apart" if a.pace_us else ""
    print(f"dribble: {len(msg)} B MESSAGE over TCP, one byte per send() (TCP_NODELAY{how}) in "
          f"{took:.1f}s: answer {code}; sipd CPU {cpu1 - cpu0:.2f}s")


# --- 7. a peer that does not read its responses ---------------------------------------------

def cmd_noread(a):
    """Requests whose responses are large (the Vias are copied into them, RFC 3261 8.2.6.2),
    sent by peers that never read: what do sipd's write queues hold?"""
    rss0, _ = mem(a.pid)
    per = a.per_source
    nsrc = (a.conns + per - 1) // per
    big = ";x-pad=" + "v" * (a.via_bytes // 4 - 80)
    socks = []
    sent = failed = 0
    start = time.monotonic()
    for src in sources(a.prefix, nsrc):
        for _ in range(per):
            if len(socks) + failed >= a.conns or time.monotonic() - start > a.max_seconds:
                break
            try:
                s = tcp_connect(src, a.port)
            except OSError:
                failed += 1
                continue
            socks.append(s)
            s.settimeout(5.0)
            sport = s.getsockname()[1]
            vias = "".join(f"Via: SIP/2.0/TCP {src}:{sport};branch=z9hG4bK-pad{i}{big}\r\n"
                           for i in range(3)).encode()
            for n in range(a.requests):
                try:
                    s.sendall(request("OPTIONS", a.port, src, sport, "TCP",
                                      len(socks) * 100000 + n, extra=vias))
                    sent += 1
                except OSError:
                    break
    took = time.monotonic() - start
    settle(a.pid)
    rss1, hwm = mem(a.pid)
    kept = sum(1 for s in socks if is_open(s))
    close_all(socks)
    size = len(request("OPTIONS", a.port, "127.0.0.1", 5060, "TCP", 1, extra=vias))
    print(f"no-reader: {len(socks) + failed} connections that never read, {sent} OPTIONS of "
          f"{size} B (4 Vias) in {took:.1f}s: open at the end {kept}; "
          f"RSS {mb(rss0)} -> {mb(rss1)}, peak {mb(hwm)}")


# --- 8. connections that come and go --------------------------------------------------------

def cmd_churn(a):
    """Connections opened and closed in rounds: does sipd give back what each one took?"""
    rss = [mem(a.pid)[0]]
    srcs = sources(a.prefix, (a.per_round + 49) // 50)
    for _ in range(a.rounds):
        socks = []
        for src in srcs:
            for _ in range(50):
                if len(socks) < a.per_round:
                    try:
                        socks.append(tcp_connect(src, a.port))
                    except OSError:
                        pass
        settle(a.pid)
        close_all(socks)
        settle(a.pid)
        rss.append(mem(a.pid)[0])
    print(f"churn: {a.rounds} rounds of {a.per_round} connections opened, then closed with a "
          f"reset: RSS after each round " + " -> ".join(mb(r) for r in rss))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, prefix):
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--pid", type=int, required=True)
        sp.add_argument("--prefix", type=int, default=prefix,
                        help="sources are 127.PREFIX.x.y")

    sp = sub.add_parser("partial")
    common(sp, 10)
    sp.add_argument("--conns", type=int, default=8000)
    sp.add_argument("--bytes", type=int, default=60000)
    sp.add_argument("--per-source", type=int, default=60)
    sp.add_argument("--single", type=int, default=2000,
                    help="then this many from one source (0: skip)")
    sp.add_argument("--max-seconds", type=float, default=120)
    sp.set_defaults(f=cmd_partial)

    sp = sub.add_parser("idle")
    common(sp, 20)
    sp.add_argument("--conns", type=int, default=8192)
    sp.add_argument("--per-source", type=int, default=60)
    sp.add_argument("--max-seconds", type=float, default=60)
    sp.set_defaults(f=cmd_idle)

    sp = sub.add_parser("invites")
    common(sp, 30)
    sp.add_argument("--count", type=int, default=20000)
    sp.add_argument("--body", type=int, default=60000)
    sp.add_argument("--conns", type=int, default=20)
    sp.add_argument("--max-seconds", type=float, default=28)
    sp.set_defaults(f=cmd_invites)

    sp = sub.add_parser("lockout")
    common(sp, 40)
    sp.add_argument("--sources", type=int, default=1)
    sp.add_argument("--per-source", type=int, default=8300)
    sp.add_argument("--duration", type=float, default=60)
    sp.add_argument("--dribble-every", type=float, default=2.0)
    sp.add_argument("--probe-every", type=float, default=1.0)
    sp.set_defaults(f=cmd_lockout)

    sp = sub.add_parser("reflect")
    common(sp, 50)
    sp.add_argument("--mode", choices=["maddr", "sent-by"], default="maddr")
    sp.add_argument("--victim", default="127.0.0.99")
    sp.add_argument("--victim-port", type=int, default=5099)
    sp.add_argument("--quiet", type=float, default=10, help="stop after this long silent")
    sp.add_argument("--max-seconds", type=float, default=40)
    sp.set_defaults(f=cmd_reflect)

    sp = sub.add_parser("dribble")
    common(sp, 60)
    sp.add_argument("--size", type=int, default=61440)
    sp.add_argument("--pace-us", type=int, default=0,
                    help="sleep between writes, so that sipd reads about one byte at a time")
    sp.set_defaults(f=cmd_dribble)

    sp = sub.add_parser("noread")
    common(sp, 70)
    sp.add_argument("--conns", type=int, default=8)
    sp.add_argument("--per-source", type=int, default=8)
    sp.add_argument("--requests", type=int, default=200)
    sp.add_argument("--via-bytes", type=int, default=60000)
    sp.add_argument("--max-seconds", type=float, default=60)
    sp.set_defaults(f=cmd_noread)

    sp = sub.add_parser("churn")
    common(sp, 80)
    sp.add_argument("--rounds", type=int, default=4)
    sp.add_argument("--per-round", type=int, default=5000)
    sp.set_defaults(f=cmd_churn)

    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
