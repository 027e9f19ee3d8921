//! Dialogs (RFC 3261 section 12): the peer-to-peer relationship that an INVITE (or another
//! dialog-creating request) sets up, and what every request inside it needs: the dialog id,
//! the local and remote sequence numbers, the remote target, the route set and the secure
//! flag.
//!
//! A [`Dialog`] is plain state; [`crate::session`] creates and drives them. It keeps no whole
//! message: only the strings a later request needs (the id, the From and To values, the
//! remote target, the route set), so a confirmed dialog stays small.

use std::net::SocketAddr;

use crate::hop::{is_sips, next_hop, route_uri, secure_hop};
use crate::message::{Message, Uri};
use crate::{Method, NextHop, RequestBuilder, Source, Target, Transport};

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
    /// The address the dialog was made with: where the INVITE went (UAC; `None` when the
    /// endpoint could not say), where it came from (UAS).
    peer: Option<SocketAddr>,
    /// In-dialog requests go to `peer` over `transport`, reusing the connection the
    /// dialog was made over on a stream transport (RFC 3261 section 12.2.1.1 with RFC
    /// 5923's spirit: one connection per peer, and a TLS peer that only accepts the
    /// connection it already has). UAS over a stream transport: always (a peer behind NAT
    /// can only be reached that way). UAC: while the next hop names the server the INVITE
    /// was sent by (`invite_hop`), whose address is known.
    reuse_connection: bool,
    /// UAC: the host and port (as written) of the URI the INVITE was sent by (its first
    /// Route, else its Request-URI), when it named a host: an in-dialog next hop naming
    /// the same server goes over the INVITE's connection rather than being located anew
    /// (RFC 3263 section 4.2 may order the targets of a name differently each time).
    invite_hop: Option<Box<str>>,
    /// Our Contact must be a `sips:` URI (sections 8.1.1.8 and 12.1.1, RFC 5630 section
    /// 5.1): the INVITE's Request-URI or top Route (UAC), or its Request-URI or top
    /// Record-Route, else its Contact (UAS), was `sips:`.
    sips_contact: bool,
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

fn is_sips_request(msg: &Message<'_>) -> bool {
    matches!(msg.request_uri(), Some(Uri::Sip(u)) if u.secure)
}

/// `host[:port]` of a SIP URI, lower case: what names the server a request is located by.
fn server_key(uri: &str) -> Option<Box<str>> {
    let Some(Uri::Sip(u)) = Uri::parse(route_uri(uri)) else {
        return None;
    };
    let mut k = u.host.as_str().to_ascii_lowercase();
    if let Some(p) = u.port {
        k.push(':');
        k.push_str(&p.to_string());
    }
    Some(k.into())
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
        let route_set: Vec<String> = request.record_routes().map(|r| r.to_string()).collect();
        // Section 12.1.1: the Request-URI, else the top Record-Route, else the Contact.
        let sips_contact = is_sips_request(request)
            || match route_set.first() {
                Some(r) => is_sips(r),
                None => is_sips(&remote_target),
            };
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
            secure: is_sips_request(request) && source.transport == Transport::Tls,
            local_seq: 0,
            remote_seq: Some(request.cseq()?.seq),
            transport: source.transport,
            peer: Some(source.remote),
            reuse_connection: source.transport.is_stream(),
            invite_hop: None,
            sips_contact,
        })
    }

    /// The UAC side (section 12.1.2): the dialog a response with a To tag to our `request`
    /// (sent over `transport`, to `sent` when the endpoint said where) creates. The route
    /// set is the response's Record-Route in reverse, the remote target its Contact (the
    /// Request-URI when a provisional response has none), the local sequence number the
    /// request's CSeq, the remote one empty. The secure flag is set for a `sips:`
    /// Request-URI or top Route sent over TLS (section 12.1.2 and 8.1.1.8: such a request
    /// carries a `sips:` Contact and goes over TLS on every hop, section 26.2).
    pub(crate) fn uac(
        request: &Message<'_>,
        response: &Message<'_>,
        transport: Transport,
        sent: Option<SocketAddr>,
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
        let first_route = request.routes().next().map(|r| r.uri.to_string());
        let hop_uri = match &first_route {
            Some(r) => r.clone(),
            None => uri_text(request.request_uri()?),
        };
        let sips_contact = is_sips_request(request) || first_route.is_some_and(|r| is_sips(&r));
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
            secure: sips_contact && transport == Transport::Tls,
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            transport,
            peer: sent,
            reuse_connection: sent.is_some(),
            invite_hop: server_key(&hop_uri),
            sips_contact,
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

    /// The address the dialog was made with (where the INVITE came from, or went to when
    /// the endpoint said).
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Our Contact must be a `sips:` URI (sections 8.1.1.8 and 12.1.1).
    pub(crate) fn sips_contact(&self) -> bool {
        self.sips_contact
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

    /// Where the next in-dialog request goes (section 12.2.1.1: by the route set and the
    /// remote target, as section 8.1.2 says): the URI of the first Route (strict or loose
    /// alike), else the remote target. A numeric host (or `maddr`) is a [`Target`] at once
    /// (its `transport` parameter, else TLS for `sips:`, else the dialog's transport); a
    /// host name is a [`NextHop::Uri`] the endpoint locates (RFC 3263). A dialog made over
    /// a stream connection reuses it: the UAS always (the connection the INVITE came on),
    /// the UAC while the next hop names the server its INVITE went to. A secure dialog
    /// (and one whose Contact is `sips:`) goes over TLS only (section 26.2): `None` when
    /// its next hop names another transport, or is not a SIP URI.
    pub fn next_hop(&self) -> Option<NextHop> {
        if self.secure || self.sips_contact {
            // (a connection that is not TLS is not reused: the URIs are located over TLS)
            let reuse_tls = self.transport == Transport::Tls;
            return secure_hop(self.next_hop_any(reuse_tls)?);
        }
        self.next_hop_any(true)
    }

    fn next_hop_any(&self, may_reuse: bool) -> Option<NextHop> {
        let reuse = match (self.reuse_connection && may_reuse, self.peer) {
            (true, Some(addr)) => Some(NextHop::Target(Target {
                transport: self.transport,
                addr,
            })),
            _ => None,
        };
        let uri = match self.route_set.first() {
            Some(r) => route_uri(r),
            None => &self.remote_target,
        };
        if self.invite_hop.is_none() && reuse.is_some() {
            // UAS: the connection the request came on.
            return reuse;
        }
        match next_hop(uri, self.transport)? {
            NextHop::Uri(u) => {
                // UAC: the server the INVITE was located by keeps its connection.
                let same = self.invite_hop.is_some() && server_key(&u) == self.invite_hop;
                match reuse {
                    Some(r) if same => Some(r),
                    _ => Some(NextHop::Uri(u)),
                }
            }
            target => Some(target),
        }
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

    fn uac(invite: &str, response: &str, transport: Transport) -> Dialog {
        let req = Message::parse(invite.as_bytes()).unwrap();
        let resp = Message::parse(response.as_bytes()).unwrap();
        let sent = Some("10.0.0.5:5060".parse().unwrap());
        Dialog::uac(&req, &resp, transport, sent).unwrap()
    }

    const OUR_INVITE: &str = "INVITE sip:bob@b.example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\n\
        From: <sip:alice@a.example.com>;tag=at\r\nTo: <sip:bob@b.example.com>\r\n\
        Call-ID: c2\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1>\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    const OK: &str = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\n\
        From: <sip:alice@a.example.com>;tag=at\r\nTo: <sip:bob@b.example.com>;tag=bt\r\n\
        Call-ID: c2\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@b.example.com;transport=tcp>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn rfc3261_12_2_1_1_name_route_is_located_numeric_target_stays_a_target() {
        // RFC 3261 12.2.1.1 / 8.1.2 with RFC 3263 section 4
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "bt", &source(Transport::Udp)).unwrap();
        assert_eq!(d.next_hop(), Some(NextHop::uri("sip:p1.example.com;lr")));
        let text = INVITE.replace("Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nRecord-Route: <sip:10.0.0.3;lr>\r\n", "");
        let m = Message::parse(text.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "bt", &source(Transport::Udp)).unwrap();
        assert_eq!(
            d.next_hop(),
            Some(NextHop::Target(Target::udp(
                "10.0.0.9:5070".parse().unwrap()
            )))
        );
    }

    #[test]
    fn rfc3261_12_2_1_1_stream_dialogs_reuse_their_connection() {
        // RFC 3261 12.2.1.1 (RFC 5923's spirit): the UAS answers over the connection the
        // INVITE came on; the UAC keeps the INVITE's while the next hop names its server
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "bt", &source(Transport::Tcp)).unwrap();
        let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        assert_eq!(
            d.next_hop(),
            Some(NextHop::Target(Target {
                transport: Transport::Tcp,
                addr: peer
            }))
        );
        let d = uac(OUR_INVITE, OK, Transport::Tcp);
        let sent: SocketAddr = "10.0.0.5:5060".parse().unwrap();
        assert_eq!(
            d.next_hop(),
            Some(NextHop::Target(Target {
                transport: Transport::Tcp,
                addr: sent
            }))
        );
        let elsewhere = OK.replace("bob@b.example.com;transport=tcp", "bob@c.example.com");
        let d = uac(OUR_INVITE, &elsewhere, Transport::Tcp);
        assert_eq!(d.next_hop(), Some(NextHop::uri("sip:bob@c.example.com")));
    }

    #[test]
    fn rfc3261_26_2_secure_dialog_goes_over_tls_only() {
        // RFC 3261 26.2 / 12.1.2 (RFC 5630 5.1.1): a sips: dialog's Route is located as
        // sips:, and a hop over another transport is refused
        let invite = OUR_INVITE.replace("INVITE sip:bob", "INVITE sips:bob");
        let rr = OK.replace(
            "Contact:",
            "Record-Route: <sip:p1.example.com;lr>\r\nContact:",
        );
        let d = uac(&invite, &rr, Transport::Tls);
        assert!(d.secure() && d.sips_contact());
        assert_eq!(d.next_hop(), Some(NextHop::uri("sips:p1.example.com;lr")));
        let udp = rr.replace("p1.example.com;lr", "p1.example.com;transport=udp;lr");
        assert_eq!(uac(&invite, &udp, Transport::Tls).next_hop(), None);
        // A sips: Contact that came over TCP: its dialog goes to it over TLS, not over the
        // TCP connection (12.1.1: our Contact is sips: too).
        let text = INVITE
            .replace(
                "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
                "",
            )
            .replace("Record-Route: <sip:10.0.0.3;lr>\r\n", "")
            .replace("<sip:alice@10.0.0.9:5070>", "<sips:alice@10.0.0.9:5071>");
        let m = Message::parse(text.as_bytes()).unwrap();
        let d = Dialog::uas(&m, "t", &source(Transport::Tcp)).unwrap();
        assert!(d.sips_contact() && !d.secure());
        let tls = Target {
            transport: Transport::Tls,
            addr: "10.0.0.9:5071".parse().unwrap(),
        };
        assert_eq!(d.next_hop(), Some(NextHop::Target(tls)));
    }
}
