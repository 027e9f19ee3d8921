#!/usr/bin/env bash
# Locating SIP servers (RFC 3263, RFC 2782) against a real DNS server, and TLS (RFC 3261
# 26.2, 26.3.1; RFC 5922) against third-party peers: on loopback, bounded (about a minute;
# run by scripts/test.sh). Certificates are made for the run by
# `cargo run -p sip-driver-sys --example gen-certs` (a CA, and a server certificate for
# example.test); the zone is tests/interop/dnsmasq-sip.conf, served by dnsmasq on
# 127.0.0.1:26553, and every sipc and sipd here is given `--dns 127.0.0.1:26553`.
#
#   DNS (sipc of the tokio driver, OPTIONS to a name; sipd "A" on 127.0.0.1:26510 and "B" on
#   127.0.0.2:26512, UDP and TCP; which of them got the OPTIONS is read from their summary)
#     order               sip:order.test: NAPTR order 10 (UDP) before 20, SRV priority 10 (A)
#                         before 20 (B): A gets it (RFC 3263 4.1, 4.2; RFC 2782)
#     weights             sip:weights.test, SRV only, one priority, weights 80 (A) and 20
#                         (B): of RUNS (60) sipc runs, both get some and A more (no exact
#                         share is asserted)
#     failover refused    sip:refused.test: the first target's UDP port is closed (ICMP port
#                         unreachable): B gets it (RFC 3263 4.3)
#     failover reset      sip:reset.test: NAPTR to TCP; the first target refuses the
#                         connection (RST): B gets it over TCP
#     failover 503        sip:busy.test: the first target is SIPp answering 503
#                         (tests/interop/sipp/uas_503.xml): B gets it, SIPp got the OPTIONS
#     failover silent     sip:silent.test: the first target reads and never answers: B gets
#                         it after the failover timeout (sipc's --failover-timeout or --t1
#                         when it has one; else Timer F), within 40 s
#     warm cache          sipd --proxy (each driver) relays SIPp's OPTIONS to sip:bob@warm.test
#                         (tests/interop/sipp/options_name.xml): one OPTIONS, then 100 more;
#                         dnsmasq logs no query after those of the first (RFC 3263 4.2 TTLs)
#   TLS (for each sipd: mio and tokio, `--listen tls:127.0.0.1:26520 --cert --key`)
#     sipc options        sipc options sips:example.test --ca CA: NAPTR SIPS+D2T, SRV
#                         _sips._tcp, TLS, the certificate checked for example.test; exit 0
#     sipc call           sipc call sips:bob@example.test --hold 1s over TLS; exit 0
#     wrong name          sipc options sips:wrong.test (SRV to the same sipd, whose certificate
#                         names example.test only): refused, non-zero exit, a message naming
#                         the certificate (RFC 5922 7.2)
#     baresip             baresip 1.0 (libre 1.0 TLS: it does not check the server certificate,
#                         with or without sip_cafile) dials sip:service@example.test
#                         through dnsmasq (NAPTR SIPS+D2T first): call established, INVITE,
#                         ACK and BYE over TLS, BYE answered 200
#     Kamailio            SIPp (UDP, tests/interop/sipp/uac_rr.xml) -> Kamailio 5.6 with its tls
#                         module (tests/interop/kamailio-tls.cfg) -> sipd over TLS: CALLS (20)
#                         calls, all 200 and BYE 200
#     handshakes          that sipd (a fresh one for Kamailio) prints `tls handshakes N` at exit:
#                         N equals the TLS connections Kamailio opened (TCP SYNs in the capture;
#                         1 expected: not one per call)
#   tshark               the capture (UDP SIP legs, DNS on 26553, TCP SIP) has SIP and DNS, no
#                        malformed packet and no expert error
#
# Prints one line per check: `interop: NAME: ok (...)` or `interop: NAME: FAILED (...)`
# (counted by scripts/test.sh), then a summary line; exit 0 when all passed. Missing peers are
# installed with apt-get (Debian dnsmasq-base, sip-tester, baresip-core, kamailio,
# kamailio-tls-modules, tshark).
#
# Environment: SIP_TLS_DRIVERS ("mio tokio"), SIPD_MIO, SIPD_TOKIO, SIPC, GEN_CERTS (prebuilt
# binaries; default: cargo build --release), RUNS (60), CALLS (20).
# Ports (all in 26500-26699): dnsmasq 26553; sipd A 127.0.0.1:26510, B 127.0.0.2:26512; nothing
# on 26530; SIPp 503 on 26540; the silent socket 26541; TLS sipd 26520; the sipd behind
# Kamailio 26522 (mio), 26523 (tokio); proxies 26560 (mio), 26561 (tokio); SIPp UACs 26570,
# 26610; Kamailio UDP 26600, TLS 26601; baresip 26620 (TLS 26621), RTP 26650-26699. Every
# process runs under `timeout` and is stopped by its PID.
set -uo pipefail
cd "${SIP_ROOT:-$(dirname "$0")/..}"
ROOT=$(pwd)
START=$(date +%s)
DRIVERS=${SIP_TLS_DRIVERS:-mio tokio}
RUNS=${RUNS:-60}
CALLS=${CALLS:-20}
SCEN=$ROOT/tests/interop/sipp
out=$(mktemp -d /tmp/sip-interop-tls.XXXXXX)
mkdir -p "$out/bin"
DNS=127.0.0.1:26553
A_IP=127.0.0.1
A_PORT=26510
B_IP=127.0.0.2
B_PORT=26512
BUSY_PORT=26540
SILENT_PORT=26541
TLS_PORT=26520
declare -A KAM_SIPD_PORT=([mio]=26522 [tokio]=26523)
declare -A PROXY_PORT=([mio]=26560 [tokio]=26561)
PROXY_UAC_PORT=26570
KAM_UDP=26600
KAM_TLS=26601
KAM_UAC_PORT=26610
BARESIP_PORT=26620
FAILED=0
PASSED=0

PIDS=() # timeout wrappers of what we started
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$out/bin" # copies of the binaries (about 170 MB); the logs stay
}
trap cleanup EXIT

ok() {
  echo "interop: $1: ok${2:+ ($2)}"
  PASSED=$((PASSED + 1))
}
failed() {
  echo "interop: $1: FAILED (${2:-}; logs in $out)"
  FAILED=$((FAILED + 1))
}

# ---- peers --------------------------------------------------------------------------------
install() { # $1 = command or file that must exist, $2 = Debian package
  command -v "$1" >/dev/null || [ -e "$1" ] && return 0
  echo "installing $2 (for $1)" >&2
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  (DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$2" ||
    ("${sudo[@]}" apt-get update && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$2")) >/dev/null 2>&1
  command -v "$1" >/dev/null || [ -e "$1" ]
}
KAM_TLS_MODULE=/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so
for need in dnsmasq:dnsmasq-base sipp:sip-tester baresip:baresip-core kamailio:kamailio \
  "$KAM_TLS_MODULE:kamailio-tls-modules" tshark:tshark; do
  install "${need%%:*}" "${need#*:}" || echo "interop-tls: could not install ${need#*:}" >&2
done

# ---- our binaries (both sipd examples build to the same path: copy each away) -------------
build() { # $1 = package, $2 = example, $3 = name in $out/bin
  cargo build -q --release -p "$1" --example "$2" >&2 && cp "target/release/examples/$2" "$out/bin/$3" && echo "$out/bin/$3"
}
declare -A SIPD
for d in $DRIVERS; do
  case $d in
  mio) SIPD[mio]=${SIPD_MIO:-$(build sip-driver-mio sipd sipd-mio)} ;;
  tokio) SIPD[tokio]=${SIPD_TOKIO:-$(build sip-driver-tokio sipd sipd-tokio)} ;;
  *) echo "interop-tls: unknown driver $d (mio, tokio)" >&2; exit 2 ;;
  esac
done
# the DNS checks use the tokio sipd (any sipd would do: sipc does the locating)
SIPD_DNS=${SIPD[tokio]:-${SIPD[mio]:-}}
SIPC=${SIPC:-$(build sip-driver-tokio sipc sipc)}
GEN_CERTS=${GEN_CERTS:-$(build sip-driver-sys gen-certs gen-certs)}
START=$(date +%s) # the run itself, without the build

# ---- helpers ------------------------------------------------------------------------------
listening() { # udp|tcp PORT: wait (5 s at most) until something listens there
  local flag=-Hlnu
  [ "$1" = tcp ] && flag=-Hlnt
  for _ in $(seq 50); do
    [ -n "$(ss $flag "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}
free() { # udp|tcp PORT: wait (5 s at most) until nothing listens there (the previous peer is gone)
  local flag=-Hlnu
  [ "$1" = tcp ] && flag=-Hlnt
  for _ in $(seq 50); do
    [ -z "$(ss $flag "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}
csv_last() { # CSV COLUMN: the value on the last line of SIPp's statistics
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}
sipp_why() { # ERROR_FILE: the first reason SIPp gives for a failed call, on one line
  local f=$1 why
  [ -s "$f" ] || { echo "no SIPp error log"; return; }
  why=$(grep -m1 -oE "while expecting '[^']*' \(index [0-9]+\), received '[^[:cntrl:]']*" "$f")
  [ -z "$why" ] && why=$(grep -m1 -oE "(receive timeout|timed out)[^[:cntrl:]]*" "$f")
  [ -z "$why" ] && why=$(grep -v '^$' "$f" | grep -v "events occurred" | head -1)
  echo "${why:0:220}"
}
has_flag() { # BINARY FLAG: the binary's --help mentions FLAG
  "$1" --help 2>&1 | grep -q -- "$2"
}
summary_count() { # LOG WORDS: the number after WORDS in sipd's summary (e.g. "OPTIONS")
  grep -oE "$2 [0-9]+" "$1" | tail -1 | awk '{ print $NF }'
}
last_line() { # FILE: its last non-empty line, for a failure message
  grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -1 | cut -c1-200
}

# sipd with a name and a log: start_sipd NAME BINARY ARGS...; sets SIPD_PID[NAME]
declare -A SIPD_PID
start_sipd() {
  local name=$1 bin=$2
  shift 2
  echo "$bin $*" >>"$out/$name.cmd"
  timeout 120 "$bin" "$@" >"$out/$name.log" 2>&1 &
  SIPD_PID[$name]=$!
  PIDS+=("$!")
}
stop_sipd() { # NAME: SIGTERM (through timeout), waits for its summary
  kill "${SIPD_PID[$1]}" 2>/dev/null
  wait "${SIPD_PID[$1]}" 2>/dev/null
}

# ---- certificates and DNS -----------------------------------------------------------------
CERTS=$out/certs
mkdir -p "$CERTS"
if [ -z "$GEN_CERTS" ] || ! "$GEN_CERTS" --out "$CERTS" --name example.test >"$out/gen-certs.log" 2>&1 ||
  [ ! -s "$CERTS/ca.pem" ] || [ ! -s "$CERTS/cert.pem" ] || [ ! -s "$CERTS/key.pem" ]; then
  failed "test certificates (gen-certs --name example.test)" "$(last_line "$out/gen-certs.log")"
fi

timeout -k 2 200 tshark -i lo -f "portrange 26500-26699" -w "$out/tls.pcapng" >/dev/null 2>"$out/tshark.err" &
TSHARK=$!
PIDS+=("$TSHARK")
for _ in $(seq 50); do grep -q "Capturing on" "$out/tshark.err" 2>/dev/null && break; sleep 0.1; done

free udp 26553
timeout 200 dnsmasq -C "$ROOT/tests/interop/dnsmasq-sip.conf" -k --port=26553 --listen-address=127.0.0.1 \
  >"$out/dnsmasq.log" 2>&1 &
DNSMASQ=$!
PIDS+=("$DNSMASQ")
if ! listening udp 26553; then
  failed "dnsmasq on $DNS" "it did not start: $(last_line "$out/dnsmasq.log")"
fi
dns_queries() { grep -a -cE '(query|auth)\[' "$out/dnsmasq.log"; } # every question dnsmasq got

# ---- DNS: order, weights, failover --------------------------------------------------------
start_ab() { # sipd A and B, UDP and TCP, fresh (their summaries count the OPTIONS)
  free udp "$A_PORT" && free tcp "$A_PORT" && free udp "$B_PORT" && free tcp "$B_PORT"
  start_sipd dns-a "$SIPD_DNS" --listen "udp:$A_IP:$A_PORT" --listen "tcp:$A_IP:$A_PORT"
  start_sipd dns-b "$SIPD_DNS" --listen "udp:$B_IP:$B_PORT" --listen "tcp:$B_IP:$B_PORT"
  listening udp "$A_PORT" && listening tcp "$A_PORT" && listening udp "$B_PORT" && listening tcp "$B_PORT"
}
stop_ab() { # sets GOT_A, GOT_B: the OPTIONS each answered
  stop_sipd dns-a
  stop_sipd dns-b
  GOT_A=$(summary_count "$out/dns-a.log" OPTIONS)
  GOT_B=$(summary_count "$out/dns-b.log" OPTIONS)
  cp "$out/dns-a.log" "$out/dns-a-$1.log"
  cp "$out/dns-b.log" "$out/dns-b-$1.log"
}
sipc_options() { # LOGNAME URI [sipc flags]: one OPTIONS; sets RC
  local name=$1 uri=$2
  shift 2
  timeout 45 "$SIPC" --dns "$DNS" "$@" options "$uri" >"$out/sipc-$name.out" 2>&1
  RC=$?
}

check_dns() { # NAME URI EXPECTED(A|B) WHAT [sipc flags]
  local name=$1 uri=$2 want=$3 what=$4
  shift 4
  local n="DNS $what: sipc options $uri"
  if ! start_ab; then
    stop_ab "$name"
    failed "$n" "sipd A or B did not start: $(last_line "$out/dns-a.log") $(last_line "$out/dns-b.log")"
    return
  fi
  local t0 t1
  t0=$(date +%s.%N)
  sipc_options "$name" "$uri" "$@"
  t1=$(date +%s.%N)
  stop_ab "$name"
  local took
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local got="A ${GOT_A:-?}, B ${GOT_B:-?}"
  local exp_a=0 exp_b=0
  [ "$want" = A ] && exp_a=1
  [ "$want" = B ] && exp_b=1
  if [ "$RC" = 0 ] && [ "${GOT_A:-x}" = "$exp_a" ] && [ "${GOT_B:-x}" = "$exp_b" ]; then
    ok "$n" "reached $want ($got OPTIONS), sipc exit 0 in $took s"
  else
    failed "$n" "expected $want; OPTIONS answered: $got; sipc exit $RC in $took s: $(last_line "$out/sipc-$name.out")"
  fi
}

check_weights() {
  local n="DNS weights: $RUNS x sipc options sip:weights.test (SRV weights A 80, B 20)"
  if ! start_ab; then
    stop_ab weights
    failed "$n" "sipd A or B did not start"
    return
  fi
  local i bad=0
  for i in $(seq "$RUNS"); do
    timeout 10 "$SIPC" --dns "$DNS" options sip:weights.test >>"$out/sipc-weights.out" 2>&1 || bad=$((bad + 1))
  done
  stop_ab weights
  if [ "$bad" = 0 ] && [ "${GOT_A:-0}" -gt 0 ] && [ "${GOT_B:-0}" -gt 0 ] && [ "$GOT_A" -gt "$GOT_B" ] &&
    [ $((GOT_A + GOT_B)) = "$RUNS" ]; then
    ok "$n" "A $GOT_A, B $GOT_B"
  else
    failed "$n" "A ${GOT_A:-?}, B ${GOT_B:-?}, $bad sipc runs failed (want both > 0, A > B, all $RUNS answered)"
  fi
}

check_busy() { # the first target answers 503
  local d="$out/busy"
  mkdir -p "$d"
  free udp "$BUSY_PORT"
  (cd "$d" && exec timeout 30 sipp -sf "$SCEN/uas_503.xml" -i 127.0.0.1 -p "$BUSY_PORT" -t u1 -m 1 -timeout 25s \
    -timeout_error -nostdin -trace_err -error_file "$d/err.log" -trace_msg -message_file "$d/msg.log" >"$d/out.txt" 2>&1) &
  local sipp_pid=$!
  PIDS+=("$sipp_pid")
  listening udp "$BUSY_PORT"
  check_dns busy sip:busy.test B "failover on 503 (SIPp answers 503, RFC 3263 4.3)"
  kill "$sipp_pid" 2>/dev/null
  wait "$sipp_pid"
  local rc=$?
  local n="DNS failover on 503: the first target (SIPp) got the OPTIONS and answered 503"
  if [ "$rc" = 0 ]; then
    ok "$n" "SIPp exit 0"
  else
    failed "$n" "SIPp exit $rc: $(sipp_why "$d/err.log")"
  fi
}

check_silent() { # the first target reads and never answers
  free udp "$SILENT_PORT"
  timeout 60 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65535)
    print("dropped", len(data), "bytes from", peer, flush=True)
' "$SILENT_PORT" >"$out/silent.log" 2>&1 &
  local silent=$!
  PIDS+=("$silent")
  listening udp "$SILENT_PORT"
  local flags=()
  if has_flag "$SIPC" --failover-timeout; then
    flags=(--failover-timeout 1s)
  elif has_flag "$SIPC" --t1; then
    flags=(--t1 100ms)
  fi
  check_dns silent sip:silent.test B "failover when the first target is silent (${flags[*]:-Timer F})" "${flags[@]}"
  kill "$silent" 2>/dev/null
  wait "$silent" 2>/dev/null
  local got
  got=$(grep -c '^dropped' "$out/silent.log")
  local n="DNS failover when silent: the silent target got the OPTIONS first"
  if [ "$got" -gt 0 ]; then
    ok "$n" "$got datagrams dropped by it"
  else
    failed "$n" "it got nothing"
  fi
}

# ---- DNS: warm cache through a proxy ------------------------------------------------------
check_warm() { # DRIVER: sipd --proxy relays SIPp's OPTIONS to sip:bob@warm.test
  local d=$1 port=${PROXY_PORT[$1]} dir="$out/warm-$1"
  local n="DNS warm cache: sipd($d) --proxy relays 1 + 100 OPTIONS to sip:bob@warm.test, no DNS query after the first lookup"
  mkdir -p "$dir"
  free udp "$port" && free udp "$B_PORT" && free tcp "$B_PORT"
  start_sipd "warm-b-$d" "$SIPD_DNS" --listen "udp:$B_IP:$B_PORT" --listen "tcp:$B_IP:$B_PORT"
  start_sipd "proxy-$d" "${SIPD[$d]}" --listen "udp:127.0.0.1:$port" --proxy --domain proxy.test --dns "$DNS"
  if ! listening udp "$port" || ! listening udp "$B_PORT"; then
    stop_sipd "proxy-$d"
    stop_sipd "warm-b-$d"
    failed "$n" "the proxy or B did not start: $(last_line "$out/proxy-$d.log")"
    return
  fi
  local q0 q1 q2 rc1 rc2
  q0=$(dns_queries)
  (cd "$dir" && exec timeout 20 sipp -sf "$SCEN/options_name.xml" "127.0.0.1:$port" -s bob -i 127.0.0.1 \
    -p "$PROXY_UAC_PORT" -t u1 -m 1 -timeout 15s -timeout_error -nostdin -trace_err -error_file "$dir/err1.log" >"$dir/out1.txt" 2>&1)
  rc1=$?
  sleep 0.2
  q1=$(dns_queries)
  (cd "$dir" && exec timeout 30 sipp -sf "$SCEN/options_name.xml" "127.0.0.1:$port" -s bob -i 127.0.0.1 \
    -p "$PROXY_UAC_PORT" -t u1 -m 100 -r 200 -timeout 25s -timeout_error -nostdin -trace_err -error_file "$dir/err2.log" \
    -trace_stat -stf "$dir/stat.csv" >"$dir/out2.txt" 2>&1)
  rc2=$?
  sleep 0.2
  q2=$(dns_queries)
  stop_sipd "proxy-$d"
  stop_sipd "warm-b-$d"
  local got_b pq
  got_b=$(summary_count "$out/warm-b-$d.log" OPTIONS)
  pq=$(summary_count "$out/proxy-$d.log" "dns queries")
  local what="first lookup $((q1 - q0)) queries, then $((q2 - q1)) for 100 OPTIONS; B answered ${got_b:-?}; proxy says dns queries ${pq:-?}"
  if [ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ $((q1 - q0)) -gt 0 ] && [ "$q2" = "$q1" ] && [ "${got_b:-0}" = 101 ]; then
    ok "$n" "$what"
  else
    failed "$n" "$what; SIPp exit $rc1, $rc2: $(sipp_why "$dir/err1.log") $(sipp_why "$dir/err2.log")"
  fi
}

# ---- TLS ----------------------------------------------------------------------------------
tls_sipd_args() { # PORT: a TLS listener with the test certificate
  echo --listen "tls:127.0.0.1:$1" --cert "$CERTS/cert.pem" --key "$CERTS/key.pem" --dns "$DNS" --ring 300ms
}

check_sipc_tls() { # DRIVER
  local d=$1 n
  n="TLS sipc options sips:example.test --ca CA -> sipd($d)"
  timeout 20 "$SIPC" --dns "$DNS" --ca "$CERTS/ca.pem" options sips:example.test >"$out/sipc-tls-options-$d.out" 2>&1
  local rc=$?
  if [ "$rc" = 0 ]; then
    ok "$n" "sipc exit 0: $(grep -m1 -- '<- ' "$out/sipc-tls-options-$d.out")"
  else
    failed "$n" "sipc exit $rc: $(last_line "$out/sipc-tls-options-$d.out")"
  fi

  n="TLS sipc call sips:bob@example.test --hold 1s -> sipd($d)"
  # a sips: call needs a TLS listener of its own for its sips: Contact (RFC 3261 19.1)
  timeout 20 "$SIPC" --dns "$DNS" --ca "$CERTS/ca.pem" --cert "$CERTS/cert.pem" --key "$CERTS/key.pem" \
    call sips:bob@example.test --hold 1s >"$out/sipc-tls-call-$d.out" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    ok "$n" "sipc exit 0 ($(grep -c -- '-> ' "$out/sipc-tls-call-$d.out") requests sent)"
  else
    failed "$n" "sipc exit $rc: $(last_line "$out/sipc-tls-call-$d.out")"
  fi

  n="TLS wrong name: sipc options sips:wrong.test (certificate for example.test) -> sipd($d) is refused"
  timeout 20 "$SIPC" --dns "$DNS" --ca "$CERTS/ca.pem" options sips:wrong.test >"$out/sipc-tls-wrong-$d.out" 2>&1
  rc=$?
  local why
  why=$(grep -m1 -iE 'certificate|not valid|verif' "$out/sipc-tls-wrong-$d.out" | cut -c1-200)
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ -n "$why" ]; then
    ok "$n" "sipc exit $rc: $why"
  else
    failed "$n" "sipc exit $rc (want non-zero, no timeout, a message about the certificate): $(last_line "$out/sipc-tls-wrong-$d.out")"
  fi

  n="TLS unknown CA: sipc options sips:example.test without --ca (system roots) -> sipd($d) is refused"
  timeout 20 "$SIPC" --dns "$DNS" options sips:example.test >"$out/sipc-tls-noca-$d.out" 2>&1
  rc=$?
  why=$(grep -m1 -iE 'certificate|issuer|verif' "$out/sipc-tls-noca-$d.out" | cut -c1-200)
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ -n "$why" ]; then
    ok "$n" "sipc exit $rc: $why"
  else
    failed "$n" "sipc exit $rc: $(last_line "$out/sipc-tls-noca-$d.out")"
  fi
}

# baresip's SIP trace (-s): blocks "UDP|TCP|TLS SRC -> DST", then the message. One line per
# message: TRANSPORT SRC DST START-LINE | CSEQ
trace_summary() { # LOG
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
blocks = re.split(r"^(UDP|TCP|TLS) (\S+) -> (\S+)\n", text, flags=re.M)
for i in range(1, len(blocks) - 3, 4):
    tr, src, dst, msg = blocks[i:i + 4]
    lines = msg.split("\n")
    cseq = next((l.split(":", 1)[1].strip() for l in lines if re.match(r"(?i)cseq:", l)), "")
    print(tr, src, dst, lines[0].strip(), "|", cseq)
PY
}

check_baresip_tls() { # DRIVER
  # baresip 1.0's /dial puts "sip:" before anything not starting with it (a sips: URI would
  # become sip:sips:...): it dials sip:service@example.test, whose NAPTR record of order 10 is
  # SIPS+D2T, which takes it to TLS (RFC 3263 4.1)
  local d=$1 n="TLS baresip dials sip:service@example.test (NAPTR SIPS+D2T, sip_cafile) -> sipd($1), hangs up"
  local dir
  dir=$(mktemp -d "$out/baresip-$d.XXXX")
  # headless baresip 1.0 (../shared/interop/PLAYBOOK.md); TLS listens on sip_listen's port + 1
  cat >"$dir/config" <<EOF
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:$BARESIP_PORT
sip_cafile		$CERTS/ca.pem
call_local_timeout	20
audio_player		none,none
audio_source		ausine,440
audio_alert		none,none
ausrc_srate		48000
ausrc_channels		2
rtcp_mux		no
rtp_ports		26650-26699
dns_server		$DNS
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module_tmp		account.so
module_app		menu.so
EOF
  echo "<sip:uac@127.0.0.1>;regint=0" >"$dir/accounts"
  free udp "$BARESIP_PORT" && free tcp "$BARESIP_PORT"
  timeout -k 2 12 baresip -f "$dir" -s -t 4 -e "/dial sip:service@example.test" </dev/null >"$dir/baresip.log" 2>&1
  local rc=$?
  trace_summary "$dir/baresip.log" >"$dir/trace.txt"
  local why=()
  [ $rc = 0 ] || why+=("baresip exit $rc")
  grep -q "Call established" "$dir/baresip.log" ||
    why+=("no 'Call established'$(grep -m1 -oE 'session closed: [^[:cntrl:]]*' "$dir/baresip.log" | sed 's/^/: /')")
  local inv ack bye byeok
  inv=$(awk '$4 == "INVITE" { print $1; exit }' "$dir/trace.txt")
  ack=$(awk '$4 == "ACK" { print $1; exit }' "$dir/trace.txt")
  bye=$(awk '$4 == "BYE" { print $1; exit }' "$dir/trace.txt")
  byeok=$(awk '$4 == "SIP/2.0" && $5 == "200" && $0 ~ /\| [0-9]+ BYE/ { print $1; exit }' "$dir/trace.txt")
  [ "$inv" = TLS ] || why+=("the INVITE went over ${inv:-nothing}")
  [ "$ack" = TLS ] || why+=("the ACK went over ${ack:-nothing}")
  [ "$bye" = TLS ] || why+=("the BYE went over ${bye:-nothing}")
  [ "$byeok" = TLS ] || why+=("no 200 to the BYE over TLS")
  if [ ${#why[@]} = 0 ]; then
    ok "$n" "established, INVITE, ACK and BYE over TLS, BYE answered 200"
  else
    local IFS=';'
    failed "$n" "${why[*]}; trace $dir/trace.txt"
  fi
}

check_kamailio_tls() { # DRIVER: a fresh sipd behind Kamailio; its handshakes are Kamailio's
  local d=$1 port=${KAM_SIPD_PORT[$1]} dir="$out/kamailio-$1"
  local n="TLS sipp (UDP) -> Kamailio (tls module) -> sipd($d) over TLS: $CALLS calls"
  mkdir -p "$dir"
  free tcp "$port"
  # shellcheck disable=SC2046
  start_sipd "kam-sipd-$d" "${SIPD[$d]}" $(tls_sipd_args "$port")
  if ! listening tcp "$port"; then
    stop_sipd "kam-sipd-$d"
    failed "$n" "sipd did not start: $(last_line "$out/kam-sipd-$d.log")"
    return
  fi
  free udp "$KAM_UAC_PORT"
  (cd "$dir" && exec timeout 40 sipp -sf "$SCEN/uac_rr.xml" "127.0.0.1:$KAM_UDP" -s "$port" -i 127.0.0.1 \
    -p "$KAM_UAC_PORT" -t u1 -m "$CALLS" -r 20 -l "$CALLS" -timeout 30s -timeout_error \
    -recv_timeout 5s -nostdin -trace_stat -stf "$dir/uac.csv" -trace_err -error_file "$dir/err.log" >"$dir/out.txt" 2>&1)
  local rc=$? okc
  okc=$(csv_last "$dir/uac.csv" 'SuccessfulCall(C)')
  if [ "$rc" = 0 ] && [ "$okc" = "$CALLS" ]; then
    ok "$n" "$okc of $CALLS calls completed (INVITE 200, ACK, BYE 200)"
  else
    failed "$n" "$okc of $CALLS calls completed, SIPp exit $rc: $(sipp_why "$dir/err.log")"
  fi
  sleep 0.3
  stop_sipd "kam-sipd-$d"
  KAM_CHECKED+=("$d")
}

check_handshakes() { # DRIVER: after the capture is closed
  local d=$1 port=${KAM_SIPD_PORT[$1]}
  local n="TLS handshakes: sipd($d) behind Kamailio, $CALLS calls"
  local hs syns
  hs=$(summary_count "$out/kam-sipd-$d.log" "tls handshakes")
  syns=$(tshark -r "$out/tls.pcapng" -Y "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == $port" 2>/dev/null | wc -l)
  if [ -n "$hs" ] && [ "$hs" -ge 1 ] && [ "$hs" = "$syns" ]; then
    ok "$n" "tls handshakes $hs, Kamailio opened $syns TLS connection(s)"
  else
    failed "$n" "sipd says 'tls handshakes ${hs:-(missing)}', Kamailio opened $syns connection(s)"
  fi
}

# ---- run ----------------------------------------------------------------------------------
if [ -n "$SIPD_DNS" ] && [ -n "$SIPC" ]; then
  check_dns order sip:order.test A "order (NAPTR order, SRV priority)"
  check_weights
  check_dns refused sip:refused.test B "failover on ICMP port unreachable (UDP, RFC 3263 4.3)"
  check_dns reset sip:reset.test B "failover on a refused TCP connection (RST, RFC 3263 4.3)"
  check_busy
  check_silent
  for d in $DRIVERS; do
    [ -n "${SIPD[$d]:-}" ] && check_warm "$d"
  done
else
  failed "DNS checks" "no sipd or sipc (build failed)"
fi

KAM_CHECKED=()
if [ -s "$CERTS/cert.pem" ]; then
  sed "s#@DIR@#$CERTS#g" "$ROOT/tests/interop/kamailio-tls-domains.cfg" >"$out/tls.cfg"
  free udp "$KAM_UDP" && free tcp "$KAM_TLS"
  timeout 150 kamailio -f "$ROOT/tests/interop/kamailio-tls.cfg" -l "udp:127.0.0.1:$KAM_UDP" \
    -l "tls:127.0.0.1:$KAM_TLS" -A "TLS_CFG=\"$out/tls.cfg\"" -DD -E -m 64 -P "$out/kamailio.pid" \
    >"$out/kamailio.log" 2>&1 &
  KAM=$!
  PIDS+=("$KAM")
  KAM_UP=1
  listening udp "$KAM_UDP" && listening tcp "$KAM_TLS" || KAM_UP=0
  for d in $DRIVERS; do
    [ -n "${SIPD[$d]:-}" ] || continue
    free tcp "$TLS_PORT"
    # shellcheck disable=SC2046
    start_sipd "tls-$d" "${SIPD[$d]}" $(tls_sipd_args "$TLS_PORT")
    if ! listening tcp "$TLS_PORT"; then
      stop_sipd "tls-$d"
      failed "TLS checks -> sipd($d)" "sipd with a TLS listener did not start: $(last_line "$out/tls-$d.log")"
      continue
    fi
    check_sipc_tls "$d"
    check_baresip_tls "$d"
    stop_sipd "tls-$d"
    if [ "$KAM_UP" = 1 ]; then
      check_kamailio_tls "$d"
    else
      failed "TLS Kamailio -> sipd($d)" "Kamailio did not start: $(grep -m1 -E 'ERROR|CRITICAL' "$out/kamailio.log")"
    fi
  done
  kill "$KAM" 2>/dev/null
  wait "$KAM" 2>/dev/null
else
  failed "TLS checks" "no test certificates"
fi

# the capture: SIP on the UDP and TCP ports (not the TLS ones), DNS on 26553
sleep 0.5
kill "$TSHARK" 2>/dev/null
wait "$TSHARK" 2>/dev/null
for d in "${KAM_CHECKED[@]}"; do check_handshakes "$d"; done
decode=(-d "udp.port==26500-26552,sip" -d "udp.port==26554-26699,sip" -d "tcp.port==26510-26512,sip"
  -d "udp.port==26553,dns")
n="tshark: DNS and SIP (UDP, TCP) on the test ports well-formed"
counts=$(tshark -r "$out/tls.pcapng" "${decode[@]}" -q -z io,stat,0,"sip","dns","_ws.malformed || _ws.expert.severity == error" 2>/dev/null |
  awk -F'|' '/<>/ { gsub(/ /, ""); print $3, $5, $7 }')
read -r sipn dnsn bad <<<"${counts:-0 0 0}"
if [ "${sipn:-0}" -gt 0 ] && [ "${dnsn:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ]; then
  ok "$n" "$sipn SIP frames, $dnsn DNS frames, 0 malformed or expert errors"
else
  failed "$n" "${sipn:-?} SIP frames, ${dnsn:-?} DNS frames, ${bad:-?} malformed or expert errors: $out/tls.pcapng"
fi

echo "interop-tls: $PASSED passed, $FAILED failed in $(($(date +%s) - START)) s (logs in $out)"
[ "$FAILED" = 0 ]
