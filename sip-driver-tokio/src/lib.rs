//! The tokio driver for [`sip_core`]: UDP sockets, TCP and TLS listeners and connections,
//! DNS and timers feeding the sans-IO [`Endpoint`](sip_core::Endpoint).
//!
//! One task owns the endpoint and its transaction user; socket tasks send what they read to
//! it through a channel, and it sends what the endpoint transmits to per-socket and
//! per-connection writer tasks. The owner sleeps until the next input or the earlier of the
//! endpoint's and the transaction user's deadlines. Every message sent or received is logged
//! as a `tracing` event (target `sip_driver_tokio::wire`, level INFO) with its method or
//! status code, Call-ID, CSeq, peer and transport.
//!
//! There are two ways to use it:
//!
//! - [`Driver::run`] with any [`TransactionUser`](sip_core::TransactionUser) (a UA core, a
//!   proxy core), until a [`Shutdown`] handle stops it; [`Driver::run_with`] also hands
//!   the application's own inputs (the results of tasks it started) to the transaction
//!   user in the loop;
//! - [`Driver::start`], which runs a built-in transaction user behind an async API: a
//!   [`Client`] sends requests and gets their [`Responses`], and [`Incoming`] yields received
//!   requests, each with a [`Responder`]; [`Client::call`] places calls and
//!   [`Driver::start_with_calls`] also takes them (see [Calls](#calls)).
//!
//! The examples show both: `sipd` runs the UAS core of `sip_core::ua` with [`Driver::run`],
//! and `sipc` sends OPTIONS or MESSAGE with the [`Client`], or places a call with
//! [`Client::call`]:
//!
//! ```text
//! cargo run -p sip-driver-tokio --example sipd -- --listen udp:127.0.0.1:5060 --ring 2s
//! cargo run -p sip-driver-tokio --example sipc -- call sip:bob@127.0.0.1:5060 --hold 2s
//! ```
//!
//! With the cargo feature `redis` (off by default), the module `location` is a registrar's
//! location store in Redis, shared by several servers; `sipd --registrar --location
//! redis://HOST:PORT` runs the UAS core's registrar on it through [`Driver::run_with`]
//! (see `docs/registrar.md`).
//!
//! ```
//! use sip_core::{Method, RequestBuilder, SeededRng, Target, Transport};
//! use sip_driver_tokio::Driver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A server that answers every request 200.
//! let (server, mut incoming) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
//! let server_addr = server.local_addr(Transport::Udp).unwrap();
//! tokio::spawn(async move {
//!     while let Some((_request, mut responder)) = incoming.next().await {
//!         let _ = responder.respond_status(200).await;
//!     }
//! });
//!
//! // A client asking it for its capabilities.
//! let (client, _incoming) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
//! let uri = format!("sip:{server_addr}");
//! let options = RequestBuilder::new(Method::Options, &uri)
//!     .from("<sip:alice@127.0.0.1>")
//!     .to(&format!("<{uri}>"))
//!     .build(&mut SeededRng::new(sip_driver_tokio::os_seed()?))?;
//! let responses = client.request(options, Target::udp(server_addr)).await?;
//! let ok = responses.final_response().await?;
//! assert_eq!(ok.view().status(), Some(200));
//!
//! client.shutdown().await;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Names and TLS
//!
//! A request may go to a [`Target`](sip_core::Target) (an address) or to a
//! [`NextHop::Uri`](sip_core::NextHop): the endpoint then locates the server itself (RFC
//! 3263: NAPTR, SRV, then A/AAAA; on a transport error, a timeout or a 503 the same request
//! goes to the next server with a new branch). The driver answers the endpoint's DNS
//! questions with hickory's tokio resolver, on the system's configuration
//! (`/etc/resolv.conf`) or on the nameservers of [`DriverOptions::with_nameservers`]; the
//! loop never waits for DNS, and the endpoint caches the answers with their TTLs.
//!
//! `tls:` listeners and the TLS connections the endpoint opens (`sips:` URIs, or
//! `transport=tls`) run on tokio-rustls with the configurations of
//! [`sip_driver_sys::tls`] ([`DriverOptions::with_tls`]): the server must prove the domain
//! of the URI that was resolved (RFC 5922), or its address for a `Target`. A connection
//! is reported up only after its handshake, and is reused for what follows:
//! [`Client::driver_stats`] counts one handshake per connection, and says why the last one
//! failed (`TLS to 127.0.0.1:5061: certificate not valid for example.test`).
//!
//! ```no_run
//! use std::path::Path;
//! use sip_core::{Method, NextHop, RequestBuilder, SeededRng};
//! use sip_driver_sys::tls::{client_config, TlsConfig};
//! use sip_driver_tokio::{Driver, DriverOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = TlsConfig { server: None, client: client_config(Some(Path::new("ca.pem")))? };
//! let options = DriverOptions::default()
//!     .with_tls(tls)
//!     .with_nameservers(vec!["127.0.0.1:5353".parse()?]);
//! let driver = Driver::bind_with_options(
//!     ["udp:127.0.0.1:0".parse()?],
//!     sip_core::Config::default(),
//!     options,
//! )
//! .await?;
//! let (client, _incoming) = driver.start();
//! let options = RequestBuilder::new(Method::Options, "sips:example.test")
//!     .from("<sips:alice@example.test>")
//!     .to("<sips:example.test>")
//!     .build(&mut SeededRng::new(sip_driver_tokio::os_seed()?))?;
//! // NAPTR and SRV of example.test (SIPS+D2T, _sips._tcp), A/AAAA, then TLS to the server,
//! // whose certificate must name example.test.
//! let responses = client.request(options, NextHop::uri("sips:example.test")).await?;
//! println!("{:?}", responses.final_response().await?.view().status());
//! println!("{:?}", client.driver_stats());
//! client.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Calls
//!
//! [`Client::call`] places a call (an INVITE session of [`sip_core::session`]) and returns a
//! [`Call`]: its [`CallEvent`]s say ringing, early media, answered (with the callee's SDP),
//! an offer from the peer to answer (re-INVITE, UPDATE), the answer to ours, and the end
//! with its reason; [`Call::hangup`] cancels a ringing call or sends BYE, and
//! [`Call::reinvite`], [`Call::update`], [`Call::hold`] and [`Call::resume`] change the
//! media. [`Driver::start_with_calls`] also yields the calls that arrive, as
//! [`IncomingCall`]s to ring, accept with an answer, or reject. The session layer does the
//! rest: ACK for every 2xx, PRACK, the retransmissions, 481 and 491, session timers, and the
//! BYE of a fork the call does not keep. Two phones in one process:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use sip_core::sdp::{Direction, LocalMedia};
//! use sip_core::session::{EndReason, Invite, SessionConfig};
//! use sip_core::{Target, Transport};
//! use sip_driver_tokio::{CallEvent, Driver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! // Bob takes calls and answers with his media.
//! let driver = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?;
//! let (bob, _requests, mut calls) = driver.start_with_calls(SessionConfig::new("bob"));
//! let bob_addr = bob.local_addr(Transport::Udp).unwrap();
//! let callee = tokio::spawn(async move {
//!     let incoming = calls.next().await.unwrap();
//!     let mut media = LocalMedia::new(loopback, 40002, 2);
//!     let answer = media.answer(incoming.offer().unwrap()).unwrap();
//!     incoming.ring(None).await.unwrap();
//!     let mut call = incoming.accept(Some(answer)).await.unwrap();
//!     while let Some(event) = call.next_event().await {
//!         if let CallEvent::Ended(reason) = event {
//!             return reason;
//!         }
//!     }
//!     unreachable!("Ended is the last event");
//! });
//!
//! // Alice calls him with an offer of PCMU, PCMA and telephone-event.
//! let (alice, _requests) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
//! let alice_addr = alice.local_addr(Transport::Udp).unwrap();
//! let mut media = LocalMedia::new(loopback, 40000, 1);
//! let invite = Invite::new(
//!     &format!("sip:bob@{bob_addr}"),
//!     &format!("<sip:alice@{alice_addr}>"),
//!     &format!("<sip:bob@{bob_addr}>"),
//!     Target::udp(bob_addr),
//! )
//! .offer(media.offer(Direction::SendRecv));
//! let mut call = alice.call(invite).await?;
//! loop {
//!     match call.next_event().await {
//!         Some(CallEvent::Ringing { .. }) => println!("ringing"),
//!         Some(CallEvent::Answered { sdp: Some(answer) }) => {
//!             media.accept_answer(&answer)?;
//!             break;
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! call.hangup().await?;
//! while let Some(event) = call.next_event().await {
//!     if let CallEvent::Ended(reason) = event {
//!         assert_eq!(reason, EndReason::LocalBye);
//!     }
//! }
//! assert_eq!(callee.await?, EndReason::RemoteBye);
//! alice.shutdown().await;
//! bob.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Registration
//!
//! [`Client::register`] keeps a binding alive at a registrar (RFC 3261 section 10.2) in a
//! task: the sans-IO [`sip_core::registration::Registration`] refreshes it before the expiry
//! the registrar granted, answers digest challenges, retries failures with the backoff of
//! RFC 5626 section 4.5, and removes the binding when asked, when its handle is dropped, or
//! at [`Client::shutdown`]. Here against a registrar that grants 60 s of whatever is asked:
//!
//! ```
//! use sip_core::registration::{RegistrationConfig, RegistrationState};
//! use sip_core::{ResponseBuilder, SeededRng, Target, Transport};
//! use sip_driver_tokio::{os_seed, Driver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (registrar, mut incoming) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
//! let registrar_addr = registrar.local_addr(Transport::Udp).unwrap();
//! tokio::spawn(async move {
//!     let mut rng = SeededRng::new(os_seed().unwrap());
//!     while let Some((request, mut responder)) = incoming.next().await {
//!         let contact = request.view().header(sip_core::HeaderName::Contact).unwrap_or("").to_owned();
//!         let granted = if contact.contains("expires=0") { contact } else { format!("{contact};expires=60") };
//!         let ok = ResponseBuilder::from_view(&request.view(), 200)
//!             .header("Contact", &granted)
//!             .build(&mut rng)
//!             .unwrap();
//!         let _ = responder.respond(ok).await;
//!     }
//! });
//!
//! let (client, _incoming) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
//! let me = client.local_addr(Transport::Udp).unwrap();
//! let config = RegistrationConfig::new(
//!     &format!("sip:{registrar_addr}"),
//!     "sip:alice@example.com",
//!     &format!("<sip:alice@{me}>"),
//! );
//! let mut registration = client.register(config, Target::udp(registrar_addr))?;
//! let state = registration
//!     .wait_for(|s| matches!(s, RegistrationState::Registered { .. }))
//!     .await;
//! assert!(matches!(state, Some(RegistrationState::Registered { .. })));
//!
//! // Removes the binding (Contact with expires=0) and waits for the 200.
//! let done = registration.unregister().await;
//! assert_eq!(done, RegistrationState::Unregistered { failure: None });
//! client.shutdown().await;
//! registrar.shutdown().await;
//! # Ok(()) }
//! ```

mod call;
mod client;
mod dns;
mod driver;
mod error;
#[cfg(feature = "redis")]
pub mod location;
mod log;
mod registration;

pub use call::{Call, CallEvent, IncomingCall, IncomingCalls};
pub use client::{Client, Incoming, Responder, Responses};
pub use driver::{Driver, DriverOptions, DriverStats, Finished, Shutdown};
pub use error::{Error, RequestError};
pub use registration::RegistrationHandle;
pub use sip_core;
pub use sip_core::transport::{ListenSpec, ParseListenSpecError};
pub use sip_driver_sys::os_seed;
