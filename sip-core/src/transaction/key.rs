//! Transaction matching keys (RFC 3261 sections 17.1.3 and 17.2.3), encoded as bytes into a
//! reusable buffer so that matching a retransmission allocates nothing.

use std::hash::BuildHasher;

use crate::message::{raw, Host, Method, Via};
use crate::Message;

/// Bytes of a key kept on the stack: an RFC 3261 key (method, branch, sent-by) of the usual
/// lengths fits.
const KEY_INLINE: usize = 96;

/// An encoded server transaction key: on the stack for the usual sizes, so a request is
/// matched without allocating, and moved (not shared through a field) from the lookup to
/// the transaction it creates. Longer keys (RFC 2543 ones) spill to the heap.
/// (`SmallVec<[u8; 96]>` does the same job; this plain array and length cost 239 fewer
/// instructions per INVITE server transaction, measured with `bench/endpoint-callgrind.sh`.)
#[derive(Clone)]
pub(crate) struct KeyBuf {
    len: usize,
    inline: [u8; KEY_INLINE],
    /// Every byte of the key once it outgrew `inline` (empty until then).
    spill: Vec<u8>,
}

impl KeyBuf {
    pub(crate) fn new() -> KeyBuf {
        KeyBuf {
            len: 0,
            inline: [0; KEY_INLINE],
            spill: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    #[inline]
    fn extend_from_slice(&mut self, b: &[u8]) {
        if self.spill.is_empty() {
            if let Some(to) = self.inline.get_mut(self.len..self.len + b.len()) {
                to.copy_from_slice(b);
                self.len += b.len();
                return;
            }
            self.spill.extend_from_slice(&self.inline[..self.len]);
        }
        self.spill.extend_from_slice(b);
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    /// Lower-cases the bytes from `from` on.
    fn lowercase_from(&mut self, from: usize) {
        let all: &mut [u8] = if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        };
        if let Some(tail) = all.get_mut(from..) {
            tail.make_ascii_lowercase();
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

impl std::ops::Deref for KeyBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for KeyBuf {
    fn eq(&self, other: &KeyBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

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
    type Hasher = siphasher::sip::SipHasher13;

    fn build_hasher(&self) -> Self::Hasher {
        // SipHash keyed with the endpoint's secret (its own ChaCha stream): a peer that
        // cannot learn the key cannot aim its requests at one bucket. (std's DefaultHasher
        // is SipHash too, but with a fixed key and an algorithm std may change.)
        siphasher::sip::SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A transaction table: keys (as bytes) to ids, each entry keeping its hash, so a key is
/// hashed once when a request arrives (the lookup and the insertion share it) and never
/// again (removal and growth use the stored hash).
#[derive(Debug)]
pub(crate) struct KeyTable<V> {
    hasher: KeyedHasher,
    table: hashbrown::HashTable<(u64, Box<[u8]>, V)>,
}

impl<V: Copy + PartialEq> KeyTable<V> {
    pub(crate) fn new(hasher: KeyedHasher) -> Self {
        KeyTable {
            hasher,
            table: hashbrown::HashTable::new(),
        }
    }

    /// The keyed hash of `key`.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The id stored under `key` (whose hash is `hash`).
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<V> {
        self.table
            .find(hash, |(h, k, _)| *h == hash && &**k == key)
            .map(|(_, _, v)| *v)
    }

    /// Stores `value` under `key`, replacing what was there.
    pub(crate) fn insert(&mut self, hash: u64, key: Box<[u8]>, value: V) {
        match self
            .table
            .find_mut(hash, |(h, k, _)| *h == hash && **k == *key)
        {
            Some(entry) => entry.2 = value,
            None => {
                self.table
                    .insert_unique(hash, (hash, key, value), |(h, _, _)| *h);
            }
        }
    }

    /// Removes `key` if it still names `value`.
    pub(crate) fn remove(&mut self, hash: u64, key: &[u8], value: V) {
        if let Ok(entry) = self
            .table
            .find_entry(hash, |(h, k, v)| *h == hash && &**k == key && *v == value)
        {
            entry.remove();
        }
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

fn push_host(out: &mut KeyBuf, host: &Host<'_>) {
    let h = match host {
        Host::Domain(h) | Host::Ipv4(h) | Host::Ipv6(h) => h,
    };
    let from = out.len();
    out.extend_from_slice(h.as_bytes());
    out.lowercase_from(from);
}

fn push_port(out: &mut KeyBuf, port: Option<u16>) {
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
    out: &mut KeyBuf,
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
pub(crate) fn server_key_3261(out: &mut KeyBuf, via: &Via<'_>, method: Method<'_>) -> bool {
    let Some(branch) = rfc3261_branch(via) else {
        return false;
    };
    let host = match via.host {
        Host::Domain(h) | Host::Ipv4(h) | Host::Ipv6(h) => h,
    };
    push_3261_key(out, method, branch, host, via.port);
    true
}

/// `S`, the method matched under, the branch, the lower-cased sent-by host and the port.
fn push_3261_key(
    out: &mut KeyBuf,
    method: Method<'_>,
    branch: &str,
    host: &str,
    port: Option<u16>,
) {
    out.clear();
    out.push(b'S');
    out.extend_from_slice(match_method(method).as_bytes());
    out.push(0);
    out.extend_from_slice(branch.as_bytes());
    out.push(0);
    let from = out.len();
    out.extend_from_slice(host.as_bytes());
    out.lowercase_from(from);
    out.push(0);
    push_port(out, port);
}

/// The same key as [`server_key_3261`], from the raw value of the request's first Via line
/// (as [`MessageView::header`](crate::MessageView::header) gives it), without typing the
/// rest of the message. The Via is typed by [`raw::first_via`], the parse
/// [`Message`] types it with, so when this returns true the key is exactly the typed one,
/// and a miss here is a miss there too. False (and `out` untouched) when the line is not a
/// valid Via list or the branch has no magic cookie: the caller then types the message.
pub(crate) fn server_key_from_raw_via(out: &mut KeyBuf, raw: &str, method: Method<'_>) -> bool {
    let Some((via, Some(branch))) = raw::first_via_and_branch(raw) else {
        return false;
    };
    if !branch.starts_with(crate::MAGIC_COOKIE) {
        return false;
    }
    let host = match via.host {
        Host::Domain(h) | Host::Ipv4(h) | Host::Ipv6(h) => h,
    };
    push_3261_key(out, method, branch, host, via.port);
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

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3261 17.2.3 matching runs on a hash table: its hash is SipHash-1-3 under the
    // endpoint's 128-bit secret, so every bit of the secret changes where a key lands (with
    // the secret only fed in as data, a fixed-key hash, the algorithm was std's to change).
    #[test]
    fn transaction_keys_are_hashed_with_siphash_keyed_by_the_secret() {
        use std::hash::Hasher;
        let key: &[u8] = b"S|INVITE|z9hG4bK776asdhds|pc33.atlanta.com|5060";
        let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let mut reference = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
        reference.write_usize(key.len());
        reference.write(key);
        let table = KeyTable::<u32>::new(KeyedHasher::new(k0, k1));
        assert_eq!(table.hash(key), reference.finish());
        for bit in 0..128 {
            let (a, b) = if bit < 64 {
                (k0 ^ 1 << bit, k1)
            } else {
                (k0, k1 ^ 1 << (bit - 64))
            };
            let other = KeyTable::<u32>::new(KeyedHasher::new(a, b));
            assert_ne!(other.hash(key), table.hash(key), "key bit {bit}");
        }
    }

    fn typed_key(via: &str, method: Method<'_>) -> Option<KeyBuf> {
        let msg = format!(
            "{m} sip:b@h SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n\
             Call-ID: c\r\nCSeq: 1 {m}\r\nContent-Length: 0\r\n\r\n",
            m = method.as_str()
        );
        let m = Message::parse(msg.as_bytes()).ok()?;
        let mut out = KeyBuf::new();
        server_key_3261(&mut out, &m.top_via()?, method).then_some(out)
    }

    fn raw_key(via: &str, method: Method<'_>) -> Option<KeyBuf> {
        let mut out = KeyBuf::new();
        server_key_from_raw_via(&mut out, via, method).then_some(out)
    }

    #[test]
    fn rfc3261_17_2_3_the_raw_via_key_equals_the_typed_key_or_declines() {
        let vias = [
            "SIP/2.0/UDP pc33.Atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            "SIP/2.0/TCP 192.0.2.1;BRANCH=z9hG4bKx",
            "SIP/2.0/UDP [2001:DB8::9]:5070;branch=z9hG4bKv6",
            "SIP/2.0/UDP [2001:db8::9];rport;branch=z9hG4bKv6",
            "SIP/2.0/UDP h:05060;branch=z9hG4bKlead",
            "SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/UDP other;branch=z9hG4bKb",
            // declined: whitespace, no cookie, no branch, odd ports
            "SIP/2.0/UDP h ;branch=z9hG4bKa",
            "SIP/2.0/UDP h;branch = z9hG4bKa",
            "SIP/2.0/UDP h;branch=1234",
            "SIP/2.0/UDP h:99999;branch=z9hG4bKa",
            "SIP/2.0/UDP h;received=1.2.3.4",
            "SIP / 2.0 / UDP h;branch=z9hG4bKa",
        ];
        for via in vias {
            for method in [Method::Invite, Method::Ack, Method::Options] {
                // the same key, or none from either (no magic cookie, not a Via)
                assert_eq!(
                    raw_key(via, method),
                    typed_key(via, method),
                    "{via} {method}"
                );
            }
        }
        assert!(raw_key(vias[0], Method::Invite).is_some());
        assert!(raw_key(vias[2], Method::Invite).is_some());
        // whitespace around separators is LWS the grammar allows (section 25.1)
        assert!(raw_key(vias[6], Method::Invite).is_some());
        assert!(raw_key(vias[8], Method::Invite).is_none());
        assert!(raw_key(vias[9], Method::Invite).is_none());
    }

    // RFC 3261 section 17.2.3: a key longer than the inline bytes (an RFC 2543 key, a long
    // branch or host) is kept whole, byte for byte.
    #[test]
    fn rfc3261_17_2_3_a_long_key_spills_to_the_heap_unchanged() {
        let long_host = "h".repeat(KEY_INLINE);
        let via = format!("SIP/2.0/UDP {long_host}.Example.COM:5060;branch=z9hG4bKlong");
        let raw = raw_key(&via, Method::Invite).unwrap();
        assert_eq!(Some(raw.clone()), typed_key(&via, Method::Invite));
        let mut expected = b"SINVITE\0z9hG4bKlong\0".to_vec();
        expected.extend_from_slice(format!("{long_host}.example.com").as_bytes());
        expected.push(0);
        expected.extend_from_slice(&5060u16.to_be_bytes());
        assert_eq!(raw.as_slice(), &expected[..]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2048))]

        // RFC 3261 section 17.2.3: the key read from the raw first Via line (the quick read
        // of message::raw, with the branch it finds on the way) is the key of the typed Via,
        // or neither gives one; and the branch is the typed Via's (Params::get agrees with
        // iterating the parameters).
        #[test]
        fn rfc3261_17_2_3_the_raw_via_key_equals_the_typed_key_for_generated_vias(
            protocol in "SIP/2.0/|sip/2.0/|SIP/2.0 /|SIP/3/",
            transport in "UDP|tcp|T-L|U D",
            host in "[a-zA-Z0-9.-]{1,10}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[[0-9a-f:]{2,8}\\]",
            port in proptest::option::of("[0-9]{1,6}"),
            params in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        "branch|BRANCH|Branch",
                        "rport|ttl|maddr|received|x|br|branchx",
                    ],
                    proptest::option::weighted(
                        0.8,
                        proptest::prop_oneof![
                            3 => "z9hG4bK[a-z0-9]{0,6}",
                            2 => "[a-zA-Z0-9.:!%*_+`'~-]{0,8}",
                            1 => "\"a;b\"",
                        ],
                    ),
                ),
                0..4,
            ),
            tail in "|, SIP/2.0/UDP h|,|;| |x|\r\n |\t",
        ) {
            let mut via = format!("{protocol}{transport} {host}");
            if let Some(p) = port {
                via.push(':');
                via.push_str(&p);
            }
            for (name, value) in &params {
                via.push(';');
                via.push_str(name);
                if let Some(v) = value {
                    via.push('=');
                    via.push_str(v);
                }
            }
            via.push_str(&tail);
            for method in [Method::Invite, Method::Ack, Method::Cancel] {
                proptest::prop_assert_eq!(
                    raw_key(&via, method),
                    typed_key(&via, method),
                    "{:?} {}",
                    via,
                    method
                );
            }
            if let Some(v) = raw::first_via(&via) {
                for name in ["branch", "rport", "ttl", "maddr", "received", "x"] {
                    let iterated = v
                        .params
                        .iter()
                        .find(|p| p.name.eq_ignore_ascii_case(name))
                        .map(|p| p.value);
                    proptest::prop_assert_eq!(v.params.get(name), iterated, "{:?}", via);
                }
                let quick = raw::first_via_and_branch(&via).map(|(_, b)| b);
                proptest::prop_assert_eq!(quick, Some(v.branch()), "{:?}", via);
            }
        }
    }
}
