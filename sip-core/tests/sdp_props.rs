//! Property tests of `sip_core::sdp`: generated session descriptions survive parse / write
//! round trips (byte for byte when the input is canonical, RFC 8866 section 5 order and
//! CRLF), sloppy line ends parse the same, no input makes the parser or the answer helper
//! panic, and answers keep the RFC 3264 section 6 invariants: one m= line per offered one,
//! only offered codecs under the offerer's numbers, the direction mirrored, 488 exactly when
//! nothing is common.

use proptest::prelude::*;
use sip_core::sdp::{AnswerError, Direction, LocalMedia, Sdp};

// ---------------------------------------------------------------------------------------------
// generated canonical descriptions

/// A token (RFC 8866 section 9).
fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9!#$%&'*+.^_`{|}~-]{0,8}"
}

/// Text without leading NUL/CR/LF or trailing whitespace (which the parser drops).
fn text() -> impl Strategy<Value = String> {
    "[!-~é€]([ -~é]{0,14}[!-~€])?"
}

fn address(v6: bool) -> impl Strategy<Value = String> {
    if v6 {
        (0u16..0xffff)
            .prop_map(|n| format!("2001:db8::{n:x}"))
            .boxed()
    } else {
        (0u8..=255).prop_map(|n| format!("203.0.113.{n}")).boxed()
    }
}

/// A c= line value: unicast, or multicast with its suffixes.
fn connection() -> impl Strategy<Value = String> {
    prop_oneof![
        address(false).prop_map(|a| format!("IN IP4 {a}")),
        address(true).prop_map(|a| format!("IN IP6 {a}")),
        (0u8..=255, prop::option::of(1u32..1000)).prop_map(|(ttl, n)| format!(
            "IN IP4 233.252.0.1/{ttl}"
        ) + &n
            .map(|n| format!("/{n}"))
            .unwrap_or_default()),
        (1u32..1000).prop_map(|n| format!("IN IP6 ff15::1/{n}")),
        Just("IN IP4 host.example.com".to_owned()),
    ]
}

fn bandwidth() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("AS".to_owned()), Just("CT".to_owned()), token()],
        any::<u32>(),
    )
        .prop_map(|(t, n)| format!("{t}:{n}"))
}

fn attribute() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sendrecv".to_owned()),
        Just("sendonly".to_owned()),
        Just("recvonly".to_owned()),
        Just("inactive".to_owned()),
        (0u8..128, token(), 1u32..100_000)
            .prop_map(|(pt, name, rate)| format!("rtpmap:{pt} {name}/{rate}")),
        (0u8..128, text()).prop_map(|(pt, p)| format!("fmtp:{pt} {p}")),
        (1u32..200).prop_map(|n| format!("ptime:{n}")),
        token(),
        (token(), text()).prop_map(|(n, v)| format!("{n}:{v}")),
        token().prop_map(|n| format!("{n}:")),
    ]
}

/// One time description: t=, r= lines, maybe a z= line.
fn time() -> impl Strategy<Value = String> {
    (
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec((1u32..1000, "[dhms]?", 0u32..100), 0..3),
        prop::option::of((any::<u32>(), "-?[0-9]{1,3}[dhms]?")),
    )
        .prop_map(|(start, stop, repeats, zone)| {
            let mut s = format!("t={start} {stop}\r\n");
            for (i, unit, d) in repeats {
                s += &format!("r={i}{unit} {d} 0 {d}\r\n");
            }
            if let Some((at, off)) = zone {
                s += &format!("z={at} {off}\r\n");
            }
            s
        })
}

/// A media description; `need_c`: it must have a c= line (none at session level).
fn media(need_c: bool) -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("audio".to_owned()), Just("video".to_owned()), token()],
        any::<u16>(),
        prop::option::of(1u16..8),
        prop_oneof![
            Just("RTP/AVP".to_owned()),
            Just("UDP/TLS/RTP/SAVPF".to_owned()),
            token()
        ],
        prop::collection::vec(
            prop_oneof![(0u8..128).prop_map(|n| n.to_string()), token()],
            1..6,
        ),
        prop::option::of(text()),
        prop::collection::vec(connection(), usize::from(need_c)..3),
        prop::collection::vec(bandwidth(), 0..2),
        prop::option::of(text()),
        prop::collection::vec(attribute(), 0..8),
    )
        .prop_map(|(m, port, count, proto, fmts, i, cs, bs, k, attrs)| {
            let mut s = format!("m={m} {port}");
            if let Some(n) = count {
                s += &format!("/{n}");
            }
            s += &format!(" {proto} {}\r\n", fmts.join(" "));
            if let Some(i) = i {
                s += &format!("i={i}\r\n");
            }
            for c in cs {
                s += &format!("c={c}\r\n");
            }
            for b in bs {
                s += &format!("b={b}\r\n");
            }
            if let Some(k) = k {
                s += &format!("k={k}\r\n");
            }
            for a in attrs {
                s += &format!("a={a}\r\n");
            }
            s
        })
}

/// A whole description in canonical form (RFC 8866 section 5 order, CRLF).
fn canonical_sdp() -> impl Strategy<Value = String> {
    let session_c = prop::option::of(connection());
    session_c.prop_flat_map(|c| {
        (
            ("[!-~]{1,10}", "[0-9]{1,19}", "[0-9]{1,19}"),
            prop_oneof![Just("IP4"), Just("IP6")],
            prop_oneof![
                text(),
                Just("-".to_owned()),
                Just(" ".to_owned()),
                Just(String::new())
            ],
            (prop::option::of(text()), prop::option::of(text())),
            prop::collection::vec(text(), 0..2),
            prop::collection::vec(text(), 0..2),
            prop::collection::vec(bandwidth(), 0..2),
            prop::collection::vec(time(), 1..3),
            prop::option::of(text()),
            (
                prop::collection::vec(attribute(), 0..5),
                prop::collection::vec(media(c.is_none()), 0..4),
                Just(c),
            ),
        )
            .prop_map(
                |(
                    (user, id, version),
                    addrtype,
                    name,
                    (i, u),
                    es,
                    ps,
                    bs,
                    ts,
                    k,
                    (attrs, ms, c),
                )| {
                    let mut s = format!("v=0\r\no={user} {id} {version} IN {addrtype} host\r\n");
                    s += &format!("s={name}\r\n");
                    if let Some(i) = i {
                        s += &format!("i={i}\r\n");
                    }
                    if let Some(u) = u {
                        s += &format!("u={u}\r\n");
                    }
                    for e in es {
                        s += &format!("e={e}\r\n");
                    }
                    for p in ps {
                        s += &format!("p={p}\r\n");
                    }
                    if let Some(c) = c {
                        s += &format!("c={c}\r\n");
                    }
                    for b in bs {
                        s += &format!("b={b}\r\n");
                    }
                    for t in ts {
                        s += &t;
                    }
                    if let Some(k) = k {
                        s += &format!("k={k}\r\n");
                    }
                    for a in attrs {
                        s += &format!("a={a}\r\n");
                    }
                    for m in ms {
                        s += &m;
                    }
                    s
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    // RFC 8866 5: a canonical description is written back byte for byte, and
    // parse(write(parse(x))) == parse(x).
    #[test]
    fn canonical_description_round_trips_byte_for_byte(text in canonical_sdp()) {
        let sdp = Sdp::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let written = sdp.to_bytes();
        prop_assert_eq!(std::str::from_utf8(&written).unwrap(), text.as_str());
        prop_assert_eq!(Sdp::parse(&written).unwrap(), sdp);
    }

    // RFC 8866 5 (leniency): LF-only line ends, trailing blanks and a missing last line end
    // parse to the same description.
    #[test]
    fn sloppy_line_ends_parse_the_same(text in canonical_sdp(), blanks in "[ \t]{0,3}", lf in any::<bool>(), cut in any::<bool>()) {
        let canonical = Sdp::parse(text.as_bytes()).unwrap();
        let end = if lf { "\n" } else { "\r\n" };
        let mut sloppy = text.replace("\r\n", &format!("{blanks}{end}"));
        if cut {
            sloppy.truncate(sloppy.len() - end.len());
        }
        // an empty s= followed by blanks keeps one of them (the parser never trims a
        // value to nothing: "s= " is the recommended empty name): skip that case
        prop_assume!(!text.contains("\r\ns=\r\n") || blanks.is_empty());
        prop_assert_eq!(Sdp::parse(sloppy.as_bytes()).unwrap(), canonical);
    }

    // No input makes the parser or the answer helper panic; what parses round-trips.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_any(&bytes)?;
    }

    // Near-valid input: a canonical description with bytes changed, inserted or removed.
    #[test]
    fn mutated_descriptions_never_panic(
        text in canonical_sdp(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = text.into_bytes();
        for (at, b, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = b,
                1 => bytes.insert(i, b),
                _ => {
                    bytes.remove(i);
                }
            }
        }
        check_any(&bytes)?;
    }

    // RFC 3264 6 and 6.1: answer invariants on generated offers.
    #[test]
    fn answers_keep_offer_answer_invariants(offer in offer()) {
        let text = offer.text();
        let parsed = Sdp::parse(text.as_bytes()).unwrap();
        let mut ours = LocalMedia::new("192.0.2.7".parse().unwrap(), 40000, 9);
        match ours.answer(text.as_bytes()) {
            Ok(answer) => {
                prop_assert!(offer.acceptable(), "answered an offer with nothing in common");
                let answer = Sdp::parse(&answer).unwrap();
                // one m= line per offered one, same media types, same order
                prop_assert_eq!(answer.media().len(), parsed.media().len());
                let mut accepted = 0;
                for (a, o) in answer.media().iter().zip(parsed.media()) {
                    prop_assert_eq!(a.media_type(), o.media_type());
                    if a.port() == 0 {
                        prop_assert!(a.formats().count() > 0);
                        continue;
                    }
                    accepted += 1;
                    prop_assert_eq!(a.direction(), mirrored(o.direction()));
                    let offered: Vec<&str> = o.formats().collect();
                    for f in a.formats() {
                        // offered under the same number, with the same codec
                        prop_assert!(offered.contains(&f), "format {} not offered", f);
                        let pt: u8 = f.parse().unwrap();
                        let ours = a.rtpmap(pt).unwrap();
                        let theirs = codec_of(o, pt).unwrap();
                        prop_assert!(ours.encoding_name.eq_ignore_ascii_case(theirs.0));
                        prop_assert_eq!(ours.clock_rate, theirs.1);
                    }
                    prop_assert!(a.rtpmaps().any(|r| !r.encoding_name.eq_ignore_ascii_case("telephone-event")));
                }
                prop_assert_eq!(accepted, 1);
            }
            Err(e) => {
                prop_assert_eq!(e, AnswerError::NotAcceptable);
                prop_assert!(!offer.acceptable(), "refused an acceptable offer");
            }
        }
    }
}

/// RFC 3264 6.1, written out here rather than calling `Direction::mirror`.
fn mirrored(offered: Direction) -> Direction {
    match offered {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        other => other,
    }
}

fn check_any(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(sdp) = Sdp::parse(bytes) {
        let written = sdp.to_bytes();
        let again = Sdp::parse(&written)
            .map_err(|e| TestCaseError::fail(format!("written form refused: {e}")))?;
        prop_assert_eq!(again, sdp);
    }
    let mut ours = LocalMedia::new("192.0.2.7".parse().unwrap(), 40000, 9);
    if let Ok(answer) = ours.answer(bytes) {
        prop_assert!(Sdp::parse(&answer).is_ok());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// generated offers

/// The codecs offers are drawn from: (name, clock rate, channels, static payload type).
const POOL: [(&str, u32, u8, Option<u8>); 9] = [
    ("PCMU", 8000, 1, Some(0)),
    ("PCMA", 8000, 1, Some(8)),
    ("pcma", 8000, 1, None),
    ("telephone-event", 8000, 1, None),
    ("opus", 48000, 2, None),
    ("G722", 8000, 1, Some(9)),
    ("G729", 8000, 1, Some(18)),
    ("PCMU", 16000, 1, None),
    ("PCMA", 8000, 2, None),
];

#[derive(Debug, Clone)]
struct Stream {
    media: &'static str,
    port: u16,
    proto: &'static str,
    /// (pool index, payload type, write an rtpmap)
    codecs: Vec<(usize, u8, bool)>,
    direction: Option<Direction>,
}

#[derive(Debug, Clone)]
struct Offer {
    session_direction: Option<Direction>,
    streams: Vec<Stream>,
}

impl Offer {
    fn text(&self) -> String {
        let mut s =
            "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
                .to_owned();
        if let Some(d) = self.session_direction {
            s += &format!("a={}\r\n", d.as_str());
        }
        for st in &self.streams {
            let pts: Vec<String> = st.codecs.iter().map(|c| c.1.to_string()).collect();
            s += &format!(
                "m={} {} {} {}\r\n",
                st.media,
                st.port,
                st.proto,
                pts.join(" ")
            );
            for &(i, pt, rtpmap) in &st.codecs {
                let (name, rate, ch, _) = POOL[i];
                if rtpmap {
                    let ch = if ch == 1 {
                        String::new()
                    } else {
                        format!("/{ch}")
                    };
                    s += &format!("a=rtpmap:{pt} {name}/{rate}{ch}\r\n");
                }
            }
            if let Some(d) = st.direction {
                s += &format!("a={}\r\n", d.as_str());
            }
        }
        s
    }

    /// Whether some stream is one LocalMedia's defaults can take: audio over RTP/AVP, port
    /// not 0, PCMU or PCMA at 8000 Hz mono.
    fn acceptable(&self) -> bool {
        self.streams.iter().any(|st| {
            st.media == "audio"
                && st.port != 0
                && st.proto == "RTP/AVP"
                && st.codecs.iter().any(|&(i, _, _)| {
                    let (name, rate, ch, _) = POOL[i];
                    (name.eq_ignore_ascii_case("PCMU") || name.eq_ignore_ascii_case("PCMA"))
                        && rate == 8000
                        && ch == 1
                })
        })
    }
}

fn direction() -> impl Strategy<Value = Option<Direction>> {
    prop::option::of(prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ])
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop_oneof![3 => Just("audio"), 1 => Just("video")],
        prop_oneof![1 => Just(0u16), 6 => 1024u16..],
        prop_oneof![5 => Just("RTP/AVP"), 1 => Just("RTP/SAVP")],
        prop::collection::vec((0..POOL.len(), 96u8..128, any::<bool>()), 1..6),
        direction(),
    )
        .prop_map(|(media, port, proto, picks, direction)| {
            // static payload types keep their number (and may go without rtpmap); dynamic
            // ones need their rtpmap; numbers unique in the stream
            let mut codecs: Vec<(usize, u8, bool)> = Vec::new();
            for (i, dynamic, rtpmap) in picks {
                let (pt, rtpmap) = match POOL[i].3 {
                    Some(pt) => (pt, rtpmap),
                    None => (dynamic, true),
                };
                if codecs.iter().all(|c| c.1 != pt) {
                    codecs.push((i, pt, rtpmap));
                }
            }
            Stream {
                media,
                port,
                proto,
                codecs,
                direction,
            }
        })
}

fn offer() -> impl Strategy<Value = Offer> {
    (direction(), prop::collection::vec(stream(), 1..4)).prop_map(|(session_direction, streams)| {
        Offer {
            session_direction,
            streams,
        }
    })
}

/// The codec an offered stream gives payload type `pt`: its rtpmap, else the static one.
fn codec_of<'a>(m: &sip_core::sdp::Media<'a>, pt: u8) -> Option<(&'a str, u32)> {
    if let Some(r) = m.rtpmap(pt) {
        return Some((r.encoding_name, r.clock_rate));
    }
    POOL.iter().find(|p| p.3 == Some(pt)).map(|p| (p.0, p.1))
}
