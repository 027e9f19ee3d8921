#!/usr/bin/env bash
# bench/proxy-load.sh - stateful proxy under SIPp load: Kamailio (tm + rr) and `sipd --proxy`
# (mio driver, tokio driver), side by side in ONE run, with ../shared/peers/baselines.sh.
#
# usage: bench/proxy-load.sh                          # RATES="2000 4000 6000 8000" DURATION=20
#        RATES=2000 SERVERS="kamailio mio" bench/proxy-load.sh
#
# For each rate of RATES (in order), each server of SERVERS in turn (interleaved, so that
# Kamailio and sipd at one rate run in the same few minutes of the shared machine):
#   kamailio  ../shared/peers/baselines.sh proxy RATE TRANSPORT DURATION
#             (Kamailio 5.6, cfg/kam_proxy_stateful.cfg: record_route + t_relay, port 5090)
#   mio       sipd of sip-driver-mio, started on 127.0.0.1:PORT_BASE as
#               sipd --listen udp:... --listen tcp:... --log warn --proxy --domain example.test
#                    --record-route --route-to sip:127.0.0.1:5070
#             then ../shared/peers/baselines.sh proxyext 127.0.0.1:PORT PID RATE TRANSPORT DURATION
#   tokio     the same with sip-driver-tokio's sipd on PORT_BASE+1
# In every case SIPp's uac_rr scenario (scen/uac_rr.xml) sends RATE*DURATION calls (INVITE,
# 100/180/200 with Record-Route, ACK and BYE along the route set) to the proxy, which relays
# them to a SIPp UAS (scen/uas_rr.xml) on 127.0.0.1:5070; baselines.sh measures the proxy's
# processes (see ../shared/peers/run_peers.sh). A fresh server is started for every run.
# A server that fails at one rate (any call not completed) is not tried at the higher ones.
#
# Reported (table on stdout, copied to $OUT/results.md; the raw baselines.sh lines in
# $OUT/raw.txt, each run's SIPp files in $OUT/<server>-<rate>/):
#   ok / failed     calls completed by the SIPp UAC / calls asked - calls completed
#   cpu ms/1000     utime+stime of the proxy (all its threads and processes) during the SIPp
#                   run, per 1000 completed calls
#   ratio           that figure divided by Kamailio's at the same rate in this run
#   %core           the proxy's CPU during the run, 100 = one core
#   peak RSS MB     VmHWM summed over the proxy's processes (reset before the run). Exact for
#                   sipd (one process); Kamailio's 10 processes share memory: use its PSS
#   PSS MB          Pss summed over the proxy's processes at the end of the run
#   other %core     the rest of the machine during the run (the machine is shared: compare
#                   runs where it is small)
#   retrans         SIPp UAC retransmissions (non-zero: a message was lost or late)
# Then one line per server: cpu ms/1000 calls at the first rate and its ratio to Kamailio's
# (goal of issue 13: at most a third), the highest rate with no failed call (goal: 6000),
# and the RSS at the first rate.
#
# Environment:
#   RATES ("2000 4000 6000 8000") calls/s    DURATION (20) s    TRANSPORT (u1 | t1)
#   SERVERS ("kamailio mio tokio")    PORT_BASE (5600: mio on +0, tokio on +1)
#   SIPD_PROXY_ARGS ("--proxy --domain example.test --record-route --route-to sip:127.0.0.1:5070")
#   SIPD_MIO, SIPD_TOKIO (prebuilt binaries; default: cargo build --release, copied to $OUT/bin)
#   PEERS (../shared/peers)    OUT (/tmp/sip-proxy-load/<time>)
#   KEEP_GOING=1 tries every rate even after a failure
# Ports used: 5070 (SIPp UAS) and 5090 (Kamailio), fixed by baselines.sh, and PORT_BASE, +1.
#
# Bounded: every SIPp run is bounded by baselines.sh (-m, -timeout, an outer timeout), every
# server runs inside `timeout` and is stopped by its PID. Exit status: 0 when every server
# that was asked for ran and completed every call at the first rate, 1 otherwise (a sipd
# without --proxy is a failure, said clearly), 2 on a usage error.
# Slow (about DURATION+10 s per run, up to 12 runs): not part of the test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RATES=${RATES:-2000 4000 6000 8000}
DURATION=${DURATION:-20}
TRANSPORT=${TRANSPORT:-u1}
SERVERS=${SERVERS:-kamailio mio tokio}
PORT_BASE=${PORT_BASE:-5600}
SIPD_PROXY_ARGS=${SIPD_PROXY_ARGS:---proxy --domain example.test --record-route --route-to sip:127.0.0.1:5070}
PEERS=${PEERS:-$ROOT/../shared/peers}
OUT=${OUT:-/tmp/sip-proxy-load/$(date +%Y%m%d-%H%M%S)}
KEEP_GOING=${KEEP_GOING:-0}

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$ d' >&2; exit 2; }
case "${1:-}" in -h | --help) usage ;; "") ;; *) echo "proxy-load.sh: no arguments, only environment variables" >&2; usage ;; esac
for v in DURATION PORT_BASE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "proxy-load.sh: $v must be a whole number, not '${!v}'" >&2; usage; }
done
for r in $RATES; do [[ $r =~ ^[0-9]+$ ]] || { echo "proxy-load.sh: rate '$r' is not a whole number" >&2; usage; }; done
case $TRANSPORT in u1 | t1) ;; *) echo "proxy-load.sh: TRANSPORT is u1 or t1" >&2; usage ;; esac
for s in $SERVERS; do
  case $s in mio | tokio | kamailio) ;; *) echo "proxy-load.sh: unknown server '$s'" >&2; usage ;; esac
done
[ -x "$PEERS/baselines.sh" ] || { echo "proxy-load.sh: $PEERS/baselines.sh not found (set PEERS)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "proxy-load.sh: sipp not found (apt-get install -y sip-tester)" >&2; exit 1; }

mkdir -p "$OUT/bin"
SAFETY=$((2 * DURATION + 120)) # lifetime limit of each sipd
STARTED=()                     # "server_pid wrapper_pid" of the sipd we started

cleanup() {
  local e
  for e in "${STARTED[@]}"; do
    set -- $e
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    kill -0 "$2" 2>/dev/null && kill -KILL "$2" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "proxy-load.sh: interrupted" >&2; exit 130' INT TERM

# ---- binaries ---------------------------------------------------------------------------
# Both examples build to target/release/examples/sipd, so each build is copied away at once.
build_sipd() { # $1 = mio|tokio; prints the binary path
  local drv=$1 bin=$OUT/bin/sipd-$1
  echo "proxy-load.sh: cargo build --release -p sip-driver-$drv --example sipd" >&2
  cargo build -q --release -p "sip-driver-$drv" --example sipd >&2 || return 1
  cp target/release/examples/sipd "$bin" && echo "$bin"
}
declare -A BIN WHY_NOT
for s in $SERVERS; do
  case $s in
  mio | tokio)
    var=SIPD_${s^^}
    BIN[$s]=${!var:-$(build_sipd "$s")} || { echo "proxy-load.sh: build of sipd ($s) failed" >&2; exit 1; }
    help=$("${BIN[$s]}" --help 2>&1)
    [[ $help == *--proxy* ]] ||
      WHY_NOT[$s]="this sipd has no --proxy (sipd's proxy mode, issue 13, is not in this tree)"
    ;;
  kamailio)
    command -v kamailio >/dev/null || WHY_NOT[kamailio]="no kamailio (apt-get install -y kamailio)"
    ;;
  esac
done

# ---- one run ----------------------------------------------------------------------------
port_busy() { [ -n "$(ss -H -lun "sport = :$1")$(ss -H -ltn "sport = :$1")" ]; }
kv() { # KEY LINE: the value of KEY=... in a '# key=value ...' line
  sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}
SRV="" WRAP=""
start_sipd() { # NAME PORT DIR: sets SRV (sipd) and WRAP (its timeout)
  local name=$1 port=$2 dir=$3
  SRV="" WRAP=""
  # shellcheck disable=SC2206
  local args=(--listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --log warn $SIPD_PROXY_ARGS)
  echo "${BIN[$name]} ${args[*]}" >"$dir/server.cmd"
  timeout -s KILL "$SAFETY" "${BIN[$name]}" "${args[@]}" >"$dir/server.log" 2>&1 &
  WRAP=$!
  for _ in $(seq 50); do
    SRV=$(ps -o pid= --ppid "$WRAP" | tr -d ' ')
    [ -n "$SRV" ] && break
    sleep 0.1
  done
  [ -n "$SRV" ] && STARTED+=("$SRV $WRAP")
  for _ in $(seq 50); do
    [ -n "$SRV" ] && [ -n "$(ss -H -lun "sport = :$port")" ] && return 0
    kill -0 "$WRAP" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}
stop_sipd() { # SIGTERM (sipd prints its summary), then SIGKILL after 10 s
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$WRAP" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null && kill -KILL "$SRV" 2>/dev/null
  wait "$WRAP" 2>/dev/null
}

declare -A CPU RSS PSS BEST FAILED_AT
ROWS=()
ALL_OK=1
FIRST_RATE=${RATES%% *}
run_one() { # NAME RATE: appends a row; returns 1 when a call failed
  local name=$1 rate=$2 dir=$OUT/$1-$2 out rc=0
  mkdir -p "$dir"
  for p in 5070 5090; do
    if port_busy "$p"; then
      echo "proxy-load.sh: port $p (baselines.sh) is in use; $name at $rate not run" >&2
      ROWS+=("| $name | $TRANSPORT | $rate | not run: port $p in use | | | | | | | | |")
      return 1
    fi
  done
  case $name in
  kamailio)
    out=$("$PEERS/baselines.sh" proxy "$rate" "$TRANSPORT" "$DURATION" 2>&1)
    ;;
  mio | tokio)
    local port=$((PORT_BASE + $([ "$name" = mio ] && echo 0 || echo 1)))
    if port_busy "$port"; then
      echo "proxy-load.sh: port $port is in use; set PORT_BASE" >&2
      ROWS+=("| $name | $TRANSPORT | $rate | not run: port $port in use | | | | | | | | |")
      return 1
    fi
    if ! start_sipd "$name" "$port" "$dir"; then
      echo "proxy-load.sh: sipd ($name) did not start: $(head -3 "$dir/server.log")" >&2
      stop_sipd
      ROWS+=("| $name | $TRANSPORT | $rate | sipd did not start | | | | | | | | |")
      return 1
    fi
    sleep 0.5
    out=$("$PEERS/baselines.sh" proxyext "127.0.0.1:$port" "$SRV" "$rate" "$TRANSPORT" "$DURATION" 2>&1)
    stop_sipd
    grep '^sipd' "$dir/server.log" >"$dir/summary.txt" 2>/dev/null
    ;;
  esac
  printf '%s\n' "$out" >"$dir/baselines.out"
  printf '# %s %s %s\n%s\n' "$name" "$rate" "$(date -u '+%H:%M:%S')" "$out" >>"$OUT/raw.txt"
  local label ok failed per hwm detail
  read -r label ok failed per hwm < <(grep -v '^#' <<<"$out" | head -1)
  detail=$(grep -m1 '^# target=' <<<"$out")
  [ -n "$label" ] && [ -d "/tmp/sip-peers/runs/$label" ] && cp -r "/tmp/sip-peers/runs/$label/." "$dir/"
  if [ -z "${ok:-}" ] || [ -z "$detail" ]; then
    echo "proxy-load.sh: $name at $rate: no result from baselines.sh (see $dir/baselines.out)" >&2
    ROWS+=("| $name | $TRANSPORT | $rate | no result | | | | | | | | |")
    return 1
  fi
  local pss pct other retr ratio="" kam=${CPU[kamailio-$rate]:-}
  pss=$(kv server_pss_end_kb "$detail")
  pct=$(kv server_cpu_pct "$detail")
  other=$(kv other_cpu_pct_1core "$detail")
  retr=$(kv retrans "$detail")
  CPU[$name-$rate]=$per
  RSS[$name-$rate]=$hwm
  PSS[$name-$rate]=$pss
  if [ "$name" != kamailio ] && [ -n "$kam" ] && [ "$kam" != NA ] && [ "$per" != NA ]; then
    ratio=$(awk -v a="$per" -v b="$kam" 'BEGIN { printf "%.2f", a / b }')
  fi
  ROWS+=("$(awk -v n="$name" -v tr="$TRANSPORT" -v r="$rate" -v ok="$ok" -v f="$failed" -v per="$per" -v ratio="$ratio" \
    -v pct="$pct" -v hwm="$hwm" -v pss="$pss" -v other="$other" -v retr="$retr" -v t="$(date -u '+%H:%M')" \
    'BEGIN { printf "| %s | %s | %d | %d / %d | %s | %s | %s | %.1f | %.1f | %s | %s | %s |", n, tr, r, ok, f, per, ratio, pct, hwm / 1024, pss / 1024, other, retr, t }')")
  echo "proxy-load.sh: $name at $rate/s: ok $ok, failed $failed, cpu $per ms/1000 calls${ratio:+ (x$ratio Kamailio)}, peak RSS $((hwm / 1024)) MB, other load $other %" >&2
  [ "$failed" -eq 0 ]
}

# ---- main -------------------------------------------------------------------------------
{
  echo "# bench/proxy-load.sh $(date -u '+%Y-%m-%d %H:%M:%S') UTC, tree at commit $(git rev-parse --short HEAD 2>/dev/null)"
  [ -z "${SIPD_MIO:-}${SIPD_TOKIO:-}" ] || echo "prebuilt binaries: SIPD_MIO=${SIPD_MIO:-} SIPD_TOKIO=${SIPD_TOKIO:-}"
  echo "RATES='$RATES' DURATION=$DURATION TRANSPORT=$TRANSPORT SERVERS='$SERVERS'"
  echo "sipd: sipd --listen udp:127.0.0.1:PORT --listen tcp:127.0.0.1:PORT --log warn $SIPD_PROXY_ARGS"
  echo "$(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/header.txt" >&2

for s in $SERVERS; do
  if [ -n "${WHY_NOT[$s]:-}" ]; then
    echo "proxy-load.sh: $s: FAILED: ${WHY_NOT[$s]}" >&2
    ROWS+=("| $s | $TRANSPORT | - | not run: ${WHY_NOT[$s]} | | | | | | | | |")
    FAILED_AT[$s]=-
    ALL_OK=0
  fi
done
for rate in $RATES; do
  for s in kamailio mio tokio; do
    case " $SERVERS " in *" $s "*) ;; *) continue ;; esac
    case ${FAILED_AT[$s]:-} in -) continue ;; "") ;; *) [ "$KEEP_GOING" = 1 ] || continue ;; esac
    if run_one "$s" "$rate"; then
      [ -n "${FAILED_AT[$s]:-}" ] || BEST[$s]=$rate
    else
      [ "$rate" = "$FIRST_RATE" ] && ALL_OK=0
      [ -n "${FAILED_AT[$s]:-}" ] || FAILED_AT[$s]=$rate
    fi
  done
done

{
  cat "$OUT/header.txt"
  echo
  echo "| server | tr | rate cps | calls ok / failed | cpu ms/1000 calls | ratio to Kamailio | server %core | peak RSS MB (VmHWM) | PSS MB | other %core | sipp retrans | time UTC |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  for s in $SERVERS; do
    [ "${FAILED_AT[$s]:-}" = - ] && continue
    k=${CPU[kamailio-$FIRST_RATE]:-} c=${CPU[$s-$FIRST_RATE]:-}
    line="$s: at $FIRST_RATE calls/s ${c:-n/a} ms CPU per 1000 calls"
    if [ "$s" != kamailio ] && [ -n "$k" ] && [ -n "$c" ] && [ "$k" != NA ] && [ "$c" != NA ]; then
      line="$line, $(awk -v a="$c" -v b="$k" 'BEGIN { printf "%.2f", a / b }') x Kamailio's $k (goal: at most 0.33)"
    fi
    line="$line; highest rate with no failed call: ${BEST[$s]:-none of $RATES}"
    [ -n "${FAILED_AT[$s]:-}" ] && line="$line (failed at ${FAILED_AT[$s]})"
    [ -n "${RSS[$s-$FIRST_RATE]:-}" ] && line="$line; peak RSS at $FIRST_RATE/s $((RSS[$s-$FIRST_RATE] / 1024)) MB, PSS $((${PSS[$s-$FIRST_RATE]:-0} / 1024)) MB"
    echo "$line"
  done
  echo
  echo "raw baselines.sh lines: $OUT/raw.txt; per run: $OUT/<server>-<rate>/ (uac.cmd, server.cmd, SIPp csv)"
} | tee "$OUT/results.md"
[ "$ALL_OK" = 1 ]
