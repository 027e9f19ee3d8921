//! # sip-core
//!
//! The protocol core of a SIP stack (RFC 3261 and companions), written sans-IO: it takes bytes
//! and returns parsed messages, builds and serializes messages into caller buffers, and never
//! touches a socket, a clock, a thread or a global random number generator.
//!
//! This release holds the message layer:
//!
//! - [`MessageView`]: a zero-copy view (start line, header spans, body) found in one pass;
//!   no heap allocation for up to [`message::INLINE_HEADERS`] header lines.
//! - [`Message`]: every known header typed ([`HeaderValue`]), in one allocation.
//! - [`OwnedMessage`]: one shared buffer plus spans, for what must outlive the input.
//! - [`RequestBuilder`] and [`response_to`]: building messages, with tags, branches and
//!   Call-IDs drawn from a caller-supplied [`Rng`].
//! - [`validate`]: the response a UAS or proxy owes a request that parses but is not
//!   acceptable (RFC 3261 sections 8.2 and 16.3), and which responses to drop.
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
//! let mut rng = SeededRng::new([7; 32]);
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

mod builder;
mod endpoint;
mod error;
mod id;
mod limits;
pub mod message;
mod owned;
mod rng;
pub mod transaction;
pub mod transport;
pub mod validate;

pub use builder::{
    new_branch, reason_phrase, response_to, BuildError, RequestBuilder, ResponseBuilder,
    MAGIC_COOKIE,
};
pub use endpoint::{ClientTxId, Config, Endpoint, Event, SendError, ServerTxId, Stats, TxId};
pub use error::{ErrorKind, ParseError};
pub use limits::Limits;
pub use message::{Form, HeaderName, HeaderValue, Message, MessageView, Method, StreamFrame, Uri};
pub use owned::OwnedMessage;
pub use rng::{Rng, SeededRng};
pub use transaction::{ClientState, ServerState, Timer, Timers};
pub use transport::{FlowEvent, FlowId, IoRequest, Listener, Source, Target, Transmit, Transport};
