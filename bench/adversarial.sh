#!/usr/bin/env bash
# bench/adversarial.sh - the attacks of issue 9 against the demo server sipd, one line each.
#
# usage: bench/adversarial.sh [mio|tokio]...          # default: mio tokio
#        ATTACKS="partial reflect" bench/adversarial.sh tokio
#
# For each driver and each attack, a fresh sipd is started on 127.0.0.1:$PORT (UDP and TCP),
# the attack is run by bench/adversarial.py (standard library Python 3), and sipd is stopped
# (SIGTERM, then SIGKILL); its summary goes to $OUT/<driver>-<attack>.log. Loopback only:
# clients bind to source addresses in 127.0.0.0/8 so that one run looks like many peers.
#
# Attacks (ATTACKS, space separated, in this order by default):
#   partial   N TCP connections (PARTIAL_CONNS, 8000) from many sources (60 each), each with an
#             unfinished header of PARTIAL_BYTES (60000) bytes; then 2000 from one source.
#             Reports how many stay open and sipd's RSS before/after and peak (VmHWM).
#   idle      IDLE_CONNS (8192) TCP connections that send nothing, from many sources: RSS.
#   invites   INVITES (20000) INVITEs with 60 KB bodies pipelined over 20 TCP connections,
#             sipd with --ring 30s: how many got 180 (a transaction) and 503 with Retry-After,
#             RSS and peak. Stops waiting after 28 s (before the first call is answered).
#   lockout   one source opens as many TCP connections as it can (8300 wanted) and sends one
#             byte every 2 s on each; a new client (another address) sends OPTIONS over a new
#             TCP connection every second for LOCKOUT_SECONDS (60) and counts the answers.
#             lockout-many: the same from 130 sources x 64 connections (the flow table is
#             8192), for LOCKOUT_SECONDS too.
#   reflect   one UDP INVITE (sipd --ring 1s) whose Via carries maddr=127.0.0.99 (reflect-maddr)
#             or a sent-by port other than its source port without rport (reflect-sent-by):
#             datagrams and bytes at the address it names vs at its source, until nothing
#             has come for 10 s (at most 40 s).
#   dribble   a 61,440-byte MESSAGE over TCP, one byte per send(): sipd's CPU time (utime +
#             stime from /proc/PID/stat) from the first byte to the answer. Back-to-back
#             writes are coalesced by the kernel when sipd reads slower than they come, so
#             it is run again with 100 us after each write (about one byte per read), and
#             so for a quarter of the size (15,360 bytes): linear framing costs a quarter.
#   noread    (not in the issue) NOREAD_CONNS (16) TCP connections from one source send 1000
#             OPTIONS each whose four long Vias (45 KB in all) make each 200 as large, and
#             never read: what sipd's per-connection write queues hold (RSS), outside the
#             byte budget.
#   churn     (not in the issue) 4 rounds of 5,000 connections (50 per source) opened, then
#             closed with a reset: RSS after each round (what each ended connection leaves).
#
# Environment: PORT (15070), SIPD_ARGS (more sipd arguments, e.g. "--log warn" for an older
# tokio sipd), TAG (appended to the driver's name in the output), OUT (/tmp/sip-adversarial/<time>), SIPD_MIO, SIPD_TOKIO (prebuilt
# binaries; default: cargo build --release of each driver's sipd example, copied to $OUT/bin,
# since both build to target/release/examples/sipd), and the counts above.
# Bounded: every attack bounds its own duration and runs inside `timeout`; sipd is killed by
# PID after each attack and on exit or Ctrl-C. Takes about 5 minutes per driver.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PORT=${PORT:-15070}
OUT=${OUT:-/tmp/sip-adversarial/$(date +%Y%m%d-%H%M%S)}
ATTACKS=${ATTACKS:-partial idle invites lockout lockout-many reflect dribble noread churn}
PARTIAL_CONNS=${PARTIAL_CONNS:-8000}
PARTIAL_BYTES=${PARTIAL_BYTES:-60000}
IDLE_CONNS=${IDLE_CONNS:-8192}
INVITES=${INVITES:-20000}
LOCKOUT_SECONDS=${LOCKOUT_SECONDS:-60}
NOREAD_CONNS=${NOREAD_CONNS:-16}
DRIVERS=("$@")
[ ${#DRIVERS[@]} -eq 0 ] && DRIVERS=(mio tokio)
PY="python3 $ROOT/bench/adversarial.py"
mkdir -p "$OUT/bin"

# sipd and the clients each hold thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 17000 ]; then
    echo "# warning: ulimit -n is $(ulimit -n); the 8,000-connection attacks need about 17,000" >&2
fi

SIPD_PID=
cleanup() {
    if [ -n "$SIPD_PID" ] && kill -0 "$SIPD_PID" 2>/dev/null; then
        kill -TERM "$SIPD_PID" 2>/dev/null
        sleep 1
        kill -KILL "$SIPD_PID" 2>/dev/null
    fi
    SIPD_PID=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

binary() {
    local driver=$1 var
    var=SIPD_${driver^^}
    if [ -n "${!var:-}" ]; then
        echo "${!var}"
        return
    fi
    if [ ! -x "$OUT/bin/sipd-$driver" ]; then
        cargo build --release -q -p "sip-driver-$driver" --example sipd >&2 || exit 1
        cp target/release/examples/sipd "$OUT/bin/sipd-$driver"
    fi
    echo "$OUT/bin/sipd-$driver"
}

# start_sipd DRIVER LOG [ARGS...]: starts sipd, waits until it answers OPTIONS over UDP.
start_sipd() {
    local bin=$1 log=$2
    shift 2
    # shellcheck disable=SC2086 # SIPD_ARGS is a list of words
    timeout -s KILL 300 "$bin" --listen "udp:127.0.0.1:$PORT" --listen "tcp:127.0.0.1:$PORT" \
        ${SIPD_ARGS:-} "$@" >"$log" 2>&1 &
    SIPD_PID=$!
    for _ in $(seq 50); do
        if ss -ltn "sport = :$PORT" | grep -q LISTEN; then
            sleep 0.3
            # the timeout wrapper's child is sipd
            local child
            child=$(pgrep -P "$SIPD_PID" | head -1)
            [ -n "$child" ] && SIPD_PID=$child
            return 0
        fi
        sleep 0.1
    done
    echo "sipd did not start, see $log" >&2
    return 1
}

stop_sipd() {
    local log=$1
    cleanup
    # a panic or a crash shows in the log
    if grep -qi "panick" "$log"; then
        echo "    !! sipd panicked, see $log"
    fi
}

# client SECONDS LABEL ARGS...: one run of adversarial.py against the running sipd, its lines
# prefixed with LABEL.
client() {
    local most=$1 label=$2
    shift 2
    timeout -s KILL "$most" $PY "$@" --port "$PORT" --pid "$SIPD_PID" 2>>"$OUT/client.log" |
        sed "s/^/$(printf '%-9s' "$label") /"
}

# run DRIVER ATTACK: one attack against a fresh sipd.
run() {
    local driver=$1 attack=$2 bin log args=() cmd=()
    bin=$(binary "$driver")
    log="$OUT/$driver-$attack.log"
    case $attack in
        partial) cmd=(partial --conns "$PARTIAL_CONNS" --bytes "$PARTIAL_BYTES") ;;
        idle) cmd=(idle --conns "$IDLE_CONNS") ;;
        invites)
            args=(--ring 30s)
            cmd=(invites --count "$INVITES")
            ;;
        lockout) cmd=(lockout --sources 1 --per-source 8300 --duration "$LOCKOUT_SECONDS") ;;
        lockout-many) cmd=(lockout --sources 130 --per-source 64 --duration "$LOCKOUT_SECONDS") ;;
        reflect)
            args=(--ring 1s)
            cmd=(reflect --mode maddr)
            ;;
        dribble) cmd=(dribble) ;;
        churn) cmd=(churn --rounds 4 --per-round 5000) ;;
        noread) cmd=(noread --conns "$NOREAD_CONNS" --per-source 16 --requests 1000) ;;
        *)
            echo "unknown attack $attack" >&2
            return 1
            ;;
    esac
    start_sipd "$bin" "$log" "${args[@]}" || return 1
    client 240 "$driver${TAG:-}" "${cmd[@]}"
    if [ "$attack" = reflect ]; then
        # the other reflection: a sent-by port other than the source, no rport
        client 60 "$driver${TAG:-}" reflect --mode sent-by
    fi
    if [ "$attack" = dribble ]; then
        # the same with a pause after each write, so that sipd reads about a byte at a time
        client 60 "$driver${TAG:-}" dribble --pace-us 100 --prefix 61
        # a quarter of the size: linear framing costs a quarter, quadratic a sixteenth
        client 60 "$driver${TAG:-}" dribble --pace-us 100 --size 15360 --prefix 62
    fi
    if ! kill -0 "$SIPD_PID" 2>/dev/null; then
        echo "    !! sipd is gone (crashed or killed), see $log"
    fi
    stop_sipd "$log"
    sleep 1
}

echo "# bench/adversarial.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), logs in $OUT"
for driver in "${DRIVERS[@]}"; do
    for attack in $ATTACKS; do
        run "$driver" "$attack"
    done
done
