#!/usr/bin/env bash
# Instructions per complete INVITE server transaction through the Endpoint, against
# instructions per full parse of the same INVITE (issue 3's target: under 4 parses).
# Each mode runs under callgrind with N1 and N2 iterations; (Ir(N2) - Ir(N1)) / (N2 - N1)
# cancels start-up. Usage: bench/endpoint-callgrind.sh   (N1=1000 N2=3000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-1000}
N2=${N2:-3000}
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -p sip-core --example uas_loop >&2
bin=target/release/examples/uas_loop
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for mode in parse uas; do
  a=$(ir $mode "$N1"); b=$(ir $mode "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  echo "$mode $per"
done | awk '{v[$1]=$2; print $1": "$2" instructions per iteration"} END {printf "uas / parse = %.2f\n", v["uas"]/v["parse"]}'
