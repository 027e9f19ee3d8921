#!/usr/bin/env bash
# Registration with digest authentication against third-party peers (RFC 3261 sections 10
# and 22, RFC 7616, RFC 8760), on loopback, bounded (about 40 s):
#
#   for each sipd (mio and tokio drivers), started as
#       sipd --registrar --realm example.test --user alice:secret --user bob:secret ...
#     linphonec  registers (`register` command; `proxy show default` says registered: yes),
#                and un-registers when it quits
#     sipc       `sipc register` for two seconds, then un-registers
#     baresip    registers (401, then digest), and un-registers when it quits
#     SIPp       bench/sipp/register_auth_uac.xml with -au/-ap over UDP and TCP; with a
#                wrong password the registration is refused
#     While a client is registered, a query REGISTER (RFC 3261 10.2.3, no Contact:
#     tests/interop/register_query.py) must list its binding; after it quit, none.
#     sipd offers one challenge per algorithm, SHA-256 first (RFC 8760 section 2.4).
#     linphonec 5.1 and sipc answer SHA-256. SIPp 3.6.1 answers only the FIRST challenge of
#     a 401, only with MD5; baresip 1.0 (libre 1.x) gives up at the first challenge whose
#     algorithm it does not know ("Function not implemented"), even after an MD5 one. So
#     these two run against a sipd restarted with `--algorithms MD5` when its --help offers
#     that option (and fail, saying so, when it does not).
#   Kamailio (bench/kamailio-registrar.cfg: registrar, usrloc in memory, auth): sipc registers
#   tshark     the capture of all of the above has no malformed packet and no non-SIP
#              datagram on the registrars' ports, and shows each of baresip, linphonec and
#              sipc answering a 401 with Authorization and getting a 200
#
# Prints one line per check: `interop: NAME: ok` or `interop: NAME: FAILED (...)` (counted by
# scripts/test.sh); exit 0 when all passed. Missing peers are installed with apt-get
# (Debian packages sip-tester, baresip-core, linphone-cli, kamailio, tshark).
#
# Environment: SIP_REGISTER_TARGETS ("mio tokio"; may also name kamailio, to run the baresip,
# linphonec and SIPp checks against Kamailio too, e.g. to check the harness itself),
# SIPD_MIO, SIPD_TOKIO, SIPC (prebuilt binaries; default: cargo build --release).
# Ports: sipd mio 5420, sipd tokio 5421, Kamailio 5422, SIPp 5430, queries 5431, baresip 5084
# (and 5085), linphonec 5092; all on 127.0.0.1. Every process runs under `timeout` and is
# stopped by its PID.
set -uo pipefail
cd "${SIP_ROOT:-$(dirname "$0")/..}"
ROOT=$(pwd)
TARGETS=${SIP_REGISTER_TARGETS:-mio tokio}
out=$(mktemp -d /tmp/sip-interop-register.XXXXXX)
mkdir -p "$out/bin"
REALM=example.test
PASSWORD=secret
declare -A PORT=([mio]=5420 [tokio]=5421 [kamailio]=5422)
SIPP_PORT=5430
QUERY_PORT=5431 # the queries (tests/interop/register_query.py) and the algorithm probe
FAILED=0

PIDS=() # timeout wrappers of what we started
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

ok() { echo "interop: $1: ok${2:+ ($2)}"; }
failed() {
  echo "interop: $1: FAILED (${2:-}; logs in $out)"
  FAILED=$((FAILED + 1))
}

# ---- peers --------------------------------------------------------------------------------
install() { # $1 = command, $2 = Debian package
  command -v "$1" >/dev/null && return 0
  echo "installing $2 (for $1)" >&2
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  (DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$2" ||
    ("${sudo[@]}" apt-get update && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$2")) >/dev/null 2>&1
  command -v "$1" >/dev/null
}
for need in sipp:sip-tester baresip:baresip-core linphonec:linphone-cli kamailio:kamailio tshark:tshark; do
  install "${need%%:*}" "${need#*:}" || echo "interop-register: could not install ${need#*:}" >&2
done

# ---- our binaries (both sipd examples build to the same path: copy each away) -------------
build() { # $1 = package, $2 = example, $3 = name in $out/bin
  cargo build -q --release -p "$1" --example "$2" >&2 && cp "target/release/examples/$2" "$out/bin/$3" && echo "$out/bin/$3"
}
declare -A SIPD
for t in $TARGETS; do
  case $t in
  mio) SIPD[mio]=${SIPD_MIO:-$(build sip-driver-mio sipd sipd-mio)} ;;
  tokio) SIPD[tokio]=${SIPD_TOKIO:-$(build sip-driver-tokio sipd sipd-tokio)} ;;
  kamailio) ;;
  *) echo "interop-register: unknown target $t (mio, tokio, kamailio)" >&2; exit 2 ;;
  esac
done
SIPC_BIN=${SIPC:-$(build sip-driver-tokio sipc sipc)}

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
free() { # udp PORT: wait (5 s at most) until nothing listens there (the previous peer is gone)
  for _ in $(seq 50); do
    [ -z "$(ss -Hlnu "sport = :$1" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}
sipp_run() { # NAME SCENARIO TARGET_PORT USER PASSWORD [extra sipp args]: exit status of sipp
  local name=$1 scen=$2 port=$3 user=$4 pass=$5
  shift 5
  (cd "$out" && timeout 20 sipp -sf "$scen" "127.0.0.1:$port" -s "$user" -au "$user" -ap "$pass" \
    -i 127.0.0.1 -p "$SIPP_PORT" -m 1 -timeout 10s -timeout_error -nostdin \
    -trace_err -error_file "$out/$name.sipp-errors.log" "$@" >"$out/$name.sipp.out" 2>&1)
}
bindings() { # NAME PORT USER AOR_HOST: print the Contacts the registrar lists for
  # sip:USER@AOR_HOST (nothing when it lists none); fails when the query itself fails
  timeout 10 python3 "$ROOT/tests/interop/register_query.py" 127.0.0.1 "$2" "$3" "$PASSWORD" "$4" "$QUERY_PORT" \
    2>"$out/$1.query.err" | tee "$out/$1.query.out"
}
wait_binding() { # NAME PORT USER AOR_HOST TEXT PID: until a listed Contact holds TEXT (while PID runs)
  local c i
  for i in $(seq 30); do
    c=$(bindings "$1-$i" "$2" "$3" "$4") && [[ $c == *"$5"* ]] && return 0
    kill -0 "$6" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
first_algorithm() { # PORT: the algorithm of the registrar's first challenge
  python3 - "$1" "$QUERY_PORT" <<'PYEOF' 2>/dev/null || echo "?"
import re, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[2]))); s.settimeout(2)
p = s.getsockname()[1]; port = int(sys.argv[1])
s.sendto(("REGISTER sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-alg%d\r\n"
          "Max-Forwards: 70\r\nFrom: <sip:carol@127.0.0.1>;tag=a%d\r\nTo: <sip:carol@127.0.0.1>\r\n"
          "Call-ID: alg%d\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n" % (port, p, p, p, p)).encode(),
         ("127.0.0.1", port))
m = re.search(r"(?i)algorithm=\"?([\w-]+)", s.recv(65535).decode())
print(m.group(1) if m else "MD5 (no algorithm parameter)")
PYEOF
}
unregistered() { # NAME PORT USER AOR_HOST: the query succeeds and lists no binding
  local c
  c=$(bindings "$1" "$2" "$3" "$4") && [ -z "$c" ]
}

start_registrar() { # TARGET [sipd options]: start it on PORT[TARGET]; sets REG_PID (its timeout)
  local t=$1 port=${PORT[$1]} users=()
  shift
  case $t in
  kamailio)
    timeout 120 kamailio -f "$ROOT/bench/kamailio-registrar.cfg" -l "udp:127.0.0.1:$port" \
      -l "tcp:127.0.0.1:$port" -DD -E -m 64 -P "$out/kamailio.pid" >"$out/kamailio.log" 2>&1 &
    ;;
  *)
    for u in alice bob carol dave; do users+=(--user "$u:$PASSWORD"); done
    timeout 120 "${SIPD[$t]}" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" \
      --log info --registrar --realm "$REALM" "${users[@]}" "$@" >>"$out/sipd-$t.log" 2>&1 &
    ;;
  esac
  REG_PID=$!
  PIDS+=("$REG_PID")
  listening udp "$port" && listening tcp "$port" && sleep 0.3 # Kamailio forks its workers
}
stop_registrar() {
  kill "$REG_PID" 2>/dev/null
  wait "$REG_PID" 2>/dev/null
}
name_of() { case $1 in kamailio) echo Kamailio ;; *) echo "sipd($1)" ;; esac; }

# ---- the checks against one registrar -----------------------------------------------------
check_baresip() { # TARGET
  local t=$1 port=${PORT[$1]} n="baresip register (digest) -> $(name_of "$1")" d
  d=$(mktemp -d "$out/baresip-$t.XXXX")
  # Headless baresip 1.0 (Debian baresip-core): an IP literal as net_interface, no audio
  # device; the account registers to its AOR's host every regint seconds and sends an
  # un-REGISTER (Expires 0) when it quits at -t.
  cat >"$d/config" <<EOF
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:5084
audio_player		none,none
audio_source		none,none
audio_alert		none,none
dns_server		127.0.0.1:5353
module_path		/usr/lib/baresip/modules
module_tmp		account.so
module_app		menu.so
EOF
  echo "<sip:alice@127.0.0.1:$port>;auth_user=alice;auth_pass=$PASSWORD;regint=60" >"$d/accounts"
  free 5084
  timeout -k 2 15 baresip -f "$d" -t 4 </dev/null >"$d/baresip.log" 2>&1 &
  local pid=$! seen=no
  wait_binding "baresip-$t-while" "$port" alice "127.0.0.1:$port" "@127.0.0.1:5084" "$pid" && seen=yes
  wait "$pid"
  local rc=$?
  if [ $rc = 0 ] && [ $seen = yes ] && grep -qE '\} 200 OK .*\[1 binding\]' "$d/baresip.log"; then
    ok "$n" "200 OK [1 binding], listed by a query"
  else
    local why=""
    grep -q "Function not implemented" "$d/baresip.log" &&
      why=" (baresip 1.0 knows only MD5 and gives up at any other challenge; sipd offered $(first_algorithm "$port") first)"
    failed "$n" "baresip rc=$rc, binding listed: $seen; log $d/baresip.log$why"
  fi
  n="baresip un-registers on quit -> $(name_of "$1")"
  if [ $seen = no ]; then
    failed "$n" "it was never seen registered"
  elif unregistered "baresip-$t-after" "$port" alice "127.0.0.1:$port"; then
    ok "$n" "a query lists no binding"
  else
    failed "$n" "a query still lists a binding, or failed: $out/baresip-$t-after.query.*"
  fi
}

check_linphonec() { # TARGET
  local t=$1 port=${PORT[$1]} n="linphonec register (digest) -> $(name_of "$1")" h
  # linphonec 5.1 (Debian linphone-cli) reads commands from stdin; it needs a writable HOME
  # with .local/share/linphone (else it never opens its SIP ports) and rewrites its -c file.
  h=$(mktemp -d "$out/linphonec-$t.XXXX")
  mkdir -p "$h/.local/share/linphone" "$h/xdg"
  chmod 700 "$h/xdg"
  cat >"$h/linphonerc" <<EOF
[sip]
sip_port=5092
sip_tcp_port=5092
sip_tls_port=0
bind_address=127.0.0.1
guess_hostname=0
contact="bob" <sip:bob@127.0.0.1>
use_ipv6=0
register_only_when_network_is_up=0
[rtp]
bind_address=127.0.0.1
audio_rtp_port=24000
[video]
automatically_initiate=0
automatically_accept=0
capture=0
display=0
EOF
  free 5092
  (
    sleep 1.5
    echo "register sip:bob@127.0.0.1:$port sip:127.0.0.1:$port $PASSWORD"
    sleep 2.5
    echo "proxy show default"
    sleep 0.5
    echo quit
    sleep 2
  ) | HOME=$h XDG_RUNTIME_DIR=$h/xdg timeout -k 2 20 linphonec -c "$h/linphonerc" -d 0 >"$h/out.txt" 2>&1 &
  local pid=$! seen=no
  # linphonec registers sip:bob@127.0.0.1 (it leaves the port out of To)
  wait_binding "linphonec-$t-while" "$port" bob 127.0.0.1 "@127.0.0.1:5092" "$pid" && seen=yes
  wait "$pid"
  local rc=$?
  if [ $seen = yes ] && grep -q "registered: yes" "$h/out.txt"; then
    ok "$n" "registered: yes, listed by a query"
  else
    failed "$n" "linphonec rc=$rc, binding listed: $seen; output $h/out.txt"
  fi
  n="linphonec un-registers on quit -> $(name_of "$1")"
  if [ $seen = no ]; then
    failed "$n" "it was never seen registered"
  elif unregistered "linphonec-$t-after" "$port" bob 127.0.0.1; then
    ok "$n" "a query lists no binding"
  else
    failed "$n" "a query still lists a binding, or failed: $out/linphonec-$t-after.query.*"
  fi
}

check_sipp() { # TARGET
  local t=$1 port=${PORT[$1]} tr n
  for tr in u1 t1; do
    n="sipp -au/-ap register ($([ $tr = u1 ] && echo UDP || echo TCP)) -> $(name_of "$t")"
    if sipp_run "sipp-$t-$tr" "$ROOT/bench/sipp/register_auth_uac.xml" "$port" carol "$PASSWORD" -t "$tr"; then
      ok "$n" "401, then 200"
    else
      local why=""
      grep -q "must use MD5" "$out/sipp-$t-$tr.sipp-errors.log" 2>/dev/null &&
        why=" (SIPp 3.6.1 answers only the first challenge, and only MD5: $(name_of "$t") offered $(first_algorithm "$port") first)"
      failed "$n" "sipp failed: $out/sipp-$t-$tr.sipp-errors.log$why"
    fi
  done
  n="sipp -au/-ap wrong password refused by $(name_of "$t")"
  if sipp_run "sipp-$t-wrong" "$ROOT/bench/sipp/register_auth_uac.xml" "$port" carol WRONG -timeout 4s; then
    failed "$n" "a wrong password was accepted"
  elif grep -q "must use MD5" "$out/sipp-$t-wrong.sipp-errors.log"; then
    failed "$n" "SIPp cannot answer $(first_algorithm "$port") (see above)"
  elif grep -qE 'SIP/2.0 (401|403)' "$out/sipp-$t-wrong.sipp-errors.log"; then
    ok "$n" "answered $(grep -oE 'SIP/2.0 (401|403)' "$out/sipp-$t-wrong.sipp-errors.log" | head -1 | cut -c9-)"
  else
    failed "$n" "no 401/403 to the wrong digest: $out/sipp-$t-wrong.sipp-errors.log"
  fi
}

check_sipc() { # TARGET
  local t=$1 port=${PORT[$1]} n="sipc register (digest) -> $(name_of "$1")"
  local help
  help=$("$SIPC_BIN" --help 2>&1) # (not piped into grep -q: with pipefail, SIGPIPE would fail it)
  if [[ $help != *register* ]]; then
    failed "$n" "this sipc has no register command"
    return
  fi
  timeout 20 "$SIPC_BIN" register "sip:127.0.0.1:$port" --aor "sip:dave@127.0.0.1" --user dave \
    --password "$PASSWORD" --expires 60 --for 2s >"$out/sipc-$t.out" 2>&1 &
  local pid=$! seen=no
  wait_binding "sipc-$t-while" "$port" dave 127.0.0.1 "dave@127.0.0.1:" "$pid" && seen=yes
  wait "$pid"
  local rc=$?
  if [ $rc = 0 ] && [ $seen = yes ]; then
    ok "$n" "every REGISTER got a 2xx, binding listed by a query"
  else
    failed "$n" "sipc rc=$rc, binding listed: $seen; output $out/sipc-$t.out"
  fi
  n="sipc un-registers at the end -> $(name_of "$1")"
  if [ $seen = no ]; then
    failed "$n" "it was never seen registered"
  elif unregistered "sipc-$t-after" "$port" dave 127.0.0.1; then
    ok "$n" "a query lists no binding"
  else
    failed "$n" "a query still lists a binding, or failed: $out/sipc-$t-after.query.*"
  fi
}

# ---- run ----------------------------------------------------------------------------------
# tshark captures everything sent to or from the registrars' ports
filter="port ${PORT[mio]} or port ${PORT[tokio]} or port ${PORT[kamailio]}"
timeout 120 tshark -i lo -f "$filter" -w "$out/register.pcapng" >/dev/null 2>"$out/tshark.err" &
TSHARK=$!
PIDS+=("$TSHARK")
for _ in $(seq 50); do grep -q "Capturing on" "$out/tshark.err" 2>/dev/null && break; sleep 0.1; done

# sipd offers one challenge per algorithm, SHA-256 first (RFC 8760 section 2.4). SIPp 3.6.1
# answers only the first challenge, only with MD5, and baresip 1.0 fails on any challenge of
# an algorithm it does not know: they run against a sipd offering MD5 alone (--algorithms
# MD5); linphonec and sipc answer SHA-256 and run against the default.
for t in $TARGETS; do
  if [ "$t" = kamailio ]; then
    if start_registrar kamailio; then
      check_baresip kamailio
      check_linphonec kamailio
      check_sipp kamailio
    else
      failed "register checks -> Kamailio" "Kamailio did not start"
    fi
    stop_registrar
    continue
  fi
  help=$("${SIPD[$t]:-false}" --help 2>&1)
  if [[ $help != *--registrar* ]]; then
    failed "register checks -> sipd($t)" "this sipd has no --registrar"
    continue
  fi
  if start_registrar "$t"; then
    check_linphonec "$t"
    check_sipc "$t"
  else
    failed "register checks -> sipd($t)" "sipd did not start"
  fi
  stop_registrar
  md5_only=()
  [[ $help == *--algorithms* ]] && md5_only=(--algorithms MD5)
  if start_registrar "$t" "${md5_only[@]}"; then
    check_baresip "$t"
    check_sipp "$t"
  else
    failed "register checks -> sipd($t) ${md5_only[*]}" "sipd did not start"
  fi
  stop_registrar
done

if start_registrar kamailio; then
  check_sipc kamailio
else
  failed "sipc register (digest) -> Kamailio" "Kamailio did not start"
fi
stop_registrar

# the capture: every datagram or segment on those ports is well-formed SIP
sleep 0.5
kill "$TSHARK" 2>/dev/null
wait "$TSHARK" 2>/dev/null
decode=()
for p in "${PORT[@]}"; do decode+=(-d "udp.port==$p,sip" -d "tcp.port==$p,sip"); done
n="tshark: register traffic well-formed"
registers=$(tshark -r "$out/register.pcapng" "${decode[@]}" -Y 'sip.Method == "REGISTER"' 2>/dev/null | wc -l)
bad=$(tshark -r "$out/register.pcapng" "${decode[@]}" -Y '_ws.malformed || _ws.expert.severity == error' 2>/dev/null | wc -l)
nonsip=$(tshark -r "$out/register.pcapng" "${decode[@]}" -Y 'udp && !sip' 2>/dev/null | wc -l)
if [ "$registers" -gt 0 ] && [ "$bad" = 0 ] && [ "$nonsip" = 0 ]; then
  ok "$n" "$registers REGISTERs, 0 malformed, 0 non-SIP datagrams"
else
  failed "$n" "$registers REGISTERs, $bad malformed or errors, $nonsip non-SIP datagrams: $out/register.pcapng"
fi

# Digest for real: each client got a 401 from the registrar, then sent a REGISTER with
# Authorization that got a 200 (SIPp's scenario fails by itself without the 401; baresip,
# linphonec and sipc would also be content with a registrar that never challenges).
tshark -r "$out/register.pcapng" "${decode[@]}" -Y sip -T fields -E separator=';' -e udp.srcport -e udp.dstport \
  -e sip.Method -e sip.Status-Code -e sip.CSeq.method -e sip.Authorization 2>/dev/null >"$out/register-flows.txt"
digest_seen() { # REGISTRAR_PORT CLIENT (baresip | linphonec | sipc): 401, then Authorization, then 200
  awk -F';' -v reg="$1" -v who="$2" '
    function client(p) { return p == 5084 ? "baresip" : p == 5092 ? "linphonec" : p == 5430 ? "sipp" : p == 5431 ? "query" : "sipc" }
    $2 == reg && $3 == "REGISTER" && client($1) == who && $6 != "" { auth = 1 }
    $1 == reg && $5 == "REGISTER" && client($2) == who && $4 == 401 { challenged = 1 }
    $1 == reg && $5 == "REGISTER" && client($2) == who && $4 == 200 && challenged && auth { ok = 1 }
    END { exit !ok }' "$out/register-flows.txt"
}
for t in $TARGETS kamailio; do
  case $t in kamailio) [ -n "${digest_done:-}" ] && continue; digest_done=1 ;; esac
  for who in baresip linphonec sipc; do
    # against Kamailio only sipc runs, unless Kamailio is one of the targets
    [ "$t" = kamailio ] && [ "$who" != sipc ] && [[ " $TARGETS " != *" kamailio "* ]] && continue
    n="$who answered the 401 with digest -> $(name_of "$t")"
    if digest_seen "${PORT[$t]}" "$who"; then
      ok "$n" "401, REGISTER with Authorization, 200"
    else
      failed "$n" "no 401 then REGISTER with Authorization then 200 in $out/register-flows.txt"
    fi
  done
done

[ "$FAILED" = 0 ]
