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

/// `text` with each line ended by CRLF (test texts are written one line per line).
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim_start).filter(|l| !l.is_empty()) {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The formats of the m= line `i`.
fn formats(sdp: &Sdp<'_>, i: usize) -> Vec<String> {
    sdp.media()[i].formats().map(str::to_owned).collect()
}

fn parse_err(text: &[u8]) -> SdpError {
    Sdp::parse(text).expect_err("must be refused")
}

// ---- RFC 8866: the parser and the writer ----

// RFC 8866 5: LF-only line ends and trailing whitespace are what sloppy peers send.
#[test]
fn lf_line_ends_and_trailing_whitespace_are_accepted() {
    let canonical = Sdp::parse(RFC8866_EXAMPLE).unwrap();
    let lf: Vec<u8> = RFC8866_EXAMPLE
        .iter()
        .copied()
        .filter(|&b| b != b'\r')
        .collect();
    assert_eq!(Sdp::parse(&lf).unwrap(), canonical);
    let spaced = String::from_utf8(RFC8866_EXAMPLE.to_vec())
        .unwrap()
        .replace("\r\n", " \t\r\n");
    assert_eq!(Sdp::parse(spaced.as_bytes()).unwrap(), canonical);
    // and written back canonical
    assert_eq!(Sdp::parse(&lf).unwrap().to_bytes(), RFC8866_EXAMPLE);
}

// RFC 8866 5: the last line without its line end.
#[test]
fn missing_final_line_end_is_accepted() {
    let cut = &RFC8866_EXAMPLE[..RFC8866_EXAMPLE.len() - 2];
    assert_eq!(
        Sdp::parse(cut).unwrap(),
        Sdp::parse(RFC8866_EXAMPLE).unwrap()
    );
}

// RFC 8866 5.3: "s= " (one space) is the recommended empty name; it survives the trailing
// whitespace rule. An empty s= (RFC 3264 section 10's examples) is accepted too.
#[test]
fn session_name_of_one_space_is_kept() {
    let body = crlf("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s= \n c=IN IP4 192.0.2.1\n t=0 0");
    let sdp = Sdp::parse(&body).unwrap();
    assert_eq!(sdp.session_name(), " ");
    assert_eq!(sdp.to_bytes(), body);
    let empty = crlf("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=\n c=IN IP4 192.0.2.1\n t=0 0");
    assert_eq!(Sdp::parse(&empty).unwrap().session_name(), "");
}

// RFC 8866 5: the order v o s i u e p c b t r z k a, then m i c b k a per media.
#[test]
fn line_order_of_section5_is_enforced() {
    let cases: &[(&str, SdpError)] = &[
        // s= before o=
        (
            "v=0\n s=-\n o=- 1 1 IN IP4 192.0.2.1\n t=0 0",
            SdpError::OutOfOrder { line: 3, field: 'o' },
        ),
        // a session a= before c=
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0\n a=sendrecv\n c=IN IP4 192.0.2.1",
            SdpError::OutOfOrder { line: 6, field: 'c' },
        ),
        // c= after t= at session level
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0\n c=IN IP4 192.0.2.1",
            SdpError::OutOfOrder { line: 5, field: 'c' },
        ),
        // two o= lines
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0",
            SdpError::OutOfOrder { line: 3, field: 'o' },
        ),
        // two session c= lines
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n c=IN IP4 192.0.2.2\n t=0 0",
            SdpError::OutOfOrder { line: 5, field: 'c' },
        ),
        // r= without t=
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n r=7d 1h 0 25h\n t=0 0",
            SdpError::OutOfOrder { line: 4, field: 'r' },
        ),
        // a media i= after its a=
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n t=0 0\n m=audio 1 RTP/AVP 0\n a=sendrecv\n i=x",
            SdpError::OutOfOrder { line: 8, field: 'i' },
        ),
        // t= inside a media description
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n t=0 0\n m=audio 1 RTP/AVP 0\n t=0 0",
            SdpError::Malformed { line: 7, field: 't' },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(&crlf(text)), *want, "{text}");
    }
}

// RFC 8866 5: v=, o=, s= and t= are mandatory; v= comes first.
#[test]
fn mandatory_lines_are_required() {
    let cases: &[(&str, SdpError)] = &[
        (
            "o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0",
            SdpError::Missing('v'),
        ),
        ("v=0\n s=-\n t=0 0", SdpError::Missing('o')),
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n t=0 0",
            SdpError::Missing('s'),
        ),
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-",
            SdpError::Missing('t'),
        ),
        (
            "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n m=audio 1 RTP/AVP 0",
            SdpError::Missing('t'),
        ),
        ("", SdpError::Empty),
        ("\n\n", SdpError::Empty),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(&crlf(text)), *want, "{text}");
    }
}

// RFC 8866 5.1: "v=0" is the only version.
#[test]
fn version_other_than_zero_is_refused() {
    let body = crlf("v=1\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0");
    assert_eq!(parse_err(&body), SdpError::UnsupportedVersion);
}

// RFC 8866 5: "An SDP parser MUST completely ignore or reject any session description
// that contains a type letter that it does not understand": this one rejects. Type
// letters are lowercase and no whitespace surrounds '='.
#[test]
fn unknown_type_letter_and_bad_line_shape_are_rejected() {
    for (bad, field) in [
        ("x=1", 'x'),
        ("V=0", 'V'),
        ("a =sendrecv", 'a'),
        ("nonsense", 'n'),
        ("=", '='),
    ] {
        let text = format!("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0\n {bad}");
        assert_eq!(
            parse_err(&crlf(&text)),
            SdpError::Malformed { line: 5, field },
            "{bad}"
        );
    }
}

// RFC 8866 5.7: multicast suffixes, IP4 `/ttl[/count]` and IP6 `[/count]`; RFC 5118-style
// IPv6 literals.
#[test]
fn connection_address_with_multicast_ttl_and_count_and_ipv6() {
    let body = crlf(
        "v=0\n o=- 1 1 IN IP6 ::1\n s=-\n c=IN IP4 233.252.0.1/127/3\n t=0 0\n \
         m=audio 1 RTP/AVP 0\n c=IN IP6 ff15::101/3\n \
         m=audio 2 RTP/AVP 0\n c=IN IP6 ::1\n c=IN IP4 233.252.0.2/64",
    );
    let sdp = Sdp::parse(&body).unwrap();
    let c = sdp.connection().unwrap();
    assert_eq!(
        (c.address, c.ttl, c.count),
        ("233.252.0.1", Some(127), Some(3))
    );
    assert!(c.is_multicast());
    let c6 = sdp.media()[0].connections()[0];
    assert_eq!((c6.address, c6.ttl, c6.count), ("ff15::101", None, Some(3)));
    let second = sdp.media()[1].connections();
    assert_eq!(second.len(), 2);
    assert_eq!(second[0].ip(), Some("::1".parse().unwrap()));
    assert!(!second[0].is_multicast());
    assert_eq!((second[1].ttl, second[1].count), (Some(64), None));
    assert_eq!(sdp.origin().addrtype, "IP6");
    assert_eq!(sdp.to_bytes(), body);
    // a non-numeric suffix, or one suffix too many, is malformed
    for bad in [
        "c=IN IP4 233.252.0.1/x",
        "c=IN IP6 ff15::1/3/4",
        "c=IN IP4 233.252.0.1/1/2/3",
    ] {
        let text = format!("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n {bad}\n t=0 0");
        assert_eq!(
            parse_err(&crlf(&text)),
            SdpError::Malformed {
                line: 4,
                field: 'c'
            },
            "{bad}"
        );
    }
}

// RFC 8866 5.7: a c= line at session level or in every media description.
#[test]
fn media_without_any_connection_is_refused() {
    let body = crlf(
        "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0\n \
         m=audio 1 RTP/AVP 0\n c=IN IP4 192.0.2.1\n m=audio 2 RTP/AVP 0",
    );
    assert_eq!(parse_err(&body), SdpError::MissingConnection(1));
}

// RFC 8866 5.8 to 5.12: b=, t=, r=, z=, k= (the section 5.10 and 5.11 examples).
#[test]
fn bandwidth_times_repeats_zone_and_key_lines() {
    let body = crlf(
        "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=Seminar\n c=IN IP4 192.0.2.1\n b=CT:128\n \
         t=3724394400 3724398000\n r=604800 3600 0 90000\n r=7d 1h 0 25h\n \
         z=3730928400 -1h 3749680800 0\n t=3724999999 0\n k=prompt\n \
         m=audio 49170 RTP/AVP 0\n b=AS:64\n k=clear:x",
    );
    let sdp = Sdp::parse(&body).unwrap();
    assert_eq!(
        sdp.bandwidths(),
        [Bandwidth {
            bwtype: "CT",
            bandwidth: 128
        }]
    );
    let t = &sdp.times()[0];
    assert_eq!((t.start, t.stop), (3724394400, 3724398000));
    assert_eq!(t.repeats, ["604800 3600 0 90000", "7d 1h 0 25h"]);
    assert_eq!(t.zone, Some("3730928400 -1h 3749680800 0"));
    assert_eq!(sdp.times()[1].start, 3724999999);
    assert_eq!(sdp.key(), Some("prompt"));
    assert_eq!(sdp.media()[0].bandwidths()[0].bandwidth, 64);
    assert_eq!(sdp.media()[0].key(), Some("clear:x"));
    assert_eq!(sdp.to_bytes(), body);
    for bad in ["r=7x 1h 0", "r=7d 1h", "z=1 -1h 2", "z=x 1h"] {
        let text = format!("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n t=0 0\n {bad}");
        assert!(
            matches!(parse_err(&crlf(&text)), SdpError::Malformed { line: 5, .. }),
            "{bad}"
        );
    }
}

// RFC 8866 5.14: `m=<media> <port>/<number of ports> <proto> <fmt> ...`.
#[test]
fn media_line_with_port_count_proto_and_formats() {
    let body = crlf(
        "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n t=0 0\n \
         m=video 49170/2 RTP/AVP 31 32\n i=main camera\n \
         m=application 9 UDP/TLS/RTP/SAVPF webrtc-datachannel",
    );
    let sdp = Sdp::parse(&body).unwrap();
    let v = &sdp.media()[0];
    assert_eq!(
        (v.port(), v.port_count(), v.proto()),
        (49170, Some(2), "RTP/AVP")
    );
    assert_eq!(formats(&sdp, 0), ["31", "32"]);
    assert_eq!(v.information(), Some("main camera"));
    assert_eq!(sdp.media()[1].proto(), "UDP/TLS/RTP/SAVPF");
    assert_eq!(formats(&sdp, 1), ["webrtc-datachannel"]);
    assert_eq!(sdp.to_bytes(), body);
}

// RFC 8866 5.13, 6.4, 6.6, 6.7, 6.15; RFC 3605 (rtcp), RFC 5888 (mid).
#[test]
fn attributes_by_name_and_typed() {
    let body = crlf(
        "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n t=0 0\n \
         a=recvonly\n a=tool:test 1.0\n \
         m=audio 49170 RTP/AVP 96 0 101\n a=rtpmap:96 opus/48000/2\n \
         a=fmtp:96 stereo=1;sprop-stereo=1\n a=rtpmap:101 telephone-event/8000\n \
         a=fmtp:101 0-15\n a=ptime:20.5\n a=rtcp:49171 IN IP4 192.0.2.1\n a=mid:1\n \
         m=audio 49180 RTP/AVP 0\n a=inactive",
    );
    let sdp = Sdp::parse(&body).unwrap();
    assert_eq!(sdp.direction(), Direction::RecvOnly);
    assert_eq!(sdp.attribute("tool").unwrap().value, Some("test 1.0"));
    let a = &sdp.media()[0];
    assert_eq!(
        a.rtpmap(96),
        Some(Rtpmap {
            payload_type: 96,
            encoding_name: "opus",
            clock_rate: 48000,
            channels: Some(2)
        })
    );
    assert_eq!(a.rtpmap(0), None, "no rtpmap line for 0");
    assert_eq!(a.rtpmaps().count(), 2);
    assert_eq!(a.fmtp("96"), Some("stereo=1;sprop-stereo=1"));
    assert_eq!(a.fmtp("101"), Some("0-15"));
    assert_eq!(a.fmtp("0"), None);
    assert_eq!(a.ptime(), Some(20));
    assert_eq!(a.rtcp_port(), Some(49171));
    assert_eq!(a.mid(), Some("1"));
    // 6.7: the media level wins, else the session level applies
    assert_eq!(a.direction(), Direction::RecvOnly);
    assert_eq!(sdp.media()[1].direction(), Direction::Inactive);
    assert_eq!(sdp.to_bytes(), body);
}

// RFC 8866 6.7: no direction attribute anywhere means sendrecv.
#[test]
fn direction_defaults_to_sendrecv() {
    let sdp = Sdp::parse(RFC8866_EXAMPLE).unwrap();
    assert_eq!(sdp.direction(), Direction::SendRecv);
    assert_eq!(sdp.media()[0].direction(), Direction::SendRecv);
}

// RFC 8866 6.6: `<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`.
#[test]
fn rtpmap_values_parse_or_are_skipped() {
    assert_eq!(
        Rtpmap::parse("0 PCMU/8000"),
        Some(Rtpmap {
            payload_type: 0,
            encoding_name: "PCMU",
            clock_rate: 8000,
            channels: None
        })
    );
    for bad in [
        "",
        "0",
        "0 PCMU",
        "0 PCMU/",
        "256 PCMU/8000",
        "x PCMU/8000",
        "0 PCMU/8000/x",
        "0 /8000",
    ] {
        assert_eq!(Rtpmap::parse(bad), None, "{bad}");
    }
}

// RFC 8866 9 (grammar): malformed values are refused with the line, never a panic.
#[test]
fn malformed_values_are_refused() {
    let head = "v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n c=IN IP4 192.0.2.1\n t=0 0\n";
    for bad in [
        "m=audio 1 RTP/AVP",
        "m=audio x RTP/AVP 0",
        "m=audio 65536 RTP/AVP 0",
        "m=audio 1/ RTP/AVP 0",
        "m=audio 1 RTP//AVP 0",
        "m=au(dio 1 RTP/AVP 0",
    ] {
        let text = format!("{head}{bad}");
        assert_eq!(
            parse_err(&crlf(&text)),
            SdpError::Malformed {
                line: 6,
                field: 'm'
            },
            "{bad}"
        );
    }
    // media-level lines
    for bad in [
        "a=",
        "a=:x",
        "a=bad name",
        "b=AS",
        "b=AS:x",
        "b=:64",
        "i=",
        "c=IN IP4",
    ] {
        let text = format!("{head}m=audio 1 RTP/AVP 0\n{bad}");
        assert!(
            matches!(parse_err(&crlf(&text)), SdpError::Malformed { line: 7, .. }),
            "{bad}"
        );
    }
    for bad_origin in [
        "o=- 1 1 IN IP4",
        "o=- 1 1 IN IP4 192.0.2.1 extra",
        "o=- x 1 IN IP4 192.0.2.1",
        "o=- 1 -1 IN IP4 192.0.2.1",
    ] {
        let text = format!("v=0\n {bad_origin}\n s=-\n t=0 0");
        assert_eq!(
            parse_err(&crlf(&text)),
            SdpError::Malformed {
                line: 2,
                field: 'o'
            }
        );
    }
    for bad_time in ["t=0", "t=0 0 0", "t=x 0", "t=-1 0"] {
        let text = format!("v=0\n o=- 1 1 IN IP4 192.0.2.1\n s=-\n {bad_time}");
        assert_eq!(
            parse_err(&crlf(&text)),
            SdpError::Malformed {
                line: 4,
                field: 't'
            }
        );
    }
    // NUL, a CR inside a line, invalid UTF-8
    let mut nul = crlf(head);
    nul.extend_from_slice(b"a=x\0y\r\n");
    assert_eq!(
        parse_err(&nul),
        SdpError::Malformed {
            line: 6,
            field: 'a'
        }
    );
    let mut cr = crlf(head);
    cr.extend_from_slice(b"a=x\ry\r\n");
    assert_eq!(
        parse_err(&cr),
        SdpError::Malformed {
            line: 6,
            field: 'a'
        }
    );
    let mut latin1 = crlf(head);
    latin1.extend_from_slice(b"i=caf\xe9\r\n");
    assert_eq!(parse_err(&latin1), SdpError::NotUtf8 { line: 6 });
}

// Limits: lines, media descriptions and attributes are bounded with a clear error.
#[test]
fn limits_on_lines_media_attributes_and_formats() {
    let head = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";
    let many_media = format!("{head}{}", "m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA + 1));
    assert_eq!(parse_err(many_media.as_bytes()), SdpError::TooManyMedia);
    let ok_media = format!("{head}{}", "m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA));
    assert_eq!(
        Sdp::parse(ok_media.as_bytes()).unwrap().media().len(),
        MAX_MEDIA
    );
    let many_attributes = format!("{head}{}", "a=x\n".repeat(MAX_ATTRIBUTES + 1));
    assert_eq!(
        parse_err(many_attributes.as_bytes()),
        SdpError::TooManyAttributes
    );
    let media_attributes = format!(
        "{head}m=audio 1 RTP/AVP 0\n{}",
        "a=x\n".repeat(MAX_ATTRIBUTES + 1)
    );
    assert_eq!(
        parse_err(media_attributes.as_bytes()),
        SdpError::TooManyAttributes
    );
    let formats: Vec<String> = (0..=MAX_FORMATS).map(|f| f.to_string()).collect();
    let many_formats = format!("{head}m=audio 1 RTP/AVP {}\n", formats.join(" "));
    assert_eq!(parse_err(many_formats.as_bytes()), SdpError::TooManyFormats);
    let ok_formats = format!("{head}m=audio 1 RTP/AVP {}\n", formats[1..].join(" "));
    assert_eq!(
        Sdp::parse(ok_formats.as_bytes()).unwrap().media()[0]
            .formats()
            .count(),
        MAX_FORMATS
    );
    let media = "m=audio 1 RTP/AVP 0\n".to_owned() + &"a=x\n".repeat(MAX_ATTRIBUTES - 1);
    let many_lines = format!("{head}{}", media.repeat(3));
    assert_eq!(parse_err(many_lines.as_bytes()), SdpError::TooManyLines);
}

// ---- RFC 3264: offers and answers ----

fn local() -> LocalMedia {
    LocalMedia::new("192.0.2.7".parse().unwrap(), 40000, 1234)
}

/// The offer of RFC 3264 section 10.1 (Alice: audio and two video streams).
fn rfc3264_10_1_offer() -> Vec<u8> {
    crlf(
        "v=0
         o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
         s=
         c=IN IP4 host.anywhere.com
         t=0 0
         m=audio 49170 RTP/AVP 0
         a=rtpmap:0 PCMU/8000
         m=video 51372 RTP/AVP 31
         a=rtpmap:31 H261/90000
         m=video 53000 RTP/AVP 32
         a=rtpmap:32 MPV/90000",
    )
}

/// An offer with one audio stream: `formats` on the m= line, then `attributes`.
fn audio_offer(formats: &str, attributes: &str) -> Vec<u8> {
    let mut text = format!(
        "v=0\no=caller 99 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
         m=audio 5004 RTP/AVP {formats}\n"
    );
    for a in attributes.split('|').filter(|a| !a.is_empty()) {
        text.push_str(a);
        text.push('\n');
    }
    crlf(&text)
}

// RFC 3264 10.1: the section's offer and Bob's answer parse, and written back are the same.
#[test]
fn rfc3264_section10_1_offer_and_answers_parse() {
    let offer = rfc3264_10_1_offer();
    let sdp = Sdp::parse(&offer).unwrap();
    assert_eq!(sdp.session_name(), "");
    assert_eq!(sdp.media().len(), 3);
    assert_eq!(sdp.connection().unwrap().address, "host.anywhere.com");
    assert_eq!(sdp.to_bytes(), offer);
    let bob_answer = crlf(
        "v=0
         o=bob 2890844730 2890844730 IN IP4 host.example.com
         s=
         c=IN IP4 host.example.com
         t=0 0
         m=audio 49920 RTP/AVP 0
         a=rtpmap:0 PCMU/8000
         m=video 0 RTP/AVP 31
         m=video 53000 RTP/AVP 32
         a=rtpmap:32 MPV/90000",
    );
    let answer = Sdp::parse(&bob_answer).unwrap();
    assert_eq!(answer.media()[1].port(), 0);
    assert_eq!(answer.to_bytes(), bob_answer);
    // Bob's later offer adds a receive-only events stream; Alice answers it sendonly.
    let alice_answer = crlf(
        "v=0
         o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
         s=
         c=IN IP4 host.anywhere.com
         t=0 0
         m=audio 49170 RTP/AVP 0
         a=rtpmap:0 PCMU/8000
         m=video 0 RTP/AVP 31
         a=rtpmap:31 H261/90000
         m=video 53000 RTP/AVP 32
         a=rtpmap:32 MPV/90000
         m=audio 53122 RTP/AVP 110
         a=rtpmap:110 telephone-events/8000
         a=sendonly",
    );
    let answer = Sdp::parse(&alice_answer).unwrap();
    assert_eq!(answer.origin().version_number(), Some(2890844527));
    assert_eq!(answer.media()[3].direction(), Direction::SendOnly);
}

// RFC 3264 6, 6.1: our answer to the 10.1 offer: the audio stream accepted with PCMU, both
// video streams rejected with port 0, one m= line per offered one in the same order.
#[test]
fn answer_to_rfc3264_10_1_offer_rejects_video_with_port_zero() {
    let offer = rfc3264_10_1_offer();
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    let kinds: Vec<_> = sdp
        .media()
        .iter()
        .map(|m| (m.media_type(), m.port()))
        .collect();
    assert_eq!(kinds, [("audio", 40000), ("video", 0), ("video", 0)]);
    assert_eq!(formats(&sdp, 0), ["0"]);
    assert_eq!(sdp.media()[0].rtpmap(0).unwrap().encoding_name, "PCMU");
    // a rejected stream keeps a format (section 6: "at least one MUST be present")
    assert_eq!(formats(&sdp, 1), ["31"]);
    assert_eq!(formats(&sdp, 2), ["32"]);
    // section 6: "The t= line in the answer MUST equal that of the offer"
    assert_eq!(sdp.times(), Sdp::parse(&offer).unwrap().times());
    assert_eq!(sdp.connection().unwrap().address, "192.0.2.7");
    assert_eq!(sdp.origin().session_id, "1234");
}

// RFC 3264 10.2 ("one of N codec selection"): an inactive offer of PCMU, G.723 and G.729
// without rtpmap for the static types; the answer is inactive too (6.1).
#[test]
fn answer_keeps_inactive_and_static_payload_types_without_rtpmap() {
    let offer = crlf(
        "v=0
         o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
         s=
         c=IN IP4 host.anywhere.com
         t=0 0
         m=audio 62986 RTP/AVP 0 4 18
         a=inactive",
    );
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(formats(&sdp, 0), ["0"]);
    assert_eq!(sdp.media()[0].direction(), Direction::Inactive);
}

// RFC 3264 6.1: sendonly -> recvonly, recvonly -> sendonly, inactive stays, sendrecv stays
// (hold offers: RFC 3264 8.4), at media or session level.
#[test]
fn answer_mirrors_the_offered_direction() {
    for (offered, answered) in [
        ("a=sendonly", Direction::RecvOnly),
        ("a=recvonly", Direction::SendOnly),
        ("a=inactive", Direction::Inactive),
        ("a=sendrecv", Direction::SendRecv),
        ("", Direction::SendRecv),
    ] {
        let answer = local().answer(&audio_offer("0", offered)).unwrap();
        let sdp = Sdp::parse(&answer).unwrap();
        assert_eq!(sdp.media()[0].direction(), answered, "{offered}");
        // written at media level, explicitly
        assert!(sdp.media()[0].attribute(answered.as_str()).is_some());
    }
    // session-level sendonly (a hold written by some peers before the m= line)
    let held = crlf(
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
         a=sendonly\nm=audio 5004 RTP/AVP 8",
    );
    let sdp_answer = local().answer(&held).unwrap();
    let sdp = Sdp::parse(&sdp_answer).unwrap();
    assert_eq!(sdp.media()[0].direction(), Direction::RecvOnly);
}

// RFC 3264 6.1: the answer uses the offerer's payload type numbers (dynamic remapping),
// matches encoding names case-insensitively, and lists the offer's order.
#[test]
fn answer_keeps_offerer_payload_type_numbers() {
    let offer = audio_offer(
        "8 96 100",
        "a=rtpmap:8 PCMA/8000|a=rtpmap:96 telephone-event/8000|a=fmtp:96 0-15|\
         a=rtpmap:100 pcmu/8000",
    );
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    let audio = &sdp.media()[0];
    assert_eq!(formats(&sdp, 0), ["8", "96", "100"]);
    assert_eq!(audio.rtpmap(96).unwrap().encoding_name, "telephone-event");
    assert_eq!(audio.fmtp("96"), Some("0-16"));
    assert_eq!(audio.rtpmap(100).unwrap().encoding_name, "PCMU");
    assert_eq!(audio.fmtp("101"), None, "our own 101 is not used");
}

// RFC 3264 6.1: a codec matches by encoding name, clock rate and channels.
#[test]
fn answer_matches_clock_rate_and_channels() {
    let offer = audio_offer(
        "96 97 98 0",
        "a=rtpmap:96 PCMU/16000|a=rtpmap:97 PCMA/8000/2|a=rtpmap:98 PCMA/8000/1",
    );
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(formats(&sdp, 0), ["98", "0"]);
}

// RFC 4733 / RFC 3264 6.1: telephone-event is answered only when offered.
#[test]
fn telephone_event_only_when_offered() {
    let answer = local().answer(&audio_offer("0 8", "")).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(formats(&sdp, 0), ["0", "8"]);
    assert!(sdp.media()[0]
        .rtpmaps()
        .all(|r| r.encoding_name != "telephone-event"));
}

// RFC 3264 6: nothing in common -> the stream is rejected, and with no stream accepted the
// offer is refused with 488. telephone-event alone carries no audio.
#[test]
fn no_common_codec_is_not_acceptable_488() {
    for offer in [
        audio_offer("18 96", "a=rtpmap:96 opus/48000/2"),
        audio_offer("101", "a=rtpmap:101 telephone-event/8000"),
        // an offered stream with port 0 is not to be used (8.2)
        crlf("v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\nm=audio 0 RTP/AVP 0"),
        // SRTP needs keys we do not have
        crlf("v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\nm=audio 5004 RTP/SAVP 0"),
        // multicast (6.2) is not done
        crlf("v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 233.252.0.1/127\nt=0 0\nm=audio 5004 RTP/AVP 0"),
    ] {
        let err = local().answer(&offer).unwrap_err();
        assert_eq!(err, AnswerError::NotAcceptable);
        assert_eq!(err.status(), 488);
    }
}

// RFC 3264 6: a malformed offer is refused; 400 (the request's body is a syntax error).
#[test]
fn malformed_offer_is_refused_with_400() {
    let err = local().answer(b"v=0\r\nm=audio x\r\n").unwrap_err();
    assert!(matches!(err, AnswerError::Malformed(_)));
    assert_eq!(err.status(), 400);
}

// RFC 3264 6: one stream is accepted (we have one audio port); a second audio stream gets
// port 0.
#[test]
fn second_audio_stream_is_rejected() {
    let offer = crlf(
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
         m=audio 0 RTP/AVP 0\nm=audio 5004 RTP/AVP 8\nm=audio 5006 RTP/AVP 0",
    );
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    let ports: Vec<_> = sdp.media().iter().map(Media::port).collect();
    assert_eq!(ports, [0, 40000, 0]);
}

/// An offer as baresip sends it (3.x with g711, opus and video modules): a session-level
/// tool attribute, opus first, G.722, PCMU, PCMA, telephone-event 0-15, ptime, rtcp-rsize,
/// ssrc, and a video stream.
const BARESIP_OFFER: &str = "v=0
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
    a=label:1
    a=rtcp-rsize
    a=ssrc:1553937826 cname:4f1ac0e1-52a7-4a56-b3a0-2a16a0bd7c79
    a=ptime:20
    m=video 10356 RTP/AVP 100
    b=AS:1000
    a=rtpmap:100 H264/90000
    a=fmtp:100 packetization-mode=0;profile-level-id=42002a
    a=rtcp-fb:* nack pli
    a=sendrecv
    a=label:2";

// RFC 3264 6, 6.1 with a real peer's offer: PCMU, PCMA and telephone-event are kept under
// baresip's numbers, in its order; video is rejected with port 0.
#[test]
fn answer_to_baresip_offer() {
    let offer = crlf(BARESIP_OFFER);
    let parsed = Sdp::parse(&offer).unwrap();
    assert_eq!(parsed.to_bytes(), offer);
    assert_eq!(parsed.media()[0].ptime(), Some(20));
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(formats(&sdp, 0), ["0", "8", "101"]);
    assert_eq!(sdp.media()[0].fmtp("101"), Some("0-16"));
    assert_eq!(sdp.media()[0].direction(), Direction::SendRecv);
    assert_eq!(
        (sdp.media()[1].media_type(), sdp.media()[1].port()),
        ("video", 0)
    );
}

/// The SDP of SIPp's default uac scenario, as SIPp fills in its fields.
const SIPP_OFFER: &str = "v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000";

// RFC 3264 6.1 with SIPp's offer: PCMU only, so no telephone-event in the answer.
#[test]
fn answer_to_sipp_offer() {
    let offer = crlf(SIPP_OFFER);
    let answer = local().answer(&offer).unwrap();
    let sdp = Sdp::parse(&answer).unwrap();
    assert_eq!(formats(&sdp, 0), ["0"]);
    assert_eq!(sdp.media()[0].attributes().len(), 2, "rtpmap and sendrecv");
    // the LF-only variant some tools write answers the same
    let lf = SIPP_OFFER.replace("\n    ", "\n");
    assert_eq!(local().answer(lf.as_bytes()).unwrap(), answer);
}

// RFC 3264 5 and RFC 4733: our offer: one audio stream, PCMU, PCMA (with rtpmap although
// static) and telephone-event on 101 with events 0-16, sendrecv.
#[test]
fn offer_has_pcmu_pcma_and_telephone_event() {
    let mut ours = local();
    let offer = ours.offer(Direction::SendRecv);
    let sdp = Sdp::parse(&offer).unwrap();
    assert_eq!(sdp.media().len(), 1);
    let audio = &sdp.media()[0];
    assert_eq!(
        (audio.media_type(), audio.port(), audio.proto()),
        ("audio", 40000, "RTP/AVP")
    );
    assert_eq!(formats(&sdp, 0), ["0", "8", "101"]);
    assert_eq!(audio.rtpmap(0).unwrap().encoding_name, "PCMU");
    assert_eq!(audio.rtpmap(8).unwrap().encoding_name, "PCMA");
    assert_eq!(audio.rtpmap(101).unwrap().encoding_name, "telephone-event");
    assert_eq!(audio.fmtp("101"), Some("0-16"));
    assert_eq!(audio.direction(), Direction::SendRecv);
    let o = sdp.origin();
    assert_eq!(
        (o.session_id, o.nettype, o.addrtype, o.address),
        ("1234", "IN", "IP4", "192.0.2.7")
    );
    assert_eq!(
        sdp.times()[0],
        Time {
            start: 0,
            stop: 0,
            repeats: vec![],
            zone: None
        }
    );
}

// RFC 3264 5, RFC 5118-style addresses: an IPv6 LocalMedia writes IP6 o= and c= lines.
#[test]
fn offer_on_ipv6_uses_ip6() {
    let mut ours = LocalMedia::new("::1".parse().unwrap(), 40000, 1);
    let offer = ours.offer(Direction::SendRecv);
    let sdp = Sdp::parse(&offer).unwrap();
    let c = sdp.connection().unwrap();
    assert_eq!((c.addrtype, c.ip()), ("IP6", Some("::1".parse().unwrap())));
    assert_eq!(sdp.origin().addrtype, "IP6");
}

// RFC 3264 8.4: hold is an offer with sendonly (or inactive).
#[test]
fn hold_offers_carry_the_direction() {
    let mut ours = local();
    for d in [
        Direction::SendOnly,
        Direction::Inactive,
        Direction::RecvOnly,
    ] {
        let offer = ours.offer(d);
        assert_eq!(Sdp::parse(&offer).unwrap().media()[0].direction(), d);
    }
}

// RFC 3264 8: "the version in the o= line MUST be incremented" when the description
// changes, and stays when it does not (a re-offer of the same SDP).
#[test]
fn offer_version_goes_up_only_when_the_offer_changes() {
    let mut ours = local();
    let version = |sdp: &[u8]| Sdp::parse(sdp).unwrap().origin().version_number().unwrap();
    let first = ours.offer(Direction::SendRecv);
    let again = ours.offer(Direction::SendRecv);
    assert_eq!(first, again);
    let hold = ours.offer(Direction::SendOnly);
    assert_eq!(version(&hold), version(&first) + 1);
    let resume = ours.offer(Direction::SendRecv);
    assert_eq!(version(&resume), version(&first) + 2);
    assert_eq!(ours.session_version(), version(&resume));
}

// RFC 3264 8: the same for answers: the answer to the same offer keeps its version, a
// changed one (a hold re-INVITE) bumps it; the o= session id stays.
#[test]
fn answer_version_goes_up_only_when_the_answer_changes() {
    let mut ours = local();
    let version = |sdp: &[u8]| Sdp::parse(sdp).unwrap().origin().version_number().unwrap();
    let a1 = ours.answer(&audio_offer("0 8", "")).unwrap();
    let a2 = ours.answer(&audio_offer("0 8", "")).unwrap();
    assert_eq!(a1, a2);
    let held = ours.answer(&audio_offer("0 8", "a=sendonly")).unwrap();
    assert_eq!(version(&held), version(&a1) + 1);
    assert_eq!(Sdp::parse(&held).unwrap().origin().session_id, "1234");
    // a refused offer changes nothing
    assert!(ours.answer(&audio_offer("18", "")).is_err());
    let same = ours.answer(&audio_offer("0 8", "a=sendonly")).unwrap();
    assert_eq!(same, held);
}

// RFC 3264 6: the answerer's LocalMedia answer is accepted by the offerer's.
#[test]
fn accept_answer_from_a_peer() {
    let mut alice = local();
    let mut bob = LocalMedia::new("198.51.100.2".parse().unwrap(), 50000, 77)
        .with_codecs(vec![Codec::pcma(), Codec::telephone_event()]);
    let offer = alice.offer(Direction::SendRecv);
    let answer = bob.answer(&offer).unwrap();
    assert_eq!(formats(&Sdp::parse(&answer).unwrap(), 0), ["8", "101"]);
    alice.accept_answer(&answer).unwrap();
    // the offer is settled: a second answer has nothing to answer
    assert_eq!(alice.accept_answer(&answer), Err(AnswerError::NoOffer));
}

// RFC 3264 6: an answer has one m= line per offered one; port 0 rejects; the codecs must be
// ones we offered (6.1: under our numbers, SHOULD; a renumbered one is recognised by its
// rtpmap).
#[test]
fn accept_answer_checks_streams_and_codecs() {
    let answer = |m: &str| {
        crlf(&format!(
            "v=0\no=- 5 5 IN IP4 198.51.100.2\ns=-\nc=IN IP4 198.51.100.2\nt=0 0\n{m}"
        ))
    };
    let cases: &[(&str, Result<(), AnswerError>)] = &[
        ("m=audio 5004 RTP/AVP 0", Ok(())),
        ("m=audio 5004 RTP/AVP 8 101", Ok(())),
        ("m=audio 0 RTP/AVP 0", Err(AnswerError::NotAcceptable)),
        ("m=audio 5004 RTP/AVP 18", Err(AnswerError::UnofferedCodec)),
        ("m=audio 5004 RTP/AVP 101", Err(AnswerError::UnofferedCodec)),
        // a codec we offered under another number: the answerer SHOULD keep ours (6.1),
        // but a renumbered PCMA is still PCMA
        ("m=audio 5004 RTP/AVP 96\na=rtpmap:96 PCMA/8000", Ok(())),
        // an unknown dynamic number without rtpmap is nothing we offered
        ("m=audio 5004 RTP/AVP 96", Err(AnswerError::UnofferedCodec)),
        // our 0 is PCMU: a different codec under it is not what we offered
        (
            "m=audio 5004 RTP/AVP 0\na=rtpmap:0 G729/8000",
            Err(AnswerError::UnofferedCodec),
        ),
        (
            "m=audio 5004 RTP/AVP 0\nm=audio 5006 RTP/AVP 0",
            Err(AnswerError::MediaCountMismatch {
                offered: 1,
                answered: 2,
            }),
        ),
        (
            "m=audio x",
            Err(AnswerError::Malformed(SdpError::Malformed {
                line: 6,
                field: 'm',
            })),
        ),
    ];
    for (m, want) in cases {
        let mut ours = local();
        ours.offer(Direction::SendRecv);
        assert_eq!(ours.accept_answer(&answer(m)), *want, "{m}");
    }
    assert_eq!(
        local().accept_answer(&answer("m=audio 5004 RTP/AVP 0")),
        Err(AnswerError::NoOffer)
    );
}

// RFC 3264 6.1: Direction::mirror is its own inverse.
#[test]
fn direction_mirror_is_an_involution() {
    for d in [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ] {
        assert_eq!(d.mirror().mirror(), d);
        assert_eq!(Direction::from_attribute(d.as_str()), Some(d));
    }
}

// RFC 3264 6.1 and 8.4: while we hold the call (our last offer sendonly or inactive), the
// peer's offers are answered within that direction; resuming (a sendrecv offer) lifts it.
#[test]
fn answer_while_holding_keeps_the_call_held() {
    let mut ours = local();
    let direction = |ours: &mut LocalMedia, offered: &str| {
        let answer = ours.answer(&audio_offer("0", offered)).unwrap();
        Sdp::parse(&answer).unwrap().media()[0].direction()
    };
    ours.offer(Direction::SendOnly);
    assert_eq!(direction(&mut ours, "a=sendrecv"), Direction::SendOnly);
    assert_eq!(direction(&mut ours, "a=sendonly"), Direction::Inactive);
    assert_eq!(direction(&mut ours, "a=recvonly"), Direction::SendOnly);
    ours.offer(Direction::Inactive);
    assert_eq!(direction(&mut ours, "a=sendrecv"), Direction::Inactive);
    ours.offer(Direction::SendRecv);
    assert_eq!(direction(&mut ours, "a=sendrecv"), Direction::SendRecv);
    assert_eq!(direction(&mut ours, "a=sendonly"), Direction::RecvOnly);
}

// RFC 3264 6.1: restrict keeps only what both directions allow.
#[test]
fn direction_restrict_is_the_intersection() {
    use Direction::*;
    let all = [SendRecv, SendOnly, RecvOnly, Inactive];
    for a in all {
        assert_eq!(a.restrict(SendRecv), a);
        assert_eq!(a.restrict(Inactive), Inactive);
        assert_eq!(a.restrict(a), a);
        for b in all {
            assert_eq!(a.restrict(b), b.restrict(a));
            assert_eq!(a.restrict(b).sends(), a.sends() && b.sends());
            assert_eq!(a.restrict(b).receives(), a.receives() && b.receives());
        }
    }
}

// RFC 8866 9 and no injection: a codec that cannot be written (a name that is not a token,
// an fmtp with a line break) is left out, and so is a second codec on one payload type.
#[test]
fn with_codecs_leaves_out_what_cannot_be_written() {
    let mut injected = Codec::new("PCMU", 8000, 0);
    injected.fmtp = Some("x\r\na=sendonly".to_owned());
    let mut ours = local().with_codecs(vec![
        Codec::new("bad name", 8000, 96),
        injected,
        Codec::pcma(),
        Codec::new("G722", 8000, 8),
        Codec::telephone_event(),
    ]);
    let names: Vec<_> = ours.codecs().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["PCMA", "telephone-event"]);
    let offer = ours.offer(Direction::SendRecv);
    let sdp = Sdp::parse(&offer).unwrap();
    assert_eq!(formats(&sdp, 0), ["8", "101"]);
    assert_eq!(sdp.media()[0].direction(), Direction::SendRecv);
}
