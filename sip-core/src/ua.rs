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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::endpoint::{Endpoint, Event, ServerTxId, TransactionUser};
use crate::rng::push_random_token;
use crate::validate::{self, Policy, Verdict};
use crate::{Method, OwnedMessage, ResponseBuilder, SeededRng, Timers};

/// How the UAS core answers.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The Contact written in dialog-creating responses, e.g. `<sip:sipd@127.0.0.1:5060>`.
    pub contact: String,
    /// Time between 180 Ringing and 200 OK.
    pub ring: Duration,
    /// The SDP body of the 200 to an INVITE.
    pub answer_sdp: Vec<u8>,
    /// The Server header, if any.
    pub server: Option<String>,
    /// Timer values for the 2xx retransmission (T1, T2; section 13.3.1.4).
    pub timers: Timers,
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
        }
    }
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
}

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

/// A response to write: code, To tag, extra headers, SDP body.
struct Reply<'a> {
    code: u16,
    tag: Option<&'a str>,
    extra: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
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
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Answer(ServerTxId),
    Retransmit(String),
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
    pub fn new(config: UaConfig, seed: [u8; 32]) -> UserAgent {
        UserAgent {
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

    /// The next thing that happened, for logs.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
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
        } = reply;
        let view = request.view();
        let mut b = ResponseBuilder::from_view(&view, code);
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
        cancels: Option<ServerTxId>,
    ) {
        let Ok(msg) = request.message() else {
            return;
        };
        let Some(method) = msg.method() else {
            return;
        };
        match validate::request(&msg, &POLICY) {
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
                self.events.push_back(UaEvent::Message { text });
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
                    self.events.push_back(UaEvent::CallEnded { call_id });
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
        self.events.push_back(UaEvent::CallAnswered { call_id });
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

impl TransactionUser for UserAgent {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        match event {
            Event::Request {
                tx,
                request,
                cancels,
                ..
            } => self.on_request(now, endpoint, tx, request, cancels),
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
        self.timers.first().map(|(t, _)| *t)
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
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
            }
        }
    }
}
