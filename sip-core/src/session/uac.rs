//! The UAC role (RFC 3261 sections 13.2 and 12.1.2): the INVITE, one early dialog per To
//! tag, the ACK for every 2xx and again for each retransmission of it, the fork kept and
//! the others ended with BYE (section 13.2.2.4).

use std::time::Instant;

use super::*;

impl Sessions {
    /// Sends `request` (our INVITE again with a new CSeq: a challenge answered, RFC 3261
    /// section 22.2, or a 422 retried, RFC 4028 section 7.4) in place of the INVITE
    /// transaction `tx`: the call keeps its handle, and the early dialogs of the old
    /// transaction are dropped. The moved context; `None` when nothing was sent.
    pub(super) fn resend_invite(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        request: OwnedMessage,
    ) -> Option<&mut InviteCtx> {
        let hop = self.invites.get(&tx)?.hop.clone();
        let new_tx = ep.send_request(now, &request, hop).ok()?;
        let mut ctx = self.invites.remove(&tx)?;
        self.free_early(&ctx);
        ctx.forks.clear();
        ctx.request = request;
        if let Some(call) = ctx.call.and_then(|c| self.calls.get_mut(c)) {
            call.invite = Some(new_tx);
            call.ctx = Some(new_tx);
        }
        Some(self.invites.entry(new_tx).or_insert(ctx))
    }

    /// UAC: places a call. The INVITE gets a fresh Call-ID and From tag, our Contact for
    /// the next hop's transport, the preloaded Routes and extra headers of `invite`, and
    /// the offer as an `application/sdp` body.
    ///
    /// A `sips:` Request-URI or first Route (RFC 3261 section 26.2, 8.1.1.8): the Contact
    /// is a `sips:` URI of a TLS listener ([`SessionError::NoTlsListener`] without one),
    /// `sip:` Routes are written as `sips:` (RFC 5630 section 5.1.1), the next hop must be
    /// TLS ([`SessionError::InsecureHop`] for a target over UDP or TCP), and the dialog is
    /// secure: every request in it goes over TLS.
    pub fn invite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        invite: Invite,
    ) -> Result<CallHandle, SessionError> {
        if self.calls.len() >= self.config.max_calls {
            return Err(SessionError::TooManyCalls);
        }
        let secure = crate::hop::is_sips(&invite.request_uri)
            || invite
                .routes
                .first()
                .is_some_and(|r| crate::hop::is_sips(r));
        let hop = match &invite.hop {
            Some(h) => h.clone(),
            // Section 8.1.2: the first Route, else the Request-URI.
            None => {
                let uri = match invite.routes.first() {
                    Some(r) => crate::hop::route_uri(r),
                    None => &invite.request_uri,
                };
                crate::hop::next_hop(uri, Transport::Udp).ok_or(SessionError::NoNextHop)?
            }
        };
        let mut hop = if secure {
            crate::hop::secure_hop(hop).ok_or(SessionError::InsecureHop)?
        } else {
            hop
        };
        // A name's transport is known once it is located; the Contact names our UDP
        // listener then (RFC 3263 section 4.1's default), which reaches us all the same.
        let transport = crate::hop::known_transport(&hop).unwrap_or(Transport::Udp);
        let mut request = self.build_invite(endpoint, &invite, transport, secure)?;
        // Section 18.1.1: the endpoint sends a large request over TCP; the Contact says so.
        if let NextHop::Target(t) = &mut hop {
            if t.transport == Transport::Udp
                && request.as_bytes().len() + 100 > endpoint.config().udp_size_limit
            {
                t.transport = Transport::Tcp;
                request = self.build_invite(endpoint, &invite, Transport::Tcp, secure)?;
            }
        }
        // RFC 3261 section 22.2: nonces kept already are used from the first INVITE on.
        let mut auth = invite.credentials.clone();
        if let Some(client) = auth.as_mut() {
            request = client.authorize(&request, &mut self.rng).unwrap_or(request);
        }
        let tx = endpoint.send_request(now, &request, hop.clone())?;
        let c = self.calls.insert(Call {
            uac: true,
            state: CallState::Pending,
            leg: None,
            invite: Some(tx),
            timer_c: false,
            ctx: Some(tx),
        });
        self.invites.insert(
            tx,
            InviteCtx {
                call: Some(c),
                request,
                hop,
                offer: invite.offer.is_some(),
                forks: SmallVec::new(),
                window_end: None,
                timer: self.ext_invite_headers(&invite).1,
                auth,
            },
        );
        self.stats.calls_placed += 1;
        Ok(call_handle(c))
    }

    fn build_invite(
        &mut self,
        ep: &Endpoint,
        invite: &Invite,
        transport: Transport,
        secure: bool,
    ) -> Result<OwnedMessage, SessionError> {
        let peer = match &invite.hop {
            Some(NextHop::Target(t)) => Some(t.addr),
            _ => None,
        };
        let contact = self.contact(ep, transport, peer, secure)?;
        let mut b = RequestBuilder::new(Method::Invite, &invite.request_uri)
            .from(&invite.from)
            .to(&invite.to)
            .contact(&contact);
        for r in &invite.routes {
            if secure {
                // RFC 5630 section 5.1.1: a sips: Request-URI makes every Route sips:.
                b = b.header("Route", &sips_route(r));
            } else {
                b = b.header("Route", r);
            }
        }
        if let Some(ua) = &self.config.user_agent {
            b = b.header("User-Agent", ua);
        }
        b = b.header("Allow", ALLOW);
        // RFC 3262 section 4, RFC 4028 section 7.1.
        for (n, v) in &self.ext_invite_headers(invite).0 {
            b = b.header(n, v);
        }
        for (n, v) in &invite.headers {
            b = b.header(n, v);
        }
        if let Some(sdp) = &invite.offer {
            b = b.body("application/sdp", sdp);
        }
        Ok(b.build(&mut self.rng)?)
    }

    /// A response to an initial INVITE of ours.
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        response: &OwnedMessage,
    ) {
        let Ok(resp) = response.message() else {
            return;
        };
        let Some(status) = resp.status() else {
            return;
        };
        if status == 100 {
            return;
        }
        if matches!(status, 401 | 407) && self.auth_retry_invite(now, ep, tx, response) {
            // RFC 3261 section 22.2: asked again with credentials.
            return;
        }
        if status == 422 && self.ext_retry_422(now, ep, tx, &resp) {
            // RFC 4028 section 7.3: asked again with the 422's Min-SE.
            return;
        }
        let Some(ctx) = self.invites.get(&tx) else {
            return;
        };
        let call = ctx.call;
        if status >= 300 {
            // The final response: the early dialogs go, the call ends unless a 2xx came.
            drop(resp);
            let Some(ctx) = self.invites.remove(&tx) else {
                return;
            };
            self.free_early(&ctx);
            if let Some(t) = ctx.window_end {
                self.timers.remove(&(t, Due::ForkWindow(tx)));
                self.timers.remove(&(t, Due::Abandoned(tx)));
            }
            if let Some(c) = call {
                let cancelled = self.calls.get(c).map(|c| (c.state, c.timer_c));
                let reason = match (status, cancelled) {
                    (487, Some((CallState::Cancelling, true))) => EndReason::Timeout,
                    (487, Some((CallState::Cancelling, false))) => EndReason::Cancelled,
                    (408, _) => EndReason::Timeout,
                    _ => EndReason::Rejected(status),
                };
                if self.calls.get(c).is_some_and(|c| c.leg.is_none()) {
                    self.end_call(c, reason);
                }
            }
            return;
        }
        // A response with a To tag makes (or is part of) a dialog (section 12.1.2).
        let remote_tag = resp.to().and_then(|t| t.tag());
        let found = remote_tag.and_then(|rt| {
            let id_call = resp.call_id().unwrap_or("");
            let local = resp.from().and_then(|f| f.tag()).unwrap_or("");
            self.find(id_call, local, rt)
        });
        let k = match (found, remote_tag) {
            (Some(k), _) => Some(k),
            (None, Some(_)) => {
                // Bounded: a peer answering with ever new tags gets no more dialogs.
                let may_grow = ctx.forks.len()
                    < if status >= 200 {
                        2 * MAX_FORKS
                    } else {
                        MAX_FORKS
                    };
                let made = if may_grow {
                    // Where the attempt that got this response went (RFC 3263 failover may
                    // have moved it): the dialog reuses it while its next hop names the
                    // same server.
                    let sent = ep.client_target(tx);
                    let transport = sent
                        .map(|t| t.transport)
                        .or_else(|| crate::hop::known_transport(&ctx.hop))
                        .unwrap_or(Transport::Udp);
                    let sent = sent.map(|t| t.addr);
                    ctx.request
                        .message()
                        .ok()
                        .and_then(|req| Dialog::uac(&req, &resp, transport, sent))
                } else {
                    None
                };
                let auth = self.invites.get(&tx).and_then(|c| {
                    let client = c.auth.as_deref()?;
                    Some(Box::new(auth::LegAuth::new(client, &c.request)))
                });
                made.map(|d| {
                    let mut leg = Leg::new(d, None, true);
                    leg.auth = auth;
                    let k = self.insert_leg(leg);
                    if let Some(ctx) = self.invites.get_mut(&tx) {
                        ctx.forks.push(k);
                    }
                    k
                })
            }
            (None, None) => None,
        };
        if status < 200 {
            // RFC 3262 section 4: reliable 1xx in order, PRACKed; the others dropped.
            let offer_sent = self.invites.get(&tx).is_some_and(|c| c.offer);
            if !self.ext_on_provisional(now, ep, k, call, offer_sent, &resp) {
                return;
            }
            let sdp = body_of(&resp);
            let reason = resp.view().start_line();
            let reason = match reason {
                crate::message::StartLine::Response { reason, .. } => reason.to_owned(),
                _ => String::new(),
            };
            drop(resp);
            let ringing = call.filter(|&c| {
                self.calls
                    .get(c)
                    .is_some_and(|c| matches!(c.state, CallState::Pending | CallState::Cancelling))
            });
            if let Some(c) = ringing {
                self.push_event(SessionEvent::Progress {
                    call: call_handle(c),
                    status,
                    reason,
                    sdp,
                });
            }
            return;
        }
        // A 2xx (section 13.2.2.4).
        let Some(k) = k else {
            return;
        };
        let seq = resp.cseq().map_or(0, |c| c.seq);
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        if leg.dialog.state() == DialogState::Confirmed {
            drop(resp);
            // A retransmission: the same ACK again.
            self.ack_again(now, ep, k, seq);
            return;
        }
        leg.dialog.confirm_uac(&resp);
        leg.phase = Phase::Up;
        let sdp = body_of(&resp);
        let ext = self.ext_read_2xx(tx, &resp);
        drop(resp);
        if let Some(ctx) = self.invites.get_mut(&tx) {
            // Timer M (RFC 6026): responses keep coming for 64*T1 after the first 2xx.
            let t = now + self.config.timers.t1x64();
            if let Some(old) = ctx.window_end.replace(t) {
                self.timers.remove(&(old, Due::Abandoned(tx)));
                self.timers.remove(&(old, Due::ForkWindow(tx)));
            }
            if ctx.window_end == Some(t) && !self.timers.contains(&(t, Due::ForkWindow(tx))) {
                self.timers.insert((t, Due::ForkWindow(tx)));
            }
        }
        let offer_sent = self.invites.get(&tx).is_some_and(|c| c.offer);
        let keep = call.and_then(|c| self.calls.get(c).map(|call| (c, call.state, call.leg)));
        match keep {
            Some((c, CallState::Pending, None)) => {
                // The first 2xx: the call keeps this dialog.
                if let Some(call) = self.calls.get_mut(c) {
                    call.state = CallState::Answered;
                    call.leg = Some(k);
                    call.invite = None;
                }
                if let Some(leg) = self.legs.get_mut(k) {
                    leg.call = Some(c);
                }
                self.stats.calls_answered += 1;
                self.ext_uac_answered(now, k, tx, ext);
                self.start_lifetime(now, k);
                // (RFC 3262 5: not when the exchange completed with reliable 1xx and PRACK)
                let offer_in_2xx = !offer_sent && sdp.is_some() && !self.ext_early_done(k);
                self.push_event(SessionEvent::Answered {
                    call: call_handle(c),
                    sdp: sdp.clone(),
                });
                if offer_in_2xx {
                    // RFC 3264: the 2xx carries the offer; the answer goes in the ACK,
                    // once the application gives it (`answer_offer`).
                    if let Some(leg) = self.legs.get_mut(k) {
                        leg.offer = OfferState::RemoteOffer;
                        leg.x().ack_wait = Some(seq);
                    }
                    self.push_event(SessionEvent::Offer {
                        call: call_handle(c),
                        method: "INVITE".to_owned(),
                        sdp: sdp.unwrap_or_default(),
                    });
                } else {
                    self.send_ack(now, ep, k, seq, None);
                }
            }
            Some((c, CallState::Cancelling, None)) => {
                // The 2xx crossed our CANCEL (section 9.1): ACK, then BYE.
                if let Some(call) = self.calls.get_mut(c) {
                    call.leg = Some(k);
                    call.invite = None;
                }
                if let Some(leg) = self.legs.get_mut(k) {
                    leg.call = Some(c);
                }
                let reason = match self.calls.get(c) {
                    Some(call) if call.timer_c => EndReason::Timeout,
                    _ => EndReason::Cancelled,
                };
                self.send_ack(now, ep, k, seq, None);
                self.send_bye(now, ep, k, reason);
            }
            _ => {
                // Another fork answered (or the call is gone): ACK, then BYE.
                self.stats.forks_ended += 1;
                self.send_ack(now, ep, k, seq, None);
                self.send_bye(now, ep, k, EndReason::LocalBye);
            }
        }
    }

    /// Sends the ACK for the 2xx with CSeq `seq` on dialog `k` and keeps it for 64*T1, to
    /// send again for each retransmission of the 2xx (section 13.2.2.4).
    pub(super) fn send_ack(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        seq: u32,
        body: Option<&[u8]>,
    ) {
        let Ok((ack, hop)) = self.dialog_request(ep, k, Method::Ack, Some(seq), body) else {
            return;
        };
        let branch = crate::new_branch(&mut self.rng);
        // (to a name: the endpoint locates it, RFC 3263; an ACK has no failover)
        let _ = ep.send_stateless(now, &ack, hop.clone(), &branch);
        // The UAS retransmits its 2xx for 64*T1 after sending it; kept twice as long, the
        // ACK still answers the last retransmission after any delay up to 64*T1.
        let until = now + self.config.timers.t1x64() * 2;
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let old = leg.x().ack.replace(SentAck {
            seq,
            ack,
            branch,
            hop,
            until,
        });
        if let Some(old) = old {
            self.timers.remove(&(old.until, Due::ForgetAck(k)));
        }
        self.timers.insert((until, Due::ForgetAck(k)));
    }

    /// Sends the kept ACK again for a retransmitted 2xx with CSeq `seq`.
    fn ack_again(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey, seq: u32) -> bool {
        let Some(a) = self
            .legs
            .get(k)
            .and_then(|l| l.x.as_ref())
            .and_then(|x| x.ack.as_ref())
            .filter(|a| a.seq == seq)
        else {
            return false;
        };
        let _ = ep.send_stateless(now, &a.ack, a.hop.clone(), &a.branch);
        self.stats.acks_resent += 1;
        true
    }

    /// A 2xx to an INVITE of ours that arrived after its transaction (or as one the
    /// session layer no longer tracks): its ACK again. False when no dialog knows it.
    pub(super) fn resend_ack(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        response: &OwnedMessage,
    ) -> bool {
        let Ok(resp) = response.message() else {
            return false;
        };
        if !resp.status().is_some_and(|s| (200..300).contains(&s))
            || !resp.cseq().is_some_and(|c| c.method == Method::Invite)
        {
            // Responses to a CANCEL of ours (timer C's too) need nothing.
            return resp.cseq().is_some_and(|c| c.method == Method::Cancel);
        }
        let call_id = resp.call_id().unwrap_or("");
        let local = resp.from().and_then(|f| f.tag()).unwrap_or("");
        let remote = resp.to().and_then(|t| t.tag()).unwrap_or("");
        let Some(k) = self.find(call_id, local, remote) else {
            return false;
        };
        let seq = resp.cseq().map_or(0, |c| c.seq);
        drop(resp);
        self.ack_again(now, ep, k, seq);
        true
    }

    /// Frees the dialogs of an INVITE that no 2xx confirmed.
    pub(super) fn free_early(&mut self, ctx: &InviteCtx) {
        for &k in &ctx.forks {
            if self
                .legs
                .get(k)
                .is_some_and(|l| l.dialog.state() == DialogState::Early)
            {
                self.free_leg(k);
            }
        }
    }

    /// 64*T1 after the first 2xx: no more responses come to the INVITE.
    pub(super) fn fork_window_over(&mut self, tx: ClientTxId) {
        if let Some(ctx) = self.invites.remove(&tx) {
            self.free_early(&ctx);
        }
    }

    /// The INVITE's transaction timed out (timer B), was cancelled by timer C, or failed.
    pub(super) fn invite_timeout(&mut self, now: Instant, tx: ClientTxId, timer: Option<Timer>) {
        if timer == Some(Timer::C) {
            // The endpoint sent CANCEL; the final response (487) may still come, for 64*T1,
            // after which the transaction ends without an event.
            let at = now + self.config.timers.t1x64();
            if let Some(ctx) = self.invites.get_mut(&tx) {
                if ctx.window_end.is_none() {
                    ctx.window_end = Some(at);
                    self.timers.insert((at, Due::Abandoned(tx)));
                }
            }
            if let Some(c) = self.invites.get(&tx).and_then(|ctx| ctx.call) {
                if let Some(call) = self.calls.get_mut(c) {
                    if call.state == CallState::Pending {
                        call.state = CallState::Cancelling;
                        call.timer_c = true;
                    }
                }
            }
            return;
        }
        let Some(ctx) = self.invites.remove(&tx) else {
            return;
        };
        self.free_early(&ctx);
        if let Some(t) = ctx.window_end {
            self.timers.remove(&(t, Due::ForkWindow(tx)));
            self.timers.remove(&(t, Due::Abandoned(tx)));
        }
        if let Some(c) = ctx.call {
            let state = self.calls.get(c).map(|c| (c.state, c.leg, c.timer_c));
            let reason = match (state, timer) {
                (_, None) => EndReason::TransportError,
                (Some((CallState::Cancelling, _, false)), _) => EndReason::Cancelled,
                _ => EndReason::Timeout,
            };
            if state.is_some_and(|(_, leg, _)| leg.is_none()) {
                self.end_call(c, reason);
            }
        }
    }
}

/// A Route value with a `sip:` URI written as `sips:` (RFC 5630 section 5.1.1); others as
/// they are.
fn sips_route(route: &str) -> String {
    let v = route.trim();
    match v.strip_prefix('<') {
        Some(rest) => format!("<{}", crate::hop::to_sips(rest)),
        None => {
            // a name-addr with a display name: the URI inside the brackets
            match v.find('<') {
                Some(i) => format!("{}<{}", &v[..i], crate::hop::to_sips(&v[i + 1..])),
                None => crate::hop::to_sips(v),
            }
        }
    }
}
