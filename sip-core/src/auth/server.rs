//! The server side of digest authentication (RFC 3261 sections 22.1 to 22.4, RFC 7616,
//! RFC 8760): challenges and the check of credentials, for a registrar, a user agent
//! server (401) or a proxy (407).
//!
//! Nonces need no table: a nonce is its issue time, a random salt and a keyed MAC
//! (HMAC-SHA-256 with the configured secret) over both and the realm, so any server with
//! the same secret and realm checks a nonce another one made, and an expired nonce is told
//! from a forged one. Nonce-counts are remembered (for replay detection, RFC 7616 section
//! 3.4) in a bounded table, per server.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::client::request_uri;
use super::digest::{self, Algorithm, Challenge, Credentials, Hex, Qop, QopOptions, ResponseInput};
use super::AuthKind;
use crate::{BuildError, HeaderValue, Message, OwnedMessage, ResponseBuilder, Rng};

/// What an [`Authenticator`] offers and accepts.
#[derive(Clone)]
pub struct AuthConfig {
    /// The protection space (RFC 3261 section 22.1: a registrar uses its domain).
    pub realm: String,
    /// The key of the nonce MAC. Every server that must accept the others' nonces (several
    /// registrars behind one name) is given the same secret; draw it from the operating
    /// system's generator.
    pub secret: [u8; 32],
    /// The algorithms offered, one challenge each, most preferred first (RFC 8760 section
    /// 2.4, RFC 7616 section 3.7); only these are accepted. Default: SHA-256, SHA-512-256,
    /// MD5 (MD5 last, for the clients that know nothing else).
    pub algorithms: Vec<Algorithm>,
    /// The qop values offered; only these are accepted. Empty: challenges without qop,
    /// answered in the RFC 2069 form (RFC 3261 section 22.4), each nonce then good for one
    /// request. Default: `auth` and `auth-int`.
    pub qop: Vec<Qop>,
    /// How long a nonce is accepted after it was issued; an older one is answered with a
    /// new challenge saying `stale=true`. Default: 300 s.
    pub nonce_lifetime: Duration,
    /// Ask for the hashed username (RFC 7616 section 3.4.4). Default: false. Credentials
    /// with a hashed username are accepted either way.
    pub userhash: bool,
    /// How many nonces the nonce-count table remembers; the oldest is forgotten past this,
    /// and a forgotten nonce is answered stale, never accepted twice. Default: 10,000.
    pub max_nonce_counts: usize,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the secret
        f.debug_struct("AuthConfig")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("qop", &self.qop)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("userhash", &self.userhash)
            .field("max_nonce_counts", &self.max_nonce_counts)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// The defaults for a realm and secret (see each field).
    pub fn new(realm: &str, secret: [u8; 32]) -> AuthConfig {
        AuthConfig {
            realm: realm.to_owned(),
            secret,
            algorithms: vec![Algorithm::Sha256, Algorithm::Sha512_256, Algorithm::Md5],
            qop: vec![Qop::Auth, Qop::AuthInt],
            nonce_lifetime: Duration::from_secs(300),
            userhash: false,
            max_nonce_counts: 10_000,
        }
    }
}

/// What [`Authenticator::verify`] decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthVerdict {
    /// Valid credentials of this user for a fresh nonce and a nonce-count not seen before.
    Authorized {
        /// The user (its name, also when the credentials carried the userhash).
        user: String,
    },
    /// Answer with a challenge ([`Authenticator::challenge`]), 401 or 407:
    ///
    /// - `stale: false`: no credentials for this realm (another realm's do not count, RFC
    ///   3261 sections 22.1 and 22.3), a nonce this server did not make, an algorithm or
    ///   qop it did not offer, an unknown user or a wrong password (RFC 3261 section 22.2:
    ///   credentials not accepted are challenged again; the two are not told apart, so
    ///   that the answers do not reveal which users exist);
    /// - `stale: true`: a valid response for an expired nonce, a nonce-count already seen
    ///   (a replay, RFC 7616 section 3.4: the server rejects it), or a nonce forgotten by
    ///   the bounded nonce-count table (RFC 7616 section 3.3: stale only when the digest
    ///   was valid, so the client retries without asking the user again).
    Challenge {
        /// Say `stale=true` in the challenge.
        stale: bool,
    },
    /// Answer 400 (Bad Request): the credentials for this realm break the grammar or miss
    /// a required directive, or their `uri` is not the Request-URI (RFC 7616 section 3.4,
    /// RFC 2617 sections 3.2.2 and 3.2.2.5).
    BadRequest {
        /// What is wrong (for the reason phrase or a log).
        reason: String,
    },
}

/// What [`Authenticator::nonce_status`] finds a nonce to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceStatus {
    /// Made by this realm and secret, within its lifetime.
    Fresh,
    /// Made by this realm and secret, older than its lifetime (or issued implausibly far
    /// in the future).
    Expired,
    /// Not made by this realm and secret.
    Unknown,
}

/// The HA1 values of one user, per hash function ([`Algorithm::base`]).
#[derive(Debug, Clone, Default)]
struct User {
    ha1: [Option<Hex>; 3],
}

fn slot(algorithm: Algorithm) -> usize {
    match algorithm.base() {
        Algorithm::Md5 => 0,
        Algorithm::Sha256 => 1,
        _ => 2,
    }
}

/// Nonce lengths: 16 hexadecimal digits of issue time, 16 of salt, 32 of MAC.
const NONCE_LEN: usize = 64;
const MAC_LEN: usize = 16;

/// A nonce this server made, read back.
struct Nonce {
    /// Seconds since the Unix epoch when it was issued.
    issued: u64,
    /// The MAC: unpredictable without the secret, so it keys the nonce-count table.
    mac: [u8; MAC_LEN],
}

/// The highest nonce-count seen per nonce, bounded: past `max`, the oldest nonce is
/// forgotten and every nonce issued up to its time is refused from then on (`floor`).
#[derive(Debug, Clone, Default)]
struct NonceCounts {
    seen: BTreeMap<[u8; MAC_LEN], u32>,
    order: VecDeque<([u8; MAC_LEN], u64)>,
    floor: Option<u64>,
}

/// How the nonce-count table judged a nonce-count.
enum Count {
    Fresh,
    Replayed,
}

impl NonceCounts {
    fn check_and_record(&mut self, nonce: &Nonce, nc: u32, max: usize) -> Count {
        if let Some(last) = self.seen.get_mut(&nonce.mac) {
            if nc <= *last {
                return Count::Replayed;
            }
            *last = nc;
            return Count::Fresh;
        }
        if nc == 0 || self.floor.is_some_and(|f| nonce.issued <= f) {
            // a nonce-count starts at 1; a nonce older than one forgotten may have been
            // seen and forgotten too
            return Count::Replayed;
        }
        while self.order.len() >= max.max(1) {
            let Some((mac, issued)) = self.order.pop_front() else {
                break;
            };
            self.seen.remove(&mac);
            self.floor = Some(self.floor.map_or(issued, |f| f.max(issued)));
        }
        if max == 0 {
            // nothing remembered: the nonce is good once
            self.floor = Some(self.floor.map_or(nonce.issued, |f| f.max(nonce.issued)));
            return Count::Fresh;
        }
        self.seen.insert(nonce.mac, nc);
        self.order.push_back((nonce.mac, nonce.issued));
        Count::Fresh
    }
}

/// Checks digest credentials and writes challenges (RFC 3261 section 22, RFC 7616,
/// RFC 8760). Sans-IO: the caller passes the time.
///
/// ```
/// use sip_core::auth::{AuthConfig, AuthKind, AuthVerdict, Authenticator, DigestClient};
/// use sip_core::{OwnedMessage, SeededRng};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// // the secret comes from the operating system's generator in real use
/// let mut server = Authenticator::new(AuthConfig::new("example.com", [7; 32]), now, 1_700_000_000);
/// server.add_user("alice", "secret");
/// let mut rng = SeededRng::new([1; 32]); // seed from the OS in real use
/// let register = OwnedMessage::parse(
///     b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
///       From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
///       Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
/// )?;
/// let verdict = server.verify(&register, AuthKind::Www, now);
/// assert_eq!(verdict, AuthVerdict::Challenge { stale: false });
/// let challenge = server.challenge(&register, AuthKind::Www, false, now, &mut rng)?;
/// assert_eq!(challenge.status(), Some(401));
///
/// let mut client = DigestClient::new("alice", "secret");
/// let again = client.retry(&register, &challenge, &mut rng)?;
/// let verdict = server.verify(&again, AuthKind::Www, now);
/// assert_eq!(verdict, AuthVerdict::Authorized { user: "alice".into() });
/// // the same credentials again are a replay
/// let verdict = server.verify(&again, AuthKind::Www, now);
/// assert_eq!(verdict, AuthVerdict::Challenge { stale: true });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Authenticator {
    config: AuthConfig,
    /// The nonce MAC keyed once (each use clones the keyed state).
    mac: Hmac<Sha256>,
    anchor: Instant,
    anchor_unix: u64,
    users: BTreeMap<String, User>,
    /// Userhash to user name, per hash function (RFC 7616 section 3.4.4).
    userhashes: [BTreeMap<Hex, String>; 3],
    counts: NonceCounts,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("users", &self.users.len())
            .field("nonce_counts", &self.counts.seen.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// A server for `config`. `now` and `unix_now` (seconds since the Unix epoch) are the
    /// same moment: they anchor the sans-IO [`Instant`]s to wall-clock time, so that a
    /// nonce made by one server is checked by another with the same secret.
    pub fn new(config: AuthConfig, now: Instant, unix_now: u64) -> Authenticator {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&config.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        Authenticator {
            config,
            mac,
            anchor: now,
            anchor_unix: unix_now,
            users: BTreeMap::new(),
            userhashes: Default::default(),
            counts: NonceCounts::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Adds (or replaces) a user with a password. Only the HA1 of each hash function is
    /// kept, not the password.
    pub fn add_user(&mut self, name: &str, password: &str) {
        for a in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256] {
            let ha1 = digest::ha1(a, name, &self.config.realm, password);
            self.store(name, a, ha1);
        }
    }

    /// Adds a precomputed `H(name ":" realm ":" password)` for the hash function of
    /// `realm_algorithm` (the `-sess` suffix is ignored). Returns false, storing nothing,
    /// when `ha1_hex` is not a digest of that function in hexadecimal.
    pub fn add_ha1(&mut self, name: &str, realm_algorithm: Algorithm, ha1_hex: &str) -> bool {
        let a = realm_algorithm.base();
        if ha1_hex.len() != a.hex_len() || !ha1_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let Some(ha1) = Hex::from_hex(ha1_hex) else {
            return false;
        };
        self.store(name, a, ha1);
        true
    }

    fn store(&mut self, name: &str, a: Algorithm, ha1: Hex) {
        self.users.entry(name.to_owned()).or_default().ha1[slot(a)] = Some(ha1);
        let hashed = digest::userhash(a, name, &self.config.realm);
        self.userhashes[slot(a)].insert(hashed, name.to_owned());
    }

    /// Removes a user; returns whether there was one.
    pub fn remove_user(&mut self, name: &str) -> bool {
        for table in &mut self.userhashes {
            table.retain(|_, n| n != name);
        }
        self.users.remove(name).is_some()
    }

    /// The wall-clock second of `now`.
    fn unix(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.anchor) {
            Some(d) => self.anchor_unix.saturating_add(d.as_secs()),
            None => self
                .anchor_unix
                .saturating_sub(self.anchor.duration_since(now).as_secs()),
        }
    }

    /// The first `MAC_LEN` bytes of HMAC-SHA-256(secret, issued || salt || realm).
    fn nonce_mac(&self, issued: u64, salt: u64) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(b"sip-core digest nonce\0");
        m.update(&issued.to_be_bytes());
        m.update(&salt.to_be_bytes());
        m.update(self.config.realm.as_bytes());
        m
    }

    /// A new nonce: issue time, salt (two clients challenged in the same second get
    /// different nonces, so their nonce-counts do not collide), MAC.
    fn make_nonce(&self, now: Instant, rng: &mut dyn Rng) -> String {
        let issued = self.unix(now);
        let salt = rng.next_u64();
        let tag = self.nonce_mac(issued, salt).finalize().into_bytes();
        let mut s = String::with_capacity(NONCE_LEN);
        for b in issued
            .to_be_bytes()
            .iter()
            .chain(&salt.to_be_bytes())
            .chain(&tag[..MAC_LEN])
        {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    /// The nonce read back and its MAC checked (in constant time); `None` for a nonce
    /// this realm and secret did not make.
    fn check_nonce(&self, nonce: &str) -> Option<Nonce> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        // lower-case hexadecimal only, as written by `make_nonce`
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; NONCE_LEN / 2];
        for (b, pair) in bytes.iter_mut().zip(nonce.as_bytes().chunks_exact(2)) {
            *b = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        let issued = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let salt = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
        let mac: [u8; MAC_LEN] = bytes[16..].try_into().ok()?;
        self.nonce_mac(issued, salt)
            .verify_truncated_left(&mac)
            .ok()?;
        Some(Nonce { issued, mac })
    }

    /// The status of a nonce at `now`: its MAC checked (in constant time) and its age (the
    /// nonce-count table is not consulted).
    pub fn nonce_status(&self, nonce: &str, now: Instant) -> NonceStatus {
        match self.check_nonce(nonce) {
            None => NonceStatus::Unknown,
            Some(n) if self.expired(&n, now) => NonceStatus::Expired,
            Some(_) => NonceStatus::Fresh,
        }
    }

    fn expired(&self, nonce: &Nonce, now: Instant) -> bool {
        let unix_now = self.unix(now);
        let lifetime = self.config.nonce_lifetime.as_secs();
        nonce.issued.saturating_add(lifetime) < unix_now
            || nonce.issued > unix_now.saturating_add(lifetime)
    }

    /// Checks the credentials of `request` (Authorization for [`AuthKind::Www`],
    /// Proxy-Authorization for [`AuthKind::Proxy`]) at `now`; see [`AuthVerdict`] for
    /// each outcome. Only the credentials for this realm are looked at. A successful
    /// check records the nonce-count, so the same credentials are not accepted twice.
    pub fn verify(&mut self, request: &OwnedMessage, kind: AuthKind, now: Instant) -> AuthVerdict {
        match request.message() {
            Ok(msg) => self.verify_message(&msg, kind, now),
            Err(_) => AuthVerdict::BadRequest {
                reason: "the request does not parse".into(),
            },
        }
    }

    /// [`verify`](Authenticator::verify) of a request already typed (a UAS core or registrar
    /// that parsed it anyway saves the second parse, about a third of the cost).
    pub fn verify_message(
        &mut self,
        msg: &Message<'_>,
        kind: AuthKind,
        now: Instant,
    ) -> AuthVerdict {
        let challenge = AuthVerdict::Challenge { stale: false };
        let bad = |reason: String| AuthVerdict::BadRequest { reason };
        let Some(method) = msg.method() else {
            return bad("not a request".into());
        };
        // the credentials of this realm (RFC 3261 section 22.3: a proxy looks for its own)
        let mut mine = None;
        for v in msg.values(kind.credentials_header()) {
            let HeaderValue::Auth(a) = v else { continue };
            if digest::realm_of(&a).is_some_and(|r| r == self.config.realm) {
                mine = Some(a);
                break;
            }
        }
        let Some(auth) = mine else {
            return challenge;
        };
        let c = match Credentials::parse(&auth) {
            Ok(c) => c,
            Err(e) => return bad(e.to_string()),
        };
        let uri = request_uri(msg);
        if c.uri != uri && !c.uri.eq_ignore_ascii_case(uri) {
            // RFC 2617 section 3.2.2.5: the digest-uri must be the Request-URI
            return bad("uri directive is not the Request-URI".into());
        }
        let Some(algorithm) = c.algorithm.filter(|a| self.config.algorithms.contains(a)) else {
            return challenge;
        };
        let offered = QopOptions {
            auth: self.config.qop.contains(&Qop::Auth),
            auth_int: self.config.qop.contains(&Qop::AuthInt),
        };
        match c.qop {
            Some(q) if offered.offers(q) => {}
            None if self.config.qop.is_empty() => {}
            // RFC 7616 section 3.4: the client answers with one of the offered qop values
            _ => return bad("qop directive not offered".into()),
        }
        let Some(nonce) = self.check_nonce(&c.nonce) else {
            return challenge;
        };
        let user = if c.userhash {
            Hex::from_hex(&c.username)
                .and_then(|h| self.userhashes[slot(algorithm)].get(&h))
                .map(String::as_str)
        } else {
            Some(c.username.as_ref())
        };
        let ha1 = user
            .and_then(|u| self.users.get(u))
            .and_then(|u| u.ha1[slot(algorithm)]);
        // an unknown user costs the same digest as a known one
        const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";
        let zero = ZERO.get(..algorithm.hex_len()).unwrap_or(ZERO);
        let expected = digest::response(
            algorithm,
            ha1.as_ref().map_or(zero, |h| h.as_str()),
            &ResponseInput {
                nonce: &c.nonce,
                nc: c.nc.unwrap_or(0),
                cnonce: c.cnonce.as_deref().unwrap_or(""),
                qop: c.qop,
                method: method.as_str(),
                uri: &c.uri,
                body: msg.body(),
            },
        );
        let mut given = [0u8; 64];
        let n = c.response.len().min(64);
        given[..n].copy_from_slice(&c.response.as_bytes()[..n]);
        given[..n].make_ascii_lowercase();
        let equal = c.response.len() == expected.as_bytes().len()
            && bool::from(given[..n].ct_eq(expected.as_bytes()));
        let (Some(user), true, true) = (user, ha1.is_some(), equal) else {
            return challenge;
        };
        let user = user.to_owned();
        if self.expired(&nonce, now) {
            return AuthVerdict::Challenge { stale: true };
        }
        // without qop there is no nonce-count: the nonce is good for one request
        match self
            .counts
            .check_and_record(&nonce, c.nc.unwrap_or(1), self.config.max_nonce_counts)
        {
            Count::Fresh => AuthVerdict::Authorized { user },
            Count::Replayed => AuthVerdict::Challenge { stale: true },
        }
    }

    /// The 401 (for [`AuthKind::Www`]) or 407 (for [`AuthKind::Proxy`]) answering
    /// `request`: one WWW-Authenticate or Proxy-Authenticate per configured algorithm in
    /// the configured order of preference (RFC 8760 section 2.4, RFC 7616 section 3.7),
    /// all with one new nonce; a To tag is added when the request had none.
    pub fn challenge(
        &self,
        request: &OwnedMessage,
        kind: AuthKind,
        stale: bool,
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Result<OwnedMessage, BuildError> {
        let nonce = self.make_nonce(now, rng);
        let qop = (!self.config.qop.is_empty()).then(|| QopOptions {
            auth: self.config.qop.contains(&Qop::Auth),
            auth_int: self.config.qop.contains(&Qop::AuthInt),
        });
        let values: Vec<String> = self
            .config
            .algorithms
            .iter()
            .map(|&a| {
                Challenge {
                    realm: self.config.realm.as_str().into(),
                    nonce: nonce.as_str().into(),
                    opaque: None,
                    algorithm: Some(a),
                    qop,
                    stale,
                    userhash: self.config.userhash,
                }
                .to_string()
            })
            .collect();
        let view = request.view();
        let name = kind.challenge_header().as_str();
        let mut b = ResponseBuilder::from_view(&view, kind.status());
        for v in &values {
            b = b.header(name, v);
        }
        b.build(rng)
    }

    /// The response a verdict asks for: `None` for [`AuthVerdict::Authorized`], the
    /// challenge for [`AuthVerdict::Challenge`], a 400 for [`AuthVerdict::BadRequest`].
    pub fn respond(
        &self,
        request: &OwnedMessage,
        kind: AuthKind,
        verdict: &AuthVerdict,
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Result<Option<OwnedMessage>, BuildError> {
        match verdict {
            AuthVerdict::Challenge { stale } => {
                self.challenge(request, kind, *stale, now, rng).map(Some)
            }
            AuthVerdict::BadRequest { .. } => {
                let view = request.view();
                let bad = ResponseBuilder::from_view(&view, 400).build(rng)?;
                Ok(Some(bad))
            }
            _ => Ok(None),
        }
    }
}
