//! SDP (RFC 8866) and the offer/answer model (RFC 3264).
//!
//! - [`Sdp`]: a session description parsed without copying: every field borrows the body.
//!   The parser follows the grammar of RFC 8866 sections 5 and 9 (line order included),
//!   accepts what real peers send (LF-only line ends, trailing whitespace, a missing final
//!   line end), is bounded ([`MAX_LINES`], [`MAX_MEDIA`], [`MAX_ATTRIBUTES`], [`MAX_FORMATS`]) and never
//!   panics. [`Sdp::write_to`] writes it back in canonical form (CRLF line ends).
//! - [`LocalMedia`]: our side of the media. It makes offers ([`LocalMedia::offer`]), answers
//!   offers (RFC 3264 section 6: codec intersection, direction mirrored, port 0 for a
//!   rejected stream) and checks answers to its offers; the o= version goes up only when
//!   the description changes (RFC 3264 section 8).
//!
//! Answering an offer:
//!
//! ```
//! use sip_core::sdp::{Direction, LocalMedia, Sdp};
//!
//! let offer = b"v=0\r\n\
//!     o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n\
//!     s=-\r\n\
//!     c=IN IP4 198.51.100.1\r\n\
//!     t=0 0\r\n\
//!     m=audio 49170 RTP/AVP 8 96 97\r\n\
//!     a=rtpmap:8 PCMA/8000\r\n\
//!     a=rtpmap:96 opus/48000/2\r\n\
//!     a=rtpmap:97 telephone-event/8000\r\n\
//!     a=sendonly\r\n";
//! let parsed = Sdp::parse(offer)?;
//! assert_eq!(parsed.media()[0].port(), 49170);
//! assert_eq!(parsed.media()[0].direction(), Direction::SendOnly);
//!
//! // We do PCMU, PCMA and telephone-event (RFC 4733).
//! let mut ours = LocalMedia::new("192.0.2.7".parse()?, 40000, 1234);
//! let answer = ours.answer(offer)?;
//! let answer = Sdp::parse(&answer)?;
//! let audio = &answer.media()[0];
//! assert_eq!(audio.port(), 40000);
//! // The codecs both sides do, with the offerer's payload type numbers (RFC 3264 6.1).
//! assert_eq!(audio.formats().collect::<Vec<_>>(), ["8", "97"]);
//! // They send, we receive (a call on hold).
//! assert_eq!(audio.direction(), Direction::RecvOnly);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod answer;
mod parse;
mod write;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use answer::{AnswerError, Codec, LocalMedia};

/// The most lines a description may have; more is [`SdpError::TooManyLines`].
pub const MAX_LINES: usize = 512;
/// The most media descriptions (m= sections); more is [`SdpError::TooManyMedia`].
pub const MAX_MEDIA: usize = 32;
/// The most a= lines in one section (the session or one media description); more is
/// [`SdpError::TooManyAttributes`].
pub const MAX_ATTRIBUTES: usize = 256;

/// The most formats on one m= line (RTP has 128 payload types); more is
/// [`SdpError::TooManyFormats`]. It bounds the work of the answer helper.
pub const MAX_FORMATS: usize = 128;

/// Why a session description was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is empty (or only blank lines).
    #[error("empty session description")]
    Empty,
    /// A line is not valid UTF-8 (RFC 8866 section 5: UTF-8 unless a charset attribute
    /// says otherwise; this parser takes UTF-8 only).
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 {
        /// The line number (1 is the first line).
        line: usize,
    },
    /// A line is not `<type>=<value>` with a known type letter, or its value does not
    /// follow the grammar of its type (RFC 8866 section 9).
    #[error("line {line}: malformed {field}= line")]
    Malformed {
        /// The line number (1 is the first line).
        line: usize,
        /// The type letter of the line (`?` when there is none).
        field: char,
    },
    /// A line is out of the order of RFC 8866 section 5, or appears twice where only one
    /// is allowed.
    #[error("line {line}: {field}= line out of order")]
    OutOfOrder {
        /// The line number (1 is the first line).
        line: usize,
        /// The type letter of the line.
        field: char,
    },
    /// A mandatory line is missing: v=, o=, s= or t= (RFC 8866 section 5).
    #[error("missing {0}= line")]
    Missing(char),
    /// The v= line is not `v=0` (RFC 8866 section 5.1).
    #[error("unsupported SDP version")]
    UnsupportedVersion,
    /// A media description has no c= line and there is none at session level (RFC 8866
    /// section 5.7).
    #[error("media description {0} has no connection address")]
    MissingConnection(usize),
    /// More than [`MAX_LINES`] lines.
    #[error("more than {MAX_LINES} lines")]
    TooManyLines,
    /// More than [`MAX_MEDIA`] media descriptions.
    #[error("more than {MAX_MEDIA} media descriptions")]
    TooManyMedia,
    /// More than [`MAX_ATTRIBUTES`] a= lines in one section.
    #[error("more than {MAX_ATTRIBUTES} attributes in one section")]
    TooManyAttributes,
    /// More than [`MAX_FORMATS`] formats on one m= line.
    #[error("more than {MAX_FORMATS} formats on one m= line")]
    TooManyFormats,
}

/// The direction of a media stream (RFC 8866 sections 6.7.1 to 6.7.4, RFC 3264 section
/// 5.1): what its `a=sendrecv`, `a=sendonly`, `a=recvonly` or `a=inactive` says, from the
/// point of view of the side that wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Direction {
    /// `a=sendrecv` (the default when none is given).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction an answer gives to a stream offered with `self` (RFC 3264 section
    /// 6.1): sendonly becomes recvonly, recvonly becomes sendonly, sendrecv and inactive
    /// stay.
    pub fn mirror(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// What both `self` and `allowed` permit: sending only if both send, receiving only
    /// if both receive (RFC 3264 section 6.1: an answer may narrow a stream's direction).
    pub fn restrict(self, allowed: Direction) -> Direction {
        let send = self.sends() && allowed.sends();
        let recv = self.receives() && allowed.receives();
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether media is sent: sendrecv or sendonly.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether media is received: sendrecv or recvonly.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute name stands for, if it is one of the four.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The direction of the first direction attribute in `attributes`, if any.
    fn of(attributes: &[Attribute<'_>]) -> Option<Direction> {
        attributes.iter().find_map(|a| {
            a.value
                .is_none()
                .then(|| Direction::from_attribute(a.name))?
        })
    }
}

/// The o= line (RFC 8866 section 5.2):
/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The user's login on the originating host, `-` when it has none.
    pub username: &'a str,
    /// The session id, digits (a 64-bit number is recommended).
    pub session_id: &'a str,
    /// The version of this description, digits; it goes up when the description changes
    /// (RFC 3264 section 8).
    pub session_version: &'a str,
    /// The network type, `IN`.
    pub nettype: &'a str,
    /// The address type, `IP4` or `IP6`.
    pub addrtype: &'a str,
    /// The address of the machine that created the session.
    pub address: &'a str,
}

impl Origin<'_> {
    /// The session version as a number (`None` beyond 64 bits).
    pub fn version_number(&self) -> Option<u64> {
        self.session_version.parse().ok()
    }

    /// The session id as a number (`None` beyond 64 bits).
    pub fn session_id_number(&self) -> Option<u64> {
        self.session_id.parse().ok()
    }
}

/// A c= line (RFC 8866 section 5.7): `c=<nettype> <addrtype> <connection-address>`, the
/// address split from its multicast suffixes (`/<ttl>` for IP4, then `/<number of
/// addresses>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    /// The network type, `IN`.
    pub nettype: &'a str,
    /// The address type, `IP4` or `IP6` (RFC 5118-style `c=IN IP6 ::1` included).
    pub addrtype: &'a str,
    /// The address (or host name), without the multicast suffixes.
    pub address: &'a str,
    /// The multicast time to live (IP4 multicast only).
    pub ttl: Option<u8>,
    /// The number of multicast addresses (`/<number of addresses>`).
    pub count: Option<u32>,
}

impl Connection<'_> {
    /// The address as an IP address, when it is a literal one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Whether the address is a multicast group (then RFC 3264 section 6.2 applies).
    pub fn is_multicast(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_multicast())
    }
}

/// A b= line (RFC 8866 section 5.8): `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth<'a> {
    /// The bandwidth type, e.g. `AS` or `CT`.
    pub bwtype: &'a str,
    /// The bandwidth, in kilobits per second for `AS` and `CT`.
    pub bandwidth: u64,
}

/// A time description (RFC 8866 sections 5.9 to 5.11): the t= line, its r= lines and its
/// z= line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Time<'a> {
    /// The start time (NTP seconds), 0 for an unbounded session.
    pub start: u64,
    /// The stop time (NTP seconds), 0 for an unbounded session.
    pub stop: u64,
    /// The r= lines, as written (`<repeat interval> <active duration> <offsets>`).
    pub repeats: Vec<&'a str>,
    /// The z= line, as written (`<adjustment time> <offset> ...`).
    pub zone: Option<&'a str>,
}

/// An a= line (RFC 8866 section 5.13): `a=<name>` (a property) or `a=<name>:<value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// The attribute name, e.g. `rtpmap`, `sendonly`.
    pub name: &'a str,
    /// The value after the colon; `None` for a property attribute.
    pub value: Option<&'a str>,
}

/// An `a=rtpmap` value (RFC 8866 section 6.6):
/// `<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtpmap<'a> {
    /// The RTP payload type number.
    pub payload_type: u8,
    /// The encoding name, e.g. `PCMU`, `telephone-event` (compared case-insensitively).
    pub encoding_name: &'a str,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The number of audio channels (the encoding parameters of an audio stream).
    pub channels: Option<u8>,
}

impl<'a> Rtpmap<'a> {
    /// Parses an `a=rtpmap` value.
    pub fn parse(value: &'a str) -> Option<Rtpmap<'a>> {
        let (pt, rest) = value.split_once(' ')?;
        let rest = rest.trim_start_matches(' ');
        let mut parts = rest.splitn(3, '/');
        let encoding_name = parts.next().filter(|n| parse::is_token(n))?;
        let clock_rate = parse::number(parts.next()?)?;
        let channels = match parts.next() {
            Some(c) => Some(parse::number(c)?),
            None => None,
        };
        Some(Rtpmap {
            payload_type: parse::number(pt)?,
            encoding_name,
            clock_rate,
            channels,
        })
    }
}

/// A session description (RFC 8866), borrowing the body it was parsed from.
///
/// Equality compares every field, so a description parsed, written and parsed again equals
/// the first parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp<'a> {
    origin: Origin<'a>,
    session_name: &'a str,
    information: Option<&'a str>,
    uri: Option<&'a str>,
    emails: Vec<&'a str>,
    phones: Vec<&'a str>,
    connection: Option<Connection<'a>>,
    bandwidths: Vec<Bandwidth<'a>>,
    times: Vec<Time<'a>>,
    key: Option<&'a str>,
    attributes: Vec<Attribute<'a>>,
    media: Vec<Media<'a>>,
}

impl<'a> Sdp<'a> {
    /// Parses a session description (RFC 8866 sections 5 and 9), bounded by [`MAX_LINES`],
    /// [`MAX_MEDIA`], [`MAX_ATTRIBUTES`] and [`MAX_FORMATS`].
    pub fn parse(body: &'a [u8]) -> Result<Sdp<'a>, SdpError> {
        parse::parse(body)
    }

    /// Writes the description in canonical form: the lines in the order of RFC 8866
    /// section 5, each ended by CRLF. A description parsed from canonical input is written
    /// back byte for byte.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write::write(self, out);
    }

    /// The description as bytes ([`Sdp::write_to`] into a new vector).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// The o= line (RFC 8866 section 5.2).
    pub fn origin(&self) -> &Origin<'a> {
        &self.origin
    }

    /// The s= line (RFC 8866 section 5.3).
    pub fn session_name(&self) -> &'a str {
        self.session_name
    }

    /// The session-level i= line (RFC 8866 section 5.4).
    pub fn information(&self) -> Option<&'a str> {
        self.information
    }

    /// The u= line (RFC 8866 section 5.5).
    pub fn uri(&self) -> Option<&'a str> {
        self.uri
    }

    /// The e= lines (RFC 8866 section 5.6).
    pub fn emails(&self) -> &[&'a str] {
        &self.emails
    }

    /// The p= lines (RFC 8866 section 5.6).
    pub fn phones(&self) -> &[&'a str] {
        &self.phones
    }

    /// The session-level c= line (RFC 8866 section 5.7).
    pub fn connection(&self) -> Option<&Connection<'a>> {
        self.connection.as_ref()
    }

    /// The session-level b= lines (RFC 8866 section 5.8).
    pub fn bandwidths(&self) -> &[Bandwidth<'a>] {
        &self.bandwidths
    }

    /// The time descriptions (RFC 8866 sections 5.9 to 5.11): at least one.
    pub fn times(&self) -> &[Time<'a>] {
        &self.times
    }

    /// The session-level k= line (RFC 8866 section 5.12, obsolete).
    pub fn key(&self) -> Option<&'a str> {
        self.key
    }

    /// The session-level a= lines (RFC 8866 section 5.13), in order.
    pub fn attributes(&self) -> &[Attribute<'a>] {
        &self.attributes
    }

    /// The first session-level attribute called `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute<'a>> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The media descriptions (m= sections, RFC 8866 section 5.14), in order.
    pub fn media(&self) -> &[Media<'a>] {
        &self.media
    }

    /// The session-level direction attribute, [`Direction::SendRecv`] when there is none
    /// (RFC 8866 section 6.7).
    pub fn direction(&self) -> Direction {
        Direction::of(&self.attributes).unwrap_or_default()
    }

    /// The connection that applies to a media description: its own first c= line, else
    /// the session-level one (RFC 8866 section 5.7).
    pub fn connection_for(&self, media: &Media<'a>) -> Option<Connection<'a>> {
        media.connections.first().copied().or(self.connection)
    }
}

/// A media description (RFC 8866 section 5.14): the m= line and the i=, c=, b=, k= and a=
/// lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    media: &'a str,
    port: u16,
    port_count: Option<u16>,
    proto: &'a str,
    formats: &'a str,
    information: Option<&'a str>,
    connections: Vec<Connection<'a>>,
    bandwidths: Vec<Bandwidth<'a>>,
    key: Option<&'a str>,
    attributes: Vec<Attribute<'a>>,
    /// The session-level direction, for [`Media::direction`] (not written).
    session_direction: Direction,
}

impl<'a> Media<'a> {
    /// The media type: `audio`, `video`, `text`, `application`, `message`, ...
    pub fn media_type(&self) -> &'a str {
        self.media
    }

    /// The transport port; 0 for a stream that is rejected or removed (RFC 3264 sections 6
    /// and 8.2).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The number of ports (`m=<media> <port>/<number of ports> ...`), when given.
    pub fn port_count(&self) -> Option<u16> {
        self.port_count
    }

    /// The transport protocol, e.g. `RTP/AVP`.
    pub fn proto(&self) -> &'a str {
        self.proto
    }

    /// The media formats (RTP payload type numbers for `RTP/AVP`), in order.
    pub fn formats(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.formats.split(' ').filter(|f| !f.is_empty())
    }

    /// The media-level i= line.
    pub fn information(&self) -> Option<&'a str> {
        self.information
    }

    /// The media-level c= lines.
    pub fn connections(&self) -> &[Connection<'a>] {
        &self.connections
    }

    /// The media-level b= lines.
    pub fn bandwidths(&self) -> &[Bandwidth<'a>] {
        &self.bandwidths
    }

    /// The media-level k= line (obsolete).
    pub fn key(&self) -> Option<&'a str> {
        self.key
    }

    /// The media-level a= lines, in order.
    pub fn attributes(&self) -> &[Attribute<'a>] {
        &self.attributes
    }

    /// The first media-level attribute called `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute<'a>> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The values of the media-level attributes called `name` (case-insensitive).
    pub fn attribute_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.attributes
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value)
    }

    /// The `a=rtpmap` lines that parse (RFC 8866 section 6.6).
    pub fn rtpmaps(&self) -> impl Iterator<Item = Rtpmap<'a>> + '_ {
        self.attribute_values("rtpmap").filter_map(Rtpmap::parse)
    }

    /// The `a=rtpmap` of a payload type.
    pub fn rtpmap(&self, payload_type: u8) -> Option<Rtpmap<'a>> {
        self.rtpmaps().find(|r| r.payload_type == payload_type)
    }

    /// The `a=fmtp` parameters of a format (RFC 8866 section 6.15): what follows
    /// `a=fmtp:<format> `.
    pub fn fmtp(&self, format: &str) -> Option<&'a str> {
        self.attribute_values("fmtp").find_map(|v| {
            let (f, params) = v.split_once(' ')?;
            (f == format).then_some(params.trim_start_matches(' '))
        })
    }

    /// The `a=ptime` value in milliseconds (RFC 8866 section 6.4; a fraction is cut to
    /// whole milliseconds).
    pub fn ptime(&self) -> Option<u32> {
        let v = self.attribute("ptime")?.value?;
        parse::number(v.split('.').next().unwrap_or(v))
    }

    /// The `a=rtcp` port (RFC 3605), when the attribute is present and its port parses.
    pub fn rtcp_port(&self) -> Option<u16> {
        let v = self.attribute("rtcp")?.value?;
        parse::number(v.split(' ').next().unwrap_or(v))
    }

    /// The `a=mid` value (RFC 5888).
    pub fn mid(&self) -> Option<&'a str> {
        self.attribute("mid")?.value
    }

    /// The direction of the stream: its media-level direction attribute, else the
    /// session-level one, else [`Direction::SendRecv`] (RFC 8866 section 6.7).
    pub fn direction(&self) -> Direction {
        Direction::of(&self.attributes).unwrap_or(self.session_direction)
    }
}
