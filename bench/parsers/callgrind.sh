#!/usr/bin/env bash
# Instructions and allocations per parse, for every parser on a few messages.
#
# For each (parser, message) the `callgrind` binary runs under
# `valgrind --tool=callgrind` twice, with N1 and N2 iterations; the fixed
# start-up cost cancels out in  Ir(N2) - Ir(N1), so
#     instructions/parse = (Ir(N2) - Ir(N1)) / (N2 - N1).
# Allocations/parse come from the binary's counting global allocator (only the
# parse loop is counted; an allocation is one alloc/alloc_zeroed/realloc call).
#
# Usage: ./callgrind.sh                 (all parsers, default messages)
#   PARSERS="rsip rsipstack" ./callgrind.sh
#   MESSAGES="invite.sip register.sip" N1=1 N2=1001 ./callgrind.sh
#   CARGO_FLAGS=--no-default-features ./callgrind.sh   (peers only, no sip-core)
# Out files go to $CG_DIR (default /tmp), named cg.<pid>; they are removed
# unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")"

N1=${N1:-1}
N2=${N2:-1001}
MSG_DIR=../../sip-core/benches/messages
MESSAGES=${MESSAGES:-"invite.sip stress.sip stress_nofold.sip"}
CG_DIR=${CG_DIR:-/tmp}

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

# Release build with line-level debug info so callgrind_annotate can name
# functions when the out files are kept.
CARGO_PROFILE_RELEASE_DEBUG=1 cargo build --release --bin callgrind ${CARGO_FLAGS:-} >&2
BIN=target/release/callgrind
PARSERS=${PARSERS:-$("$BIN" --list | tr '\n' ' ')}

# Runs one callgrind pass; prints "<Ir> <allocs_per_parse>" (Ir empty on failure).
run() {
    local parser=$1 file=$2 n=$3 out log ir allocs
    log=$(mktemp)
    if ! valgrind --tool=callgrind --callgrind-out-file="$CG_DIR/cg.%p" \
            "$BIN" "$parser" "$file" "$n" >"$log" 2>"$log.err"; then
        echo "$parser on $file: $(grep -v '^==' "$log.err" | head -c 300)" >&2
        rm -f "$log" "$log.err"
        echo "- -"
        return
    fi
    # valgrind's own stderr lines look like "==PID== ..."; take the PID there.
    out="$CG_DIR/cg.$(grep -m1 -o '^==[0-9]*==' "$log.err" | tr -d '=')"
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
    allocs=$(grep -o 'allocs_per_parse=[0-9.]*' "$log" | cut -d= -f2)
    [ "${KEEP:-0}" = 1 ] && echo "kept $out ($parser $file x$n)" >&2 || rm -f "$out"
    rm -f "$log" "$log.err"
    echo "$ir $allocs"
}

echo "| parser | message | instructions/parse | allocations/parse |"
echo "| --- | --- | ---: | ---: |"
for msg in $MESSAGES; do
    for parser in $PARSERS; do
        read -r ir1 _ < <(run "$parser" "$MSG_DIR/$msg" "$N1")
        read -r ir2 allocs < <(run "$parser" "$MSG_DIR/$msg" "$N2")
        if [ "$ir1" = - ] || [ "$ir2" = - ]; then
            echo "| $parser | $msg | rejected | - |"
        else
            echo "| $parser | $msg | $(( (ir2 - ir1) / (N2 - N1) )) | $allocs |"
        fi
    done
done
