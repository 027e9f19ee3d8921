//! Dialogs (RFC 3261 section 12): the peer-to-peer relationship that an INVITE (or another
//! dialog-creating request) sets up, and what every request inside it needs: the dialog id,
//! the local and remote sequence numbers, the remote target, the route set and the secure
//! flag.
//!
//! A [`Dialog`] is plain state; [`crate::session`] creates and drives them. It keeps no whole
//! message: only the strings a later request needs (the id, the From and To values, the
//! remote target, the route set), so a confirmed dialog stays small.

use std::net::SocketAddr;

use crate::hop::{numeric_target, route_uri};
use crate::message::{Message, Uri};
use crate::{Method, RequestBuilder, Source, Target, Transport};

/// The dialog id (section 12): Call-ID, local tag and remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID of every request in the dialog.
    pub call_id: String,
    /// Our tag (From tag of our requests, To tag of our responses).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Where a dialog stands (section 12: early after a provisional response with a tag,
/// confirmed after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response; a 2xx confirms it, a non-2xx final ends it.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// The state of one dialog (section 12.1): id, state, local and remote URI, local and
/// remote sequence numbers, remote target, route set, secure flag, and where its requests
/// go.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    /// The From value of our requests (our URI with our tag), as written.
    local_uri: Box<str>,
    /// The To value of our requests (the peer's URI with its tag), as written.
    remote_uri: Box<str>,
    remote_target: String,
    route_set: Vec<String>,
    secure: bool,
    local_seq: u32,
    remote_seq: Option<u32>,
    /// The transport the dialog was made over.
    transport: Transport,
    /// The address the dialog was made with: where the INVITE went (UAC), where it came
    /// from (UAS). The next hop when the route set and remote target name no address.
    peer: SocketAddr,
    /// UAS over a stream transport: in-dialog requests reuse the connection the INVITE
    /// came on (its remote address), as a peer behind NAT can only be reached that way.
    reuse_connection: bool,
}

/// The URI of a name-addr or addr-spec as text.
fn uri_text(uri: &Uri<'_>) -> String {
    let mut out = Vec::with_capacity(64);
    uri.write_to(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The first Contact URI of a message, if any.
pub(crate) fn contact_uri(msg: &Message<'_>) -> Option<String> {
    msg.contacts().find_map(|c| match c {
        crate::message::Contact::Addr(a) => Some(uri_text(&a.uri)),
        crate::message::Contact::Star => None,
    })
}

fn is_sips(msg: &Message<'_>) -> bool {
    matches!(msg.request_uri(), Some(Uri::Sip(u)) if u.secure)
}

impl Dialog {
    /// The UAS side (section 12.1.1): the dialog a response with `local_tag` to `request`
    /// creates. The route set is the request's Record-Route in order, the remote target its
    /// Contact, the remote sequence number its CSeq; the local one is empty (0). `None`
    /// when the request lacks a From tag, Call-ID, CSeq or Contact.
    pub(crate) fn uas(request: &Message<'_>, local_tag: &str, source: &Source) -> Option<Dialog> {
        let from = request.from()?;
        let to = request.to()?;
        let remote_tag = from.tag()?;
        let remote_target = contact_uri(request)?;
        let route_set = request.record_routes().map(|r| r.to_string()).collect();
        let mut local_uri = to.to_string();
        if to.tag().is_none() {
            local_uri.push_str(";tag=");
            local_uri.push_str(local_tag);
        }
        Some(Dialog {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote_tag.to_owned(),
            },
            state: DialogState::Early,
            local_uri: local_uri.into(),
            remote_uri: from.to_string().into(),
            remote_target,
            route_set,
            secure: is_sips(request) && source.transport == Transport::Tls,
            local_seq: 0,
            remote_seq: Some(request.cseq()?.seq),
            transport: source.transport,
            peer: source.remote,
            reuse_connection: source.transport.is_stream(),
        })
    }

    /// The UAC side (section 12.1.2): the dialog a response with a To tag to our `request`
    /// (sent to `target`) creates. The route set is the response's Record-Route in reverse,
    /// the remote target its Contact (the Request-URI when a provisional response has
    /// none), the local sequence number the request's CSeq, the remote one empty.
    pub(crate) fn uac(
        request: &Message<'_>,
        response: &Message<'_>,
        target: Target,
    ) -> Option<Dialog> {
        let to = response.to()?;
        let remote_tag = to.tag()?;
        let from = request.from()?;
        let local_tag = from.tag()?;
        let remote_target = match contact_uri(response) {
            Some(c) => c,
            None => uri_text(request.request_uri()?),
        };
        let mut route_set: Vec<String> = response.record_routes().map(|r| r.to_string()).collect();
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote_tag.to_owned(),
            },
            state: DialogState::Early,
            local_uri: from.to_string().into(),
            remote_uri: to.to_string().into(),
            remote_target,
            route_set,
            secure: is_sips(request) && target.transport == Transport::Tls,
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            transport: target.transport,
            peer: target.addr,
            reuse_connection: false,
        })
    }

    /// UAC, a 2xx for an early dialog (section 13.2.2.4): confirmed, the route set
    /// recomputed from the 2xx (reversed Record-Route), the remote target from its Contact.
    pub(crate) fn confirm_uac(&mut self, response: &Message<'_>) {
        self.state = DialogState::Confirmed;
        let mut route_set: Vec<String> = response.record_routes().map(|r| r.to_string()).collect();
        route_set.reverse();
        self.route_set = route_set;
        self.refresh_target(response);
    }

    /// UAS: the 2xx was sent.
    pub(crate) fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// Target refresh (sections 12.2.1.2 and 12.2.2): the remote target becomes the URI of
    /// the message's Contact, if it has one.
    pub(crate) fn refresh_target(&mut self, msg: &Message<'_>) {
        if let Some(c) = contact_uri(msg) {
            self.remote_target = c;
        }
    }

    /// Section 12.2.2: a request whose CSeq is lower than the remote sequence number is out
    /// of order (false: answer 500); otherwise the remote sequence number becomes it.
    pub(crate) fn check_remote_seq(&mut self, seq: u32) -> bool {
        if self.remote_seq.is_some_and(|r| seq < r) {
            return false;
        }
        self.remote_seq = Some(seq);
        true
    }

    /// The next local sequence number (section 12.2.1.1: one more than the last).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.local_seq = self.local_seq.wrapping_add(1) & 0x7fff_ffff;
        if self.local_seq == 0 {
            self.local_seq = 1;
        }
        self.local_seq
    }

    /// A request inside the dialog (section 12.2.1.1) with CSeq `seq`: To, From and
    /// Call-ID from the dialog; Request-URI and Route from the remote target and the route
    /// set, loose routing when the first route has `lr`, else strict routing (section
    /// 16.12.1.1: the Request-URI is the first route, the remote target the last Route).
    pub(crate) fn request(&self, method: Method<'_>, seq: u32) -> RequestBuilder {
        let strict = self
            .route_set
            .first()
            .is_some_and(|r| !matches!(Uri::parse(route_uri(r)), Some(Uri::Sip(u)) if u.lr()));
        let (uri, routes): (&str, &[String]) = if strict {
            (route_uri(&self.route_set[0]), &self.route_set[1..])
        } else {
            (&self.remote_target, &self.route_set)
        };
        let mut b = RequestBuilder::new(method, uri)
            .from(&self.local_uri)
            .to(&self.remote_uri)
            .call_id(&self.id.call_id)
            .cseq(seq);
        for r in routes {
            b = b.header("Route", r);
        }
        if strict {
            b = b.header("Route", &format!("<{}>", self.remote_target));
        }
        b
    }

    /// The connection the dialog came in on failed (closed since, idle): requests go by
    /// the route set and remote target from now on. False when it was not reusing one.
    pub(crate) fn stop_reusing_connection(&mut self) -> bool {
        std::mem::replace(&mut self.reuse_connection, false)
    }

    /// The transport the dialog was made over.
    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    /// The address the dialog was made with (the source of the request or response that
    /// created it).
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early or confirmed.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The remote target: the URI of the peer's Contact (section 12.1), updated by target
    /// refresh requests.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order the Route header of our requests lists it.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// The secure flag (section 12.1: a `sips` Request-URI over TLS).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The local sequence number: the CSeq of the last request we sent in the dialog (0
    /// while empty).
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// The remote sequence number: the CSeq of the last request the peer sent, if any.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Where the next in-dialog request goes: the URI of the first Route (strict or loose
    /// alike) or else the remote target, when its host (or `maddr`) is an IP address; its
    /// `transport` parameter, else TLS for `sips`, else the transport the dialog was made
    /// over. A dialog that came in over a stream transport reuses that connection's
    /// remote address; a URI with a host name (no resolver here, RFC 3263) falls back to
    /// the address the dialog was made with.
    pub fn next_hop(&self) -> Option<Target> {
        if self.reuse_connection {
            return Some(Target {
                transport: self.transport,
                addr: self.peer,
            });
        }
        let uri = match self.route_set.first() {
            Some(r) => route_uri(r),
            None => &self.remote_target,
        };
        numeric_target(uri, self.transport).or(Some(Target {
            transport: self.transport,
            addr: self.peer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(transport: Transport) -> Source {
        Source {
            transport,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "127.0.0.2:40000".parse().unwrap(),
            flow: None,
        }
    }

    const INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\n\
        Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
        Record-Route: <sip:10.0.0.3;lr>\r\n\
        From: Alice <sip:alice@a.example.com>;tag=at\r\nTo: <sip:bob@b.example.com>\r\n\
        Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@10.0.0.9:5070>\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn uas_route_set_is_record_route_in_order() {
        // RFC 3261 12.1.1
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "bt", &source(Transport::Udp)).unwrap();
        assert_eq!(
            d.route_set(),
            [
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:10.0.0.3;lr>"
            ]
        );
        assert_eq!(d.remote_target(), "sip:alice@10.0.0.9:5070");
        assert_eq!(d.remote_seq(), Some(7));
        assert_eq!(d.id().remote_tag, "at");
        assert!(!d.secure());
    }

    #[test]
    fn strict_first_route_becomes_the_request_uri() {
        // RFC 3261 12.2.1.1 / 16.12.1.1
        let text = INVITE.replace("<sip:p1.example.com;lr>", "<sip:p1.example.com>");
        let m = Message::parse(text.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "bt", &source(Transport::Udp)).unwrap();
        let req = d
            .request(Method::Bye, 1)
            .build(&mut crate::SeededRng::new([1; 32]))
            .unwrap();
        assert_eq!(req.request_uri(), Some("sip:p1.example.com"));
        let m = req.message().unwrap();
        let routes: Vec<String> = m.routes().map(|r| r.to_string()).collect();
        assert_eq!(
            routes,
            [
                "<sip:p2.example.com;lr>",
                "<sip:10.0.0.3;lr>",
                "<sip:alice@10.0.0.9:5070>"
            ]
        );
    }

    #[test]
    fn secure_flag_needs_sips_and_tls() {
        // RFC 3261 12.1.1
        let text = INVITE.replace("INVITE sip:bob", "INVITE sips:bob");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert!(Dialog::uas(&m, "t", &source(Transport::Tls))
            .unwrap()
            .secure());
        assert!(!Dialog::uas(&m, "t", &source(Transport::Tcp))
            .unwrap()
            .secure());
    }
}
