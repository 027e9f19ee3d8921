//! Unit tests of the SDP parser, serializer and offer/answer helper, named after the rules.

use super::*;

/// The example of RFC 8866 section 5, CRLF line ends.
const RFC8866_EXAMPLE: &[u8] = b"v=0\r\n\
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\n\
s=Call to John Smith\r\n\
i=SDP Offer #1\r\n\
u=http://www.jdoe.example.com/home.html\r\n\
e=Jane Doe <jane@jdoe.example.com>\r\n\
p=+1 617 555-6011\r\n\
c=IN IP4 198.51.100.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0\r\n\
m=audio 49180 RTP/AVP 0\r\n\
m=video 51372 RTP/AVP 99\r\n\
c=IN IP6 2001:db8::2\r\n\
a=rtpmap:99 h263-1998/90000\r\n";

// RFC 8866 5
#[test]
fn rfc8866_section5_example_parses_and_writes_back_byte_for_byte() {
    let sdp = Sdp::parse(RFC8866_EXAMPLE).unwrap();
    let o = sdp.origin();
    assert_eq!(
        (o.username, o.session_id, o.session_version),
        ("jdoe", "3724394400", "3724394405")
    );
    assert_eq!(
        (o.nettype, o.addrtype, o.address),
        ("IN", "IP4", "198.51.100.1")
    );
    assert_eq!(sdp.session_name(), "Call to John Smith");
    assert_eq!(sdp.information(), Some("SDP Offer #1"));
    assert_eq!(sdp.uri(), Some("http://www.jdoe.example.com/home.html"));
    assert_eq!(sdp.emails(), ["Jane Doe <jane@jdoe.example.com>"]);
    assert_eq!(sdp.phones(), ["+1 617 555-6011"]);
    assert_eq!(sdp.connection().unwrap().address, "198.51.100.1");
    assert_eq!(sdp.times().len(), 1);
    assert_eq!(sdp.media().len(), 3);
    let video = &sdp.media()[2];
    assert_eq!(
        (video.media_type(), video.port(), video.proto()),
        ("video", 51372, "RTP/AVP")
    );
    assert_eq!(
        video.connections()[0].ip(),
        Some("2001:db8::2".parse().unwrap())
    );
    let map = video.rtpmap(99).unwrap();
    assert_eq!(
        (map.encoding_name, map.clock_rate, map.channels),
        ("h263-1998", 90000, None)
    );
    assert_eq!(sdp.to_bytes(), RFC8866_EXAMPLE);
}
