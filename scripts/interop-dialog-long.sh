#!/usr/bin/env bash
# The slow dialog checks (RFC 4028 session timers over their real interval, and dialogs that
# their peer abandons), on loopback, bounded (about 2.5 minutes); not run by scripts/test.sh
# (see docs/conformance.md and README "Commands"). The quick ones are scripts/interop-dialog.sh.
#
#   for each sipd (mio and tokio drivers, side by side), started as
#       sipd --listen udp:127.0.0.1:PORT --session-expires 90 --log warn
#     refresh over 120 s    tests/interop/sipp/dialog_timer_refresh.xml with -d 40000:
#                           Session-Expires: 90;refresher=uac, a refresh by re-INVITE at 40 s,
#                           one by UPDATE at 80 s, BYE at 120 s, well past the 90 s interval:
#                           the BYE must get 200 and sipd must not have ended the session
#                           (its BYE would fail the SIPp call)
#     expiry, EXPIRY_CALLS  tests/interop/sipp/dialog_timer_expiry.xml, EXPIRY_CALLS (200)
#                           callers that never refresh: each gets sipd's BYE (RFC 4028 10)
#     abandoned dialogs     tests/interop/sipp/dialog_ack_no_bye.xml, GONE_CALLS (2000) calls
#                           that ACK and then vanish (no BYE, nothing listens any more):
#                           the issue's leak (dialogs open 2000 for ever). sipd is the
#                           refresher of these (no Supported: timer), its refresh fails, and
#                           the dialogs end
#     dialogs open 0        sipd's summary when it is stopped, WAIT_END (140) seconds after
#                           the start: every dialog above has ended
#
# Prints `interop: NAME: ok (...)` or `interop: NAME: FAILED (...)` per check and a summary
# line; exit 0 when all passed.
# Environment: SIP_DIALOG_DRIVERS ("mio tokio"), SIPD_MIO, SIPD_TOKIO (prebuilt binaries;
# default: cargo build --release), EXPIRY_CALLS (200), GONE_CALLS (2000), WAIT_END (140).
# Ports (127.0.0.1): sipd mio 15070, tokio 15071; SIPp 15120-15125. Every process runs under
# `timeout` and is stopped by its PID.
set -uo pipefail
cd "${SIP_ROOT:-$(dirname "$0")/..}"
ROOT=$(pwd)
DRIVERS=${SIP_DIALOG_DRIVERS:-mio tokio}
EXPIRY_CALLS=${EXPIRY_CALLS:-200}
GONE_CALLS=${GONE_CALLS:-2000}
WAIT_END=${WAIT_END:-140}
SCEN=$ROOT/tests/interop/sipp
out=$(mktemp -d /tmp/sip-interop-dialog-long.XXXXXX)
mkdir -p "$out/bin"
declare -A PORT=([mio]=15070 [tokio]=15071)
declare -A REFRESH_PORT=([mio]=15120 [tokio]=15121)
declare -A EXPIRY_PORT=([mio]=15122 [tokio]=15123)
declare -A GONE_PORT=([mio]=15124 [tokio]=15125)
FAILED=0
PASSED=0

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
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
command -v sipp >/dev/null || { echo "interop-dialog-long: sipp not found (apt-get install -y sip-tester)" >&2; exit 1; }

build() { # $1 = package, $2 = example, $3 = name in $out/bin
  cargo build -q --release -p "$1" --example "$2" >&2 && cp "target/release/examples/$2" "$out/bin/$3" && echo "$out/bin/$3"
}
declare -A SIPD
for d in $DRIVERS; do
  case $d in
  mio) SIPD[mio]=${SIPD_MIO:-$(build sip-driver-mio sipd sipd-mio)} ;;
  tokio) SIPD[tokio]=${SIPD_TOKIO:-$(build sip-driver-tokio sipd sipd-tokio)} ;;
  *) echo "interop-dialog-long: unknown driver $d (mio, tokio)" >&2; exit 2 ;;
  esac
done
START=$(date +%s)

listening() { # udp PORT: wait (5 s at most) until something listens there
  for _ in $(seq 50); do
    [ -n "$(ss -Hlnu "sport = :$1" 2>/dev/null)" ] && return 0
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
sipp_bg() { # NAME SCENARIO DEST LOCAL_PORT CALLS RATE [flags]: SIPp in the background; pid in BG
  local name=$1 scen=$2 dest=$3 lport=$4 calls=$5 rate=$6
  shift 6
  local d="$out/$name"
  mkdir -p "$d"
  (cd "$d" && exec timeout 200 sipp -sf "$SCEN/$scen" "$dest" -i 127.0.0.1 -p "$lport" -t u1 -m "$calls" -r "$rate" \
    -l "$calls" -timeout 180s -timeout_error -nostdin -buff_size 1048576 -trace_stat -stf "$d/stat.csv" \
    -trace_err -error_file "$d/err.log" "$@" >"$d/out.txt" 2>&1) &
  BG=$!
  PIDS+=("$BG")
}
check_bg() { # NAME PID CALLS LABEL
  local name=$1 pid=$2 calls=$3 n=$4
  wait "$pid"
  local rc=$? okc
  okc=$(csv_last "$out/$name/stat.csv" 'SuccessfulCall(C)')
  if [ "$rc" = 0 ] && [ "$okc" = "$calls" ]; then
    ok "$n" "$okc of $calls calls, SIPp exit 0"
  else
    failed "$n" "$okc of $calls calls, SIPp exit $rc: $(sipp_why "$out/$name/err.log")"
  fi
}

declare -A SIPD_PID REFRESH EXPIRY GONE
STARTED=()
for d in $DRIVERS; do
  port=${PORT[$d]}
  extra=()
  "${SIPD[$d]}" --help 2>&1 | grep -q -- --session-expires && extra=(--session-expires 90)
  timeout 400 "${SIPD[$d]}" --listen "udp:127.0.0.1:$port" --log warn "${extra[@]}" >"$out/sipd-$d.log" 2>&1 &
  SIPD_PID[$d]=$!
  PIDS+=("$!")
  if ! listening "$port"; then
    failed "long dialog checks -> sipd($d)" "sipd did not start"
    continue
  fi
  STARTED+=("$d")
  sipp_bg "$d-refresh" dialog_timer_refresh.xml "127.0.0.1:$port" "${REFRESH_PORT[$d]}" 1 1 -d 40000
  REFRESH[$d]=$BG
  sipp_bg "$d-expiry" dialog_timer_expiry.xml "127.0.0.1:$port" "${EXPIRY_PORT[$d]}" "$EXPIRY_CALLS" 50
  EXPIRY[$d]=$BG
  sipp_bg "$d-gone" dialog_ack_no_bye.xml "127.0.0.1:$port" "${GONE_PORT[$d]}" "$GONE_CALLS" 200
  GONE[$d]=$BG
done

for d in "${STARTED[@]}"; do
  check_bg "$d-gone" "${GONE[$d]}" "$GONE_CALLS" "$GONE_CALLS callers ACK and vanish -> sipd($d)"
done
for d in "${STARTED[@]}"; do
  check_bg "$d-expiry" "${EXPIRY[$d]}" "$EXPIRY_CALLS" \
    "session expiry: $EXPIRY_CALLS callers never refresh, each gets BYE from sipd($d)"
done
for d in "${STARTED[@]}"; do
  check_bg "$d-refresh" "${REFRESH[$d]}" 1 \
    "session timer 90 s kept 120 s by refreshes (re-INVITE at 40 s, UPDATE at 80 s) -> sipd($d)"
done

# every dialog above must have ended by WAIT_END seconds after the start
left=$((START + WAIT_END - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
for d in "${STARTED[@]}"; do
  kill "${SIPD_PID[$d]}" 2>/dev/null
  wait "${SIPD_PID[$d]}" 2>/dev/null
  open=$(grep -oE 'dialogs open [0-9]+' "$out/sipd-$d.log" | tail -1)
  n="sipd($d): dialogs open 0 ${WAIT_END} s after the start ($GONE_CALLS abandoned, $EXPIRY_CALLS expired)"
  if [ "$open" = "dialogs open 0" ]; then
    ok "$n" "$open"
  else
    failed "$n" "${open:-no 'dialogs open N' in its summary at exit}"
  fi
done

echo "interop-dialog-long: $PASSED passed, $FAILED failed in $(($(date +%s) - START)) s (logs in $out)"
[ "$FAILED" = 0 ]
