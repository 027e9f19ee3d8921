//! # sip-driver-mio
//!
//! Runs the sans-IO [`sip_core::Endpoint`] and a [`TransactionUser`] on [mio] sockets: a
//! single-threaded event loop that owns the UDP sockets, TCP listeners and connections, and
//! one timer. It makes no protocol decision; it feeds the endpoint what arrives
//! (`handle_datagram`, `accept_flow`, `handle_stream`, `handle_flow_event`, `handle_timeout`)
//! and carries out what comes back (`poll_event`, `poll_transmit`, `poll_io`, `poll_dns`:
//! the order [`Endpoint`](sip_core::Endpoint) documents), until nothing is left, after every
//! input.
//!
//! - UDP, TCP and TLS listeners on any number of IPv4 and IPv6 addresses ([`ListenSpec`],
//!   the syntax of a `--listen udp:127.0.0.1:5060` flag).
//! - Accepted connections become flows; [`IoRequest::Connect`](sip_core::IoRequest) opens a
//!   non-blocking connection and reports `Connected` or `Failed`; a peer's close is reported
//!   as `Closed`; writes the socket cannot take at once are buffered (up to
//!   [`Driver::set_write_buffer_limit`]).
//! - A datagram leaves from the socket bound to its `Transmit::local` (RFC 3581 section 4),
//!   or any UDP socket of the same address family.
//! - The timer is the earlier of the endpoint's and the transaction user's deadlines.
//! - [`Shutdown`] makes [`Driver::run`] return, from any thread or a signal handler; the run
//!   returns a [`Summary`] of the counters.
//! - The endpoint's seed is read from the operating system ([`os_seed`]).
//! - TLS (RFC 3261 section 26.2, RFC 5922) with rustls, whose connection state machines the
//!   loop drives itself (no thread): a `tls:` listener takes the server configuration of
//!   [`DriverOptions::tls`] ([`Driver::bind_with`]); an accepted connection reaches the
//!   endpoint once its handshake is done, and a connection the endpoint opens with
//!   `Transport::Tls` is reported `Connected` then, the server having proved the domain the
//!   endpoint resolved ([`Endpoint::tls_server_name`](sip_core::Endpoint::tls_server_name))
//!   or else the address. A failed handshake fails the connection, its reason given to
//!   [`Driver::on_warning`]; one not done within
//!   [`DriverOptions::tls_handshake_timeout`] is closed, and at most
//!   [`MAX_TLS_HANDSHAKES`] accepted handshakes run at once
//!   ([`MAX_TLS_HANDSHAKES_PER_SOURCE`] from one address).
//! - DNS (RFC 3263): the endpoint's questions go to a
//!   [`DnsClient`](sip_driver_sys::dns::DnsClient) on non-blocking UDP sockets the loop owns
//!   (one per address family, opened at the first question), asking the nameservers of
//!   [`DriverOptions::nameservers`] or of the system; the loop never waits for an answer.
//!
//! `examples/sipd.rs` runs the UAS core ([`sip_core::ua::UserAgent`]) on this driver:
//!
//! ```text
//! cargo run -p sip-driver-mio --example sipd -- --listen udp:127.0.0.1:5060 \
//!     --listen tcp:127.0.0.1:5060 --ring 2s --log info
//! ```
//!
//! ## Example
//!
//! A server answering every request with 200, on a background thread, asked an OPTIONS by
//! a plain UDP socket:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//! use sip_core::{Config, Endpoint, Event, ResponseBuilder, SeededRng, TransactionUser, Transport};
//! use sip_driver_mio::{os_seed, Driver, ListenSpec};
//!
//! struct Answer200(SeededRng);
//!
//! impl TransactionUser for Answer200 {
//!     fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
//!         if let Event::Request { tx, request, .. } = event {
//!             if let Ok(ok) = ResponseBuilder::from_view(&request.view(), 200).build(&mut self.0) {
//!                 let _ = endpoint.send_response(now, tx, &ok);
//!             }
//!         }
//!     }
//! }
//!
//! let spec: ListenSpec = "udp:127.0.0.1:0".parse()?;
//! let mut driver = Driver::bind(&[spec], Config::default())?;
//! let server = driver.local_addr(Transport::Udp).unwrap();
//! let shutdown = driver.shutdown_handle();
//! let mut tu = Answer200(SeededRng::new(os_seed()?));
//! let thread = std::thread::spawn(move || driver.run_for(&mut tu, Duration::from_secs(10)));
//!
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.set_read_timeout(Some(Duration::from_secs(5)))?;
//! let options = format!(
//!     "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {c};branch=z9hG4bK1\r\n\
//!      From: <sip:a@{c}>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
//!      Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
//!     c = client.local_addr()?
//! );
//! client.send_to(options.as_bytes(), server)?;
//! let mut buf = [0u8; 2048];
//! let n = client.recv(&mut buf)?;
//! assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
//!
//! shutdown.shutdown();
//! let summary = thread.join().unwrap()?;
//! assert_eq!(summary.endpoint.received, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## TLS and names
//!
//! A server with a `tls:` listener and a client that verifies it against the CA that signed
//! its certificate (made here with rcgen), in one thread: the client's OPTIONS goes over
//! TLS and is answered.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sip_core::{Config, Endpoint, Event, Method, RequestBuilder, ResponseBuilder, SeededRng};
//! use sip_core::{Target, TransactionUser, Transport};
//! use sip_driver_mio::{Driver, DriverOptions, ListenSpec, TlsConfig};
//! use sip_driver_sys::tls::{client_config, server_config};
//!
//! // A CA and a certificate it signs for 127.0.0.1 (and example.test), as PEM files.
//! let dir = std::env::temp_dir().join(format!("mio-tls-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
//! ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! let ca_key = rcgen::KeyPair::generate()?;
//! std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key)?.pem())?;
//! let issuer = rcgen::Issuer::new(ca, ca_key);
//! let leaf = rcgen::CertificateParams::new(vec!["example.test".into(), "127.0.0.1".into()])?;
//! let key = rcgen::KeyPair::generate()?;
//! std::fs::write(dir.join("cert.pem"), leaf.signed_by(&key, &issuer)?.pem())?;
//! std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
//!
//! // The server: tls:127.0.0.1:0 with that certificate.
//! let client = client_config(Some(&dir.join("ca.pem")))?;
//! let tls = TlsConfig {
//!     server: Some(server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?),
//!     client: client.clone(),
//! };
//! let spec: ListenSpec = "tls:127.0.0.1:0".parse()?;
//! let options = DriverOptions { tls: Some(tls), ..DriverOptions::default() };
//! let mut server = Driver::bind_with(&[spec], Config::default(), options)?;
//! let addr = server.local_addr(Transport::Tls).unwrap();
//!
//! // The client: verifies servers against the CA; nameservers given (not used here: the
//! // target is an address, so the server proves 127.0.0.1).
//! let options = DriverOptions {
//!     tls: Some(TlsConfig { server: None, client }),
//!     nameservers: Some(vec!["127.0.0.1:53".parse()?]),
//!     ..DriverOptions::default()
//! };
//! let mut caller = Driver::bind_with(&["udp:127.0.0.1:0".parse()?], Config::default(), options)?;
//!
//! /// Answers requests 200 and notes the status of responses.
//! struct Peer(SeededRng, Option<u16>);
//! impl TransactionUser for Peer {
//!     fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
//!         match event {
//!             Event::Request { tx, request, .. } => {
//!                 let ok = ResponseBuilder::from_view(&request.view(), 200).build(&mut self.0).unwrap();
//!                 endpoint.send_response(now, tx, &ok).unwrap();
//!             }
//!             Event::Response { response, .. } => self.1 = response.view().status(),
//!             _ => {}
//!         }
//!     }
//! }
//! let (mut s, mut c) = (Peer(SeededRng::new([1; 32]), None), Peer(SeededRng::new([2; 32]), None));
//! let uri = format!("sip:{addr};transport=tls");
//! let options = RequestBuilder::new(Method::Options, &uri)
//!     .from("<sip:caller@127.0.0.1>").to(&format!("<{uri}>")).build(&mut c.0)?;
//! // To a name, the endpoint resolves it (and the server must prove the name):
//! // caller.endpoint_mut().send_request(now, &options, NextHop::uri("sips:example.test"))
//! let target = Target { transport: Transport::Tls, addr };
//! caller.endpoint_mut().send_request(Instant::now(), &options, target)?;
//!
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while c.1.is_none() {
//!     assert!(Instant::now() < deadline, "no answer");
//!     caller.run_for(&mut c, Duration::from_millis(5))?;
//!     server.run_for(&mut s, Duration::from_millis(5))?;
//! }
//! assert_eq!(c.1, Some(200));
//! assert_eq!((caller.summary().tls_handshakes, server.summary().tls_handshakes), (1, 1));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `sipd` serves TLS with `--listen tls:127.0.0.1:5061 --cert cert.pem --key key.pem`, and
//! asks `--dns 127.0.0.1:5353` for names instead of the system's nameservers.
//!
//! ## Calls
//!
//! [`calls::Calls`] runs the session layer ([`sip_core::session`]: dialogs, INVITE
//! sessions, offer/answer, 100rel, UPDATE, session timers) for an application's
//! [`calls::CallHandler`], whose callbacks (`on_incoming`, `on_progress`, `on_answered`,
//! `on_offer`, `on_answer`, `on_ended`, ...) act through a [`calls::CallContext`]: ring,
//! accept, reject, answer an offer, re-INVITE, UPDATE, hang up, place a call. Here two
//! drivers in one thread, run in turn in short slices: alice calls bob, bob rings and
//! answers from alice's SDP offer, alice hangs up.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sip_core::sdp::{Direction, LocalMedia};
//! use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig};
//! use sip_core::{Config, OwnedMessage, Target, Transport};
//! use sip_driver_mio::calls::{CallContext, CallHandler, Calls};
//! use sip_driver_mio::{os_seed, Driver, ListenSpec};
//!
//! /// A phone that answers every call with its media, and notes what happens.
//! struct Phone {
//!     media: LocalMedia,
//!     log: Vec<String>,
//! }
//!
//! impl CallHandler for Phone {
//!     fn on_incoming(&mut self, ctx: &mut CallContext<'_>, call: CallHandle,
//!                    _invite: &OwnedMessage, offer: Option<&[u8]>) {
//!         self.log.push("incoming".into());
//!         let _ = ctx.ring(call, None);
//!         match offer.map(|o| self.media.answer(o)) {
//!             Some(Ok(answer)) => { let _ = ctx.accept(call, Some(answer)); }
//!             Some(Err(e)) => { let _ = ctx.reject(call, e.status()); } // 488
//!             None => { let _ = ctx.accept(call, Some(self.media.offer(Direction::SendRecv))); }
//!         }
//!     }
//!     fn on_progress(&mut self, _: &mut CallContext<'_>, _: CallHandle, status: u16,
//!                    _: &str, _: Option<&[u8]>) {
//!         self.log.push(format!("progress {status}"));
//!     }
//!     fn on_answered(&mut self, _: &mut CallContext<'_>, _: CallHandle, sdp: Option<&[u8]>) {
//!         self.log.push(format!("answered, SDP: {}", sdp.is_some()));
//!     }
//!     fn on_ended(&mut self, _: &mut CallContext<'_>, _: CallHandle, reason: EndReason) {
//!         self.log.push(format!("ended {reason:?}"));
//!     }
//! }
//!
//! let phone = |port| Phone {
//!     media: LocalMedia::new("127.0.0.1".parse().unwrap(), port, u64::from(port)),
//!     log: Vec::new(),
//! };
//! let spec: ListenSpec = "udp:127.0.0.1:0".parse()?;
//! let mut alice = Driver::bind(&[spec], Config::default())?;
//! let mut bob = Driver::bind(&[spec], Config::default())?;
//! let (a, b) = (alice.local_addr(Transport::Udp).unwrap(), bob.local_addr(Transport::Udp).unwrap());
//! let mut alice_calls = Calls::new(SessionConfig::new("alice"), os_seed()?, phone(4000));
//! let mut bob_calls = Calls::new(SessionConfig::new("bob"), os_seed()?, phone(5000));
//!
//! // Both loops in turn, in 5 ms slices, until `done` (bounded: 10 s for the example).
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let mut run = |alice_calls: &mut Calls<Phone>, bob_calls: &mut Calls<Phone>,
//!                alice: &mut Driver, bob: &mut Driver,
//!                done: &dyn Fn(&Phone, &Phone) -> bool| -> std::io::Result<()> {
//!     while !done(alice_calls.handler(), bob_calls.handler()) {
//!         assert!(Instant::now() < deadline, "too slow");
//!         alice.run_for(alice_calls, Duration::from_millis(5))?;
//!         bob.run_for(bob_calls, Duration::from_millis(5))?;
//!     }
//!     Ok(())
//! };
//!
//! // Alice calls bob with her offer.
//! let offer = alice_calls.handler_mut().media.offer(Direction::SendRecv);
//! let invite = Invite::new(&format!("sip:bob@{b}"), &format!("<sip:alice@{a}>"),
//!                          &format!("<sip:bob@{b}>"), Target::udp(b)).offer(offer);
//! let call = alice_calls.call(alice.endpoint_mut(), invite)?;
//! run(&mut alice_calls, &mut bob_calls, &mut alice, &mut bob,
//!     &|a, b| a.log.len() == 2 && b.log.len() == 2)?;
//! assert_eq!(alice_calls.handler().log, ["progress 180", "answered, SDP: true"]);
//! assert_eq!(bob_calls.handler().log, ["incoming", "answered, SDP: false"]);
//!
//! // Alice hangs up (BYE).
//! alice_calls.hangup(alice.endpoint_mut(), call)?;
//! run(&mut alice_calls, &mut bob_calls, &mut alice, &mut bob,
//!     &|a, b| a.log.len() == 3 && b.log.len() == 3)?;
//! assert_eq!(alice_calls.handler().log[2], "ended LocalBye");
//! assert_eq!(bob_calls.handler().log[2], "ended RemoteBye");
//! assert_eq!(bob_calls.sessions().dialogs(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Registration
//!
//! [`sip_core::registration::RegistrationUser`] is a transaction user that keeps one binding
//! at a registrar (RFC 3261 section 10.2): it refreshes it before the expiry the registrar
//! granted, answers digest challenges, retries failures with the backoff of RFC 5626 section
//! 4.5, and removes it after [`RegistrationUser::stop`](sip_core::registration::RegistrationUser::stop).
//! Here against a registrar on a plain UDP socket that grants 60 s:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//! use sip_core::registration::{Registration, RegistrationConfig, RegistrationState, RegistrationUser};
//! use sip_core::{Config, HeaderName, OwnedMessage, ResponseBuilder, SeededRng, Target, Transport};
//! use sip_driver_mio::{os_seed, Driver, ListenSpec};
//!
//! // The registrar: 200 to two REGISTERs (the binding, then its removal).
//! let registrar = UdpSocket::bind("127.0.0.1:0")?;
//! let registrar_addr = registrar.local_addr()?;
//! let thread = std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     registrar.set_read_timeout(Some(Duration::from_secs(10)))?;
//!     let mut rng = SeededRng::new(os_seed()?);
//!     let mut buf = [0u8; 4096];
//!     for _ in 0..2 {
//!         let (n, from) = registrar.recv_from(&mut buf)?;
//!         let request = OwnedMessage::parse(&buf[..n])?;
//!         let contact = request.view().header(HeaderName::Contact).unwrap_or("").to_owned();
//!         let ok = ResponseBuilder::from_view(&request.view(), 200)
//!             .header("Contact", &format!("{contact};expires=60"))
//!             .build(&mut rng)?;
//!         registrar.send_to(ok.as_bytes(), from)?;
//!     }
//!     Ok(())
//! });
//!
//! let mut driver = Driver::bind(&["udp:127.0.0.1:0".parse::<ListenSpec>()?], Config::default())?;
//! let me = driver.local_addr(Transport::Udp).unwrap();
//! let config = RegistrationConfig::new(
//!     &format!("sip:{registrar_addr}"),
//!     "sip:alice@example.com",
//!     &format!("<sip:alice@{me}>"),
//! );
//! let registration = Registration::new(Instant::now(), config, SeededRng::new(os_seed()?))?;
//! let mut tu = RegistrationUser::new(registration, Target::udp(registrar_addr));
//!
//! // Run until registered (a real UA runs on; a 10 s bound for the example).
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while !matches!(tu.registration().state(), RegistrationState::Registered { .. }) {
//!     assert!(Instant::now() < deadline, "not registered");
//!     driver.run_for(&mut tu, Duration::from_millis(50))?;
//! }
//! // Remove the binding, and run until the registrar has answered.
//! tu.stop(Instant::now(), driver.endpoint_mut());
//! while !tu.registration().is_unregistered() {
//!     assert!(Instant::now() < deadline, "not unregistered");
//!     driver.run_for(&mut tu, Duration::from_millis(50))?;
//! }
//! assert_eq!(tu.registration().state(), &RegistrationState::Unregistered { failure: None });
//! thread.join().unwrap().map_err(|e| e.to_string())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calls;
mod dns;
mod driver;
mod tls;

pub use driver::{Driver, DriverOptions, Shutdown, Summary, DEFAULT_WRITE_BUFFER_LIMIT, MAX_WAIT};
pub use sip_core;
pub use sip_core::transport::{ListenSpec, ParseListenSpecError};
#[doc(no_inline)]
pub use sip_core::TransactionUser;
pub use sip_driver_sys::os_seed;
pub use sip_driver_sys::tls::TlsConfig;
pub use tls::{DEFAULT_TLS_HANDSHAKE_TIMEOUT, MAX_TLS_HANDSHAKES, MAX_TLS_HANDSHAKES_PER_SOURCE};
