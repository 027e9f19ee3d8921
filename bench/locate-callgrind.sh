#!/usr/bin/env bash
# Instructions per OPTIONS round trip through two Endpoints (sip-core/benches/locate.rs): sent
# to an address, and sent to a name with a warm cache (issue 11 point 7: at most 5 % more).
# Each runs under callgrind with N1 and N2 iterations; (Ir(N2) - Ir(N1)) / (N2 - N1) cancels
# start-up and the first lookup (4 DNS questions answered by hand). Deterministic, unlike
# the criterion times on a shared machine. Usage: bench/locate-callgrind.sh (N1=2000 N2=6000)
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-2000}
N2=${N2:-6000}
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench -p sip-core --bench locate --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "locate-callgrind: no bench binary" >&2; exit 1; }
ir() { LOCATE_HOP=$1 LOCATE_ITERS=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for hop in address name; do
  a=$(ir $hop "$N1")
  b=$(ir $hop "$N2")
  echo "$hop $(((b - a) / (N2 - N1)))"
done | awk '{ v[$1] = $2; print $1 ": " $2 " instructions per round trip" }
  END { printf "name / address = %.3f\n", v["name"] / v["address"] }'
