#!/usr/bin/env bash
# Interop with SIPp (Debian package sip-tester) on loopback, bounded runs only.
#
#   scripts/interop-sipp.sh uac DRIVER TRANSPORT [LOSS]
#       SIPp's built-in `uac` scenario against `sipd` of sip-driver-DRIVER (mio|tokio):
#       CALLS calls (default 500) at RATE calls/s (default 100) over u1 (UDP) or t1 (TCP);
#       LOSS makes SIPp drop that percentage of packets (-lost), so calls complete only
#       through the RFC retransmissions. Passes when every call succeeds with no unexpected
#       message.
#   scripts/interop-sipp.sh uas
#       SIPp's built-in `uas` scenario answering `sipc call` (sip-driver-tokio).
#
# Prints one line per run: `interop: <what>: ok (<details>)` or `... FAILED`, exit 0 / 1.
# Every process is started with a time limit and killed at the end; traffic stays on 127.0.0.1.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v sipp >/dev/null || { echo "interop: sipp not found (apt-get install -y sip-tester)" >&2; exit 1; }
CALLS=${CALLS:-500}
RATE=${RATE:-100}
out=$(mktemp -d /tmp/sip-interop.XXXXXX)

free_port() {  # a free UDP+TCP port on 127.0.0.1
  python3 - <<'PY'
import socket
for _ in range(50):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket(); 
    try:
        t.bind(("127.0.0.1", p)); t.close(); s.close(); print(p); break
    except OSError:
        s.close(); t.close()
PY
}

wait_listening() {  # until something answers OPTIONS on udp port $1 (at most ~5 s)
  for _ in $(seq 50); do
    if python3 - "$1" <<'PY'
import socket, sys
p = int(sys.argv[1]); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1); s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
msg = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKwait%d\r\n"
       "From: <sip:w@127.0.0.1>;tag=w\r\nTo: <sip:127.0.0.1>\r\nCall-ID: wait%d\r\nCSeq: 1 OPTIONS\r\n"
       "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (p, lp, lp, lp)
s.sendto(msg.encode(), ("127.0.0.1", p))
try:
    s.recv(65535); sys.exit(0)
except OSError:
    sys.exit(1)
PY
    then return 0; fi
    sleep 0.1
  done
  return 1
}

run_uac() {
  local driver=$1 transport=$2 loss=${3:-0}
  local what="sipp uac -> sipd($driver) $transport, $CALLS calls at $RATE/s${loss:+, $loss% loss}"
  [ "$loss" = 0 ] && what="sipp uac -> sipd($driver) $transport, $CALLS calls at $RATE/s"
  cargo build -q --release -p "sip-driver-$driver" --example sipd || { echo "interop: $what: FAILED (build)"; return 1; }
  local port; port=$(free_port)
  timeout 120 "target/release/examples/sipd" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --log warn \
    > "$out/sipd-$driver-$transport.log" 2>&1 &
  local pid=$!
  if ! wait_listening "$port"; then
    kill "$pid" 2>/dev/null; echo "interop: $what: FAILED (sipd did not start)"; return 1
  fi
  local lost=()
  [ "$loss" != 0 ] && lost=(-lost "$loss")
  # bounded: -m calls, global -timeout, per-message -recv_timeout, and an outer timeout
  timeout 100 sipp -sn uac "127.0.0.1:$port" -i 127.0.0.1 -p 0 -t "$transport" -m "$CALLS" -r "$RATE" \
    -l "$CALLS" -timeout 90s -timeout_error -recv_timeout 20s -nostdin -bg=0 \
    -trace_stat -stf "$out/uac-$driver-$transport.csv" -trace_err -error_file "$out/uac-$driver-$transport.err" \
    "${lost[@]}" > "$out/uac-$driver-$transport.out" 2>&1
  local rc=$?
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  local stats; stats=$(tail -1 "$out/uac-$driver-$transport.csv" 2>/dev/null)
  # SuccessfulCall(C) FailedCall(C) OutOfCallMsgs(C) columns by name from the csv header
  local ok failed unexp
  ok=$(awk -F';' -v c='SuccessfulCall(C)' 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i} END{print $k+0}' "$out/uac-$driver-$transport.csv" 2>/dev/null)
  failed=$(awk -F';' -v c='FailedCall(C)' 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i} END{print $k+0}' "$out/uac-$driver-$transport.csv" 2>/dev/null)
  unexp=$(awk -F';' -v c='FailedUnexpectedMessage(C)' 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i} END{print $k+0}' "$out/uac-$driver-$transport.csv" 2>/dev/null)
  if [ "$rc" = 0 ] && [ "${ok:-0}" = "$CALLS" ] && [ "${failed:-1}" = 0 ] && [ "${unexp:-1}" = 0 ]; then
    echo "interop: $what: ok ($ok calls, 0 failed, 0 unexpected)"
    return 0
  fi
  echo "interop: $what: FAILED (sipp rc=$rc, ok=$ok failed=$failed unexpected=$unexp; logs in $out)"
  return 1
}

run_uas() {
  local what="sipc call -> sipp uas"
  cargo build -q --release -p sip-driver-tokio --example sipc || { echo "interop: $what: FAILED (build)"; return 1; }
  local port; port=$(free_port)
  timeout 60 sipp -sn uas -i 127.0.0.1 -p "$port" -t u1 -m 1 -timeout 30s -nostdin -bg=0 \
    -trace_err -error_file "$out/uas.err" > "$out/uas.out" 2>&1 &
  local pid=$!
  sleep 0.5
  timeout 30 target/release/examples/sipc call "sip:bob@127.0.0.1:$port" --hold 1s > "$out/sipc.out" 2>&1
  local rc=$?
  wait "$pid"; local src=$?
  if [ "$rc" = 0 ] && [ "$src" = 0 ]; then
    echo "interop: $what: ok (INVITE/200/ACK/BYE/200, sipp uas exit 0)"
    return 0
  fi
  echo "interop: $what: FAILED (sipc rc=$rc, sipp rc=$src; logs in $out)"
  return 1
}

case "${1:-}" in
  uac) shift; run_uac "$@" ;;
  uas) run_uas ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
