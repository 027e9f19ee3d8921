//! Transaction matching keys (RFC 3261 sections 17.1.3 and 17.2.3), encoded as bytes into a
//! reusable buffer so that matching a retransmission allocates nothing.

use std::hash::{BuildHasher, Hasher};

use crate::message::{Host, Method, Via};
use crate::Message;

/// A keyed hasher for the transaction tables: the key comes from the endpoint's seed, so a
/// peer cannot choose branches that collide (hash flooding).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHasher {
    k0: u64,
    k1: u64,
}

impl KeyedHasher {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        KeyedHasher { k0, k1 }
    }
}

impl BuildHasher for KeyedHasher {
    type Hasher = std::collections::hash_map::DefaultHasher;

    fn build_hasher(&self) -> Self::Hasher {
        // SipHash with the secret written first: the output is unpredictable without it.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.k0);
        h.write_u64(self.k1);
        h
    }
}

/// The method a request is matched under: an ACK matches the INVITE transaction
/// (section 17.2.3); CANCEL has transactions of its own.
fn match_method<'a>(m: Method<'a>) -> &'a str {
    match m {
        Method::Ack => "INVITE",
        other => other.as_str(),
    }
}

fn push_host(out: &mut Vec<u8>, host: &Host<'_>) {
    let h = match host {
        Host::Domain(h) | Host::Ipv4(h) | Host::Ipv6(h) => h,
    };
    let from = out.len();
    out.extend_from_slice(h.as_bytes());
    out[from..].make_ascii_lowercase();
}

fn push_port(out: &mut Vec<u8>, port: Option<u16>) {
    if let Some(p) = port {
        out.extend_from_slice(&p.to_be_bytes());
    }
}

/// Is this Via's branch one of RFC 3261 (magic cookie), so that the branch alone names the
/// transaction?
pub(crate) fn rfc3261_branch<'a>(via: &Via<'a>) -> Option<&'a str> {
    via.branch().filter(|b| b.starts_with(crate::MAGIC_COOKIE))
}

/// The server transaction key of a request, matched as `method` (section 17.2.3), or `None`
/// when the request lacks a header the key needs.
///
/// With a magic-cookie branch: branch, sent-by and method. Without (RFC 2543 peers):
/// Request-URI, From tag, Call-ID, CSeq number, the top Via and `to_tag`.
pub(crate) fn server_key(
    out: &mut Vec<u8>,
    req: &Message<'_>,
    method: Method<'_>,
    to_tag: Option<&str>,
) -> Option<()> {
    out.clear();
    let via = req.top_via()?;
    if server_key_3261(out, &via, method) {
        return Some(());
    }
    let StartLineUri(uri) = start_uri(req)?;
    out.push(b'L');
    out.extend_from_slice(match_method(method).as_bytes());
    out.push(0);
    out.extend_from_slice(uri.as_bytes());
    out.push(0);
    out.extend_from_slice(req.from()?.tag().unwrap_or("").as_bytes());
    out.push(0);
    out.extend_from_slice(req.call_id()?.as_bytes());
    out.push(0);
    out.extend_from_slice(req.cseq()?.seq.to_string().as_bytes());
    out.push(0);
    out.extend_from_slice(via.transport.as_bytes());
    out.push(b' ');
    push_host(out, &via.host);
    out.push(b':');
    push_port(out, via.port);
    out.push(b';');
    out.extend_from_slice(via.params.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(to_tag.unwrap_or("").as_bytes());
    Some(())
}

/// The key of a request whose top Via has a magic-cookie branch: branch, sent-by and
/// method. False (and `out` untouched) for an RFC 2543 branch.
pub(crate) fn server_key_3261(out: &mut Vec<u8>, via: &Via<'_>, method: Method<'_>) -> bool {
    let Some(branch) = rfc3261_branch(via) else {
        return false;
    };
    out.clear();
    out.push(b'S');
    out.extend_from_slice(match_method(method).as_bytes());
    out.push(0);
    out.extend_from_slice(branch.as_bytes());
    out.push(0);
    push_host(out, &via.host);
    out.push(0);
    push_port(out, via.port);
    true
}

struct StartLineUri<'a>(&'a str);

fn start_uri<'a>(req: &Message<'a>) -> Option<StartLineUri<'a>> {
    match req.start_line() {
        crate::message::StartLine::Request { uri, .. } => Some(StartLineUri(uri)),
        crate::message::StartLine::Response { .. } => None,
    }
}

/// The client transaction key (section 17.1.3): the branch of the top Via and the CSeq
/// method.
pub(crate) fn client_key(out: &mut Vec<u8>, branch: &str, method: &str) {
    out.clear();
    out.push(b'C');
    out.extend_from_slice(method.as_bytes());
    out.push(0);
    out.extend_from_slice(branch.as_bytes());
}
