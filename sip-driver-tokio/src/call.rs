//! Calls: the INVITE sessions of [`sip_core::session`] behind an async API. [`Client::call`]
//! places a call and returns a [`Call`]; [`IncomingCalls`] (from
//! [`Driver::start_with_calls`]) yields the calls that arrive, each an [`IncomingCall`] to
//! ring, accept or reject. The session layer runs in the driver's owner task beside the
//! request/response API of [`Client`] and [`Incoming`](crate::Incoming): it answers what
//! happens inside the dialogs (ACK for every 2xx, CANCEL, BYE, OPTIONS, 481, 491, PRACK,
//! session timers) and tells the application what it must decide.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sip_core::sdp::{Direction, LocalMedia};
use sip_core::session::{
    CallHandle, EndReason, Invite, SessionConfig, SessionError, SessionEvent, Sessions,
};
use sip_core::{Endpoint, Event, HeaderName, Method, OwnedMessage};
use tokio::sync::{mpsc, oneshot};

use crate::client::Command;
use crate::{Client, Driver, Error, Incoming};

/// Events queued for one call before the application reads them. A peer's offer beyond
/// this is refused with 500 (RFC 3261 section 14.2: the session goes on); progress reports
/// beyond it are dropped. The end of the call is always delivered.
const CALL_EVENTS: usize = 32;

/// Incoming calls queued for the application; beyond, new INVITEs get 486 Busy Here.
const INCOMING_CALLS: usize = 64;

/// How long the Call-ID of an ended call still routes requests to the session layer: the
/// session layer answers the stragglers of its dialogs (a BYE crossing ours, 2xx
/// retransmissions) for 64*T1 (32 s at the default T1).
const CALL_ID_LINGER: Duration = Duration::from_secs(32);

/// What happened to a call: what [`Call::next_event`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// The callee is alerting: a provisional response above 100 without SDP (180 Ringing,
    /// 183 Session Progress); one per early dialog when a proxy forks the call.
    Ringing {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A provisional response with SDP: early media.
    EarlyMedia {
        /// The status code (183, 180).
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The callee's SDP.
        sdp: Vec<u8>,
    },
    /// The call is established: the caller got the 2xx (it carries the callee's SDP) and
    /// has ACKed it; the callee got the ACK (its SDP when the INVITE had no offer).
    Answered {
        /// The remote SDP that came with it, if any.
        sdp: Option<Vec<u8>>,
    },
    /// The peer made an offer (a re-INVITE or an UPDATE: hold, resume, new media; or the
    /// offer of a 2xx to an INVITE sent without one). Answer it with
    /// [`Call::answer_offer`]: an SDP answer, or a status such as 488.
    Offer {
        /// The request that carried it (`INVITE`, `UPDATE`, `PRACK`).
        method: String,
        /// The offer.
        sdp: Vec<u8>,
    },
    /// The answer to our re-INVITE or UPDATE.
    Answer {
        /// The peer's answer.
        sdp: Vec<u8>,
    },
    /// Our re-INVITE or UPDATE was refused with this status; the session goes on as it was.
    OfferRefused {
        /// The final status (488, 491 after the retry of RFC 3261 section 14.1, ...).
        status: u16,
    },
    /// The call is over (the last event).
    Ended(EndReason),
}

/// One call, placed ([`Client::call`]) or accepted ([`IncomingCall::accept`]). Its events
/// come from [`Call::next_event`]; dropping it before the call has ended hangs up.
#[derive(Debug)]
pub struct Call {
    handle: CallHandle,
    events: mpsc::Receiver<CallEvent>,
    ended: Arc<OnceLock<EndReason>>,
    rejection: Arc<OnceLock<OwnedMessage>>,
    /// [`CallEvent::Ended`] has been returned.
    done: bool,
    cmds: mpsc::UnboundedSender<Command>,
    remote_sdp: Option<Vec<u8>>,
}

/// The calls that arrive: from [`Driver::start_with_calls`]. While it lives, every INVITE
/// outside a dialog is a call here (and not a request on [`Incoming`]); once it is dropped
/// they go to [`Incoming`] again.
#[derive(Debug)]
pub struct IncomingCalls {
    rx: mpsc::Receiver<IncomingCall>,
    /// Keeps the driver alive while the application listens.
    _cmds: mpsc::UnboundedSender<Command>,
}

/// A call that has arrived and is not answered yet: [`ring`](IncomingCall::ring), then
/// [`accept`](IncomingCall::accept) or [`reject`](IncomingCall::reject). Dropped without
/// either, it is refused with 480 Temporarily Unavailable. The caller may cancel meanwhile:
/// [`IncomingCall::next_event`] then says [`CallEvent::Ended`] with
/// [`EndReason::Cancelled`].
#[derive(Debug)]
pub struct IncomingCall {
    request: OwnedMessage,
    call: Call,
}

/// What the call handles ask of the owner task.
#[derive(Debug)]
pub(crate) enum CallCommand {
    Invite {
        invite: Invite,
        reply: oneshot::Sender<Result<Call, Error>>,
    },
    Op {
        call: CallHandle,
        op: CallOp,
        /// `None`: nobody waits (a handle being dropped).
        reply: Option<oneshot::Sender<Result<(), SessionError>>>,
    },
}

#[derive(Debug)]
pub(crate) enum CallOp {
    Ring(Option<Vec<u8>>),
    Accept(Option<Vec<u8>>),
    Reject(u16),
    AnswerOffer(Result<Vec<u8>, u16>),
    Reinvite(Vec<u8>),
    Update(Vec<u8>),
    Hangup,
}

impl Driver {
    /// Starts the driver like [`Driver::start`], and also takes incoming calls: every
    /// INVITE outside a dialog becomes an [`IncomingCall`] on the returned
    /// [`IncomingCalls`] (other requests still come on [`Incoming`]). `config` sets up the
    /// session layer of both directions (the Contact's user part, 100rel, session timers,
    /// the cap on calls); its timers should be the endpoint's (`driver.config().timers`).
    pub fn start_with_calls(self, config: SessionConfig) -> (Client, Incoming, IncomingCalls) {
        let (tx, rx) = mpsc::channel(INCOMING_CALLS);
        let (client, incoming) = self.start_inner(config, Some(tx));
        let calls = IncomingCalls {
            rx,
            _cmds: client.commands(),
        };
        (client, incoming, calls)
    }
}

impl Client {
    /// Places a call (RFC 3261 section 13.2): sends the INVITE built from `invite` and
    /// returns the [`Call`], whose events tell how it goes. The session layer sends the
    /// ACK for each 2xx (and for its retransmissions), ends the 2xx of a second fork with
    /// ACK and BYE, answers requests inside the dialog, and sends PRACK when 100rel
    /// applies.
    pub async fn call(&self, invite: Invite) -> Result<Call, Error> {
        let (reply, result) = oneshot::channel();
        self.send(Command::Call(CallCommand::Invite { invite, reply }))?;
        result.await.map_err(|_| Error::Stopped)?
    }
}

impl Call {
    /// The session layer's handle of the call (for logs: [`CallHandle::get`]).
    pub fn handle(&self) -> CallHandle {
        self.handle
    }

    /// The next event, in order; [`CallEvent::Ended`] is the last one, then `None`.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        if self.done {
            return None;
        }
        let event = match self.events.recv().await {
            Some(e) => e,
            // The owner task dropped the sender: the call ended (or the driver stopped).
            None => CallEvent::Ended(
                self.ended
                    .get()
                    .copied()
                    .unwrap_or(EndReason::TransportError),
            ),
        };
        match &event {
            CallEvent::EarlyMedia { sdp, .. }
            | CallEvent::Offer { sdp, .. }
            | CallEvent::Answer { sdp } => self.remote_sdp = Some(sdp.clone()),
            CallEvent::Answered { sdp: Some(sdp) } => self.remote_sdp = Some(sdp.clone()),
            CallEvent::Ended(_) => self.done = true,
            _ => {}
        }
        Some(event)
    }

    /// The peer's latest SDP: the offer of an incoming call, the answer of a placed one,
    /// then the latest offer or answer of a re-INVITE or UPDATE (as far as
    /// [`Call::next_event`] has read).
    pub fn remote_sdp(&self) -> Option<&[u8]> {
        self.remote_sdp.as_deref()
    }

    /// The final response that ended a placed call with [`EndReason::Rejected`]: a 401 or
    /// 407 carries the challenge to answer in a new call (its credentials go in with
    /// [`Invite::header`]), a 3xx its Contacts.
    pub fn rejection(&self) -> Option<&OwnedMessage> {
        self.rejection.get()
    }

    /// Has the call ended (its [`CallEvent::Ended`] read, or about to be)?
    pub fn is_ended(&self) -> bool {
        self.done || self.ended.get().is_some()
    }

    /// Ends the call: CANCEL while the placed call rings (RFC 3261 section 9.1; a 2xx that
    /// crosses it is ACKed and ended with BYE), BYE once it is established (section 15).
    /// [`CallEvent::Ended`] follows.
    pub async fn hangup(&self) -> Result<(), Error> {
        self.op(CallOp::Hangup).await
    }

    /// Sends a re-INVITE with a new offer (RFC 3261 section 14.1); the answer comes as
    /// [`CallEvent::Answer`] or [`CallEvent::OfferRefused`].
    pub async fn reinvite(&self, offer: Vec<u8>) -> Result<(), Error> {
        self.op(CallOp::Reinvite(offer)).await
    }

    /// Sends an UPDATE with a new offer (RFC 3311); the answer comes as
    /// [`CallEvent::Answer`] or [`CallEvent::OfferRefused`].
    pub async fn update(&self, offer: Vec<u8>) -> Result<(), Error> {
        self.op(CallOp::Update(offer)).await
    }

    /// Answers the peer's [`CallEvent::Offer`]: `Ok(answer)`, or `Err(status)` to refuse it
    /// (488 Not Acceptable Here; the session goes on as it was).
    pub async fn answer_offer(&self, answer: Result<Vec<u8>, u16>) -> Result<(), Error> {
        self.op(CallOp::AnswerOffer(answer)).await
    }

    /// Puts the call on hold: a re-INVITE whose offer from `media` is `sendonly` (RFC 3264
    /// section 8.4). Check the answer with [`LocalMedia::accept_answer`].
    pub async fn hold(&self, media: &mut LocalMedia) -> Result<(), Error> {
        self.reinvite(media.offer(Direction::SendOnly)).await
    }

    /// Takes the call off hold: a re-INVITE whose offer from `media` is `sendrecv`.
    pub async fn resume(&self, media: &mut LocalMedia) -> Result<(), Error> {
        self.reinvite(media.offer(Direction::SendRecv)).await
    }

    async fn op(&self, op: CallOp) -> Result<(), Error> {
        let (reply, result) = oneshot::channel();
        self.cmds
            .send(Command::Call(CallCommand::Op {
                call: self.handle,
                op,
                reply: Some(reply),
            }))
            .map_err(|_| Error::Stopped)?;
        result
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(Error::Session)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.is_ended() {
            let _ = self.cmds.send(Command::Call(CallCommand::Op {
                call: self.handle,
                op: CallOp::Hangup,
                reply: None,
            }));
        }
    }
}

impl IncomingCalls {
    /// The next call that arrives; `None` once the driver has stopped.
    pub async fn next(&mut self) -> Option<IncomingCall> {
        self.rx.recv().await
    }
}

impl IncomingCall {
    /// The INVITE.
    pub fn request(&self) -> &OwnedMessage {
        &self.request
    }

    /// The caller's SDP offer, if the INVITE had one.
    pub fn offer(&self) -> Option<&[u8]> {
        self.call.remote_sdp()
    }

    /// The session layer's handle of the call.
    pub fn handle(&self) -> CallHandle {
        self.call.handle
    }

    /// Alerts the caller: 180 Ringing, or 183 Session Progress with `early_sdp` (reliable
    /// when 100rel applies, RFC 3262).
    pub async fn ring(&self, early_sdp: Option<Vec<u8>>) -> Result<(), Error> {
        self.call.op(CallOp::Ring(early_sdp)).await
    }

    /// Answers the call: 200 with `sdp` (the answer to the offer, or an offer when the
    /// INVITE had none), retransmitted until the ACK (RFC 3261 section 13.3.1.4).
    /// [`CallEvent::Answered`] comes with the ACK.
    pub async fn accept(self, sdp: Option<Vec<u8>>) -> Result<Call, Error> {
        self.call.op(CallOp::Accept(sdp)).await?;
        Ok(self.call)
    }

    /// Refuses the call with a final status (300-699: 486 Busy Here, 488, 603 Decline).
    pub async fn reject(mut self, status: u16) -> Result<(), Error> {
        let r = self.call.op(CallOp::Reject(status)).await;
        if r.is_ok() {
            // Refused: nothing to hang up when it is dropped.
            self.call.done = true;
        }
        r
    }

    /// What happened before the call was answered: [`CallEvent::Ended`] when the caller
    /// cancelled (RFC 3261 section 9.2) or the call failed.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.call.next_event().await
    }
}

/// Where one call's events go.
#[derive(Debug)]
struct CallSink {
    events: mpsc::Sender<CallEvent>,
    ended: Arc<OnceLock<EndReason>>,
    /// The final response that rejected a placed call.
    rejection: Arc<OnceLock<OwnedMessage>>,
    /// The call's Call-ID, once known (UAS: the INVITE's; UAC: its first dialog's).
    call_id: Option<String>,
}

/// The session layer inside the built-in transaction user, with the calls' event queues.
#[derive(Debug)]
pub(crate) struct CallTable {
    sessions: Sessions,
    sinks: HashMap<CallHandle, CallSink>,
    /// The Call-IDs of the calls (how many live calls have each, and until when an ended
    /// one still routes requests here): requests with these Call-IDs are the session
    /// layer's; others stay on the request/response API.
    call_ids: HashMap<String, (usize, Option<Instant>)>,
    incoming: Option<mpsc::Sender<IncomingCall>>,
    cmds: mpsc::WeakUnboundedSender<Command>,
    /// The final non-2xx response being handed to the session layer: the one that ends a
    /// placed call with [`EndReason::Rejected`] in the same turn.
    last_final: Option<OwnedMessage>,
    /// The Call-ID of the response being handed to the session layer: a placed call that
    /// reports progress or its answer in the same turn has it.
    last_call_id: Option<String>,
}

impl CallTable {
    pub(crate) fn new(
        config: SessionConfig,
        seed: [u8; 32],
        incoming: Option<mpsc::Sender<IncomingCall>>,
        cmds: mpsc::WeakUnboundedSender<Command>,
    ) -> CallTable {
        CallTable {
            sessions: Sessions::new(config, seed),
            sinks: HashMap::new(),
            call_ids: HashMap::new(),
            incoming,
            cmds,
            last_final: None,
            last_call_id: None,
        }
    }

    /// Is there anything of the session layer's going on (live calls, dialogs, lingering
    /// Call-IDs)?
    pub(crate) fn active(&self) -> bool {
        !self.sinks.is_empty()
            || !self.call_ids.is_empty()
            || self.sessions.calls() > 0
            || self.sessions.dialogs() > 0
    }

    /// Is this request the session layer's: inside (or cancelling) one of its calls, or a
    /// new INVITE while the application takes incoming calls?
    pub(crate) fn wants_request(&self, request: &OwnedMessage) -> bool {
        let view = request.view();
        let call_id = view.header(HeaderName::CallId).unwrap_or("").trim();
        if self.call_ids.contains_key(call_id) {
            return true;
        }
        let takes_calls = self.incoming.as_ref().is_some_and(|tx| !tx.is_closed());
        takes_calls && view.method() == Some(Method::Invite) && !has_to_tag(request)
    }

    /// Feeds an event to the session layer; returns it when it is not the session layer's.
    pub(crate) fn handle_event(
        &mut self,
        now: Instant,
        event: Event,
        ep: &mut Endpoint,
    ) -> Option<Event> {
        if let Event::Response { response, .. } | Event::StrayResponse { response, .. } = &event {
            if response.view().status().is_some_and(|c| c >= 300) {
                self.last_final = Some(response.clone());
            }
            let call_id = response.view().header(HeaderName::CallId).unwrap_or("");
            self.last_call_id = Some(call_id.trim().to_owned());
        }
        let back = self.sessions.handle_event(now, event, ep);
        self.dispatch(now, ep);
        self.last_final = None;
        self.last_call_id = None;
        back
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let linger = self.call_ids.values().filter_map(|(_, until)| *until).min();
        match (self.sessions.poll_timeout(), linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, ep: &mut Endpoint) {
        if self.sessions.poll_timeout().is_some_and(|t| t <= now) {
            self.sessions.handle_timeout(now, ep);
        }
        self.call_ids
            .retain(|_, (live, until)| *live > 0 || until.is_some_and(|u| u > now));
        self.dispatch(now, ep);
    }

    pub(crate) fn command(&mut self, now: Instant, cmd: CallCommand, ep: &mut Endpoint) {
        match cmd {
            CallCommand::Invite { invite, reply } => {
                let r = self.sessions.invite(now, ep, invite);
                let r = match (r, self.cmds.upgrade()) {
                    (Ok(handle), Some(cmds)) => {
                        let call = self.open(handle, cmds, None, None);
                        self.learn_call_id(handle);
                        Ok(call)
                    }
                    (Ok(handle), None) => {
                        let _ = self.sessions.hangup(now, ep, handle);
                        Err(Error::Stopped)
                    }
                    (Err(e), _) => Err(Error::Session(e)),
                };
                let _ = reply.send(r);
            }
            CallCommand::Op { call, op, reply } => {
                let r = match op {
                    CallOp::Ring(sdp) => self.sessions.ring(now, ep, call, sdp),
                    CallOp::Accept(sdp) => self.sessions.accept(now, ep, call, sdp),
                    CallOp::Reject(status) => self.sessions.reject(now, ep, call, status),
                    CallOp::AnswerOffer(a) => self.sessions.answer_offer(now, ep, call, a),
                    CallOp::Reinvite(offer) => self.sessions.reinvite(now, ep, call, offer),
                    CallOp::Update(offer) => self.sessions.update(now, ep, call, offer),
                    CallOp::Hangup => self.sessions.hangup(now, ep, call),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
        }
        self.dispatch(now, ep);
    }

    /// A call's event queue and its handle.
    fn open(
        &mut self,
        handle: CallHandle,
        cmds: mpsc::UnboundedSender<Command>,
        offer: Option<Vec<u8>>,
        call_id: Option<String>,
    ) -> Call {
        let (tx, rx) = mpsc::channel(CALL_EVENTS);
        let ended = Arc::new(OnceLock::new());
        let rejection = Arc::new(OnceLock::new());
        if let Some(id) = &call_id {
            self.note_call_id(id.clone());
        }
        self.sinks.insert(
            handle,
            CallSink {
                events: tx,
                ended: Arc::clone(&ended),
                rejection: Arc::clone(&rejection),
                call_id,
            },
        );
        Call {
            handle,
            events: rx,
            ended,
            rejection,
            done: false,
            cmds,
            remote_sdp: offer,
        }
    }

    /// Notes the Call-ID of a placed call once the session layer has a dialog for it
    /// (requests from the callee come only once a dialog exists).
    fn learn_call_id(&mut self, handle: CallHandle) {
        let Some(sink) = self.sinks.get_mut(&handle) else {
            return;
        };
        if sink.call_id.is_some() {
            return;
        }
        let id = match self.sessions.dialog(handle) {
            Some(d) => Some(d.id().call_id.clone()),
            // (an early dialog not kept yet: the response that reported it)
            None => self.last_call_id.clone(),
        };
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            sink.call_id = Some(id.clone());
            self.note_call_id(id);
        }
    }

    fn note_call_id(&mut self, call_id: String) {
        let entry = self.call_ids.entry(call_id).or_insert((0, None));
        entry.0 += 1;
        entry.1 = None;
    }

    /// Hands the session layer's events to the calls.
    fn dispatch(&mut self, now: Instant, ep: &mut Endpoint) {
        while let Some(event) = self.sessions.poll_event() {
            match event {
                SessionEvent::Incoming {
                    call,
                    request,
                    offer,
                } => self.incoming(now, ep, call, request, offer),
                SessionEvent::Progress {
                    call,
                    status,
                    reason,
                    sdp,
                } => {
                    self.learn_call_id(call);
                    let event = match sdp {
                        Some(sdp) => CallEvent::EarlyMedia {
                            status,
                            reason,
                            sdp,
                        },
                        None => CallEvent::Ringing { status, reason },
                    };
                    self.deliver(now, ep, call, event);
                }
                SessionEvent::Answered { call, sdp } => {
                    self.learn_call_id(call);
                    self.deliver(now, ep, call, CallEvent::Answered { sdp });
                }
                SessionEvent::Offer { call, method, sdp } => {
                    self.deliver(now, ep, call, CallEvent::Offer { method, sdp })
                }
                SessionEvent::Answer { call, sdp } => {
                    self.deliver(now, ep, call, CallEvent::Answer { sdp })
                }
                SessionEvent::OfferRefused { call, status } => {
                    self.deliver(now, ep, call, CallEvent::OfferRefused { status })
                }
                SessionEvent::Ended { call, reason } => self.end(now, call, reason),
                other => tracing::debug!(?other, "session event ignored"),
            }
        }
    }

    fn incoming(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        handle: CallHandle,
        request: OwnedMessage,
        offer: Option<Vec<u8>>,
    ) {
        let (Some(tx), Some(cmds)) = (self.incoming.clone(), self.cmds.upgrade()) else {
            let _ = self.sessions.reject(now, ep, handle, 480);
            return;
        };
        let call_id = request
            .view()
            .header(HeaderName::CallId)
            .unwrap_or("")
            .trim()
            .to_owned();
        let call = self.open(handle, cmds, offer, Some(call_id));
        if let Err(e) = tx.try_send(IncomingCall { request, call }) {
            // Nobody takes calls, or too many wait: refuse this one now (the handle's drop
            // would send 480 later).
            let mut refused = e.into_inner();
            refused.call.done = true;
            let _ = self.sessions.reject(now, ep, handle, 486);
            self.forget(now, handle);
        }
    }

    fn deliver(&mut self, now: Instant, ep: &mut Endpoint, call: CallHandle, event: CallEvent) {
        let Some(sink) = self.sinks.get(&call) else {
            // The handle is gone: an offer nobody answers is refused.
            if matches!(event, CallEvent::Offer { .. }) {
                let _ = self.sessions.answer_offer(now, ep, call, Err(488));
            }
            return;
        };
        if let Err(e) = sink.events.try_send(event) {
            let event = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            if matches!(event, CallEvent::Offer { .. }) {
                // The application is not keeping up: refuse the offer, the session goes on
                // (RFC 3261 section 14.2).
                let _ = self.sessions.answer_offer(now, ep, call, Err(500));
            }
            tracing::debug!(call = call.get(), ?event, "call event dropped");
        }
    }

    fn end(&mut self, now: Instant, call: CallHandle, reason: EndReason) {
        if let Some(sink) = self.sinks.get(&call) {
            if let (EndReason::Rejected(code), Some(r)) = (reason, &self.last_final) {
                if r.view().status() == Some(code) {
                    let _ = sink.rejection.set(r.clone());
                }
            }
            let _ = sink.ended.set(reason);
            // Delivered in order when there is room; else the closed queue says Ended.
            let _ = sink.events.try_send(CallEvent::Ended(reason));
        }
        self.forget(now, call);
    }

    /// Drops a call's queue; its Call-ID lingers a while for the stragglers of its
    /// dialogs.
    fn forget(&mut self, now: Instant, call: CallHandle) {
        let Some(sink) = self.sinks.remove(&call) else {
            return;
        };
        if let Some((live, until)) = sink.call_id.and_then(|id| self.call_ids.get_mut(&id)) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                *until = Some(now + CALL_ID_LINGER);
            }
        }
    }
}

fn has_to_tag(request: &OwnedMessage) -> bool {
    request
        .message()
        .ok()
        .and_then(|m| m.to().and_then(|t| t.tag()).map(|_| ()))
        .is_some()
}
