#!/usr/bin/env bash
# sipd as a stateful proxy-registrar (RFC 3261 section 16, RFC 5658) against third-party peers,
# on loopback, bounded (about a minute):
#
#   for each proxy (sipd on the mio driver, sipd on the tokio driver), started four times as
#       sipd --proxy --domain example.test --record-route [--route-to NEXT_HOP]
#            [--registrar --realm example.test --user alice:secret ... --algorithms MD5]
#   1. no --route-to, with users:
#     fork                one AOR (sip:carol@example.test) registered with two contacts by one
#                         REGISTER (tests/interop/register_contacts.py, digest); a call from
#                         SIPp (uac_fork.xml) rings both SIPp UAS: the first answers 200 after
#                         500 ms (uas_fork_answer.xml), the other gets CANCEL from the proxy
#                         and answers 200 to it and 487 to the INVITE (uas_fork_cancel.xml).
#                         Passes when the three SIPp exit 0.
#     REGISTER via Route  a REGISTER with digest carrying a Route to the proxy (what a UA with
#                         an outbound proxy sends, RFC 3261 8.1.2) gets 401, then 200
#   2. no --route-to, no users (REGISTER needs no credentials):
#     baresip call        baresip bob (auto-answer) and baresip alice both register through
#                         the proxy as their outbound proxy, alice calls sip:bob@example.test
#                         through it, the call is established, and alice hangs up (BYE) when
#                         she quits
#   3. --route-to sip:127.0.0.1:5620 (the SIPp UAS, UDP):
#     sipp rr UDP         SIPp uac_rr -> proxy -> SIPp uas_rr, all over UDP, CALLS (500) calls;
#                         ACK and BYE follow the Record-Route (tests/interop/sipp/uac_rr.xml
#                         and uas_rr.xml: copies of ../shared/peers/scen)
#     registered callee   one contact for carol, a call to her: the ACK and BYE (Request-URI
#                         her contact, Route the proxy) must reach her, not the --route-to
#   4. --route-to sip:127.0.0.1:5620;transport=tcp:
#     sipp rr TCP         the same as 3 over TCP on both sides
#     sipp rr UDP->TCP    UAC over UDP, the proxy forwards over TCP to the UAS on TCP, and the
#                         responses come back across (two Record-Route entries, RFC 5658)
#                         Each sipp rr check passes when both SIPp exit 0 (every call done).
#   tshark              the capture of all of the above has no malformed SIP (no expert error)
#                       and no non-SIP datagram on the proxies' ports
#
# Prints one line per check: `interop: NAME: ok` or `interop: NAME: FAILED (...)` (counted by
# scripts/test.sh); exit 0 when all passed. Missing peers are installed with apt-get
# (Debian packages sip-tester, baresip-core, tshark; kamailio when a target).
#
# Environment: SIP_PROXY_TARGETS ("mio tokio"; may also name kamailio, to run every check
# against Kamailio 5.6 with tests/interop/kamailio-proxy.cfg, e.g. to check the harness),
# SIPD_MIO, SIPD_TOKIO (prebuilt binaries; default: cargo build --release), CALLS (500),
# RATE (500 calls/s).
# Ports (127.0.0.1): proxies 5600 (mio), 5601 (tokio), 5602 (Kamailio); SIPp UAC 5610 and
# 5611, SIPp UAS 5620, 5621, 5622; REGISTER helper from any port; baresip bob 5080 (TLS
# 5081) and alice 5082 (5083), RTP 20000-21999. Every process runs under `timeout` and is
# stopped by its PID.
set -uo pipefail
cd "${SIP_ROOT:-$(dirname "$0")/..}"
ROOT=$(pwd)
TARGETS=${SIP_PROXY_TARGETS:-mio tokio}
CALLS=${CALLS:-500}
RATE=${RATE:-500}
SCEN=$ROOT/tests/interop/sipp
out=$(mktemp -d /tmp/sip-interop-proxy.XXXXXX)
mkdir -p "$out/bin"
DOMAIN=example.test
PASSWORD=secret
declare -A PORT=([mio]=5600 [tokio]=5601 [kamailio]=5602)
UAC_PORT=5610
FORK_UAC_PORT=5611
UAS_PORT=5620
FORK_A_PORT=5621
FORK_B_PORT=5622
BOB_PORT=5080
ALICE_PORT=5082
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
needs=(sipp:sip-tester baresip:baresip-core tshark:tshark)
[[ " $TARGETS " == *" kamailio "* ]] && needs+=(kamailio:kamailio)
for need in "${needs[@]}"; do
  install "${need%%:*}" "${need#*:}" || echo "interop-proxy: could not install ${need#*:}" >&2
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
  *) echo "interop-proxy: unknown target $t (mio, tokio, kamailio)" >&2; exit 2 ;;
  esac
done

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
name_of() { case $1 in kamailio) echo Kamailio ;; *) echo "sipd($1)" ;; esac; }
csv_last() { # CSV COLUMN: the value on the last line of SIPp's statistics
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}

PROXY_PID=""
start_proxy() { # TARGET none|udp|tcp|open: --route-to none, or to the SIPp UAS over UDP or
  # TCP; open: no --route-to and no users (REGISTER needs no credentials). Sets PROXY_PID (its
  # timeout)
  local t=$1 port=${PORT[$1]} route_to=() extra=() users=()
  [ "$2" = open ] || users=(--registrar --realm "$DOMAIN" --user "alice:$PASSWORD" --user "bob:$PASSWORD"
    --user "carol:$PASSWORD")
  case $2 in
  udp) route_to=(--route-to "sip:127.0.0.1:$UAS_PORT") ;;
  tcp) route_to=(--route-to "sip:127.0.0.1:$UAS_PORT;transport=tcp") ;;
  esac
  free udp "$port" && free tcp "$port" || return 1
  case $t in
  kamailio)
    [ "$2" = tcp ] && extra=(-A ROUTE_TCP) # (Kamailio always has a next hop)
    timeout 120 kamailio -f "$ROOT/tests/interop/kamailio-proxy.cfg" -l "udp:127.0.0.1:$port" \
      -l "tcp:127.0.0.1:$port" "${extra[@]}" -DD -E -m 128 -P "$out/kamailio.pid" >>"$out/kamailio.log" 2>&1 &
    ;;
  *)
    local help
    help=$("${SIPD[$t]}" --help 2>&1)
    [ "$2" != open ] && [[ $help == *--algorithms* ]] && extra=(--algorithms MD5) # SIPp, baresip 1.0: MD5 only
    local cmd=("${SIPD[$t]}" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --log warn
      --proxy --domain "$DOMAIN" --record-route "${route_to[@]}" "${users[@]}" "${extra[@]}")
    echo "${cmd[*]}" >>"$out/sipd-$t.cmd"
    timeout 120 "${cmd[@]}" >>"$out/sipd-$t.log" 2>&1 &
    ;;
  esac
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  listening udp "$port" && listening tcp "$port" && sleep 0.3 # Kamailio forks its workers
}
stop_proxy() {
  kill "$PROXY_PID" 2>/dev/null
  wait "$PROXY_PID" 2>/dev/null
}

# ---- the checks against one proxy ---------------------------------------------------------
check_sipp_rr() { # TARGET UAC_TRANSPORT UAS_TRANSPORT (u1|t1)
  local t=$1 port=${PORT[$1]} ua=$2 us=$3 label n d
  label="$([ "$ua" = u1 ] && echo UDP || echo TCP)"
  [ "$ua" != "$us" ] && label="$label in, $([ "$us" = u1 ] && echo UDP || echo TCP) out"
  n="sipp uac_rr -> $(name_of "$t") -> sipp uas_rr ($label), $CALLS calls"
  d="$out/sipp-$t-$ua-$us"
  mkdir -p "$d"
  free udp "$UAS_PORT" && free tcp "$UAS_PORT"
  # UAS: -m CALLS, exits by itself 4 s after the last BYE (uas_rr.xml's timewait)
  (cd "$d" && exec timeout 60 sipp -sf "$SCEN/uas_rr.xml" -i 127.0.0.1 -p "$UAS_PORT" -t "$us" -m "$CALLS" \
    -timeout 50s -timeout_error -nostdin -max_socket 2000 -buff_size 1048576 \
    -trace_stat -stf "$d/uas.csv" -trace_err -error_file "$d/uas_err.log" >"$d/uas.out" 2>&1) &
  local uas=$!
  PIDS+=("$uas")
  if ! listening "$([ "$us" = t1 ] && echo tcp || echo udp)" "$UAS_PORT"; then
    failed "$n" "SIPp UAS did not start"
    return
  fi
  (cd "$d" && exec timeout 60 sipp -sf "$SCEN/uac_rr.xml" "127.0.0.1:$port" -i 127.0.0.1 -p "$UAC_PORT" -t "$ua" \
    -r "$RATE" -rp 1000 -l "$CALLS" -m "$CALLS" -timeout 50s -timeout_error -recv_timeout 10s -nostdin \
    -max_socket 2000 -buff_size 1048576 -trace_stat -stf "$d/uac.csv" -trace_err -error_file "$d/uac_err.log" \
    >"$d/uac.out" 2>&1)
  local rc=$?
  wait "$uas"
  local urc=$?
  local okc unexp uok
  okc=$(csv_last "$d/uac.csv" 'SuccessfulCall(C)')
  unexp=$(csv_last "$d/uac.csv" 'FailedUnexpectedMessage(C)')
  uok=$(csv_last "$d/uas.csv" 'SuccessfulCall(C)')
  if [ "$rc" = 0 ] && [ "$urc" = 0 ] && [ "$okc" = "$CALLS" ] && [ "$uok" = "$CALLS" ]; then
    ok "$n" "both SIPp exit 0, $okc calls completed on each side"
  else
    failed "$n" "SIPp UAC rc=$rc ($okc ok, $unexp unexpected), UAS rc=$urc ($uok ok); $d"
  fi
}

check_fork() { # TARGET fork|single
  # fork: one AOR registered with two contacts; the first answers, the other gets CANCEL.
  # single: one contact, which answers, while the proxy has a --route-to: the ACK and BYE
  # (Request-URI the contact, after the proxy's own Route) must reach the contact too.
  local t=$1 mode=$2 port=${PORT[$1]} n d contacts
  if [ "$mode" = fork ]; then
    n="fork: one AOR, two contacts, the first answers, the other gets CANCEL and 487 -> $(name_of "$t")"
    contacts=("sip:carol@127.0.0.1:$FORK_A_PORT" "sip:carol@127.0.0.1:$FORK_B_PORT")
  else
    n="call to a registered user with --route-to set: ACK and BYE reach the contact -> $(name_of "$t")"
    contacts=("sip:carol@127.0.0.1:$FORK_A_PORT")
  fi
  d="$out/$mode-$t"
  mkdir -p "$d"
  if ! timeout 10 python3 "$ROOT/tests/interop/register_contacts.py" 127.0.0.1 "$port" "sip:carol@$DOMAIN" 60 \
    "${contacts[@]}" --user carol --password "$PASSWORD" >"$d/register.out" 2>&1; then
    failed "$n" "the REGISTER failed: $(tail -1 "$d/register.out")"
    return
  fi
  if [ "$(grep -oE "127\.0\.0\.1:($FORK_A_PORT|$FORK_B_PORT)" "$d/register.out" | sort -u | wc -l)" != ${#contacts[@]} ]; then
    failed "$n" "the 200 to the REGISTER does not list the ${#contacts[@]} contacts: $d/register.out"
    return
  fi
  free udp "$FORK_A_PORT" && free udp "$FORK_B_PORT"
  local common=(-i 127.0.0.1 -t u1 -m 1 -timeout 15s -timeout_error -nostdin)
  (cd "$d" && exec timeout 20 sipp -sf "$SCEN/uas_fork_answer.xml" -p "$FORK_A_PORT" -d 500 "${common[@]}" \
    -trace_msg -message_file "$d/answer_msg.log" -trace_err -error_file "$d/answer_err.log" >"$d/answer.out" 2>&1) &
  local a=$! b="" brc=0
  PIDS+=("$a")
  if [ "$mode" = fork ]; then
    (cd "$d" && exec timeout 20 sipp -sf "$SCEN/uas_fork_cancel.xml" -p "$FORK_B_PORT" "${common[@]}" \
      -trace_msg -message_file "$d/cancel_msg.log" -trace_err -error_file "$d/cancel_err.log" >"$d/cancel.out" 2>&1) &
    b=$!
    PIDS+=("$b")
    listening udp "$FORK_B_PORT"
  fi
  listening udp "$FORK_A_PORT"
  (cd "$d" && exec timeout 20 sipp -sf "$SCEN/uac_fork.xml" "127.0.0.1:$port" -s carol -p "$FORK_UAC_PORT" "${common[@]}" \
    -trace_msg -message_file "$d/uac_msg.log" -trace_err -error_file "$d/uac_err.log" >"$d/uac.out" 2>&1)
  local rc=$?
  wait "$a"
  local arc=$?
  if [ -n "$b" ]; then
    wait "$b"
    brc=$?
  fi
  local what="caller and answering contact"
  [ "$mode" = fork ] && what="caller, answering contact and cancelled contact"
  if [ "$rc" = 0 ] && [ "$arc" = 0 ] && [ "$brc" = 0 ]; then
    ok "$n" "$what: SIPp exit 0"
  else
    local why=""
    why=$(grep -m1 -oE "received 'SIP/2.0 [0-9]{3}[^[:cntrl:]']*" "$d/uac_err.log" 2>/dev/null | sed "s/received '//")
    failed "$n" "SIPp exit: caller $rc${why:+ (got $why)}, answering contact $arc$([ "$mode" = fork ] && echo ", cancelled contact $brc"); $d"
  fi
}

check_register_via_route() { # TARGET
  # RFC 3261 8.1.2 and 16.4: a UA with an outbound proxy sends its REGISTER with a Route to
  # the proxy; the proxy removes its own Route, and its registrar answers (here with digest).
  local t=$1 port=${PORT[$1]} n d
  n="REGISTER with digest through a Route to the proxy (outbound proxy) -> $(name_of "$t")"
  d="$out/register-route-$t"
  mkdir -p "$d"
  if timeout 10 python3 "$ROOT/tests/interop/register_contacts.py" 127.0.0.1 "$port" "sip:alice@$DOMAIN" 60 \
    "sip:alice@127.0.0.1:$FORK_B_PORT" --route "sip:127.0.0.1:$port;lr" --user alice --password "$PASSWORD" \
    >"$d/register.out" 2>&1 && grep -q "127.0.0.1:$FORK_B_PORT" "$d/register.out"; then
    ok "$n" "200 listing the contact"
  else
    failed "$n" "$(tail -1 "$d/register.out")"
  fi
}

baresip_dir() { # NAME SIP_PORT RTP_PORTS ACCOUNT: a scratch config dir for headless baresip 1.0
  local d
  d=$(mktemp -d "$out/baresip-$1.XXXX")
  # net_interface must be an IP literal; ausine (a 440 Hz tone) needs 48 kHz stereo, and no
  # player module is loaded, so no sound card is needed (../shared/interop/PLAYBOOK.md).
  cat >"$d/config" <<EOF
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:$2
call_local_timeout	30
audio_player		none,none
audio_source		ausine,440
audio_alert		none,none
ausrc_srate		48000
ausrc_channels		2
rtcp_mux		no
rtp_ports		$3
dns_server		127.0.0.1:5353
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module_tmp		account.so
module_app		menu.so
EOF
  echo "$4" >"$d/accounts"
  echo "$d"
}

check_baresip() { # TARGET
  local t=$1 port=${PORT[$1]} n="baresip alice calls baresip bob, both registered -> $(name_of "$1")"
  local outbound="outbound=\"sip:127.0.0.1:$port\"" # baresip adds ;lr itself
  local bob alice
  bob=$(baresip_dir bob "$BOB_PORT" 20000-20999 \
    "<sip:bob@$DOMAIN>;auth_user=bob;auth_pass=$PASSWORD;$outbound;regint=60;answermode=auto")
  alice=$(baresip_dir alice "$ALICE_PORT" 21000-21999 \
    "<sip:alice@$DOMAIN>;auth_user=alice;auth_pass=$PASSWORD;$outbound;regint=60")
  free udp "$BOB_PORT" && free udp "$ALICE_PORT"
  timeout -k 2 20 baresip -f "$bob" -t 15 </dev/null >"$bob/baresip.log" 2>&1 &
  local bpid=$!
  PIDS+=("$bpid")
  local i registered=no
  for i in $(seq 50); do
    grep -qE '\} 200 OK .*\[1 binding\]' "$bob/baresip.log" && registered=yes && break
    kill -0 "$bpid" 2>/dev/null || break
    sleep 0.1
  done
  if [ $registered = no ]; then
    kill "$bpid" 2>/dev/null
    wait "$bpid" 2>/dev/null
    failed "$n" "bob did not register: $bob/baresip.log"
    return
  fi
  # alice registers, dials at once, and hangs up (BYE) when she quits at -t 4
  timeout -k 2 15 baresip -f "$alice" -t 4 -e "/dial sip:bob@$DOMAIN" </dev/null >"$alice/baresip.log" 2>&1
  local arc=$?
  sleep 0.5
  kill "$bpid" 2>/dev/null # bob un-registers and quits
  wait "$bpid" 2>/dev/null
  local why=()
  [ $arc = 0 ] || why+=("alice exit $arc")
  grep -qE '\} 200 OK .*\[1 binding\]' "$alice/baresip.log" || why+=("alice not registered")
  grep -q "Call established: sip:bob@$DOMAIN" "$alice/baresip.log" ||
    why+=("no 'Call established' at alice$(grep -m1 -oE 'session closed: [0-9]{3}[^[:cntrl:]]*' "$alice/baresip.log" | sed 's/^/: /')")
  grep -q "Call established: sip:alice@$DOMAIN" "$bob/baresip.log" || why+=("no 'Call established' at bob")
  grep -qE "Call with sip:alice@$DOMAIN terminated" "$bob/baresip.log" || why+=("bob saw no BYE")
  if [ ${#why[@]} = 0 ]; then
    ok "$n" "both registered, call established, BYE from alice reached bob"
  else
    local IFS=,
    failed "$n" "${why[*]}; logs $alice/baresip.log $bob/baresip.log"
  fi
}

# ---- run ----------------------------------------------------------------------------------
filter="portrange 5600-5699 or port $BOB_PORT or port $ALICE_PORT"
timeout 300 tshark -i lo -f "$filter" -w "$out/proxy.pcapng" >/dev/null 2>"$out/tshark.err" &
TSHARK=$!
PIDS+=("$TSHARK")
for _ in $(seq 50); do grep -q "Capturing on" "$out/tshark.err" 2>/dev/null && break; sleep 0.1; done

for t in $TARGETS; do
  if [ "$t" != kamailio ]; then
    help=$("${SIPD[$t]:-false}" --help 2>&1)
    if [[ $help != *--proxy* ]]; then
      failed "proxy checks -> sipd($t)" "this sipd has no --proxy"
      continue
    fi
  fi
  if start_proxy "$t" none; then
    check_fork "$t" fork
    check_register_via_route "$t"
  else
    failed "proxy checks (no --route-to) -> $(name_of "$t")" "the proxy did not start"
  fi
  stop_proxy
  # baresip 1.0 registers through its outbound proxy (a Route), and answers MD5 only
  if start_proxy "$t" open; then
    check_baresip "$t"
  else
    failed "proxy checks (no users) -> $(name_of "$t")" "the proxy did not start"
  fi
  stop_proxy
  if start_proxy "$t" udp; then
    check_sipp_rr "$t" u1 u1
    check_fork "$t" single
  else
    failed "proxy checks (next hop UDP) -> $(name_of "$t")" "the proxy did not start"
  fi
  stop_proxy
  if start_proxy "$t" tcp; then
    check_sipp_rr "$t" t1 t1
    check_sipp_rr "$t" u1 t1
  else
    failed "proxy checks (next hop TCP) -> $(name_of "$t")" "the proxy did not start"
  fi
  stop_proxy
done

# the capture: every datagram or segment on those ports is well-formed SIP
sleep 0.5
kill "$TSHARK" 2>/dev/null
wait "$TSHARK" 2>/dev/null
decode=(-d "udp.port==5600-5699,sip" -d "tcp.port==5600-5699,sip")
n="tshark: proxy traffic well-formed"
counts=$(tshark -r "$out/proxy.pcapng" "${decode[@]}" -q -z io,stat,0,"sip","_ws.malformed || _ws.expert.severity == error","udp && !sip" 2>/dev/null |
  awk -F'|' '/<>/ { gsub(/ /, ""); print $3, $5, $7 }')
read -r sipn bad nonsip <<<"${counts:-0 0 0}"
if [ "${sipn:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ] && [ "${nonsip:-1}" = 0 ]; then
  ok "$n" "$sipn SIP frames, 0 malformed, 0 non-SIP datagrams"
else
  failed "$n" "${sipn:-?} SIP frames, ${bad:-?} malformed or errors, ${nonsip:-?} non-SIP datagrams: $out/proxy.pcapng"
fi

[ "$FAILED" = 0 ]
