//! A minimal UAS core (RFC 3261 sections 8.2, 12.1.1, 13.3, 9.2, 15.1.2): enough to answer
//! calls, and the seed of the later dialog layer.
//!
//! It answers OPTIONS (200 with Allow, Accept, Supported), MESSAGE (200), INVITE (100,
//! 180, then 200 with an SDP answer after the configured ring time, creating a dialog with
//! a To tag and Contact, section 12.1.1), retransmits the 2xx until the ACK arrives
//! (section 13.3.1.4), absorbs the ACK, answers BYE in a dialog with 200 and a BYE or
//! re-INVITE outside any dialog with 481 (section 12.2.2), answers CANCEL with 200 and the
//! INVITE with 487 (section 9.2), and everything else as [`validate`] says
//! (405 with Allow, 501, 420, ...).
//!
//! With a registrar configuration ([`UaConfig::registrar`]) it is also a registrar (RFC
//! 3261 section 10.3, see [`crate::registrar`]): the bindings live in the in-memory
//! [`MemoryStore`] by default, or in an external store ([`LocationMode::External`]) that
//! the driver runs: then each REGISTER that passes the checks becomes a
//! [`LocationRequest`] ([`UserAgent::poll_location`]) and is answered when the driver
//! calls [`UserAgent::complete_location`].
//!
//! With an [`Authenticator`] ([`UaConfig::auth`]) it challenges REGISTER (and with
//! [`UaConfig::auth_calls`] INVITE, MESSAGE and OPTIONS) with digest (RFC 3261 section 22),
//! and hands the authenticated user to the registrar's step 4.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::auth::{AuthKind, AuthVerdict, Authenticator};
use crate::endpoint::{Endpoint, Event, ServerTxId, TransactionUser};
use crate::location::{Binding, LocationStore, MemoryStore, StoreLimits};
use crate::registrar::{RegisterRequest, Registrar, RegistrarConfig, Reject};
use crate::rng::push_random_token;
use crate::sdp::LocalMedia;
use crate::session::SessionConfig;
use crate::validate::{self, Policy, Verdict};
use crate::{Method, OwnedMessage, ResponseBuilder, SeededRng, Source, Timers};

/// How the UAS core answers.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The Contact written in dialog-creating responses, e.g. `<sip:sipd@127.0.0.1:5060>`,
    /// unless [`SessionConfig::contact`] is set. Empty: built per dialog from the listener
    /// the call arrived on (with `;transport=tcp` over TCP), the user part
    /// [`SessionConfig::contact_user`] (section 12.1.1: the peer reaches us there).
    pub contact: String,
    /// Time between 180 Ringing and 200 OK.
    pub ring: Duration,
    /// The SDP body of the 200 to an INVITE.
    pub answer_sdp: Vec<u8>,
    /// The Server header, if any.
    pub server: Option<String>,
    /// Timer values for the 2xx retransmission (T1, T2; section 13.3.1.4).
    pub timers: Timers,
    /// Be a registrar (section 10.3) with this configuration; `None` answers REGISTER 405.
    pub registrar: Option<RegistrarConfig>,
    /// Where the registrar keeps its bindings.
    pub location: LocationMode,
    /// Digest authentication (RFC 3261 section 22): with an [`Authenticator`] (its realm,
    /// secret and users), REGISTER is challenged (401) until its credentials verify, and
    /// the user they name must be allowed for the AOR (section 10.3 steps 3 and 4).
    pub auth: Option<Authenticator>,
    /// With `auth`: challenge INVITE, MESSAGE and OPTIONS as well.
    pub auth_calls: bool,
    /// The session layer: call cap, dialog lifetime, 100rel, session timers (RFC 4028; its
    /// default asks for 1800 s with Min-SE 90). `contact`, `server` and `timers` above fill
    /// in its Contact, User-Agent and timers.
    pub session: SessionConfig,
    /// Our media (RFC 3264): each call answers offers with [`LocalMedia::answer`] on its
    /// own copy (PCMU, PCMA and telephone-event by default; 488 when nothing is common),
    /// and offers it when the INVITE had none. `None`: the fixed `answer_sdp`.
    pub media: Option<LocalMedia>,
}

/// Where the registrar's bindings live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocationMode {
    /// In this UAS core, in a [`MemoryStore`] with these limits.
    Memory(StoreLimits),
    /// In a store the driver runs (see [`UserAgent::poll_location`]).
    External {
        /// Requests handed to the store and not completed yet, at most; a REGISTER beyond
        /// gets 503 with Retry-After.
        max_outstanding: usize,
        /// A request the store has not completed after this long is answered 500 and
        /// forgotten (its late completion is ignored).
        timeout: Duration,
        /// The Retry-After of the 503 and 500 responses.
        retry_after: Duration,
    },
}

impl Default for LocationMode {
    fn default() -> LocationMode {
        LocationMode::Memory(StoreLimits::default())
    }
}

impl LocationMode {
    /// An external store with the default bounds (1024 outstanding requests, 10 s, a
    /// Retry-After of 5 s).
    pub fn external() -> LocationMode {
        LocationMode::External {
            max_outstanding: 1024,
            timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Names one request handed to an external location store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreTicket(u64);

impl StoreTicket {
    /// The number (unique within one [`UserAgent`]), for logs and maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What an external location store is asked to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LocationOp {
    /// Apply a checked REGISTER: run [`RegisterRequest::apply`] on the current bindings of
    /// its AOR, store the result atomically and complete with it (or with the rejection).
    Register(RegisterRequest),
    /// Return the unexpired bindings of `aor` (a REGISTER without Contact: a query).
    Lookup {
        /// The AOR in canonical form.
        aor: String,
    },
}

/// A request for the external location store, from [`UserAgent::poll_location`]; answer
/// it with [`UserAgent::complete_location`] and its ticket.
#[derive(Debug, Clone)]
pub struct LocationRequest {
    /// Names the request in the completion.
    pub ticket: StoreTicket,
    /// What to do.
    pub op: LocationOp,
}

impl UaConfig {
    /// A configuration with `contact`, no ring time and a fixed audio answer.
    pub fn new(contact: &str) -> UaConfig {
        UaConfig {
            contact: contact.to_owned(),
            ring: Duration::ZERO,
            answer_sdp: b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                .to_vec(),
            server: None,
            timers: Timers::RFC,
            registrar: None,
            location: LocationMode::default(),
            auth: None,
            auth_calls: false,
            session: SessionConfig::new(contact_user(contact)),
            media: None,
        }
    }
}

/// The user part of a Contact such as `<sip:sipd@127.0.0.1:5060>`, else `sipd`.
fn contact_user(contact: &str) -> &str {
    contact
        .split_once(':')
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(user, _)| user)
        .filter(|u| {
            !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b))
        })
        .unwrap_or("sipd")
}

/// Counters for the summary of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UaStats {
    /// INVITEs answered 200.
    pub calls_answered: u64,
    /// Calls ended by BYE.
    pub calls_ended: u64,
    /// INVITEs cancelled (answered 487).
    pub calls_cancelled: u64,
    /// 2xx responses retransmitted while waiting for the ACK (handed to the endpoint, which
    /// withholds those a silent untrusted source has not earned: `Stats::withheld`).
    pub ok_retransmissions: u64,
    /// Dialogs whose ACK never came (section 13.3.1.4: 64*T1).
    pub ack_timeouts: u64,
    /// MESSAGE requests answered.
    pub messages: u64,
    /// OPTIONS requests answered.
    pub options: u64,
    /// Requests refused (4xx-6xx other than 487).
    pub rejected: u64,
    /// REGISTER requests answered 200 (registrations, refreshes, removals and queries).
    pub registrations: u64,
    /// Requests answered with a digest challenge (401), stale nonces included.
    pub challenges: u64,
}

/// Something the UAS core did, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UaEvent {
    /// An INVITE was answered 200.
    CallAnswered {
        /// Its Call-ID.
        call_id: String,
    },
    /// A dialog ended with BYE.
    CallEnded {
        /// Its Call-ID.
        call_id: String,
    },
    /// A MESSAGE arrived.
    Message {
        /// The body as text (lossy).
        text: String,
    },
    /// A REGISTER was answered 200.
    Registered {
        /// The AOR, canonical form.
        aor: String,
        /// Its bindings now.
        bindings: usize,
    },
}

/// Events kept for [`UserAgent::poll_event`] at most.
pub const MAX_UA_EVENTS: usize = 1024;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE";

const POLICY: Policy<'static> = Policy {
    methods: &["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE"],
    body_types: &["application/sdp", "text/plain"],
    ..Policy::UAS
};

/// An INVITE not answered with a final response yet.
#[derive(Debug)]
struct PendingCall {
    request: OwnedMessage,
    to_tag: String,
    answer_at: Instant,
    /// Read when the INVITE was typed, so that answering need not type it again.
    call_id: String,
    remote_tag: String,
}

/// A dialog this UAS created (section 12.1.1), keyed by Call-ID and tags.
#[derive(Debug)]
struct Dialog {
    /// The 2xx being retransmitted until the ACK (section 13.3.1.4).
    unacked: Option<Unacked>,
}

#[derive(Debug)]
struct Unacked {
    tx: ServerTxId,
    response: OwnedMessage,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// The validation policy for REGISTER when the UAS core is a registrar.
const REGISTRAR_POLICY: Policy<'static> = Policy {
    role: validate::Role::Registrar,
    methods: &["REGISTER"],
    extensions: &crate::registrar::SUPPORTED,
    body_types: &[],
    ..Policy::UAS
};

/// A response to write: code, To tag, extra headers, SDP body, reason phrase.
struct Reply<'a> {
    code: u16,
    tag: Option<&'a str>,
    extra: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
    reason: Option<&'a str>,
}

/// A REGISTER waiting for the external location store.
#[derive(Debug)]
struct PendingLocation {
    tx: ServerTxId,
    register: RegisterRequest,
    deadline: Instant,
}

/// The outcome of authentication (section 22) for one request.
enum Authn {
    /// Go on; the user authenticated, if any.
    Proceed(Option<String>),
    /// The request was answered (a challenge).
    Answered,
}

fn reply<'a>(
    code: u16,
    tag: Option<&'a str>,
    extra: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
) -> Reply<'a> {
    Reply {
        code,
        tag,
        extra,
        body,
        reason: None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Answer(ServerTxId),
    Retransmit(String),
    Location(StoreTicket),
}

/// The UAS core. Run it as the [`TransactionUser`] of an [`Endpoint`].
#[derive(Debug)]
pub struct UserAgent {
    config: UaConfig,
    rng: SeededRng,
    calls: HashMap<ServerTxId, PendingCall>,
    dialogs: HashMap<String, Dialog>,
    timers: BTreeSet<(Instant, Due)>,
    events: VecDeque<UaEvent>,
    stats: UaStats,
    registrar: Option<Registrar>,
    /// Taken from the configuration: it changes (the nonce-count table).
    auth: Option<Authenticator>,
    /// The in-memory store ([`LocationMode::Memory`]).
    store: Option<MemoryStore>,
    location_queue: VecDeque<LocationRequest>,
    pending_location: HashMap<StoreTicket, PendingLocation>,
    next_ticket: u64,
}

fn dialog_key(call_id: &str, local_tag: &str, remote_tag: &str) -> String {
    let mut k = String::with_capacity(call_id.len() + local_tag.len() + remote_tag.len() + 2);
    k.push_str(call_id);
    k.push('\n');
    k.push_str(local_tag);
    k.push('\n');
    k.push_str(remote_tag);
    k
}

impl UserAgent {
    /// A UAS core; `seed` keys the [`SeededRng`] of its To tags: 32 bytes from the operating
    /// system (the drivers' `os_seed`), not the endpoint's seed, a fixed one only in tests.
    pub fn new(mut config: UaConfig, seed: [u8; 32]) -> UserAgent {
        let auth = config.auth.take();
        let registrar = config.registrar.clone().map(Registrar::new);
        let store = match (&registrar, config.location) {
            (Some(_), LocationMode::Memory(limits)) => Some(MemoryStore::new(limits)),
            _ => None,
        };
        UserAgent {
            registrar,
            auth,
            store,
            location_queue: VecDeque::new(),
            pending_location: HashMap::new(),
            next_ticket: 0,
            config,
            rng: SeededRng::new(seed),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            stats: UaStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> UaStats {
        self.stats
    }

    /// Dialogs alive (answered calls not yet ended).
    pub fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// The next thing that happened, for logs. At most [`MAX_UA_EVENTS`] wait; beyond, the
    /// oldest are dropped (peers cause these events, and a caller may never poll).
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    fn push_event(&mut self, event: UaEvent) {
        if self.events.len() >= MAX_UA_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The in-memory location store, when the registrar uses one.
    pub fn location_store(&self) -> Option<&MemoryStore> {
        self.store.as_ref()
    }

    /// Bindings in the in-memory location store (0 without one).
    pub fn bindings(&self) -> usize {
        self.store.as_ref().map_or(0, |s| s.bindings())
    }

    /// The unexpired bindings of `aor` (canonical form, see
    /// [`canonical_aor`](crate::registrar::canonical_aor)) in the in-memory store.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding> {
        self.store
            .as_ref()
            .map(|s| s.lookup(now, aor))
            .unwrap_or_default()
    }

    /// The next request for the external location store ([`LocationMode::External`]).
    pub fn poll_location(&mut self) -> Option<LocationRequest> {
        self.location_queue.pop_front()
    }

    /// Requests handed to the external store and not completed yet.
    pub fn outstanding_location(&self) -> usize {
        self.pending_location.len()
    }

    /// The external store's answer to the request `ticket`: the new (or, for a lookup, the
    /// current) bindings of the AOR, or the rejection; the UAS core sends the response. A
    /// completion for a request already answered (timed out) is ignored, and so is one
    /// whose transaction is gone.
    pub fn complete_location(
        &mut self,
        now: Instant,
        ticket: StoreTicket,
        result: Result<Vec<Binding>, Reject>,
        endpoint: &mut Endpoint,
    ) {
        let Some(p) = self.pending_location.remove(&ticket) else {
            return;
        };
        self.timers.remove(&(p.deadline, Due::Location(ticket)));
        self.answer_register(now, endpoint, p.tx, &p.register, result);
    }

    fn respond(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        reply: Reply<'_>,
    ) -> Option<OwnedMessage> {
        let Reply {
            code,
            tag,
            extra,
            body,
            reason,
        } = reply;
        let view = request.view();
        let mut b = ResponseBuilder::from_view(&view, code);
        if let Some(r) = reason {
            b = b.reason(r);
        }
        if let Some(t) = tag {
            b = b.to_tag(t);
        }
        if let Some(s) = &self.config.server {
            b = b.header("Server", s);
        }
        for (n, v) in extra {
            b = b.header(n, v);
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let resp = b.build(&mut self.rng).ok()?;
        if (400..=699).contains(&code) && code != 487 {
            self.stats.rejected += 1;
        }
        ep.send_response(now, tx, &resp).ok()?;
        Some(resp)
    }

    fn new_tag(&mut self) -> String {
        let mut t = String::with_capacity(10);
        push_random_token(&mut t, &mut self.rng, 10);
        t
    }

    fn on_request(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        source: Source,
        cancels: Option<ServerTxId>,
    ) {
        let Ok(msg) = request.message() else {
            return;
        };
        let Some(method) = msg.method() else {
            return;
        };
        let registering = method == Method::Register && self.registrar.is_some();
        let policy = if registering {
            &REGISTRAR_POLICY
        } else {
            &POLICY
        };
        match validate::request(&msg, policy) {
            Verdict::Accept => {}
            Verdict::Respond(r) => {
                let unsupported = r.unsupported.join(", ");
                let mut extra: Vec<(&str, &str)> = Vec::new();
                if r.status == 405 {
                    extra.push(("Allow", ALLOW));
                }
                if r.status == 420 {
                    extra.push(("Unsupported", &unsupported));
                }
                let tag = self.new_tag();
                self.respond(
                    now,
                    ep,
                    tx,
                    &request,
                    reply(r.status, Some(&tag), &extra, None),
                );
                return;
            }
            _ => return,
        }
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let remote_tag = msg.from().and_then(|f| f.tag()).unwrap_or("").to_owned();
        let local_tag = msg.to().and_then(|t| t.tag()).map(str::to_owned);
        drop(msg);
        if registering {
            // Section 10.3: steps 1 and 2 come before authentication (step 3).
            if let Some(Err(reject)) = self
                .registrar
                .as_ref()
                .map(|r| r.check_before_auth(&request))
            {
                self.send_reject(now, ep, tx, &request, &reject);
                return;
            }
        }
        let user = match self.authenticate(now, ep, tx, &request, method) {
            Authn::Proceed(user) => user,
            Authn::Answered => return,
        };
        if registering {
            self.on_register(now, ep, tx, request, source, user.as_deref());
            return;
        }
        match method {
            Method::Options => {
                self.stats.options += 1;
                let tag = self.new_tag();
                let extra = [
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp, text/plain"),
                    ("Supported", ""),
                ];
                self.respond(
                    now,
                    ep,
                    tx,
                    &request,
                    reply(200, Some(&tag), &extra[..2], None),
                );
            }
            Method::Message => {
                self.stats.messages += 1;
                let text = String::from_utf8_lossy(request.view().body()).into_owned();
                self.push_event(UaEvent::Message { text });
                let tag = self.new_tag();
                self.respond(now, ep, tx, &request, reply(200, Some(&tag), &[], None));
            }
            Method::Invite => match local_tag {
                // Section 12.2.2: a request inside a dialog we do not know is answered 481.
                Some(tag) => {
                    let key = dialog_key(&call_id, &tag, &remote_tag);
                    if self.dialogs.contains_key(&key) {
                        // A re-INVITE: accept with the same answer (section 14.2).
                        let contact = self.config.contact.clone();
                        let sdp = self.config.answer_sdp.clone();
                        if let Some(resp) = self.respond(
                            now,
                            ep,
                            tx,
                            &request,
                            reply(200, None, &[("Contact", &contact)], Some(&sdp)),
                        ) {
                            self.start_retransmit(now, key, tx, resp);
                        }
                    } else {
                        self.respond(now, ep, tx, &request, reply(481, None, &[], None));
                    }
                }
                None => {
                    let to_tag = self.new_tag();
                    self.respond(now, ep, tx, &request, reply(100, None, &[], None));
                    let contact = self.config.contact.clone();
                    self.respond(
                        now,
                        ep,
                        tx,
                        &request,
                        reply(180, Some(&to_tag), &[("Contact", &contact)], None),
                    );
                    let answer_at = now + self.config.ring;
                    self.calls.insert(
                        tx,
                        PendingCall {
                            request,
                            to_tag,
                            answer_at,
                            call_id: call_id.clone(),
                            remote_tag: remote_tag.clone(),
                        },
                    );
                    if self.config.ring.is_zero() {
                        self.answer(now, ep, tx);
                    } else {
                        self.timers.insert((answer_at, Due::Answer(tx)));
                    }
                }
            },
            Method::Bye => {
                let key = dialog_key(&call_id, local_tag.as_deref().unwrap_or(""), &remote_tag);
                if self.dialogs.remove(&key).is_some() {
                    self.stats.calls_ended += 1;
                    self.push_event(UaEvent::CallEnded { call_id });
                    self.respond(now, ep, tx, &request, reply(200, None, &[], None));
                } else {
                    self.respond(now, ep, tx, &request, reply(481, None, &[], None));
                }
            }
            Method::Cancel => {
                // Section 9.2: 200 to a CANCEL that matches a transaction, 481 otherwise;
                // a pending INVITE is answered 487.
                let tag = self.new_tag();
                match cancels {
                    Some(invite) => {
                        self.respond(now, ep, tx, &request, reply(200, Some(&tag), &[], None));
                        if let Some(call) = self.calls.remove(&invite) {
                            self.timers.remove(&(call.answer_at, Due::Answer(invite)));
                            self.stats.calls_cancelled += 1;
                            let to_tag = call.to_tag;
                            self.respond(
                                now,
                                ep,
                                invite,
                                &call.request,
                                reply(487, Some(&to_tag), &[], None),
                            );
                        }
                    }
                    None => {
                        self.respond(now, ep, tx, &request, reply(481, Some(&tag), &[], None));
                    }
                }
            }
            _ => {
                let tag = self.new_tag();
                self.respond(
                    now,
                    ep,
                    tx,
                    &request,
                    reply(405, Some(&tag), &[("Allow", ALLOW)], None),
                );
            }
        }
    }

    /// Sends the 200 for a ringing call and starts its 2xx retransmissions.
    fn answer(&mut self, now: Instant, ep: &mut Endpoint, tx: ServerTxId) {
        let Some(call) = self.calls.remove(&tx) else {
            return;
        };
        let contact = self.config.contact.clone();
        let sdp = self.config.answer_sdp.clone();
        let Some(resp) = self.respond(
            now,
            ep,
            tx,
            &call.request,
            reply(
                200,
                Some(&call.to_tag),
                &[("Contact", &contact)],
                Some(&sdp),
            ),
        ) else {
            return;
        };
        self.stats.calls_answered += 1;
        let PendingCall {
            call_id,
            remote_tag,
            to_tag,
            ..
        } = call;
        let key = dialog_key(&call_id, &to_tag, &remote_tag);
        self.push_event(UaEvent::CallAnswered { call_id });
        self.dialogs.insert(key.clone(), Dialog { unacked: None });
        self.start_retransmit(now, key, tx, resp);
    }

    fn start_retransmit(
        &mut self,
        now: Instant,
        key: String,
        tx: ServerTxId,
        response: OwnedMessage,
    ) {
        let t1 = self.config.timers.t1;
        let next = now + t1;
        if let Some(d) = self.dialogs.get_mut(&key) {
            if let Some(old) = d.unacked.take() {
                self.timers
                    .remove(&(old.next, Due::Retransmit(key.clone())));
            }
            d.unacked = Some(Unacked {
                tx,
                response,
                interval: t1,
                next,
                give_up: now + self.config.timers.t1x64(),
            });
            self.timers.insert((next, Due::Retransmit(key)));
        }
    }

    fn on_ack(&mut self, request: &OwnedMessage) {
        let Ok(msg) = request.message() else {
            return;
        };
        let call_id = msg.call_id().unwrap_or("");
        let local = msg.to().and_then(|t| t.tag()).unwrap_or("");
        let remote = msg.from().and_then(|f| f.tag()).unwrap_or("");
        let key = dialog_key(call_id, local, remote);
        if let Some(d) = self.dialogs.get_mut(&key) {
            if let Some(u) = d.unacked.take() {
                self.timers.remove(&(u.next, Due::Retransmit(key)));
            }
        }
    }

    fn retransmit(&mut self, now: Instant, ep: &mut Endpoint, key: String) {
        let t2 = self.config.timers.t2;
        let Some(d) = self.dialogs.get_mut(&key) else {
            return;
        };
        let Some(u) = d.unacked.as_mut() else {
            return;
        };
        if now >= u.give_up {
            // Section 13.3.1.4: no ACK after 64*T1; the session is over. (Sending the BYE
            // the RFC asks for needs the UAC half of the dialog layer.)
            self.dialogs.remove(&key);
            self.stats.ack_timeouts += 1;
            return;
        }
        let _ = ep.send_response(now, u.tx, &u.response);
        self.stats.ok_retransmissions += 1;
        u.interval = (u.interval * 2).min(t2);
        u.next = (now + u.interval).min(u.give_up);
        let next = u.next;
        self.timers.insert((next, Due::Retransmit(key)));
    }
}

/// The registrar half (RFC 3261 section 10.3) and authentication (section 22).
impl UserAgent {
    /// Section 22 / 10.3 step 3: authenticates `request` when the configuration asks for
    /// it (REGISTER to the registrar; INVITE, MESSAGE and OPTIONS with `auth_calls`),
    /// answering the challenge (401) or the 400 for malformed credentials itself.
    fn authenticate(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        method: Method<'_>,
    ) -> Authn {
        let Some(auth) = self.auth.as_mut() else {
            return Authn::Proceed(None);
        };
        let challenged = match method {
            Method::Register => self.registrar.is_some(),
            Method::Invite | Method::Message | Method::Options => self.config.auth_calls,
            _ => false,
        };
        if !challenged {
            return Authn::Proceed(None);
        }
        let verdict = auth.verify(request, AuthKind::Www, now);
        if let AuthVerdict::Authorized { user } = verdict {
            return Authn::Proceed(Some(user));
        }
        if let Ok(Some(response)) =
            auth.respond(request, AuthKind::Www, &verdict, now, &mut self.rng)
        {
            if matches!(verdict, AuthVerdict::Challenge { .. }) {
                self.stats.challenges += 1;
            } else {
                self.stats.rejected += 1;
            }
            let _ = ep.send_response(now, tx, &response);
        }
        Authn::Answered
    }

    /// A REGISTER for the registrar: steps 1 to 6 here, step 7 in the store.
    fn on_register(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        source: Source,
        user: Option<&str>,
    ) {
        let Some(registrar) = self.registrar.as_ref() else {
            return;
        };
        let register = match registrar.check(&request, user) {
            Ok(r) => r.with_source(source),
            Err(reject) => {
                self.send_reject(now, ep, tx, &request, &reject);
                return;
            }
        };
        if let Some(store) = self.store.as_mut() {
            let result = store.register(now, &register);
            self.answer_register(now, ep, tx, &register, result);
            return;
        }
        let LocationMode::External {
            max_outstanding,
            timeout,
            retry_after,
        } = self.config.location
        else {
            return;
        };
        if self.pending_location.len() >= max_outstanding {
            let reject = Reject::unavailable("Location Store Busy", retry_after);
            self.send_reject(now, ep, tx, &request, &reject);
            return;
        }
        let ticket = StoreTicket(self.next_ticket);
        self.next_ticket += 1;
        let op = if register.is_query() {
            LocationOp::Lookup {
                aor: register.aor().to_owned(),
            }
        } else {
            LocationOp::Register(register.clone())
        };
        let deadline = now + timeout;
        self.pending_location.insert(
            ticket,
            PendingLocation {
                tx,
                register,
                deadline,
            },
        );
        self.timers.insert((deadline, Due::Location(ticket)));
        self.location_queue
            .push_back(LocationRequest { ticket, op });
    }

    /// Step 8: the 200 listing the bindings, or the rejection.
    fn answer_register(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        register: &RegisterRequest,
        result: Result<Vec<Binding>, Reject>,
    ) {
        match result {
            Ok(bindings) => {
                let headers = register.ok_headers(&bindings, now);
                let extra: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let tag = self.new_tag();
                if self
                    .respond(
                        now,
                        ep,
                        tx,
                        register.request(),
                        reply(200, Some(&tag), &extra, None),
                    )
                    .is_some()
                {
                    self.stats.registrations += 1;
                    self.push_event(UaEvent::Registered {
                        aor: register.aor().to_owned(),
                        bindings: bindings.len(),
                    });
                }
            }
            Err(reject) => self.send_reject(now, ep, tx, register.request(), &reject),
        }
    }

    fn send_reject(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        reject: &Reject,
    ) {
        let headers = reject.headers();
        let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let tag = self.new_tag();
        let r = Reply {
            reason: Some(&reject.reason),
            ..reply(reject.status, Some(&tag), &extra, None)
        };
        self.respond(now, ep, tx, request, r);
    }

    /// The external store did not answer in time: 500 with Retry-After, and the ticket is
    /// forgotten (section 10.3 step 7: a failed store update fails the request).
    fn location_timeout(&mut self, now: Instant, ep: &mut Endpoint, ticket: StoreTicket) {
        let Some(p) = self.pending_location.remove(&ticket) else {
            return;
        };
        let retry_after = match self.config.location {
            LocationMode::External { retry_after, .. } => retry_after,
            LocationMode::Memory(_) => Duration::ZERO,
        };
        let reject = Reject {
            retry_after: Some(u32::try_from(retry_after.as_secs()).unwrap_or(u32::MAX)),
            ..Reject::server_error("Location Store Timeout")
        };
        self.send_reject(now, ep, p.tx, p.register.request(), &reject);
    }
}

impl TransactionUser for UserAgent {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        match event {
            Event::Request {
                tx,
                request,
                source,
                cancels,
            } => self.on_request(now, endpoint, tx, request, source, cancels),
            Event::Ack { request, .. } => self.on_ack(&request),
            Event::Timeout {
                tx: crate::TxId::Server(tx),
                ..
            }
            | Event::TransportError {
                tx: crate::TxId::Server(tx),
            } => {
                if let Some(call) = self.calls.remove(&tx) {
                    self.timers.remove(&(call.answer_at, Due::Answer(tx)));
                }
            }
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.first().map(|(t, _)| *t);
        let store = self.store.as_ref().and_then(|s| s.poll_timeout());
        match (ours, store) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        if let Some(store) = self.store.as_mut() {
            store.expire(now);
        }
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, due)) = self.timers.pop_first() else {
                break;
            };
            match due {
                Due::Answer(tx) => self.answer(now, endpoint, tx),
                Due::Retransmit(key) => self.retransmit(now, endpoint, key),
                Due::Location(ticket) => self.location_timeout(now, endpoint, ticket),
            }
        }
    }
}
