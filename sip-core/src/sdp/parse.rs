//! The SDP parser (RFC 8866 sections 5 and 9).
//!
//! One pass over the lines. Each line is `<type>=<value>`; where it may appear is checked
//! with a rank per type letter (the order of section 5): ranks never go down, except that
//! a new t= may follow the r= and z= lines of the previous time description, and a line
//! that may appear only once may not repeat.

use super::{
    Attribute, Bandwidth, Connection, Direction, Media, Origin, Sdp, SdpError, Time,
    MAX_ATTRIBUTES, MAX_FORMATS, MAX_LINES, MAX_MEDIA,
};

/// Session-level ranks (RFC 8866 section 5): `v o s i u e* p* c b* (t r* z)+ k a*`.
fn session_rank(field: u8) -> Option<u8> {
    Some(match field {
        b'v' => 0,
        b'o' => 1,
        b's' => 2,
        b'i' => 3,
        b'u' => 4,
        b'e' => 5,
        b'p' => 6,
        b'c' => 7,
        b'b' => 8,
        b't' => 9,
        b'r' => 10,
        b'z' => 11,
        b'k' => 12,
        b'a' => 13,
        _ => return None,
    })
}

/// Media-level ranks (RFC 8866 section 5): `m i c* b* k a*`.
fn media_rank(field: u8) -> Option<u8> {
    Some(match field {
        b'm' => 0,
        b'i' => 1,
        b'c' => 2,
        b'b' => 3,
        b'k' => 4,
        b'a' => 5,
        _ => return None,
    })
}

/// Whether a line of this type may follow another of the same type.
fn repeatable(field: u8, in_media: bool) -> bool {
    match field {
        b'e' | b'p' | b't' | b'r' => !in_media,
        b'c' => in_media,
        b'b' | b'a' => true,
        _ => false,
    }
}

/// RFC 8866 section 9: `token-char`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b)
}

/// RFC 8866 section 9: `token = 1*(token-char)`.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// A decimal number of at most 20 digits, no sign.
pub(super) fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 8866 section 9: non-whitespace visible characters (`non-ws-string`).
fn is_non_ws_string(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// The fields of a value separated by spaces (one or more: lenient).
fn fields(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|f| !f.is_empty())
}

/// Splits a value into exactly `N` space-separated fields.
fn split_n<const N: usize>(value: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = fields(value);
    for slot in &mut out {
        *slot = it.next()?;
    }
    it.next().is_none().then_some(out)
}

fn origin(value: &str) -> Option<Origin<'_>> {
    let [username, session_id, session_version, nettype, addrtype, address] = split_n(value)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (is_non_ws_string(username)
        && digits(session_id)
        && digits(session_version)
        && is_token(nettype)
        && is_token(addrtype)
        && is_non_ws_string(address))
    .then_some(Origin {
        username,
        session_id,
        session_version,
        nettype,
        addrtype,
        address,
    })
}

fn connection(value: &str) -> Option<Connection<'_>> {
    let [nettype, addrtype, full] = split_n(value)?;
    if !is_token(nettype) || !is_token(addrtype) || !is_non_ws_string(full) {
        return None;
    }
    let mut parts = full.split('/');
    let address = parts.next().filter(|a| !a.is_empty())?;
    // A present suffix must be a number.
    fn suffix<T: std::str::FromStr>(part: Option<&str>) -> Result<Option<T>, ()> {
        part.map(|p| number(p).ok_or(())).transpose()
    }
    // RFC 8866 section 5.7: IP4 multicast is `<address>/<ttl>[/<number>]`, IP6 multicast
    // `<address>[/<number>]`; other address types keep their slashes in the address.
    let (ttl, count) = if addrtype.eq_ignore_ascii_case("IP4") {
        let ttl = suffix(parts.next()).ok()?;
        (ttl, suffix(parts.next()).ok()?)
    } else if addrtype.eq_ignore_ascii_case("IP6") {
        (None, suffix(parts.next()).ok()?)
    } else {
        return Some(Connection {
            nettype,
            addrtype,
            address: full,
            ttl: None,
            count: None,
        });
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Connection {
        nettype,
        addrtype,
        address,
        ttl,
        count,
    })
}

fn bandwidth(value: &str) -> Option<Bandwidth<'_>> {
    let (bwtype, bw) = value.split_once(':')?;
    is_token(bwtype).then_some(())?;
    Some(Bandwidth {
        bwtype,
        bandwidth: number(bw)?,
    })
}

fn time(value: &str) -> Option<Time<'_>> {
    let [start, stop] = split_n(value)?;
    Some(Time {
        start: number(start)?,
        stop: number(stop)?,
        repeats: Vec::new(),
        zone: None,
    })
}

/// RFC 8866 section 9: `typed-time = 1*DIGIT [fixed-len-time-unit]`, with an optional
/// minus sign where z= offsets allow one.
fn is_typed_time(s: &str, signed: bool) -> bool {
    let s = if signed {
        s.strip_prefix('-').unwrap_or(s)
    } else {
        s
    };
    let s = s.strip_suffix(['d', 'h', 'm', 's']).unwrap_or(s);
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `r=<repeat interval> <active duration> <offsets from start-time>`.
fn is_repeat(value: &str) -> bool {
    let mut n = 0;
    for f in fields(value) {
        if !is_typed_time(f, false) {
            return false;
        }
        n += 1;
    }
    n >= 3
}

/// `z=<adjustment time> <offset> <adjustment time> <offset> ...`.
fn is_zone(value: &str) -> bool {
    let mut n = 0;
    for (i, f) in fields(value).enumerate() {
        let ok = if i % 2 == 0 {
            number::<u64>(f).is_some()
        } else {
            is_typed_time(f, true)
        };
        if !ok {
            return false;
        }
        n += 1;
    }
    n >= 2 && n % 2 == 0
}

fn attribute(value: &str) -> Option<Attribute<'_>> {
    let (name, value) = match value.split_once(':') {
        Some((name, v)) => (name, Some(v)),
        None => (value, None),
    };
    is_token(name).then_some(Attribute { name, value })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`
fn media(value: &str, session_direction: Direction) -> Option<Media<'_>> {
    let mut it = value.splitn(4, ' ');
    let media = it.next().filter(|m| is_token(m))?;
    let port_field = it.next()?;
    let proto = it.next()?;
    let formats = it.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, n)) => (number(p)?, Some(number(n)?)),
        None => (number(port_field)?, None),
    };
    // proto = token *("/" token)
    proto.split('/').all(is_token).then_some(())?;
    let mut n = 0;
    for f in fields(formats) {
        is_token(f).then_some(())?;
        n += 1;
    }
    (n > 0).then_some(())?;
    Some(Media {
        media,
        port,
        port_count,
        proto,
        formats,
        information: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
        session_direction,
    })
}

/// Text fields (`i=`, `u=`, `e=`, `p=`, `k=`): anything but NUL, CR and LF, not empty.
fn text(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// The lines of the body: LF or CRLF line ends, trailing spaces and tabs dropped (unless the
/// value would become empty: `s= ` is the recommended empty session name), blank lines
/// skipped. Yields (line number, line).
fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut rest = body;
    let mut n = 0;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let line = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                line
            }
            None => std::mem::take(&mut rest),
        };
        // (a one-byte compare: strip_suffix calls memcmp)
        let line = match line.split_last() {
            Some((b'\r', rest)) => rest,
            _ => line,
        };
        if line.iter().all(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let mut end = line.len();
        while end > 3 && matches!(line[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        return Some((n, &line[..end]));
    })
}

pub(super) fn parse(body: &[u8]) -> Result<Sdp<'_>, SdpError> {
    let mut origin = None;
    let mut session_name = None;
    let mut information = None;
    let mut uri = None;
    let mut emails = Vec::new();
    let mut phones = Vec::new();
    let mut session_connection = None;
    let mut bandwidths = Vec::new();
    let mut times: Vec<Time<'_>> = Vec::new();
    let mut key = None;
    let mut attributes = Vec::new();
    let mut media: Vec<Media<'_>> = Vec::new();

    // The rank of the previous line (None before the first) and its type letter.
    let mut last: Option<u8> = None;
    let mut last_field = 0u8;
    let mut count = 0usize;
    let mut session_direction = Direction::SendRecv;
    let mut direction_seen = false;

    for (n, raw) in lines(body) {
        count += 1;
        if count > MAX_LINES {
            return Err(SdpError::TooManyLines);
        }
        let field_char = raw.first().map_or('?', |&b| b as char);
        let malformed = SdpError::Malformed {
            line: n,
            field: if field_char.is_ascii_graphic() {
                field_char
            } else {
                '?'
            },
        };
        // `<type>=<value>`: one lowercase letter, no whitespace around '=' (section 5).
        if raw.len() < 2 || raw[1] != b'=' || !raw[0].is_ascii_lowercase() {
            return Err(malformed);
        }
        let field = raw[0];
        let value = std::str::from_utf8(&raw[2..]).map_err(|_| SdpError::NotUtf8 { line: n })?;
        // NUL and a CR inside a line are not allowed in any value (section 9: `byte-string`
        // and `text` exclude them).
        if memchr::memchr2(0, b'\r', value.as_bytes()).is_some() {
            return Err(malformed);
        }
        let out_of_order = SdpError::OutOfOrder {
            line: n,
            field: field as char,
        };

        // A media description starts at m= and runs to the next m= or the end.
        let in_media = !media.is_empty() || field == b'm';
        let rank = if in_media {
            media_rank(field)
        } else {
            session_rank(field)
        }
        .ok_or(malformed)?;
        let starts_media = field == b'm';
        match last {
            None if field != b'v' => return Err(SdpError::Missing('v')),
            None => {}
            // the session part must be complete before the first m=
            Some(_) if starts_media && media.is_empty() => {
                check_session_complete(&origin, &session_name, &times)?;
            }
            Some(_) if starts_media => {}
            Some(prev) => {
                let ok = if rank > prev {
                    // r= and z= belong to a t=
                    !(field == b'r' || field == b'z') || (9..=10).contains(&prev)
                } else if rank == prev {
                    repeatable(field, in_media) && field == last_field
                } else {
                    // a new time description after the r= / z= of the previous one
                    !in_media && field == b't' && (10..=11).contains(&prev)
                };
                if !ok {
                    return Err(out_of_order);
                }
            }
        }
        last = Some(rank);
        last_field = field;

        if let Some(m) = media.last_mut().filter(|_| !starts_media) {
            match field {
                b'i' => m.information = Some(text(value).ok_or(malformed)?),
                b'c' => m.connections.push(connection(value).ok_or(malformed)?),
                b'b' => m.bandwidths.push(bandwidth(value).ok_or(malformed)?),
                b'k' => m.key = Some(text(value).ok_or(malformed)?),
                b'a' => {
                    if m.attributes.len() == MAX_ATTRIBUTES {
                        return Err(SdpError::TooManyAttributes);
                    }
                    m.attributes.push(attribute(value).ok_or(malformed)?);
                }
                _ => return Err(malformed),
            }
            continue;
        }
        match field {
            b'v' => {
                if value != "0" {
                    return Err(SdpError::UnsupportedVersion);
                }
            }
            b'o' => origin = Some(self::origin(value).ok_or(malformed)?),
            // text = 1*byte, but an empty s= is common (RFC 3264's own examples have one)
            b's' => session_name = Some(value),
            b'i' => information = Some(text(value).ok_or(malformed)?),
            b'u' => uri = Some(text(value).ok_or(malformed)?),
            b'e' => emails.push(text(value).ok_or(malformed)?),
            b'p' => phones.push(text(value).ok_or(malformed)?),
            b'c' => session_connection = Some(connection(value).ok_or(malformed)?),
            b'b' => bandwidths.push(bandwidth(value).ok_or(malformed)?),
            b't' => times.push(time(value).ok_or(malformed)?),
            b'r' => {
                is_repeat(value).then_some(()).ok_or(malformed)?;
                // ranks guarantee a t= before
                times.last_mut().ok_or(out_of_order)?.repeats.push(value);
            }
            b'z' => {
                is_zone(value).then_some(()).ok_or(malformed)?;
                times.last_mut().ok_or(out_of_order)?.zone = Some(value);
            }
            b'k' => key = Some(text(value).ok_or(malformed)?),
            b'a' => {
                if attributes.len() == MAX_ATTRIBUTES {
                    return Err(SdpError::TooManyAttributes);
                }
                let a = attribute(value).ok_or(malformed)?;
                // the first direction attribute counts (section 6.7)
                if !direction_seen && a.value.is_none() {
                    if let Some(d) = Direction::from_attribute(a.name) {
                        session_direction = d;
                        direction_seen = true;
                    }
                }
                attributes.push(a);
            }
            b'm' => {
                if media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia);
                }
                let m = self::media(value, session_direction).ok_or(malformed)?;
                if m.formats().count() > MAX_FORMATS {
                    return Err(SdpError::TooManyFormats);
                }
                media.push(m);
            }
            _ => return Err(malformed),
        }
    }
    if last.is_none() {
        return Err(SdpError::Empty);
    }
    check_session_complete(&origin, &session_name, &times)?;
    // RFC 8866 section 5.7: a c= line at session level or in every media description.
    if session_connection.is_none() {
        if let Some(i) = media.iter().position(|m| m.connections.is_empty()) {
            return Err(SdpError::MissingConnection(i));
        }
    }
    Ok(Sdp {
        origin: origin.ok_or(SdpError::Missing('o'))?,
        session_name: session_name.ok_or(SdpError::Missing('s'))?,
        information,
        uri,
        emails,
        phones,
        connection: session_connection,
        bandwidths,
        times,
        key,
        attributes,
        media,
    })
}

fn check_session_complete(
    origin: &Option<Origin<'_>>,
    session_name: &Option<&str>,
    times: &[Time<'_>],
) -> Result<(), SdpError> {
    if origin.is_none() {
        Err(SdpError::Missing('o'))
    } else if session_name.is_none() {
        Err(SdpError::Missing('s'))
    } else if times.is_empty() {
        Err(SdpError::Missing('t'))
    } else {
        Ok(())
    }
}
