//! INVITE sessions (RFC 3261 sections 13 to 15) on top of the [`Endpoint`], both roles,
//! with the dialogs of [`crate::dialog`] and the offer/answer state of RFC 3264.

use std::time::{Duration, Instant};

use crate::dialog::Dialog;
use crate::endpoint::TransactionUser;
use crate::{BuildError, Endpoint, Event, OwnedMessage, SendError, Target, Timers};

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
#[allow(dead_code)] // (skeleton: read once `invite` is built)
pub struct Invite {
    request_uri: String,
    from: String,
    to: String,
    target: Target,
    offer: Option<Vec<u8>>,
    routes: Vec<String>,
    headers: Vec<(String, String)>,
    rel100: Option<Rel100>,
    session_expires: Option<u32>,
}

impl Invite {
    /// A call to `request_uri`, sent to `target`; `from` and `to` are name-addr or URI.
    pub fn new(request_uri: &str, from: &str, to: &str, target: Target) -> Invite {
        Invite {
            request_uri: request_uri.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            target,
            offer: None,
            routes: Vec::new(),
            headers: Vec::new(),
            rel100: None,
            session_expires: None,
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
    /// Calls established (2xx kept / ACK received).
    pub calls_answered: u64,
    /// Calls ended.
    pub calls_ended: u64,
    /// ACKs re-sent for retransmitted 2xx responses (section 13.2.2.4).
    pub acks_resent: u64,
    /// BYEs sent to forks the call did not keep (section 13.2.2.4).
    pub forks_ended: u64,
    /// INVITEs refused with 503 because [`SessionConfig::max_calls`] calls were live.
    pub calls_refused: u64,
}

/// The session layer: the calls and dialogs of one user agent.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    stats: SessionStats,
}

impl Sessions {
    /// A session layer with its own random generator (tags, Call-IDs, section 14.1 timers).
    pub fn new(config: SessionConfig, seed: [u8; 32]) -> Sessions {
        let _ = seed;
        Sessions {
            config,
            stats: SessionStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Feeds one endpoint event. Returns it back when it is not the session layer's
    /// business (REGISTER, MESSAGE and OPTIONS outside a dialog, responses of transactions
    /// it did not start, in-dialog requests other than INVITE, ACK, BYE, CANCEL, OPTIONS,
    /// ... after the CSeq check). Requests with a To tag that match no dialog are answered
    /// 481 here (section 12.2.2) and not returned.
    pub fn handle_event(
        &mut self,
        now: Instant,
        event: Event,
        endpoint: &mut Endpoint,
    ) -> Option<Event> {
        let _ = (now, endpoint);
        Some(event)
    }

    /// The next instant [`Sessions::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let _ = (now, endpoint);
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        None
    }

    /// UAC: places a call.
    pub fn invite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        invite: Invite,
    ) -> Result<CallHandle, SessionError> {
        let _ = (now, endpoint, invite);
        Err(SessionError::WrongState)
    }

    /// UAS: rings (180), or sends early media (183 with SDP).
    pub fn ring(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        early_sdp: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, early_sdp);
        Err(SessionError::WrongState)
    }

    /// UAS: answers the call (200 with the SDP answer, or with an offer when the INVITE had
    /// none).
    pub fn accept(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        sdp: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, sdp);
        Err(SessionError::WrongState)
    }

    /// UAS: refuses the call with a final status (300-699).
    pub fn reject(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        status: u16,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, status);
        Err(SessionError::WrongState)
    }

    /// Answers the peer's offer of [`SessionEvent::Offer`]; `Err(status)` refuses it (488).
    pub fn answer_offer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        answer: Result<Vec<u8>, u16>,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, answer);
        Err(SessionError::WrongState)
    }

    /// Sends a re-INVITE with a new offer.
    pub fn reinvite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        offer: Vec<u8>,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, offer);
        Err(SessionError::WrongState)
    }

    /// Sends an UPDATE with a new offer (RFC 3311).
    pub fn update(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        offer: Vec<u8>,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call, offer);
        Err(SessionError::WrongState)
    }

    /// Ends the call in any state: CANCEL (UAC before the final response), 480 (UAS before
    /// answering), BYE once established.
    pub fn hangup(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
    ) -> Result<(), SessionError> {
        let _ = (now, endpoint, call);
        Err(SessionError::WrongState)
    }

    /// Live calls.
    pub fn calls(&self) -> usize {
        0
    }

    /// Live dialogs (early and confirmed, forks included).
    pub fn dialogs(&self) -> usize {
        0
    }

    /// The kept (or only) dialog of a call.
    pub fn dialog(&self, call: CallHandle) -> Option<&Dialog> {
        let _ = call;
        None
    }

    /// The counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }
}

impl TransactionUser for Sessions {
    /// Events the session layer returns are answered as [`crate::validate`] says (405,
    /// 501, ...) or dropped.
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        let _ = Sessions::handle_event(self, now, event, endpoint);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Sessions::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        Sessions::handle_timeout(self, now, endpoint)
    }
}
