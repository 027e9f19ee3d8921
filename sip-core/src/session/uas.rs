//! Requests the peer sends: a new INVITE (the UAS role, RFC 3261 section 13.3), requests
//! inside a dialog (section 12.2.2), CANCEL (section 9.2), the ACK for our 2xx and its
//! retransmission until then (section 13.3.1.4).

use std::time::Instant;

use super::*;

impl Sessions {
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        source: Source,
        cancels: Option<ServerTxId>,
    ) -> Option<Event> {
        let Ok(msg) = request.message() else {
            return Some(Event::Request {
                tx,
                request,
                source,
                cancels,
            });
        };
        let method = msg.method()?;
        if method == Method::Cancel {
            return self.on_cancel(now, ep, tx, &request, source, cancels);
        }
        let to_tag = msg.to().and_then(|t| t.tag());
        let Some(to_tag) = to_tag else {
            if method == Method::Invite {
                self.on_new_invite(now, ep, tx, &request, &msg, source);
                return None;
            }
            drop(msg);
            return Some(Event::Request {
                tx,
                request,
                source,
                cancels,
            });
        };
        // Section 12.2.2: inside a dialog.
        let call_id = msg.call_id().unwrap_or("");
        let remote = msg.from().and_then(|f| f.tag()).unwrap_or("");
        let Some(k) = self.find(call_id, to_tag, remote) else {
            drop(msg);
            self.refuse(now, ep, tx, &request, 481, &[]);
            return None;
        };
        let seq = msg.cseq().map_or(0, |c| c.seq);
        let in_order = self
            .legs
            .get_mut(k)
            .is_some_and(|l| l.dialog.check_remote_seq(seq));
        if !in_order {
            drop(msg);
            self.refuse(now, ep, tx, &request, 500, &[]);
            return None;
        }
        match method {
            Method::Invite => {
                let offer = body_of(&msg);
                // Section 12.2.2: a target refresh request.
                if let Some(l) = self.legs.get_mut(k) {
                    l.dialog.refresh_target(&msg);
                }
                // RFC 4028 section 9: a session refresh request.
                if let Err(min_se) = self.ext_on_reinvite(k, &msg) {
                    drop(msg);
                    let min = min_se.to_string();
                    self.refuse(now, ep, tx, &request, 422, &[("Min-SE", &min)]);
                    return None;
                }
                drop(msg);
                self.on_reinvite(now, ep, tx, request, k, seq, offer);
                None
            }
            Method::Bye => {
                drop(msg);
                self.on_bye(now, ep, tx, &request, k);
                None
            }
            Method::Prack => {
                drop(msg);
                self.on_prack(now, ep, tx, &request, k);
                None
            }
            Method::Update => {
                drop(msg);
                self.on_update(now, ep, tx, request, k);
                None
            }
            Method::Options => {
                drop(msg);
                let allow = [("Allow", ALLOW), ("Accept", "application/sdp")];
                self.refuse(now, ep, tx, &request, 200, &allow);
                None
            }
            // (Extensions handle PRACK and UPDATE here, one function per method.)
            _ => {
                drop(msg);
                Some(Event::Request {
                    tx,
                    request,
                    source,
                    cancels,
                })
            }
        }
    }

    /// A new INVITE: a new call (section 13.3), or 503 when the table is full.
    fn on_new_invite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        msg: &Message<'_>,
        source: Source,
    ) {
        if let validate::Verdict::Respond(r) = validate::request(msg, &POLICY) {
            let unsupported = r.unsupported.join(", ");
            let extra: &[(&str, &str)] = match r.status {
                420 => &[("Unsupported", &unsupported)],
                405 => &[("Allow", ALLOW)],
                _ => &[],
            };
            self.refuse(now, ep, tx, request, r.status, extra);
            return;
        }
        if self.calls.len() >= self.config.max_calls {
            self.stats.calls_refused += 1;
            // Section 21.5.4: busy for now; the caller may retry.
            self.refuse(now, ep, tx, request, 503, &[("Retry-After", "5")]);
            return;
        }
        // RFC 3262 section 3 (420, 421) and RFC 4028 section 9 (422).
        let ext_init = match self.ext_check_invite(msg) {
            Ok(init) => init,
            Err((status, headers)) => {
                let extra: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                self.refuse(now, ep, tx, request, status, &extra);
                return;
            }
        };
        let tag = self.new_tag();
        let Some(dialog) = Dialog::uas(msg, &tag, &source) else {
            // Section 8.1.1.8: an INVITE must carry a Contact (and a From tag).
            self.refuse(now, ep, tx, request, 400, &[]);
            return;
        };
        // RFC 3261 section 26.2 with RFC 5630 section 4 (no last-hop exception): a sips:
        // Request-URI must have come over TLS on every hop, this one included; and a dialog
        // whose Contact must be sips: (section 12.1.1) needs a TLS listener. Otherwise the
        // call is refused as RFC 5630 section 5.1.2 says for a UAS that will not take it
        // as sips: (480 with warn-code 380), never answered as a downgraded sip: dialog.
        let sips_uri = matches!(msg.request_uri(), Some(crate::message::Uri::Sip(u)) if u.secure);
        let insecure = sips_uri && source.transport != Transport::Tls;
        if insecure || (dialog.sips_contact() && self.dialog_contact(ep, &dialog).is_err()) {
            let warning = format!("380 {} \"SIPS Not Allowed\"", source.local);
            self.stats.sips_refused += 1;
            self.refuse(now, ep, tx, request, 480, &[("Warning", &warning)]);
            return;
        }
        let offer = body_of(msg);
        let seq = msg.cseq().map_or(0, |c| c.seq);
        let c = self.calls.insert(Call {
            uac: false,
            state: CallState::Pending,
            leg: None,
            invite: None,
            timer_c: false,
            ctx: None,
        });
        let mut leg = Leg::new(dialog, Some(c), false);
        leg.invite_in = Some((tx, seq));
        if offer.is_some() {
            leg.offer = OfferState::RemoteOffer;
        }
        leg.x().request_in = Some(request.clone());
        let k = self.insert_leg(leg);
        self.ext_init_uas(k, ext_init);
        if let Some(call) = self.calls.get_mut(c) {
            call.leg = Some(k);
        }
        self.servers.insert(tx, k);
        self.stats.calls_received += 1;
        self.push_event(SessionEvent::Incoming {
            call: call_handle(c),
            request: request.clone(),
            offer,
        });
    }

    /// The UAS call `call` with its INVITE not answered yet: the dialog and the request.
    fn unanswered(&self, call: CallHandle) -> Result<(CallKey, DialogKey), SessionError> {
        let c = call_key(call);
        let state = self.calls.get(c).ok_or(SessionError::UnknownCall)?;
        if state.uac || state.state != CallState::Pending {
            return Err(SessionError::WrongState);
        }
        let k = state.leg.ok_or(SessionError::WrongState)?;
        Ok((c, k))
    }

    /// A response to the initial INVITE of UAS dialog `k` (tag, Contact and Record-Route
    /// for 101-299, section 12.1.1).
    pub(super) fn respond_invite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        code: u16,
        body: Option<&[u8]>,
    ) -> Result<OwnedMessage, SessionError> {
        let leg = self.legs.get(k).ok_or(SessionError::UnknownCall)?;
        let (tx, _) = leg.invite_in.ok_or(SessionError::WrongState)?;
        let request = leg
            .x
            .as_ref()
            .and_then(|x| x.request_in.clone())
            .ok_or(SessionError::WrongState)?;
        let tag = leg.dialog.id().local_tag.clone();
        // Section 12.1.1: the responses that make the dialog (to the initial INVITE).
        let dialog_making = (101..300).contains(&code) && leg.phase == Phase::Early;
        let contact_needed = (101..300).contains(&code);
        let contact = match contact_needed {
            true => Some(self.dialog_contact(ep, &leg.dialog)?),
            false => None,
        };
        // RFC 3262 / 3311 / 4028: Allow, Supported, Session-Expires.
        let ext = self.ext_invite_response_headers(k, code);
        let extra: Vec<(&str, &str)> = ext.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = Reply {
            tag: Some(&tag),
            contact,
            record_route: dialog_making,
            body,
            extra: &extra,
        };
        let sent = self
            .respond(now, ep, tx, &request, code, reply)
            .ok_or(SessionError::Send(SendError::WrongState))?;
        self.ext_invite_responded(now, k, code, body);
        Ok(sent)
    }

    /// UAS: rings (180), or sends early media (183 with SDP).
    pub fn ring(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        early_sdp: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        let (_, k) = self.unanswered(call)?;
        let code = if early_sdp.is_some() { 183 } else { 180 };
        // RFC 3262: reliably when 100rel applies.
        if let Some(done) = self.ext_ring(now, endpoint, k, code, early_sdp.as_deref()) {
            return done;
        }
        self.respond_invite(now, endpoint, k, code, early_sdp.as_deref())?;
        Ok(())
    }

    /// UAS: answers the call with 200: `sdp` is the answer to the INVITE's offer, or our
    /// offer when the INVITE had none (its answer then comes in the ACK, RFC 3264 and RFC
    /// 3261 section 13.2.1). The 2xx is retransmitted until the ACK (section 13.3.1.4);
    /// [`SessionEvent::Answered`] follows the ACK.
    pub fn accept(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        sdp: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        let (c, k) = self.unanswered(call)?;
        // RFC 3262 section 3: not before the PRACK of a reliable 1xx with SDP.
        if self.ext_hold_2xx(k, &sdp) {
            return Ok(());
        }
        let early_done = self.ext_early_done(k);
        let resp = self.respond_invite(now, endpoint, k, 200, sdp.as_deref())?;
        if let Some(call) = self.calls.get_mut(c) {
            call.state = CallState::Answered;
        }
        let Some(leg) = self.legs.get_mut(k) else {
            return Ok(());
        };
        leg.dialog.confirm();
        leg.phase = Phase::WaitAck;
        leg.offer = match (leg.offer, sdp.is_some()) {
            // RFC 3262 5: the exchange completed in the early dialog; the 2xx repeats it
            _ if early_done => OfferState::Stable,
            (OfferState::RemoteOffer, _) => OfferState::Stable,
            (_, true) => OfferState::LocalOffer,
            (s, false) => s,
        };
        let seq = leg.invite_in.map_or(0, |(_, s)| s);
        if let Some(x) = leg.x.as_mut() {
            x.request_in = None;
        }
        self.start_retransmit(now, k, resp, seq);
        self.start_lifetime(now, k);
        Ok(())
    }

    /// UAS: refuses the call with a final status (300-699).
    pub fn reject(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        status: u16,
    ) -> Result<(), SessionError> {
        if !(300..=699).contains(&status) {
            return Err(SessionError::Build(crate::BuildError::BadStatus(status)));
        }
        let (c, k) = self.unanswered(call)?;
        let sent = self.respond_invite(now, endpoint, k, status, None);
        self.end_call(c, EndReason::Rejected(status));
        sent.map(|_| ())
    }

    /// Starts retransmitting `response` (the 2xx to the INVITE with CSeq `seq`) at T1,
    /// doubling up to T2, until its ACK or 64*T1 (section 13.3.1.4).
    pub(super) fn start_retransmit(
        &mut self,
        now: Instant,
        k: DialogKey,
        response: OwnedMessage,
        seq: u32,
    ) {
        let t = self.config.timers;
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let Some((tx, _)) = leg.invite_in else {
            return;
        };
        let next = now + t.t1;
        let old = leg.x().unacked.replace(Unacked {
            tx,
            response,
            seq,
            interval: t.t1,
            next,
            give_up: now + t.t1x64(),
        });
        if let Some(old) = old {
            self.timers.remove(&(old.next, Due::Retransmit(k)));
        }
        self.arm(next, Due::Retransmit(k));
    }

    pub(super) fn retransmit_2xx(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let t2 = self.config.timers.t2;
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let Some(u) = leg.x.as_mut().and_then(|x| x.unacked.as_mut()) else {
            return;
        };
        if now >= u.give_up {
            // Section 13.3.1.4: no ACK in 64*T1: the dialog is confirmed but the session
            // ends, with BYE.
            if let Some(x) = leg.x.as_mut() {
                x.unacked = None;
            }
            if let Some((tx, _)) = leg.invite_in.take() {
                self.servers.remove(&tx);
            }
            leg.shrink();
            self.stats.ack_timeouts += 1;
            // The peer never proved it receives at the INVITE's source: over UDP that
            // address may have been forged, and the BYE would go where the forger's
            // Contact or Record-Route points, retransmitted up to timer F (section
            // 26.1.5). The BYE is a SHOULD; it is sent only where the INVITE came from,
            // or over the connection it came on.
            let d = &leg.dialog;
            let unproven = !d.transport().is_stream()
                && !matches!(d.next_hop(), Some(NextHop::Target(t))
                    if d.peer().is_some_and(|p| p.ip() == t.addr.ip()));
            if unproven {
                self.stats.byes_withheld += 1;
                if let Some(c) = leg.call {
                    self.end_call(c, EndReason::NoAck);
                }
                self.free_leg(k);
                return;
            }
            self.send_bye(now, ep, k, EndReason::NoAck);
            return;
        }
        let _ = ep.send_response(now, u.tx, &u.response);
        u.interval = (u.interval * 2).min(t2);
        u.next = (now + u.interval).min(u.give_up);
        let next = u.next;
        self.stats.ok_retransmissions += 1;
        self.arm(next, Due::Retransmit(k));
    }

    /// The ACK for a 2xx (section 13.3.1.4): stops its retransmission; the ACK of the
    /// initial INVITE establishes the call. False when it matches no dialog of ours.
    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        request: &OwnedMessage,
    ) -> bool {
        let Ok(msg) = request.message() else {
            return false;
        };
        let call_id = msg.call_id().unwrap_or("");
        let local = msg.to().and_then(|t| t.tag()).unwrap_or("");
        let remote = msg.from().and_then(|f| f.tag()).unwrap_or("");
        let Some(k) = self.find(call_id, local, remote) else {
            return false;
        };
        let seq = msg.cseq().map_or(0, |c| c.seq);
        let body = body_of(&msg);
        drop(msg);
        let Some(leg) = self.legs.get_mut(k) else {
            return false;
        };
        let Some(u) = leg.x.as_mut().and_then(|x| x.unacked.take()) else {
            return true;
        };
        if u.seq != seq {
            // an ACK for another 2xx (an older one): keep waiting
            leg.x().unacked = Some(u);
            return true;
        }
        self.timers.remove(&(u.next, Due::Retransmit(k)));
        if leg.invite_in.is_some_and(|(_, s)| s == seq) {
            if let Some((tx, _)) = leg.invite_in.take() {
                self.servers.remove(&tx);
            }
        }
        leg.shrink();
        // RFC 3264: our offer in the 2xx is answered in the ACK.
        let answer = if leg.offer == OfferState::LocalOffer {
            leg.offer = OfferState::Stable;
            body
        } else {
            None
        };
        let call = leg.call;
        let initial = leg.phase == Phase::WaitAck;
        let bye = leg.bye_after_ack;
        if initial {
            leg.phase = Phase::Up;
            self.stats.calls_answered += 1;
            if let Some(c) = call {
                self.push_event(SessionEvent::Answered {
                    call: call_handle(c),
                    sdp: answer,
                });
            }
        } else if let (Some(c), Some(sdp)) = (call, answer) {
            self.push_event(SessionEvent::Answer {
                call: call_handle(c),
                sdp,
            });
        }
        if let Some(reason) = bye {
            self.send_bye(now, ep, k, reason);
        }
        true
    }

    /// CANCEL (section 9.2): 200 to it, and 487 to the INVITE it cancels when that has no
    /// final response yet.
    fn on_cancel(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        source: Source,
        cancels: Option<ServerTxId>,
    ) -> Option<Event> {
        let Some(invite) = cancels else {
            self.refuse(now, ep, tx, request, 481, &[]);
            return None;
        };
        let Some(&k) = self.servers.get(&invite) else {
            return Some(Event::Request {
                tx,
                request: request.clone(),
                source,
                cancels,
            });
        };
        self.refuse(now, ep, tx, request, 200, &[]);
        let leg = self.legs.get(k)?;
        let unanswered = leg
            .x
            .as_ref()
            .is_some_and(|x| x.request_in.is_some() && x.unacked.is_none());
        if !unanswered {
            // Already answered: the CANCEL has no effect (section 9.2).
            return None;
        }
        let initial = leg.phase == Phase::Early;
        let call = leg.call;
        let _ = self.respond_invite(now, ep, k, 487, None);
        if initial {
            if let Some(c) = call {
                self.end_call(c, EndReason::Cancelled);
            } else {
                self.free_leg(k);
            }
        } else {
            // A cancelled re-INVITE: the session stays as it was (section 14.2).
            self.drop_invite_in(k);
        }
        None
    }

    /// The peer's INVITE of dialog `k` is answered with a non-2xx or gone: forget it and
    /// its offer.
    pub(super) fn drop_invite_in(&mut self, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        if let Some((tx, _)) = leg.invite_in.take() {
            self.servers.remove(&tx);
        }
        if leg.offer == OfferState::RemoteOffer {
            leg.offer = OfferState::Stable;
        }
        if let Some(x) = leg.x.as_mut() {
            x.request_in = None;
        }
        leg.shrink();
    }

    /// An INVITE server transaction of ours ended without the exchange completing: never
    /// answered by the application (the endpoint answered 408), or a transport error.
    pub(super) fn server_gone(&mut self, k: DialogKey, tx: ServerTxId, transport: bool) {
        self.servers.remove(&tx);
        let Some(leg) = self.legs.get(k) else {
            return;
        };
        if leg.invite_in.is_none_or(|(t, _)| t != tx) {
            return;
        }
        if leg.phase == Phase::Early {
            let reason = if transport {
                EndReason::TransportError
            } else {
                EndReason::Timeout
            };
            match leg.call {
                Some(c) => self.end_call(c, reason),
                None => self.free_leg(k),
            }
        } else {
            self.drop_invite_in(k);
        }
    }

    /// BYE (section 15.1.2): 200, 487 to an INVITE of the peer still unanswered, the call
    /// ends.
    fn on_bye(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        k: DialogKey,
    ) {
        self.refuse(now, ep, tx, request, 200, &[]);
        let Some(leg) = self.legs.get(k) else {
            return;
        };
        let pending = leg
            .x
            .as_ref()
            .is_some_and(|x| x.request_in.is_some() && x.unacked.is_none());
        if pending {
            let _ = self.respond_invite(now, ep, k, 487, None);
        }
        let Some(leg) = self.legs.get(k) else {
            return;
        };
        if leg.bye.is_some() {
            // Our own BYE crossed it: the dialog goes when that completes.
            return;
        }
        match leg.call {
            Some(c) => self.end_call(c, EndReason::RemoteBye),
            None => self.free_leg(k),
        }
    }
}
