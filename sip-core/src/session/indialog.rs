//! Inside a dialog, both ways: re-INVITE with offer/answer (RFC 3261 section 14, RFC 3264),
//! the 491 and 500 of section 14.2 and the retry timers of section 14.1, BYE (section
//! 15.1), the end of a dialog on 408 and 481 (section 12.2.1.2), hangup in every state,
//! and [`SessionConfig::max_lifetime`].

use std::time::{Duration, Instant};

use super::*;

impl Sessions {
    /// A re-INVITE from the peer (section 14.2), its CSeq already checked.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_reinvite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        k: DialogKey,
        seq: u32,
        offer: Option<Vec<u8>>,
    ) {
        let Some(leg) = self.legs.get(k) else {
            return;
        };
        let unanswered = leg
            .x
            .as_ref()
            .is_some_and(|x| x.request_in.is_some() && x.unacked.is_none());
        if leg.phase == Phase::Bye || leg.phase == Phase::Early {
            self.refuse(now, ep, tx, &request, 481, &[]);
            return;
        }
        if unanswered || leg.invite_in.is_some() && leg.offer != OfferState::LocalOffer {
            // Section 14.2: an INVITE still being processed: 500 with a Retry-After
            // between 0 and 10 s.
            let secs = (self.rng.next_u64() % 11).to_string();
            self.refuse(now, ep, tx, &request, 500, &[("Retry-After", &secs)]);
            return;
        }
        if leg.invite_out.is_some() || leg.offer != OfferState::Stable {
            // Section 14.2 / RFC 3264 section 4: our own offer is pending: 491.
            self.refuse(now, ep, tx, &request, 491, &[]);
            return;
        }
        let call = leg.call;
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        leg.invite_in = Some((tx, seq));
        leg.offer = if offer.is_some() {
            OfferState::RemoteOffer
        } else {
            OfferState::Stable
        };
        leg.x().request_in = Some(request);
        self.servers.insert(tx, k);
        if let Some(c) = call {
            // An offerless re-INVITE asks for our offer: `sdp` is empty then.
            self.push_event(SessionEvent::Offer {
                call: call_handle(c),
                method: "INVITE".to_owned(),
                sdp: offer.unwrap_or_default(),
            });
        }
    }

    /// Answers the peer's offer of [`SessionEvent::Offer`]; `Err(status)` refuses it (488).
    ///
    /// - a re-INVITE's offer: the 2xx with the answer (or the status, and the session goes
    ///   on as it was); for an offerless re-INVITE (an `Offer` with an empty `sdp`) give
    ///   our offer, whose answer comes in the ACK ([`SessionEvent::Answer`]);
    /// - the offer in the 2xx to our offerless INVITE: the ACK with the answer (a refusal
    ///   sends the ACK without a body, then BYE: RFC 3264 leaves no other way).
    pub fn answer_offer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        answer: Result<Vec<u8>, u16>,
    ) -> Result<(), SessionError> {
        if let Some(done) = self.ext_answer_offer(now, endpoint, call, &answer) {
            return done;
        }
        let c = call_key(call);
        let k = self
            .calls
            .get(c)
            .ok_or(SessionError::UnknownCall)?
            .leg
            .ok_or(SessionError::WrongState)?;
        let leg = self.legs.get_mut(k).ok_or(SessionError::UnknownCall)?;
        // The ACK waiting for our answer (UAC, offerless INVITE).
        if let Some(seq) = leg.x.as_mut().and_then(|x| x.ack_wait.take()) {
            leg.offer = OfferState::Stable;
            leg.shrink();
            match answer {
                Ok(sdp) => self.send_ack(now, endpoint, k, seq, Some(&sdp)),
                Err(_) => {
                    self.send_ack(now, endpoint, k, seq, None);
                    self.send_bye(now, endpoint, k, EndReason::LocalBye);
                }
            }
            return Ok(());
        }
        let pending = leg
            .x
            .as_ref()
            .is_some_and(|x| x.request_in.is_some() && x.unacked.is_none());
        if !pending || leg.phase == Phase::Early {
            return Err(SessionError::WrongState);
        }
        let offerless = leg.offer != OfferState::RemoteOffer;
        match answer {
            Ok(sdp) => {
                let resp = self.respond_invite(now, endpoint, k, 200, Some(&sdp))?;
                let seq = self
                    .legs
                    .get_mut(k)
                    .map(|leg| {
                        leg.offer = if offerless {
                            OfferState::LocalOffer
                        } else {
                            OfferState::Stable
                        };
                        if let Some(x) = leg.x.as_mut() {
                            x.request_in = None;
                        }
                        leg.invite_in.map_or(0, |(_, s)| s)
                    })
                    .unwrap_or(0);
                self.start_retransmit(now, k, resp, seq);
            }
            Err(status) => {
                let status = if (300..=699).contains(&status) {
                    status
                } else {
                    488
                };
                let sent = self.respond_invite(now, endpoint, k, status, None);
                self.drop_invite_in(k);
                sent?;
            }
        }
        Ok(())
    }

    /// Sends a re-INVITE with a new offer (section 14.1). Refused while an offer is pending
    /// either way (RFC 3264 section 4) or an INVITE is in progress.
    pub fn reinvite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        offer: Vec<u8>,
    ) -> Result<(), SessionError> {
        let c = call_key(call);
        let k = self
            .calls
            .get(c)
            .ok_or(SessionError::UnknownCall)?
            .leg
            .ok_or(SessionError::WrongState)?;
        let leg = self.legs.get(k).ok_or(SessionError::UnknownCall)?;
        if leg.phase != Phase::Up {
            return Err(SessionError::WrongState);
        }
        if leg.invite_out.is_some()
            || leg.invite_in.is_some()
            || leg.offer != OfferState::Stable
            || leg.retry_at.is_some()
        {
            return Err(SessionError::OfferPending);
        }
        if let Some(leg) = self.legs.get_mut(k) {
            leg.x().retries = 0;
        }
        self.send_reinvite(now, endpoint, k, offer)
    }

    pub(super) fn send_reinvite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        offer: Vec<u8>,
    ) -> Result<(), SessionError> {
        let (req, target) = self.dialog_request(ep, k, Method::Invite, None, Some(&offer))?;
        let tx = ep.send_request(now, &req, target)?;
        self.clients.insert(tx, Pending::ReInvite(k));
        if let Some(leg) = self.legs.get_mut(k) {
            leg.invite_out = Some(tx);
            leg.offer = OfferState::LocalOffer;
            leg.x().offer_out = Some(offer);
        }
        Ok(())
    }

    /// Section 14.1: the re-INVITE refused 491 goes again, unless the peer's offer got in
    /// first (then the application hears of the 491).
    pub(super) fn retry_reinvite(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        leg.retry_at = None;
        let offer = leg.x.as_mut().and_then(|x| x.offer_out.take());
        leg.shrink();
        let free = leg.phase == Phase::Up
            && leg.invite_out.is_none()
            && leg.invite_in.is_none()
            && leg.offer == OfferState::Stable;
        let call = leg.call;
        match offer {
            Some(offer) if free => {
                self.stats.glare_retries += 1;
                if self.send_reinvite(now, ep, k, offer).is_err() {
                    self.refused(call, 491);
                }
            }
            _ => self.refused(call, 491),
        }
    }

    pub(super) fn refused(&mut self, call: Option<CallKey>, status: u16) {
        if let Some(c) = call.filter(|&c| self.calls.get(c).is_some()) {
            self.push_event(SessionEvent::OfferRefused {
                call: call_handle(c),
                status,
            });
        }
    }

    /// A response to a request of ours inside a dialog (re-INVITE, BYE).
    pub(super) fn on_dialog_response(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        pending: Pending,
        response: Option<&OwnedMessage>,
    ) {
        let Some(resp) = response.and_then(|r| r.message().ok()) else {
            return;
        };
        let Some(status) = resp.status() else {
            return;
        };
        if status < 200 {
            return;
        }
        // RFC 3261 section 22.2: a challenge is answered once with credentials.
        if matches!(status, 401 | 407)
            && response.is_some_and(|r| self.auth_retry_in_dialog(now, ep, tx, pending, r))
        {
            return;
        }
        self.clients.remove(&tx);
        match pending {
            Pending::Bye(k) => {
                drop(resp);
                self.bye_done(k);
            }
            Pending::Update(_) | Pending::Prack(_) => {
                self.ext_on_response(now, ep, pending, Some(&resp), false);
            }
            Pending::ReInvite(k) => {
                let seq = resp.cseq().map_or(0, |c| c.seq);
                let Some(leg) = self.legs.get_mut(k) else {
                    return;
                };
                leg.invite_out = None;
                let call = leg.call;
                if (200..300).contains(&status) {
                    // Sections 12.2.1.2 and 14.1: a target refresh; the answer.
                    leg.dialog.refresh_target(&resp);
                    self.ext_reinvite_answered(now, k, &resp);
                    let Some(leg) = self.legs.get_mut(k) else {
                        return;
                    };
                    let answer = body_of(&resp);
                    drop(resp);
                    leg.offer = OfferState::Stable;
                    if let Some(x) = leg.x.as_mut() {
                        x.offer_out = None;
                    }
                    leg.shrink();
                    self.send_ack(now, ep, k, seq, None);
                    if let (Some(c), Some(sdp)) = (call, answer) {
                        self.push_event(SessionEvent::Answer {
                            call: call_handle(c),
                            sdp,
                        });
                    }
                    return;
                }
                drop(resp);
                // A failed re-INVITE leaves the session as it was (section 14.1).
                leg.offer = OfferState::Stable;
                let owner = leg.owner;
                match status {
                    491 if leg
                        .x
                        .as_ref()
                        .is_some_and(|x| x.retries < MAX_GLARE_RETRIES) =>
                    {
                        let delay = self.glare_delay(owner);
                        let at = now + delay;
                        if let Some(leg) = self.legs.get_mut(k) {
                            leg.x().retries += 1;
                            leg.retry_at = Some(at);
                        }
                        self.arm(at, Due::Retry(k));
                    }
                    408 | 481 => {
                        self.dialog_failed(k, status == 481);
                    }
                    _ => {
                        if let Some(leg) = self.legs.get_mut(k) {
                            if let Some(x) = leg.x.as_mut() {
                                x.offer_out = None;
                            }
                            leg.shrink();
                        }
                        self.refused(call, status);
                    }
                }
            }
        }
    }

    /// Section 14.1: how long to wait before sending a re-INVITE refused 491 again: 2.1 to
    /// 4 s for the owner of the Call-ID, 0 to 2 s for the other side, in 10 ms units.
    pub(super) fn glare_delay(&mut self, owner: bool) -> Duration {
        let units = if owner {
            210 + self.rng.next_u64() % 191
        } else {
            self.rng.next_u64() % 201
        };
        Duration::from_millis(units * 10)
    }

    /// Section 12.2.1.2: a 408 (or a timeout) or 481 to a request inside the dialog ends
    /// it, without BYE: the peer no longer knows it or cannot be reached.
    pub(super) fn dialog_failed(&mut self, k: DialogKey, gone: bool) {
        let reason = if gone {
            EndReason::DialogGone
        } else {
            EndReason::Timeout
        };
        let call = self.legs.get(k).and_then(|l| l.call);
        match call {
            Some(c) => {
                if let Some(l) = self.legs.get_mut(k) {
                    if let Some(tx) = l.bye.take() {
                        self.clients.remove(&tx);
                    }
                }
                self.end_call(c, reason);
                self.free_leg(k);
            }
            None => self.free_leg(k),
        }
    }

    /// A request of ours inside a dialog timed out or met a transport error.
    pub(super) fn on_dialog_failure(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        pending: Pending,
        transport: bool,
    ) {
        self.clients.remove(&tx);
        match pending {
            Pending::Bye(k) => {
                // The connection the dialog came in on is gone (a TCP flow closes when idle):
                // the BYE goes again by the remote target.
                let retry = transport
                    && self.legs.get_mut(k).is_some_and(|l| {
                        l.bye = None;
                        l.dialog.stop_reusing_connection()
                    });
                let reason = self.legs.get(k).and_then(|l| l.call).and_then(|c| {
                    match self.calls.get(c).map(|c| c.state) {
                        Some(CallState::Ending(r)) => Some(r),
                        _ => None,
                    }
                });
                if retry {
                    self.send_bye(now, ep, k, reason.unwrap_or(EndReason::LocalBye));
                } else {
                    self.bye_done(k);
                }
            }
            Pending::Update(_) | Pending::Prack(_) => {
                self.ext_on_response(now, ep, pending, None, transport);
            }
            Pending::ReInvite(k) => {
                if let Some(l) = self.legs.get_mut(k) {
                    l.invite_out = None;
                }
                if transport {
                    let call = self.legs.get(k).and_then(|l| l.call);
                    if let Some(c) = call {
                        self.end_call(c, EndReason::TransportError);
                    }
                    self.free_leg(k);
                } else {
                    self.dialog_failed(k, false);
                }
            }
        }
    }

    /// Our BYE completed (any final response, a timeout, a transport error): the dialog
    /// goes, and its call ends with the reason it was ending for.
    fn bye_done(&mut self, k: DialogKey) {
        let call = self.legs.get_mut(k).and_then(|l| {
            l.bye = None;
            l.call
        });
        if let Some(c) = call {
            let reason = match self.calls.get(c).map(|c| c.state) {
                Some(CallState::Ending(r)) => r,
                _ => EndReason::LocalBye,
            };
            self.end_call(c, reason);
        }
        self.free_leg(k);
    }

    /// [`SessionConfig::max_lifetime`] passed: BYE.
    pub(super) fn lifetime_over(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        leg.lifetime = None;
        match leg.phase {
            Phase::Up => self.send_bye(now, ep, k, EndReason::Lifetime),
            Phase::WaitAck => leg.bye_after_ack = Some(EndReason::Lifetime),
            _ => {}
        }
    }

    /// Ends the call in any state: CANCEL (UAC before the final response; a 2xx that
    /// crosses it is ACKed and ended with BYE), 480 (UAS before answering), BYE once
    /// established (UAS: once the ACK is in, section 15). [`SessionEvent::Ended`] follows
    /// when it is done.
    pub fn hangup(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
    ) -> Result<(), SessionError> {
        let c = call_key(call);
        let state = self.calls.get(c).ok_or(SessionError::UnknownCall)?;
        match (state.uac, state.state, state.leg) {
            (_, CallState::Ending(_), _) | (true, CallState::Cancelling, _) => Ok(()),
            (true, CallState::Pending, _) => {
                let invite = state.invite.ok_or(SessionError::WrongState)?;
                // (Its responses need nothing; a CANCEL the INVITE's final response
                // overtakes is never sent and dies silently in the endpoint.)
                endpoint.cancel(now, invite)?;
                if let Some(call) = self.calls.get_mut(c) {
                    call.state = CallState::Cancelling;
                }
                Ok(())
            }
            (false, CallState::Pending, _) => self.reject(now, endpoint, call, 480),
            (_, CallState::Answered, Some(k)) => {
                let Some(leg) = self.legs.get_mut(k) else {
                    return Err(SessionError::WrongState);
                };
                if leg.phase == Phase::WaitAck {
                    // Section 15: the callee waits for the ACK (or its timeout) first.
                    leg.bye_after_ack = Some(EndReason::LocalBye);
                    if let Some(call) = self.calls.get_mut(c) {
                        call.state = CallState::Ending(EndReason::LocalBye);
                    }
                    return Ok(());
                }
                self.send_bye(now, endpoint, k, EndReason::LocalBye);
                Ok(())
            }
            _ => Err(SessionError::WrongState),
        }
    }
}
