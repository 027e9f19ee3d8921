#!/usr/bin/env bash
# The project's test command (README "Commands"): every unit, corpus, property and doc test.
# The torture corpora are read from $SIP_TORTURE_DIR (default ../shared/corpus); set
# SIP_REQUIRE_TORTURE=1 to fail instead of skip when they are absent (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIP_TORTURE_DIR="${SIP_TORTURE_DIR:-$(pwd)/../shared/corpus}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
cargo test --workspace --doc "$@" 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
