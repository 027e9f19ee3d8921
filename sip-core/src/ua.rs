//! The UAS core of `sipd` (RFC 3261 sections 8.2, 10.3, 11, 12 to 15): it answers calls
//! through the session layer ([`crate::session::Sessions`]) and is the application of the
//! calls it receives.
//!
//! It answers OPTIONS (200 with Allow, Accept, Supported) and MESSAGE (200) itself, and
//! hands INVITE, ACK, CANCEL, BYE, PRACK, UPDATE and every request inside a dialog to the
//! session layer, which keeps the dialogs (route set from Record-Route, Contact per
//! transport, section 12.1.1), retransmits the 2xx until the ACK and sends BYE when none
//! comes (section 13.3.1.4), answers CANCEL (section 9.2), BYE (section 15.1.2), requests
//! outside any dialog (481, section 12.2.2), reliable provisional responses (RFC 3262),
//! UPDATE (RFC 3311) and session timers (RFC 4028), and ends every dialog whose peer
//! vanished ([`SessionConfig::max_lifetime`]). For each incoming call this core rings
//! (180), then after [`UaConfig::ring`] accepts with an SDP answer: computed from the offer
//! by [`LocalMedia::answer`] when [`UaConfig::media`] is set (RFC 3264; the INVITE is
//! refused with 488 when no codec is common; an INVITE without offer gets our offer in the
//! 2xx), else the fixed [`UaConfig::answer_sdp`]. Offers in re-INVITEs and UPDATEs are
//! answered the same way. Everything else is answered as [`validate`] says (405 with Allow,
//! 501, 420, ...).
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
use crate::sdp::{Direction, LocalMedia};
use crate::session::{CallHandle, EndReason, SessionConfig, SessionEvent, Sessions};
use crate::validate::{self, Policy, Verdict};
use crate::{HeaderName, Method, OwnedMessage, ResponseBuilder, SeededRng, Source, Timers};

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
    /// Without [`UaConfig::media`]: the SDP body of every 200 to an INVITE and of every
    /// answer, whatever the offer (with it: unused).
    pub answer_sdp: Vec<u8>,
    /// The Server header, if any (also the session layer's, unless
    /// [`SessionConfig::user_agent`] is set).
    pub server: Option<String>,
    /// T1 and T2 of the session layer (2xx retransmission, the 64*T1 wait for the ACK,
    /// section 13.3.1.4); they replace [`SessionConfig::timers`].
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
    /// A configuration with `contact` (see [`UaConfig::contact`]), no ring time, the fixed
    /// audio answer, and the session layer's defaults ([`SessionConfig::new`], with the user
    /// part of `contact`, else `sipd`).
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
    /// Answered calls that ended: by BYE (either side), or ended by the session layer
    /// (session expiry, lifetime, a failed refresh: counted in `calls_expired` too).
    pub calls_ended: u64,
    /// INVITEs cancelled (answered 487).
    pub calls_cancelled: u64,
    /// 2xx responses retransmitted while waiting for the ACK (handed to the endpoint, which
    /// withholds those a silent untrusted source has not earned: `Stats::withheld`).
    pub ok_retransmissions: u64,
    /// Dialogs whose ACK never came (section 13.3.1.4: 64*T1; a BYE was sent).
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
    /// Calls the session layer ended without a BYE from the peer: the session timer
    /// expired (RFC 4028), [`SessionConfig::max_lifetime`] passed, or an in-dialog request
    /// got 408 or 481 (section 12.2.1.2).
    pub calls_expired: u64,
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

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, PRACK, UPDATE";

const POLICY: Policy<'static> = Policy {
    methods: &[
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE", "PRACK", "UPDATE",
    ],
    body_types: &["application/sdp", "text/plain"],
    ..Policy::UAS
};

/// A call this UAS core received, until it ends.
#[derive(Debug)]
struct Call {
    /// Its Call-ID, for the events.
    call_id: String,
    /// Our media for this call: its own o= version (RFC 3264 section 8).
    media: Option<LocalMedia>,
    /// The body of the 2xx once the ring time is over; `None` once accepted.
    body: Option<Vec<u8>>,
    /// When the 2xx goes out.
    answer_at: Instant,
    /// The 2xx carried our offer (an INVITE without one): the ACK brings the answer.
    offered: bool,
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
    Answer(CallHandle),
    Location(StoreTicket),
}

/// The UAS core. Run it as the [`TransactionUser`] of an [`Endpoint`].
#[derive(Debug)]
pub struct UserAgent {
    config: UaConfig,
    rng: SeededRng,
    /// The calls and dialogs (RFC 3261 sections 12 to 15).
    sessions: Sessions,
    calls: HashMap<CallHandle, Call>,
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

impl UserAgent {
    /// A UAS core; `seed` keys the [`SeededRng`] of its To tags (and, derived from it, the
    /// session layer's): 32 bytes from the operating system (the drivers' `os_seed`), not
    /// the endpoint's seed, a fixed one only in tests.
    pub fn new(mut config: UaConfig, seed: [u8; 32]) -> UserAgent {
        let auth = config.auth.take();
        let registrar = config.registrar.clone().map(Registrar::new);
        let store = match (&registrar, config.location) {
            (Some(_), LocationMode::Memory(limits)) => Some(MemoryStore::new(limits)),
            _ => None,
        };
        let mut rng = SeededRng::new(seed);
        let mut session = config.session.clone();
        if session.contact.is_none() && !config.contact.is_empty() {
            session.contact = Some(config.contact.clone());
        }
        if session.user_agent.is_none() {
            session.user_agent = config.server.clone();
        }
        session.timers = config.timers;
        let mut session_seed = [0u8; 32];
        for chunk in session_seed.chunks_mut(8) {
            chunk.copy_from_slice(&crate::Rng::next_u64(&mut rng).to_le_bytes());
        }
        UserAgent {
            sessions: Sessions::new(session, session_seed),
            registrar,
            auth,
            store,
            location_queue: VecDeque::new(),
            pending_location: HashMap::new(),
            next_ticket: 0,
            config,
            rng,
            calls: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            stats: UaStats::default(),
        }
    }

    /// The counters (the 2xx retransmissions and ACK timeouts are the session layer's).
    pub fn stats(&self) -> UaStats {
        let sessions = self.sessions.stats();
        UaStats {
            ok_retransmissions: sessions.ok_retransmissions,
            ack_timeouts: sessions.ack_timeouts,
            ..self.stats
        }
    }

    /// Dialogs alive in the session layer (early and confirmed).
    pub fn dialogs(&self) -> usize {
        self.sessions.dialogs()
    }

    /// The session layer: its calls, dialogs and counters.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
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

    /// A request the session layer is not handed (REGISTER, OPTIONS and MESSAGE outside a
    /// dialog), or one it returned: validated, authenticated, then answered here.
    fn on_request(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        source: Source,
    ) {
        let Ok(msg) = request.message() else {
            return;
        };
        let Some(method) = msg.method() else {
            return;
        };
        let in_dialog = msg.to().and_then(|t| t.tag()).is_some();
        drop(msg);
        let registering = method == Method::Register && self.registrar.is_some();
        if !self.validate(now, ep, tx, &request, registering) {
            return;
        }
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
                let tag = (!in_dialog).then(|| self.new_tag());
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
                    reply(200, tag.as_deref(), &extra[..2], None),
                );
            }
            Method::Message => {
                self.stats.messages += 1;
                let text = String::from_utf8_lossy(request.view().body()).into_owned();
                self.push_event(UaEvent::Message { text });
                let tag = (!in_dialog).then(|| self.new_tag());
                self.respond(now, ep, tx, &request, reply(200, tag.as_deref(), &[], None));
            }
            // What the session layer owns and gave back: no call or dialog it knows
            // (section 12.2.2; section 9.2 for CANCEL).
            Method::Invite | Method::Bye | Method::Cancel | Method::Prack | Method::Update => {
                let tag = (!in_dialog).then(|| self.new_tag());
                self.respond(now, ep, tx, &request, reply(481, tag.as_deref(), &[], None));
            }
            _ => {
                let tag = (!in_dialog).then(|| self.new_tag());
                self.respond(
                    now,
                    ep,
                    tx,
                    &request,
                    reply(405, tag.as_deref(), &[("Allow", ALLOW)], None),
                );
            }
        }
    }

    /// Section 8.2: answers a request the policy refuses (405 with Allow, 420 with
    /// Unsupported, 415, ...); true when it may go on.
    fn validate(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        registering: bool,
    ) -> bool {
        let Ok(msg) = request.message() else {
            return false;
        };
        let policy = if registering {
            &REGISTRAR_POLICY
        } else {
            &POLICY
        };
        match validate::request(&msg, policy) {
            Verdict::Accept => true,
            Verdict::Respond(r) => {
                let unsupported = r.unsupported.join(", ");
                let mut extra: Vec<(&str, &str)> = Vec::new();
                if r.status == 405 {
                    extra.push(("Allow", ALLOW));
                }
                if r.status == 420 {
                    extra.push(("Unsupported", &unsupported));
                }
                let status = r.status;
                let tag = self.new_tag();
                drop(msg);
                self.respond(
                    now,
                    ep,
                    tx,
                    request,
                    reply(status, Some(&tag), &extra, None),
                );
                false
            }
            _ => false,
        }
    }

    /// An endpoint event: requests outside the session layer's business are answered here;
    /// INVITE, ACK, CANCEL, BYE, PRACK, UPDATE, everything inside a dialog and every
    /// response go to the session layer (which validates them; an INVITE is authenticated
    /// first when [`UaConfig::auth_calls`]); what it gives back is answered here.
    fn on_event(&mut self, now: Instant, event: Event, ep: &mut Endpoint) {
        let event = match event {
            Event::Request {
                tx,
                request,
                source,
                cancels,
            } => {
                // The method from the framed view: typing the whole request is left to
                // whoever needs it (the session layer types an INVITE once).
                let Some(method) = request.view().method() else {
                    return;
                };
                let maybe_ours =
                    matches!(method, Method::Register | Method::Options | Method::Message);
                let challenge =
                    method == Method::Invite && self.auth.is_some() && self.config.auth_calls;
                if maybe_ours || challenge {
                    let in_dialog = match request.message() {
                        Ok(msg) => msg.to().and_then(|t| t.tag()).is_some(),
                        Err(_) => return,
                    };
                    if maybe_ours && !in_dialog {
                        self.on_request(now, ep, tx, request, source);
                        return;
                    }
                    // Section 22: challenged before the session layer sees it (validated
                    // first, as section 8.2 orders).
                    if challenge
                        && !in_dialog
                        && (!self.validate(now, ep, tx, &request, false)
                            || matches!(
                                self.authenticate(now, ep, tx, &request, Method::Invite),
                                Authn::Answered
                            ))
                    {
                        return;
                    }
                }
                Event::Request {
                    tx,
                    request,
                    source,
                    cancels,
                }
            }
            other => other,
        };
        if let Some(Event::Request {
            tx,
            request,
            source,
            ..
        }) = self.sessions.handle_event(now, event, ep)
        {
            self.on_request(now, ep, tx, request, source);
        }
    }

    /// Acts on what the session layer reports: this core is the application of the calls
    /// it receives.
    fn drain_sessions(&mut self, now: Instant, ep: &mut Endpoint) {
        while let Some(event) = self.sessions.poll_event() {
            match event {
                SessionEvent::Incoming {
                    call,
                    request,
                    offer,
                } => self.on_incoming(now, ep, call, &request, offer),
                SessionEvent::Answered { call, sdp } => {
                    // The ACK's answer to the offer of our 2xx (RFC 3264 section 5). An
                    // answer we cannot use ends the session (as RFC 3261 13.2.2.4 asks of a
                    // UAC); an ACK without one (a peer's error) leaves the call up, without
                    // media, as sipd always did.
                    let Some(c) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    let refused = match (c.offered, c.media.as_mut(), sdp) {
                        (true, Some(media), Some(answer)) => media.accept_answer(&answer).is_err(),
                        _ => false,
                    };
                    if refused {
                        let _ = self.sessions.hangup(now, ep, call);
                    }
                }
                SessionEvent::Offer { call, sdp, .. } => {
                    // A re-INVITE or UPDATE (RFC 3264 section 8, RFC 3311): answered from
                    // the offer (sendonly gets recvonly), 488 when nothing is common.
                    let answer = match self.calls.get_mut(&call) {
                        Some(Call {
                            media: Some(media), ..
                        }) => media.answer(&sdp).map_err(|e| e.status()),
                        _ => Ok(self.config.answer_sdp.clone()),
                    };
                    let _ = self.sessions.answer_offer(now, ep, call, answer);
                }
                SessionEvent::Ended { call, reason } => self.on_ended(call, reason),
                // This core makes no offer of its own after the 2xx, and places no call.
                _ => {}
            }
        }
    }

    /// A new INVITE: refused at once when its offer has nothing in common with our media
    /// (RFC 3264 section 6: 488), else rung (180, reliable when the caller requires
    /// 100rel) and accepted after the ring time.
    fn on_incoming(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        call: CallHandle,
        request: &OwnedMessage,
        offer: Option<Vec<u8>>,
    ) {
        let call_id = request
            .view()
            .header(HeaderName::CallId)
            .unwrap_or("")
            .to_owned();
        let mut media = self.config.media.clone();
        let offered = offer.is_none();
        let body = match (media.as_mut(), offer) {
            (Some(m), Some(offer)) => match m.answer(&offer) {
                Ok(answer) => answer,
                Err(e) => {
                    if self.sessions.reject(now, ep, call, e.status()).is_ok() {
                        self.stats.rejected += 1;
                    }
                    return;
                }
            },
            (Some(m), None) => m.offer(Direction::SendRecv),
            (None, _) => self.config.answer_sdp.clone(),
        };
        if self.sessions.ring(now, ep, call, None).is_err() {
            return;
        }
        let answer_at = now + self.config.ring;
        self.calls.insert(
            call,
            Call {
                call_id,
                media,
                body: Some(body),
                answer_at,
                offered,
            },
        );
        if self.config.ring.is_zero() {
            self.accept(now, ep, call);
        } else {
            self.timers.insert((answer_at, Due::Answer(call)));
        }
    }

    /// Sends the 200 of a ringing call (the session layer retransmits it until the ACK).
    fn accept(&mut self, now: Instant, ep: &mut Endpoint, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(body) = c.body.take() else {
            return;
        };
        if self.sessions.accept(now, ep, call, Some(body)).is_ok() {
            self.stats.calls_answered += 1;
            let call_id = c.call_id.clone();
            self.push_event(UaEvent::CallAnswered { call_id });
        }
    }

    fn on_ended(&mut self, call: CallHandle, reason: EndReason) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        self.timers.remove(&(c.answer_at, Due::Answer(call)));
        let answered = c.body.is_none();
        match reason {
            EndReason::Cancelled => self.stats.calls_cancelled += 1,
            EndReason::RemoteBye | EndReason::LocalBye if answered => {
                self.stats.calls_ended += 1;
                self.push_event(UaEvent::CallEnded { call_id: c.call_id });
            }
            EndReason::SessionExpired
            | EndReason::Lifetime
            | EndReason::Timeout
            | EndReason::DialogGone
            | EndReason::TransportError
                if answered =>
            {
                self.stats.calls_ended += 1;
                self.stats.calls_expired += 1;
                self.push_event(UaEvent::CallEnded { call_id: c.call_id });
            }
            _ => {}
        }
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
        self.on_event(now, event, endpoint);
        self.drain_sessions(now, endpoint);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.first().map(|(t, _)| *t),
            self.store.as_ref().and_then(|s| s.poll_timeout()),
            self.sessions.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        if let Some(store) = self.store.as_mut() {
            store.expire(now);
        }
        if self.sessions.poll_timeout().is_some_and(|t| t <= now) {
            self.sessions.handle_timeout(now, endpoint);
            self.drain_sessions(now, endpoint);
        }
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, due)) = self.timers.pop_first() else {
                break;
            };
            match due {
                Due::Answer(call) => self.accept(now, endpoint, call),
                Due::Location(ticket) => self.location_timeout(now, endpoint, ticket),
            }
        }
        self.drain_sessions(now, endpoint);
    }
}
