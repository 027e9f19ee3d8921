#!/usr/bin/env bash
# bench/load.sh - SIPp load against sipd (mio driver, tokio driver) and Kamailio, side by side.
#
# usage: bench/load.sh                       # defaults: RATE=2000 DURATION=20 TRANSPORT=u1
#        RATE=8000 DURATION=10 SERVERS=mio bench/load.sh
#
# In one invocation, one server after the other, at the same rate: each server is started on
# 127.0.0.1, SIPp's built-in `uac` scenario (INVITE, 100/180/200, ACK, BYE, 200) is run
# against it for RATE*DURATION calls, the server is measured and stopped. Loopback only.
#
# Servers (SERVERS, space separated, in this order by default: "mio tokio kamailio"):
#   mio       sipd, example of sip-driver-mio       (built with cargo unless SIPD_MIO is set)
#   tokio     sipd, example of sip-driver-tokio     (skipped when that example does not exist;
#             SIPD_TOKIO selects a prebuilt binary)
#   kamailio  Kamailio 5.6 as a stateful (tm) UAS, config bench/kamailio-uas.cfg
#             (Debian: apt-get install -y kamailio)
#
# Reported per server (table on stdout, copied to $OUT/results.md):
#   ok / failed    SuccessfulCall(C) from SIPp; failed = calls asked - calls ok
#   BYEs seen      sipd's own count of calls ended by a BYE (from its summary; n/a for
#                  Kamailio). SIPp's built-in uac takes any 200 after its BYE as the answer,
#                  so under packet loss a late 2xx retransmission can end a call in SIPp
#                  whose BYE was lost: a clean run has failed = 0 and BYEs seen = calls.
#   cpu ms/1000    utime+stime of the server (all its threads and child processes, from
#                  /proc/PID/stat) after the SIPp run minus before, per 1000 successful calls
#   peak RSS       VmHWM from /proc/PID/status (reset before the run), summed over the server's
#                  processes; Kamailio's processes share their memory, so for it also see PSS
#   PSS            Pss summed over the server's processes at the end of the run
#   other %core    CPU of the rest of the machine during the run (box - server - sipp), 100 =
#                  one core; the machine may be shared, so compare runs with little of it
#   load           1-minute load average just before the run
# With SETTLE=S the server is kept S seconds more after SIPp ends and the CPU it spends then
# (timers ending transactions) is reported too ("cpu ms/1000 +settle").
#
# Environment:
#   RATE (2000) calls/s       DURATION (20) seconds      TRANSPORT (u1 | t1)
#   SERVERS ("mio tokio kamailio")    CALLS (RATE*DURATION, sipp -m)
#   LIMIT (max(RATE,500), sipp -l)    SIPP_TIMEOUT (2*DURATION+10 s, sipp -timeout)
#   RECV_TIMEOUT (10s, sipp -recv_timeout)    BUFF (1048576, sipp -buff_size)
#   PORT_BASE (15060: mio on +0, tokio on +1, kamailio on +2)    SETTLE (0 s)
#   SIPD_MIO, SIPD_TOKIO (prebuilt binaries; default: cargo build --release, copied to $OUT/bin)
#   KAM_SHM_MB (1024, kamailio -m)    OUT (/tmp/sip-load/<time>: logs, SIPp csv, commands)
#
# Bounded: sipp -m CALLS and -timeout SIPP_TIMEOUT -timeout_error, SIPp inside `timeout`, every
# server inside `timeout` too, and every server killed (by PID) at the end or on Ctrl-C.
# Exit status: 0 when every run was clean (see above), 1 otherwise, 2 on a usage error.
# Slow (about DURATION+10 s per server): not part of the test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RATE=${RATE:-2000}
DURATION=${DURATION:-20}
TRANSPORT=${TRANSPORT:-u1}
SERVERS=${SERVERS:-mio tokio kamailio}
CALLS=${CALLS:-$((RATE * DURATION))}
LIMIT=${LIMIT:-$((RATE > 500 ? RATE : 500))}
SIPP_TIMEOUT=${SIPP_TIMEOUT:-$((2 * DURATION + 10))}
RECV_TIMEOUT=${RECV_TIMEOUT:-10s}
BUFF=${BUFF:-1048576}
PORT_BASE=${PORT_BASE:-15060}
SETTLE=${SETTLE:-0}
KAM_SHM_MB=${KAM_SHM_MB:-1024}
OUT=${OUT:-/tmp/sip-load/$(date +%Y%m%d-%H%M%S)}

usage() { sed -n '2,46p' "$0" >&2; exit 2; }
case "${1:-}" in -h | --help) usage ;; "") ;; *) echo "load.sh: no arguments, only environment variables" >&2; usage ;; esac
for v in RATE DURATION CALLS LIMIT SIPP_TIMEOUT PORT_BASE SETTLE KAM_SHM_MB BUFF; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "load.sh: $v must be a whole number, not '${!v}'" >&2; usage; }
done
case $TRANSPORT in u1 | t1) ;; *) echo "load.sh: TRANSPORT is u1 or t1" >&2; usage ;; esac
for s in $SERVERS; do
  case $s in mio | tokio | kamailio) ;; *) echo "load.sh: unknown server '$s'" >&2; usage ;; esac
done
command -v sipp >/dev/null || { echo "load.sh: sipp not found (apt-get install -y sip-tester)" >&2; exit 1; }

mkdir -p "$OUT/bin"
HZ=$(getconf CLK_TCK)
SAFETY=$((SIPP_TIMEOUT + SETTLE + 60)) # lifetime limit of each server process
STARTED=()                             # "server_pid wrapper_pid" of what we started

cleanup() {
  local e
  for e in "${STARTED[@]}"; do
    set -- $e
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    kill -0 "$2" 2>/dev/null && kill -KILL "$2" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "load.sh: interrupted" >&2; exit 130' INT TERM

# ---- binaries ---------------------------------------------------------------------------
# Both examples build to target/release/examples/sipd, so each build is copied away at once.
build_sipd() { # $1 = mio|tokio; prints the binary path, or nothing when there is no example
  local drv=$1 bin=$OUT/bin/sipd-$1
  [ -f "sip-driver-$drv/examples/sipd.rs" ] || return 0
  echo "load.sh: cargo build --release -p sip-driver-$drv --example sipd" >&2
  cargo build -q --release -p "sip-driver-$drv" --example sipd >&2 || return 1
  cp target/release/examples/sipd "$bin" && echo "$bin"
}
declare -A BIN
for s in $SERVERS; do
  case $s in
  mio) BIN[mio]=${SIPD_MIO:-$(build_sipd mio)} || { echo "load.sh: build of sipd (mio) failed" >&2; exit 1; } ;;
  tokio) BIN[tokio]=${SIPD_TOKIO:-$(build_sipd tokio)} || { echo "load.sh: build of sipd (tokio) failed" >&2; exit 1; } ;;
  kamailio) command -v kamailio >/dev/null && BIN[kamailio]=$(command -v kamailio) || BIN[kamailio]="" ;;
  esac
done

# ---- measuring --------------------------------------------------------------------------
descendants() { # $1 and every process below it
  local p=$1 c
  echo "$p"
  for c in $(ps -e -o pid=,ppid= | awk -v pp="$p" '$2 == pp { print $1 }'); do descendants "$c"; done
}
ticks() { # utime+stime of the given PIDs (threads included), in clock ticks
  local p s t=0 f
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }          # the fields after "pid (comm) "
    read -r -a f <<<"$s" # f[0] is field 3 (state): utime = f[11], stime = f[12]
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
status_kb() { # $1 = VmHWM|VmRSS, then PIDs: the sum in kB
  local key=$1
  shift
  local p
  for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done | awk -v k="$key:" '$1 == k { s += $2 } END { print s + 0 }'
}
pss_kb() {
  local p
  for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '$1 == "Pss:" { s += $2 } END { print s + 0 }'
}
box_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; } # all busy time
udp_rcvbuf_errors() { awk '$1 == "Udp:" { n++; if (n == 2) { print $6; exit } }' /proc/net/snmp; }
listening() { # $1 = port: the UDP socket is bound (and the TCP one, for t1)
  [ -n "$(ss -H -lun "sport = :$1")" ] || return 1
  [ "$TRANSPORT" = u1 ] || [ -n "$(ss -H -ltn "sport = :$1")" ]
}
csv_last() { # $1 = csv, $2 = column name: its value on the last line of SIPp's statistics
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}

# ---- servers ----------------------------------------------------------------------------
start_server() { # $1 = name, $2 = port, $3 = run dir; sets SRV (the server) and WRAP (its timeout)
  local name=$1 port=$2 dir=$3
  SRV="" WRAP=""
  if [ -n "$(ss -H -lun "sport = :$port")$(ss -H -ltn "sport = :$port")" ]; then
    echo "load.sh: port $port is in use; set PORT_BASE" >&2
    return 1
  fi
  case $name in
  mio | tokio)
    echo "${BIN[$name]} --listen udp:127.0.0.1:$port --listen tcp:127.0.0.1:$port --log warn" >"$dir/server.cmd"
    timeout -s KILL "$SAFETY" "${BIN[$name]}" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" \
      --log warn >"$dir/server.log" 2>&1 &
    WRAP=$!
    for _ in $(seq 50); do
      SRV=$(ps -o pid= --ppid "$WRAP" | tr -d ' ')
      [ -n "$SRV" ] && break
      sleep 0.1
    done
    ;;
  kamailio)
    local pidf=$dir/kamailio.pid
    echo "kamailio -f $ROOT/bench/kamailio-uas.cfg -l udp:127.0.0.1:$port -l tcp:127.0.0.1:$port -DD -E -m $KAM_SHM_MB -P $pidf" >"$dir/server.cmd"
    timeout -s KILL "$SAFETY" kamailio -f "$ROOT/bench/kamailio-uas.cfg" -l "udp:127.0.0.1:$port" \
      -l "tcp:127.0.0.1:$port" -DD -E -m "$KAM_SHM_MB" -P "$pidf" >"$dir/server.log" 2>&1 &
    WRAP=$!
    for _ in $(seq 50); do
      [ -s "$pidf" ] && break
      sleep 0.1
    done
    SRV=$(cat "$pidf" 2>/dev/null)
    ;;
  esac
  [ -n "$SRV" ] && STARTED+=("$SRV $WRAP")
  for _ in $(seq 100); do
    [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null && listening "$port" && break
    sleep 0.1
  done
  if [ -z "$SRV" ] || ! kill -0 "$SRV" 2>/dev/null || ! listening "$port"; then
    echo "load.sh: $name did not start (see $dir/server.log)" >&2
    stop_server
    return 1
  fi
  sleep 1 # Kamailio forks its workers after binding
}
stop_server() { # SIGTERM (sipd prints its summary), then SIGKILL after 10 s
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$WRAP" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null && kill -KILL "$SRV" 2>/dev/null
  wait "$WRAP" 2>/dev/null
}

# ---- one run ----------------------------------------------------------------------------
ROWS=()
ALL_OK=1
run_one() { # $1 = name, $2 = port
  local name=$1 port=$2 dir=$OUT/$1
  mkdir -p "$dir"
  if [ -z "${BIN[$name]:-}" ]; then
    echo "load.sh: $name skipped (no binary: $([ "$name" = kamailio ] && echo 'apt-get install -y kamailio' || echo "no sip-driver-$name/examples/sipd.rs"))" >&2
    ROWS+=("| $name | $TRANSPORT | $RATE | skipped | | | | | | | | | | | |")
    return
  fi
  start_server "$name" "$port" "$dir" || {
    ALL_OK=0
    ROWS+=("| $name | $TRANSPORT | $RATE | did not start | | | | | | | | | | | |")
    return
  }
  local pids
  pids=$(descendants "$SRV" | sort -un | tr '\n' ' ')
  local p
  for p in $pids; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null; done # restart VmHWM from the current RSS

  local cmd=(sipp -sn uac "127.0.0.1:$port" -i 127.0.0.1 -t "$TRANSPORT" -r "$RATE" -rp 1000 -l "$LIMIT"
    -m "$CALLS" -timeout "${SIPP_TIMEOUT}s" -timeout_error -recv_timeout "$RECV_TIMEOUT" -nostdin
    -max_socket 5000 -buff_size "$BUFF" -trace_stat -stf "$dir/uac.csv" -fd 1
    -trace_err -error_file "$dir/uac_err.log")
  echo "${cmd[*]}" >"$dir/uac.cmd"
  rm -f "$dir/uac.csv"
  local load0 c0 b0 u0 t0
  load0=$(cut -d' ' -f1 /proc/loadavg)
  u0=$(udp_rcvbuf_errors)
  b0=$(box_ticks)
  c0=$(ticks $pids)
  t0=$(date +%s.%N)
  timeout $((SIPP_TIMEOUT + 10)) /usr/bin/time -f '%U %S %M' -o "$dir/uac.time" "${cmd[@]}" >"$dir/uac.out" 2>&1
  local rc=$?
  local c1 t1 b1 u1 hwm rss pss
  c1=$(ticks $pids)
  t1=$(date +%s.%N)
  b1=$(box_ticks)
  u1=$(udp_rcvbuf_errors)
  hwm=$(status_kb VmHWM $pids)
  rss=$(status_kb VmRSS $pids)
  pss=$(pss_kb $pids)
  local c2=$c1
  if [ "$SETTLE" -gt 0 ]; then
    sleep "$SETTLE"
    c2=$(ticks $pids)
  fi
  stop_server

  local ok failed retr unexp su ss ended
  ok=$(csv_last "$dir/uac.csv" 'SuccessfulCall(C)')
  failed=$((CALLS - ok))
  retr=$(csv_last "$dir/uac.csv" 'Retransmissions(C)')
  unexp=$(csv_last "$dir/uac.csv" 'FailedUnexpectedMessage(C)')
  read -r su ss _ < <(tail -1 "$dir/uac.time" 2>/dev/null) || true
  # sipd's own count of calls ended by BYE (its summary on SIGTERM): SIPp's built-in uac
  # takes any 200 after its BYE as the BYE's answer, so under loss it can count a call whose
  # BYE never arrived (a late 2xx retransmission of the INVITE ends it).
  ended=$(sed -n 's/.*calls answered [0-9]*, ended \([0-9]*\).*/\1/p' "$dir/server.log" | tail -1)
  [ -n "$ended" ] || ended=n/a
  [ "$failed" -eq 0 ] || ALL_OK=0
  [ "$ended" = n/a ] || [ "$ended" -eq "$CALLS" ] || ALL_OK=0
  local row
  row=$(awk -v name="$name" -v tr="$TRANSPORT" -v rate="$RATE" -v ok="$ok" -v failed="$failed" -v retr="$retr" \
    -v unexp="$unexp" -v c0="$c0" -v c1="$c1" -v c2="$c2" -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v su="${su:-0}" -v ss="${ss:-0}" -v hwm="$hwm" -v pss="$pss" -v load="$load0" -v settle="$SETTLE" \
    -v drops="$((u1 - u0))" -v rc="$rc" -v ended="$ended" 'BEGIN {
      wall = t1 - t0; srv = (c1 - c0) * 1000 / hz; sipp = (su + ss) * 1000; box = (b1 - b0) * 1000 / hz
      per = ok > 0 ? sprintf("%.1f", srv * 1000 / ok) : "n/a"
      if (settle > 0) per = per " / " (ok > 0 ? sprintf("%.1f", (c2 - c0) * 1000 / hz * 1000 / ok) : "n/a")
      printf "| %s | %s | %d | %d / %d | %s | %d | %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %d | %.1f |",
        name, tr, rate, ok, failed, ended, retr, unexp, per, 100 * srv / 1000 / wall, hwm / 1024, pss / 1024,
        100 * sipp / 1000 / wall, 100 * (box - srv - sipp) / 1000 / wall, load, drops, ok / wall
    }')
  ROWS+=("$row")
  echo "$row" >"$dir/row.md"
  echo "load.sh: $name done: $row (sipp exit $rc; details in $dir)" >&2
  grep '^sipd:' "$dir/server.log" >&2 || true
}

# ---- main -------------------------------------------------------------------------------
{
  echo "# bench/load.sh $(date -u '+%Y-%m-%d %H:%M:%S') UTC, tree at commit $(git rev-parse --short HEAD 2>/dev/null)"
  [ -z "${SIPD_MIO:-}${SIPD_TOKIO:-}" ] || echo "prebuilt binaries: SIPD_MIO=${SIPD_MIO:-} SIPD_TOKIO=${SIPD_TOKIO:-}"
  echo "RATE=$RATE DURATION=$DURATION TRANSPORT=$TRANSPORT CALLS=$CALLS SERVERS='$SERVERS' SETTLE=$SETTLE"
  echo "$(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/header.txt" >&2

i=0
for s in mio tokio kamailio; do
  case " $SERVERS " in *" $s "*) run_one "$s" $((PORT_BASE + i)) ;; esac
  i=$((i + 1))
done

{
  cat "$OUT/header.txt"
  echo
  echo "| server | tr | rate cps | calls ok / failed | BYEs seen by sipd | sipp retrans | unexpected | cpu ms/1000 calls$([ "$SETTLE" -gt 0 ] && echo " / +settle") | server %core | peak RSS MB (VmHWM) | PSS MB | sipp %core | other %core | load avg | UDP rcvbuf drops | done cps |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "commands: $OUT/<server>/server.cmd and uac.cmd"
} | tee "$OUT/results.md"
[ "$ALL_OK" = 1 ]
