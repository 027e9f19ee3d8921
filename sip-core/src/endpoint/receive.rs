//! The receive path: datagrams and stream bytes in, framed (RFC 3261 section 18.3), parsed,
//! checked by the transport layer (sections 18.1.2 and 18.2.1) and matched to transactions
//! (sections 17.1.3 and 17.2.3), or handed to the transaction user.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{
    build, ClientTxId, Endpoint, Event, Payload, Queued, Sending, ServerEntry, ServerTxId,
};
use crate::message::raw;
use crate::message::MessageView;
use crate::transaction::key::{self, KeyBuf};
use crate::transaction::server::ServerMachine;
use crate::transport::flow::ReadUnits;
use crate::transport::framing::{Frame, FrameError};
use crate::transport::via::{self, ResponseRoute};
use crate::transport::{FlowId, Source, Transmit, Transport};
use crate::{Message, Method, OwnedMessage, ParseError};

/// What the view-level retransmission check did.
enum Absorb {
    /// The request belonged to a transaction and was handled.
    Done,
    /// Its key names no transaction.
    NoMatch(LookedUp),
    /// The view alone could not decide.
    NotTried,
}

/// A request's server transaction key that was looked up and names no transaction, with
/// its hash: handed on to the code that creates the transaction, so the key is neither
/// encoded nor hashed twice.
struct LookedUp {
    key: KeyBuf,
    hash: u64,
}

impl Endpoint {
    /// A datagram arrived at `local` from `remote`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let source = Source {
            transport: Transport::Udp,
            local,
            remote,
            flow: None,
        };
        // Section 26.1.5: what a source sends pays for the response retransmissions it gets.
        if !self.config.response_policy.trusts_via() {
            self.credit.received(remote.ip(), data.len());
        }
        // Keep-alives over UDP (a lone CRLF or CRLFCRLF) carry no message.
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return;
        }
        self.arm_new_transactions();
        // An ACK is framed first: most match no transaction (the ACK for a 2xx, section
        // 17.2.3) and go up framed, so one framing serves the lookup and the hand-off.
        if data.starts_with(b"ACK ") {
            match MessageView::parse_datagram(data, &self.config.limits) {
                Ok(view) => self.receive(now, view, source),
                Err(_) => {
                    self.stats.received += 1;
                    self.stats.malformed += 1;
                }
            }
            return;
        }
        self.stats.received += 1;
        // A retransmission is recognised from the request line and the first Via line
        // alone; anything else is framed and typed in one pass.
        let (absorbed, is_ack) = match raw::request_top_via(data, &self.config.limits) {
            Some((method, via)) => (
                self.absorb_retransmission(now, method, via),
                method == Method::Ack,
            ),
            None => (Absorb::NotTried, false),
        };
        let looked_up = match absorbed {
            Absorb::Done => return,
            Absorb::NoMatch(_) if is_ack => {
                match MessageView::parse_datagram(data, &self.config.limits) {
                    Ok(view) => self.ack_to_user(&view, source),
                    Err(_) => self.stats.malformed += 1,
                }
                return;
            }
            Absorb::NoMatch(looked_up) => Some(looked_up),
            Absorb::NotTried => None,
        };
        match Message::parse_with(data, &self.config.limits) {
            Ok(msg) if msg.is_request() => self.receive_request(now, msg, source, looked_up),
            Ok(msg) => self.receive_response(now, msg, source),
            Err(e) => self.reject_unparsed(now, data, e, &source),
        }
    }

    /// Bytes arrived on a stream flow. Messages are framed by Content-Length (section 18.3)
    /// across any split; a keep-alive ping is answered with a pong (RFC 5626 section 3.5.1).
    /// A framing error, a message not complete within [`Config::stream_message_timeout`]
    /// or a partial message beyond the byte budget closes the flow ([`IoRequest::Close`]).
    ///
    /// [`Config::stream_message_timeout`]: crate::Config::stream_message_timeout
    /// [`IoRequest::Close`]: crate::IoRequest::Close
    pub fn handle_stream(&mut self, now: Instant, flow: FlowId, data: &[u8]) {
        self.arm_new_transactions();
        let Some((source, mut framer)) = self.flows.begin_read(flow) else {
            return;
        };
        let mut units = ReadUnits::default();
        loop {
            match framer.next(data, &self.config.limits, &mut self.budget) {
                Ok(Frame::Message(view)) => {
                    units.messages += 1;
                    self.receive(now, view, source);
                    if !self.flows.contains(flow) {
                        framer.release(&mut self.budget);
                        return;
                    }
                }
                Ok(Frame::Ping) => {
                    units.keepalives += 1;
                    self.stats.pongs += 1;
                    let pong = self.pong.clone();
                    self.transmits.push_back(Queued {
                        bytes: pong,
                        transmit: Transmit {
                            transport: source.transport,
                            local: source.local,
                            remote: source.remote,
                            flow: Some(flow),
                        },
                    });
                }
                Ok(Frame::Pong) => units.pongs += 1,
                Ok(Frame::Buffered) => {}
                Ok(Frame::Done) => break,
                Err(e) => {
                    // No Content-Length, too large, or garbage: the stream can no longer be
                    // framed, so the flow is closed. So is one whose partial message needs
                    // more than the byte budget has left.
                    if let FrameError::Invalid(_) = e {
                        self.stats.malformed += 1;
                    }
                    framer.release(&mut self.budget);
                    self.close_flow(now, flow);
                    return;
                }
            }
        }
        self.flows
            .end_read(flow, framer, now, units, &mut self.budget);
    }

    fn receive(&mut self, now: Instant, view: MessageView<'_>, source: Source) {
        self.stats.received += 1;
        let method = view.method();
        let absorbed = match (method, view.header(crate::HeaderName::Via)) {
            (Some(method), Some(via)) => self.absorb_retransmission(now, method, via),
            _ => Absorb::NotTried,
        };
        let looked_up = match absorbed {
            Absorb::Done => return,
            Absorb::NoMatch(_) if method == Some(Method::Ack) => {
                self.ack_to_user(&view, source);
                return;
            }
            Absorb::NoMatch(looked_up) => Some(looked_up),
            Absorb::NotTried => None,
        };
        let data = view.as_bytes();
        match Message::from_view(view, &self.config.limits) {
            Ok(msg) if msg.is_request() => self.receive_request(now, msg, source, looked_up),
            Ok(msg) => self.receive_response(now, msg, source),
            Err(e) => self.reject_unparsed(now, data, e, &source),
        }
    }

    /// Section 17.2.3 from the method and the raw first Via line alone: a request whose top
    /// Via (magic-cookie branch, sent-by) and method name a live server transaction is a
    /// retransmission (or the ACK of a non-2xx), handled without typing the message. An ACK
    /// the transaction user must see (RFC 6026, Accepted) takes the full path.
    fn absorb_retransmission(&mut self, now: Instant, method: Method<'_>, raw_via: &str) -> Absorb {
        let mut key = KeyBuf::new();
        if !key::server_key_from_raw_via(&mut key, raw_via, method) {
            return Absorb::NotTried;
        }
        let hash = self.server_keys.hash(&key);
        let Some(tx) = self.server_keys.find(hash, &key) else {
            return Absorb::NoMatch(LookedUp { key, hash });
        };
        if method == Method::Ack {
            let accepted = self
                .servers
                .get(tx.0)
                .is_some_and(|e| e.m.state == crate::ServerState::Accepted);
            if accepted {
                return Absorb::NotTried;
            }
            self.stats.absorbed += 1;
            let timers = self.config.timers;
            if let Some(e) = self.servers.get_mut(tx.0) {
                let before = e.m.timers;
                e.m.on_ack(now, &timers);
                let after = e.m.timers;
                self.sync_server_timers(tx, before, after);
            }
            self.finish_server(tx);
            return Absorb::Done;
        }
        self.stats.absorbed += 1;
        let step = self.servers.get_mut(tx.0).map(|e| e.m.on_request());
        if step.is_some_and(|s| s.resend_response) {
            self.resend_response(now, tx);
        }
        Absorb::Done
    }

    /// An ACK that matches no transaction (the ACK for a 2xx, section 17.2.3) goes to the
    /// transaction user framed but not typed: nothing can answer an ACK, so no layer below
    /// needs its headers, and the transaction user types what it reads. It must carry the
    /// headers a dialog is found by (section 8.1.1); otherwise it is dropped.
    fn ack_to_user(&mut self, view: &MessageView<'_>, source: Source) {
        use crate::HeaderName as H;
        let complete = [H::From, H::To, H::CallId, H::CSeq]
            .iter()
            .all(|&h| view.header(h).is_some());
        if !complete {
            self.stats.malformed += 1;
            return;
        }
        let request = OwnedMessage::from_view(view).with_limits(&self.config.limits);
        self.events.push_back(Event::Ack { request, source });
    }

    /// A message that did not parse: requests other than ACK get the response the error
    /// calls for (400, 505, 513) when their Via, From, To, Call-ID and CSeq are readable
    /// enough to address one; everything else is dropped.
    fn reject_unparsed(&mut self, now: Instant, data: &[u8], e: ParseError, source: &Source) {
        self.stats.malformed += 1;
        let Some(code) = e.response_status() else {
            return;
        };
        if data.starts_with(b"SIP/") || data.starts_with(b"ACK ") {
            return;
        }
        let reason = crate::reason_phrase(code);
        self.stateless_response(now, data, code, reason, "", source);
    }

    /// Writes and sends a response without a transaction (sections 8.2 and 21.5.4).
    fn stateless_response(
        &mut self,
        now: Instant,
        data: &[u8],
        code: u16,
        reason: &str,
        extra: &str,
        source: &Source,
    ) {
        let mut tag = String::new();
        crate::rng::push_random_token(&mut tag, &mut self.rng, 10);
        let bytes = build::response_from_raw(data, code, reason, Some(&tag), extra);
        // The response copies the request's Via lines, From, To, Call-ID and CSeq (section
        // 8.2.6.2), which may be past the limits applied to input: the request may be
        // refused for that very reason. The request's size bounds what is copied.
        let copied = crate::Limits {
            max_message_size: usize::MAX,
            max_headers: usize::MAX,
            max_header_line: usize::MAX,
            max_vias: usize::MAX,
            max_uri_length: usize::MAX,
        };
        let Ok(msg) = Message::parse_with(&bytes, &copied) else {
            return;
        };
        let Some(top) = msg.top_via() else {
            return;
        };
        let route = via::response_route(&top, source, self.config.response_policy);
        let data = Payload::Bytes(Arc::from(bytes.as_slice()));
        self.stats.stateless_responses += 1;
        match route {
            ResponseRoute::Datagram { local, remote } => {
                self.queue_response_datagram(local, remote, data, Sending::Answer);
            }
            ResponseRoute::Flow {
                flow,
                transport,
                fallback,
            } => {
                let _ = self.send_to(now, transport, source.local, fallback, data, Some(flow));
            }
        }
    }

    /// `looked_up`: this request's key and hash when the view-level lookup already made
    /// them and found no transaction, so neither needs doing again.
    fn receive_request(
        &mut self,
        now: Instant,
        msg: Message<'_>,
        source: Source,
        looked_up: Option<LookedUp>,
    ) {
        let Some(method) = msg.method() else {
            return;
        };
        let is_ack = method == Method::Ack;
        // Section 18.2.1 needs a top Via to answer at all; section 8.2 / 17.2.3 need the
        // rest of the transaction identifiers.
        let Some(top) = msg.top_via() else {
            self.stats.malformed += 1;
            return;
        };
        let complete = msg.from().is_some()
            && msg.to().is_some()
            && msg.call_id().is_some()
            && msg.cseq().is_some_and(|c| c.method == method);
        if !complete {
            self.stats.malformed += 1;
            if !is_ack {
                let data = msg.view().as_bytes();
                self.stateless_response(now, data, 400, "Bad Request", "", &source);
            }
            return;
        }
        let to_tag = msg.to().and_then(|t| t.tag());
        let (key, key_hash, found) = match looked_up {
            Some(LookedUp { key, hash }) => (key, Some(hash), None),
            None => {
                let mut key = KeyBuf::new();
                match key::server_key(&mut key, &msg, method, to_tag) {
                    Some(()) => {
                        let hash = self.server_keys.hash(&key);
                        let found = self.server_keys.find(hash, &key);
                        (key, Some(hash), found)
                    }
                    None => (key, None, None),
                }
            }
        };
        let found = found.or_else(|| {
            // An ACK to a non-2xx from an RFC 2543 peer carries the To tag of our
            // response, which the INVITE (and so the key) did not have.
            // Section 17.2.3: it matches only when that tag is the one we sent.
            if !is_ack || key::rfc3261_branch(&top).is_some() {
                return None;
            }
            let mut untagged = KeyBuf::new();
            key::server_key(&mut untagged, &msg, method, None)?;
            let hash = self.server_keys.hash(&untagged);
            self.server_keys
                .find(hash, &untagged)
                .filter(|tx| self.sent_to_tag_is(*tx, to_tag))
        });
        if let Some(tx) = found {
            self.stats.absorbed += 1;
            if is_ack {
                self.ack_matched(now, tx, msg, source);
            } else {
                let step = self.servers.get_mut(tx.0).map(|e| e.m.on_request());
                if step.is_some_and(|s| s.resend_response) {
                    self.resend_response(now, tx);
                }
            }
            return;
        }
        if is_ack {
            // Section 17.2.3: an ACK matching no transaction (the ACK for a 2xx) goes to
            // the transaction user. Nothing answers an ACK, so its Via is left as received.
            let request = OwnedMessage::from_view(msg.view()).with_limits(&self.config.limits);
            self.events.push_back(Event::Ack { request, source });
            return;
        }
        // What the transaction will hold: the request (until the final response) and key.
        let needed = msg.view().as_bytes().len() + key.len();
        if self.transactions() >= self.config.max_transactions || !self.budget.fits(needed) {
            let data = msg.view().as_bytes();
            self.stateless_response(
                now,
                data,
                503,
                "Service Unavailable",
                "Retry-After: 5\r\n",
                &source,
            );
            return;
        }
        let cancels = if method == Method::Cancel {
            let mut k = KeyBuf::new();
            key::server_key(&mut k, &msg, Method::Invite, to_tag)
                .and_then(|()| self.server_keys.find(self.server_keys.hash(&k), &k))
        } else {
            None
        };
        let request = self.owned_request(&msg, &top, &source);
        let route = via::response_route(&top, &source, self.config.response_policy);
        let timers = self.config.timers;
        let m = ServerMachine::start(
            method == Method::Invite,
            source.transport.is_reliable(),
            now,
            &timers,
        );
        let key: Box<[u8]> = key.as_slice().into();
        let key_hash = key_hash.unwrap_or_else(|| self.server_keys.hash(&key));
        debug_assert_eq!(key_hash, self.server_keys.hash(&key));
        // As `recharge` counts it: the request and the key.
        let stored = request.as_bytes().len() + key.len();
        let tx = ServerTxId(self.servers.insert(ServerEntry {
            m,
            request: Some(request.clone()),
            key: key.clone(),
            key_hash,
            route,
            last_response: None,
            armed: false,
            sent_2xx: None,
            charged: stored,
        }));
        self.budget.charge(stored);
        self.server_keys.insert(key_hash, key, tx);
        if let ResponseRoute::Flow { flow, .. } = route {
            self.bind_flow(Some(flow));
        }
        self.stats.transactions += 1;
        // Indexed when the next input arrives (see `Endpoint::unarmed`).
        self.unarmed.push(tx);
        self.events.push_back(Event::Request {
            tx,
            request,
            source,
            cancels,
        });
    }

    /// Does the last response of `tx` carry the To tag `tag`?
    fn sent_to_tag_is(&self, tx: ServerTxId, tag: Option<&str>) -> bool {
        let Some(last) = self
            .servers
            .get(tx.0)
            .and_then(|e| e.last_response.as_ref())
        else {
            return false;
        };
        Message::parse(last.as_slice()).is_ok_and(|m| m.to().and_then(|t| t.tag()) == tag)
    }

    /// The request as the transaction user sees it: with `received` and `rport` added to
    /// the top Via where section 18.2.1 and RFC 3581 say.
    fn owned_request(
        &mut self,
        msg: &Message<'_>,
        top: &crate::message::Via<'_>,
        source: &Source,
    ) -> OwnedMessage {
        let data = msg.view().as_bytes();
        let insertions = via::stamp_insertions(data, top, source.remote);
        let request = if insertions.is_empty() {
            OwnedMessage::from_view(msg.view())
        } else {
            OwnedMessage::from_view_with_insertions(msg.view(), &insertions)
        };
        request.with_limits(&self.config.limits)
    }

    fn ack_matched(&mut self, now: Instant, tx: ServerTxId, msg: Message<'_>, source: Source) {
        let timers = self.config.timers;
        let Some(e) = self.servers.get_mut(tx.0) else {
            return;
        };
        let before = e.m.timers;
        let step = e.m.on_ack(now, &timers);
        let after = e.m.timers;
        self.sync_server_timers(tx, before, after);
        if step.deliver_ack {
            let request = OwnedMessage::from_view(msg.view()).with_limits(&self.config.limits);
            self.events.push_back(Event::Ack { request, source });
        }
        self.finish_server(tx);
    }

    fn receive_response(&mut self, now: Instant, msg: Message<'_>, source: Source) {
        let (Some(top), Some(cseq), Some(code)) = (msg.top_via(), msg.cseq(), msg.status()) else {
            self.stats.malformed += 1;
            return;
        };
        // Section 18.1.2: a response whose top Via sent-by is not ours is discarded.
        let host = match top.host {
            crate::message::Host::Domain(h)
            | crate::message::Host::Ipv4(h)
            | crate::message::Host::Ipv6(h) => h,
        };
        if !self.is_ours(host, top.port, Transport::from_via_token(top.transport)) {
            self.stats.dropped += 1;
            return;
        }
        if !(100..=699).contains(&code) {
            self.stats.dropped += 1;
            return;
        }
        let branch = top.branch().unwrap_or("");
        key::client_key(&mut self.scratch, branch, cseq.method.as_str());
        let Some(tx) = self
            .client_keys
            .find(self.client_keys.hash(&self.scratch), &self.scratch)
        else {
            let response = OwnedMessage::from_view(msg.view()).with_limits(&self.config.limits);
            self.events
                .push_back(Event::StrayResponse { response, source });
            return;
        };
        self.client_response(now, tx, &msg, code);
    }

    fn client_response(&mut self, now: Instant, tx: ClientTxId, msg: &Message<'_>, code: u16) {
        let timers = self.config.timers;
        let Some(e) = self.clients.get_mut(tx.0) else {
            return;
        };
        let before = e.m.timers;
        let step = e.m.on_response(now, code, &timers);
        let after = e.m.timers;
        let state = e.m.state;
        if !step.deliver && !step.send_ack {
            self.stats.absorbed += 1;
        }
        let mut ack = None;
        if step.send_ack {
            if e.ack.is_none() {
                let bytes = build::ack_for(&e.request.view(), msg.view());
                e.ack = Some(Payload::Bytes(Arc::from(bytes.as_slice())));
            }
            ack = e
                .ack
                .clone()
                .map(|a| (e.transport, e.local, e.remote, a, e.flow));
        }
        let cancel = e.cancel;
        let located = e.located.is_some();
        self.sync_client_timers(tx, before, after);
        if let Some((transport, local, remote, data, flow)) = ack {
            let _ = self.send_to(now, transport, local, remote, data, flow);
        }
        // RFC 3263 4.3: a 503 to a request sent to a URI goes to the next target (the
        // transaction user does not see it); any other response ends failover.
        if located && step.deliver && self.located_response(now, tx, msg, code) {
            return;
        }
        if step.deliver {
            self.events.push_back(Event::Response {
                tx,
                response: OwnedMessage::from_view(msg.view()).with_limits(&self.config.limits),
            });
        }
        if let (Some(c), crate::ClientState::Proceeding) = (cancel, state) {
            self.release_cancel(now, c);
        }
        if step.deliver && !(100..=199).contains(&code) {
            // The INVITE has its final response: a CANCEL still held will never be sent.
            if let Some(c) = cancel.filter(|c| self.clients.get(c.0).is_some_and(|e| e.held)) {
                if let Some(ce) = self.clients.get_mut(c.0) {
                    ce.m.terminate();
                }
                self.finish_client(c);
            }
        }
        self.finish_client(tx);
    }
}
