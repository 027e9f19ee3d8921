//! # sip-driver-sys
//!
//! What the drivers of `sip-core` (`sip-driver-mio`, `sip-driver-tokio`) need beyond
//! sockets and clocks, written once for both:
//!
//! - [`os_seed`]: the random seed of an endpoint;
//! - [`icmp`]: the ICMP errors a UDP socket can report;
//! - [`tls`]: rustls configurations (ring provider) from PEM files, and the client-side
//!   check of a server's SIP domain identity (RFC 5922);
//! - [`dns`]: the nameservers of the system and [`dns::DnsClient`], a sans-IO DNS client
//!   over UDP that answers the questions of `sip_core::resolve` (RFC 3263).
//!
//! `sip-core` itself does no I/O; a driver calls these and feeds the results in
//! (`Endpoint::new(config, seed)`, `Endpoint::handle_unreachable`,
//! `Endpoint::handle_dns_answer`).
//!
//! ```
//! let seed = sip_driver_sys::os_seed()?;
//! assert_ne!(seed, [0u8; 32]);
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::io;

pub mod dns;
pub mod icmp;
pub mod tls;

/// 32 bytes from the operating system's cryptographic random source (`getrandom`), for
/// `Endpoint::new` and `SeededRng::new`: tags, branches, Call-IDs and the transaction
/// tables' hash keys are derived from it, so it must not be guessable (RFC 3261 section
/// 19.3).
pub fn os_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(seed)
}
