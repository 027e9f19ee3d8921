//! The offer/answer helper (RFC 3264 sections 5, 6 and 8; RFC 4733 for telephone-event).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use super::{Direction, Media, Rtpmap, Sdp, SdpError, Time};

/// An audio codec: an RTP payload format with its payload type number (RFC 3551, RFC 8866
/// section 6.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Codec {
    /// The encoding name, e.g. `PCMU` (compared case-insensitively).
    pub name: String,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The number of channels; `None` means one.
    pub channels: Option<u8>,
    /// The payload type number we offer it with (in an answer, the offerer's number is
    /// used, RFC 3264 section 6.1).
    pub payload_type: u8,
    /// The `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 section 6).
    pub fn pcmu() -> Codec {
        Codec::new("PCMU", 8000, 0)
    }

    /// G.711 A-law, static payload type 8 (RFC 3551 section 6).
    pub fn pcma() -> Codec {
        Codec::new("PCMA", 8000, 8)
    }

    /// DTMF events (RFC 4733): `telephone-event/8000` on dynamic payload type 101 with
    /// events 0-16 (the digits, `*`, `#`, A to D and flash).
    pub fn telephone_event() -> Codec {
        Codec {
            fmtp: Some("0-16".to_owned()),
            ..Codec::new("telephone-event", 8000, 101)
        }
    }

    /// A codec with one channel and no format parameters.
    pub fn new(name: &str, clock_rate: u32, payload_type: u8) -> Codec {
        Codec {
            name: name.to_owned(),
            clock_rate,
            channels: None,
            payload_type,
            fmtp: None,
        }
    }

    /// Whether this is RFC 4733 telephone-event (not a codec that carries the call's audio).
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }

    /// Whether `name/clock_rate/channels` names this codec (RFC 3264 section 6.1: encoding
    /// names compared case-insensitively; no channel count means one).
    fn matches(&self, name: &str, clock_rate: u32, channels: Option<u8>) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && self.clock_rate == clock_rate
            && self.channels.unwrap_or(1) == channels.unwrap_or(1)
    }
}

/// The static audio payload types of RFC 3551 section 6 that an offer may use without an
/// `a=rtpmap`: (payload type, encoding name, clock rate, channels).
const STATIC_AUDIO: [(u8, &str, u32, u8); 17] = [
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (7, "LPC", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (12, "QCELP", 8000, 1),
    (13, "CN", 8000, 1),
    (14, "MPA", 90000, 1),
    (15, "G728", 8000, 1),
    (16, "DVI4", 11025, 1),
    (17, "DVI4", 22050, 1),
    (18, "G729", 8000, 1),
];

/// What payload type `pt` of a stream is: its `a=rtpmap` (`maps`), else the static
/// payload type (RFC 8866 section 6.6: static types may go without an rtpmap), as
/// (encoding name, clock rate, channels).
fn describe<'a>(maps: &[Rtpmap<'a>], pt: u8) -> Option<(&'a str, u32, Option<u8>)> {
    match maps.iter().find(|r| r.payload_type == pt) {
        Some(r) => Some((r.encoding_name, r.clock_rate, r.channels)),
        None => STATIC_AUDIO
            .iter()
            .find(|s| s.0 == pt)
            .map(|&(_, name, rate, channels)| (name, rate, Some(channels))),
    }
}

/// Why an offer could not be answered, or an answer to our offer is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The offer (or answer) is not a valid session description.
    #[error("malformed session description: {0}")]
    Malformed(#[from] SdpError),
    /// No stream could be accepted: no audio stream with a codec in common (RFC 3264
    /// section 6), or every stream of an answer was rejected.
    #[error("no acceptable media stream")]
    NotAcceptable,
    /// [`LocalMedia::accept_answer`] without an offer waiting for its answer.
    #[error("no offer is waiting for an answer")]
    NoOffer,
    /// The answer does not have one m= line per m= line of the offer (RFC 3264 section 6).
    #[error("answer has {answered} media descriptions, the offer had {offered}")]
    MediaCountMismatch {
        /// m= lines in our offer.
        offered: usize,
        /// m= lines in the answer.
        answered: usize,
    },
    /// An accepted stream of the answer has no audio codec that we offered (RFC 3264
    /// section 6.1).
    #[error("answer accepts a stream without a codec we offered")]
    UnofferedCodec,
}

impl AnswerError {
    /// The status to refuse the offer with: 488 Not Acceptable Here (RFC 3261 section
    /// 21.4.26, RFC 3264 section 6) when the offer is understood but nothing in it can be
    /// accepted, and 400 Bad Request for a malformed offer: the request's body cannot be
    /// parsed, which is a syntax error of the request (RFC 3261 section 21.4.1), and 400
    /// tells the peer to fix it rather than retry with other media.
    pub fn status(&self) -> u16 {
        match self {
            AnswerError::Malformed(_) => 400,
            _ => 488,
        }
    }
}

/// What the answer says about one offered stream.
enum Stream<'o> {
    /// Accepted with these codecs (offerer's payload type numbers) and this direction.
    Accepted(Vec<Codec>, Direction),
    /// Rejected (port 0); the offered m= line's media type, proto and formats.
    Rejected(&'o Media<'o>),
}

/// Our side of the media: what we offer and how we answer (RFC 3264).
///
/// One audio stream on one address and port, with codecs in order of preference. It keeps
/// the o= session id and version, and the last description it produced: the version goes up
/// only when a new offer or answer differs from it (RFC 3264 section 8).
#[derive(Debug, Clone)]
pub struct LocalMedia {
    address: IpAddr,
    /// `address` as written in o= and c= (formatted once).
    address_text: String,
    audio_port: u16,
    /// Shared: every call's copy of the media of a server answers with the same codecs.
    codecs: Arc<[Codec]>,
    session_id: u64,
    session_version: u64,
    /// A digest of the last description produced (RFC 3264 section 8 compares the next one
    /// with it); a digest, not the bytes, keeps a held call's copy small.
    last_sent: Option<u64>,
    /// Our offer waiting for its answer.
    offered: Option<Vec<u8>>,
    /// The direction of our last offer: what we want (a hold is sendonly or inactive).
    direction: Direction,
}

impl LocalMedia {
    /// Audio on `address` and `audio_port` with PCMU, PCMA and telephone-event, o= session
    /// id `session_id` (draw it at random: RFC 8866 section 5.2) and version 1.
    pub fn new(address: IpAddr, audio_port: u16, session_id: u64) -> LocalMedia {
        LocalMedia {
            address,
            address_text: address.to_string(),
            audio_port,
            codecs: Arc::from([Codec::pcmu(), Codec::pcma(), Codec::telephone_event()]),
            session_id,
            session_version: 1,
            last_sent: None,
            offered: None,
            direction: Direction::SendRecv,
        }
    }

    /// Replaces the codecs, in order of preference. A codec that cannot be written is left
    /// out: a name that is not a token (RFC 8866 section 9), an fmtp that is empty or holds
    /// CR, LF or NUL (they would end the line: no injection into the description), or a
    /// second codec on the same payload type number.
    pub fn with_codecs(mut self, codecs: Vec<Codec>) -> LocalMedia {
        let mut kept: Vec<Codec> = Vec::with_capacity(codecs.len());
        for c in codecs {
            let writable = super::parse::is_token(&c.name)
                && c.fmtp.as_deref().is_none_or(|f| {
                    !f.is_empty() && !f.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n'))
                });
            if writable && kept.iter().all(|o| o.payload_type != c.payload_type) {
                kept.push(c);
            }
        }
        self.codecs = kept.into();
        self
    }

    /// The address written in our o= and c= lines.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The port of our audio stream.
    pub fn audio_port(&self) -> u16 {
        self.audio_port
    }

    /// The o= session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The codecs, in order of preference.
    pub fn codecs(&self) -> &[Codec] {
        &self.codecs
    }

    /// The o= version of the last description produced (the next one if none yet).
    pub fn session_version(&self) -> u64 {
        self.session_version
    }

    /// The direction of our last offer ([`Direction::SendRecv`] before any): answers
    /// never send or receive more than it allows, so a call we hold stays held when the
    /// peer makes an offer (RFC 3264 sections 6.1 and 8.4).
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// An offer (RFC 3264 section 5): one audio m= line with our codecs (an `a=rtpmap` for
    /// each, static ones included, and their `a=fmtp`) and `direction` (`a=sendonly` puts
    /// the peer on hold, RFC 3264 section 8.4). The o= version goes up only when the offer
    /// differs from the last description sent (section 8). The offer waits for
    /// [`LocalMedia::accept_answer`].
    pub fn offer(&mut self, direction: Direction) -> Vec<u8> {
        let codecs = self.codecs.to_vec();
        let times = [Time {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
            zone: None,
        }];
        let sdp = self.render(&[Stream::Accepted(codecs, direction)], &times);
        self.offered = Some(sdp.clone());
        self.direction = direction;
        sdp
    }

    /// The answer to `offer` (RFC 3264 section 6): one m= line per offered m= line, in the
    /// same order. The first audio stream over `RTP/AVP` with a codec in common is accepted
    /// on our port, with the codecs both sides do (matched by encoding name, clock rate and
    /// channels), the offerer's payload type numbers and order (6.1), telephone-event only
    /// when offered, and the offered direction mirrored (6.1), within what our last offer's
    /// direction allows ([`LocalMedia::direction`]: a sendrecv offer to a call we hold with
    /// sendonly is answered sendonly, 6.1 and 8.4). Every other stream (video,
    /// nothing in common, port 0 in the offer, multicast, a second audio stream) gets port
    /// 0. The t= lines are the offer's (6). The o= version goes up only when the answer
    /// differs from the last description sent (section 8).
    pub fn answer(&mut self, offer: &[u8]) -> Result<Vec<u8>, AnswerError> {
        let offer = Sdp::parse(offer)?;
        let mut streams = Vec::with_capacity(offer.media().len());
        let mut accepted = false;
        for m in offer.media() {
            let usable = !accepted
                && m.port() != 0
                && m.media_type().eq_ignore_ascii_case("audio")
                && m.proto().eq_ignore_ascii_case("RTP/AVP")
                && !offer.connection_for(m).is_some_and(|c| c.is_multicast());
            let common = if usable {
                self.intersect(m)
            } else {
                Vec::new()
            };
            // telephone-event alone carries no audio
            if common.iter().any(|c| !c.is_telephone_event()) {
                accepted = true;
                let direction = m.direction().mirror().restrict(self.direction);
                streams.push(Stream::Accepted(common, direction));
            } else {
                streams.push(Stream::Rejected(m));
            }
        }
        if !accepted {
            return Err(AnswerError::NotAcceptable);
        }
        Ok(self.render(&streams, offer.times()))
    }

    /// Checks the answer to our last offer (RFC 3264 section 6): one m= line per offered
    /// m= line, and each accepted stream (port not 0) with at least one audio codec we
    /// offered (6.1). The codec is recognised by its `a=rtpmap` (or the static payload type
    /// table) whatever its number: the answerer SHOULD keep our numbers, and a peer that
    /// renumbers is still understood; without either, by our number. A stream with port 0
    /// was rejected; when all are, [`AnswerError::NotAcceptable`]. On success the offer is
    /// settled.
    pub fn accept_answer(&mut self, answer: &[u8]) -> Result<(), AnswerError> {
        let offered = self.offered.as_deref().ok_or(AnswerError::NoOffer)?;
        let offer = Sdp::parse(offered)?;
        let answer = Sdp::parse(answer)?;
        if answer.media().len() != offer.media().len() {
            return Err(AnswerError::MediaCountMismatch {
                offered: offer.media().len(),
                answered: answer.media().len(),
            });
        }
        let mut any = false;
        for m in answer.media().iter().filter(|m| m.port() != 0) {
            // each a=rtpmap parsed once, whatever the number of formats
            let maps: Vec<Rtpmap<'_>> = m.rtpmaps().collect();
            let ours = m
                .formats()
                .filter_map(super::parse::number::<u8>)
                .any(|pt| {
                    self.codecs.iter().any(|c| {
                        !c.is_telephone_event()
                            && match describe(&maps, pt) {
                                Some((name, rate, channels)) => c.matches(name, rate, channels),
                                None => c.payload_type == pt,
                            }
                    })
                });
            if !ours {
                return Err(AnswerError::UnofferedCodec);
            }
            any = true;
        }
        if !any {
            return Err(AnswerError::NotAcceptable);
        }
        self.offered = None;
        Ok(())
    }

    /// Our codecs that the offered stream has, with the offerer's payload type numbers,
    /// in the offer's order (RFC 3264 section 6.1).
    fn intersect(&self, m: &Media<'_>) -> Vec<Codec> {
        // each a=rtpmap parsed once and each payload type looked at once, so the work is
        // bounded by the formats and attributes of the line, not their product of parses
        let maps: Vec<Rtpmap<'_>> = m.rtpmaps().collect();
        let mut seen = [false; 256];
        let mut common: Vec<Codec> = Vec::new();
        for pt in m.formats().filter_map(super::parse::number::<u8>) {
            if std::mem::replace(&mut seen[usize::from(pt)], true) {
                continue;
            }
            let Some((name, rate, channels)) = describe(&maps, pt) else {
                continue;
            };
            if let Some(ours) = self.codecs.iter().find(|c| c.matches(name, rate, channels)) {
                common.push(Codec {
                    payload_type: pt,
                    ..ours.clone()
                });
            }
        }
        common
    }

    /// Writes the description for `streams`, bumping the version when it differs from the
    /// last one sent.
    fn render(&mut self, streams: &[Stream<'_>], times: &[Time<'_>]) -> Vec<u8> {
        let mut sdp = self.write(streams, times, self.session_version);
        if self.last_sent.is_some_and(|last| last != digest(&sdp)) {
            self.session_version = self.session_version.wrapping_add(1);
            sdp = self.write(streams, times, self.session_version);
        }
        // What was sent, at the version the next description is first written with.
        self.last_sent = Some(digest(&sdp));
        sdp
    }

    /// The description itself, written line by line in the order of RFC 8866 section 5.
    fn write(&self, streams: &[Stream<'_>], times: &[Time<'_>], version: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let address = &self.address_text;
        let addrtype = if self.address.is_ipv4() { "IP4" } else { "IP6" };
        // writing into a Vec cannot fail
        let _ = write!(
            out,
            "v=0\r\no=- {} {version} IN {addrtype} {address}\r\ns=-\r\nc=IN {addrtype} {address}\r\n",
            self.session_id
        );
        for t in times {
            super::write::time(&mut out, t);
        }
        for stream in streams {
            match stream {
                Stream::Accepted(codecs, direction) => {
                    let _ = write!(out, "m=audio {} RTP/AVP", self.audio_port);
                    for c in codecs {
                        let _ = write!(out, " {}", c.payload_type);
                    }
                    out.extend_from_slice(b"\r\n");
                    // an a=rtpmap for every codec, static ones included, then its a=fmtp
                    for c in codecs {
                        let _ = write!(
                            out,
                            "a=rtpmap:{} {}/{}",
                            c.payload_type, c.name, c.clock_rate
                        );
                        if let Some(channels) = c.channels {
                            let _ = write!(out, "/{channels}");
                        }
                        out.extend_from_slice(b"\r\n");
                        if let Some(fmtp) = &c.fmtp {
                            let _ = write!(out, "a=fmtp:{} {fmtp}\r\n", c.payload_type);
                        }
                    }
                    let _ = write!(out, "a={}\r\n", direction.as_str());
                }
                // RFC 3264 section 6: port 0; the formats are ignored but one must be there
                Stream::Rejected(offered) => {
                    let _ = write!(
                        out,
                        "m={} 0 {} {}\r\n",
                        offered.media, offered.proto, offered.formats
                    );
                }
            }
        }
        out
    }
}

/// A digest of a description, to tell whether the next one differs (RFC 3264 section 8).
/// Not keyed: a collision, which a peer could at most aim for through the offers it
/// makes, only leaves the o= version unchanged.
fn digest(sdp: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sdp.hash(&mut h);
    h.finish()
}
