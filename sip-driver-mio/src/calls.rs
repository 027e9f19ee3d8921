//! Calls on the event loop: place and receive calls (RFC 3261 sections 12 to 15, RFC 3264
//! offer/answer, RFC 3262, 3311 and 4028 through [`sip_core::session`]) with callbacks,
//! in the style of PJSUA2's `Call` callbacks.
//!
//! [`Calls`] is a [`TransactionUser`] for [`Driver::run`](crate::Driver::run) (or
//! [`Driver::run_for`](crate::Driver::run_for) slices): it feeds the session layer
//! ([`Sessions`]) and calls the application's [`CallHandler`] for what happens: an
//! incoming call, progress, the answer, an offer from the peer, the end of a call. Each
//! callback gets a [`CallContext`] to act at once: ring, accept, reject, answer an offer,
//! re-INVITE, UPDATE, hang up, or place another call. Between run slices the application
//! acts with [`Calls::act`] (or the shortcuts [`Calls::call`] and [`Calls::hangup`]) on
//! the driver's endpoint ([`Driver::endpoint_mut`](crate::Driver::endpoint_mut)).
//!
//! Requests the session layer does not take (OPTIONS and MESSAGE outside a dialog,
//! REGISTER, ...) go to [`CallHandler::on_request`]; by default they are answered as a UAS
//! that implements only calls answers them (200 to OPTIONS, 405 or 501 otherwise).
//!
//! The crate documentation has a complete example: two drivers, one calls the other.

use std::time::Instant;

use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig, SessionError};
use sip_core::session::{SessionEvent, Sessions};
use sip_core::validate::{self, Policy, Verdict};
use sip_core::{Endpoint, Event, OwnedMessage, ResponseBuilder, SeededRng, TransactionUser};

/// What the application does with calls: each method is called from the event loop when
/// the matching thing happens, with a [`CallContext`] to act. Every method has a default;
/// a handler that places calls only needs none of the UAS ones, a callee none of the UAC
/// ones.
pub trait CallHandler {
    /// A new call arrived (an INVITE, `offer` its SDP if any). Answer it now or later
    /// (keep the handle): [`CallContext::ring`], [`CallContext::accept`] (with the SDP
    /// answer, or with an offer when `offer` is `None`), [`CallContext::reject`].
    /// Default: rejected with 603 Decline.
    fn on_incoming(
        &mut self,
        ctx: &mut CallContext<'_>,
        call: CallHandle,
        request: &OwnedMessage,
        offer: Option<&[u8]>,
    ) {
        let _ = (request, offer);
        let _ = ctx.reject(call, 603);
    }

    /// A call we placed got a provisional response above 100 (one per early dialog when
    /// a proxy forks); `sdp` is early media.
    fn on_progress(
        &mut self,
        ctx: &mut CallContext<'_>,
        call: CallHandle,
        status: u16,
        reason: &str,
        sdp: Option<&[u8]>,
    ) {
        let _ = (ctx, call, status, reason, sdp);
    }

    /// The call is established: for a call we placed, the 2xx arrived (its SDP, the
    /// answer, or an offer then also given to [`CallHandler::on_offer`]); for a call we
    /// accepted, the ACK arrived (its SDP: the answer to an offer in our 2xx).
    fn on_answered(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, sdp: Option<&[u8]>) {
        let _ = (ctx, call, sdp);
    }

    /// The peer made an offer (a re-INVITE, an UPDATE, a 2xx to an offerless INVITE, a
    /// reliable provisional response): answer it with [`CallContext::answer_offer`], now
    /// or later. `method` is the request that carried it ("INVITE" for a 2xx).
    /// Default: refused with 488 Not Acceptable Here (the session goes on unchanged).
    fn on_offer(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, method: &str, sdp: &[u8]) {
        let _ = (method, sdp);
        let _ = ctx.answer_offer(call, Err(488));
    }

    /// The answer to our re-INVITE or UPDATE offer.
    fn on_answer(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, sdp: &[u8]) {
        let _ = (ctx, call, sdp);
    }

    /// Our re-INVITE or UPDATE was refused with `status`; the session goes on as it was.
    fn on_offer_refused(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, status: u16) {
        let _ = (ctx, call, status);
    }

    /// The call is over, for `reason`; its handle names nothing any more.
    fn on_ended(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, reason: EndReason) {
        let _ = (ctx, call, reason);
    }

    /// An endpoint event that is not the session layer's business: a request outside any
    /// dialog other than INVITE (OPTIONS, MESSAGE, REGISTER, ...), or a response to a
    /// request the application sent itself. Default: [`CallContext::answer_plainly`].
    fn on_request(&mut self, ctx: &mut CallContext<'_>, event: Event) {
        ctx.answer_plainly(event);
    }

    /// When [`CallHandler::on_timeout`] wants to run (a ring time, a hold timer...);
    /// `None`: never.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The instant of [`CallHandler::poll_timeout`] has come.
    fn on_timeout(&mut self, ctx: &mut CallContext<'_>) {
        let _ = ctx;
    }
}

/// What a [`CallHandler`] acts with: the session layer and the endpoint, at one instant.
/// The commands are those of [`Sessions`], without the clock and endpoint arguments.
pub struct CallContext<'a> {
    now: Instant,
    sessions: &'a mut Sessions,
    endpoint: &'a mut Endpoint,
    rng: &'a mut SeededRng,
}

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("now", &self.now)
            .field("calls", &self.sessions.calls())
            .finish_non_exhaustive()
    }
}

/// Methods the default [`CallHandler::on_request`] implements.
const POLICY: Policy<'static> = Policy {
    methods: &[
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "UPDATE",
    ],
    ..Policy::UAS
};

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE";

impl CallContext<'_> {
    /// The instant of the callback.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The session layer: calls, dialogs ([`Sessions::dialog`]), counters.
    pub fn sessions(&self) -> &Sessions {
        self.sessions
    }

    /// The endpoint, for requests and responses outside calls.
    pub fn endpoint(&mut self) -> &mut Endpoint {
        self.endpoint
    }

    /// Places a call ([`Sessions::invite`]).
    pub fn call(&mut self, invite: Invite) -> Result<CallHandle, SessionError> {
        self.sessions.invite(self.now, self.endpoint, invite)
    }

    /// Rings an incoming call: 180, or 183 with early media `sdp`; reliable when 100rel
    /// applies ([`Sessions::ring`]).
    pub fn ring(&mut self, call: CallHandle, sdp: Option<Vec<u8>>) -> Result<(), SessionError> {
        self.sessions.ring(self.now, self.endpoint, call, sdp)
    }

    /// Accepts an incoming call: 200 with `sdp`, the answer to its offer, or our offer when
    /// it had none ([`Sessions::accept`]).
    pub fn accept(&mut self, call: CallHandle, sdp: Option<Vec<u8>>) -> Result<(), SessionError> {
        self.sessions.accept(self.now, self.endpoint, call, sdp)
    }

    /// Rejects an incoming call with a final status (486, 488, 603...).
    pub fn reject(&mut self, call: CallHandle, status: u16) -> Result<(), SessionError> {
        self.sessions.reject(self.now, self.endpoint, call, status)
    }

    /// Answers the offer of [`CallHandler::on_offer`]: `Ok(answer)`, or `Err(status)` to
    /// refuse it (488).
    pub fn answer_offer(
        &mut self,
        call: CallHandle,
        answer: Result<Vec<u8>, u16>,
    ) -> Result<(), SessionError> {
        self.sessions
            .answer_offer(self.now, self.endpoint, call, answer)
    }

    /// Sends a re-INVITE with a new offer (hold: a `sendonly` offer; resume: `sendrecv`);
    /// the answer comes to [`CallHandler::on_answer`].
    pub fn reinvite(&mut self, call: CallHandle, offer: Vec<u8>) -> Result<(), SessionError> {
        self.sessions.reinvite(self.now, self.endpoint, call, offer)
    }

    /// Sends an UPDATE with a new offer (RFC 3311).
    pub fn update(&mut self, call: CallHandle, offer: Vec<u8>) -> Result<(), SessionError> {
        self.sessions.update(self.now, self.endpoint, call, offer)
    }

    /// Ends a call in any state: CANCEL while a call we placed rings, 480 to an incoming
    /// call not answered yet, BYE once established. [`CallHandler::on_ended`] follows.
    pub fn hangup(&mut self, call: CallHandle) -> Result<(), SessionError> {
        self.sessions.hangup(self.now, self.endpoint, call)
    }

    /// Answers a request as a UAS that implements calls only (section 8.2): what
    /// [`validate`] refuses gets its status (405 with Allow, 420, 415...), OPTIONS gets
    /// 200 with Allow, any other request 405; responses and other events are dropped.
    pub fn answer_plainly(&mut self, event: Event) {
        let Event::Request { tx, request, .. } = event else {
            return;
        };
        let Ok(msg) = request.message() else {
            return;
        };
        let is_options = msg.method() == Some(sip_core::Method::Options);
        let status = match validate::request(&msg, &POLICY) {
            Verdict::Accept if is_options => 200,
            Verdict::Accept => 405,
            Verdict::Respond(r) => r.status,
            _ => return,
        };
        drop(msg);
        // The builder adds a random To tag (a request outside a dialog has none).
        let view = request.view();
        let mut builder = ResponseBuilder::from_view(&view, status);
        if matches!(status, 200 | 405) {
            builder = builder.header("Allow", ALLOW);
        }
        if let Ok(response) = builder.build(self.rng) {
            let _ = self.endpoint.send_response(self.now, tx, &response);
        }
    }
}

/// The session layer and an application's [`CallHandler`], as one [`TransactionUser`]
/// for the [`Driver`](crate::Driver).
#[derive(Debug)]
pub struct Calls<H> {
    sessions: Sessions,
    handler: H,
    rng: SeededRng,
}

impl<H: CallHandler> Calls<H> {
    /// The session layer with `config` (Contact user, 100rel, session timers, call cap...)
    /// around `handler`; `seed` keys its random generator (tags, Call-IDs, section 14.1
    /// timers): [`os_seed`](crate::os_seed), a fixed one only in tests.
    pub fn new(config: SessionConfig, seed: [u8; 32], handler: H) -> Calls<H> {
        let mut rng = SeededRng::new(seed);
        let mut session_seed = [0u8; 32];
        for chunk in session_seed.chunks_mut(8) {
            chunk.copy_from_slice(&sip_core::Rng::next_u64(&mut rng).to_le_bytes());
        }
        Calls {
            sessions: Sessions::new(config, session_seed),
            handler,
            rng,
        }
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The application's handler, to change it between run slices.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The session layer: calls, dialogs, counters.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Acts from outside a callback, between run slices, on the driver's endpoint
    /// ([`Driver::endpoint_mut`](crate::Driver::endpoint_mut)): `f` gets a context at the
    /// current instant and the handler. What it causes reaches the handler at once
    /// (an error's [`CallHandler::on_ended`], say); what it sends leaves on the next run.
    pub fn act<R>(
        &mut self,
        endpoint: &mut Endpoint,
        f: impl FnOnce(&mut CallContext<'_>, &mut H) -> R,
    ) -> R {
        let now = Instant::now();
        let mut ctx = CallContext {
            now,
            sessions: &mut self.sessions,
            endpoint,
            rng: &mut self.rng,
        };
        let out = f(&mut ctx, &mut self.handler);
        self.dispatch(now, endpoint);
        out
    }

    /// Places a call now (see [`Calls::act`]).
    pub fn call(
        &mut self,
        endpoint: &mut Endpoint,
        invite: Invite,
    ) -> Result<CallHandle, SessionError> {
        self.act(endpoint, |ctx, _| ctx.call(invite))
    }

    /// Hangs up a call now (see [`Calls::act`] and [`CallContext::hangup`]).
    pub fn hangup(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
    ) -> Result<(), SessionError> {
        self.act(endpoint, |ctx, _| ctx.hangup(call))
    }

    /// Hands every event the session layer has to the handler.
    fn dispatch(&mut self, now: Instant, endpoint: &mut Endpoint) {
        while let Some(event) = self.sessions.poll_event() {
            let mut ctx = CallContext {
                now,
                sessions: &mut self.sessions,
                endpoint,
                rng: &mut self.rng,
            };
            let h = &mut self.handler;
            match event {
                SessionEvent::Incoming {
                    call,
                    request,
                    offer,
                } => h.on_incoming(&mut ctx, call, &request, offer.as_deref()),
                SessionEvent::Progress {
                    call,
                    status,
                    reason,
                    sdp,
                } => h.on_progress(&mut ctx, call, status, &reason, sdp.as_deref()),
                SessionEvent::Answered { call, sdp } => {
                    h.on_answered(&mut ctx, call, sdp.as_deref())
                }
                SessionEvent::Offer { call, method, sdp } => {
                    h.on_offer(&mut ctx, call, &method, &sdp)
                }
                SessionEvent::Answer { call, sdp } => h.on_answer(&mut ctx, call, &sdp),
                SessionEvent::OfferRefused { call, status } => {
                    h.on_offer_refused(&mut ctx, call, status)
                }
                SessionEvent::Ended { call, reason } => h.on_ended(&mut ctx, call, reason),
                // Later kinds of events: nothing this handler knows to do.
                _ => {}
            }
        }
    }
}

impl<H: CallHandler> TransactionUser for Calls<H> {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Some(event) = self.sessions.handle_event(now, event, endpoint) {
            let mut ctx = CallContext {
                now,
                sessions: &mut self.sessions,
                endpoint,
                rng: &mut self.rng,
            };
            self.handler.on_request(&mut ctx, event);
        }
        self.dispatch(now, endpoint);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.sessions.poll_timeout(), self.handler.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        if self.sessions.poll_timeout().is_some_and(|t| t <= now) {
            self.sessions.handle_timeout(now, endpoint);
            self.dispatch(now, endpoint);
        }
        if self.handler.poll_timeout().is_some_and(|t| t <= now) {
            let mut ctx = CallContext {
                now,
                sessions: &mut self.sessions,
                endpoint,
                rng: &mut self.rng,
            };
            self.handler.on_timeout(&mut ctx);
            self.dispatch(now, endpoint);
        }
    }
}
