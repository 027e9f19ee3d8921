#!/usr/bin/env bash
# bench/register-load.sh - authenticated REGISTERs per CPU-second: Kamailio's registrar and
# `sipd --registrar` (mio driver, tokio driver), side by side in one run.
#
# usage: bench/register-load.sh                     # defaults: RATE=500 DURATION=20
#        RATE=1000 DURATION=20 bench/register-load.sh
#        SERVERS="kamailio mio" RATE=1000 bench/register-load.sh
#
# In one invocation, one server after the other, at the same rate: each server is started on
# 127.0.0.1 as a registrar that challenges REGISTER (digest, user alice, password secret),
# SIPp runs bench/sipp/register_auth_uac.xml against it (-s alice -au alice -ap secret) for
# RATE*DURATION registrations, the server is measured and stopped. One registration is
#   REGISTER -> 401 (WWW-Authenticate) -> REGISTER with Authorization -> 200 OK
# so the server handles two requests per registration: it issues a challenge, then checks a
# digest response and updates the binding of sip:alice@127.0.0.1 (the same Contact every
# time, a new Call-ID each time: the binding is replaced, RFC 3261 10.3 step 7).
# Loopback only.
#
# The client (CLIENT):
#   sipp    (default) SIPp 3.6.1 with bench/sipp/register_auth_uac.xml. It answers only the
#           FIRST challenge of a 401, and only MD5: against sipd's default offer (SHA-256,
#           SHA-512-256, MD5: RFC 8760 section 2.4) every registration fails, so with this
#           client sipd is started with `--algorithms MD5` (SIPD_ALGORITHMS).
#   python  bench/register_client.py: the same message flow, the same AOR, Contact and
#           Expires, but it picks the challenge of algorithm ALGORITHM (default MD5, the one
#           Kamailio offers) among all those of the 401. Use it to compare sipd with Kamailio
#           on the same digest. Like SIPp it starts registrations in batches every TICK_MS
#           (10) milliseconds; TICK_MS=1 spreads them out, one wake-up of the server per
#           datagram, which costs Kamailio about twice the CPU (and sipd more too).
#
# Servers (SERVERS, space separated, run in this order by default: "kamailio mio tokio"):
#   kamailio  Kamailio 5.6, bench/kamailio-registrar.cfg (registrar + usrloc in memory + auth,
#             password checked with pv_auth_check, qop=auth, MD5)  (apt-get install -y kamailio)
#   mio       sipd of sip-driver-mio   --registrar --realm example.test --user alice:secret
#   tokio     sipd of sip-driver-tokio --registrar --realm example.test --user alice:secret
#             (built with cargo unless SIPD_MIO / SIPD_TOKIO name a prebuilt binary; a sipd
#             without --registrar is reported as skipped)
#
# Reported per server (table on stdout, copied to $OUT/results.md):
#   ok / failed     SuccessfulCall(C) from SIPp (a call = one authenticated registration);
#                   failed = registrations asked - registrations ok (403, a second 401, a
#                   timeout, ...)
#   server CPU s    utime+stime of the server (all its threads and child processes, from
#                   /proc/PID/stat) after the SIPp run minus before
#   REG/CPU-s       successful authenticated registrations per CPU-second of the server
#   ratio           REG/CPU-s divided by Kamailio's in the same run (when Kamailio ran)
#   server %core    CPU of the server during the run, 100 = one core
#   peak RSS MB     VmHWM (reset before the run), summed over the server's processes
#   PSS MB          Pss summed over the server's processes at the end of the run (Kamailio's
#                   processes share memory: compare PSS, not RSS)
#   client %core, other %core    the client, and the rest of the shared machine during the run
#   retrans         the client's retransmissions (non-zero: a request went unanswered in 500 ms)
#
# Environment:
#   RATE (500) registrations/s    DURATION (20) seconds    TRANSPORT (u1 | t1; python: UDP only)
#   CLIENT (sipp | python)    ALGORITHM (MD5: what the python client answers with)
#   TICK_MS (10: the python client's batch period)
#   SIPD_ALGORITHMS (sipd --algorithms; default MD5 with CLIENT=sipp, sipd's own default
#   with CLIENT=python: it offers three challenges and the client answers the MD5 one)
#   SERVERS ("kamailio mio tokio")    CALLS (RATE*DURATION, sipp -m)
#   LIMIT (max(RATE,500), sipp -l)    SIPP_TIMEOUT (2*DURATION+10 s)
#   PORT_BASE (5400: kamailio on +0, mio on +1, tokio on +2; SIPp itself on +9)
#   SIPD_MIO, SIPD_TOKIO (prebuilt binaries)    KAM_SHM_MB (256, kamailio -m)
#   OUT (/tmp/sip-register-load/<time>: logs, SIPp csv, exact commands)
#
# Bounded: sipp -m CALLS, -timeout SIPP_TIMEOUT -timeout_error, inside `timeout`; every server
# inside `timeout` too and stopped by its PID at the end or on Ctrl-C.
# Exit status: 0 when every registration of every server that ran succeeded, 1 otherwise,
# 2 on a usage error. Slow (about DURATION+5 s per server): not part of the test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RATE=${RATE:-500}
DURATION=${DURATION:-20}
TRANSPORT=${TRANSPORT:-u1}
SERVERS=${SERVERS:-kamailio mio tokio}
CALLS=${CALLS:-$((RATE * DURATION))}
LIMIT=${LIMIT:-$((RATE > 500 ? RATE : 500))}
SIPP_TIMEOUT=${SIPP_TIMEOUT:-$((2 * DURATION + 10))}
PORT_BASE=${PORT_BASE:-5400}
KAM_SHM_MB=${KAM_SHM_MB:-256}
OUT=${OUT:-/tmp/sip-register-load/$(date +%Y%m%d-%H%M%S)}
REALM=example.test
USER_NAME=alice
PASSWORD=secret
SCENARIO=$ROOT/bench/sipp/register_auth_uac.xml
CLIENT=${CLIENT:-sipp}
ALGORITHM=${ALGORITHM:-MD5}
TICK_MS=${TICK_MS:-10}
SIPD_ALGORITHMS=${SIPD_ALGORITHMS-$([ "$CLIENT" = sipp ] && echo MD5)}

usage() { sed -n "2,/^set -uo/p" "$0" | sed "$ d" >&2; exit 2; }
case "${1:-}" in -h | --help) usage ;; "") ;; *) echo "register-load.sh: no arguments, only environment variables" >&2; usage ;; esac
for v in RATE DURATION CALLS LIMIT SIPP_TIMEOUT PORT_BASE KAM_SHM_MB TICK_MS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "register-load.sh: $v must be a whole number, not '${!v}'" >&2; usage; }
done
case $TRANSPORT in u1 | t1) ;; *) echo "register-load.sh: TRANSPORT is u1 or t1" >&2; usage ;; esac
case $CLIENT in sipp) ;; python) [ "$TRANSPORT" = u1 ] || { echo "register-load.sh: CLIENT=python is UDP only" >&2; usage; } ;;
*) echo "register-load.sh: CLIENT is sipp or python" >&2; usage ;; esac
for s in $SERVERS; do
  case $s in mio | tokio | kamailio) ;; *) echo "register-load.sh: unknown server '$s'" >&2; usage ;; esac
done
command -v sipp >/dev/null || { echo "register-load.sh: sipp not found (apt-get install -y sip-tester)" >&2; exit 1; }

mkdir -p "$OUT/bin"
HZ=$(getconf CLK_TCK)
SAFETY=$((SIPP_TIMEOUT + 60)) # lifetime limit of each server process
STARTED=()                    # "server_pid wrapper_pid" of what we started

cleanup() {
  local e
  for e in "${STARTED[@]}"; do
    set -- $e
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    kill -0 "$2" 2>/dev/null && kill -KILL "$2" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "register-load.sh: interrupted" >&2; exit 130' INT TERM

# ---- binaries ---------------------------------------------------------------------------
# Both examples build to target/release/examples/sipd, so each build is copied away at once.
build_sipd() { # $1 = mio|tokio; prints the binary path
  local drv=$1 bin=$OUT/bin/sipd-$1
  echo "register-load.sh: cargo build --release -p sip-driver-$drv --example sipd" >&2
  cargo build -q --release -p "sip-driver-$drv" --example sipd >&2 || return 1
  cp target/release/examples/sipd "$bin" && echo "$bin"
}
declare -A BIN SKIP
for s in $SERVERS; do
  case $s in
  mio | tokio)
    var=SIPD_${s^^}
    BIN[$s]=${!var:-$(build_sipd "$s")} || { echo "register-load.sh: build of sipd ($s) failed" >&2; exit 1; }
    [[ $("${BIN[$s]}" --help 2>&1) == *--registrar* ]] || SKIP[$s]="this sipd has no --registrar"
    ;;
  kamailio)
    BIN[kamailio]=$(command -v kamailio) || SKIP[kamailio]="no kamailio (apt-get install -y kamailio)"
    ;;
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
listening() { # $1 = port: the UDP socket is bound (and the TCP one, for t1)
  [ -n "$(ss -H -lun "sport = :$1")" ] || return 1
  [ "$TRANSPORT" = u1 ] || [ -n "$(ss -H -ltn "sport = :$1")" ]
}
csv_last() { # $1 = csv, $2 = column name: its value on the last line of SIPp's statistics
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}

# ---- servers ----------------------------------------------------------------------------
start_server() { # $1 = name, $2 = port, $3 = run dir; sets SRV (the server) and WRAP (its timeout)
  local name=$1 port=$2 dir=$3 cmd
  SRV="" WRAP=""
  if [ -n "$(ss -H -lun "sport = :$port")$(ss -H -ltn "sport = :$port")" ]; then
    echo "register-load.sh: port $port is in use; set PORT_BASE" >&2
    return 1
  fi
  case $name in
  mio | tokio)
    cmd=("${BIN[$name]}" --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --log warn
      --registrar --realm "$REALM" --user "$USER_NAME:$PASSWORD" ${SIPD_ALGORITHMS:+--algorithms "$SIPD_ALGORITHMS"})
    echo "${cmd[*]}" >"$dir/server.cmd"
    timeout -s KILL "$SAFETY" "${cmd[@]}" >"$dir/server.log" 2>&1 &
    WRAP=$!
    for _ in $(seq 50); do
      SRV=$(ps -o pid= --ppid "$WRAP" | tr -d ' ')
      [ -n "$SRV" ] && break
      sleep 0.1
    done
    ;;
  kamailio)
    local pidf=$dir/kamailio.pid
    cmd=(kamailio -f "$ROOT/bench/kamailio-registrar.cfg" -l "udp:127.0.0.1:$port" -l "tcp:127.0.0.1:$port"
      -DD -E -m "$KAM_SHM_MB" -P "$pidf")
    echo "${cmd[*]}" >"$dir/server.cmd"
    timeout -s KILL "$SAFETY" "${cmd[@]}" >"$dir/server.log" 2>&1 &
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
    echo "register-load.sh: $name did not start (see $dir/server.log)" >&2
    stop_server
    return 1
  fi
  sleep 1 # Kamailio forks its workers after binding
}
stop_server() { # SIGTERM, then SIGKILL after 10 s
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
KAM_PER_CPU_S=""
run_one() { # $1 = name, $2 = port
  local name=$1 port=$2 dir=$OUT/$1
  mkdir -p "$dir"
  if [ -n "${SKIP[$name]:-}" ]; then
    echo "register-load.sh: $name skipped (${SKIP[$name]})" >&2
    ROWS+=("| $name | $TRANSPORT | $RATE | skipped: ${SKIP[$name]} | | | | | | | | | | |")
    return
  fi
  start_server "$name" "$port" "$dir" || {
    ALL_OK=0
    ROWS+=("| $name | $TRANSPORT | $RATE | did not start | | | | | | | | | | |")
    return
  }
  local pids p
  pids=$(descendants "$SRV" | sort -un | tr '\n' ' ')
  for p in $pids; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null; done # restart VmHWM from the current RSS

  local cmd
  if [ "$CLIENT" = sipp ]; then
    cmd=(sipp -sf "$SCENARIO" "127.0.0.1:$port" -s "$USER_NAME" -au "$USER_NAME" -ap "$PASSWORD"
      -i 127.0.0.1 -p $((PORT_BASE + 9)) -t "$TRANSPORT" -r "$RATE" -rp 1000 -l "$LIMIT" -m "$CALLS"
      -timeout "${SIPP_TIMEOUT}s" -timeout_error -recv_timeout 10s -nostdin -max_socket 5000
      -buff_size 1048576 -trace_stat -stf "$dir/uac.csv" -fd 1 -trace_err -error_file "$dir/uac_err.log")
  else
    cmd=(python3 "$ROOT/bench/register_client.py" 127.0.0.1 "$port" "$RATE" "$CALLS" "$USER_NAME" "$PASSWORD" "$ALGORITHM" "$TICK_MS")
  fi
  echo "${cmd[*]}" >"$dir/uac.cmd"
  rm -f "$dir/uac.csv"
  local load0 c0 b0 t0
  load0=$(cut -d' ' -f1 /proc/loadavg)
  b0=$(box_ticks)
  c0=$(ticks $pids)
  t0=$(date +%s.%N)
  (cd "$dir" && timeout $((SIPP_TIMEOUT + 10)) /usr/bin/time -f '%U %S %M' -o "$dir/uac.time" "${cmd[@]}" >"$dir/uac.out" 2>&1)
  local rc=$?
  local c1 t1 b1 hwm pss
  c1=$(ticks $pids)
  t1=$(date +%s.%N)
  b1=$(box_ticks)
  hwm=$(status_kb VmHWM $pids)
  pss=$(pss_kb $pids)
  stop_server

  local ok failed retr su ss
  if [ "$CLIENT" = sipp ]; then
    ok=$(csv_last "$dir/uac.csv" 'SuccessfulCall(C)')
    retr=$(csv_last "$dir/uac.csv" 'Retransmissions(C)')
  else
    ok=$(sed -n 's/^ok=\([0-9]*\) .*/\1/p' "$dir/uac.out")
    retr=$(sed -n 's/.* retransmissions=\([0-9]*\) .*/\1/p' "$dir/uac.out")
  fi
  ok=${ok:-0}
  failed=$((CALLS - ok))
  read -r su ss _ < <(tail -1 "$dir/uac.time" 2>/dev/null) || true
  [ "$failed" -eq 0 ] || ALL_OK=0
  local per_cpu_s row
  per_cpu_s=$(awk -v ok="$ok" -v c0="$c0" -v c1="$c1" -v hz="$HZ" 'BEGIN { s = (c1 - c0) / hz; printf "%.0f", (s > 0 ? ok / s : 0) }')
  [ "$name" = kamailio ] && KAM_PER_CPU_S=$per_cpu_s
  row=$(awk -v name="$name" -v tr="$TRANSPORT" -v rate="$RATE" -v ok="$ok" -v failed="$failed" -v retr="$retr" \
    -v c0="$c0" -v c1="$c1" -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v su="${su:-0}" -v ss="${ss:-0}" -v hwm="$hwm" -v pss="$pss" -v load="$load0" \
    -v per="$per_cpu_s" -v kam="$KAM_PER_CPU_S" 'BEGIN {
      wall = t1 - t0; srv = (c1 - c0) / hz; sipp = su + ss; box = (b1 - b0) / hz
      ratio = (kam != "" && kam > 0) ? sprintf("%.2f", per / kam) : "n/a"
      printf "| %s | %s | %d | %d / %d | %.2f | **%d** | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %d |",
        name, tr, rate, ok, failed, srv, per, ratio, 100 * srv / wall, hwm / 1024, pss / 1024,
        100 * sipp / wall, 100 * (box - srv - sipp) / wall, load, retr
    }')
  ROWS+=("$row")
  echo "$row" >"$dir/row.md"
  echo "register-load.sh: $name done: $row (sipp exit $rc; details in $dir)" >&2
}

# ---- main -------------------------------------------------------------------------------
{
  echo "# bench/register-load.sh $(date -u '+%Y-%m-%d %H:%M:%S') UTC, tree at commit $(git rev-parse --short HEAD 2>/dev/null)"
  echo "RATE=$RATE DURATION=$DURATION TRANSPORT=$TRANSPORT CALLS=$CALLS SERVERS='$SERVERS' CLIENT=$CLIENT$([ "$CLIENT" = python ] && echo " ALGORITHM=$ALGORITHM TICK_MS=$TICK_MS") SIPD_ALGORITHMS=${SIPD_ALGORITHMS:-default}"
  echo "$(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/header.txt" >&2

for s in $SERVERS; do
  case $s in kamailio) i=0 ;; mio) i=1 ;; tokio) i=2 ;; esac
  run_one "$s" $((PORT_BASE + i))
done

{
  cat "$OUT/header.txt"
  echo
  echo "| server | tr | rate/s | registrations ok / failed | server CPU s | REG/CPU-s | ratio to Kamailio | server %core | peak RSS MB | PSS MB | client %core | other %core | load avg | client retrans |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "commands: $OUT/<server>/server.cmd and uac.cmd"
} | tee "$OUT/results.md"
[ "$ALL_OK" = 1 ]
