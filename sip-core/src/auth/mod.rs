//! Digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760), sans-IO.
//!
//! - [`digest`]: the algorithms (MD5, SHA-256, SHA-512-256 and their `-sess` variants),
//!   the response computation, and the challenge and credential values.
//! - [`DigestClient`]: the request to send again after a 401 or 407, and credentials for
//!   later requests.
//! - [`Authenticator`]: challenges and the check of credentials (registrar, UAS, proxy),
//!   with nonces that need no table.
//!
//! Time and randomness are arguments, as everywhere in this crate.

mod client;
pub mod digest;
mod server;

pub use client::{DigestClient, DigestError};
pub use digest::{Algorithm, Challenge, Credentials, CredentialsError, Hex, Qop, QopOptions};
pub use server::{AuthConfig, AuthVerdict, Authenticator, NonceStatus};

/// Which pair of headers an authentication uses (RFC 3261 sections 22.2 and 22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// A user agent server or registrar: 401 with WWW-Authenticate, answered with
    /// Authorization.
    Www,
    /// A proxy: 407 with Proxy-Authenticate, answered with Proxy-Authorization.
    Proxy,
}

impl AuthKind {
    /// The status code of the challenge: 401 or 407.
    pub fn status(self) -> u16 {
        match self {
            AuthKind::Www => 401,
            AuthKind::Proxy => 407,
        }
    }

    /// The header carrying the challenge: WWW-Authenticate or Proxy-Authenticate.
    pub fn challenge_header(self) -> crate::HeaderName {
        match self {
            AuthKind::Www => crate::HeaderName::WwwAuthenticate,
            AuthKind::Proxy => crate::HeaderName::ProxyAuthenticate,
        }
    }

    /// The header carrying the credentials: Authorization or Proxy-Authorization.
    pub fn credentials_header(self) -> crate::HeaderName {
        match self {
            AuthKind::Www => crate::HeaderName::Authorization,
            AuthKind::Proxy => crate::HeaderName::ProxyAuthorization,
        }
    }
}
