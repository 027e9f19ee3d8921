//! Defences against reflection and amplification (RFC 3261 section 26.1.5): whether the
//! endpoint trusts a request's Via to say where its responses go, and the per-source credit
//! that bounds how many response bytes a source that never answers can draw.
//!
//! A UDP request's source address can be forged. Under RFC 3261 section 18.2.2 as written,
//! its Via then chooses the destination of the responses (`maddr`, or the sent-by port when
//! there is no `rport`), and a UAS retransmits its 2xx for 64*T1 whether or not anything
//! comes back: one 207-byte INVITE made `sipd` send 13 datagrams, 23 times its size, to an
//! address the sender picked. [`ResponsePolicy::SourceOnly`] answers only the packet's
//! source and makes retransmissions paid for by what that source sent.

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::transaction::key::KeyedHasher;

/// Where responses over unreliable transports go, and whether their retransmissions must be
/// earned ([`Config::response_policy`](crate::Config::response_policy)).
///
/// The trade-off: [`Rfc3261`](ResponsePolicy::Rfc3261) serves clients that send from one
/// port and listen on another without asking for `rport`, and `maddr` multicast, but lets
/// anyone who can forge a source address aim the endpoint's responses, 2xx retransmissions
/// included, at a third party. [`SourceOnly`](ResponsePolicy::SourceOnly) answers the
/// address and port the request came from (what RFC 3581 and NAT traversal need anyway,
/// and what nearly every UA expects, since it sends and receives on one socket), and stops
/// retransmitting to a source that has gone silent once it has received
/// [`MAX_AMPLIFICATION`](ResponsePolicy::MAX_AMPLIFICATION) times the bytes it sent. A
/// genuine client that loses the first 2xx and sends nothing more may therefore see fewer
/// retransmissions than section 13.3.1.4 schedules (at least one for a usual INVITE with an
/// SDP offer); a client that talks (ACKs, retransmitted requests, other traffic from its
/// address) keeps earning them.
///
/// Reliable transports are not affected: a TCP connection proves its source address, and
/// nothing is retransmitted over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResponsePolicy {
    /// RFC 3261 section 18.2.2 as written, for peers that are trusted (a private network,
    /// a peer behind an authenticating edge): the `maddr` address if there is one, else the
    /// source address with the `rport` port (RFC 3581) or the sent-by port; every
    /// retransmission is sent.
    Rfc3261,
    /// For untrusted peers (the default): responses go to the packet's source address and
    /// port as if the Via carried `rport` (RFC 3581 section 4), `maddr` is ignored, and a
    /// response retransmission that no input caused (timer G, a 2xx the transaction user
    /// sends again) is sent only while the bytes of all responses sent to that source
    /// address stay within [`MAX_AMPLIFICATION`](ResponsePolicy::MAX_AMPLIFICATION) times
    /// the bytes received from it. The first transmission of each response, and a response
    /// resent because the request came again, are always sent (and counted).
    #[default]
    SourceOnly,
}

impl ResponsePolicy {
    /// Under [`SourceOnly`](ResponsePolicy::SourceOnly), the most response bytes a
    /// retransmission may bring a source address to, per byte received from it.
    pub const MAX_AMPLIFICATION: usize = 4;

    /// Under [`SourceOnly`](ResponsePolicy::SourceOnly), the most unspent credit a source
    /// address keeps, in bytes: a busy peer's past traffic does not let a forged request
    /// draw an unbounded burst of retransmissions at it.
    pub const MAX_CREDIT: usize = 32 * 1024;

    /// Does the request's Via choose where responses go (section 18.2.2 as written)?
    pub(crate) fn trusts_via(self) -> bool {
        self == ResponsePolicy::Rfc3261
    }
}

/// Source addresses tracked at once. A direct-mapped table: a new address takes the slot of
/// the one its keyed hash collides with, which then starts again from no credit. Forgetting
/// can only lose credit or forgive a debt, never create credit, so the bound holds whatever
/// the table forgets; peers that collide merely earn less.
const SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The keyed hash of the address (0: empty).
    tag: u64,
    /// Credit in bytes: `MAX_AMPLIFICATION` per byte received, less every response byte
    /// sent; negative when first transmissions overspent it.
    balance: i64,
}

/// Per-source credit for response bytes (see [`ResponsePolicy::SourceOnly`]).
///
/// Invariant: a retransmission is sent only when the slot's balance covers it, and a balance
/// only grows by `MAX_AMPLIFICATION` times received bytes, so the retransmitted bytes sent
/// to an address never exceed `MAX_AMPLIFICATION` times the bytes received from it, and
/// while its slot lasts, no retransmission brings all response bytes to it above that.
#[derive(Debug)]
pub(crate) struct Credit {
    hasher: KeyedHasher,
    /// Allocated on first use (64 KiB), so an endpoint that never sees UDP pays nothing.
    slots: Vec<Slot>,
    /// The last address hashed and its tag: a response usually goes to where the last
    /// datagram came from, so most look-ups skip the hash.
    last: Option<(IpAddr, u64)>,
}

impl Credit {
    pub(crate) fn new(hasher: KeyedHasher) -> Credit {
        Credit {
            hasher,
            slots: Vec::new(),
            last: None,
        }
    }

    fn tag(&mut self, ip: IpAddr) -> u64 {
        if let Some((last, tag)) = self.last {
            if last == ip {
                return tag;
            }
        }
        let octets = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let tag = self.hasher.hash_one(octets) | 1;
        self.last = Some((ip, tag));
        tag
    }

    /// The slot of `ip`, if the table holds it.
    fn find(&mut self, ip: IpAddr) -> Option<&mut Slot> {
        let tag = self.tag(ip);
        self.slots
            .get_mut(tag as usize % SLOTS)
            .filter(|s| s.tag == tag)
    }

    /// `bytes` arrived from `ip`: it earns `MAX_AMPLIFICATION` response bytes per byte, up to
    /// `MAX_CREDIT`.
    pub(crate) fn received(&mut self, ip: IpAddr, bytes: usize) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); SLOTS];
        }
        let tag = self.tag(ip);
        let slot = &mut self.slots[tag as usize % SLOTS];
        if slot.tag != tag {
            *slot = Slot { tag, balance: 0 };
        }
        let earned = bytes.saturating_mul(ResponsePolicy::MAX_AMPLIFICATION);
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        slot.balance = slot
            .balance
            .saturating_add(earned)
            .min(ResponsePolicy::MAX_CREDIT as i64);
    }

    /// A response the endpoint sends whatever the credit (the first transmission, or one
    /// an input caused) is counted against it.
    pub(crate) fn charge(&mut self, ip: IpAddr, bytes: usize) {
        if let Some(slot) = self.find(ip) {
            slot.balance = slot.balance.saturating_sub(bytes as i64);
        }
    }

    /// May a retransmission of `bytes` go to `ip`? If so, it is counted.
    pub(crate) fn spend(&mut self, ip: IpAddr, bytes: usize) -> bool {
        match self.find(ip) {
            Some(slot) if slot.balance >= bytes as i64 => {
                slot.balance -= bytes as i64;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit() -> Credit {
        Credit::new(KeyedHasher::new(1, 2))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // RFC 3261 26.1.5
    #[test]
    fn rfc3261_26_1_5_a_silent_address_has_no_credit() {
        let mut c = credit();
        assert!(!c.spend(ip("192.0.2.1"), 1));
        c.received(ip("192.0.2.2"), 100);
        assert!(!c.spend(ip("192.0.2.1"), 1), "credit is per address");
        assert!(c.spend(ip("192.0.2.2"), 1));
    }

    // RFC 3261 26.1.5
    #[test]
    fn rfc3261_26_1_5_retransmissions_stay_within_the_factor_counting_first_transmissions() {
        let mut c = credit();
        let a = ip("2001:db8::1");
        c.received(a, 100);
        c.charge(a, 150);
        let room = 100 * ResponsePolicy::MAX_AMPLIFICATION - 150;
        assert!(!c.spend(a, room + 1));
        assert!(c.spend(a, room));
        assert!(!c.spend(a, 1));
        // first transmissions may overspend; the debt must be earned back first
        c.charge(a, 50);
        c.received(a, 10);
        assert!(!c.spend(a, 1));
    }

    // RFC 3261 26.1.5
    #[test]
    fn rfc3261_26_1_5_credit_is_capped() {
        let mut c = credit();
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            c.received(a, 1300);
        }
        assert!(!c.spend(a, ResponsePolicy::MAX_CREDIT + 1));
        assert!(c.spend(a, ResponsePolicy::MAX_CREDIT));
    }

    proptest::proptest! {
        // RFC 3261 26.1.5: whatever arrives and whatever is sent, the retransmitted bytes to
        // an address never exceed MAX_AMPLIFICATION times the bytes received from it.
        #[test]
        fn rfc3261_26_1_5_retransmissions_never_exceed_the_factor_of_what_was_received(
            ops in proptest::collection::vec((0u8..3, 0usize..4, 0usize..3000), 0..200),
        ) {
            let addrs = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "::ffff:192.0.2.1"].map(ip);
            let mut c = credit();
            let (mut received, mut retransmitted) = ([0usize; 4], [0usize; 4]);
            for (op, who, len) in ops {
                let a = addrs[who];
                // the IPv4-mapped form is the same address
                let k = if who == 3 { 0 } else { who };
                match op {
                    0 => {
                        c.received(a, len);
                        received[k] += len;
                    }
                    1 => c.charge(a, len),
                    _ => {
                        if c.spend(a, len) {
                            retransmitted[k] += len;
                        }
                    }
                }
            }
            for k in 0..4 {
                proptest::prop_assert!(
                    retransmitted[k] <= ResponsePolicy::MAX_AMPLIFICATION * received[k]
                );
            }
        }
    }
}
