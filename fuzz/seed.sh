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

# digest: a challenged REGISTER's 401 (odd first byte) and an answered REGISTER (even).
mkdir -p "$here/corpus/digest"
crlf() { sed 's/$/\r/'; }
{ printf '\001'; crlf <<'MSG'
SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
From: <sip:alice@example.com>;tag=1
To: <sip:alice@example.com>;tag=2
Call-ID: c1
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth,auth-int"
WWW-Authenticate: Digest realm="example.com", nonce="abc", algorithm=MD5, qop="auth", userhash=true
Proxy-Authenticate: Digest realm="p.example.com", nonce="def", opaque="o", stale=true
Content-Length: 0

MSG
} > "$here/corpus/digest/challenge.sip"
{ printf '\000'; crlf <<'MSG'
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
From: <sip:alice@example.com>;tag=1
To: <sip:alice@example.com>
Call-ID: c1
CSeq: 2 REGISTER
Authorization: Digest username="alice", realm="example.com", nonce="@N@", uri="sip:example.com", response="d5a2e0d5c2b83bd2c0f2c1b7b3b5c5e2a0c9f1e3d2b4a6c8e0f2a4c6e8f0a2b4", algorithm=SHA-256, cnonce="x", qop=auth, nc=00000001
Content-Length: 0

MSG
} > "$here/corpus/digest/answer.sip"
echo "seeded $here/corpus/digest"
