#!/usr/bin/env bash
# bench/tls-load.sh - sipd's CPU per 1000 calls over TLS against the same over TCP, in one run
# (issue 11 point 7), and TLS handshakes per peer.
#
# usage: bench/tls-load.sh                      # CALLS=2000 RATE=200 ROUNDS=3 SERVERS="mio tokio"
#        CALLS=500 ROUNDS=1 SERVERS=mio bench/tls-load.sh
#
# SIPp here (Debian sip-tester 3.6.1, "SCTP-PCAP-RTPSTREAM") is built without TLS, so SIPp's
# calls go over UDP to Kamailio 5.6, which record-routes and relays them to sipd
# (tests/interop/kamailio-tls.cfg): one Kamailio relays over TLS (its tls module, certificate
# checked against the test CA), the other over TCP (-A 'RELAY="tcp"'). One sipd per server
# listens on both: tls:127.0.0.1:26720 and tcp:127.0.0.1:26722 (certificates made for the run
# by gen-certs). Each round runs SIPp's uac_rr.xml (INVITE, 200, ACK, BYE, 200; CALLS calls at
# RATE calls/s) through the TLS Kamailio, then the same through the TCP one, alternating, and
# reads sipd's utime+stime (/proc/PID/stat, all threads) before and after each SIPp run: so
# both transports see the same sipd, the same machine load, and the same warm-up.
#
# Reported (table on stdout and in $OUT/results.md): per server, transport and round, calls
# completed, sipd CPU ms per 1000 calls; the TLS/TCP ratio of the sums; sipd's `tls handshakes N`
# at exit (Kamailio keeps one connection: 1 expected, not one per call) and the number of TCP
# connections Kamailio opened to the TLS port (from `ss` during the run).
#
# Environment: CALLS (2000), RATE (200), ROUNDS (3), SERVERS ("mio tokio"), SIPD_MIO,
# SIPD_TOKIO, GEN_CERTS (prebuilt binaries; default cargo build --release), OUT
# (/tmp/sip-tls-load/<time>). Ports 26700-26799. Bounded: SIPp -m CALLS with -timeout,
# everything inside `timeout`, stopped by PID. Not part of the test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CALLS=${CALLS:-2000}
RATE=${RATE:-200}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-mio tokio}
OUT=${OUT:-/tmp/sip-tls-load/$(date +%Y%m%d-%H%M%S)}
TLS_PORT=26720
TCP_PORT=26722
KAM_TLS_UDP=26730 # Kamailio relaying over TLS: SIPp sends here
KAM_TLS_TLS=26731
KAM_TCP_UDP=26740 # Kamailio relaying over TCP
KAM_TCP_TCP=26741
UAC_PORT=26750
mkdir -p "$OUT/bin"
for c in sipp kamailio; do
  command -v $c >/dev/null || { echo "tls-load: $c not found (apt-get install -y sip-tester kamailio kamailio-tls-modules)" >&2; exit 2; }
done

build() { # $1 = package, $2 = example, $3 = name in $OUT/bin
  cargo build -q --release -p "$1" --example "$2" >&2 && cp "target/release/examples/$2" "$OUT/bin/$3" && echo "$OUT/bin/$3"
}
declare -A SIPD
for s in $SERVERS; do
  case $s in
  mio) SIPD[mio]=${SIPD_MIO:-$(build sip-driver-mio sipd sipd-mio)} || exit 1 ;;
  tokio) SIPD[tokio]=${SIPD_TOKIO:-$(build sip-driver-tokio sipd sipd-tokio)} || exit 1 ;;
  *) echo "tls-load: unknown server $s (mio, tokio)" >&2; exit 2 ;;
  esac
done
GEN_CERTS=${GEN_CERTS:-$(build sip-driver-sys gen-certs gen-certs)} || exit 1

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$OUT/bin"
}
trap cleanup EXIT

listening() { # udp|tcp PORT (5 s at most)
  local flag=-Hlnu
  [ "$1" = tcp ] && flag=-Hlnt
  for _ in $(seq 50); do
    [ -n "$(ss $flag "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}
ticks() { # utime+stime of PID (all its threads), in clock ticks
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  read -r -a f <<<"$s" # f[0] is field 3 (state): utime = f[11], stime = f[12]
  echo $((f[11] + f[12]))
}
csv_last() { # CSV COLUMN
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1" 2>/dev/null
}
HZ=$(getconf CLK_TCK)

CERTS=$OUT/certs
"$GEN_CERTS" --out "$CERTS" --name example.test >"$OUT/gen-certs.log" 2>&1 || { echo "tls-load: gen-certs failed" >&2; exit 1; }
sed "s#@DIR@#$CERTS#g" "$ROOT/tests/interop/kamailio-tls-domains.cfg" >"$OUT/tls.cfg"

start_kam() { # NAME UDP_PORT OTHER_LISTEN RELAY
  timeout 3600 kamailio -f "$ROOT/tests/interop/kamailio-tls.cfg" -l "udp:127.0.0.1:$2" -l "$3" \
    -A "TLS_CFG=\"$OUT/tls.cfg\"" -A "RELAY=\"$4\"" -DD -E -m 256 -P "$OUT/kam-$1.pid" >"$OUT/kam-$1.log" 2>&1 &
  PIDS+=("$!")
  listening udp "$2" || { echo "tls-load: Kamailio ($1) did not start: $OUT/kam-$1.log" >&2; exit 1; }
}
start_kam tls "$KAM_TLS_UDP" "tls:127.0.0.1:$KAM_TLS_TLS" tls
start_kam tcp "$KAM_TCP_UDP" "tcp:127.0.0.1:$KAM_TCP_TCP" tcp
sleep 0.5 # Kamailio forks its workers

run_sipp() { # DIR KAMAILIO_UDP_PORT SIPD_PORT: sets OKC
  local dir=$1
  mkdir -p "$dir"
  (cd "$dir" && exec timeout $((CALLS / RATE + 60)) sipp -sf "$ROOT/tests/interop/sipp/uac_rr.xml" "127.0.0.1:$2" \
    -s "$3" -i 127.0.0.1 -p "$UAC_PORT" -t u1 -m "$CALLS" -r "$RATE" -timeout $((CALLS / RATE + 50))s -timeout_error \
    -recv_timeout 10s -nostdin -buff_size 1048576 -trace_stat -stf "$dir/uac.csv" -trace_err -error_file "$dir/err.log" \
    >"$dir/out.txt" 2>&1)
  OKC=$(csv_last "$dir/uac.csv" 'SuccessfulCall(C)')
}

{
  echo "# tls-load: sipd CPU per 1000 calls, SIPp (UDP) -> Kamailio -> sipd over TLS vs TCP"
  echo
  echo "CALLS=$CALLS RATE=$RATE ROUNDS=$ROUNDS, $(date -u +%FT%TZ), tree $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| server | round | transport | calls ok | sipd CPU ms | ms per 1000 calls |"
  echo "|---|---|---|---|---|---|"
} | tee "$OUT/results.md"

for s in $SERVERS; do
  timeout 3600 "${SIPD[$s]}" --listen "tls:127.0.0.1:$TLS_PORT" --listen "tcp:127.0.0.1:$TCP_PORT" \
    --cert "$CERTS/cert.pem" --key "$CERTS/key.pem" --log warn >"$OUT/sipd-$s.log" 2>&1 &
  wrap=$!
  PIDS+=("$wrap")
  listening tcp "$TLS_PORT" && listening tcp "$TCP_PORT" || { echo "tls-load: sipd ($s) did not start" >&2; exit 1; }
  pid=$(pgrep -P "$wrap" | head -1)
  declare -A SUM_MS=([tls]=0 [tcp]=0) SUM_OK=([tls]=0 [tcp]=0)
  conns=0
  for r in $(seq "$ROUNDS"); do
    for t in tls tcp; do
      if [ "$t" = tls ]; then kp=$KAM_TLS_UDP sp=$TLS_PORT; else kp=$KAM_TCP_UDP sp=$TCP_PORT; fi
      before=$(ticks "$pid")
      run_sipp "$OUT/$s-$t-$r" "$kp" "$sp"
      after=$(ticks "$pid")
      [ "$t" = tls ] && conns=$(ss -Htn state established "dport = :$TLS_PORT" 2>/dev/null | wc -l)
      ms=$(((after - before) * 1000 / HZ))
      per=$(awk -v ms="$ms" -v n="$OKC" 'BEGIN { printf "%.0f", n ? ms * 1000 / n : 0 }')
      SUM_MS[$t]=$((SUM_MS[$t] + ms))
      SUM_OK[$t]=$((SUM_OK[$t] + OKC))
      echo "| $s | $r | $t | $OKC of $CALLS | $ms | $per |" | tee -a "$OUT/results.md"
    done
  done
  kill "$wrap" 2>/dev/null
  wait "$wrap" 2>/dev/null
  hs=$(grep -oE 'tls handshakes [0-9]+' "$OUT/sipd-$s.log" | tail -1)
  {
    awk -v s="$s" -v a="${SUM_MS[tls]}" -v an="${SUM_OK[tls]}" -v b="${SUM_MS[tcp]}" -v bn="${SUM_OK[tcp]}" 'BEGIN {
      x = an ? a * 1000 / an : 0; y = bn ? b * 1000 / bn : 0
      printf "| %s | all | TLS/TCP | %d / %d | %d / %d | %.0f / %.0f = %.2f |\n", s, an, bn, a, b, x, y, (y ? x / y : 0) }'
  } | tee -a "$OUT/results.md"
  echo "sipd($s): ${hs:-no 'tls handshakes' line}; Kamailio's TLS connections to sipd (ss, after the TLS runs): $conns" |
    tee -a "$OUT/notes.txt"
done
echo | tee -a "$OUT/results.md"
cat "$OUT/notes.txt" | tee -a "$OUT/results.md" >/dev/null
echo "results in $OUT/results.md"
