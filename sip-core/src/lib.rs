//! # sip-core
//!
//! The protocol core of a SIP stack (RFC 3261 and companions), written sans-IO: it takes bytes
//! and returns parsed messages, builds and serializes messages into caller buffers, and never
//! touches a socket, a clock, a thread or a global random number generator.
//!
//! It holds the message layer and, above it, the transport and transaction layers behind
//! one sans-IO [`Endpoint`]:
//!
//! - [`MessageView`]: a zero-copy view (start line, header spans, body) found in one pass;
//!   no heap allocation for up to [`message::INLINE_HEADERS`] header lines.
//! - [`Message`]: every known header typed ([`HeaderValue`]), in one allocation.
//! - [`OwnedMessage`]: one shared buffer plus spans, for what must outlive the input; it
//!   keeps the [`Limits`] it was parsed with.
//! - [`MessageEditor`] (from [`OwnedMessage::edit`]): what a proxy or B2BUA changes in a
//!   received message (Request-URI, Via, Record-Route, Max-Forwards, any header by name, the
//!   body), unchanged lines copied byte for byte.
//! - [`RequestBuilder`] and [`response_to`]: building messages, with tags, branches and
//!   Call-IDs drawn from a caller-supplied [`Rng`]. Builders and the editor refuse CR, LF
//!   and NUL in what they are given (no header injection).
//! - [`validate`]: the response a UAS or proxy owes a request that parses but is not
//!   acceptable (RFC 3261 sections 8.2 and 16.3), and which responses to drop.
//! - [`registration`]: the registration client (RFC 3261 section 10.2, RFC 5626 section 4.5)
//!   as a sans-IO state machine, and [`registration::RegistrationUser`] to run it on an
//!   [`Endpoint`].
//! - [`Endpoint`]: bytes and timer ticks in, [`Transmit`]s, [`IoRequest`]s and [`Event`]s
//!   out; the four transaction state machines of RFC 3261 section 17 (with RFC 6026), the
//!   Via rules of section 18 and RFC 3581, stream framing and keep-alives (RFC 5626
//!   section 3.5.1). Time and the random seed are arguments. Its defaults assume untrusted
//!   peers: responses go only to a request's source ([`ResponsePolicy`]), what peers can
//!   make it hold is bounded in bytes ([`Config::max_held_bytes`]), and connections are
//!   limited per source address ([`Config::max_flows_per_source`]).
//! - [`auth`]: digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760) for servers
//!   ([`auth::Authenticator`]: challenges, nonces that need no table, replay detection) and
//!   clients ([`auth::DigestClient`]: the answer to a 401 or 407).
//! - [`sdp`]: session descriptions (RFC 8866), parsed without copying and written back, and
//!   the offer/answer helper [`sdp::LocalMedia`] (RFC 3264).
//!
//! - [`dialog`] and [`session`]: dialogs (RFC 3261 section 12) and INVITE sessions both ways
//!   (sections 13 to 15: forks, ACK, CANCEL, BYE, re-INVITE with the RFC 3264 offer/answer
//!   state, 491 and its retry timers), a transaction user on the [`Endpoint`] with bounded
//!   tables in which every dialog ends.
//!
//! - [`resolve`]: locating SIP servers (RFC 3263): a sans-IO resolver from a SIP URI to an
//!   ordered list of [`Target`]s through NAPTR, SRV and A/AAAA questions the caller answers,
//!   with a bounded cache and failover; the [`Endpoint`] and drivers do not use it yet.
//!
//! What is not built yet: sending to a URI through [`resolve`] in the [`Endpoint`] (the
//! caller gives a [`Target`]) and TLS. The
//! registrar is [`registrar`] (RFC 3261 section 10.3) with its location service in
//! [`location`], run by the UAS core in [`ua`]; the registration client is
//! [`registration`]; the stateful proxy core (section 16) is [`proxy`], and
//! [`proxy_registrar`] combines it with the registrar as `sipd --proxy` runs it.
//!
//! Randomness: every tag, branch and Call-ID is drawn from ChaCha20 keyed with a 32-byte
//! seed ([`SeededRng`]). sip-core never asks the operating system for it: the drivers do
//! (`sip_driver_mio::os_seed`, `sip_driver_tokio::os_seed`), and so does an application
//! that builds messages itself, as below with the `getrandom` crate. A fixed seed repeats a
//! run exactly, which only tests want.
//!
//! The run loop of a driver, here a UDP server answering OPTIONS (the real drivers are the
//! `sip-driver-mio` and `sip-driver-tokio` crates). It sleeps until a datagram arrives or
//! the endpoint's next timer is due ([`Endpoint::poll_timeout`]), feeds the input and the
//! clock, then drains the outputs in the order the [`Endpoint`] documents:
//!
//! ```
//! use std::io::ErrorKind;
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//! use sip_core::{Config, Endpoint, Event, Listener, ResponseBuilder, SeededRng, Transport};
//!
//! /// 32 bytes from the operating system's generator.
//! fn os_seed() -> std::io::Result<[u8; 32]> {
//!     let mut seed = [0u8; 32];
//!     getrandom::fill(&mut seed)?;
//!     Ok(seed)
//! }
//!
//! let socket = UdpSocket::bind("127.0.0.1:0")?;
//! let local = socket.local_addr()?;
//! let config = Config { listeners: vec![Listener::new(Transport::Udp, local)], ..Config::default() };
//! let mut endpoint = Endpoint::new(config, os_seed()?);
//! let mut rng = SeededRng::new(os_seed()?); // a seed of its own: never share one
//!
//! // A peer asks for our capabilities.
//! let peer = UdpSocket::bind("127.0.0.1:0")?;
//! let options = format!(
//!     "OPTIONS sip:{local} SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bK1\r\n\
//!      From: <sip:a@{p}>;tag=1\r\nTo: <sip:{local}>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
//!      Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
//!     p = peer.local_addr()?
//! );
//! peer.send_to(options.as_bytes(), local)?;
//!
//! let (mut rx, mut tx) = (vec![0u8; 65535], Vec::new());
//! // This example stops after its first answer, or after 5 s; a server runs on.
//! let (stop, mut answered) = (Instant::now() + Duration::from_secs(5), false);
//! while !answered && Instant::now() < stop {
//!     // 1. sleep until a datagram arrives or the next timer is due (a read timeout of
//!     //    zero would mean "forever", hence the 1 ms floor)
//!     let wake = endpoint.poll_timeout().map_or(stop, |t| t.min(stop));
//!     let sleep = wake.saturating_duration_since(Instant::now());
//!     socket.set_read_timeout(Some(sleep.max(Duration::from_millis(1))))?;
//!     match socket.recv_from(&mut rx) {
//!         Ok((n, from)) => endpoint.handle_datagram(Instant::now(), local, from, &rx[..n]),
//!         Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
//!         Err(e) => return Err(e.into()),
//!     }
//!     // 2. the clock: the timers that are due fire
//!     if endpoint.poll_timeout().is_some_and(|t| t <= Instant::now()) {
//!         endpoint.handle_timeout(Instant::now());
//!     }
//!     // 3. drain the outputs: events, then transmits, then I/O requests
//!     while let Some(event) = endpoint.poll_event() {
//!         if let Event::Request { tx: id, request, .. } = event {
//!             let ok = ResponseBuilder::from_view(&request.view(), 200).build(&mut rng)?;
//!             endpoint.send_response(Instant::now(), id, &ok)?;
//!             answered = true;
//!         }
//!     }
//!     while let Some(t) = endpoint.poll_transmit(&mut tx) {
//!         socket.send_to(&tx, t.remote)?;
//!     }
//!     // UDP only: no connection to open or close
//!     while endpoint.poll_io().is_some() {}
//!     // targets are addresses here: no DNS question (see `Endpoint::poll_dns`)
//!     while endpoint.poll_dns().is_some() {}
//! }
//! let n = peer.recv(&mut rx)?;
//! assert!(rx[..n].starts_with(b"SIP/2.0 200 OK"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use sip_core::{Message, HeaderName, Form};
//!
//! let bytes = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!     v: SIP/2.0/UDP host.example.com;branch=z9hG4bK74bf9\r\n\
//!     Max-Forwards: 70\r\n\
//!     f: <sip:alice@example.com>;tag=9fxced76sl\r\n\
//!     t: sip:bob@example.com\r\n\
//!     i: 3848276298220188511@host.example.com\r\n\
//!     CSeq: 63104 OPTIONS\r\n\
//!     l: 0\r\n\r\n";
//! let msg = Message::parse(bytes)?;
//! assert_eq!(msg.top_via().unwrap().branch(), Some("z9hG4bK74bf9"));
//! assert_eq!(msg.from().unwrap().tag(), Some("9fxced76sl"));
//! assert_eq!(msg.cseq().unwrap().seq, 63104);
//!
//! // Canonical form: long header names, one value per line.
//! let mut out = Vec::new();
//! msg.write_to(&mut out, Form::Canonical);
//! assert!(out.starts_with(b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: "));
//! # Ok::<(), sip_core::ParseError>(())
//! ```
//!
//! Building a request and the response to it:
//!
//! ```
//! use sip_core::{RequestBuilder, response_to, Method, SeededRng, Message};
//!
//! let mut seed = [0u8; 32];
//! getrandom::fill(&mut seed)?;
//! let mut rng = SeededRng::new(seed);
//! let req = RequestBuilder::new(Method::Invite, "sip:bob@biloxi.example.com")
//!     .from("Alice <sip:alice@atlanta.example.com>")
//!     .to("Bob <sip:bob@biloxi.example.com>")
//!     .via("UDP", "pc33.atlanta.example.com:5060")
//!     .contact("<sip:alice@pc33.atlanta.example.com>")
//!     .body("application/sdp", b"v=0\r\n")
//!     .build(&mut rng)?;
//! let req = req.message()?;
//! let resp = response_to(&req, 180, &mut rng)?;
//! let resp = resp.message()?;
//! assert_eq!(resp.status(), Some(180));
//! assert!(resp.to().unwrap().tag().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod auth;
mod budget;
mod builder;
pub mod dialog;
mod edit;
mod endpoint;
mod error;
mod hop;
mod id;
mod limits;
pub mod location;
pub mod message;
mod owned;
pub mod proxy;
pub mod proxy_registrar;
pub mod registrar;
pub mod registration;
pub mod resolve;
mod rng;
pub mod sdp;
pub mod session;
pub mod transaction;
pub mod transport;
pub mod ua;
pub mod validate;

pub use builder::{
    new_branch, reason_phrase, response_to, BuildError, RequestBuilder, ResponseBuilder,
    MAGIC_COOKIE,
};
pub use edit::{HopCount, MessageEditor};
pub use endpoint::{
    ClientTxId, Config, Endpoint, Event, NextHop, SendError, ServerTxId, Stats, TransactionUser,
    TxId,
};
pub use error::{ErrorKind, ParseError};
pub use limits::Limits;
pub use message::{Form, HeaderName, HeaderValue, Message, MessageView, Method, StreamFrame, Uri};
pub use owned::OwnedMessage;
pub use rng::{Rng, SeededRng};
pub use transaction::{ClientState, ServerState, Timer, Timers};
pub use transport::ResponsePolicy;
pub use transport::{FlowEvent, FlowId, IoRequest, Listener, Source, Target, Transmit, Transport};
