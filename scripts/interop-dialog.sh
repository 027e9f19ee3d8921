#!/usr/bin/env bash
# Dialogs and sessions (RFC 3261 sections 12-15, RFC 3262, 3264, 3311, 4028) against
# third-party peers, on loopback, bounded (about 75 s; run by scripts/test.sh):
#
#   for each sipd (mio and tokio drivers), started as
#       sipd --listen udp:127.0.0.1:PORT --listen tcp:127.0.0.1:PORT --ring 300ms
#            [--session-expires 90]          (when its --help offers it)
#     SIPp scenarios written for this project (tests/interop/sipp/dialog_*.xml):
#       plain call UDP      dialog_plain.xml: INVITE with PCMU/PCMA/telephone-event, the 200
#                           carries an SDP answer with a common codec, ACK and BYE along the
#                           route set and remote target
#       plain call TCP      the same over TCP; sipd's Contact in the 200 must say
#                           ;transport=tcp (RFC 3261 12.1.1, 8.1.1.8: the ACK and BYE must
#                           come back on TCP)
#       100rel              dialog_100rel.xml: INVITE with Require: 100rel; a reliable 180/183
#                           (Require: 100rel, RSeq, the SDP answer), PRACK with RAck, 200 to
#                           the PRACK, 200 to the INVITE, ACK, BYE
#       hold                dialog_hold.xml: re-INVITE with a sendonly offer, the answer must
#                           be recvonly (RFC 3264 6.1); then sendrecv again; BYE
#       UPDATE              dialog_update.xml: UPDATE with a sendonly offer (answer recvonly),
#                           then with sendrecv, in a confirmed dialog (RFC 3311)
#       session timer       dialog_timer_refresh.xml: Session-Expires: 90;refresher=uac, the
#                           200 says so with Require: timer; a refresh by re-INVITE, one by
#                           UPDATE, each 200 with Session-Expires; the call goes on; BYE
#       488                 dialog_488.xml: an offer of GSM and G729 only gets 488
#       session expiry      dialog_timer_expiry.xml, started first and run in the background:
#                           the caller never refreshes, sipd must send BYE (RFC 4028 10; about
#                           60 s after the 200, at most 95 s)
#     baresip (Debian baresip-core 1.0) calls sipd and hangs up, over UDP and over TCP, and
#       over TCP to a second sipd with a TCP listener only (port 15062, 15063): the call is
#       established, baresip's ACK and BYE reach sipd on the transport of the call (a Contact
#       without ;transport=tcp sends them to UDP: the reported bug; with no UDP listener the
#       call hangs), the BYE gets 200 (from baresip's own SIP trace, -s)
#     Kamailio record-route: 20 SIPp calls (tests/interop/sipp/uac_rr.xml) through Kamailio
#       5.6 (tests/interop/kamailio-rr.cfg: record_route, loose_route for in-dialog requests)
#       to sipd; every call must complete (sipd must copy Record-Route into its 1xx and 2xx,
#       RFC 3261 12.1.1, or the ACK and BYE carry no Route and Kamailio refuses them)
#     dialogs open 0        sipd's summary at exit, after all of the above
#   sipc calls baresip (auto-answer), `--reinvite-after 1s`: a sendonly re-INVITE that baresip
#     answers recvonly (seen in its SIP trace), then sendrecv, then BYE; sipc exits 0
#   fork: sipc calls sip:fork@ a stateless forking relay (tests/interop/fork_relay.py,
#     record-routing, never cancels) that copies the INVITE to two SIPp UASs
#     (uas_fork_200.xml) that both answer 200 at once: sipc must ACK both 2xx, keep one, end
#     the other with BYE, and hang up the kept one; sipc and both SIPp exit 0
#   tshark: the capture of all of the above has no malformed SIP packet, no expert error and
#     no non-SIP datagram on the SIP ports
#
# Prints one line per check: `interop: NAME: ok (...)` or `interop: NAME: FAILED (...)`
# (counted by scripts/test.sh), then a summary line; exit 0 when all passed. Missing peers are
# installed with apt-get (Debian packages sip-tester, baresip-core, kamailio, tshark).
#
# Environment: SIP_DIALOG_DRIVERS ("mio tokio"), SIPD_MIO, SIPD_TOKIO, SIPC (prebuilt
# binaries; default: cargo build --release), KAMAILIO_CALLS (20).
# Ports (127.0.0.1): sipd mio 15060, tokio 15061 (UDP and TCP), 15062, 15063 (TCP); SIPp 5070 and 5071 (the
# fork's UASs), 15100/15101 (session expiry callers), 15110 (Kamailio caller); baresip 5080
# (called by sipc) and 5082 (calls sipd), RTP 20000-21999; Kamailio 15200; fork relay 15300.
# Every process runs under `timeout` and is stopped by its PID.
# The longer runs (a session kept for 120 s by refreshes, many sessions expiring) are in
# scripts/interop-dialog-long.sh.
set -uo pipefail
cd "${SIP_ROOT:-$(dirname "$0")/..}"
ROOT=$(pwd)
START=$(date +%s)
DRIVERS=${SIP_DIALOG_DRIVERS:-mio tokio}
KAMAILIO_CALLS=${KAMAILIO_CALLS:-20}
SCEN=$ROOT/tests/interop/sipp
out=$(mktemp -d /tmp/sip-interop-dialog.XXXXXX)
mkdir -p "$out/bin"
declare -A PORT=([mio]=15060 [tokio]=15061)
declare -A TCP_ONLY_PORT=([mio]=15062 [tokio]=15063)
declare -A EXPIRY_PORT=([mio]=15100 [tokio]=15101)
SIPP_PORT=5070
FORK_A=5070
FORK_B=5071
KAM_UAC_PORT=15110
KAM_PORT=15200
RELAY_PORT=15300
BARESIP_UAS=5080
BARESIP_UAC=5082
FAILED=0
PASSED=0

PIDS=() # timeout wrappers of what we started
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

ok() {
  echo "interop: $1: ok${2:+ ($2)}"
  echo "$(($(date +%s) - START)) s: ok: $1" >>"$out/timeline.txt"
  PASSED=$((PASSED + 1))
}
failed() {
  echo "interop: $1: FAILED (${2:-}; logs in $out)"
  echo "$(($(date +%s) - START)) s: FAILED: $1" >>"$out/timeline.txt"
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
for need in sipp:sip-tester baresip:baresip-core kamailio:kamailio tshark:tshark; do
  install "${need%%:*}" "${need#*:}" || echo "interop-dialog: could not install ${need#*:}" >&2
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
  *) echo "interop-dialog: unknown driver $d (mio, tokio)" >&2; exit 2 ;;
  esac
done
SIPC=${SIPC:-$(build sip-driver-tokio sipc sipc)}
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
  why=$(grep -m1 -oE "header [^ ]+ not found in message" "$f")
  [ -z "$why" ] && why=$(grep -m1 -oE "with regexp '[^']*'" "$f" | sed 's/^/no match /')
  [ -z "$why" ] && why=$(grep -m1 -oE "while expecting '[^']*' \(index [0-9]+\), received '[^[:cntrl:]']*" "$f" |
    sed -E "s/while expecting '([^']*)' \(index ([0-9]+)\), received '/expected \1 (step \2), got /")
  [ -z "$why" ] && why=$(grep -m1 -oE "(receive timeout|timed out)[^[:cntrl:]]*" "$f")
  [ -z "$why" ] && why=$(grep -v '^$' "$f" | grep -v "events occurred" | head -1)
  echo "${why:0:220}"
}
has_flag() { # BINARY FLAG: the binary's --help mentions FLAG
  "$1" --help 2>&1 | grep -q -- "$2"
}

# one SIPp run: NAME SCENARIO HOST:PORT TRANSPORT LOCAL_PORT [SIPp flags...]; result in RC
run_sipp() {
  local name=$1 scen=$2 dest=$3 tr=$4 lport=$5
  shift 5
  local d="$out/$name"
  mkdir -p "$d"
  free udp "$lport"
  (cd "$d" && exec timeout 40 sipp -sf "$SCEN/$scen" "$dest" -i 127.0.0.1 -p "$lport" -t "$tr" -m 1 \
    -timeout 30s -timeout_error -recv_timeout 10s -nostdin -trace_err -error_file "$d/err.log" \
    -trace_msg -message_file "$d/msg.log" -trace_logs -log_file "$d/log.log" "$@" >"$d/out.txt" 2>&1)
  RC=$?
}

# ---- sipd ---------------------------------------------------------------------------------
declare -A SIPD_PID
start_sipd() { # DRIVER
  local d=$1 port=${PORT[$1]} extra=()
  has_flag "${SIPD[$d]}" --session-expires && extra=(--session-expires 90)
  local cmd=("${SIPD[$d]}" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --ring 300ms
    --log info "${extra[@]}")
  echo "${cmd[*]}" >"$out/sipd-$d.cmd"
  free udp "$port" && free tcp "$port" || return 1
  timeout 200 "${cmd[@]}" >"$out/sipd-$d.log" 2>&1 &
  SIPD_PID[$d]=$!
  PIDS+=("$!")
  listening udp "$port" && listening tcp "$port"
}

check_baresip_tcp_only() { # DRIVER: a sipd with a TCP listener only (the reported hang:
  # a Contact without ;transport=tcp sends baresip's ACK and BYE to a UDP port where nothing
  # listens)
  local d=$1 port=${TCP_ONLY_PORT[$1]}
  free tcp "$port"
  timeout 60 "${SIPD[$d]}" --listen "tcp:127.0.0.1:$port" --log info >"$out/sipd-$d-tcp-only.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if listening tcp "$port"; then
    check_baresip_calls "$d" tcp "$port" "(TCP listener only)"
  else
    failed "baresip calls sipd($d) (TCP listener only)" "sipd did not start"
  fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# ---- the SIPp checks against one sipd -----------------------------------------------------
check_scenario() { # DRIVER SCENARIO TRANSPORT LABEL [SIPp flags]
  local d=$1 scen=$2 tr=$3 label=$4
  shift 4
  local n="sipp $label -> sipd($d)"
  run_sipp "$d-${scen%.xml}-$tr" "$scen" "127.0.0.1:${PORT[$d]}" "$tr" "$SIPP_PORT" "$@"
  if [ "$RC" = 0 ]; then
    ok "$n" "SIPp exit 0"
  else
    failed "$n" "SIPp exit $RC: $(sipp_why "$out/$d-${scen%.xml}-$tr/err.log")"
  fi
}

check_tcp_contact() { # DRIVER: the plain call over TCP, and sipd's Contact in its 200
  local d=$1 n="sipp plain call over TCP, Contact with ;transport=tcp -> sipd($1)"
  run_sipp "$d-dialog_plain-t1" dialog_plain.xml "127.0.0.1:${PORT[$d]}" t1 "$SIPP_PORT" -d 300
  local contact
  contact=$(awk '/^SIP\/2.0 200/ { inok = 1 } inok && /^(Contact|m):/ { print; exit }' "$out/$d-dialog_plain-t1/msg.log" 2>/dev/null | tr -d '\r')
  if [ "$RC" = 0 ] && [[ ${contact,,} == *transport=tcp* ]]; then
    ok "$n" "SIPp exit 0, $contact"
  else
    local why=()
    [ "$RC" = 0 ] || why+=("SIPp exit $RC: $(sipp_why "$out/$d-dialog_plain-t1/err.log")")
    [[ ${contact,,} == *transport=tcp* ]] || why+=("the 200's ${contact:-Contact: (none)} has no ;transport=tcp")
    local IFS=';'
    failed "$n" "${why[*]}"
  fi
}

declare -A EXPIRY_PID
start_expiry() { # DRIVER: the caller that never refreshes, in the background
  local d=$1 dir="$out/$1-dialog_timer_expiry"
  mkdir -p "$dir"
  (cd "$dir" && exec timeout 110 sipp -sf "$SCEN/dialog_timer_expiry.xml" "127.0.0.1:${PORT[$d]}" -i 127.0.0.1 \
    -p "${EXPIRY_PORT[$d]}" -t u1 -m 1 -timeout 100s -timeout_error -nostdin -trace_err -error_file "$dir/err.log" \
    -trace_msg -message_file "$dir/msg.log" -trace_logs -log_file "$dir/log.log" >"$dir/out.txt" 2>&1) &
  EXPIRY_PID[$d]=$!
  PIDS+=("$!")
}
check_expiry() { # DRIVER
  local d=$1 n="session expiry: a caller that never refreshes gets BYE from sipd($1)"
  wait "${EXPIRY_PID[$d]}"
  local rc=$?
  if [ "$rc" = 0 ]; then
    ok "$n" "BYE from sipd answered, SIPp exit 0"
  else
    local extra=""
    has_flag "${SIPD[$d]}" --session-expires || extra="; this sipd has no --session-expires"
    failed "$n" "SIPp exit $rc: $(sipp_why "$out/$d-dialog_timer_expiry/err.log")$extra"
  fi
}

# ---- baresip ------------------------------------------------------------------------------
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

# baresip's SIP trace (-s): blocks "UDP|TCP SRC -> DST", then the message. Prints one line per
# message: TRANSPORT SRC DST START-LINE | CSEQ | direction attributes of its SDP
trace_summary() { # LOG
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
blocks = re.split(r"^(UDP|TCP|TLS) (\S+) -> (\S+)\n", text, flags=re.M)
for i in range(1, len(blocks) - 3, 4):
    tr, src, dst, msg = blocks[i:i + 4]
    lines = msg.split("\n")
    cseq = next((l.split(":", 1)[1].strip() for l in lines if re.match(r"(?i)cseq:", l)), "")
    dirs = ",".join(sorted(set(re.findall(r"^a=(sendonly|recvonly|sendrecv|inactive)$", msg, re.M))))
    print(tr, src, dst, lines[0].strip(), "|", cseq, "|", dirs or "-")
PY
}

check_baresip_calls() { # DRIVER udp|tcp [PORT LABEL]: to the main sipd, or to another on PORT
  local d=$1 tr=$2 port=${3:-${PORT[$1]}} n
  local TR=${tr^^}
  n="baresip calls sipd($d)${4:+ $4} over $TR and hangs up"
  local uri="sip:service@127.0.0.1:$port"
  [ "$tr" = tcp ] && uri="$uri;transport=tcp"
  local dir
  dir=$(baresip_dir "uac-$d-$tr-$port" "$BARESIP_UAC" 21000-21999 "<sip:uac@127.0.0.1>;regint=0")
  free udp "$BARESIP_UAC" && free tcp "$BARESIP_UAC"
  # dials at once, quits (BYE) at -t 3
  timeout -k 2 10 baresip -f "$dir" -s -t 3 -e "/dial $uri" </dev/null >"$dir/baresip.log" 2>&1
  local rc=$?
  trace_summary "$dir/baresip.log" >"$dir/trace.txt"
  local why=()
  [ $rc = 0 ] || why+=("baresip exit $rc$([ $rc = 124 ] || [ $rc = 137 ] && echo ' (hung, killed by timeout)')")
  grep -q "Call established" "$dir/baresip.log" ||
    why+=("no 'Call established'$(grep -m1 -oE 'session closed: [^[:cntrl:]]*' "$dir/baresip.log" | sed 's/^/: /')")
  local ack bye byeok
  ack=$(awk '$4 == "ACK" { print $1; exit }' "$dir/trace.txt")
  bye=$(awk '$4 == "BYE" { print $1; exit }' "$dir/trace.txt")
  byeok=$(awk '$4 == "SIP/2.0" && $5 == "200" && $0 ~ /\| [0-9]+ BYE \|/ { print $1; exit }' "$dir/trace.txt")
  [ "$ack" = "$TR" ] || why+=("the ACK went over ${ack:-nothing}")
  [ "$bye" = "$TR" ] || why+=("the BYE went over ${bye:-nothing}")
  [ -n "$byeok" ] || why+=("no 200 to the BYE")
  local contact
  contact=$(awk '/^SIP\/2.0 200/ { inok = 1 } inok && /^Contact:/ { print; exit }' "$dir/baresip.log" | tr -d '\r')
  if [ ${#why[@]} = 0 ]; then
    ok "$n" "established, ACK and BYE over $TR, BYE answered 200"
  else
    local IFS=';'
    failed "$n" "${why[*]}; sipd's 200 had ${contact:-no Contact}; trace $dir/trace.txt"
  fi
}

check_sipc_hold_baresip() {
  local n="sipc calls baresip, re-INVITE on hold (sendonly) and back, BYE"
  local dir
  dir=$(baresip_dir uas "$BARESIP_UAS" 20000-20999 "<sip:uas@127.0.0.1>;answermode=auto;regint=0")
  free udp "$BARESIP_UAS" && free tcp "$BARESIP_UAS"
  timeout -k 2 20 baresip -f "$dir" -s -t 15 </dev/null >"$dir/baresip.log" 2>&1 &
  local bpid=$!
  PIDS+=("$bpid")
  if ! listening udp "$BARESIP_UAS"; then
    failed "$n" "baresip did not start"
    return
  fi
  timeout 20 "$SIPC" call "sip:uas@127.0.0.1:$BARESIP_UAS" --reinvite-after 1s --hold 4s >"$dir/sipc.out" 2>&1
  local rc=$?
  sleep 0.3
  kill "$bpid" 2>/dev/null
  wait "$bpid" 2>/dev/null
  trace_summary "$dir/baresip.log" >"$dir/trace.txt"
  local why=()
  [ $rc = 0 ] || why+=("sipc exit $rc: $(tail -1 "$dir/sipc.out")")
  grep -q "Call established" "$dir/baresip.log" || why+=("no 'Call established' at baresip")
  # baresip got a re-INVITE offering sendonly and answered recvonly; then one without hold
  local hold resume
  hold=$(awk '$4 == "INVITE" && $0 ~ /sendonly/ { f = 1 } f && $4 == "SIP/2.0" && $5 == "200" && $0 ~ /INVITE \| recvonly/ { print "yes"; exit }' "$dir/trace.txt")
  resume=$(awk '$4 == "INVITE" && $0 ~ /sendonly/ { f = 1; next } f && $4 == "INVITE" && $0 !~ /sendonly|inactive/ { print "yes"; exit }' "$dir/trace.txt")
  [ "$hold" = yes ] || why+=("baresip saw no sendonly re-INVITE answered recvonly ($(grep -c 'got re-INVITE' "$dir/baresip.log") re-INVITEs)")
  [ "$resume" = yes ] || why+=("no re-INVITE taking the call off hold")
  awk '$4 == "BYE" { f = 1 } f && $4 == "SIP/2.0" && $5 == "200" && $0 ~ /BYE/ { ok = 1 } END { exit !ok }' "$dir/trace.txt" ||
    why+=("no BYE answered 200 at baresip")
  if [ ${#why[@]} = 0 ]; then
    ok "$n" "baresip answered the sendonly offer recvonly, resumed, BYE 200, sipc exit 0"
  else
    local IFS=';'
    failed "$n" "${why[*]}; $dir"
  fi
}

# ---- Kamailio record-route ----------------------------------------------------------------
check_kamailio() { # DRIVER
  local d=$1 n="sipp -> Kamailio (record-route) -> sipd($1): $KAMAILIO_CALLS calls, ACK and BYE by the route set"
  local dir="$out/kamailio-$d"
  mkdir -p "$dir"
  free udp "$KAM_UAC_PORT"
  (cd "$dir" && exec timeout 40 sipp -sf "$SCEN/uac_rr.xml" "127.0.0.1:$KAM_PORT" -s "${PORT[$d]}" -i 127.0.0.1 \
    -p "$KAM_UAC_PORT" -t u1 -m "$KAMAILIO_CALLS" -r 20 -l "$KAMAILIO_CALLS" -timeout 30s -timeout_error \
    -recv_timeout 5s -nostdin -trace_stat -stf "$dir/uac.csv" -trace_err -error_file "$dir/err.log" >"$dir/out.txt" 2>&1)
  local rc=$? okc
  okc=$(csv_last "$dir/uac.csv" 'SuccessfulCall(C)')
  if [ "$rc" = 0 ] && [ "$okc" = "$KAMAILIO_CALLS" ]; then
    ok "$n" "$okc of $KAMAILIO_CALLS calls completed"
  else
    failed "$n" "$okc of $KAMAILIO_CALLS calls completed, SIPp exit $rc: $(sipp_why "$dir/err.log")"
  fi
}

# ---- fork ---------------------------------------------------------------------------------
check_fork() {
  local n="fork: sipc's INVITE to two SIPp UASs that both answer 200: both ACKed, one kept, the other BYEd"
  local dir="$out/fork"
  mkdir -p "$dir"
  free udp "$FORK_A" && free udp "$FORK_B" && free udp "$RELAY_PORT"
  timeout 25 python3 "$ROOT/tests/interop/fork_relay.py" --listen "127.0.0.1:$RELAY_PORT" \
    --fork "127.0.0.1:$FORK_A" --fork "127.0.0.1:$FORK_B" --record-route --lifetime 20 --log "$dir/relay.log" &
  local relay=$!
  PIDS+=("$relay")
  local uas=() p
  for p in $FORK_A $FORK_B; do
    (cd "$dir" && exec timeout 20 sipp -sf "$SCEN/uas_fork_200.xml" -i 127.0.0.1 -p "$p" -t u1 -m 1 -timeout 15s \
      -timeout_error -nostdin -trace_err -error_file "$dir/uas-$p-err.log" -trace_msg -message_file "$dir/uas-$p-msg.log" \
      >"$dir/uas-$p.out" 2>&1) &
    uas+=($!)
    PIDS+=("$!")
  done
  listening udp "$FORK_A" && listening udp "$FORK_B" && listening udp "$RELAY_PORT"
  timeout 20 "$SIPC" call "sip:fork@127.0.0.1:$RELAY_PORT" --hold 1s >"$dir/sipc.out" 2>&1
  local rc=$?
  wait "${uas[0]}"
  local arc=$?
  wait "${uas[1]}"
  local brc=$?
  kill "$relay" 2>/dev/null
  wait "$relay" 2>/dev/null
  if [ "$rc" = 0 ] && [ "$arc" = 0 ] && [ "$brc" = 0 ]; then
    ok "$n" "sipc and both SIPp exit 0"
  else
    local acks byes
    acks=$(grep -c -- '-> ACK' "$dir/sipc.out")
    byes=$(grep -c -- '-> BYE' "$dir/sipc.out")
    failed "$n" "sipc exit $rc ($acks ACK, $byes BYE sent: $(tail -1 "$dir/sipc.out")), UAS $FORK_A exit $arc ($(sipp_why "$dir/uas-$FORK_A-err.log")), UAS $FORK_B exit $brc ($(sipp_why "$dir/uas-$FORK_B-err.log"))"
  fi
}

# ---- dialogs open at exit -----------------------------------------------------------------
check_dialogs_open() { # DRIVER: stops sipd, reads its summary
  local d=$1 n="sipd($1) exits with dialogs open 0 after all the calls"
  kill "${SIPD_PID[$d]}" 2>/dev/null
  wait "${SIPD_PID[$d]}" 2>/dev/null
  local open
  open=$(grep -oE 'dialogs open [0-9]+' "$out/sipd-$d.log" | tail -1)
  if [ "$open" = "dialogs open 0" ]; then
    ok "$n" "$open"
  else
    failed "$n" "${open:-no 'dialogs open N' in its summary at exit}"
  fi
}

# ---- run ----------------------------------------------------------------------------------
filter="portrange 15060-15399 or portrange $FORK_A-$FORK_B or port $BARESIP_UAS or port $BARESIP_UAC"
timeout 200 tshark -i lo -f "$filter" -w "$out/dialog.pcapng" >/dev/null 2>"$out/tshark.err" &
TSHARK=$!
PIDS+=("$TSHARK")
for _ in $(seq 50); do grep -q "Capturing on" "$out/tshark.err" 2>/dev/null && break; sleep 0.1; done

STARTED=()
for d in $DRIVERS; do
  if [ -z "${SIPD[$d]:-}" ] || ! start_sipd "$d"; then
    failed "dialog checks -> sipd($d)" "sipd did not start (build or listen failed)"
    continue
  fi
  STARTED+=("$d")
  start_expiry "$d"
done

for d in "${STARTED[@]}"; do
  check_scenario "$d" dialog_plain.xml u1 "plain call over UDP (SDP answer, ACK, BYE)" -d 300
  check_tcp_contact "$d"
  check_scenario "$d" dialog_100rel.xml u1 "100rel: reliable 180 with RSeq, PRACK with RAck" -d 300
  check_scenario "$d" dialog_hold.xml u1 "re-INVITE hold: sendonly offer answered recvonly, then resume"
  check_scenario "$d" dialog_update.xml u1 "UPDATE in a confirmed dialog (sendonly -> recvonly, then sendrecv)"
  check_scenario "$d" dialog_timer_refresh.xml u1 "session timer 90 s refresher=uac, refreshed by re-INVITE and UPDATE" -d 500
  check_scenario "$d" dialog_488.xml u1 "offer with no common codec (GSM, G729) gets 488"
  check_baresip_calls "$d" udp
  check_baresip_calls "$d" tcp
  check_baresip_tcp_only "$d"
done

if [ ${#STARTED[@]} -gt 0 ]; then
  free udp "$KAM_PORT"
  timeout 120 kamailio -f "$ROOT/tests/interop/kamailio-rr.cfg" -l "udp:127.0.0.1:$KAM_PORT" -DD -E -m 64 \
    -P "$out/kamailio.pid" >"$out/kamailio.log" 2>&1 &
  KAM=$!
  PIDS+=("$KAM")
  if listening udp "$KAM_PORT"; then
    sleep 0.3 # Kamailio forks its workers
    for d in "${STARTED[@]}"; do check_kamailio "$d"; done
  else
    failed "Kamailio record-route checks" "Kamailio did not start: $(grep -m1 -E 'ERROR|CRITICAL' "$out/kamailio.log")"
  fi
  kill "$KAM" 2>/dev/null
  wait "$KAM" 2>/dev/null
fi

check_sipc_hold_baresip
check_fork

for d in "${STARTED[@]}"; do check_expiry "$d"; done
for d in "${STARTED[@]}"; do check_dialogs_open "$d"; done

# the capture: every datagram or segment on those ports is well-formed SIP
sleep 0.5
kill "$TSHARK" 2>/dev/null
wait "$TSHARK" 2>/dev/null
decode=(-d "udp.port==15060-15399,sip" -d "tcp.port==15060-15399,sip" -d "udp.port==$FORK_A-$FORK_B,sip"
  -d "tcp.port==$FORK_A-$FORK_B,sip")
n="tshark: dialog traffic well-formed"
counts=$(tshark -r "$out/dialog.pcapng" "${decode[@]}" -q -z io,stat,0,"sip","_ws.malformed || _ws.expert.severity == error","udp && !sip" 2>/dev/null |
  awk -F'|' '/<>/ { gsub(/ /, ""); print $3, $5, $7 }')
read -r sipn bad nonsip <<<"${counts:-0 0 0}"
if [ "${sipn:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ] && [ "${nonsip:-1}" = 0 ]; then
  ok "$n" "$sipn SIP frames, 0 malformed, 0 non-SIP datagrams"
else
  failed "$n" "${sipn:-?} SIP frames, ${bad:-?} malformed or errors, ${nonsip:-?} non-SIP datagrams: $out/dialog.pcapng"
fi

echo "interop-dialog: $PASSED passed, $FAILED failed in $(($(date +%s) - START)) s (logs in $out)"
[ "$FAILED" = 0 ]
