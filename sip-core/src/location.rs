//! The location service (RFC 3261 section 10.3): the bindings a registrar keeps, from an
//! address-of-record to the contact addresses registered for it, and a bounded in-memory
//! store of them.
//!
//! A [`Binding`] is fully owned and every field is public, so that a store outside this
//! crate (a database, Redis) can write and read it. The rules that decide what a REGISTER
//! does to the bindings of an AOR live in [`RegisterRequest::apply`], a pure function any
//! store can run (inside a transaction, for a shared one); [`LocationStore`] is the
//! synchronous interface the UAS core uses by default, and [`MemoryStore`] its in-memory
//! implementation.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::registrar::{RegisterRequest, Reject};
use crate::Source;

/// One binding of an address-of-record to a contact address (RFC 3261 section 10.3 step
/// 7, with the Path of RFC 3327 and the instance and registration ids of RFC 5626).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record in canonical form (section 10.3 step 5), e.g.
    /// `sip:alice@example.com`.
    pub aor: String,
    /// The Contact URI as registered (without the header parameters).
    pub contact: String,
    /// When the binding expires.
    pub expires_at: Instant,
    /// The `q` parameter in thousandths (`q=0.7` is 700), if given.
    pub q: Option<u16>,
    /// The Call-ID of the REGISTER that made or last refreshed it (section 10.3 step 7).
    pub call_id: String,
    /// The CSeq number of that REGISTER.
    pub cseq: u32,
    /// The Path header values of that REGISTER, in order (RFC 3327 section 5.3).
    pub path: Vec<String>,
    /// The `+sip.instance` Contact parameter as written, quotes included (RFC 5626
    /// section 6).
    pub instance: Option<String>,
    /// The `reg-id` Contact parameter (RFC 5626 section 6), kept only with an instance.
    pub reg_id: Option<u32>,
    /// Where the REGISTER came from (transport, addresses, flow), when known: what an
    /// outbound-aware proxy uses to reach the contact. A store shared between processes
    /// keeps the transport and addresses; the flow names a connection of this process
    /// only.
    pub source: Option<Source>,
}

impl Binding {
    /// Seconds left before the binding expires at `now`, rounded up (0 when expired).
    pub fn remaining(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Is it expired at `now`?
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }

    /// The bytes it holds, approximately: its fixed part and the lengths of its strings
    /// (what a store's byte budget counts).
    pub fn cost(&self) -> usize {
        std::mem::size_of::<Binding>()
            + self.aor.len()
            + self.contact.len()
            + self.call_id.len()
            + self.path.iter().map(|p| p.len() + 24).sum::<usize>()
            + self.instance.as_ref().map_or(0, String::len)
    }
}

fn cost(bindings: &[Binding]) -> usize {
    bindings.iter().map(Binding::cost).sum()
}

/// A location store the UAS core can call synchronously: the in-memory default
/// ([`MemoryStore`]) or any store that answers at once. A store that must wait (a network
/// database) plugs in through the UAS core's external mode instead
/// ([`UserAgent::poll_location`](crate::ua::UserAgent::poll_location)).
pub trait LocationStore {
    /// Applies a checked REGISTER to the bindings of its AOR at `now`, atomically (all
    /// changes or none, section 10.3 step 7): the new full set of unexpired bindings, or the
    /// rejection to answer with.
    fn register(&mut self, now: Instant, request: &RegisterRequest)
        -> Result<Vec<Binding>, Reject>;

    /// The unexpired bindings of `aor` (canonical form) at `now`.
    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding>;

    /// Drops every binding expired at `now`.
    fn expire(&mut self, now: Instant);

    /// When the next binding expires, if any.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The number of bindings held (expired ones not yet dropped included).
    fn bindings(&self) -> usize;

    /// The number of addresses-of-record with at least one binding.
    fn aors(&self) -> usize;
}

/// Limits of a [`MemoryStore`]: what many peers together can make it hold. The number of
/// bindings per AOR is the registrar's limit
/// ([`RegistrarConfig::max_bindings_per_aor`](crate::registrar::RegistrarConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Addresses-of-record held at most; a REGISTER for a new one beyond gets 503.
    pub max_aors: usize,
    /// Bindings held at most, over all AORs; a REGISTER that would add beyond gets 503.
    pub max_bindings: usize,
    /// Bytes held at most for the bindings (their strings and fixed part, as
    /// [`Binding::cost`] counts them): long Call-IDs, Contacts and Paths cannot make the
    /// count limits worth more memory than this. Beyond: 503.
    pub max_bytes: usize,
    /// The Retry-After of those 503 responses.
    pub retry_after: Duration,
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits {
            max_aors: 100_000,
            max_bindings: 200_000,
            max_bytes: 128 << 20,
            retry_after: Duration::from_secs(60),
        }
    }
}

/// The in-memory location store: bindings by AOR, an index of expiry times so that a
/// binding is dropped when it expires, and hard limits ([`StoreLimits`]).
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: StoreLimits,
    by_aor: HashMap<String, Vec<Binding>>,
    /// The earliest expiry of each AOR's bindings.
    expiry: BTreeSet<(Instant, String)>,
    count: usize,
    bytes: usize,
}

fn earliest(bindings: &[Binding]) -> Option<Instant> {
    bindings.iter().map(|b| b.expires_at).min()
}

impl MemoryStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> MemoryStore {
        MemoryStore {
            limits,
            ..MemoryStore::default()
        }
    }

    /// The limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Replaces the bindings of `aor` (none removes it), keeping the index and count.
    fn put(&mut self, aor: &str, bindings: Vec<Binding>) {
        if let Some(old) = self.by_aor.remove(aor) {
            self.count -= old.len();
            self.bytes -= cost(&old);
            if let Some(t) = earliest(&old) {
                self.expiry.remove(&(t, aor.to_owned()));
            }
        }
        if let Some(t) = earliest(&bindings) {
            self.count += bindings.len();
            self.bytes += cost(&bindings);
            self.expiry.insert((t, aor.to_owned()));
            self.by_aor.insert(aor.to_owned(), bindings);
        }
    }

    /// The bytes the bindings hold, as [`Binding::cost`] counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl LocationStore for MemoryStore {
    fn register(
        &mut self,
        now: Instant,
        request: &RegisterRequest,
    ) -> Result<Vec<Binding>, Reject> {
        let aor = request.aor();
        let current: &[Binding] = self.by_aor.get(aor).map_or(&[], Vec::as_slice);
        let held = current.len();
        let held_bytes = cost(current);
        let new = request.apply(current, now)?;
        let unavailable = || Reject::unavailable("Location Store Full", self.limits.retry_after);
        if !request.is_query() {
            if held == 0 && !new.is_empty() && self.by_aor.len() >= self.limits.max_aors {
                return Err(unavailable());
            }
            if new.len() > held && self.count - held + new.len() > self.limits.max_bindings {
                return Err(unavailable());
            }
            let new_bytes = cost(&new);
            if new_bytes > held_bytes && self.bytes - held_bytes + new_bytes > self.limits.max_bytes
            {
                return Err(unavailable());
            }
            self.put(aor, new.clone());
        }
        Ok(new)
    }

    fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding> {
        self.by_aor
            .get(aor)
            .map(|v| v.iter().filter(|b| !b.is_expired(now)).cloned().collect())
            .unwrap_or_default()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.expiry.first() {
            if *t > now {
                break;
            }
            let Some((_, aor)) = self.expiry.pop_first() else {
                break;
            };
            let Some(mut bindings) = self.by_aor.remove(&aor) else {
                continue;
            };
            self.count -= bindings.len();
            self.bytes -= cost(&bindings);
            bindings.retain(|b| !b.is_expired(now));
            if let Some(t) = earliest(&bindings) {
                self.count += bindings.len();
                self.bytes += cost(&bindings);
                self.expiry.insert((t, aor.clone()));
                self.by_aor.insert(aor, bindings);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    fn bindings(&self) -> usize {
        self.count
    }

    fn aors(&self) -> usize {
        self.by_aor.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::{Registrar, RegistrarConfig};
    use crate::OwnedMessage;

    fn register(aor_user: &str, contact: &str, cseq: u32) -> RegisterRequest {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:{aor_user}@example.com>;tag=1\r\nTo: <sip:{aor_user}@example.com>\r\n\
             Call-ID: c1\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n\
             Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        let req = OwnedMessage::parse(text.as_bytes()).unwrap();
        Registrar::new(RegistrarConfig::default())
            .check(&req, None)
            .unwrap()
    }

    // Security (no state a peer can grow without bound): the total of bindings is capped.
    #[test]
    fn the_total_number_of_bindings_is_bounded() {
        let mut store = MemoryStore::new(StoreLimits {
            max_aors: 100,
            max_bindings: 3,
            retry_after: Duration::from_secs(7),
            ..StoreLimits::default()
        });
        let now = Instant::now();
        for i in 0..3 {
            let c = format!("<sip:a@10.0.0.{i}>");
            store
                .register(now, &register(&format!("u{i}"), &c, 1))
                .unwrap();
        }
        let full = store
            .register(now, &register("u9", "<sip:a@10.0.0.9>", 1))
            .unwrap_err();
        assert_eq!((full.status, full.retry_after), (503, Some(7)));
        assert_eq!(store.bindings(), 3);
        // removing frees room
        store
            .register(now, &register("u0", "<sip:a@10.0.0.0>;expires=0", 2))
            .unwrap();
        assert_eq!(store.bindings(), 2);
        store
            .register(now, &register("u9", "<sip:a@10.0.0.9>", 1))
            .unwrap();
    }

    // Security: long strings cannot make the bounded count of bindings worth unbounded
    // memory: the store's bytes are capped too, and freed with the bindings.
    #[test]
    fn the_bytes_held_are_bounded() {
        let one = register("u0", "<sip:a@10.0.0.1>", 1);
        let cost = one.apply(&[], Instant::now()).unwrap()[0].cost();
        let mut store = MemoryStore::new(StoreLimits {
            max_bytes: cost * 2 + cost / 2,
            ..StoreLimits::default()
        });
        let now = Instant::now();
        store.register(now, &one).unwrap();
        store
            .register(now, &register("u1", "<sip:a@10.0.0.1>", 1))
            .unwrap();
        let long = format!("<sip:{}@10.0.0.1>", "x".repeat(cost));
        let full = store.register(now, &register("u2", &long, 1)).unwrap_err();
        assert_eq!(full.status, 503);
        assert_eq!(store.bytes(), cost * 2);
        store.expire(now + Duration::from_secs(3600));
        assert_eq!(store.bytes(), 0);
    }

    // RFC 3261 section 10.2.1: a binding lasts its expiry; the store's timer says when.
    #[test]
    fn expiry_drops_bindings_at_their_time_and_keeps_the_rest() {
        let mut store = MemoryStore::default();
        let now = Instant::now();
        store
            .register(now, &register("a", "<sip:a@h1>;expires=60", 1))
            .unwrap();
        store
            .register(now, &register("a", "<sip:a@h2>;expires=120", 2))
            .unwrap();
        assert_eq!(store.poll_timeout(), Some(now + Duration::from_secs(60)));
        store.expire(now + Duration::from_secs(60));
        assert_eq!(store.bindings(), 1);
        assert_eq!(store.poll_timeout(), Some(now + Duration::from_secs(120)));
        assert_eq!(
            store.lookup(now, "sip:a@example.com")[0].contact,
            "sip:a@h2"
        );
        store.expire(now + Duration::from_secs(120));
        assert_eq!(
            (store.bindings(), store.aors(), store.poll_timeout()),
            (0, 0, None)
        );
    }
}
