#!/usr/bin/env bash
# bench/dialog-load.sh - memory per confirmed dialog in a running sipd (issue 10 point 9), and
# the leak of issue 10 point 5 (calls that ACK and never send BYE).
#
# usage: bench/dialog-load.sh                  # CALLS=20000 RATE=2000 SETTLE=40
#        CALLS=2000 SERVERS=mio bench/dialog-load.sh
#
# For each server of SERVERS ("mio tokio": sipd of sip-driver-mio / sip-driver-tokio), two
# runs, each against a fresh sipd on 127.0.0.1:PORT (UDP, --log warn):
#   held   SIPp tests/interop/sipp/dialog_ack_no_bye.xml: CALLS calls at RATE calls/s that
#          are answered and ACKed and never ended, so CALLS confirmed dialogs stay in sipd
#          (sipd is the refresher of their session timers at --session-expires 1800, the
#          default: nothing happens to them for 15 minutes)
#   ended  SIPp tests/interop/sipp/dialog_plain.xml -d 0: CALLS complete calls at RATE
# After SIPp ends, sipd is left SETTLE seconds (transactions end 32 s after their last
# message: Timer J, Timer L of RFC 6026), then its VmRSS is read and it is stopped (its
# `dialogs open N` summary is kept). Memory per confirmed dialog = (RSS held - RSS ended) /
# CALLS: both runs went through the same transactions, only the dialogs differ.
#
# Reported (table on stdout and in $OUT/results.md): per server and run, calls completed by
# SIPp, sipd's `dialogs open`, VmRSS and VmHWM (KiB) after SETTLE, and the bytes per dialog.
# The session layer's own count (without allocator overhead) is the test
# sip-core/tests/session_memory.rs.
#
# Environment: CALLS (20000), RATE (2000), SETTLE (40 s), SERVERS ("mio tokio"),
# PORT (15080), SIPP_PORT (15180), SIPD_MIO, SIPD_TOKIO (prebuilt binaries; default: cargo
# build --release, copied to $OUT/bin), OUT (/tmp/sip-dialog-load/<time>).
# Bounded: SIPp -m CALLS with -timeout, everything inside `timeout`, stopped by PID.
# Slow (about 2 * (CALLS/RATE + SETTLE + 5) s per server): not part of the test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CALLS=${CALLS:-20000}
RATE=${RATE:-2000}
SETTLE=${SETTLE:-40}
SERVERS=${SERVERS:-mio tokio}
PORT=${PORT:-15080}
SIPP_PORT=${SIPP_PORT:-15180}
OUT=${OUT:-/tmp/sip-dialog-load/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/bin"
command -v sipp >/dev/null || { echo "dialog-load: sipp not found (apt-get install -y sip-tester)" >&2; exit 2; }

build() { # $1 = package, $2 = name in $OUT/bin
  cargo build -q --release -p "$1" --example sipd >&2 && cp target/release/examples/sipd "$OUT/bin/$2" && echo "$OUT/bin/$2"
}
declare -A SIPD
for s in $SERVERS; do
  case $s in
  mio) SIPD[mio]=${SIPD_MIO:-$(build sip-driver-mio sipd-mio)} ;;
  tokio) SIPD[tokio]=${SIPD_TOKIO:-$(build sip-driver-tokio sipd-tokio)} ;;
  *) echo "dialog-load: unknown server $s (mio, tokio)" >&2; exit 2 ;;
  esac
done

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

status_kb() { # PID FIELD: a /proc/PID/status field in KiB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}
csv_last() { # CSV COLUMN
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}

declare -A RSS OPEN OKC HWM
run() { # SERVER held|ended
  local s=$1 kind=$2 d="$OUT/$1-$2" scen extra=()
  mkdir -p "$d"
  if [ "$kind" = held ]; then scen=dialog_ack_no_bye.xml; else scen=dialog_plain.xml extra=(-d 0); fi
  timeout $((CALLS / RATE + SETTLE + 120)) "${SIPD[$s]}" --listen "udp:127.0.0.1:$PORT" --log warn >"$d/sipd.log" 2>&1 &
  local wrapper=$!
  PIDS+=("$wrapper")
  local pid=""
  for _ in $(seq 50); do
    pid=$(pgrep -P "$wrapper" | head -1)
    [ -n "$pid" ] && [ -n "$(ss -Hlnu "sport = :$PORT")" ] && break
    sleep 0.1
  done
  (cd "$d" && exec timeout $((CALLS / RATE + 60)) sipp -sf "$ROOT/tests/interop/sipp/$scen" "127.0.0.1:$PORT" -i 127.0.0.1 \
    -p "$SIPP_PORT" -t u1 -m "$CALLS" -r "$RATE" -rp 1000 -l "$CALLS" -timeout $((CALLS / RATE + 50))s -timeout_error \
    -recv_timeout 10s -nostdin -buff_size 1048576 -trace_stat -stf "$d/stat.csv" -trace_err -error_file "$d/err.log" \
    "${extra[@]}" >"$d/sipp.out" 2>&1)
  OKC[$s-$kind]=$(csv_last "$d/stat.csv" 'SuccessfulCall(C)')
  sleep "$SETTLE"
  RSS[$s-$kind]=$(status_kb "$pid" VmRSS)
  HWM[$s-$kind]=$(status_kb "$pid" VmHWM)
  kill "$wrapper" 2>/dev/null
  wait "$wrapper" 2>/dev/null
  OPEN[$s-$kind]=$(grep -oE 'dialogs open [0-9]+' "$d/sipd.log" | tail -1 | awk '{ print $3 }')
}

{
  echo "CALLS=$CALLS RATE=$RATE SETTLE=$SETTLE, $(date -u +%FT%TZ), load $(cut -d' ' -f1 /proc/loadavg)"
  echo
  echo "| server | run | calls ok | dialogs open | VmRSS KiB | VmHWM KiB | bytes per confirmed dialog |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$OUT/results.md"
for s in $SERVERS; do
  run "$s" held
  run "$s" ended
  per="n/a"
  if [ -n "${RSS[$s-held]:-}" ] && [ -n "${RSS[$s-ended]:-}" ] && [ "${OKC[$s-held]:-0}" -gt 0 ]; then
    per=$(((RSS[$s-held] - RSS[$s-ended]) * 1024 / OKC[$s-held]))
  fi
  for kind in held ended; do
    echo "| $s | $kind | ${OKC[$s-$kind]:-0} | ${OPEN[$s-$kind]:-?} | ${RSS[$s-$kind]:-?} | ${HWM[$s-$kind]:-?} | $([ $kind = held ] && echo "$per") |"
  done | tee -a "$OUT/results.md"
done
echo "(logs in $OUT)"
