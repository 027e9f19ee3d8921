//! The SDP serializer: canonical order (RFC 8866 section 5), CRLF line ends.

use std::io::Write;

use super::{Attribute, Bandwidth, Connection, Media, Sdp, Time};

fn line(out: &mut Vec<u8>, field: u8, value: &str) {
    out.extend_from_slice(&[field, b'=']);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn connection(out: &mut Vec<u8>, c: &Connection<'_>) {
    out.extend_from_slice(b"c=");
    // writing into a Vec cannot fail
    let _ = write!(out, "{} {} {}", c.nettype, c.addrtype, c.address);
    if let Some(ttl) = c.ttl {
        let _ = write!(out, "/{ttl}");
    }
    if let Some(count) = c.count {
        let _ = write!(out, "/{count}");
    }
    out.extend_from_slice(b"\r\n");
}

fn bandwidth(out: &mut Vec<u8>, b: &Bandwidth<'_>) {
    let _ = write!(out, "b={}:{}\r\n", b.bwtype, b.bandwidth);
}

fn attribute(out: &mut Vec<u8>, a: &Attribute<'_>) {
    out.extend_from_slice(b"a=");
    out.extend_from_slice(a.name.as_bytes());
    if let Some(v) = a.value {
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// A time description: its t=, r= and z= lines.
pub(super) fn time(out: &mut Vec<u8>, t: &Time<'_>) {
    let _ = write!(out, "t={} {}\r\n", t.start, t.stop);
    for r in &t.repeats {
        line(out, b'r', r);
    }
    if let Some(z) = t.zone {
        line(out, b'z', z);
    }
}

fn media(out: &mut Vec<u8>, m: &Media<'_>) {
    let _ = write!(out, "m={} {}", m.media, m.port);
    if let Some(n) = m.port_count {
        let _ = write!(out, "/{n}");
    }
    let _ = write!(out, " {} {}\r\n", m.proto, m.formats);
    if let Some(i) = m.information {
        line(out, b'i', i);
    }
    for c in &m.connections {
        connection(out, c);
    }
    for b in &m.bandwidths {
        bandwidth(out, b);
    }
    if let Some(k) = m.key {
        line(out, b'k', k);
    }
    for a in &m.attributes {
        attribute(out, a);
    }
}

pub(super) fn write(sdp: &Sdp<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"v=0\r\n");
    let o = &sdp.origin;
    let _ = write!(
        out,
        "o={} {} {} {} {} {}\r\n",
        o.username, o.session_id, o.session_version, o.nettype, o.addrtype, o.address
    );
    line(out, b's', sdp.session_name);
    if let Some(i) = sdp.information {
        line(out, b'i', i);
    }
    if let Some(u) = sdp.uri {
        line(out, b'u', u);
    }
    for e in &sdp.emails {
        line(out, b'e', e);
    }
    for p in &sdp.phones {
        line(out, b'p', p);
    }
    if let Some(c) = &sdp.connection {
        connection(out, c);
    }
    for b in &sdp.bandwidths {
        bandwidth(out, b);
    }
    for t in &sdp.times {
        time(out, t);
    }
    if let Some(k) = sdp.key {
        line(out, b'k', k);
    }
    for a in &sdp.attributes {
        attribute(out, a);
    }
    for m in &sdp.media {
        media(out, m);
    }
}
