//! INVITE sessions (RFC 3261 sections 13 to 15) on top of the [`Endpoint`], both roles, with
//! the dialogs of [`crate::dialog`] (section 12) and the offer/answer state of RFC 3264.
//!
//! [`Sessions`] is a transaction user: hand it every [`Event`] of the endpoint
//! ([`Sessions::handle_event`], which gives back what is not its business), run its timers
//! beside the endpoint's ([`Sessions::poll_timeout`], [`Sessions::handle_timeout`]), and
//! read what happened to the calls with [`Sessions::poll_event`]. The application acts
//! through the [`CallHandle`] of each call:
//!
//! - caller (UAC): [`Sessions::invite`]; [`SessionEvent::Progress`] for each provisional
//!   response (one early dialog per To tag when a proxy forks), [`SessionEvent::Answered`]
//!   for the 2xx kept. Every 2xx is ACKed by the session layer, again for each
//!   retransmission of it; a 2xx from another fork is ACKed and ended with BYE (section
//!   13.2.2.4). [`Sessions::hangup`] before the final response sends CANCEL (a 2xx that
//!   crosses it is ACKed and ended with BYE);
//! - callee (UAS): [`SessionEvent::Incoming`], then [`Sessions::ring`], [`Sessions::accept`]
//!   or [`Sessions::reject`]. The 2xx is retransmitted until the ACK, and without an ACK in
//!   64*T1 the call ends with BYE (section 13.3.1.4). A CANCEL is answered 200, the INVITE
//!   487 (section 9.2);
//! - both: re-INVITE with [`Sessions::reinvite`] and [`SessionEvent::Offer`] /
//!   [`Sessions::answer_offer`] (491 and 500 as section 14.2 says, the 491 retried after
//!   the section 14.1 timer), BYE either way ([`Sessions::hangup`]), in-dialog OPTIONS
//!   answered 200. Other requests inside a dialog (INFO, MESSAGE, NOTIFY, REFER...) are
//!   returned by [`Sessions::handle_event`] after the CSeq check, for the application to
//!   answer through the endpoint.
//!
//! Offer/answer (RFC 3264): one offer at a time per dialog. An offer in the INVITE is
//! answered in the 2xx ([`Sessions::accept`]); an INVITE without offer gets ours in the 2xx
//! and the answer in the ACK. On the caller's side an offer in a 2xx comes as
//! [`SessionEvent::Offer`] with `method` "INVITE", and the ACK waits for
//! [`Sessions::answer_offer`]. A re-INVITE without offer comes as an `Offer` with an empty
//! `sdp`: answer it with our offer, whose answer comes with the ACK as
//! [`SessionEvent::Answer`]. Bodies are carried as bytes (SDP is parsed elsewhere: `sip_core::sdp`).
//!
//! Every call ends, and its dialogs are freed: BYE either way, CANCEL, a non-2xx final
//! response, 408 or 481 to a request inside the dialog (section 12.2.1.2), a missing ACK, a
//! transport error, [`SessionConfig::max_lifetime`]. The tables are bounded
//! ([`SessionConfig::max_calls`]: a new INVITE beyond gets 503 with Retry-After). A confirmed
//! dialog keeps only the strings its requests need (no whole message).
//!
//! Extensions ([`SessionConfig::rel100`], [`SessionConfig::session_timer`], [`Invite::rel100`],
//! [`Invite::session_expires`]):
//! - RFC 3262: [`Sessions::ring`] sends its 1xx reliably when 100rel applies (the INVITE
//!   requires it, or supports it and we require it; 420 or 421 otherwise), retransmitted until
//!   the PRACK, one at a time, a 5xx after 64*T1; [`Sessions::accept`] waits for the PRACK of
//!   a 1xx with SDP. The caller PRACKs each reliable 1xx once, in RSeq order. SDP in a
//!   reliable 1xx and in the PRACK is offer/answer ([`SessionEvent::Offer`] with method
//!   "INVITE" for an offer in a 1xx, "PRACK" for one in a PRACK);
//! - RFC 3311: [`Sessions::update`] in early (after the first exchange) and confirmed dialogs,
//!   [`SessionEvent::Offer`] with method "UPDATE" for the peer's (491 / 500 with Retry-After
//!   when offers would overlap);
//! - RFC 4028: Session-Expires and Min-SE in INVITE, re-INVITE and UPDATE (422 below our
//!   Min-SE, retried once when we get it); the refresher sends UPDATE (re-INVITE with our
//!   last SDP when the peer does not allow UPDATE) at half the interval; without a refresh the
//!   call ends with BYE ([`EndReason::SessionExpired`]). A dialog with a session timer has no
//!   [`SessionConfig::max_lifetime`].
//!
//! Two endpoints in memory: Alice calls Bob, Bob answers, Alice hangs up.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use sip_core::session::{EndReason, Invite, SessionConfig, SessionEvent, Sessions};
//! use sip_core::{Config, Endpoint, Listener, Target, Transport};
//!
//! fn seed() -> [u8; 32] {
//!     let mut s = [0u8; 32];
//!     getrandom::fill(&mut s).expect("the OS generator");
//!     s
//! }
//!
//! /// An endpoint listening on UDP at `addr`, with a session layer on top.
//! fn user_agent(addr: SocketAddr, user: &str) -> (Endpoint, Sessions) {
//!     let config = Config { listeners: vec![Listener::new(Transport::Udp, addr)], ..Config::default() };
//!     (Endpoint::new(config, seed()), Sessions::new(SessionConfig::new(user), seed()))
//! }
//!
//! /// Moves events and datagrams between the two until nothing moves (a driver does this
//! /// with sockets and a clock); returns the session events (user agent, event).
//! fn pump(uas: &mut [(Endpoint, Sessions); 2], now: Instant) -> Vec<(usize, SessionEvent)> {
//!     let (mut events, mut buf) = (Vec::new(), Vec::new());
//!     loop {
//!         let mut moved = false;
//!         for i in 0..2 {
//!             let (ep, sessions) = &mut uas[i];
//!             while let Some(ev) = ep.poll_event() {
//!                 moved = true;
//!                 // what the session layer returns (REGISTER, MESSAGE...) is ours to answer
//!                 let _ = sessions.handle_event(now, ev, ep);
//!             }
//!             while let Some(ev) = sessions.poll_event() {
//!                 events.push((i, ev));
//!             }
//!             let mut out = Vec::new();
//!             while let Some(t) = ep.poll_transmit(&mut buf) {
//!                 out.push((t, buf.clone()));
//!             }
//!             for (t, bytes) in out {
//!                 moved = true;
//!                 uas[1 - i].0.handle_datagram(now, t.remote, t.local, &bytes);
//!             }
//!         }
//!         if !moved {
//!             return events;
//!         }
//!     }
//! }
//!
//! let (alice, bob): (SocketAddr, SocketAddr) = ("127.0.0.1:5060".parse()?, "127.0.0.2:5060".parse()?);
//! let mut uas = [user_agent(alice, "alice"), user_agent(bob, "bob")];
//! let now = Instant::now();
//! let offer = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
//!
//! // Alice calls.
//! let (ep, sessions) = &mut uas[0];
//! let invite = Invite::new("sip:bob@127.0.0.2", "Alice <sip:alice@example.com>", "<sip:bob@example.com>", Target::udp(bob))
//!     .offer(offer.to_vec());
//! let call = sessions.invite(now, ep, invite)?;
//!
//! // Bob's phone rings; he answers.
//! let incoming = pump(&mut uas, now)
//!     .into_iter()
//!     .find_map(|(i, e)| match e {
//!         SessionEvent::Incoming { call, .. } if i == 1 => Some(call),
//!         _ => None,
//!     })
//!     .expect("Bob hears the INVITE");
//! let (ep, sessions) = &mut uas[1];
//! sessions.ring(now, ep, incoming, None)?;
//! sessions.accept(now, ep, incoming, Some(offer.to_vec()))?; // (his answer)
//! let events = pump(&mut uas, now);
//! assert!(events.iter().any(|(i, e)| *i == 0 && matches!(e, SessionEvent::Answered { .. })));
//! assert!(events.iter().any(|(i, e)| *i == 1 && matches!(e, SessionEvent::Answered { .. })));
//!
//! // Alice hangs up: BYE, 200, both calls end.
//! let (ep, sessions) = &mut uas[0];
//! sessions.hangup(now, ep, call)?;
//! let events = pump(&mut uas, now);
//! assert!(events.iter().any(|(i, e)| *i == 1 && matches!(e, SessionEvent::Ended { reason: EndReason::RemoteBye, .. })));
//! assert!(events.iter().any(|(i, e)| *i == 0 && matches!(e, SessionEvent::Ended { reason: EndReason::LocalBye, .. })));
//! assert_eq!((uas[0].1.calls(), uas[1].1.dialogs()), (0, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Extensions live in submodules of this one and keep their state per dialog in the
//! dialog's entry, their deadlines as variants of its timer enum, and handle the methods
//! they add (PRACK, UPDATE) in the in-dialog dispatch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::dialog::{Dialog, DialogState};
use crate::endpoint::TransactionUser;
use crate::id::{Key, Slab};
use crate::message::{HeaderName, Message};
use crate::rng::push_random_token;
use crate::transaction::key::KeyedHasher;
use crate::validate::{self, Policy};
use crate::{
    BuildError, ClientTxId, Endpoint, Event, Method, NextHop, OwnedMessage, RequestBuilder,
    ResponseBuilder, Rng, SeededRng, SendError, ServerTxId, Source, Timer, Timers, Transport, TxId,
};

mod indialog;
mod uac;
mod uas;

// RFC 3261 section 22.2: digest credentials of the calls we place (h-auth).
mod auth;

// RFC 3262, RFC 4028 and RFC 3311 (h-ext): sans-IO pieces, and their wiring in `ext`.
mod ext;
mod reliable;
mod timer;
mod update;

/// A call as the application sees it: one INVITE session (UAC: the INVITE it sent and the
/// dialogs its forks create, until one is kept; UAS: one INVITE received). Generational: a
/// handle of an ended call never names a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle {
    index: u32,
    generation: u32,
}

impl CallHandle {
    /// The handle as one number, for logs.
    pub fn get(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

/// How the session layer is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The user part of our Contact (`sipd`).
    pub contact_user: String,
    /// A fixed Contact URI; `None`: built per dialog from the listener of the transport the
    /// dialog uses (`;transport=tcp` for TCP).
    pub contact: Option<String>,
    /// User-Agent of our requests and Server of our responses.
    pub user_agent: Option<String>,
    /// T1 and T2: 2xx retransmission, the 64*T1 wait for an ACK, reliable 1xx
    /// retransmission.
    pub timers: Timers,
    /// Live calls at most; a new INVITE beyond gets 503 with Retry-After.
    pub max_calls: usize,
    /// A dialog without session timers ends (BYE) after this long.
    pub max_lifetime: Duration,
    /// Reliable provisional responses (RFC 3262).
    pub rel100: Rel100,
    /// Session timers (RFC 4028); `None` turns them off.
    pub session_timer: Option<SessionTimer>,
}

impl SessionConfig {
    /// The defaults: no fixed Contact, no User-Agent, RFC timers, 100,000 calls, 2 hours
    /// lifetime, 100rel supported, session timers of 1800 s with Min-SE 90.
    pub fn new(contact_user: &str) -> SessionConfig {
        SessionConfig {
            contact_user: contact_user.to_owned(),
            contact: None,
            user_agent: None,
            timers: Timers::RFC,
            max_calls: 100_000,
            max_lifetime: Duration::from_secs(2 * 3600),
            rel100: Rel100::Supported,
            session_timer: Some(SessionTimer {
                expires: 1800,
                min_se: 90,
            }),
        }
    }
}

/// Reliable provisional responses (RFC 3262).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rel100 {
    /// Never: no `100rel` in Supported or Require.
    Disabled,
    /// `Supported: 100rel`; provisional responses are reliable when the peer requires it.
    Supported,
    /// `Require: 100rel`.
    Required,
}

/// Session timer settings (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session-Expires in seconds.
    pub expires: u32,
    /// Min-SE in seconds.
    pub min_se: u32,
}

/// A call to place (UAC).
#[derive(Debug, Clone)]
pub struct Invite {
    request_uri: String,
    from: String,
    to: String,
    /// Where the INVITE goes; `None`: by its first Route, else its Request-URI.
    hop: Option<NextHop>,
    offer: Option<Vec<u8>>,
    routes: Vec<String>,
    headers: Vec<(String, String)>,
    rel100: Option<Rel100>,
    session_expires: Option<u32>,
    credentials: Option<Box<crate::auth::DigestClient>>,
}

impl Invite {
    /// A call to `request_uri`, sent to `hop`: a [`Target`](crate::Target) (this transport
    /// and address) or a [`NextHop::Uri`] the endpoint locates (RFC 3263, with failover);
    /// `from` and `to` are name-addr or URI.
    pub fn new(request_uri: &str, from: &str, to: &str, hop: impl Into<NextHop>) -> Invite {
        Invite {
            hop: Some(hop.into()),
            ..Invite::to_uri(request_uri, from, to)
        }
    }

    /// A call to `request_uri`, sent where the request itself leads (RFC 3261 section
    /// 8.1.2): its first preloaded [`Invite::route`], else the Request-URI. A numeric host
    /// is sent to at once; a name (`sip:bob@example.test`) is located by the endpoint (RFC
    /// 3263: NAPTR, SRV, A/AAAA, failover). A `sips:` Request-URI or first Route makes the
    /// call secure: TLS on every hop and a `sips:` Contact (section 26.2).
    pub fn to_uri(request_uri: &str, from: &str, to: &str) -> Invite {
        Invite {
            request_uri: request_uri.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            hop: None,
            offer: None,
            routes: Vec::new(),
            headers: Vec::new(),
            rel100: None,
            session_expires: None,
            credentials: None,
        }
    }

    /// The SDP offer. Without one the INVITE is offerless: the offer comes in the 2xx and
    /// the answer goes in the ACK.
    pub fn offer(mut self, sdp: Vec<u8>) -> Invite {
        self.offer = Some(sdp);
        self
    }

    /// A preloaded Route (an outbound proxy); repeatable, in order.
    pub fn route(mut self, route: &str) -> Invite {
        self.routes.push(route.to_owned());
        self
    }

    /// An extra header (e.g. Authorization). CR, LF or NUL make `invite` fail.
    pub fn header(mut self, name: &str, value: &str) -> Invite {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Reliable provisional responses for this call (RFC 3262), instead of the config's.
    pub fn rel100(mut self, mode: Rel100) -> Invite {
        self.rel100 = Some(mode);
        self
    }

    /// Session-Expires for this call (RFC 4028), instead of the config's.
    pub fn session_expires(mut self, secs: u32) -> Invite {
        self.session_expires = Some(secs);
        self
    }

    /// Digest credentials for this call (RFC 3261 section 22.2): an INVITE challenged with
    /// 401 or 407 is sent again with them (CSeq plus one, once per new challenge; a
    /// refusal still ends the call [`EndReason::Rejected`]), the ACK of the 2xx carries the
    /// same credentials as the INVITE (section 13.2.2.4), and requests inside the dialog
    /// reuse the nonce kept and answer a challenge to a BYE or re-INVITE once. Nonces the
    /// client kept already (from a registration) are used from the first INVITE on.
    pub fn credentials(mut self, client: crate::auth::DigestClient) -> Invite {
        self.credentials = Some(Box::new(client));
        self
    }
}

/// What the session layer tells the application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionEvent {
    /// UAS: a new INVITE. Answer with ring / accept / reject.
    Incoming {
        /// The call.
        call: CallHandle,
        /// The INVITE.
        request: OwnedMessage,
        /// Its SDP offer, if any.
        offer: Option<Vec<u8>>,
    },
    /// UAC: a provisional response above 100 (one per early dialog when forked).
    Progress {
        /// The call.
        call: CallHandle,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// Early media SDP.
        sdp: Option<Vec<u8>>,
    },
    /// The call is established. UAC: the 2xx kept (its SDP); UAS: the ACK arrived (its SDP,
    /// if any).
    Answered {
        /// The call.
        call: CallHandle,
        /// The SDP of the 2xx (UAC) or of the ACK (UAS).
        sdp: Option<Vec<u8>>,
    },
    /// The peer made an offer (re-INVITE, UPDATE, an offer in a 2xx to an offerless INVITE,
    /// in a reliable 1xx): answer with [`Sessions::answer_offer`].
    Offer {
        /// The call.
        call: CallHandle,
        /// The request that carried it, or "INVITE" for a 2xx.
        method: String,
        /// The offer.
        sdp: Vec<u8>,
    },
    /// The answer to our re-INVITE / UPDATE offer.
    Answer {
        /// The call.
        call: CallHandle,
        /// The answer.
        sdp: Vec<u8>,
    },
    /// Our re-INVITE / UPDATE was refused with this final status; the session goes on as it
    /// was (491 is first retried by the session layer, RFC 3261 section 14.1).
    OfferRefused {
        /// The call.
        call: CallHandle,
        /// The final status.
        status: u16,
    },
    /// The call is over; its handle is dead.
    Ended {
        /// The call.
        call: CallHandle,
        /// Why.
        reason: EndReason,
    },
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// We sent BYE (answered or timed out).
    LocalBye,
    /// The peer sent BYE.
    RemoteBye,
    /// UAC: our CANCEL won (487); UAS: the caller cancelled.
    Cancelled,
    /// UAC: a final non-2xx response; UAS: we rejected with this status.
    Rejected(u16),
    /// No final response (timer B, 408), or 408 to an in-dialog request (section 12.2.1.2).
    Timeout,
    /// 481 to an in-dialog request (section 12.2.1.2).
    DialogGone,
    /// UAS: no ACK within 64*T1 (section 13.3.1.4): BYE sent.
    NoAck,
    /// The session timer expired (RFC 4028): BYE sent.
    SessionExpired,
    /// [`SessionConfig::max_lifetime`] passed: BYE sent.
    Lifetime,
    /// The transport failed.
    TransportError,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The handle names no live call.
    #[error("no such call")]
    UnknownCall,
    /// The call's state does not allow this.
    #[error("not allowed in the call's state")]
    WrongState,
    /// An offer is pending (RFC 3264: no overlapping offers).
    #[error("an offer is pending")]
    OfferPending,
    /// [`SessionConfig::max_calls`] calls are live.
    #[error("too many calls")]
    TooManyCalls,
    /// The endpoint refused to send.
    #[error("send: {0}")]
    Send(SendError),
    /// A message could not be built.
    #[error("build: {0}")]
    Build(BuildError),
    /// A `sips:` call (or a dialog whose Contact must be `sips:`, RFC 3261 sections
    /// 8.1.1.8 and 12.1.1) needs a TLS listener for its `sips:` Contact, and the endpoint
    /// has none.
    #[error("sips: needs a TLS listener for the sips: Contact, and there is none")]
    NoTlsListener,
    /// A `sips:` call or secure dialog was to go over a hop that is not TLS (a target over
    /// UDP or TCP, a URI with `transport=udp`): refused, never downgraded (RFC 3261 section
    /// 26.2, RFC 5630 section 4).
    #[error("sips: requires TLS on every hop, and this next hop is not TLS")]
    InsecureHop,
    /// The call has no next hop: its first Route or Request-URI is not a SIP URI.
    #[error("no next hop: the Request-URI (or first Route) is not a sip: or sips: URI")]
    NoNextHop,
}

impl From<SendError> for SessionError {
    fn from(e: SendError) -> Self {
        SessionError::Send(e)
    }
}

impl From<BuildError> for SessionError {
    fn from(e: BuildError) -> Self {
        SessionError::Build(e)
    }
}

/// Counters for logs and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Calls placed with [`Sessions::invite`].
    pub calls_placed: u64,
    /// INVITEs received that became calls.
    pub calls_received: u64,
    /// Calls established (UAC: the 2xx kept; UAS: the ACK received).
    pub calls_answered: u64,
    /// Calls ended ([`SessionEvent::Ended`]).
    pub calls_ended: u64,
    /// ACKs re-sent for retransmitted 2xx responses (section 13.2.2.4).
    pub acks_resent: u64,
    /// Forks answered 2xx that the call did not keep: ACKed, then ended with BYE (section
    /// 13.2.2.4).
    pub forks_ended: u64,
    /// INVITEs refused with 503 because [`SessionConfig::max_calls`] calls were live.
    pub calls_refused: u64,
    /// 2xx responses retransmitted while waiting for the ACK (section 13.3.1.4).
    pub ok_retransmissions: u64,
    /// Calls whose ACK never came (section 13.3.1.4).
    pub ack_timeouts: u64,
    /// Re-INVITEs sent again after a 491 (section 14.1).
    pub glare_retries: u64,
    /// Reliable provisional responses sent again for want of a PRACK (RFC 3262).
    pub rel1xx_retransmissions: u64,
    /// Session refreshes sent (RFC 4028 section 10: UPDATE or re-INVITE).
    pub session_refreshes: u64,
    /// Sessions ended because no refresh came in time (RFC 4028 section 10).
    pub sessions_expired: u64,
    /// Calls whose 2xx was never ACKed over UDP and whose BYE would have gone to an
    /// address other than the INVITE's source: ended without BYE (section 26.1.5).
    pub byes_withheld: u64,
    /// Requests sent again with credentials after a 401 or 407 (RFC 3261 section 22.2).
    pub auth_retries: u64,
    /// INVITEs with a `sips:` Request-URI that came over a transport other than TLS, or
    /// whose `sips:` Contact we could not write (no TLS listener): refused 480 with
    /// warn-code 380 (RFC 3261 section 26.2, RFC 5630 section 5.1.2).
    pub sips_refused: u64,
}

/// Events kept for [`Sessions::poll_event`] at most; beyond, the oldest are dropped.
pub const MAX_SESSION_EVENTS: usize = 4096;

/// Early dialogs (forks) one call keeps at most; further provisional responses with new
/// tags make no dialog (their 2xx still does, to be ACKed and ended).
const MAX_FORKS: usize = 16;

/// Re-INVITEs sent again after a 491 at most before the application hears of it.
const MAX_GLARE_RETRIES: u8 = 3;

/// Methods answered inside a dialog (Allow).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE";

/// What the session layer accepts of a new INVITE (RFC 3261 section 8.2).
const POLICY: Policy<'static> = Policy {
    extensions: &["100rel", "timer"],
    ..Policy::UAS
};

/// A dialog of the table: [`crate::id`] key.
type DialogKey = Key;
/// A call of the table.
type CallKey = Key;

/// Where one dialog's INVITE session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// UAS: not answered yet; UAC: a provisional response made it.
    Early,
    /// UAS: our 2xx to the initial INVITE is out, its ACK is not in (section 13.3.1.4).
    WaitAck,
    /// Established.
    Up,
    /// Our BYE is out (section 15.1.1); the dialog goes when it completes.
    Bye,
}

/// The offer/answer state of a dialog (RFC 3264 section 4, RFC 6337 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferState {
    /// No offer outstanding.
    Stable,
    /// We made an offer and wait for the answer.
    LocalOffer,
    /// The peer made an offer and waits for ours.
    RemoteOffer,
}

/// The UAS's 2xx retransmitted until its ACK (section 13.3.1.4).
#[derive(Debug)]
struct Unacked {
    tx: ServerTxId,
    response: OwnedMessage,
    seq: u32,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// The UAC's ACK for a 2xx, sent again for each retransmission of it (section 13.2.2.4).
#[derive(Debug)]
struct SentAck {
    seq: u32,
    ack: OwnedMessage,
    branch: String,
    hop: NextHop,
    until: Instant,
}

/// What a dialog holds only for a while (a whole message, an offer to resend): boxed,
/// so that a confirmed dialog with nothing pending stays small.
#[derive(Debug, Default)]
struct Transient {
    /// UAS: the 2xx being retransmitted until its ACK.
    unacked: Option<Unacked>,
    /// UAS: the INVITE (initial or re-INVITE) waiting for the application.
    request_in: Option<OwnedMessage>,
    /// UAC: the last ACK sent.
    ack: Option<SentAck>,
    /// UAC: a 2xx (its CSeq) carrying an offer: its ACK waits for the application's answer.
    ack_wait: Option<u32>,
    /// UAC: the offer of our re-INVITE in progress, sent again after a 491.
    offer_out: Option<Vec<u8>>,
    /// How many times it was sent again after a 491.
    retries: u8,
}

impl Transient {
    fn is_empty(&self) -> bool {
        self.unacked.is_none()
            && self.request_in.is_none()
            && self.ack.is_none()
            && self.ack_wait.is_none()
            && self.offer_out.is_none()
    }
}

/// One dialog and its INVITE session state. (RFC 3262, 3311 and 4028 state goes here too.)
#[derive(Debug)]
struct Leg {
    dialog: Dialog,
    /// The call it belongs to; `None` for a fork the call did not keep, or a dialog whose
    /// call already ended, while its BYE completes.
    call: Option<CallKey>,
    /// We sent the initial INVITE, so the Call-ID is ours (section 14.1).
    owner: bool,
    phase: Phase,
    offer: OfferState,
    /// Our re-INVITE in progress.
    invite_out: Option<ClientTxId>,
    /// The peer's INVITE not answered with a final response yet, or whose 2xx waits for
    /// its ACK; and its CSeq.
    invite_in: Option<(ServerTxId, u32)>,
    /// Our BYE.
    bye: Option<ClientTxId>,
    /// Send BYE once the ACK is in (a hangup after our 2xx, section 15).
    bye_after_ack: Option<EndReason>,
    /// [`SessionConfig::max_lifetime`] deadline.
    lifetime: Option<Instant>,
    /// The section 14.1 retry of a re-INVITE refused 491.
    retry_at: Option<Instant>,
    x: Option<Box<Transient>>,
    // Extensions add their per-dialog state below (RFC 3262 reliable provisional
    // responses, RFC 4028 session timer), boxed when it is large or rare, and free it in
    // `Sessions::free_leg` with their deadlines.
    /// RFC 3262 / 3311 / 4028 state (h-ext), when the dialog uses them.
    ext: Option<Box<ext::Ext>>,
    /// Digest credentials (RFC 3261 section 22.2), for a call placed with them.
    auth: Option<Box<auth::LegAuth>>,
}

impl Leg {
    fn new(dialog: Dialog, call: Option<CallKey>, owner: bool) -> Leg {
        Leg {
            dialog,
            call,
            owner,
            phase: Phase::Early,
            offer: OfferState::Stable,
            invite_out: None,
            invite_in: None,
            bye: None,
            bye_after_ack: None,
            lifetime: None,
            retry_at: None,
            x: None,
            ext: None,
            auth: None,
        }
    }

    fn x(&mut self) -> &mut Transient {
        self.x.get_or_insert_with(Box::default)
    }

    /// Frees the transient part when nothing is left in it.
    fn shrink(&mut self) {
        if self.x.as_ref().is_some_and(|x| x.is_empty()) {
            self.x = None;
        }
    }
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// UAC: INVITE out, no final response. UAS: INVITE in, not answered.
    Pending,
    /// UAC: CANCEL requested (by the application, or by timer C).
    Cancelling,
    /// UAS: 2xx sent, or UAC: 2xx kept.
    Answered,
    /// Ending: our BYE is out; [`SessionEvent::Ended`] with this reason once it completes.
    Ending(EndReason),
}

/// A call ([`CallHandle`]).
#[derive(Debug)]
struct Call {
    uac: bool,
    state: CallState,
    /// The kept (UAC) or only (UAS) dialog.
    leg: Option<DialogKey>,
    /// UAC: the INVITE's client transaction until its final response.
    invite: Option<ClientTxId>,
    /// UAC: timer C cancelled the INVITE (its 487 is a timeout).
    timer_c: bool,
    /// UAC: the INVITE's entry in `Sessions::invites` (it may be gone).
    ctx: Option<ClientTxId>,
}

/// UAC: an initial INVITE and the dialogs its responses made, until no more responses can
/// come (its final non-2xx, or 64*T1 after its first 2xx, as timer M of RFC 6026).
#[derive(Debug)]
struct InviteCtx {
    call: Option<CallKey>,
    request: OwnedMessage,
    /// Where the INVITE was sent (the endpoint's attempt in progress says the address).
    hop: NextHop,
    offer: bool,
    forks: SmallVec<[DialogKey; 2]>,
    window_end: Option<Instant>,
    /// The session timer the INVITE asked for (RFC 4028 section 7).
    timer: Option<timer::UacTimer>,
    /// Digest credentials (RFC 3261 section 22.2).
    auth: Option<Box<crate::auth::DigestClient>>,
}

/// A client transaction the session layer started inside a dialog; its responses and
/// timeouts come to `on_dialog_response` / `on_dialog_failure`. (Extensions add their
/// requests here: PRACK, UPDATE.)
#[derive(Debug, Clone, Copy)]
enum Pending {
    ReInvite(DialogKey),
    Bye(DialogKey),
    /// Our UPDATE (RFC 3311).
    Update(DialogKey),
    /// Our PRACK (RFC 3262).
    Prack(DialogKey),
}

/// A deadline of the session layer. (Extensions add theirs.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Retransmit the 2xx, or give up on its ACK (section 13.3.1.4).
    Retransmit(DialogKey),
    /// Send the re-INVITE refused 491 again (section 14.1).
    Retry(DialogKey),
    /// [`SessionConfig::max_lifetime`].
    Lifetime(DialogKey),
    /// Forget the ACK kept for 2xx retransmissions.
    ForgetAck(DialogKey),
    /// No more responses to this INVITE.
    ForkWindow(ClientTxId),
    /// Timer C cancelled this INVITE 64*T1 ago: its transaction has ended silently.
    Abandoned(ClientTxId),
    /// Retransmit the reliable 1xx, or give up (RFC 3262 section 3).
    Rel100(DialogKey),
    /// Refresh the session, or end it (RFC 4028 section 10).
    SessionTimer(DialogKey),
    /// Send the UPDATE refused 491 again (RFC 3311 5.1, RFC 3261 14.1).
    UpdateRetry(DialogKey),
}

/// The session layer: the calls and dialogs of one user agent.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    rng: SeededRng,
    hasher: KeyedHasher,
    calls: Slab<Call>,
    legs: Slab<Leg>,
    /// Dialog id hash to dialog.
    index: HashTable<(u64, DialogKey)>,
    invites: BTreeMap<ClientTxId, InviteCtx>,
    clients: BTreeMap<ClientTxId, Pending>,
    /// INVITE server transactions (initial and re-INVITE) to their dialog, for CANCEL and
    /// timeouts.
    servers: BTreeMap<ServerTxId, DialogKey>,
    timers: BTreeSet<(Instant, Due)>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

fn call_handle(k: CallKey) -> CallHandle {
    CallHandle {
        index: k.index,
        generation: k.generation,
    }
}

fn call_key(h: CallHandle) -> CallKey {
    Key {
        index: h.index,
        generation: h.generation,
    }
}

/// The body of a message when it has one.
fn body_of(msg: &Message<'_>) -> Option<Vec<u8>> {
    let b = msg.body();
    (!b.is_empty()).then(|| b.to_vec())
}

/// A Record-Route or other header value on one line (folds replaced by a space).
fn one_line(v: &str) -> String {
    if v.contains(['\r', '\n']) {
        v.split(['\r', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        v.trim().to_owned()
    }
}

/// A response to write.
#[derive(Default)]
struct Reply<'a> {
    /// The To tag (initial INVITE responses).
    tag: Option<&'a str>,
    /// Add our Contact (1xx and 2xx to INVITE, section 12.1.1) for this transport.
    contact: Option<String>,
    /// Copy the request's Record-Route (dialog-creating responses, section 12.1.1).
    record_route: bool,
    body: Option<&'a [u8]>,
    extra: &'a [(&'a str, &'a str)],
}

impl Sessions {
    /// A session layer with its own random generator (tags, Call-IDs, section 14.1 timers).
    pub fn new(config: SessionConfig, seed: [u8; 32]) -> Sessions {
        let mut rng = SeededRng::new(seed);
        let hasher = KeyedHasher::new(rng.next_u64(), rng.next_u64());
        Sessions {
            config,
            rng,
            hasher,
            calls: Slab::default(),
            legs: Slab::default(),
            index: HashTable::new(),
            invites: BTreeMap::new(),
            clients: BTreeMap::new(),
            servers: BTreeMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Feeds one endpoint event. Returns it back when it is not the session layer's
    /// business: requests outside a dialog other than INVITE (REGISTER, MESSAGE, OPTIONS,
    /// ...), requests inside a dialog other than INVITE, ACK, BYE, CANCEL and OPTIONS (INFO,
    /// MESSAGE, NOTIFY, REFER, ...: after the section 12.2.2 CSeq check, for the caller to
    /// answer), responses and timeouts of transactions it did not start. Requests with a To
    /// tag that match no dialog are answered 481 here (section 12.2.2) and not returned.
    pub fn handle_event(
        &mut self,
        now: Instant,
        event: Event,
        endpoint: &mut Endpoint,
    ) -> Option<Event> {
        match event {
            Event::Request {
                tx,
                request,
                source,
                cancels,
            } => self.on_request(now, endpoint, tx, request, source, cancels),
            Event::Ack { request, source } => {
                if self.on_ack(now, endpoint, &request) {
                    None
                } else {
                    Some(Event::Ack { request, source })
                }
            }
            Event::Response { tx, response } => {
                if self.invites.contains_key(&tx) {
                    self.on_invite_response(now, endpoint, tx, &response);
                    None
                } else if let Some(p) = self.clients.get(&tx).copied() {
                    self.on_dialog_response(now, endpoint, tx, p, Some(&response));
                    None
                } else if self.resend_ack(now, endpoint, &response) {
                    None
                } else {
                    Some(Event::Response { tx, response })
                }
            }
            Event::StrayResponse { response, source } => {
                if self.resend_ack(now, endpoint, &response) {
                    None
                } else {
                    Some(Event::StrayResponse { response, source })
                }
            }
            Event::Timeout { tx, timer } => {
                if self.on_timeout(now, endpoint, tx, Some(timer)) {
                    None
                } else {
                    Some(event_timeout(tx, timer))
                }
            }
            Event::TransportError { tx } => {
                if self.on_timeout(now, endpoint, tx, None) {
                    None
                } else {
                    Some(Event::TransportError { tx })
                }
            }
        }
    }

    /// The next instant [`Sessions::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        while let Some(&(at, due)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match due {
                Due::Retransmit(k) => self.retransmit_2xx(now, endpoint, k),
                Due::Retry(k) => self.retry_reinvite(now, endpoint, k),
                Due::Lifetime(k) => self.lifetime_over(now, endpoint, k),
                Due::ForgetAck(k) => {
                    if let Some(leg) = self.legs.get_mut(k) {
                        if let Some(x) = leg.x.as_mut() {
                            x.ack = None;
                        }
                        leg.shrink();
                    }
                }
                Due::ForkWindow(tx) => self.fork_window_over(tx),
                Due::Abandoned(tx) => self.invite_timeout(now, tx, Some(Timer::B)),
                Due::Rel100(k) => self.ext_rel_due(now, endpoint, k),
                Due::SessionTimer(k) => self.ext_timer_due(now, endpoint, k),
                Due::UpdateRetry(k) => self.ext_retry_update(now, endpoint, k),
            }
        }
    }

    /// The next event for the application. At most [`MAX_SESSION_EVENTS`] wait.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Live calls.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Live dialogs (early and confirmed, forks included, and those whose BYE is out).
    pub fn dialogs(&self) -> usize {
        self.legs.len()
    }

    /// The kept (or only) dialog of a call: the callee's from the INVITE on, the caller's
    /// once a 2xx is kept (its early dialogs, one per fork, are not the call's yet).
    pub fn dialog(&self, call: CallHandle) -> Option<&Dialog> {
        let c = self.calls.get(call_key(call))?;
        self.legs.get(c.leg?).map(|l| &l.dialog)
    }

    /// The counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    // ---- shared machinery ----

    fn push_event(&mut self, event: SessionEvent) {
        if self.events.len() >= MAX_SESSION_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn new_tag(&mut self) -> String {
        let mut t = String::with_capacity(10);
        push_random_token(&mut t, &mut self.rng, 10);
        t
    }

    /// Our Contact (the configured one, unless a `sips:` dialog needs a `sips:` one and it
    /// is not; else built from a listener): for a `sips:` dialog
    /// a `sips:` URI of a TLS listener (RFC 3261 sections 8.1.1.8, 12.1.1 and 19.1;
    /// [`SessionError::NoTlsListener`] without one); otherwise the listener of `transport`
    /// (of `peer`'s address family when known; any listener when none has the transport),
    /// with `;transport=tcp` for TCP and `;transport=tls` for TLS. (RFC 5630 sections 3.1.4
    /// and 5.1.1.2 deprecate `transport=tls` but require a `sip:` Contact for a `sip:`
    /// dialog, even over TLS; `transport=tls` is the only `sip:` URI that leads back to a
    /// TLS listener, and what peers understand, so it is kept for that case.)
    fn contact(
        &self,
        ep: &Endpoint,
        transport: Transport,
        peer: Option<SocketAddr>,
        sips: bool,
    ) -> Result<String, SessionError> {
        if let Some(c) = &self.config.contact {
            // (a configured sip: Contact does not do for a sips: dialog, 8.1.1.8)
            if !sips || crate::hop::is_sips(c) {
                return Ok(c.clone());
            }
        }
        let listeners = &ep.config().listeners;
        let family = |l: &&crate::Listener| peer.is_none_or(|p| l.addr.is_ipv4() == p.is_ipv4());
        let l = if sips {
            let tls = |l: &&crate::Listener| l.transport == Transport::Tls;
            let l = listeners
                .iter()
                .filter(tls)
                .find(family)
                .or_else(|| listeners.iter().find(tls));
            Some(l.ok_or(SessionError::NoTlsListener)?)
        } else {
            listeners
                .iter()
                .filter(|l| l.transport == transport)
                .find(family)
                .or_else(|| listeners.iter().find(|l| l.transport == transport))
                .or_else(|| listeners.first())
        };
        let host = match l {
            Some(l) => match &l.sent_by {
                Some(s) => s.clone(),
                None => l.addr.to_string(),
            },
            None => "invalid".to_owned(),
        };
        let mut c = String::with_capacity(host.len() + self.config.contact_user.len() + 24);
        c.push_str(if sips { "<sips:" } else { "<sip:" });
        if !self.config.contact_user.is_empty() {
            c.push_str(&self.config.contact_user);
            c.push('@');
        }
        c.push_str(&host);
        match l.map(|l| l.transport) {
            Some(Transport::Tcp) => c.push_str(";transport=tcp"),
            Some(Transport::Tls) if !sips => c.push_str(";transport=tls"),
            _ => {}
        }
        c.push('>');
        Ok(c)
    }

    /// Our Contact in dialog `d` (the transport and address family it was made over;
    /// `sips:` when its Contact must be).
    fn dialog_contact(&self, ep: &Endpoint, d: &Dialog) -> Result<String, SessionError> {
        self.contact(ep, d.transport(), d.peer(), d.sips_contact())
    }

    fn hash_id(&self, call_id: &str, local: &str, remote: &str) -> u64 {
        self.hasher.hash_one((call_id, local, remote))
    }

    /// The dialog with this id.
    fn find(&self, call_id: &str, local: &str, remote: &str) -> Option<DialogKey> {
        let h = self.hash_id(call_id, local, remote);
        let legs = &self.legs;
        self.index
            .find(h, |&(hh, k)| {
                hh == h
                    && legs.get(k).is_some_and(|l| {
                        let id = l.dialog.id();
                        id.call_id == call_id && id.local_tag == local && id.remote_tag == remote
                    })
            })
            .map(|&(_, k)| k)
    }

    fn insert_leg(&mut self, leg: Leg) -> DialogKey {
        let id = leg.dialog.id();
        let h = self.hash_id(&id.call_id, &id.local_tag, &id.remote_tag);
        let k = self.legs.insert(leg);
        self.index.insert_unique(h, (h, k), |&(hh, _)| hh);
        k
    }

    /// Frees a dialog and every trace of it (index, timers, transactions it waits for).
    fn free_leg(&mut self, k: DialogKey) {
        let Some(leg) = self.legs.remove(k) else {
            return;
        };
        let id = leg.dialog.id();
        let h = self.hash_id(&id.call_id, &id.local_tag, &id.remote_tag);
        if let Ok(e) = self.index.find_entry(h, |&(_, kk)| kk == k) {
            e.remove();
        }
        if let Some(t) = leg.lifetime {
            self.timers.remove(&(t, Due::Lifetime(k)));
        }
        if let Some(t) = leg.retry_at {
            self.timers.remove(&(t, Due::Retry(k)));
        }
        if let Some(x) = &leg.x {
            if let Some(u) = &x.unacked {
                self.timers.remove(&(u.next, Due::Retransmit(k)));
            }
            if let Some(a) = &x.ack {
                self.timers.remove(&(a.until, Due::ForgetAck(k)));
            }
        }
        if let Some(e) = &leg.ext {
            self.ext_forget(k, e);
        }
        if let Some(tx) = leg.invite_out {
            self.clients.remove(&tx);
        }
        if let Some(tx) = leg.bye {
            self.clients.remove(&tx);
        }
        if let Some((tx, _)) = leg.invite_in {
            self.servers.remove(&tx);
        }
        if let Some(c) = leg.call.and_then(|c| self.calls.get_mut(c)) {
            if c.leg == Some(k) {
                c.leg = None;
            }
        }
    }

    /// Ends a call: the application hears [`SessionEvent::Ended`], the handle dies. Its
    /// dialog is freed unless a BYE of ours is still out (it goes when that completes).
    fn end_call(&mut self, c: CallKey, reason: EndReason) {
        let Some(call) = self.calls.remove(c) else {
            return;
        };
        self.stats.calls_ended += 1;
        self.push_event(SessionEvent::Ended {
            call: call_handle(c),
            reason,
        });
        if let Some(ctx) = call.ctx.and_then(|tx| self.invites.get_mut(&tx)) {
            ctx.call = None;
        }
        if let Some(k) = call.leg {
            let keep = self.legs.get_mut(k).is_some_and(|l| {
                l.call = None;
                l.bye.is_some()
            });
            if !keep {
                self.free_leg(k);
            }
        }
    }

    fn arm(&mut self, at: Instant, due: Due) {
        self.timers.insert((at, due));
    }

    /// Starts the [`SessionConfig::max_lifetime`] clock of a confirmed dialog.
    fn start_lifetime(&mut self, now: Instant, k: DialogKey) {
        if self.ext_has_timer(k) {
            // RFC 4028: the session timer frees a dialog whose peer vanished.
            return;
        }
        let at = now + self.config.max_lifetime;
        if let Some(leg) = self.legs.get_mut(k) {
            if leg.lifetime.is_none() {
                leg.lifetime = Some(at);
                self.timers.insert((at, Due::Lifetime(k)));
            }
        }
    }

    /// Writes and sends a response; `None` when it could not be built or sent.
    fn respond(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        code: u16,
        reply: Reply<'_>,
    ) -> Option<OwnedMessage> {
        let view = request.view();
        let rr: Vec<String> = if reply.record_route {
            view.header_all(HeaderName::RecordRoute)
                .map(one_line)
                .collect()
        } else {
            Vec::new()
        };
        let mut b = ResponseBuilder::from_view(&view, code);
        if let Some(t) = reply.tag {
            b = b.to_tag(t);
        }
        for r in &rr {
            b = b.header("Record-Route", r);
        }
        if let Some(c) = &reply.contact {
            b = b.header("Contact", c);
        }
        if let Some(s) = &self.config.user_agent {
            b = b.header("Server", s);
        }
        for &(n, v) in reply.extra {
            b = b.header(n, v);
        }
        if let Some(body) = reply.body {
            b = b.body("application/sdp", body);
        }
        let resp = b.build(&mut self.rng).ok()?;
        ep.send_response(now, tx, &resp).ok()?;
        Some(resp)
    }

    /// Answers a request that is refused before any dialog state (481, 500, 503...).
    fn refuse(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        let reply = Reply {
            extra,
            ..Reply::default()
        };
        let _ = self.respond(now, ep, tx, request, code, reply);
    }

    /// Builds a request inside dialog `k` with the next CSeq (ACK: with `seq`), our
    /// Contact for INVITE, and `body`.
    fn dialog_request(
        &mut self,
        ep: &Endpoint,
        k: DialogKey,
        method: Method<'_>,
        seq: Option<u32>,
        body: Option<&[u8]>,
    ) -> Result<(OwnedMessage, NextHop), SessionError> {
        let contact = {
            let leg = self.legs.get(k).ok_or(SessionError::UnknownCall)?;
            if method == Method::Invite {
                Some(self.dialog_contact(ep, &leg.dialog)?)
            } else {
                None
            }
        };
        let ext_headers = self.ext_request_headers(ep, k, method);
        let leg = self.legs.get_mut(k).ok_or(SessionError::UnknownCall)?;
        let seq = match seq {
            Some(s) => s,
            None => leg.dialog.next_seq(),
        };
        // Section 26.2: a secure dialog's requests go over TLS only (`None` otherwise).
        let hop = leg.dialog.next_hop().ok_or_else(|| {
            if leg.dialog.secure() || leg.dialog.sips_contact() {
                SessionError::InsecureHop
            } else {
                SessionError::NoNextHop
            }
        })?;
        let mut b = leg.dialog.request(method, seq);
        if let Some(c) = &contact {
            b = b.contact(c);
        }
        if let Some(ua) = &self.config.user_agent {
            b = b.header("User-Agent", ua);
        }
        if method == Method::Invite {
            b = b.header("Allow", ALLOW);
        }
        for (n, v) in &ext_headers {
            b = b.header(n, v);
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let req = b.build(&mut self.rng)?;
        Ok((self.auth_outgoing(k, method, req), hop))
    }

    /// Sends BYE on dialog `k` (section 15.1.1); the call ends with `reason` when it
    /// completes. A dialog whose BYE cannot be sent is freed at once.
    fn send_bye(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey, reason: EndReason) {
        let Some(leg) = self.legs.get(k) else {
            return;
        };
        if leg.bye.is_some() {
            return;
        }
        let call = leg.call;
        // A 2xx whose ACK waited for the application's answer is ACKed first (13.2.2.4).
        let unacked = leg.x.as_ref().and_then(|x| x.ack_wait);
        if let Some(seq) = unacked {
            if let Some(x) = self.legs.get_mut(k).and_then(|l| l.x.as_mut()) {
                x.ack_wait = None;
            }
            self.send_ack(now, ep, k, seq, None);
        }
        if let Some(c) = call.and_then(|c| self.calls.get_mut(c)) {
            c.state = CallState::Ending(reason);
        }
        let sent = self
            .dialog_request(ep, k, Method::Bye, None, None)
            .ok()
            .and_then(|(bye, hop)| ep.send_request(now, &bye, hop).ok());
        match sent {
            Some(tx) => {
                self.clients.insert(tx, Pending::Bye(k));
                if let Some(leg) = self.legs.get_mut(k) {
                    leg.bye = Some(tx);
                    leg.phase = Phase::Bye;
                }
            }
            None => {
                if let Some(c) = call {
                    self.end_call(c, reason);
                }
                self.free_leg(k);
            }
        }
    }

    /// A transaction of ours timed out or failed (`timer` `None`: a transport error).
    /// False when it is not ours.
    fn on_timeout(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: TxId,
        timer: Option<Timer>,
    ) -> bool {
        match tx {
            TxId::Client(tx) => {
                if self.invites.contains_key(&tx) {
                    self.invite_timeout(now, tx, timer);
                    return true;
                }
                match self.clients.get(&tx).copied() {
                    Some(p) => {
                        if timer == Some(Timer::C) {
                            return true;
                        }
                        self.on_dialog_failure(now, ep, tx, p, timer.is_none());
                        true
                    }
                    None => false,
                }
            }
            TxId::Server(tx) => {
                let Some(&k) = self.servers.get(&tx) else {
                    return false;
                };
                if timer == Some(Timer::H) {
                    // The ACK of a non-2xx final response never came: nothing is left.
                    self.servers.remove(&tx);
                    return true;
                }
                self.server_gone(k, tx, timer.is_none());
                true
            }
        }
    }
}

fn event_timeout(tx: TxId, timer: Timer) -> Event {
    // `Event::Timeout` is non-exhaustive: rebuilt from its fields as the endpoint made it.
    Event::Timeout { tx, timer }
}

impl TransactionUser for Sessions {
    /// Events the session layer returns are answered as [`crate::validate`] says (405,
    /// 501, ...: a request the session layer does not handle) or dropped.
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Some(Event::Request { tx, request, .. }) =
            Sessions::handle_event(self, now, event, endpoint)
        {
            let code = match request.message() {
                Ok(m) => match validate::request(&m, &POLICY) {
                    validate::Verdict::Respond(r) => r.status,
                    _ => 405,
                },
                Err(_) => 400,
            };
            let allow = [("Allow", ALLOW)];
            let extra: &[(&str, &str)] = if code == 405 { &allow } else { &[] };
            self.refuse(now, endpoint, tx, &request, code, extra);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Sessions::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        Sessions::handle_timeout(self, now, endpoint)
    }
}
