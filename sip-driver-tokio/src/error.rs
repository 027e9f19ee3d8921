//! Errors of the driver and of its client API.

use std::io;

use sip_core::session::SessionError;
use sip_core::{BuildError, SendError};

use crate::ListenSpec;

/// What went wrong setting up or talking to the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listen address could not be bound.
    #[error("cannot listen on {spec}: {source}")]
    Bind {
        /// The listen specification.
        spec: ListenSpec,
        /// The socket error.
        source: io::Error,
    },
    /// No listen specification was given.
    #[error("no listen address given")]
    NoListeners,
    /// The random seed could not be read from the operating system.
    #[error("cannot read a random seed: {0}")]
    Seed(io::Error),
    /// The endpoint refused a command.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A message could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
    /// The session layer refused a call's command ([`crate::Call`]).
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Why a request got no final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No final response in time (timer B, F or C, RFC 3261 section 17.1). After timer C
    /// the driver has cancelled the INVITE; a 2xx that still arrives is ACKed and its call
    /// ended with BYE by the driver (sections 9.1 and 15).
    #[error("request timed out")]
    Timeout,
    /// The transport could not carry the request (RFC 3261 section 17.1.4).
    #[error("transport error")]
    Transport,
    /// The driver stopped before the transaction ended.
    #[error("the driver has stopped")]
    Stopped,
}
