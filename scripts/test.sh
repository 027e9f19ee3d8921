#!/usr/bin/env bash
# The project's test command (README "Commands"): every unit, corpus, property and doc test.
# The torture corpora are read from $SIP_TORTURE_DIR (default ../shared/corpus); set
# SIP_REQUIRE_TORTURE=1 to fail instead of skip when they are absent (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIP_TORTURE_DIR="${SIP_TORTURE_DIR:-$(pwd)/../shared/corpus}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Peers some cargo tests start on loopback: redis-server (the Redis location store's tests,
# sip-driver-tokio/tests/redis.rs) and SIPp (sipc against SIPp's registrar,
# sip-driver-tokio/tests/registration.rs), installed here before the tests when missing
# (neither starts a daemon here). Without them those tests say SKIPPED, or fail under
# SIP_REQUIRE_INTEROP=1 (CI sets it). SIP_SKIP_INTEROP=1 installs nothing.
install() { # install PACKAGE unless COMMAND exists: install COMMAND PACKAGE
  command -v "$1" >/dev/null && return 0
  echo "installing $1 (Debian package $2)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  ($sudo apt-get install -y "$2" || ($sudo apt-get update && $sudo apt-get install -y "$2")) >/dev/null
}
if [ "${SIP_SKIP_INTEROP:-0}" != 1 ]; then
  install redis-server redis-server
  install sipp sip-tester
  # dnsmasq: the name tests (RFC 3263) of sip-driver-sys, sip-driver-tokio and
  # sip-driver-mio (tests/dns.rs) ask a dnsmasq they start. dnsmasq-base: the binary only
  # (the dnsmasq package would also start a system service).
  install dnsmasq dnsmasq-base
fi

cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
cargo test --workspace --doc "$@" 2>&1 | tee -a "$log"

# Interop with SIPp (scripts/interop-sipp.sh), installed above, so this command works on a
# fresh machine. SIP_SKIP_INTEROP=1 leaves these runs out (for quick local runs).
if [ "${SIP_SKIP_INTEROP:-0}" != 1 ]; then
  for driver in mio tokio; do
    for transport in u1 t1; do
      ./scripts/interop-sipp.sh uac "$driver" "$transport" 2>&1 | tee -a "$log" || true
    done
    ./scripts/interop-sipp.sh uac "$driver" u1 10 2>&1 | tee -a "$log" || true
  done
  ./scripts/interop-sipp.sh uas 2>&1 | tee -a "$log" || true
  # Registration with digest: baresip, linphonec, SIPp and sipc against sipd, sipc against
  # Kamailio, and a tshark check of the traffic (installs the peers it needs when missing).
  ./scripts/interop-register.sh 2>&1 | tee -a "$log" || true
  # sipd as a proxy-registrar: SIPp through it over UDP, TCP and UDP-to-TCP, forking to two
  # contacts with CANCEL, baresip calling baresip, and a tshark check (installs its peers).
  ./scripts/interop-proxy.sh 2>&1 | tee -a "$log" || true
  # Dialogs and sessions: SIPp scenarios against sipd (100rel, hold, UPDATE, session timer
  # refresh and expiry, 488, TCP Contact), baresip calling sipd over UDP and TCP, sipc
  # putting baresip on hold, a fork to two SIPp UASs, 20 calls through a record-routing
  # Kamailio, and a tshark check (installs baresip-core, kamailio, tshark when missing).
  # The slow runs are in scripts/interop-dialog-long.sh (not run here).
  ./scripts/interop-dialog.sh 2>&1 | tee -a "$log" || true
  # Names and TLS (RFC 3263, RFC 3261 26, RFC 5922), about a minute: sipc against dnsmasq
  # (order, weights, failover on ICMP, reset, 503, silence; the warm cache through sipd
  # --proxy), sipc, baresip and Kamailio's tls module to both sipd over TLS, a wrong-name
  # certificate refused, one handshake per peer, a tshark check (installs dnsmasq-base,
  # kamailio-tls-modules, ... when missing).
  ./scripts/interop-tls.sh 2>&1 | tee -a "$log" || true
fi

# One closing line for the whole run (cargo prints one summary per test binary; each interop
# run counts as one test).
awk '/^test result:/ { p += $4; f += $6 }
     /^interop: .*: ok/ { p += 1 }
     /^interop: .*FAILED/ { f += 1 }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
