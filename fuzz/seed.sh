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

# sdp: offers the answer helper sees (RFC 8866 section 5's example, RFC 3264 section 10.1's
# offer, a baresip-like offer with video, SIPp's uac offer, a hold with session-level sendonly).
mkdir -p "$here/corpus/sdp"
crlf > "$here/corpus/sdp/rfc8866.sdp" <<'SDP'
v=0
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
s=Call to John Smith
i=SDP Offer #1
u=http://www.jdoe.example.com/home.html
e=Jane Doe <jane@jdoe.example.com>
p=+1 617 555-6011
c=IN IP4 198.51.100.1
t=0 0
m=audio 49170 RTP/AVP 0
m=audio 49180 RTP/AVP 0
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::2
a=rtpmap:99 h263-1998/90000
SDP
crlf > "$here/corpus/sdp/rfc3264.sdp" <<'SDP'
v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
SDP
crlf > "$here/corpus/sdp/baresip.sdp" <<'SDP'
v=0
o=- 3459278553 1771309470 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
a=tool:baresip 3.10.1
m=audio 10354 RTP/AVP 96 9 0 8 101
b=AS:104
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=rtcp-rsize
a=ptime:20
m=video 10356 RTP/AVP 100
a=rtpmap:100 H264/90000
a=fmtp:100 packetization-mode=0;profile-level-id=42002a
a=sendrecv
SDP
# SIPp's uac offer, LF line ends as some tools write them
cat > "$here/corpus/sdp/sipp.sdp" <<'SDP'
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
SDP
crlf > "$here/corpus/sdp/hold.sdp" <<'SDP'
v=0
o=- 1 2 IN IP6 ::1
s= 
c=IN IP6 ::1
b=CT:128
t=3724394400 3724398000
r=7d 1h 0 25h
z=3730928400 -1h 3749680800 0
a=sendonly
m=audio 5004/2 RTP/AVP 8 96
c=IN IP4 233.252.0.1/127/2
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=rtcp:5005
a=mid:a
SDP
cp "$benches/offer.sdp" "$here/corpus/sdp/offer.sdp"
echo "seeded $here/corpus/sdp"
