//! The session layer's use of RFC 3262 (reliable provisional responses, PRACK), RFC 3311
//! (UPDATE) and RFC 4028 (session timers): the sans-IO rules of [`super::reliable`],
//! [`super::update`] and [`super::timer`] wired to the dialogs, the endpoint and the
//! application's calls.
//!
//! Each dialog that uses one of them carries an [`Ext`] (boxed, absent otherwise).

use std::time::Instant;

use super::reliable::{self, Prack, Rack, UacProvisional, UasMode, UasReliable, UasTimeout};
use super::timer::{self, Negotiated, Refresher, RunningTimer, TimerAction, UacTimer, UasDecision};
use super::update::{self, UpdateVerdict};
use super::*;

/// How often an UPDATE refused 491 is sent again (RFC 3311 5.1 with RFC 3261 14.1).
const MAX_UPDATE_RETRIES: u8 = 3;

/// The RFC 3262 / 3311 / 4028 state of one dialog.
#[derive(Debug, Default)]
pub(super) struct Ext {
    /// UAS: the reliable 1xx of the INVITE (RFC 3262 section 3); `None`: unreliable.
    rel_uas: Option<Box<UasReliable>>,
    /// When the reliable 1xx timer is armed.
    rel_at: Option<Instant>,
    /// UAS: the 2xx the application gave while a reliable 1xx with SDP was unacknowledged
    /// (its SDP), sent at the PRACK (RFC 3262 section 3).
    held_2xx: Option<Option<Vec<u8>>>,
    /// UAC: the RSeq order of this early dialog (RFC 3262 section 4).
    rel_uac: reliable::UacReliable,
    /// UAC: the RSeq of a reliable 1xx whose offer waits for `answer_offer`; its PRACK
    /// carries the answer (RFC 3262 section 5).
    prack_wait: Option<u32>,
    /// The RAck of the PRACK being built.
    rack: Option<String>,
    /// The first offer/answer exchange completed in the early dialog (through reliable 1xx
    /// and PRACK): UPDATE may carry offers (RFC 3311 5.1), the 2xx repeats the answer.
    early_done: bool,
    /// RFC 3311: our UPDATE in progress, the offer it carries (`None`: a refresh).
    update_out: Option<ClientTxId>,
    update_offer: Option<Vec<u8>>,
    /// The peer's UPDATE (RFC 3311) or PRACK (RFC 3262 5) with an offer, waiting for
    /// `answer_offer`.
    update_in: Option<Box<(ServerTxId, OwnedMessage)>>,
    update_retries: u8,
    update_retry_at: Option<Instant>,
    /// The peer's Allow lists UPDATE (RFC 4028 section 9: refresh with it then).
    peer_update: bool,
    /// UAS of a session refresh request (initial INVITE, re-INVITE, UPDATE): the timer its
    /// 2xx sets (RFC 4028 section 9).
    uas_timer: Option<Negotiated>,
    /// UAC of a session refresh request: what it asked (RFC 4028 section 7).
    uac_timer: Option<UacTimer>,
    /// The running session timer (RFC 4028 section 10).
    running: Option<RunningTimer>,
    timer_at: Option<Instant>,
    /// Our last SDP, kept only for a peer without UPDATE: a refresh re-INVITE repeats it.
    local_sdp: Option<Vec<u8>>,
}

/// What the INVITE said that the call needs later (UAS).
#[derive(Debug)]
pub(super) struct ExtInit {
    reliable: bool,
    timer: Option<Negotiated>,
    peer_update: bool,
    seq: u32,
}

impl Leg {
    pub(super) fn e(&mut self) -> &mut Ext {
        self.ext.get_or_insert_with(Box::default)
    }
}

/// The call an early UAC dialog belongs to (its leg names none until a 2xx is kept).
fn early_call(invites: &BTreeMap<ClientTxId, InviteCtx>, k: DialogKey) -> Option<CallKey> {
    invites
        .values()
        .find(|ctx| ctx.forks.contains(&k))
        .and_then(|ctx| ctx.call)
}

fn allows_update(msg: &Message<'_>) -> bool {
    msg.tokens(HeaderName::Allow)
        .any(|t| t.eq_ignore_ascii_case("UPDATE"))
}

impl Sessions {
    // ---- headers ----

    /// The `Supported` option tags of our requests and dialog-making responses.
    fn ext_supported(&self, rel100: Rel100) -> Option<String> {
        update::supported_tags(
            rel100 != Rel100::Disabled,
            self.config.session_timer.is_some(),
        )
    }

    /// Extra headers of a new INVITE (RFC 3262 section 4, RFC 4028 section 7.1): 100rel in
    /// Supported or Require, `Supported: timer`, Session-Expires and Min-SE. Returns the
    /// session timer request too.
    pub(super) fn ext_invite_headers(
        &self,
        invite: &Invite,
    ) -> (Vec<(&'static str, String)>, Option<UacTimer>) {
        let rel100 = invite.rel100.unwrap_or(self.config.rel100);
        let mut h = Vec::new();
        if let Some(s) = self.ext_supported(rel100) {
            h.push(("Supported", s));
        }
        if let Some(("Require", tag)) = reliable::uac_header(rel100) {
            h.push(("Require", tag.to_owned()));
        }
        let timer = self.config.session_timer.map(|t| {
            let asked = invite.session_expires.unwrap_or(t.expires);
            UacTimer::new(t, asked, None)
        });
        if let Some(t) = &timer {
            let [_, se, min] = t.headers();
            h.push(se);
            h.push(min);
        }
        (h, timer)
    }

    /// Extra headers of a request inside dialog `k`: Supported, and for a session refresh
    /// request (re-INVITE, UPDATE) Session-Expires and Min-SE (RFC 4028 section 7.4, we go
    /// on refreshing); UPDATE gets our Contact (RFC 3311 section 5.1: target refresh); a
    /// PRACK its RAck.
    pub(super) fn ext_request_headers(
        &mut self,
        ep: &Endpoint,
        k: DialogKey,
        method: Method<'_>,
    ) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        let supported = self.ext_supported(self.config.rel100);
        let Some(leg) = self.legs.get(k) else {
            return h;
        };
        match method {
            Method::Prack => {
                if let Some(rack) = leg.ext.as_ref().and_then(|e| e.rack.clone()) {
                    h.push(("RAck", rack));
                }
            }
            Method::Invite | Method::Update => {
                if method == Method::Update {
                    if let Ok(c) = self.dialog_contact(ep, &leg.dialog) {
                        h.push(("Contact", c));
                    }
                    h.push(("Allow", ALLOW.to_owned()));
                }
                if let Some(s) = supported {
                    h.push(("Supported", s));
                }
                let early = leg.phase == Phase::Early;
                if let Some(t) = self.config.session_timer.filter(|_| !early) {
                    let interval = leg
                        .ext
                        .as_ref()
                        .and_then(|e| e.running)
                        .map_or(t.expires, |r| r.interval());
                    let uac = UacTimer::new(t, interval, Some(Refresher::Uac));
                    let [_, se, min] = uac.headers();
                    h.push(se);
                    h.push(min);
                    if let Some(leg) = self.legs.get_mut(k) {
                        leg.e().uac_timer = Some(uac);
                    }
                }
            }
            _ => {}
        }
        h
    }

    /// Extra headers of a response to the INVITE of UAS dialog `k`: for a dialog-making
    /// one Allow and Supported; for a 2xx the Session-Expires negotiated (and `Require:
    /// timer` when the UAC refreshes, RFC 4028 section 9).
    pub(super) fn ext_invite_response_headers(
        &self,
        k: DialogKey,
        code: u16,
    ) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if !(101..300).contains(&code) {
            return h;
        }
        h.push(("Allow", ALLOW.to_owned()));
        if let Some(s) = self.ext_supported(self.config.rel100) {
            h.push(("Supported", s));
        }
        let timer = self
            .legs
            .get(k)
            .and_then(|l| l.ext.as_ref())
            .and_then(|e| e.uas_timer);
        if let (200..=299, Some(n)) = (code, timer) {
            h.push(("Session-Expires", n.header_value()));
            if n.requires_timer() {
                h.push(("Require", timer::TAG_TIMER.to_owned()));
            }
        }
        h
    }

    // ---- UAS: the initial INVITE ----

    /// The checks of a new INVITE (RFC 3262 section 3: 420 / 421; RFC 4028 section 9: 422,
    /// and 420 for `Require: timer` when timers are off). `Err`: the status and headers to
    /// refuse it with.
    #[allow(clippy::type_complexity)]
    pub(super) fn ext_check_invite(
        &self,
        msg: &Message<'_>,
    ) -> Result<ExtInit, (u16, Vec<(&'static str, String)>)> {
        let reliable = match reliable::uas_mode(self.config.rel100, msg) {
            UasMode::Reliable => true,
            UasMode::Unreliable => false,
            UasMode::Reject { status, header } => {
                return Err((status, vec![(header, reliable::TAG_100REL.to_owned())]));
            }
        };
        let requires_timer = msg
            .tokens(HeaderName::Require)
            .any(|t| t.eq_ignore_ascii_case(timer::TAG_TIMER));
        let timer = match timer::uas_negotiate(self.config.session_timer, msg) {
            UasDecision::Off if requires_timer => {
                return Err((420, vec![("Unsupported", timer::TAG_TIMER.to_owned())]));
            }
            UasDecision::Off => None,
            UasDecision::TooSmall { min_se } => {
                return Err((422, vec![("Min-SE", min_se.to_string())]));
            }
            UasDecision::Accept(n) => Some(n),
        };
        Ok(ExtInit {
            reliable,
            timer,
            peer_update: allows_update(msg),
            seq: msg.cseq().map_or(0, |c| c.seq),
        })
    }

    /// The new UAS dialog `k` takes what its INVITE said.
    pub(super) fn ext_init_uas(&mut self, k: DialogKey, init: ExtInit) {
        let rel = init
            .reliable
            .then(|| UasReliable::new(init.seq, &mut self.rng));
        if rel.is_none() && init.timer.is_none() && !init.peer_update {
            return;
        }
        if let Some(leg) = self.legs.get_mut(k) {
            let e = leg.e();
            e.rel_uas = rel.map(Box::new);
            e.uas_timer = init.timer;
            e.peer_update = init.peer_update;
        }
    }

    /// The response to the INVITE of UAS dialog `k` as `respond_invite` builds it, with
    /// `extra` headers, not sent.
    fn ext_build_invite_response(
        &mut self,
        ep: &Endpoint,
        k: DialogKey,
        code: u16,
        body: Option<&[u8]>,
        extra: &[(&'static str, String)],
    ) -> Result<(ServerTxId, OwnedMessage), SessionError> {
        let leg = self.legs.get(k).ok_or(SessionError::UnknownCall)?;
        let (tx, _) = leg.invite_in.ok_or(SessionError::WrongState)?;
        let request = leg
            .x
            .as_ref()
            .and_then(|x| x.request_in.clone())
            .ok_or(SessionError::WrongState)?;
        let tag = leg.dialog.id().local_tag.clone();
        let contact = self.dialog_contact(ep, &leg.dialog)?;
        let view = request.view();
        let rr: Vec<String> = view
            .header_all(HeaderName::RecordRoute)
            .map(one_line)
            .collect();
        let mut all = self.ext_invite_response_headers(k, code);
        all.extend(extra.iter().cloned());
        let mut b = ResponseBuilder::from_view(&view, code).to_tag(&tag);
        for r in &rr {
            b = b.header("Record-Route", r);
        }
        b = b.header("Contact", &contact);
        if let Some(s) = &self.config.user_agent {
            b = b.header("Server", s);
        }
        for (n, v) in &all {
            b = b.header(n, v);
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        Ok((tx, b.build(&mut self.rng)?))
    }

    /// `ring` on a dialog whose 1xx go reliably (RFC 3262 section 3): `Require: 100rel` and
    /// the next RSeq, sent now or after the PRACK of the one before. `None`: not reliable,
    /// `ring` goes on as RFC 3261 says.
    pub(super) fn ext_ring(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        code: u16,
        sdp: Option<&[u8]>,
    ) -> Option<Result<(), SessionError>> {
        let rseq = self
            .legs
            .get(k)?
            .ext
            .as_ref()?
            .rel_uas
            .as_ref()?
            .next_rseq();
        let extra = [
            ("Require", reliable::TAG_100REL.to_owned()),
            ("RSeq", rseq.to_string()),
        ];
        let (tx, resp) = match self.ext_build_invite_response(ep, k, code, sdp, &extra) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let timers = self.config.timers;
        let leg = self.legs.get_mut(k)?;
        let offer = leg.offer;
        let early_done = leg.ext.as_ref().is_some_and(|e| e.early_done);
        let e = leg.ext.as_mut()?;
        let rel = e.rel_uas.as_mut()?;
        let sent = match rel.send(now, &timers, resp, sdp.is_some()) {
            Ok(sent) => sent.is_some(),
            Err(()) => return Some(Err(SessionError::WrongState)),
        };
        if sdp.is_some() {
            // RFC 3262 5: the SDP of a reliable 1xx answers the INVITE's offer, or is our
            // offer when it had none (answered in the PRACK).
            match offer {
                OfferState::RemoteOffer => {
                    leg.offer = OfferState::Stable;
                    leg.e().early_done = true;
                }
                OfferState::Stable if !early_done => leg.offer = OfferState::LocalOffer,
                _ => {}
            }
        }
        if sent {
            let first = self
                .legs
                .get(k)
                .and_then(|l| l.ext.as_ref())
                .and_then(|e| e.rel_uas.as_ref())
                .map(|r| r.current().cloned());
            if let Some(Some(resp)) = first {
                let _ = ep.send_response(now, tx, &resp);
            }
            self.ext_arm_rel(k);
        }
        Some(Ok(()))
    }

    /// (Re)arms the reliable 1xx timer of dialog `k`.
    fn ext_arm_rel(&mut self, k: DialogKey) {
        let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) else {
            return;
        };
        let next = e.rel_uas.as_ref().and_then(|r| r.poll_timeout());
        let old = std::mem::replace(&mut e.rel_at, next);
        if let Some(t) = old {
            self.timers.remove(&(t, Due::Rel100(k)));
        }
        if let Some(t) = next {
            self.timers.insert((t, Due::Rel100(k)));
        }
    }

    /// The reliable 1xx timer of dialog `k` fired: retransmit, or give up with 500 (RFC 3262
    /// section 3: 64*T1 without PRACK).
    pub(super) fn ext_rel_due(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let tx = leg.invite_in.map(|(tx, _)| tx);
        let call = leg.call;
        let Some(e) = leg.ext.as_mut() else {
            return;
        };
        e.rel_at = None;
        let Some(rel) = e.rel_uas.as_mut() else {
            return;
        };
        match rel.handle_timeout(now) {
            UasTimeout::Retransmit(resp) => {
                if let Some(tx) = tx {
                    let _ = ep.send_response(now, tx, resp);
                }
                self.stats.rel1xx_retransmissions += 1;
                self.ext_arm_rel(k);
            }
            UasTimeout::GiveUp => {
                if let Some(c) = call {
                    let _ = self.reject(now, ep, call_handle(c), 500);
                }
            }
            UasTimeout::Nothing => self.ext_arm_rel(k),
        }
    }

    /// `accept` on UAS dialog `k`: true when the 2xx must wait for the PRACK of a reliable
    /// 1xx with SDP (RFC 3262 section 3); it goes when that arrives.
    pub(super) fn ext_hold_2xx(&mut self, k: DialogKey, sdp: &Option<Vec<u8>>) -> bool {
        let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) else {
            return false;
        };
        if e.rel_uas.as_ref().is_none_or(|r| r.may_send_2xx()) {
            return false;
        }
        e.held_2xx = Some(sdp.clone());
        true
    }

    /// Did the first offer/answer exchange complete in the early dialog (RFC 3262 5)? Then
    /// the 2xx's SDP repeats the answer and the state stays stable.
    pub(super) fn ext_early_done(&self, k: DialogKey) -> bool {
        self.legs
            .get(k)
            .and_then(|l| l.ext.as_ref())
            .is_some_and(|e| e.early_done)
    }

    /// A response to the INVITE (initial or re-INVITE) of UAS dialog `k` went: a final one
    /// stops the reliable 1xx retransmissions (RFC 3262 section 3); a 2xx starts or
    /// restarts the session timer it negotiated (RFC 4028 section 10).
    pub(super) fn ext_invite_responded(
        &mut self,
        now: Instant,
        k: DialogKey,
        code: u16,
        body: Option<&[u8]>,
    ) {
        if code < 200 {
            return;
        }
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let Some(e) = leg.ext.as_mut() else {
            return;
        };
        if let Some(rel) = e.rel_uas.as_mut() {
            rel.final_sent();
            if rel.current().is_none() {
                // nothing left to match a PRACK against
                e.rel_uas = None;
            }
        }
        if (200..300).contains(&code) {
            if !e.peer_update {
                if let Some(b) = body {
                    e.local_sdp = Some(b.to_vec());
                }
            }
            let n = e.uas_timer.take();
            self.ext_arm_rel(k);
            self.ext_set_timer(now, k, n, true);
        } else {
            self.ext_arm_rel(k);
        }
    }

    // ---- PRACK (UAS) ----

    /// A PRACK in dialog `k` (RFC 3262 section 3): 200 when it matches the unacknowledged
    /// reliable 1xx, else 481; the next reliable 1xx and a held 2xx go then; its SDP answers
    /// the offer of the 1xx (section 5).
    pub(super) fn on_prack(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: &OwnedMessage,
        k: DialogKey,
    ) {
        let (rack, body) = match request.message() {
            Ok(m) => (Rack::of(&m), body_of(&m)),
            Err(_) => (None, None),
        };
        let timers = self.config.timers;
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let invite_tx = leg.invite_in.map(|(t, _)| t);
        let call = leg.call;
        let offer = leg.offer;
        let outcome = match (rack, leg.ext.as_mut().and_then(|e| e.rel_uas.as_mut())) {
            (Some(rack), Some(rel)) => match rel.prack(now, &timers, rack) {
                Prack::Matched { send_next, had_sdp } => {
                    Some((send_next.cloned(), had_sdp, rel.may_send_2xx()))
                }
                Prack::NoMatch => None,
            },
            _ => None,
        };
        let Some((next, had_sdp, may_2xx)) = outcome else {
            self.refuse(now, ep, tx, request, 481, &[]);
            return;
        };
        if had_sdp && offer == OfferState::LocalOffer {
            // RFC 3262 5: our offer in the 1xx, its answer in the PRACK.
            self.refuse(now, ep, tx, request, 200, &[]);
            if let Some(leg) = self.legs.get_mut(k) {
                leg.offer = OfferState::Stable;
                leg.e().early_done = true;
            }
            if let (Some(c), Some(sdp)) = (call, body) {
                self.push_event(SessionEvent::Answer {
                    call: call_handle(c),
                    sdp,
                });
            }
        } else if let (Some(sdp), OfferState::Stable, true, Some(c)) =
            (body, offer, self.ext_early_done(k), call)
        {
            // RFC 3262 5: a new offer in the PRACK; the answer goes in its 2xx, once the
            // application gives it (`answer_offer`).
            if let Some(leg) = self.legs.get_mut(k) {
                leg.offer = OfferState::RemoteOffer;
                leg.e().update_in = Some(Box::new((tx, request.clone())));
            }
            self.push_event(SessionEvent::Offer {
                call: call_handle(c),
                method: "PRACK".to_owned(),
                sdp,
            });
        } else {
            self.refuse(now, ep, tx, request, 200, &[]);
        }
        if let (Some(next), Some(itx)) = (next, invite_tx) {
            let _ = ep.send_response(now, itx, &next);
        }
        self.ext_arm_rel(k);
        let held = if may_2xx {
            self.legs
                .get_mut(k)
                .and_then(|l| l.ext.as_mut())
                .and_then(|e| e.held_2xx.take())
        } else {
            None
        };
        if let (Some(sdp), Some(c)) = (held, call) {
            let _ = self.accept(now, ep, call_handle(c), sdp);
        }
    }

    // ---- UAC: provisional responses, PRACK, 422, 2xx ----

    /// A 1xx to our INVITE on early dialog `k` (RFC 3262 section 4): false when it is to be
    /// discarded (a retransmission or out of order); a reliable one is PRACKed, at once or,
    /// when it carries an offer, once `answer_offer` gives the answer (section 5).
    pub(super) fn ext_on_provisional(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: Option<DialogKey>,
        call: Option<CallKey>,
        offer_sent: bool,
        resp: &Message<'_>,
    ) -> bool {
        let Some(k) = k else {
            return true;
        };
        let Some(leg) = self.legs.get_mut(k) else {
            return true;
        };
        let rseq = match leg.e().rel_uac.on_provisional(resp) {
            UacProvisional::Unreliable => {
                leg.shrink_ext();
                return true;
            }
            UacProvisional::Discard => return false,
            UacProvisional::Prack(rseq) => rseq,
        };
        let invite_seq = resp.cseq().map_or(0, |c| c.seq);
        let sdp = body_of(resp);
        leg.e().peer_update |= allows_update(resp);
        leg.dialog.refresh_target(resp);
        match (&sdp, offer_sent, leg.e().early_done) {
            (Some(_), true, false) => {
                // The answer to the INVITE's offer, reliably: the exchange is complete.
                leg.e().early_done = true;
                leg.offer = OfferState::Stable;
            }
            (Some(sdp), false, false) => {
                // An offer: the PRACK carries the answer, when the application gives it.
                leg.offer = OfferState::RemoteOffer;
                leg.e().prack_wait = Some(rseq);
                leg.e().rack = Some(reliable::rack_value(rseq, invite_seq));
                if let Some(c) = call.filter(|&c| self.calls.get(c).is_some()) {
                    self.push_event(SessionEvent::Offer {
                        call: call_handle(c),
                        method: "INVITE".to_owned(),
                        sdp: sdp.clone(),
                    });
                }
                return true;
            }
            _ => {}
        }
        if let Some(leg) = self.legs.get_mut(k) {
            leg.e().rack = Some(reliable::rack_value(rseq, invite_seq));
        }
        self.ext_send_prack(now, ep, k, None);
        true
    }

    /// Sends the PRACK whose RAck is waiting in dialog `k`.
    fn ext_send_prack(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        body: Option<&[u8]>,
    ) {
        let Ok((req, target)) = self.dialog_request(ep, k, Method::Prack, None, body) else {
            return;
        };
        if let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) {
            e.rack = None;
        }
        if let Ok(tx) = ep.send_request(now, &req, target) {
            self.clients.insert(tx, Pending::Prack(k));
        }
    }

    /// A 422 to our INVITE `tx` (RFC 4028 section 7.3): true when it went again, once, with
    /// Session-Expires and Min-SE raised to the 422's Min-SE (a new CSeq, the same Call-ID
    /// and From tag).
    pub(super) fn ext_retry_422(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ClientTxId,
        resp: &Message<'_>,
    ) -> bool {
        let Some(ctx) = self.invites.get_mut(&tx) else {
            return false;
        };
        let Some(mut t) = ctx.timer else {
            return false;
        };
        if !t.on_422(resp) {
            return false;
        }
        let Ok(old) = ctx.request.message() else {
            return false;
        };
        let seq = old.cseq().map_or(1, |c| c.seq).wrapping_add(1);
        let Ok(b) = RequestBuilder::from_request(&old) else {
            return false;
        };
        let [_, se, min] = t.headers();
        let b = b
            .cseq(seq)
            .remove_header("Session-Expires")
            .remove_header("Min-SE")
            .header(se.0, &se.1)
            .header(min.0, &min.1);
        drop(old);
        let Ok(request) = b.build(&mut self.rng) else {
            return false;
        };
        match self.resend_invite(now, ep, tx, request) {
            Some(ctx) => {
                ctx.timer = Some(t);
                true
            }
            None => false,
        }
    }

    /// What the 2xx to our INVITE `tx` says for later (RFC 4028 section 7.2, RFC 3311 5.1):
    /// the session timer and whether the peer allows UPDATE.
    pub(super) fn ext_read_2xx(
        &self,
        tx: ClientTxId,
        resp: &Message<'_>,
    ) -> (Option<Negotiated>, bool) {
        let timer = self
            .invites
            .get(&tx)
            .and_then(|c| c.timer)
            .and_then(|t| t.on_2xx(resp));
        (timer, allows_update(resp))
    }

    /// Our INVITE's 2xx was kept on dialog `k`: the session timer starts (we are the UAC of
    /// the INVITE); our offer is the SDP a refresh re-INVITE repeats.
    pub(super) fn ext_uac_answered(
        &mut self,
        now: Instant,
        k: DialogKey,
        tx: ClientTxId,
        read: (Option<Negotiated>, bool),
    ) {
        let (timer, peer_update) = read;
        if timer.is_none() && !peer_update {
            if let Some(leg) = self.legs.get_mut(k) {
                leg.shrink_ext();
            }
            return;
        }
        let offer = if peer_update {
            None
        } else {
            self.invites
                .get(&tx)
                .and_then(|c| c.request.message().ok().and_then(|m| body_of(&m)))
        };
        if let Some(leg) = self.legs.get_mut(k) {
            let e = leg.e();
            e.peer_update = peer_update;
            if offer.is_some() {
                e.local_sdp = offer;
            }
        }
        self.ext_set_timer(now, k, timer, false);
    }

    // ---- the session timer ----

    /// Starts, restarts or stops (`None`) the session timer of dialog `k` after a session
    /// refresh transaction whose UAS we were (`we_are_uas`). A dialog with a session timer
    /// has no lifetime limit; one without gets it back (RFC 4028 7.2: a 2xx without
    /// Session-Expires turns the timer off).
    fn ext_set_timer(
        &mut self,
        now: Instant,
        k: DialogKey,
        n: Option<Negotiated>,
        we_are_uas: bool,
    ) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let lifetime = leg.lifetime;
        let e = leg.e();
        if let Some(t) = e.timer_at.take() {
            self.timers.remove(&(t, Due::SessionTimer(k)));
        }
        let Some(e) = self.legs.get_mut(k).map(|l| l.e()) else {
            return;
        };
        match n {
            Some(n) => {
                let r = RunningTimer::start(now, n, we_are_uas);
                let at = r.poll_timeout();
                e.running = Some(r);
                e.timer_at = Some(at);
                self.timers.insert((at, Due::SessionTimer(k)));
                if let Some(t) = lifetime {
                    self.timers.remove(&(t, Due::Lifetime(k)));
                    if let Some(leg) = self.legs.get_mut(k) {
                        leg.lifetime = None;
                    }
                }
            }
            None => {
                e.running = None;
                if let Some(leg) = self.legs.get_mut(k) {
                    leg.shrink_ext();
                }
                self.start_lifetime(now, k);
            }
        }
    }

    /// Does dialog `k` run a session timer (then [`SessionConfig::max_lifetime`] does not
    /// apply)?
    pub(super) fn ext_has_timer(&self, k: DialogKey) -> bool {
        self.legs
            .get(k)
            .and_then(|l| l.ext.as_ref())
            .is_some_and(|e| e.running.is_some())
    }

    /// The session timer of dialog `k` fired (RFC 4028 section 10): refresh (UPDATE when
    /// the peer allows it, else re-INVITE with our last SDP), or BYE.
    pub(super) fn ext_timer_due(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let phase = leg.phase;
        let busy = leg.invite_out.is_some() || leg.invite_in.is_some() || leg.bye.is_some();
        // a refresh re-INVITE is an offer: not while another is outstanding
        let offer_pending = leg.offer != OfferState::Stable;
        let Some(e) = leg.ext.as_mut() else {
            return;
        };
        e.timer_at = None;
        let Some(r) = e.running.as_mut() else {
            return;
        };
        let action = r.handle_timeout(now);
        let update_busy = e.update_out.is_some();
        let (peer_update, sdp) = (e.peer_update, e.local_sdp.clone());
        match action {
            TimerAction::Expire => {
                e.running = None;
                self.stats.sessions_expired += 1;
                self.send_bye(now, ep, k, EndReason::SessionExpired);
                return;
            }
            TimerAction::Refresh if phase == Phase::Up && !busy && !update_busy => {
                let sent = if peer_update {
                    self.ext_send_update(now, ep, k, None).is_ok()
                } else if let Some(sdp) = sdp.filter(|_| !offer_pending) {
                    // A re-INVITE repeating our SDP: section 14.1's machinery answers it.
                    self.send_reinvite(now, ep, k, sdp).is_ok()
                } else {
                    false
                };
                if !sent {
                    self.ext_refresh_failed(now, k);
                    return;
                }
                self.stats.session_refreshes += 1;
            }
            TimerAction::Refresh => {
                // Something is in progress: try again later.
                self.ext_refresh_failed(now, k);
                return;
            }
            TimerAction::Nothing => {}
        }
        self.ext_rearm_timer(k);
    }

    fn ext_refresh_failed(&mut self, now: Instant, k: DialogKey) {
        if let Some(r) = self
            .legs
            .get_mut(k)
            .and_then(|l| l.ext.as_mut())
            .and_then(|e| e.running.as_mut())
        {
            r.refresh_failed(now);
        }
        self.ext_rearm_timer(k);
    }

    fn ext_rearm_timer(&mut self, k: DialogKey) {
        let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) else {
            return;
        };
        if let Some(t) = e.timer_at.take() {
            self.timers.remove(&(t, Due::SessionTimer(k)));
        }
        if let Some(at) = e.running.map(|r| r.poll_timeout()) {
            e.timer_at = Some(at);
            self.timers.insert((at, Due::SessionTimer(k)));
        }
    }

    /// A re-INVITE from the peer on dialog `k` (a session refresh request, RFC 4028
    /// section 9): what its 2xx will carry; `Err` the 422 to send instead.
    pub(super) fn ext_on_reinvite(&mut self, k: DialogKey, msg: &Message<'_>) -> Result<(), u32> {
        let decision = timer::uas_negotiate(self.config.session_timer, msg);
        let peer_update = allows_update(msg);
        let Some(leg) = self.legs.get_mut(k) else {
            return Ok(());
        };
        match decision {
            UasDecision::TooSmall { min_se } => Err(min_se),
            UasDecision::Accept(n) => {
                let e = leg.e();
                e.uas_timer = Some(n);
                e.peer_update |= peer_update;
                Ok(())
            }
            UasDecision::Off => Ok(()),
        }
    }

    /// A 2xx to our re-INVITE on dialog `k` (a session refresh request): the session timer
    /// restarts from it, or stops when it has no Session-Expires (RFC 4028 section 7.2); the
    /// offer it answered is our SDP now.
    pub(super) fn ext_reinvite_answered(&mut self, now: Instant, k: DialogKey, resp: &Message<'_>) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let offer = leg.x.as_ref().and_then(|x| x.offer_out.clone());
        let e = leg.e();
        e.peer_update |= allows_update(resp);
        if !e.peer_update && offer.is_some() {
            e.local_sdp = offer;
        }
        let n = e.uac_timer.take().and_then(|t| t.on_2xx(resp));
        if self.config.session_timer.is_some() {
            self.ext_set_timer(now, k, n, false);
        }
    }

    // ---- UPDATE ----

    /// The dialog of `call` that an UPDATE goes on: the kept one, or (UAC, early) the early
    /// dialog whose first offer/answer exchange completed.
    fn ext_update_dialog(&self, call: CallHandle) -> Result<DialogKey, SessionError> {
        let c = call_key(call);
        let state = self.calls.get(c).ok_or(SessionError::UnknownCall)?;
        if let Some(k) = state.leg {
            return Ok(k);
        }
        let tx = state.invite.ok_or(SessionError::WrongState)?;
        let ctx = self.invites.get(&tx).ok_or(SessionError::WrongState)?;
        ctx.forks
            .iter()
            .copied()
            .find(|&k| self.ext_early_done(k))
            .ok_or(SessionError::WrongState)
    }

    /// Sends an UPDATE with a new offer (RFC 3311 section 5.1), in an early dialog once its
    /// first offer/answer exchange completed (reliable 1xx and PRACK) or in a confirmed one.
    /// Refused while an offer is pending either way or an INVITE or UPDATE is in progress.
    /// The answer comes as [`SessionEvent::Answer`]; a refusal as
    /// [`SessionEvent::OfferRefused`] (a 491 is first retried as section 14.1 of RFC 3261
    /// says).
    pub fn update(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        call: CallHandle,
        offer: Vec<u8>,
    ) -> Result<(), SessionError> {
        let k = self.ext_update_dialog(call)?;
        let leg = self.legs.get(k).ok_or(SessionError::UnknownCall)?;
        let early = leg.phase == Phase::Early;
        if leg.phase == Phase::Bye || leg.phase == Phase::WaitAck && leg.offer != OfferState::Stable
        {
            return Err(SessionError::WrongState);
        }
        if early && !self.ext_early_done(k) {
            return Err(SessionError::WrongState);
        }
        let e = leg.ext.as_ref();
        let state = match leg.offer {
            OfferState::Stable => update::OfferState::Stable,
            OfferState::LocalOffer => update::OfferState::LocalOffer,
            OfferState::RemoteOffer => update::OfferState::RemoteOffer,
        };
        let busy = leg.invite_out.is_some()
            || e.is_some_and(|e| e.update_out.is_some() || e.update_retry_at.is_some());
        if !update::may_offer(state) || busy {
            return Err(SessionError::OfferPending);
        }
        if let Some(leg) = self.legs.get_mut(k) {
            leg.e().update_retries = 0;
        }
        self.ext_send_update(now, endpoint, k, Some(offer))
    }

    /// Sends an UPDATE on dialog `k`: with an offer, or without (a session refresh).
    fn ext_send_update(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        offer: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        let (req, target) = self.dialog_request(ep, k, Method::Update, None, offer.as_deref())?;
        let tx = ep.send_request(now, &req, target)?;
        self.clients.insert(tx, Pending::Update(k));
        if let Some(leg) = self.legs.get_mut(k) {
            if offer.is_some() {
                leg.offer = OfferState::LocalOffer;
            }
            let e = leg.e();
            e.update_out = Some(tx);
            e.update_offer = offer;
        }
        Ok(())
    }

    /// The 491 retry timer of an UPDATE fired: send it again, unless an offer got in first.
    pub(super) fn ext_retry_update(&mut self, now: Instant, ep: &mut Endpoint, k: DialogKey) {
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let free =
            leg.offer == OfferState::Stable && leg.invite_out.is_none() && leg.phase != Phase::Bye;
        let call = leg.call.or_else(|| early_call(&self.invites, k));
        let e = leg.e();
        e.update_retry_at = None;
        let offer = e.update_offer.take();
        match offer {
            Some(offer) if free => {
                self.stats.glare_retries += 1;
                if self.ext_send_update(now, ep, k, Some(offer)).is_err() {
                    self.refused(call, 491);
                }
            }
            _ => self.refused(call, 491),
        }
    }

    /// The response to our UPDATE or PRACK on dialog `k`.
    pub(super) fn ext_on_response(
        &mut self,
        now: Instant,
        _ep: &mut Endpoint,
        pending: Pending,
        resp: Option<&Message<'_>>,
        transport: bool,
    ) {
        let k = match pending {
            Pending::Update(k) => k,
            Pending::Prack(k) => {
                // A 2xx needs nothing; a failure leaves the early dialog as it is (the
                // INVITE's final response decides).
                let _ = k;
                return;
            }
            _ => return,
        };
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let call = leg.call.or_else(|| early_call(&self.invites, k));
        let owner = leg.owner;
        let e = leg.e();
        e.update_out = None;
        let refresh = e.update_offer.is_none();
        let status = resp.and_then(|r| r.status()).unwrap_or(408);
        let early = leg.phase == Phase::Early;
        if let Some(resp) = resp.filter(|_| (200..300).contains(&status)) {
            leg.dialog.refresh_target(resp);
            if !refresh {
                leg.offer = OfferState::Stable;
            }
            let e = leg.e();
            e.update_offer = None;
            e.peer_update = true;
            let n = e.uac_timer.take().and_then(|t| t.on_2xx(resp));
            let answer = body_of(resp);
            // (session timers time sessions: not an early dialog's UPDATE)
            if !early && (self.ext_has_timer(k) || n.is_some()) {
                self.ext_set_timer(now, k, n, false);
            }
            if let (false, Some(c), Some(sdp)) = (refresh, call, answer) {
                self.push_event(SessionEvent::Answer {
                    call: call_handle(c),
                    sdp,
                });
            }
            return;
        }
        if !refresh {
            leg.offer = OfferState::Stable;
        }
        match status {
            408 | 481 if !transport || status == 481 => {
                self.dialog_failed(k, status == 481);
            }
            _ if transport => {
                if let Some(c) = call {
                    self.end_call(c, EndReason::TransportError);
                }
                self.free_leg(k);
            }
            491 if !refresh
                && self
                    .legs
                    .get(k)
                    .and_then(|l| l.ext.as_ref())
                    .is_some_and(|e| e.update_retries < MAX_UPDATE_RETRIES) =>
            {
                let at = now + self.glare_delay(owner);
                if let Some(e) = self.legs.get_mut(k).map(|l| l.e()) {
                    e.update_retries += 1;
                    e.update_retry_at = Some(at);
                }
                self.arm(at, Due::UpdateRetry(k));
            }
            _ if refresh => {
                // A refused refresh (422 included: the next one asks for its Min-SE): try
                // again before the session expires (RFC 4028 section 10).
                if let Some(min) = resp.and_then(timer::min_se_of) {
                    if let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) {
                        if let Some(run) = e.running.as_mut() {
                            run.raise_interval(min);
                        }
                    }
                }
                self.ext_refresh_failed(now, k);
            }
            _ => {
                if let Some(e) = self.legs.get_mut(k).and_then(|l| l.ext.as_mut()) {
                    e.update_offer = None;
                }
                self.refused(call, status);
            }
        }
    }

    /// An UPDATE from the peer on dialog `k` (RFC 3311 section 5.2): 491 or 500 with
    /// Retry-After when offers would overlap; a target refresh; a session refresh (RFC 4028
    /// section 9, 422 when too small); its offer goes to the application
    /// ([`SessionEvent::Offer`] with method "UPDATE") and the answer into the 2xx, else the
    /// 2xx goes at once.
    pub(super) fn on_update(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        tx: ServerTxId,
        request: OwnedMessage,
        k: DialogKey,
    ) {
        let Ok(msg) = request.message() else {
            return;
        };
        let offer = body_of(&msg);
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        // session timers time sessions: not an early dialog's UPDATE
        let timers = self
            .config
            .session_timer
            .filter(|_| leg.phase != Phase::Early);
        let decision = timer::uas_negotiate(timers, &msg);
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let ours_pending = leg.offer == OfferState::LocalOffer;
        let theirs_pending = leg.offer == OfferState::RemoteOffer
            || leg.ext.as_ref().is_some_and(|e| e.update_in.is_some());
        let state = if ours_pending {
            update::OfferState::LocalOffer
        } else if theirs_pending {
            update::OfferState::RemoteOffer
        } else if leg.phase == Phase::Early && !leg.ext.as_ref().is_some_and(|e| e.early_done) {
            update::OfferState::Initial
        } else {
            update::OfferState::Stable
        };
        match update::on_update(state, offer.is_some(), &mut self.rng) {
            UpdateVerdict::Glare => {
                drop(msg);
                self.refuse(now, ep, tx, &request, 491, &[]);
                return;
            }
            UpdateVerdict::Busy { retry_after } => {
                drop(msg);
                let secs = retry_after.to_string();
                self.refuse(now, ep, tx, &request, 500, &[("Retry-After", &secs)]);
                return;
            }
            UpdateVerdict::Process => {}
        }
        if let UasDecision::TooSmall { min_se } = decision {
            drop(msg);
            let min = min_se.to_string();
            self.refuse(now, ep, tx, &request, 422, &[("Min-SE", &min)]);
            return;
        }
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        leg.dialog.refresh_target(&msg);
        let e = leg.e();
        e.peer_update = true;
        e.uas_timer = match decision {
            UasDecision::Accept(n) => Some(n),
            _ => None,
        };
        drop(msg);
        let call = leg.call.or_else(|| early_call(&self.invites, k));
        match offer {
            Some(sdp) => {
                leg.offer = OfferState::RemoteOffer;
                leg.e().update_in = Some(Box::new((tx, request)));
                if let Some(c) = call {
                    self.push_event(SessionEvent::Offer {
                        call: call_handle(c),
                        method: "UPDATE".to_owned(),
                        sdp,
                    });
                }
            }
            None => self.ext_answer_update(now, ep, k, tx, &request, Ok(None)),
        }
    }

    /// The final response to the peer's UPDATE `tx` on dialog `k`: 2xx with our Contact,
    /// the answer and the session timer (restarted), or the refusal.
    fn ext_answer_update(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        k: DialogKey,
        tx: ServerTxId,
        request: &OwnedMessage,
        answer: Result<Option<&[u8]>, u16>,
    ) {
        // (UPDATE is a target refresh request; a PRACK's offer is answered here too)
        let update = request.method() == Some(Method::Update);
        let contact = self
            .legs
            .get(k)
            .filter(|_| update)
            .and_then(|leg| self.dialog_contact(ep, &leg.dialog).ok());
        let Some(leg) = self.legs.get_mut(k) else {
            return;
        };
        let n = leg.e().uas_timer.take();
        let status = match answer {
            Ok(_) => 200,
            Err(s) if (300..=699).contains(&s) => s,
            Err(_) => 488,
        };
        let mut extra: Vec<(&str, String)> = Vec::new();
        if status == 200 && update {
            extra.push(("Allow", ALLOW.to_owned()));
            if let Some(s) = self.ext_supported(self.config.rel100) {
                extra.push(("Supported", s));
            }
            if let Some(n) = n {
                extra.push(("Session-Expires", n.header_value()));
                if n.requires_timer() {
                    extra.push(("Require", timer::TAG_TIMER.to_owned()));
                }
            }
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let reply = Reply {
            contact: if status == 200 { contact } else { None },
            body: answer.ok().flatten(),
            extra: &extra,
            ..Reply::default()
        };
        let sent = self.respond(now, ep, tx, request, status, reply).is_some();
        if sent && status == 200 && (n.is_some() || self.ext_has_timer(k)) {
            self.ext_set_timer(now, k, n, true);
        }
    }

    /// `answer_offer` for an offer this module delivered: the peer's UPDATE (answer in its
    /// 2xx) or a reliable 1xx (answer in the PRACK). `None`: not ours.
    pub(super) fn ext_answer_offer(
        &mut self,
        now: Instant,
        ep: &mut Endpoint,
        call: CallHandle,
        answer: &Result<Vec<u8>, u16>,
    ) -> Option<Result<(), SessionError>> {
        let c = call_key(call);
        let state = self.calls.get(c)?;
        let candidates: SmallVec<[DialogKey; 2]> = match state.leg {
            Some(k) => std::iter::once(k).collect(),
            None => state
                .invite
                .and_then(|tx| self.invites.get(&tx))
                .map(|ctx| ctx.forks.clone())
                .unwrap_or_default(),
        };
        for k in candidates {
            let Some(leg) = self.legs.get_mut(k) else {
                continue;
            };
            if let Some(pending) = leg.ext.as_mut().and_then(|e| e.update_in.take()) {
                let (tx, request) = *pending;
                leg.offer = OfferState::Stable;
                let ans = match answer {
                    Ok(sdp) => Ok(Some(sdp.as_slice())),
                    Err(s) => Err(*s),
                };
                if let (Ok(Some(sdp)), false) = (&ans, leg.e().peer_update) {
                    leg.e().local_sdp = Some(sdp.to_vec());
                }
                self.ext_answer_update(now, ep, k, tx, &request, ans);
                return Some(Ok(()));
            }
            if leg.ext.as_mut().and_then(|e| e.prack_wait.take()).is_some() {
                match answer {
                    Ok(sdp) => {
                        leg.offer = OfferState::Stable;
                        leg.e().early_done = true;
                        self.ext_send_prack(now, ep, k, Some(sdp));
                    }
                    Err(_) => {
                        // RFC 3262 5 leaves no way to refuse the offer of a 1xx but
                        // ending the call: PRACK it, then CANCEL.
                        leg.offer = OfferState::Stable;
                        self.ext_send_prack(now, ep, k, None);
                        let _ = self.hangup(now, ep, call);
                    }
                }
                return Some(Ok(()));
            }
        }
        None
    }

    /// Dialog `k` is being freed: its timers go.
    pub(super) fn ext_forget(&mut self, k: DialogKey, ext: &Ext) {
        if let Some(t) = ext.rel_at {
            self.timers.remove(&(t, Due::Rel100(k)));
        }
        if let Some(t) = ext.timer_at {
            self.timers.remove(&(t, Due::SessionTimer(k)));
        }
        if let Some(t) = ext.update_retry_at {
            self.timers.remove(&(t, Due::UpdateRetry(k)));
        }
        if let Some(tx) = ext.update_out {
            self.clients.remove(&tx);
        }
    }
}

impl Leg {
    /// Drops the [`Ext`] when nothing in it matters any more.
    fn shrink_ext(&mut self) {
        let empty = self.ext.as_ref().is_some_and(|e| {
            e.rel_uas.is_none()
                && e.held_2xx.is_none()
                && e.rel_uac.last_rseq().is_none()
                && e.prack_wait.is_none()
                && !e.early_done
                && e.update_out.is_none()
                && e.update_in.is_none()
                && e.update_retry_at.is_none()
                && !e.peer_update
                && e.uas_timer.is_none()
                && e.uac_timer.is_none()
                && e.running.is_none()
        });
        if empty {
            self.ext = None;
        }
    }
}
