#!/bin/sh
# Fills corpus/<target>/ with seeds: the RFC 4475 and RFC 5118 torture messages and the
# benchmark messages; for parse_uri, their Request-URIs. Run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../shared/corpus" 2>/dev/null && pwd) || shared=""
benches="$here/../sip-core/benches/messages"
mkdir -p "$here/corpus/parse_message" "$here/corpus/parse_uri" "$here/corpus/stream_framing" "$here/corpus/raw_reads"

n=0
for f in ${shared:+"$shared"/rfc4475/*.dat "$shared"/rfc4475/extra/*.dat "$shared"/rfc5118/*} "$benches"/*.sip; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    case "$name" in *.txt|*.tsv|SHA256SUMS) continue ;; esac
    cp "$f" "$here/corpus/parse_message/$name"
    cp "$f" "$here/corpus/raw_reads/$name"
    # stream_framing: one split length (byte 31: 32-byte reads), then the message twice.
    { printf '\001\037'; cat "$f" "$f"; } > "$here/corpus/stream_framing/$name"
    # parse_uri: the second space-separated field of the first line.
    # (responses, whose first field is SIP/2.0, have no URI.)
    first=$(head -n 1 "$f" | tr -d '\r')
    case "$first" in SIP/*) ;; *) printf '%s' "$first" | cut -d ' ' -f 2 > "$here/corpus/parse_uri/$name.tmp" ;; esac
    if [ -s "$here/corpus/parse_uri/$name.tmp" ]; then
        # no trailing newline
        printf '%s' "$(cat "$here/corpus/parse_uri/$name.tmp")" > "$here/corpus/parse_uri/$name"
    fi
    rm -f "$here/corpus/parse_uri/$name.tmp"
    n=$((n + 1))
done
echo "seeded $n files into $here/corpus/{parse_message,parse_uri,stream_framing,raw_reads}"
