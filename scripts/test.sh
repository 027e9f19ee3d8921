#!/usr/bin/env bash
# The project's test command (README "Tests"): every unit, corpus, property and doc test.
# The torture corpora are read from $SIP_TORTURE_DIR (default ../shared/corpus); set
# SIP_REQUIRE_TORTURE=1 to fail instead of skip when they are absent (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIP_TORTURE_DIR="${SIP_TORTURE_DIR:-$(pwd)/../shared/corpus}"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
